"""TAR listings (plain: header hopping with Range; compressed: a bounded streamed head).

A TAR has no index: a 512-byte header precedes each member, and the next header sits
at ``offset + 512 + size rounded up to 512``. A plain ``.tar`` is read with a head
request, then small requests that hop straight to later headers, within the request
and byte budgets. ``.tar.gz``/``.tgz`` (and ``.tar.bz2``, ``.tar.xz``) cannot be entered in
the middle: one request reads a bounded compressed head, which is decompressed as a
stream with a cap on the output (decompression bombs), and the members seen are listed;
the listing is complete only when the end-of-archive block was reached.

The headers are parsed here instead of with ``tarfile``, which needs a file object it can
read or seek from the start; a peek has a few disjoint byte ranges, or a head of the
compressed stream whose rest is never fetched. GNU long names (``L``/``K``), pax extended
headers (``x``, and ``g`` for defaults), base-256 sizes and ustar prefixes are understood.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Iterator

from .base import KiB, ByteRange, Chunk, MiB, Peeker

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
REGULAR_TYPES = {b"0", b"\0", b"7", b"S"}
SUPPORTED_TYPES = REGULAR_TYPES | {b"1", b"2", b"3", b"4", b"5", b"6", b"L", b"K", b"x", b"g", b"X", b"V", b"M", b"N", b"D"}
META_TYPES = {b"L", b"K", b"x", b"g", b"X"}
MAX_META_BYTES = 1 * MiB  # a long name or pax header larger than this is treated as corrupt
POSIX_MAGIC = b"ustar\x00"

NAMES = {"gz": "gzip", "bz2": "bzip2", "xz": "xz", "zst": "zstd"}
MAGIC = {
    "gz": b"\x1f\x8b",
    "bz2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
    "zst": b"\x28\xb5\x2f\xfd",
}


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


def _number(field: bytes) -> int | None:
    """A numeric header field: octal ASCII, or GNU base-256 (first byte 0x80)."""
    if field and field[0] & 0x80:
        if field[0] != 0x80:
            return None  # negative base-256 (0xff) or garbage
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _text(raw: bytes) -> tuple[str, bool]:
    """Decode a name (UTF-8, as GNU tar and tarfile write); flag undecodable bytes."""
    raw = raw.split(b"\0", 1)[0]
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), True


def checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156])
    if stored is None:
        return False
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    if stored == unsigned:
        return True
    signed = sum(memoryview(block).cast("b")) - sum(memoryview(block[148:156]).cast("b")) + 8 * 32
    return stored == signed


def parse_pax(data: bytes) -> dict[str, bytes] | None:
    """Records ``"%d key=value\\n"`` of a pax header; None when malformed."""
    out: dict[str, bytes] = {}
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] == 0:
            break
        space = data.find(b" ", pos, pos + 21)
        if space < 0:
            return None
        try:
            length = int(data[pos:space])
        except ValueError:
            return None
        if length <= space - pos + 1 or pos + length > n:
            return None
        record = data[space + 1 : pos + length]
        if not record.endswith(b"\n"):
            return None
        key, eq, value = record[:-1].partition(b"=")
        if not eq:
            return None
        out[key.decode("utf-8", "replace")] = value
        pos += length
    return out


class TarParser:
    """Incremental TAR header parser over bytes at absolute offsets of the TAR stream.

    ``add`` hands it bytes (a later window after a hop, or the next decompressed piece);
    ``run`` parses every header it can and reports what it needs next. It keeps only the
    bytes from the next header on, so memory stays bounded (one header plus at most
    ``MAX_META_BYTES`` of long name / pax data).
    """

    MORE, END, ERROR = "more", "end", "error"

    def __init__(self, listing) -> None:
        self.listing = listing
        self.pos = 0  # absolute offset of the next header
        self.need = BLOCK  # bytes needed from pos to make progress
        self.buf = bytearray()
        self.buf_off = 0
        self.headers = 0
        self.members = 0
        self.error: str | None = None
        self.warnings: list[str] = []
        self._long_name: tuple[str, bool] | None = None
        self._pax: dict[str, bytes] = {}
        self._global_pax: dict[str, bytes] = {}

    @property
    def buf_stop(self) -> int:
        return self.buf_off + len(self.buf)

    def add(self, offset: int, data: bytes) -> None:
        stop = offset + len(data)
        if stop <= self.pos:
            return  # member data we skip
        if self.buf_off <= offset <= self.buf_stop:
            if stop > self.buf_stop:  # continues what we hold
                self.buf += data[self.buf_stop - offset :]
        else:  # a new window (after a hop), or the stream resumes past skipped data
            start = max(offset, self.pos)
            self.buf = bytearray(data[start - offset :])
            self.buf_off = start
        self._trim()

    def _trim(self) -> None:
        if self.buf_off < self.pos:
            drop = min(self.pos - self.buf_off, len(self.buf))
            del self.buf[:drop]
            self.buf_off += drop
            if not self.buf:
                self.buf_off = self.pos

    def _view(self, start: int, length: int) -> bytes | None:
        if start < self.buf_off or start + length > self.buf_stop:
            return None
        a = start - self.buf_off
        return bytes(self.buf[a : a + length])

    def run(self) -> str:
        """Parse what is available: MORE (need ``self.need`` bytes at ``self.pos``), END, ERROR."""
        try:
            while True:
                header = self._view(self.pos, BLOCK)
                if header is None:
                    self.need = BLOCK
                    return self.MORE
                if header == ZERO_BLOCK:
                    return self.END
                if not checksum_ok(header):
                    what = "not a TAR archive: no valid header at byte 0" if self.pos == 0 else (
                        f"corrupt TAR header at byte {self.pos:,} (bad checksum) after {self.members:,} members"
                    )
                    self.error = what
                    return self.ERROR
                kind = header[156:157]
                size = _number(header[124:136])
                if size is None:
                    self.error = f"corrupt TAR header at byte {self.pos:,} (unreadable size field)"
                    return self.ERROR
                if kind in META_TYPES:
                    if size > MAX_META_BYTES:
                        self.error = f"a {size:,}-byte long-name/pax header at byte {self.pos:,} (corrupt or hostile)"
                        return self.ERROR
                    body = self._view(self.pos + BLOCK, size)
                    if body is None:
                        self.need = BLOCK + _padded(size)
                        return self.MORE
                    self._meta(kind, body)
                    self.headers += 1
                    self.pos += BLOCK + _padded(size)
                    continue
                size = self._member(header, kind, size)
                if size is None:
                    return self.ERROR
                self.headers += 1
                self.members += 1
                skip = _padded(size) if (kind in REGULAR_TYPES or kind not in SUPPORTED_TYPES) else 0
                self.pos += BLOCK + skip
        finally:
            self._trim()

    def _meta(self, kind: bytes, body: bytes) -> None:
        if kind == b"L":
            self._long_name = _text(body)
        elif kind in (b"x", b"X"):
            pax = parse_pax(body)
            if pax is None:
                if len(self.warnings) < 5:
                    self.warnings.append(f"malformed pax header before byte {self.pos + BLOCK:,} ignored")
            else:
                self._pax.update(pax)
        elif kind == b"g":
            pax = parse_pax(body)
            if pax is not None:
                self._global_pax.update(pax)
        # K (long link name) only matters for extraction

    def _member(self, header: bytes, kind: bytes, size: int) -> int | None:
        pax = {**self._global_pax, **self._pax} if self._global_pax else self._pax
        raw_path = pax.get("path") or pax.get("GNU.sparse.name")
        if raw_path is not None:
            name, bad = _text(raw_path)
        elif self._long_name is not None:
            name, bad = self._long_name
        else:
            name, bad = _text(header[0:100])
            if header[257:263] == POSIX_MAGIC:
                prefix, bad_prefix = _text(header[345:500])
                if prefix:
                    name, bad = prefix + "/" + name, bad or bad_prefix
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                self.error = f"corrupt pax size {pax['size'][:30]!r} at byte {self.pos:,}"
                return None
            if size < 0:
                self.error = f"negative pax size at byte {self.pos:,}"
                return None
        self._long_name = None
        self._pax = {}
        if kind != b"V":  # a volume label is not a member
            self.listing.add(name, folder=kind == b"5" or name.endswith("/"), suspicious=bad)
        return size


# --------------------------------------------------------------------------- decompression
class Inflater:
    """Streamed decompression with output in bounded pieces (gzip, bzip2, xz).

    Handles concatenated streams (pigz, bgzip, pbzip2, xz -T): a new decompressor starts
    on the bytes after each stream's end when they start another stream.
    """

    PIECE = 256 * KiB

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.produced = 0
        self.ended = False  # the last stream ended cleanly with no more input after it
        self.trailing = False  # non-stream bytes after a stream end
        self._d = self._new()

    def _new(self):
        if self.kind == "gz":
            return zlib.decompressobj(wbits=31)
        if self.kind == "bz2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decompress ``data``, yielding output pieces of at most ``PIECE`` bytes."""
        pending = data
        while True:
            d = self._d
            out = d.decompress(pending, self.PIECE)
            if self.kind == "gz":
                pending = d.unconsumed_tail
                more_output = not pending and len(out) == self.PIECE
            else:
                pending = b""
                more_output = not d.eof and not d.needs_input
            if out:
                self.produced += len(out)
                self.ended = False
                yield out
            if d.eof:
                rest = d.unused_data
                if rest.startswith(MAGIC[self.kind]):
                    self._d = self._new()
                    pending = rest
                    continue
                if rest.strip(b"\0"):
                    self.trailing = True
                self.ended = True
                return
            if not pending and not more_output:
                return


