"""Listing the members of remote archives with HTTP Range requests (sans I/O).

The archive-peek middleware drives one peeker per archive file::

    peeker = make_peeker(file["name"], url=file["url"], size=file["size_bytes"], limits=limits)
    if peeker is not None:                      # None: not an archive
        while (rng := peeker.next_request()) is not None:
            # GET url with headers {"Range": rng.header, "Accept-Encoding": "identity"},
            # dont_filter, dont_cache, redirects followed with Range kept, and the body cut
            # at rng.length bytes even when the server ignores Range and answers 200.
            peeker.feed(body, status=status, content_range=headers.get("Content-Range"),
                        total_size=content_length_of_a_200_or_None)
            # ... or peeker.fail("timeout") when the request failed for good.
        item["archives"].append(peeker.result())
    fold_archives(item, item["archives"])       # file_types and the counts

``feed`` and ``fail`` never raise on bad input: broken or hostile archives end the peek
with ``reason`` in the result. Parsing is CPU work (a 16 MiB ZIP directory is ~350,000
records): a reactor-bound caller may run ``feed`` in a thread.

Costs: ZIP and ZIP64 take 1 request when the central directory lies in the tail, else 2,
and read at most tail + directory (capped at ``max_bytes``). A plain TAR takes a head
request and hops to later headers within ``max_requests``/``max_bytes``. A compressed TAR
takes one request for its compressed head. Not-listable kinds take none.

The result entry (``peeker.result()``, one per archive in ``item["archives"]``):

=======================  ==================================================================
name, url                as given to ``make_peeker``
format                   zip, zip64, tar, tar.gz, tar.bz2, tar.xz (what the bytes are), or
                         for kinds not listed: 7z, rar, gz, bz2, xz, zst, tar.zst, split,
                         zip-split
listable                 False for kinds that are never listed (no request was made)
listed                   True when members were read (possibly not all of them)
complete                 True when every member was listed
member_count             members (files and folders) in the archive: the ZIP end record's
                         count when the directory was cut at the budget; the number seen
                         when a TAR listing is incomplete (a lower bound); None when unknown
members_listed           members actually read
folder_count             folder entries among them
members_sample           first ``sample_size`` file names (folders skipped), made safe to show
extension_counts         {".png": 1180, ".csv": 34, "": 2} over the listed files' basenames
extension_overflow       files whose (unknown) extension was not counted (over 1,000 kinds)
imaging_count, medical_count, genomics_count, archive_count
                         listed files per category of ``envision_spiders.filetypes``
suspicious_name_count    names with ``..``, absolute paths, NUL/control chars, bad encoding
bytes_read, requests     what the peek cost
total_size               file size in bytes from the server (or the API), None if unknown
reason                   why it is not listed or not complete (None otherwise)
warnings                 oddities that did not stop the listing (list of strings)
=======================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, NamedTuple

from envision_spiders.filetypes import ARCHIVE, category_of_extension, file_extension, summarize_files

from .base import ZIP_TAIL_BYTES, ByteRange, NotListable, Peeker, PeekLimits, display_name, parse_content_range
from .tarformat import TarPeeker
from .zipformat import ZipPeeker

__all__ = [
    "ZIP_TAIL_BYTES",
    "Answer",
    "ByteRange",
    "NotListable",
    "PeekLimits",
    "Peeker",
    "TarPeeker",
    "ZipPeeker",
    "display_name",
    "drive",
    "fold_archives",
    "make_peeker",
    "parse_content_range",
]

_TAR_COMPRESSION = {
    ".tar": None,
    ".tar.gz": "gz",
    ".tgz": "gz",
    ".tar.bz2": "bz2",
    ".tbz2": "bz2",
    ".tar.xz": "xz",
    ".txz": "xz",
}
_NOT_LISTED = {
    ".7z": ("7z", "a 7-Zip archive: its directory is compressed (often encrypted) and cannot be read with Range requests"),
    ".rar": ("rar", "a RAR archive: it has no central directory to read with Range requests"),
    ".tar.zst": ("tar.zst", "a zstd-compressed TAR: zstd is not supported by this Python, so it cannot be listed"),
    ".gz": ("gz", "a single gzip-compressed file, not an archive of members"),
    ".bz2": ("bz2", "a single bzip2-compressed file, not an archive of members"),
    ".xz": ("xz", "a single xz-compressed file, not an archive of members"),
    ".zst": ("zst", "a single zstd-compressed file, not an archive of members"),
}


def make_peeker(name: str, *, url: str | None = None, size: int | None = None, limits: PeekLimits | None = None) -> Peeker | None:
    """The peeker for a file by its name (basename extension), or None if not an archive.

    Kinds that cannot be listed (7z, rar, single-file .gz/.bz2/.xz/.zst, .tar.zst and
    parts of split archives such as .z01 or .zip.001) get a peeker that makes no request
    and whose result gives the reason.
    """
    ext = file_extension(name)
    kw: dict[str, Any] = {"url": url, "size": size, "limits": limits}
    if ext in (".zip", ".zipx"):
        return ZipPeeker(name, **kw)
    if ext in _TAR_COMPRESSION:
        return TarPeeker(name, compression=_TAR_COMPRESSION[ext], **kw)
    if ext in _NOT_LISTED:
        fmt, reason = _NOT_LISTED[ext]
        return NotListable(name, format=fmt, reason=reason, **kw)
    if category_of_extension(ext) == ARCHIVE:  # .z01, .zip.001, .7z.002, .part1.rar, ...
        return NotListable(
            name,
            format="split",
            reason=f"one part ({ext}) of a split archive: members can only be listed from all parts together",
            **kw,
        )
    return None


class Answer(NamedTuple):
    """What a transport returns to :func:`drive` for one ByteRange."""

    data: bytes
    status: int
    content_range: str | None = None
    total_size: int | None = None


def drive(peeker: Peeker, fetch: Callable[[ByteRange], Answer]) -> dict[str, Any]:
    """Run a peeker to the end with a blocking ``fetch`` (tests, benchmarks, scripts).

    An exception from ``fetch`` fails the pending request with its message.
    """
    while (rng := peeker.next_request()) is not None:
        try:
            answer = fetch(rng)
        except Exception as exc:
            peeker.fail(f"{type(exc).__name__}: {exc}")
            continue
        peeker.feed(answer.data, status=answer.status, content_range=answer.content_range, total_size=answer.total_size)
    return peeker.result()


def fold_archives(item: MutableMapping[str, Any], archives: list[dict[str, Any]]) -> None:
    """Store the archive entries on an item (a dict or an ItemAdapter) and re-derive its
    file statistics (``file_types``, ``img_count``, ``medical_count``, ``archive_count``,
    ``genomics_count``, ...) from its files plus the listed members, with
    :func:`envision_spiders.filetypes.summarize_files`."""
    item["archives"] = list(archives)
    item.update(summarize_files(item.get("files") or [], item["archives"]))
