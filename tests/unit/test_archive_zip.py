"""ZIP and ZIP64 listings: members, names, counts, and the requests and bytes each costs."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest

from envision_spiders.archive import ZIP_TAIL_BYTES, PeekLimits
from localapi.archives import (
    peek_local,
    virtual_zip,
    virtual_zip64,
    zip64_bytes,
    zip_bytes,
    zip_with_large_directory,
    zip_with_max_comment,
)

NESTED = [
    "study/",
    "study/fundus/",
    ("study/fundus/left/OD_001.png", b"\x89PNG fake"),
    ("study/fundus/right/OS_001.JPG", b"jpeg"),
    ("study/oct/volume.e2e", b"e2e"),
    ("study/oct/slice.dcm", b"dicom"),
    ("study/genetics/calls.vcf.gz", b"vcf"),
    ("study/nested/more.zip", b"PK"),
    ("study/labels.csv", b"id,grade\n1,2\n"),
    ("README", b"no extension"),
]


def directory_span(data: bytes) -> tuple[int, int]:
    """(start, size) of the central directory, as the standard library sees it."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        start = zf.start_dir
    end = data.find(b"PK\x06\x06", start)  # the ZIP64 end record follows the directory...
    if end < 0:
        end = data.find(b"PK\x05\x06", start)  # ...or the classic one does
    return start, end - start


def test_small_nested_zip_in_one_request():
    data = zip_bytes(NESTED)
    log = []
    r = peek_local("Data.zip", data, log=log)
    assert [rng.header for rng in log] == [f"bytes=-{len(data)}"]  # whole file: smaller than the tail
    assert r["requests"] == 1 and r["bytes_read"] == len(data) == r["total_size"]
    assert r["format"] == "zip" and r["listed"] and r["complete"] and r["reason"] is None
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
    assert r["member_count"] == len(infos) == 10
    assert r["folder_count"] == 2
    assert r["members_sample"] == [i.filename for i in infos if not i.is_dir()]
    assert r["extension_counts"] == {
        "": 1, ".csv": 1, ".dcm": 1, ".e2e": 1, ".jpg": 1, ".png": 1, ".vcf.gz": 1, ".zip": 1,
    }
    assert (r["imaging_count"], r["medical_count"], r["genomics_count"], r["archive_count"]) == (2, 2, 1, 1)
    assert r["suspicious_name_count"] == 0 and r["warnings"] == []


def test_unknown_size_still_one_suffix_request():
    data = zip_bytes(NESTED)
    log = []
    r = peek_local("Data.zip", data, known_size=False, log=log)
    assert [rng.header for rng in log] == [f"bytes=-{ZIP_TAIL_BYTES}"]
    assert r["complete"] and r["member_count"] == 10 and r["total_size"] == len(data)


def test_big_members_small_directory_one_request_reads_only_the_tail():
    data = zip_bytes([(f"img/{i}.png", bytes([i]) * 200_000) for i in range(10)])
    log = []
    r = peek_local("photos.zip", data, log=log)
    assert len(data) > 10 * ZIP_TAIL_BYTES
    assert [rng.header for rng in log] == [f"bytes=-{ZIP_TAIL_BYTES}"]
    assert r["requests"] == 1 and r["bytes_read"] == ZIP_TAIL_BYTES
    assert r["complete"] and r["member_count"] == 10 and r["extension_counts"] == {".png": 10}


def test_directory_over_64k_takes_exactly_one_more_request():
    data, names = zip_with_large_directory(3000)
    start, size = directory_span(data)
    assert size > 64 * 1024
    tail_start = len(data) - ZIP_TAIL_BYTES
    log = []
    r = peek_local("big.zip", data, log=log)
    assert [rng.header for rng in log] == [f"bytes=-{ZIP_TAIL_BYTES}", f"bytes={start}-{tail_start - 1}"]
    assert r["requests"] == 2
    assert r["bytes_read"] == ZIP_TAIL_BYTES + (tail_start - start) <= ZIP_TAIL_BYTES + size
    assert r["complete"] and r["member_count"] == 3000 == r["members_listed"]
    assert r["members_sample"] == names[:50]
    assert r["extension_counts"] == {".png": 3000} and r["imaging_count"] == 3000


def test_directory_larger_than_budget_is_cut_and_keeps_the_declared_count():
    data, names = zip_with_large_directory(6000)
    _, size = directory_span(data)
    limits = PeekLimits(max_bytes=160 * 1024)
    assert size > limits.max_bytes
    r = peek_local("huge.zip", data, limits=limits)
    assert r["requests"] == 2 and r["bytes_read"] <= limits.max_bytes
    assert r["listed"] and not r["complete"]
    assert r["member_count"] == 6000
    assert 0 < r["members_listed"] < 6000
    assert r["extension_counts"] == {".png": r["members_listed"]}
    assert "larger than the peek budget" in r["reason"] and "6,000" in r["reason"]
    assert r["members_sample"] == names[:50]


