"""The driver protocol shared by every format: make_peeker, ByteRange, answers, folding."""

from __future__ import annotations

import random

import pytest
from itemadapter import ItemAdapter

from envision_spiders import filetypes
from envision_spiders.archive import (
    ZIP_TAIL_BYTES,
    Answer,
    ByteRange,
    NotListable,
    PeekLimits,
    TarPeeker,
    ZipPeeker,
    display_name,
    drive,
    fold_archives,
    make_peeker,
    parse_content_range,
)
from envision_spiders.items import DatasetItem
from localapi.archives import local_answer, peek_local, zip_bytes, zip_with_large_directory
from localapi.core import ServedFile


@pytest.mark.parametrize(
    ("name", "kind", "fmt"),
    [
        ("Data.zip", ZipPeeker, "zip"),
        ("folder/IMAGES.ZIP", ZipPeeker, "zip"),
        ("new.zipx", ZipPeeker, "zip"),
        ("scans.tar", TarPeeker, "tar"),
        ("a/b/oct.tar.gz", TarPeeker, "tar.gz"),
        ("oct.TGZ", TarPeeker, "tar.gz"),
        ("x.tar.bz2", TarPeeker, "tar.bz2"),
        ("x.tbz2", TarPeeker, "tar.bz2"),
        ("x.tar.xz", TarPeeker, "tar.xz"),
        ("x.txz", TarPeeker, "tar.xz"),
    ],
)
def test_listable_kinds(name, kind, fmt):
    peeker = make_peeker(name, url="http://h/f", size=10_000)
    assert type(peeker) is kind and peeker.format == fmt
    assert peeker.next_request() is not None and peeker.result()["listable"]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("archive.7z", "7z"),
        ("archive.rar", "rar"),
        ("data.part2.rar", "split"),
        ("table.csv.gz", "gz"),
        ("volume.bz2", "bz2"),
        ("volume.xz", "xz"),
        ("volume.zst", "zst"),
        ("images.tar.zst", "tar.zst"),
        ("images.z01", "split"),
        ("images.zip.001", "split"),
        ("images.7z.002", "split"),
    ],
)
def test_not_listable_kinds_make_no_request(name, fmt):
    peeker = make_peeker(name, url="http://h/f", size=5 * 10**9)
    assert isinstance(peeker, NotListable)
    assert peeker.finished and peeker.next_request() is None
    r = peeker.result()
    assert r["format"] == fmt and r["name"] == name and r["url"] == "http://h/f"
    assert not r["listable"] and not r["listed"] and not r["complete"] and r["member_count"] is None
    assert r["requests"] == 0 and r["bytes_read"] == 0 and r["reason"]


@pytest.mark.parametrize("name", ["scan.png", "brain.nii.gz", "reads.fastq.gz", "calls.vcf.gz", "README", "data.zip/notes.txt", ""])
def test_not_archives(name):
    assert make_peeker(name) is None


