"""Hostile and broken archives: each ends with a clear reason (or a warning), never an exception."""

from __future__ import annotations

import gzip
import io
import random
import tarfile

import pytest

from envision_spiders.archive import ZIP_TAIL_BYTES, PeekLimits
from envision_spiders.archive.zipformat import END, END64, SIG_CENTRAL, SIG_END, SIG_END64
from localapi.archives import peek_local, repeating_zip64, tar_bytes, virtual_zip, zip64_bytes, zip_bytes
from localapi.core import ServedFile

NAMES = [f"img/{i}.png" for i in range(5)]


def patch_end(data: bytes, **fields) -> bytes:
    """Rewrite fields of the classic end record."""
    pos = data.rfind(SIG_END)
    keys = ["sig", "disk", "cd_disk", "n_disk", "n_total", "cd_size", "cd_offset", "comment_len"]
    values = dict(zip(keys, END.unpack_from(data, pos), strict=True))
    values.update(fields)
    return data[:pos] + END.pack(*values.values()) + data[pos + END.size :]


def patch_end64(data: bytes, **fields) -> bytes:
    pos = data.rfind(SIG_END64)
    keys = ["sig", "size", "made", "needed", "disk", "cd_disk", "n_disk", "n_total", "cd_size", "cd_offset"]
    values = dict(zip(keys, END64.unpack_from(data, pos), strict=True))
    values.update(fields)
    return data[:pos] + END64.pack(*values.values()) + data[pos + END64.size :]


# --------------------------------------------------------------------------- ZIP
@pytest.mark.parametrize(
    "body",
    [b"<html><body>Sign in to download</body></html>", random.Random(1).randbytes(200_000), b""],
    ids=["html", "random", "empty-body"],
)
def test_not_a_zip(body):
    r = peek_local("data.zip", ServedFile.from_bytes(body)) if body else peek_local("data.zip", ServedFile(size=0, data=b""))
    assert not r["listed"] and not r["complete"] and r["reason"]
    if body:
        assert "no end-of-central-directory record" in r["reason"]


def test_truncated_zip_has_no_end_record():
    data = zip_bytes([(n, b"x" * 1000) for n in NAMES])
    r = peek_local("cut.zip", data[:-30])
    assert not r["listed"] and "no end-of-central-directory record" in r["reason"]


def test_directory_offset_past_the_end_is_corrected_from_the_end_record_position():
    data = patch_end(zip_bytes(NAMES), cd_offset=10**9)
    r = peek_local("lying_offset.zip", data)
    assert r["complete"] and r["member_count"] == 5
    assert any("1,000,000,000" in w for w in r["warnings"])


def test_directory_size_past_the_start_of_the_file():
    data = patch_end(zip_bytes(NAMES), cd_size=10**9)
    r = peek_local("lying_size.zip", data)
    assert not r["listed"] and "would start before the file" in r["reason"]


def test_directory_size_too_small_falls_back_to_the_declared_offset():
    data = zip_bytes(NAMES)
    pos = data.rfind(SIG_END)
    cd_size = END.unpack_from(data, pos)[5]
    r = peek_local("short_size.zip", patch_end(data, cd_size=cd_size - 10))
    assert r["listed"] and not r["complete"] and r["members_listed"] == 4
    assert "ends inside record 5" in r["reason"]


def test_junk_appended_after_the_end_record():
    r = peek_local("junk.zip", zip_bytes(NAMES) + b"junk!" * 7)
    assert r["complete"] and r["member_count"] == 5
    assert any("after the end-of-central-directory" in w for w in r["warnings"])


def test_corrupt_record_in_the_middle_of_the_directory():
    data = bytearray(zip_bytes(NAMES))
    third = [i for i in range(len(data)) if data[i : i + 4] == SIG_CENTRAL][2]
    data[third : third + 4] = b"XXXX"
    r = peek_local("corrupt.zip", bytes(data))
    assert r["listed"] and not r["complete"]
    assert r["members_listed"] == 2 and r["member_count"] == 5
    assert "corrupt central directory" in r["reason"] and "record 3" in r["reason"]


