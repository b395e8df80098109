"""Archives for the local server, the tests and the benchmarks.

Two kinds:

* real small archives made with the standard library (``zipfile``, ``tarfile``): a ZIP,
  TAR or compressed TAR from a member list, a ZIP whose directory is over 64 KiB, a ZIP
  forced to ZIP64, a ZIP with a 65,535-byte comment;
* *virtual* huge archives, :class:`ServedFile` objects whose bytes are computed per range
  (``sparse_reader``): a ZIP64 of 50 GB with 100,000 members where only the central
  directory and the end records are real bytes, a TAR of tens of GB whose headers sit at
  the computed offsets, a ``.tar.gz`` whose first megabytes are a real stream. Serving
  them costs no disk and no memory beyond the real parts, so a test or a benchmark can
  count the bytes and requests a peek costs on an archive of any size.

:func:`local_answer` answers a :class:`ByteRange` from a ServedFile in-process, the way the
server does (206 with ``Content-Range``, 416, or 200 cut at the budget when Range is
ignored), and :class:`ServedFileIO` lets ``zipfile``/``tarfile`` read a virtual archive, so
tests can check the virtual builders against the standard library.

Nothing here needs the server running.
"""

from __future__ import annotations

import contextlib
import io
import random
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from envision_spiders.archive import Answer, ByteRange, PeekLimits, drive, make_peeker
from envision_spiders.archive.zipformat import CENTRAL, END, END64, LOCATOR64, SIG_CENTRAL, SIG_END, SIG_END64, SIG_LOCATOR64

from .core import ServedFile, parse_range_header, sparse_reader

Members = Iterable[str | tuple[str, bytes]]


def _items(members: Members) -> Iterator[tuple[str, bytes]]:
    for m in members:
        yield (m, b"") if isinstance(m, str) else (m[0], bytes(m[1]))


