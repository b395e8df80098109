"""What every archive peeker shares: the request type, the limits, the driver protocol,
the bounded member accumulator and the result entry.

A peeker is a sans-I/O state machine. The caller (the archive-peek middleware, a test,
a benchmark) runs one loop::

    while (rng := peeker.next_request()) is not None:
        answer = download(url, headers={"Range": rng.header}, max_body=rng.length)
        peeker.feed(answer.body, status=answer.status,
                    content_range=answer.headers.get("Content-Range"),
                    total_size=answer.content_length_if_200)
    entry = peeker.result()

and calls ``peeker.fail(reason)`` instead of ``feed`` when a request could not be made
(network error, retries exhausted). Nothing here performs I/O or raises on bad input:
hostile or broken archives end with ``reason`` set in the result.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from envision_spiders.filetypes import ARCHIVE, GENOMICS, IMAGING, MEDICAL, category_of_extension, file_extension

logger = logging.getLogger(__name__)

KiB = 1024
MiB = 1024 * KiB

# End of central directory (22 bytes) + the longest comment (65,535) + the ZIP64 locator (20)
# + the fixed part of the ZIP64 end record (56): a tail this long always holds every end
# record of a standard ZIP, so the directory is the only thing a second request may need.
# (A flat 64 KiB would miss the end record of an archive with a comment over 65,514 bytes.)
ZIP_TAIL_BYTES = 22 + 65_535 + 20 + 56


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One Range request: ``start`` None means a suffix range (the last ``length`` bytes).

    ``length`` is also the most body bytes the caller may read for this request whatever
    the status: a server that ignores Range and answers 200 must be cut there.
    """

    start: int | None
    length: int

    @classmethod
    def suffix(cls, length: int) -> ByteRange:
        return cls(None, length)

    @classmethod
    def span(cls, start: int, length: int) -> ByteRange:
        return cls(start, length)

    @property
    def end(self) -> int | None:
        """Inclusive last byte, None for a suffix range."""
        return None if self.start is None else self.start + self.length - 1

    @property
    def header(self) -> str:
        """The value of the ``Range`` header."""
        if self.start is None:
            return f"bytes=-{self.length}"
        return f"bytes={self.start}-{self.start + self.length - 1}"

    def __str__(self) -> str:
        return self.header


@dataclass(frozen=True, slots=True)
class PeekLimits:
    """Budgets of one archive peek. ``max_bytes`` bounds the body bytes of all requests."""

    max_bytes: int = 16 * MiB  # ARCHIVE_PEEK_MAX_BYTES
    max_requests: int = 8  # per archive; ZIP never needs more than 2
    zip_tail_bytes: int = ZIP_TAIL_BYTES
    tar_head_bytes: int = 1 * MiB  # first request of a plain TAR
    tar_hop_max_bytes: int = 1 * MiB  # largest later request of a plain TAR
    compressed_head_bytes: int = 1 * MiB  # compressed bytes read of a .tar.gz/.tar.bz2/.tar.xz
    max_decompressed_bytes: int = 128 * MiB  # output cap of that head (decompression bombs)
    sample_size: int = 50  # member names kept in ``members_sample``

    @classmethod
    def from_settings(cls, settings: Any) -> PeekLimits:
        """Limits from Scrapy settings (``ARCHIVE_PEEK_MAX_BYTES``, ``ARCHIVE_PEEK_MAX_REQUESTS``)."""
        default = cls()
        return cls(
            max_bytes=settings.getint("ARCHIVE_PEEK_MAX_BYTES", default.max_bytes),
            max_requests=settings.getint("ARCHIVE_PEEK_MAX_REQUESTS", default.max_requests),
        )


# --------------------------------------------------------------------------- names
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_ODD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffd\\\\]")
MAX_NAME_CHARS = 300