def test_split_zip_part_whose_directory_starts_elsewhere():
    r = peek_local("images.zip", patch_end(zip_bytes(NAMES), disk=2, cd_disk=1))
    assert not r["listed"] and r["format"] == "zip-split" and "split" in r["reason"]


def test_last_part_of_a_split_zip_holding_its_whole_directory():
    r = peek_local("images.zip", patch_end(zip_bytes(NAMES), disk=2, cd_disk=2))
    assert r["complete"] and r["member_count"] == 5 and any("split ZIP" in w for w in r["warnings"])


def test_zip64_member_count_of_ten_million_on_a_small_directory():
    data = patch_end64(zip64_bytes(NAMES), n_total=10**7, n_disk=10**7)
    r = peek_local("lying_count.zip", data)
    assert r["complete"] and r["member_count"] == 5 == r["members_listed"]
    assert any("10,000,000" in w for w in r["warnings"])


def test_zip64_directory_size_that_lies():
    r = peek_local("lying64.zip", patch_end64(zip64_bytes(NAMES), cd_size=2**60))
    assert not r["listed"] and "would start before the file" in r["reason"]


def test_zip64_directory_offset_that_lies():
    r = peek_local("lying64off.zip", patch_end64(zip64_bytes(NAMES), cd_offset=2**62))
    assert r["complete"] and r["member_count"] == 5 and r["warnings"]


def test_zip64_locator_pointing_nowhere():
    data = zip64_bytes(NAMES)
    data = data.replace(SIG_END64, b"XXXX")  # the ZIP64 end record is gone
    data = patch_end(data, n_total=0xFFFF, n_disk=0xFFFF, cd_size=0xFFFFFFFF, cd_offset=0xFFFFFFFF)
    r = peek_local("no64.zip", data)
    assert not r["listed"] and "ZIP64 locator points to byte" in r["reason"]


def test_declared_ten_million_members_with_a_real_huge_directory_stays_bounded():
    # 10^7 central directory records (550 MB), served virtually: a repeating record.
    n = 10**7
    served, record_size = repeating_zip64(n)
    limits = PeekLimits(max_bytes=2 * 1024 * 1024, sample_size=20)
    r = peek_local("ten_million.zip", served, limits=limits)
    assert r["format"] == "zip64" and r["listed"] and not r["complete"]
    assert r["member_count"] == n
    assert r["requests"] == 2 and r["bytes_read"] <= limits.max_bytes
    # every whole record of the second request is listed, nothing more is kept
    assert r["members_listed"] == (r["bytes_read"] - ZIP_TAIL_BYTES) // record_size > 30_000
    assert len(r["members_sample"]) == 20 and r["extension_counts"] == {".png": r["members_listed"]}
    assert "larger than the peek budget" in r["reason"]


def test_hostile_member_names():
    names = [
        b"../../etc/passwd.png",
        b"/abs/root.png",
        b"nul\x00.png.exe",
        b"\xff\xfe bad utf8.png",
        b"C:\\Windows\\x.png",
        b"ok/fine.png",
    ]
    served = virtual_zip(names, member_size=10, utf8_flag=True)
    r = peek_local("evil.zip", served)
    assert r["complete"] and r["member_count"] == 6
    assert r["members_sample"] == [
        "etc/passwd.png",
        "abs/root.png",
        "nul",
        "\ufffd\ufffd bad utf8.png",
        "Windows/x.png",
        "ok/fine.png",
    ]
    assert r["suspicious_name_count"] == 5
    assert r["extension_counts"] == {".png": 5, "": 1}


def test_extension_kinds_are_bounded():
    names = [f"f{i}.x{i:06d}" for i in range(3000)] + ["a.png"]
    r = peek_local("many_kinds.zip", virtual_zip(names, member_size=0))
    assert r["complete"] and len(r["extension_counts"]) == 1001
    assert r["extension_counts"][".png"] == 1  # extensions of the table always get their key
    assert r["extension_overflow"] == 3000 - 1000


# --------------------------------------------------------------------------- TAR
def fix_checksum(block: bytearray) -> bytearray:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    return block


