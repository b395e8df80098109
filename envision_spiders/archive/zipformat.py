"""ZIP and ZIP64 listings from the end of the file: at most two Range requests.

1. A suffix request for the tail (``ZIP_TAIL_BYTES``, or the whole file when smaller);
   the 206's ``Content-Range`` gives the file size, so no HEAD is needed. The tail always
   holds the end-of-central-directory record (whatever the comment length), the ZIP64
   locator and the ZIP64 end record.
2. When the central directory starts before the tail: one request for the part of it
   that is missing, cut at the byte budget. A directory larger than the budget is parsed
   as far as it goes and the listing is marked incomplete, keeping the member count of
   the end record.

The records are parsed here with ``struct`` rather than with ``zipfile``: zipfile needs a
seekable file holding the whole archive and reads local headers when it opens members,
while a remote peek has only two disjoint byte ranges of the file. Nothing is ever
decompressed, so zip bombs cost nothing. Locating the directory follows zipfile's own
rule (it ends where the end records begin, ``start = end - size``), which also lists
self-extracting archives and archives with bytes in front.
"""

from __future__ import annotations

import struct
import zlib

from .base import Chunk, ByteRange, Peeker

SIG_CENTRAL = b"PK\x01\x02"
SIG_END = b"PK\x05\x06"
SIG_END64 = b"PK\x06\x06"
SIG_LOCATOR64 = b"PK\x06\x07"
SIG_DIGITAL_SIGNATURE = b"PK\x05\x05"

END = struct.Struct("<4s4H2LH")  # 22 bytes
LOCATOR64 = struct.Struct("<4sLQL")  # 20 bytes
END64 = struct.Struct("<4sQ2H2L4Q")  # 56 bytes (fixed part)
CENTRAL = struct.Struct("<4s6H3L5H2L")  # 46 bytes + name + extra + comment
MAX_COMMENT = 0xFFFF
FLAG_UTF8 = 0x800
EXTRA_UNICODE_PATH = 0x7075  # Info-ZIP Unicode Path Extra Field


def find_end_record(data: bytes) -> tuple[int, bool] | None:
    """Position of the end-of-central-directory record in ``data`` (the file's tail).

    Prefers a record whose comment ends exactly at the end of the file (a signature
    inside a comment or member data cannot fake that); else the last signature whose
    22 bytes fit (an archive with junk appended), flagged ``exact=False``.
    """
    n = len(data)
    lowest = max(0, n - END.size - MAX_COMMENT)
    lenient = None
    pos = n - END.size
    while pos >= lowest:
        pos = data.rfind(SIG_END, lowest, pos + 4)
        if pos < 0:
            break
        comment_len = END.unpack_from(data, pos)[7]
        if pos + END.size + comment_len == n:
            return pos, True
        if lenient is None:
            lenient = pos
        pos -= 1
    return (lenient, False) if lenient is not None else None


def unicode_path(extra: bytes, raw_name: bytes) -> str | None:
    """The UTF-8 name of an Info-ZIP Unicode Path extra field, if it matches ``raw_name``."""
    pos = 0
    while pos + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if header_id == EXTRA_UNICODE_PATH and len(body) >= 5 and body[0] == 1:
            if struct.unpack_from("<L", body, 1)[0] == zlib.crc32(raw_name):
                try:
                    return body[5:].decode("utf-8")
                except UnicodeDecodeError:
                    return None
            return None
        pos += 4 + size
    return None