def test_byte_range_headers():
    assert ByteRange.suffix(65_633).header == "bytes=-65633"
    assert ByteRange.span(100, 50).header == "bytes=100-149"
    assert ByteRange.span(100, 50).end == 149 and ByteRange.suffix(5).end is None


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("bytes 0-99/1000", (0, 99, 1000)),
        ("bytes 900-999/*", (900, 999, None)),
        ("BYTES  5 - 9 / 10", (5, 9, 10)),
        ("bytes */1000", (None, None, 1000)),
        (b"bytes 0-99/1000", (0, 99, 1000)),
        ("bytes 9-5/10", None),
        ("items 0-1/2", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_content_range(value, parsed):
    assert parse_content_range(value) == parsed


def test_next_request_is_idempotent_and_feed_without_request_is_a_bug():
    data = zip_bytes(["a.png"])
    peeker = make_peeker("a.zip", size=len(data))
    assert peeker.next_request() == peeker.next_request() == ByteRange.suffix(len(data))
    answer = local_answer(ServedFile.from_bytes(data), peeker.next_request())
    peeker.feed(answer.data, status=answer.status, content_range=answer.content_range)
    assert peeker.finished and peeker.next_request() is None
    with pytest.raises(RuntimeError):
        peeker.feed(b"", status=206, content_range="bytes 0-0/1")


def test_server_ignoring_range_on_a_small_file_still_lists_it():
    data = zip_bytes(["a.png", "b/c.png"])
    log = []
    r = peek_local("small.zip", data, ignore_range=True, log=log)
    assert r["complete"] and r["member_count"] == 2 and r["requests"] == 1
    assert r["bytes_read"] == len(data)


def test_server_ignoring_range_on_a_file_within_the_budget_is_read_whole():
    data, _ = zip_with_large_directory(3000)
    r = peek_local("big.zip", data, ignore_range=True)
    assert r["complete"] and r["member_count"] == 3000 and r["requests"] == 1
    assert r["bytes_read"] == len(data)


def test_server_ignoring_range_is_cut_at_the_budget():
    data, _ = zip_with_large_directory(3000)
    r = peek_local("big.zip", data, ignore_range=True, limits=PeekLimits(max_bytes=len(data) - 1))
    assert not r["listed"] and r["requests"] == 1
    assert r["bytes_read"] == ZIP_TAIL_BYTES < len(data)
    assert "ignored Range" in r["reason"]
    assert r["total_size"] == len(data)


def test_a_200_cut_by_the_caller_without_length_is_not_mistaken_for_the_whole_file():
    data, _ = zip_with_large_directory(3000)
    peeker = make_peeker("big.zip")
    rng = peeker.next_request()
    peeker.feed(data[: rng.length], status=200, content_range=None, total_size=None)
    r = peeker.result()
    assert not r["listed"] and "ignored Range" in r["reason"]


def test_header_values_as_scrapy_holds_them():
    data, _ = zip_with_large_directory(3000)
    served = ServedFile.from_bytes(data)

    def fetch(rng):
        answer = local_answer(served, rng)
        return Answer(answer.data, answer.status, answer.content_range.encode(), None)

    r = drive(make_peeker("big.zip"), fetch)
    assert r["complete"] and r["member_count"] == 3000
    small = zip_bytes(["a.png"])
    peeker = make_peeker("small.zip")
    peeker.feed(small, status=200, total_size=str(len(small)).encode())
    assert peeker.result()["complete"] and peeker.result()["total_size"] == len(small)


def test_a_200_with_an_empty_body_after_a_cancelled_download():
    peeker = make_peeker("big.zip")
    peeker.feed(b"", status=200, total_size=10**10)
    r = peeker.result()
    assert not r["listed"] and "ignored Range" in r["reason"] and r["total_size"] == 10**10


@pytest.mark.parametrize("status", [403, 404, 500, 503])
def test_http_errors_end_the_peek_with_the_status(status):
    peeker = make_peeker("a.tar.gz", size=100)
    peeker.feed(b"<html>error</html>", status=status)
    r = peeker.result()
    assert not r["listed"] and f"HTTP {status}" in r["reason"] and r["requests"] == 1


def test_fail_records_the_request_and_the_reason():
    data, _ = zip_with_large_directory(3000)
    served = ServedFile.from_bytes(data)
    peeker = make_peeker("big.zip", size=len(data))
    first = local_answer(served, peeker.next_request())
    peeker.feed(first.data, status=first.status, content_range=first.content_range)
    assert peeker.next_request() is not None
    peeker.fail("TimeoutError: took too long")
    r = peeker.result()
    assert r["requests"] == 2 and not r["listed"] and "took too long" in r["reason"]
    assert r["member_count"] == 3000  # the end record was read
    peeker.fail("again")  # harmless once finished
    assert peeker.result()["requests"] == 2


def test_drive_turns_transport_exceptions_into_failures():
    def broken(rng):
        raise ConnectionResetError("peer reset")

    r = drive(make_peeker("x.tar"), broken)
    assert not r["listed"] and "peer reset" in r["reason"] and r["requests"] == 1


def test_empty_file_answered_416():
    r = drive(make_peeker("empty.zip"), lambda rng: Answer(b"", 416, "bytes */0"))
    assert not r["listed"] and r["reason"] == "empty file (0 bytes)" and r["total_size"] == 0


def test_206_without_content_range_on_a_suffix_request():
    r = drive(make_peeker("x.zip"), lambda rng: Answer(b"PK" * 10, 206, None))
    assert not r["listed"] and "Content-Range" in r["reason"]


def test_the_file_changing_between_requests_is_noticed():
    data, _ = zip_with_large_directory(3000)
    served = ServedFile.from_bytes(data)
    calls = []

    def fetch(rng):
        answer = local_answer(served, rng)
        calls.append(rng)
        if len(calls) == 2:  # pretend the file was replaced by a longer one
            a, b = answer.content_range.split()[1].split("/")[0].split("-")
            return Answer(answer.data, 206, f"bytes {a}-{b}/{len(data) + 10}")
        return answer

    r = drive(make_peeker("big.zip"), fetch)
    assert not r["listed"] and "changed size" in r["reason"]


def test_request_budget_of_one_for_a_zip_with_a_large_directory():
    data, _ = zip_with_large_directory(3000)
    r = peek_local("big.zip", data, limits=PeekLimits(max_requests=1))
    assert r["requests"] == 1 and not r["listed"] and r["member_count"] == 3000
    assert "peek budget" in r["reason"]


def test_internal_errors_never_reach_the_caller(monkeypatch):
    peeker = make_peeker("a.zip")
    monkeypatch.setattr(peeker, "_on_chunk", lambda rng, chunk: 1 / 0)
    peeker.feed(b"PK", status=206, content_range="bytes 0-1/2")
    r = peeker.result()
    assert peeker.finished and "internal error" in r["reason"] and "ZeroDivisionError" in r["reason"]


def test_limits_from_settings():
    from scrapy.settings import Settings

    limits = PeekLimits.from_settings(Settings({"ARCHIVE_PEEK_MAX_BYTES": 1234, "ARCHIVE_PEEK_MAX_REQUESTS": 3}))
    assert (limits.max_bytes, limits.max_requests) == (1234, 3)
    assert PeekLimits.from_settings(Settings()).max_bytes == 16 * 1024 * 1024


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("raw", "shown", "suspicious"),
    [
        ("fundus/left/OD.png", "fundus/left/OD.png", False),
        ("win\\path\\OS.png", "win/path/OS.png", False),
        ("../../etc/passwd.png", "etc/passwd.png", True),
        ("a/../../b.png", "a/b.png", True),
        ("/abs/scan.dcm", "abs/scan.dcm", True),
        ("C:\\Users\\x.png", "Users/x.png", True),
        ("evil.png\x00.exe", "evil.png", True),
        ("tab\there.png", "tab\ufffdhere.png", True),
        ("\u202egnp.exe", "\ufffdgnp.exe", True),
        ("bad\ufffdutf8.png", "bad\ufffdutf8.png", True),
        ("./x/./y.png", "x/y.png", False),
        (".hidden", ".hidden", False),
    ],
)
def test_display_name(raw, shown, suspicious):
    assert display_name(raw) == (shown, suspicious)