def test_not_a_tar():
    r = peek_local("x.tar", random.Random(2).randbytes(5000))
    assert not r["listed"] and "not a TAR archive" in r["reason"]
    r = peek_local("tiny.tar", b"hello")
    assert not r["listed"] and "shorter than one header" in r["reason"]


def test_truncated_tar():
    data = tar_bytes([(f"{i}.png", bytes(5000)) for i in range(5)])
    r = peek_local("cut.tar", data[: 3 * 5632 + 1000])  # inside the data of the 4th member
    assert r["listed"] and not r["complete"] and r["members_listed"] == 4
    assert "truncated TAR" in r["reason"]
    r = peek_local("cut_header.tar", data[: 2 * 5632 + 100])  # inside the 3rd header
    assert r["members_listed"] == 2 and "runs past the end" in r["reason"]


def test_corrupt_header_checksum():
    data = bytearray(tar_bytes([("a.png", bytes(1000)), ("b.png", b"x"), ("c.png", b"y")]))
    second = 512 + 1024
    data[second] ^= 0x01
    r = peek_local("bad.tar", bytes(data))
    assert r["listed"] and not r["complete"] and r["members_listed"] == 1
    assert "corrupt TAR header at byte 1,536 (bad checksum)" in r["reason"]


@pytest.mark.parametrize("size_field", [b"zzzzzzzzzzz\x00", b"\xff" * 12])
def test_unreadable_size_field(size_field):
    data = bytearray(tar_bytes([("a.png", b"1"), ("b.png", b"2")]))
    header = bytearray(data[1024:1536])
    header[124:136] = size_field
    data[1024:1536] = fix_checksum(header)
    r = peek_local("size.tar", bytes(data))
    assert r["members_listed"] == 1 and "unreadable size field" in r["reason"]


def test_hostile_long_name_header():
    header = bytearray(512)
    header[0:13] = b"././@LongLink"
    header[124:136] = b"%011o\x00" % (10 * 1024 * 1024)
    header[156:157] = b"L"
    header[257:265] = b"ustar  \x00"
    data = bytes(fix_checksum(header)) + bytes(4096)
    r = peek_local("longlink.tar", data)
    assert not r["listed"] and "10,485,760-byte long-name/pax header" in r["reason"]


def test_hostile_pax_path_and_malformed_pax():
    info = tarfile.TarInfo("innocent.png")
    info.pax_headers = {"path": "/../../etc/\x01shadow.png"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(info)
    data = buf.getvalue()
    r = peek_local("pax.tar", data)
    assert r["members_sample"] == ["etc/\ufffdshadow.png"] and r["suspicious_name_count"] == 1

    # a pax record whose length is wrong: ignored with a warning, the header name is used
    broken = bytearray(data)
    at = broken.find(b" path=")
    broken[at - 2 : at] = b"99"
    r = peek_local("pax_bad.tar", bytes(broken))
    assert r["complete"] and r["members_sample"] == ["innocent.png"]
    assert any("malformed pax header" in w for w in r["warnings"])


def test_gzip_garbage():
    r = peek_local("x.tgz", b"<html>not found</html>" * 10)
    assert not r["listed"] and "not gzip data" in r["reason"]
    r = peek_local("x.tgz", b"\x1f\x8b\x08\x00" + random.Random(3).randbytes(5000))
    assert not r["listed"] and "corrupt gzip data" in r["reason"]


def test_truncated_gzip_stream():
    data = tar_bytes([(f"{i}.png", random.Random(i).randbytes(4000)) for i in range(10)], compression="gz")
    r = peek_local("cut.tar.gz", data[: len(data) // 2])
    assert r["listed"] and not r["complete"] and 0 < r["members_listed"] < 10
    assert "gzip stream is truncated" in r["reason"]


def test_garbage_after_the_gzip_stream():
    tar = tar_bytes([("a.png", b"x")])[:1024]  # one member, no end-of-archive blocks
    r = peek_local("trail.tgz", gzip.compress(tar) + b"garbage")
    assert r["complete"] and r["member_count"] == 1
    assert any("after the end of the gzip stream" in w for w in r["warnings"])