class ZipPeeker(Peeker):
    format = "zip"

    def _start(self) -> None:
        tail = min(self.limits.zip_tail_bytes, self.limits.max_bytes)
        if self.total_size is not None:
            tail = min(tail, self.total_size)
        self._state = "tail"
        self._declared: int | None = None
        self._tail: Chunk | None = None
        self._cd_start = self._cd_end = self._cd_size = self._cd_offset_claimed = 0
        self._ask(None, tail)

    # ------------------------------------------------------------------ answers
    def _on_chunk(self, rng: ByteRange, chunk: Chunk) -> None:
        if self._state == "tail":
            self._on_tail(chunk)
        else:
            self._on_directory(chunk)

    def _on_tail(self, chunk: Chunk) -> None:
        total = chunk.total if chunk.total is not None else chunk.stop
        self.total_size = total
        if chunk.stop < total:
            if self.range_ignored:
                self._finish(
                    f"the server ignored Range (answered 200) and the file ({total:,} bytes) is larger than "
                    f"the {len(chunk.data):,} bytes read: the end of the ZIP is out of reach"
                )
            else:
                self._finish(f"the answer ends at byte {chunk.stop:,}, not at the end of the file ({total:,})")
            return
        found = find_end_record(chunk.data)
        if found is None:
            if self.range_ignored and chunk.total is None:
                self._finish(
                    f"the server ignored Range (answered 200) and the first {len(chunk.data):,} bytes read "
                    "hold no end of a ZIP: the end of the file is out of reach"
                )
                return
            where = "the file" if chunk.offset == 0 else f"the last {len(chunk.data):,} bytes"
            self._finish(f"no end-of-central-directory record in {where}: not a ZIP file, or truncated")
            return
        pos, exact = found
        if not exact:
            self._warn("bytes after the end-of-central-directory record (junk appended, or a wrong comment length)")
        if not self._read_end_records(chunk, pos):
            return
        start, end = self._cd_start, self._cd_end
        if start >= chunk.offset:
            self._tail = None
            self._parse_directory(chunk.slice(start, end), whole=True, fallback=chunk)
            return
        # The directory starts before the tail: one request for the part that is missing.
        self._tail = chunk
        self._state = "directory"
        self.member_count = self._bounded_count()  # until the directory says better
        missing_stop = min(end, chunk.offset)
        if not self._ask(start, missing_stop - start):
            self._finish(
                f"the central directory ({self._cd_size:,} bytes) does not fit in the peek budget "
                f"({self.limits.max_bytes:,} bytes, {self.limits.max_requests} requests)"
            )

    def _on_directory(self, chunk: Chunk) -> None:
        start, end = self._cd_start, self._cd_end
        tail = self._tail
        assert tail is not None
        missing_stop = min(end, tail.offset)
        part = chunk.slice(start, missing_stop)
        if not part:
            self.member_count = self._bounded_count()
            why = "the server ignored Range (answered 200)" if self.range_ignored else f"the answer starts at byte {chunk.offset:,}"
            self._finish(f"{why}: the central directory at byte {start:,} was not received")
            return
        if start + len(part) == missing_stop:
            rest = tail.slice(missing_stop, end)
            self._parse_directory(bytes(part) + rest if rest else part, whole=True)
        else:
            self._parse_directory(part, whole=False)

    # ------------------------------------------------------------------ end records
    def _read_end_records(self, chunk: Chunk, pos: int) -> bool:
        """Read the end record (and ZIP64 ones); set the directory span. False: finished."""
        data, base = chunk.data, chunk.offset
        _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, _ = END.unpack_from(data, pos)
        end_at = base + pos
        cd_end = end_at
        saturated = 0xFFFF in (disk, cd_disk, n_disk, n_total) or 0xFFFFFFFF in (cd_size, cd_offset)
        loc = pos - LOCATOR64.size
        if loc >= 0 and data[loc : loc + 4] == SIG_LOCATOR64:
            _, _, z_offset, z_disks = LOCATOR64.unpack_from(data, loc)
            # The ZIP64 end record sits right before the locator (zipfile assumes so too);
            # the locator's own offset is wrong when bytes were prepended to the archive.
            record = None
            for cand in (base + loc - END64.size, z_offset):
                if cand >= base and cand + END64.size <= base + loc and chunk.slice(cand, cand + 4) == SIG_END64:
                    record = cand
                    break
            if record is None:
                if saturated:
                    self._finish(
                        f"the ZIP64 locator points to byte {z_offset:,} but no ZIP64 end record is there: "
                        "the member count and directory position cannot be read"
                    )
                    return False
                self._warn("a ZIP64 locator without its ZIP64 end record; used the classic end record")
            else:
                fields = END64.unpack_from(data, record - base)
                _, _, _, _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset = fields
                cd_end = record
                self.format = "zip64"
                if z_disks > 1:
                    disk = max(disk, z_disks - 1)
        elif saturated and (n_total == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF):
            self._warn("end record fields are at their 16/32-bit maximum but there is no ZIP64 locator")
        if cd_disk != disk:
            self.format = "zip-split"
            self._finish(
                f"a part of a split (multi-volume) ZIP: its directory starts in an earlier part "
                f"(part {cd_disk + 1} of {disk + 1}); the parts .z01, .z02, ... are needed to list it"
            )
            return False
        if disk:
            self._warn(f"the last part ({disk + 1}) of a split ZIP; listed the directory it holds")
        self._declared = n_total
        if cd_size > cd_end:
            self.member_count = None
            self._finish(
                f"the end record gives a central directory of {cd_size:,} bytes ending at byte {cd_end:,}: "
                "it would start before the file does (corrupt or lying end record)"
            )
            return False
        start = cd_end - cd_size
        if cd_offset != start:
            if cd_offset < start:
                self._warn(f"{start - cd_offset:,} bytes precede the archive (self-extractor or prefixed data)")
            else:
                self._warn(
                    f"the end record puts the directory at byte {cd_offset:,}, past where it must start "
                    f"({start:,}); read it where it ends, at the end records"
                )
        self._cd_start, self._cd_end, self._cd_size = start, cd_end, cd_size
        self._cd_offset_claimed = cd_offset
        if n_total > cd_size // CENTRAL.size:
            self._warn(
                f"the end record declares {n_total:,} members but a {cd_size:,}-byte directory holds at most "
                f"{cd_size // CENTRAL.size:,}"
            )
        return True

    def _bounded_count(self) -> int | None:
        """The declared member count, bounded by what the directory size can hold."""
        if self._declared is None:
            return None
        return max(self.listing.entries, min(self._declared, self._cd_size // CENTRAL.size))

    # ------------------------------------------------------------------ directory
    def _parse_directory(self, buf: bytes | memoryview, *, whole: bool, fallback: Chunk | None = None) -> None:
        parsed, error = self._parse_records(buf, whole=whole)
        if (
            parsed == 0
            and error
            and fallback is not None
            and self._cd_offset_claimed != self._cd_start
            and fallback.offset <= self._cd_offset_claimed
            and self._cd_offset_claimed + self._cd_size <= self._cd_end
        ):
            # Junk between the directory and the end record: try the offset the record gives.
            claimed = self._cd_offset_claimed
            again, error2 = self._parse_records(fallback.slice(claimed, claimed + self._cd_size), whole=True)
            if again:
                parsed, error = again, error2
                self._warn(f"the directory sits at byte {claimed:,}, not right before the end records")
        self.listed = parsed > 0 or (error is None and whole)
        declared = self._declared or 0
        if error:
            self.member_count = self._bounded_count()
            self._finish(f"{error}; listed {parsed:,} of {self.member_count:,} declared members")
            return
        if not whole:
            self.member_count = self._bounded_count()
            self._finish(
                f"the central directory ({self._cd_size:,} bytes) is larger than the peek budget "
                f"({self.limits.max_bytes:,} bytes): listed the first {parsed:,} of {self.member_count:,} members"
            )
            return
        self.member_count = parsed
        if parsed != declared and not (self.format == "zip" and parsed % 0x10000 == declared):
            self._warn(f"the end record declares {declared:,} members; the directory holds {parsed:,}")
        self._finish(complete=True)

    def _parse_records(self, buf: bytes | memoryview, *, whole: bool) -> tuple[int, str | None]:
        """Parse central directory records into the listing: (records parsed, error or None)."""
        add = self.listing.add
        size = CENTRAL.size
        unpack = CENTRAL.unpack_from
        n = len(buf)
        pos = 0
        parsed = 0
        while pos + 4 <= n:
            if pos + size <= n:
                fields = unpack(buf, pos)
                sig = fields[0]
            else:
                fields, sig = None, bytes(buf[pos : pos + 4])
            if sig != SIG_CENTRAL:
                if sig in (SIG_DIGITAL_SIGNATURE, SIG_END64, SIG_END):
                    break
                return parsed, f"corrupt central directory: no record signature at byte {self._cd_start + pos:,} (record {parsed + 1:,})"
            if fields is None:
                if whole:
                    return parsed, f"the central directory ends inside record {parsed + 1:,}"
                break
            flags, name_len, extra_len, comment_len = fields[3], fields[10], fields[11], fields[12]
            stop = pos + size + name_len + extra_len + comment_len
            if stop > n:
                if whole:
                    return parsed, f"the central directory ends inside record {parsed + 1:,}"
                break
            raw = bytes(buf[pos + size : pos + size + name_len])
            bad = False
            if flags & FLAG_UTF8:
                try:
                    name = raw.decode("utf-8")
                except UnicodeDecodeError:
                    name, bad = raw.decode("utf-8", "replace"), True
            else:
                name = None
                if extra_len:
                    name = unicode_path(bytes(buf[pos + size + name_len : pos + size + name_len + extra_len]), raw)
                if name is None:
                    name = raw.decode("cp437")
            add(name, folder=name.endswith(("/", "\\")), suspicious=bad)
            parsed += 1
            pos = stop
        return parsed, None