def test_very_long_names_are_shortened():
    shown, _ = display_name("d/" + "x" * 5000 + ".png")
    assert len(shown) == 300 and shown.endswith("\u2026")


def _file_extension_reference(name: str) -> str:
    # The table lookup as first written (every entry, longest first): the oracle for the
    # faster lookup in filetypes.file_extension, which archive listings call per member.
    base = filetypes.basename(name).lower()
    if not base or (base.startswith(".") and base.count(".") == 1):
        return ""
    split = filetypes._SPLIT_PART.search(base)
    if split and len(base) > len(split.group(1)):
        return split.group(1)
    for ext in sorted(filetypes.EXTENSIONS, key=len, reverse=True):
        if base.endswith(ext) and len(base) > len(ext):
            return ext
    m = filetypes._SIMPLE_EXT.search(base)
    return m.group(0) if m else ""


def test_file_extension_fast_lookup_matches_the_table_scan():
    rng = random.Random(7)
    parts = [*filetypes.EXTENSIONS, ".", "..", "a", "gz", ".tar", ".part1", ".001", "/", "\\", "Ü", ".g", "tar.gz", ".TAR.GZ", " "]
    for _ in range(20_000):
        name = "".join(rng.choice(parts) for _ in range(rng.randint(0, 5)))
        assert filetypes.file_extension(name) == _file_extension_reference(name), name


# --------------------------------------------------------------------------- folding
def test_fold_archives_into_a_dict_and_an_item():
    data = zip_bytes(["img/a.png", "img/b.png", "img/c.jpeg", "vol/scan.e2e", "notes.txt", "inner.tar"])
    entry = peek_local("Data.zip", data)
    files = [
        {"name": "Data.zip", "size_bytes": len(data), "url": "u", "file_id": "1", "checksum": None},
        {"name": "labels.csv", "size_bytes": 10, "url": "u2", "file_id": "2", "checksum": None},
    ]
    record = {"files": files}
    fold_archives(record, [entry])
    assert record["archives"] == [entry]
    assert record["file_types"] == [".csv", ".e2e", ".jpeg", ".png", ".tar", ".txt", ".zip"]
    assert (record["img_count"], record["medical_count"], record["archive_count"]) == (3, 1, 2)
    assert record["file_count"] == 2 and record["total_size_bytes"] == len(data) + 10

    item = DatasetItem(source="zenodo", source_id="1", files=files)
    fold_archives(ItemAdapter(item), [entry, make_peeker("x.7z").result()])
    assert item.img_count == 3 and item.archive_count == 2 and len(item.archives) == 2