def display_name(name: str) -> tuple[str, bool]:
    """A member name made safe to show and count, and whether it looked hostile.

    Cuts at the first NUL (as zipfile and tarfile do), turns backslashes into slashes,
    replaces control and bidi-override characters with U+FFFD, drops a leading slash or
    drive letter and every ``.``/``..`` component, and shortens very long names. The
    flag is set for NUL/control characters, absolute paths, ``..`` components, and names
    that already hold U+FFFD (bytes that did not decode).
    """
    if (
        len(name) <= MAX_NAME_CHARS
        and not name.startswith((".", "/"))
        and name[1:2] != ":"
        and "//" not in name
        and "/." not in name
        and not name.endswith("/")
        and not _ODD_CHARS.search(name)
    ):
        return name, False  # nothing to change or flag: the common case, and the fast one
    suspicious = "\ufffd" in name
    if "\x00" in name:
        name = name.split("\x00", 1)[0]
        suspicious = True
    name = name.replace("\\", "/")
    if _CONTROL.search(name):
        name = _CONTROL.sub("\ufffd", name)
        suspicious = True
    if name.startswith("/") or _DRIVE.match(name):
        suspicious = True
        name = _DRIVE.sub("", name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        suspicious = True
        parts = [p for p in parts if p != ".."]
    shown = "/".join(parts)
    if len(shown) > MAX_NAME_CHARS:
        shown = shown[: MAX_NAME_CHARS - 1] + "\u2026"
    return shown, suspicious


class Listing:
    """Counts members as they are found, keeping a bounded sample and bounded counters.

    Memory does not grow with the number of members: the sample has ``sample_size``
    names and the per-extension counter at most ``MAX_EXTENSIONS`` keys (every extension
    of the project's table always gets its key; only unknown ones can overflow).
    """

    MAX_EXTENSIONS = 1000

    def __init__(self, sample_size: int) -> None:
        self.sample_size = sample_size
        self.entries = 0  # files and folders
        self.folders = 0
        self.suspicious = 0
        self.sample: list[str] = []
        self.extensions: Counter = Counter()
        self.extension_overflow = 0
        self.categories: Counter = Counter()

    def add(self, name: str, *, folder: bool = False, suspicious: bool = False) -> None:
        self.entries += 1
        shown, odd = display_name(name)
        if odd or suspicious:
            self.suspicious += 1
        if folder:
            self.folders += 1
            return
        if len(self.sample) < self.sample_size:
            self.sample.append(shown)
        ext = file_extension(shown)
        cat = category_of_extension(ext)
        if cat:
            self.categories[cat] += 1
        if cat or ext in self.extensions or len(self.extensions) < self.MAX_EXTENSIONS:
            self.extensions[ext] += 1
        else:
            self.extension_overflow += 1


# --------------------------------------------------------------------------- answers
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)\s*-\s*(\d+)|\*)\s*/\s*(\d+|\*)\s*$", re.IGNORECASE)


def parse_content_range(value: str | bytes | None) -> tuple[int | None, int | None, int | None] | None:
    """``bytes a-b/N`` -> (a, b, N); ``*`` parts are None; None when malformed.

    Accepts bytes as well (Scrapy's header values are bytes).
    """
    if not value:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    m = _CONTENT_RANGE.match(value)
    if not m:
        return None
    a, b, total = m.groups()
    first = int(a) if a is not None else None
    last = int(b) if b is not None else None
    if first is not None and last is not None and last < first:
        return None
    return first, last, (int(total) if total != "*" else None)