# --------------------------------------------------------------------------- real archives
def zip_bytes(members: Members, *, comment: bytes = b"", compression: int = zipfile.ZIP_STORED) -> bytes:
    """A ZIP made by ``zipfile`` (names ending in ``/`` are folders)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in _items(members):
            zf.writestr(name, data)
        zf.comment = comment
    return buf.getvalue()


_ZIP64_LOCK = threading.Lock()


@contextlib.contextmanager
def _zip64_everywhere() -> Iterator[None]:
    # zipfile switches to ZIP64 records past these limits; CPython's own tests lower them
    # the same way to force ZIP64 on small archives. Module globals, hence the lock.
    with _ZIP64_LOCK:
        saved = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 0, 0
        try:
            yield
        finally:
            zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = saved


def zip64_bytes(members: Members, *, comment: bytes = b"") -> bytes:
    """A small ZIP written by ``zipfile`` with ZIP64 extra fields and ZIP64 end records."""
    with _zip64_everywhere():
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in _items(members):
                with zf.open(name, "w", force_zip64=True) as fh:
                    fh.write(data)
            zf.comment = comment
        return buf.getvalue()


def zip_with_large_directory(n: int = 3000, *, folder: str = "fundus/train", ext: str = ".png") -> tuple[bytes, list[str]]:
    """A ZIP of ``n`` empty members whose central directory is over 64 KiB (n >= ~1,500)."""
    names = [f"{folder}/image_{i:05d}{ext}" for i in range(n)]
    return zip_bytes(names), names


def zip_with_max_comment(members: Members, *, comment_len: int = 0xFFFF) -> bytes:
    """A ZIP whose archive comment has ``comment_len`` bytes (the format's maximum by default)."""
    return zip_bytes(members, comment=(b"curator comment. " * (comment_len // 17 + 1))[:comment_len])


def tar_bytes(members: Members, *, compression: str | None = None, format: int = tarfile.PAX_FORMAT) -> bytes:
    """A TAR made by ``tarfile`` (``compression``: None, "gz", "bz2" or "xz"; names ending
    in ``/`` are folders)."""
    buf = io.BytesIO()
    mode = "w" if compression is None else f"w:{compression}"
    with tarfile.open(fileobj=buf, mode=mode, format=format) as tf:
        for name, data in _items(members):
            info = tarfile.TarInfo(name.rstrip("/") if name.endswith("/") else name)
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


# --------------------------------------------------------------------------- virtual archives
def _size_of(member_size: int | Callable[[int], int], i: int) -> int:
    return member_size(i) if callable(member_size) else member_size


def virtual_zip(
    names: Sequence[str | bytes],
    *,
    member_size: int | Callable[[int], int] = 500_000,
    zip64: bool | None = None,
    comment: bytes = b"",
    utf8_flag: bool | None = None,
) -> ServedFile:
    """A stored (uncompressed) ZIP where only the central directory and end records are real.

    Member data and local headers are zeros: the file is as large as the real archive
    would be (``sum(30 + len(name) + size)`` + directory), costs nothing to hold, and
    lists exactly like it. ZIP64 extra fields and end records are written where the
    values need them, or everywhere with ``zip64=True``. Names given as bytes are written
    as they are (hostile-name tests); the UTF-8 flag is set for non-ASCII names unless
    ``utf8_flag`` says otherwise.
    """
    entries = bytearray()
    offset = 0
    for i, name in enumerate(names):
        raw = name if isinstance(name, bytes) else name.encode("utf-8")
        size = _size_of(member_size, i)
        utf8 = (not raw.isascii()) if utf8_flag is None else utf8_flag
        flags = 0x800 if utf8 else 0
        extra = b""
        fields = [size, size, offset]
        big = [v >= 0xFFFFFFFF or zip64 is True for v in fields]
        if any(big):
            extra_values = [v for v, b in zip(fields, big, strict=True) if b]
            extra = struct.pack(f"<HH{len(extra_values)}Q", 1, 8 * len(extra_values), *extra_values)
            fields = [0xFFFFFFFF if b else v for v, b in zip(fields, big, strict=True)]
        entries += CENTRAL.pack(
            SIG_CENTRAL, 45 if extra else 20, 45 if extra else 20, flags, 0, 0, 0x21, 0,
            fields[0], fields[1], len(raw), len(extra), 0, 0, 0, 0, fields[2],
        )
        entries += raw + extra
        offset += 30 + len(raw) + size
    cd_offset, cd_size, count = offset, len(entries), len(names)
    tail = bytearray()
    need64 = zip64 is True or count >= 0xFFFF or cd_offset >= 0xFFFFFFFF or cd_size >= 0xFFFFFFFF
    if need64:
        end64_at = cd_offset + cd_size
        tail += END64.pack(SIG_END64, 44, 45, 45, 0, 0, count, count, cd_size, cd_offset)
        tail += LOCATOR64.pack(SIG_LOCATOR64, 0, end64_at, 1)
        count, cd_size, cd_offset = min(count, 0xFFFF), min(cd_size, 0xFFFFFFFF), min(cd_offset, 0xFFFFFFFF)
    tail += END.pack(SIG_END, 0, 0, count, count, cd_size, cd_offset, len(comment)) + comment
    total = offset + len(entries) + len(tail)
    return ServedFile(size=total, reader=sparse_reader(total, {offset: bytes(entries) + bytes(tail)}), content_type="application/zip")


def virtual_zip64(n_members: int = 100_000, total_size: int = 50 * 10**9, *, folder: str = "OCT/volumes") -> tuple[ServedFile, list[str]]:
    """A ZIP64 of about ``total_size`` bytes with ``n_members`` .png members (50 GB, 100,000)."""
    names = [f"{folder}/{i // 1000:03d}/scan_{i:06d}.png" for i in range(n_members)]
    per_member = max(0, total_size // max(1, n_members) - 30 - (len(names[0]) if names else 0))
    return virtual_zip(names, member_size=per_member), names


def virtual_tar(
    members: Sequence[tuple[str, int]],
    *,
    format: int = tarfile.PAX_FORMAT,
) -> ServedFile:
    """A TAR whose headers (made by ``tarfile.TarInfo.tobuf``) sit at the computed offsets and
    whose member data are zeros. Long names and sizes over 8 GiB get pax (or GNU) headers."""
    regions: dict[int, bytes] = {}
    offset = 0
    for name, size in members:
        info = tarfile.TarInfo(name)
        info.size = size
        header = info.tobuf(format, "utf-8", "surrogateescape")
        regions[offset] = header
        offset += len(header) + (size + 511) // 512 * 512
    total = offset + 2 * 512  # the end-of-archive blocks (zeros)
    total = (total + tarfile.RECORDSIZE - 1) // tarfile.RECORDSIZE * tarfile.RECORDSIZE
    return ServedFile(size=total, reader=sparse_reader(total, regions), content_type="application/x-tar")


def virtual_big_tar(n_members: int = 1000, member_size: int = 30 * 10**6, *, folder: str = "fundus") -> tuple[ServedFile, list[str]]:
    """A TAR of ``n_members`` members of ``member_size`` bytes (30 GB by default)."""
    names = [f"{folder}/eye_{i:05d}.tif" for i in range(n_members)]
    return virtual_tar([(n, member_size) for n in names]), names


def virtual_tgz(
    members: Sequence[tuple[str, int]],
    *,
    real_bytes: int = 2 * 1024 * 1024,
    total_size: int = 20 * 10**9,
    seed: int = 1,
) -> tuple[ServedFile, list[str]]:
    """A ``.tar.gz`` claiming ``total_size`` bytes whose first ``real_bytes`` (or more) are a
    real gzip stream of a TAR of the members (random, incompressible data); the rest is
    never meant to be read. Returns the file and the names inside the real part."""
    rng = random.Random(seed)
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = bytearray()
    names: list[str] = []
    for name, size in members:
        info = tarfile.TarInfo(name)
        info.size = size
        out += comp.compress(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        out += comp.compress(rng.randbytes(size) + bytes(-size % 512))
        names.append(name)
        if len(out) >= real_bytes:
            break
    out += comp.flush(zlib.Z_FULL_FLUSH)  # the stream goes on (it has no end in the real part)
    total = max(total_size, len(out))
    return ServedFile(size=total, reader=sparse_reader(total, {0: bytes(out)}), content_type="application/gzip"), names


def repeating_zip64(n_members: int = 10**7, name: bytes = b"frame.png") -> tuple[ServedFile, int]:
    """A ZIP64 declaring ``n_members`` members with a real (virtual) central directory
    of that many copies of one record: 550 MB of directory for 10^7, served from one
    record. Returns the file and the size of one directory record."""
    record = CENTRAL.pack(SIG_CENTRAL, 20, 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0) + name
    cd_size = n_members * len(record)
    tail = (
        END64.pack(SIG_END64, 44, 45, 45, 0, 0, n_members, n_members, cd_size, 0)
        + LOCATOR64.pack(SIG_LOCATOR64, 0, cd_size, 1)
        + END.pack(SIG_END, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    )

    def read(offset: int, length: int) -> bytes:
        out = bytearray()
        if offset < cd_size:
            k = min(length, cd_size - offset)
            start = offset % len(record)
            out += (record * (k // len(record) + 2))[start : start + k]
        if offset + length > cd_size:
            a = max(offset, cd_size) - cd_size
            out += tail[a : a + offset + length - max(offset, cd_size)]
        return bytes(out)

    return ServedFile(size=cd_size + len(tail), reader=read, content_type="application/zip"), len(record)


# --------------------------------------------------------------------------- in-process transport
def local_answer(served: ServedFile, rng: ByteRange, *, ignore_range: bool = False, whole_limit: int = 0) -> Answer:
    """Answer a ByteRange as the local server would, read as ArchivePeekMiddleware reads it:
    a 200 (Range ignored) is cut at ``rng.length`` unless the whole file is at most
    ``whole_limit`` bytes (the peek's byte budget left), which is then read whole."""
    size = served.size
    ranges = None if (ignore_range or served.ignore_range) else parse_range_header(rng.header, size)
    if ranges == []:
        return Answer(b"", 416, f"bytes */{size}", None)
    if not ranges:
        return Answer(served.read(0, size if size <= whole_limit else min(size, rng.length)), 200, None, size)
    a, b = ranges[0]
    return Answer(served.read(a, b - a + 1), 206, f"bytes {a}-{b}/{size}", None)


def peek_local(
    name: str,
    archive: bytes | ServedFile,
    *,
    limits: PeekLimits | None = None,
    ignore_range: bool = False,
    known_size: bool = True,
    log: list[ByteRange] | None = None,
) -> dict[str, Any] | None:
    """Peek into an archive in-process (tests, benchmarks): the result entry, or None when
    the name is not an archive. ``known_size`` passes the size as an API would; ``log``
    collects the ranges asked for."""
    served = archive if isinstance(archive, ServedFile) else ServedFile.from_bytes(archive)
    peeker = make_peeker(name, url=f"/storage/{name}", size=served.size if known_size else None, limits=limits)
    if peeker is None:
        return None

    def fetch(rng: ByteRange) -> Answer:
        if log is not None:
            log.append(rng)
        return local_answer(served, rng, ignore_range=ignore_range, whole_limit=peeker.budget_left)

    return drive(peeker, fetch)


class ServedFileIO(io.RawIOBase):
    """A read-only, seekable file over a ServedFile (for zipfile/tarfile cross-checks)."""

    def __init__(self, served: ServedFile) -> None:
        self.served = served
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.served.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, b) -> int:
        data = self.served.read(self.pos, len(b))
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)