def test_zip64_forced_small():
    data = zip64_bytes(NESTED[2:])
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    r = peek_local("z64.zip", data)
    assert r["format"] == "zip64" and r["complete"] and r["requests"] == 1
    assert r["member_count"] == 8
    assert r["members_sample"] == [m[0] for m in NESTED[2:]]


def test_zip64_forced_with_large_directory():
    names = [f"scans/oct_{i:05d}.dcm" for i in range(2500)]
    data = zip64_bytes(names)
    r = peek_local("z64big.zip", data)
    assert r["format"] == "zip64" and r["complete"] and r["requests"] == 2
    assert r["member_count"] == 2500 and r["medical_count"] == 2500


@pytest.mark.parametrize(
    ("n_members", "comment_len"),
    [(3, 0xFFFF), (3, 60_000), (2000, 0xFFFF)],
)
def test_long_comments(n_members, comment_len):
    members = [f"d/{i:05d}.tif" for i in range(n_members)]
    data = zip_with_max_comment(members, comment_len=comment_len)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert len(zf.comment) == comment_len
    start, size = directory_span(data)
    in_tail = start >= len(data) - ZIP_TAIL_BYTES
    r = peek_local("commented.zip", data)
    assert r["complete"] and r["member_count"] == n_members
    assert r["extension_counts"] == {".tif": n_members}
    # the end record is always in the tail; the directory needs a second request only
    # when the comment leaves it outside
    assert r["requests"] == (1 if in_tail else 2)
    assert in_tail == (comment_len < 65_000 and n_members < 100)
    assert r["bytes_read"] <= ZIP_TAIL_BYTES + size


def test_fake_end_record_inside_the_comment_is_not_taken():
    fake = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 99, 99, 10**6, 10**6, 0)
    data = zip_bytes(["a.png", "b.png"], comment=b"junk " + fake + b" more comment")
    r = peek_local("trick.zip", data)
    assert r["complete"] and r["member_count"] == 2 and r["warnings"] == []


def test_virtual_zip64_of_50_gb():
    served, names = virtual_zip64(100_000, 50 * 10**9)
    assert served.size > 50 * 10**9
    log = []
    r = peek_local("OCT_all.zip", served, log=log)
    assert r["format"] == "zip64" and r["complete"]
    assert r["member_count"] == 100_000 == r["members_listed"]
    assert r["extension_counts"] == {".png": 100_000} and r["imaging_count"] == 100_000
    assert r["members_sample"] == names[:50]
    assert r["requests"] == 2 and log[0].header == f"bytes=-{ZIP_TAIL_BYTES}"
    # bytes read: the tail plus the part of the directory before it, nothing else
    directory_and_end = served.size - (log[1].start or 0)
    assert r["bytes_read"] == directory_and_end < 10 * 1024 * 1024


def test_utf8_flag_cp437_and_unicode_path_extra():
    # zipfile sets the UTF-8 flag for non-ASCII names
    data = zip_bytes(["Ärzte/Bild ä.png"])
    assert peek_local("u.zip", data)["members_sample"] == ["Ärzte/Bild ä.png"]
    # without the flag the name is cp437: byte 0x84 is "ä"
    raw = zip_bytes(["Xbc.png"]).replace(b"Xbc.png", b"\x84bc.png")
    assert peek_local("c.zip", raw)["members_sample"] == ["äbc.png"]
    # Info-ZIP Unicode Path extra field (0x7075) wins over the cp437 name when its CRC matches
    info = zipfile.ZipInfo("plain.png")
    uname = "Ω-scan.png".encode()
    info.extra = struct.pack("<HHBL", 0x7075, 5 + len(uname), 1, zlib.crc32(b"plain.png")) + uname
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, b"x")
    assert peek_local("x.zip", buf.getvalue())["members_sample"] == ["Ω-scan.png"]


def test_empty_zip():
    r = peek_local("empty.zip", zip_bytes([]))
    assert r["listed"] and r["complete"] and r["member_count"] == 0 and r["requests"] == 1


def test_sample_size_and_nothing_decompressed():
    # deflated members: listing reads none of the compressed data
    data = zip_bytes([(f"{i}.csv", b"0" * 100_000) for i in range(80)], compression=zipfile.ZIP_DEFLATED)
    r = peek_local("tables.zip", data, limits=PeekLimits(sample_size=5))
    assert r["members_sample"] == [f"{i}.csv" for i in range(5)]
    assert r["member_count"] == 80 and r["extension_counts"] == {".csv": 80}


def test_virtual_zip_with_sizes_over_4_gib_without_forcing():
    served = virtual_zip([f"v/{i}.vol" for i in range(3)], member_size=5 * 2**30)
    r = peek_local("vols.zip", served)
    assert r["format"] == "zip64" and r["complete"] and r["member_count"] == 3 and r["medical_count"] == 3