def _as_size(value: int | str | bytes | None) -> int | None:
    """A size from an int or a Content-Length header value; None when absent or invalid."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if value.isascii() and value.isdigit() else None
    return value if isinstance(value, int) and value >= 0 else None


@dataclass(slots=True)
class Chunk:
    """Bytes of the archive at an absolute offset, and the file size when known."""

    offset: int
    data: bytes
    total: int | None

    @property
    def stop(self) -> int:
        return self.offset + len(self.data)

    def slice(self, start: int, stop: int) -> memoryview:
        """The bytes of [start, stop) this chunk holds, without copying (may be shorter,
        or empty when the chunk does not hold ``start``)."""
        a = start - self.offset
        b = min(stop, self.stop) - self.offset
        if a < 0 or b <= a:
            return memoryview(b"")
        return memoryview(self.data)[a:b]


# --------------------------------------------------------------------------- peekers
class Peeker:
    """Base of the per-format state machines (see the module docstring for the loop)."""

    format = ""
    listable = True  # False for the kinds make_peeker knows but cannot list (NotListable)

    def __init__(self, name: str, *, url: str | None = None, size: int | None = None, limits: PeekLimits | None = None) -> None:
        self.name = name
        self.url = url
        self.limits = limits or PeekLimits()
        # An API size of 0 is often "unknown"; the server's answer tells the truth.
        self.total_size: int | None = size if isinstance(size, int) and size > 0 else None
        self._api_size = self.total_size
        self.listing = Listing(self.limits.sample_size)
        self.requests = 0
        self.bytes_read = 0
        self.listed = False
        self.complete = False
        self.member_count: int | None = None
        self.reason: str | None = None
        self.warnings: list[str] = []
        self.range_ignored = False
        self._pending: ByteRange | None = None
        self._done = False
        try:
            self._start()
        except Exception as exc:  # never let a bug here stop the crawl
            self._internal_error(exc)

    # -- the driver protocol ------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._done

    def next_request(self) -> ByteRange | None:
        """The request to make next, or None when the peek is over. Idempotent."""
        return None if self._done else self._pending

    def feed(
        self,
        data: bytes,
        *,
        status: int,
        content_range: str | bytes | None = None,
        total_size: int | str | bytes | None = None,
    ) -> None:
        """Hand over the answer to :meth:`next_request`'s range.

        ``data`` is the body (cut at the range's ``length`` if the server sent more —
        except a 200 whose whole file fits in :attr:`budget_left`, which may be given
        whole: a small file behind a server that ignores Range is then read like one
        smaller than the tail), ``status`` the HTTP status, ``content_range`` the
        ``Content-Range`` header, and ``total_size`` the file size if the caller knows it
        otherwise (the ``Content-Length`` of a 200 that ignored Range). Header values may
        be given as Scrapy holds them (bytes).
        """
        whole = _as_size(total_size) if status == 200 else None
        keep = whole if whole is not None and whole <= self.budget_left else None
        rng = self._take()
        data = data[: max(rng.length, keep or 0)]
        self.bytes_read += len(data)
        try:
            chunk = self._accept(rng, bytes(data), status, content_range, total_size)
            if chunk is not None:
                self._on_chunk(rng, chunk)
        except Exception as exc:  # never let a bug here stop the crawl
            self._internal_error(exc)
        if not self._done and self._pending is None:
            self._finish("the peek stopped without a reason (bug)")

    def fail(self, reason: str) -> None:
        """The pending request could not be answered (network error, retries exhausted)."""
        if self._done:
            return
        self._take()
        self._finish(f"request {self.requests} ({self.url or self.name}) failed: {reason}")

    def result(self) -> dict[str, Any]:
        """The ``archives`` entry of the item (see the package docstring for the keys)."""
        lst = self.listing
        member_count = self.member_count
        if member_count is None and self.listed:
            member_count = lst.entries
        return {
            "name": self.name,
            "url": self.url,
            "format": self.format,
            "listable": self.listable,
            "listed": self.listed,
            "complete": self.complete,
            "member_count": member_count,
            "members_listed": lst.entries,
            "folder_count": lst.folders,
            "members_sample": list(lst.sample),
            "extension_counts": dict(sorted(lst.extensions.items(), key=lambda kv: (-kv[1], kv[0]))),
            "extension_overflow": lst.extension_overflow,
            "imaging_count": lst.categories[IMAGING],
            "medical_count": lst.categories[MEDICAL],
            "genomics_count": lst.categories[GENOMICS],
            "archive_count": lst.categories[ARCHIVE],
            "suspicious_name_count": lst.suspicious,
            "bytes_read": self.bytes_read,
            "requests": self.requests,
            "total_size": self.total_size,
            "reason": self.reason,
            "warnings": list(self.warnings),
        }

    # -- for subclasses --------------------------------------------------------------
    def _start(self) -> None:
        raise NotImplementedError

    def _on_chunk(self, rng: ByteRange, chunk: Chunk) -> None:
        raise NotImplementedError

    @property
    def budget_left(self) -> int:
        return self.limits.max_bytes - self.bytes_read

    def _ask(self, start: int | None, length: int) -> bool:
        """Queue the next request within the budgets; False (nothing queued) when over."""
        if self.requests >= self.limits.max_requests:
            return False
        length = min(length, self.budget_left)
        if length <= 0:
            return False
        self._pending = ByteRange(start, length)
        return True

    def _finish(self, reason: str | None = None, *, complete: bool = False) -> None:
        self._pending = None
        self._done = True
        self.complete = complete and self.listed
        if reason and not self.reason:
            self.reason = reason

    def _warn(self, message: str) -> None:
        if message not in self.warnings and len(self.warnings) < 20:
            self.warnings.append(message)

    def _take(self) -> ByteRange:
        if self._done or self._pending is None:
            raise RuntimeError(f"{type(self).__name__}: no request is pending")
        rng = self._pending
        self._pending = None
        self.requests += 1
        return rng

    def _internal_error(self, exc: Exception) -> None:
        logger.exception("Archive peek of %s (%s) stopped on an internal error", self.name, self.url)
        self._finish(f"internal error while reading the archive: {exc!r}", complete=False)

    def _accept(
        self, rng: ByteRange, data: bytes, status: int, content_range: str | bytes | None, total_size: int | str | bytes | None
    ) -> Chunk | None:
        """Turn an answer into a Chunk, or finish the peek with the reason it is unusable."""
        if status == 206:
            parsed = parse_content_range(content_range)
            if parsed is None or parsed[0] is None:
                if rng.start is None or content_range:
                    self._finish(f"206 answer without a valid Content-Range ({content_range!r})")
                    return None
                self._warn("206 answer without Content-Range; assumed it holds the range asked for")
                parsed = (rng.start, rng.start + len(data) - 1, None)
            first, last, total = parsed
            data = data[: last - first + 1]
            if total is not None:
                if self.total_size is not None and self.requests > 1 and total != self.total_size:
                    self._finish(f"the file changed size between requests ({self.total_size:,} then {total:,} bytes)")
                    return None
                if self.requests == 1 and self._api_size is not None and total != self._api_size:
                    self._warn(f"the server says the file has {total:,} bytes, the API said {self._api_size:,}")
                self.total_size = total
            return Chunk(first, data, total if total is not None else self.total_size)
        if status == 200:
            # A server that ignores Range sends the file from its first byte; the caller
            # stopped reading at rng.length, so the body is whole only if shorter.
            self.range_ignored = True
            total = _as_size(total_size)
            if total is None and len(data) < rng.length:
                total = len(data)
            if total is not None:
                self.total_size = total
            if total is None or total > len(data):
                self._warn(f"the server ignored Range and answered 200 (read {len(data):,} bytes, then stopped)")
            return Chunk(0, data, total)
        if status == 416:
            parsed = parse_content_range(content_range)
            if parsed is not None and parsed[2] is not None:
                self.total_size = parsed[2]
                if parsed[2] == 0:
                    self._finish("empty file (0 bytes)")
                    return None
            self._finish(f"HTTP 416: range {rng.header} not satisfiable (file size {self.total_size})")
            return None
        self._finish(f"HTTP {status} for range {rng.header}")
        return None


class NotListable(Peeker):
    """A known archive kind we do not list (no request; the result says why)."""

    listable = False

    def __init__(self, name: str, *, format: str, reason: str, url: str | None = None, size: int | None = None, limits: PeekLimits | None = None) -> None:
        self.format = format
        self._why = reason
        super().__init__(name, url=url, size=size, limits=limits)

    def _start(self) -> None:
        self._finish(self._why)

    def _on_chunk(self, rng: ByteRange, chunk: Chunk) -> None:  # pragma: no cover - never asks
        raise AssertionError("NotListable never requests anything")