# --------------------------------------------------------------------------- peeker
class TarPeeker(Peeker):
    """Plain TAR (``compression=None``) or a compressed TAR (``"gz"``, ``"bz2"``, ``"xz"``).

    The first bytes decide: a ``.tar`` that is really gzip is read as a stream, a
    ``.tar.gz`` that is really a plain TAR is read by hopping; the result says so.
    """

    HOP_MIN = 4 * KiB

    def __init__(self, name: str, *, compression: str | None = None, **kw) -> None:
        self.compression = compression
        super().__init__(name, **kw)

    @property
    def format(self) -> str:  # type: ignore[override]
        return "tar" if self.compression is None else f"tar.{self.compression}"

    def _start(self) -> None:
        self.parser = TarParser(self.listing)
        self._inflater: Inflater | None = None
        self._sniffed = False
        head = self.limits.compressed_head_bytes if self.compression else self.limits.tar_head_bytes
        head = min(head, self.limits.max_bytes)
        if self.total_size is not None:
            head = min(head, self.total_size)
        self._ask(0, head)

    def _finish(self, reason: str | None = None, *, complete: bool = False) -> None:
        parser = getattr(self, "parser", None)
        for w in parser.warnings if parser is not None else ():
            self._warn(w)
        super()._finish(reason, complete=complete)

    def _on_chunk(self, rng: ByteRange, chunk: Chunk) -> None:
        if not self._sniffed:
            self._sniffed = True
            if not self._sniff(chunk):
                return
        if self.compression is None:
            self.parser.add(chunk.offset, chunk.data)
            self._after_plain(chunk)
        else:
            self._stream(chunk)

    def _sniff(self, chunk: Chunk) -> bool:
        if chunk.offset != 0:
            self._finish(f"the answer starts at byte {chunk.offset:,}, not at the start of the file")
            return False
        head = chunk.data
        found = next((k for k, magic in MAGIC.items() if head.startswith(magic)), None)
        if found == self.compression:
            return True
        named = self.format
        if found == "zst":
            self.compression = "zst"
            self._finish("a zstd-compressed TAR: zstd is not supported by this Python, so it cannot be listed")
            return False
        if found is not None:
            self.compression = found
            self._warn(f"named as {named} but the content is {self.format}; read as {self.format}")
            return True
        if len(head) >= BLOCK and checksum_ok(head[:BLOCK]):
            self.compression = None
            self._warn(f"named as {named} but the content is an uncompressed TAR; read as tar")
            return True
        if self.compression is not None:
            self._finish(f"not {NAMES[self.compression]} data (the file starts with {head[:8].hex(' ') or 'nothing'}): corrupt or misnamed")
            return False
        return True  # let the TAR parser say what is wrong

    def _finished_by(self, state) -> bool:
        """Finish when the header parser reached the end blocks or an error."""
        p = self.parser
        if state == p.END:
            self._finish(complete=True)
        elif state == p.ERROR:
            self._finish(p.error)
        else:
            return False
        return True

    # ------------------------------------------------------------------ plain TAR
    def _after_plain(self, chunk: Chunk) -> None:
        p = self.parser
        state = p.run()
        self.listed = p.members > 0 or state == p.END
        total = self.total_size
        if self._finished_by(state):
            return
        if total is not None and p.pos >= total:
            if p.pos == total:
                self.listed = True
                self._warn("no end-of-archive blocks: the file ends right after its last member")
                self._finish(complete=True)
            else:
                self._finish(f"truncated TAR: the last member needs {p.pos - total:,} bytes past the end of the file")
            return
        if total is not None and p.pos + p.need > total:
            if p.headers == 0:
                self._finish(f"not a TAR archive: the file ({total:,} bytes) is shorter than one header")
                return
            self._finish(f"truncated TAR: a header at byte {p.pos:,} runs past the end of the file ({total:,})")
            return
        if self.range_ignored:
            self._finish(
                f"the server ignored Range (answered 200): listed the members in the first {chunk.stop:,} bytes only"
            )
            return
        # Hop to the next header. Requests cost more than bytes (hosts limit them per
        # minute or hour), so when members are small a hop reads a large window holding
        # several headers; when they are large it reads little more than one header.
        stride = p.pos // max(1, p.headers)
        hop_max = self.limits.tar_hop_max_bytes
        length = max(hop_max if 2 * stride <= hop_max else self.HOP_MIN, p.need)
        if total is not None:
            length = min(length, total - p.pos)
        if self.budget_left < p.need or not self._ask(p.pos, length):
            which = "request" if self.requests >= self.limits.max_requests else "byte"
            of = f" of {total:,}" if total is not None else ""
            self._finish(
                f"the {which} budget ran out ({self.requests} requests, {self.bytes_read:,} bytes): "
                f"listed {p.members:,} members, up to byte {p.pos:,}{of}"
            )

    # ------------------------------------------------------------------ compressed TAR
    def _stream(self, chunk: Chunk) -> None:
        p = self.parser
        if self._inflater is None:
            self._inflater = Inflater(self.compression)
        inflater = self._inflater
        cap = self.limits.max_decompressed_bytes
        state = p.MORE
        try:
            for piece in inflater.feed(chunk.data):
                p.add(inflater.produced - len(piece), piece)
                state = p.run()
                if state != p.MORE:
                    break
                if inflater.produced >= cap:
                    self.listed = p.members > 0
                    self._finish(
                        f"stopped after {inflater.produced:,} decompressed bytes (cap {cap:,}, from "
                        f"{len(chunk.data):,} compressed bytes): {p.members:,} members listed"
                    )
                    return
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            self.listed = p.members > 0
            self._finish(f"corrupt {NAMES[self.compression]} data after {inflater.produced:,} decompressed bytes: {exc}")
            return
        self.listed = p.members > 0 or state == p.END
        if inflater.trailing:
            self._warn(f"bytes after the end of the {NAMES[self.compression]} stream were ignored")
        if self._finished_by(state):
            return
        whole_file = self.total_size is not None and chunk.stop >= self.total_size
        if inflater.ended and whole_file:
            if p.pos == inflater.produced:
                self.listed = True
                self._warn("no end-of-archive blocks: the stream ends right after its last member")
                self._finish(complete=True)
            else:
                self._finish(f"truncated TAR inside a complete {NAMES[self.compression]} stream ({p.members:,} members listed)")
            return
        if whole_file:
            self._finish(f"the {NAMES[self.compression]} stream is truncated: it stops after {inflater.produced:,} bytes of TAR")
            return
        size = f"{self.total_size:,}" if self.total_size is not None else "an unknown number of"
        self._finish(
            f"{NAMES[self.compression]} has no index: listed the members in the first {chunk.stop:,} of {size} "
            f"compressed bytes ({inflater.produced:,} bytes of TAR)"
        )
