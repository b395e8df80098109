"""TAR and compressed TAR listings: names (long, pax, ustar prefix), hops, budgets, streams."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib

import pytest

from envision_spiders.archive import PeekLimits
from envision_spiders.archive.tarformat import TarPeeker
from localapi.archives import (
    ServedFileIO,
    peek_local,
    tar_bytes,
    virtual_big_tar,
    virtual_tar,
    virtual_tgz,
)

KiB, MiB = 1024, 1024 * 1024
LONG = "study/" + "very_long_folder_name_" * 6 + "/OD_fundus_image_with_a_long_name.png"
MEMBERS = [
    "study/",
    ("study/fundus/OD_001.png", b"png" * 100),
    ("study/oct/volume.e2e", b"e2e" * 1000),
    (LONG, b"long"),
    ("study/ünïcödé/Auge.jpg", b"jpg"),
    ("study/labels.csv", b"id,grade\n"),
    ("study/genetics/calls.vcf.gz", b""),
]


def stdlib_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [m.name for m in tf.getmembers() if not m.isdir()]


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_small_tar_with_long_and_unicode_names(fmt):
    data = tar_bytes(MEMBERS, format=fmt)
    raw = data
    assert (b"././@LongLink" in raw) == (fmt == tarfile.GNU_FORMAT)  # GNU "L" header
    assert (b"path=" in raw) == (fmt == tarfile.PAX_FORMAT)  # pax "x" header
    log = []
    r = peek_local("scans.tar", data, log=log)
    assert [rng.header for rng in log] == [f"bytes=0-{len(data) - 1}"]
    assert r["format"] == "tar" and r["listed"] and r["complete"] and r["reason"] is None
    assert r["requests"] == 1 and r["bytes_read"] == len(data)
    assert r["member_count"] == 7 and r["folder_count"] == 1
    assert r["members_sample"] == stdlib_names(data)
    assert LONG in r["members_sample"] and "study/ünïcödé/Auge.jpg" in r["members_sample"]
    assert r["extension_counts"] == {".csv": 1, ".e2e": 1, ".jpg": 1, ".png": 2, ".vcf.gz": 1}
    assert (r["imaging_count"], r["medical_count"], r["genomics_count"]) == (3, 1, 1)


def test_ustar_prefix_names():
    name = "a" * 80 + "/" + "b" * 60 + "/scan.tif"  # over 100 chars: ustar splits it into prefix/name
    data = tar_bytes([(name, b"x")], format=tarfile.USTAR_FORMAT)
    assert b"path=" not in data and b"LongLink" not in data
    r = peek_local("u.tar", data)
    assert r["members_sample"] == [name] and r["complete"]


def test_pax_global_header_path_applies_to_later_members():
    # a pax "g" header sets defaults for every following member (POSIX)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "dataset v2"}) as tf:
        for n in ("a.png", "b.png"):
            info = tarfile.TarInfo(n)
            tf.addfile(info)
    data = buf.getvalue()
    assert data[156:157] == b"g"
    r = peek_local("g.tar", data)
    assert r["members_sample"] == ["a.png", "b.png"] and r["complete"]


def test_hops_land_exactly_on_the_headers_of_big_members():
    sizes = [5 * MiB + 123 * i for i in range(20)]
    members = [(f"vol/{i:02d}.vol", s) for i, s in enumerate(sizes)]
    served = virtual_tar(members)
    offsets, pos = [], 0
    for _, s in members:
        offsets.append(pos)
        pos += 512 + (s + 511) // 512 * 512
    log = []
    r = peek_local("vols.tar", served, limits=PeekLimits(max_requests=32), log=log)
    assert r["complete"] and r["member_count"] == 20 and r["medical_count"] == 20
    # one head request (1 MiB holds the first header), then one small hop per later header
    # plus the last hop to the end-of-archive block
    assert log[0].header == f"bytes=0-{MiB - 1}"
    assert [rng.start for rng in log[1:]] == offsets[1:] + [pos]
    assert all(rng.length == 4 * KiB for rng in log[1:-1])
    assert log[-1].length == served.size - pos  # the last hop stops at the end of the file
    assert r["requests"] == 21 and r["bytes_read"] == MiB + 19 * 4 * KiB + (served.size - pos)


def test_request_budget_bounds_a_30_gb_tar():
    served, names = virtual_big_tar(1000, 30 * 10**6)
    assert served.size > 30 * 10**9
    r = peek_local("fundus.tar", served)  # default budget: 8 requests
    assert r["listed"] and not r["complete"]
    assert r["requests"] == 8 and r["members_listed"] == 8 == r["member_count"]
    assert r["members_sample"] == names[:8]
    assert r["bytes_read"] == MiB + 7 * 4 * KiB
    assert "request budget" in r["reason"] and "8 members" in r["reason"]


def test_byte_budget_bounds_a_tar_of_small_members():
    data = tar_bytes([(f"png/{i:04d}.png", bytes(20_000)) for i in range(400)])  # ~8.4 MB
    limits = PeekLimits(max_bytes=3 * MiB, max_requests=50)
    r = peek_local("small_members.tar", data, limits=limits)
    assert not r["complete"] and r["bytes_read"] <= limits.max_bytes
    assert r["requests"] == 3  # 1 MiB head + two 1 MiB hops: many headers per request
    assert 100 < r["members_listed"] < 400
    assert "byte budget" in r["reason"]


def test_small_member_tar_bigger_than_the_head_is_listed_in_few_requests():
    data = tar_bytes([(f"png/{i:04d}.png", bytes(10_000)) for i in range(300)])  # ~3.2 MB
    r = peek_local("small_members.tar", data)
    assert r["complete"] and r["member_count"] == 300
    # a 1 MiB head and 1 MiB hops; a hop may re-read the part of a header the window cut
    assert r["requests"] == 4 and r["bytes_read"] <= len(data) + 3 * 512


def test_members_over_8_gib_pax_and_gnu():
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        served = virtual_tar([("huge.raw", 9 * 2**30), ("after.png", 10)], format=fmt)
        with tarfile.open(fileobj=ServedFileIO(served)) as tf:
            assert tf.getnames() == ["huge.raw", "after.png"]
        r = peek_local("big.tar", served)
        assert r["complete"] and r["members_sample"] == ["huge.raw", "after.png"], fmt
        assert r["requests"] == 2  # the head, then one hop holding the header after 9 GiB and the end


def test_server_ignoring_range_lists_the_head_only():
    served, names = virtual_big_tar(200, 100_000)  # 20 MB: over the 16 MiB budget
    r = peek_local("x.tar", served, ignore_range=True)
    assert r["listed"] and not r["complete"] and r["requests"] == 1
    assert r["bytes_read"] == MiB
    assert r["members_sample"] == names[: r["members_listed"]] and r["members_listed"] == 11
    assert "ignored Range" in r["reason"]


def test_server_ignoring_range_on_a_small_tar_lists_it_all():
    data = tar_bytes(MEMBERS)
    r = peek_local("x.tar", data, ignore_range=True)
    assert r["complete"] and r["member_count"] == 7 and r["requests"] == 1


def test_tar_without_end_blocks_is_complete_with_a_warning():
    data = tar_bytes([("a.png", b"x" * 600), ("b.png", b"y")])
    end = 512 + 1024 + 512 + 512  # two members, their data, and nothing after
    r = peek_local("noend.tar", data[:end])
    assert r["complete"] and r["member_count"] == 2
    assert any("end-of-archive" in w for w in r["warnings"])


# --------------------------------------------------------------------------- compressed
@pytest.mark.parametrize(("suffix", "compression", "fmt"), [(".tar.gz", "gz", "tar.gz"), (".tgz", "gz", "tar.gz"), (".tar.bz2", "bz2", "tar.bz2"), (".tar.xz", "xz", "tar.xz")])
def test_small_compressed_tars(suffix, compression, fmt):
    data = tar_bytes(MEMBERS, compression=compression)
    log = []
    r = peek_local("oct" + suffix, data, log=log)
    assert r["format"] == fmt and r["complete"] and r["reason"] is None
    assert r["requests"] == 1 and r["bytes_read"] == len(data) and len(log) == 1
    assert r["members_sample"] == stdlib_names(data)
    assert r["member_count"] == 7


def test_tgz_bigger_than_the_head_lists_what_the_head_holds():
    served, names = virtual_tgz([(f"img/{i:03d}.png", 150_000) for i in range(500)], total_size=20 * 10**9)
    log = []
    r = peek_local("oct.tar.gz", served, log=log)
    assert [rng.header for rng in log] == [f"bytes=0-{MiB - 1}"]
    assert r["listed"] and not r["complete"]
    assert r["bytes_read"] == MiB and r["requests"] == 1 and r["total_size"] == 20 * 10**9
    listed = r["members_listed"]
    assert r["members_sample"] == names[:listed] and listed >= 6
    assert "no index" in r["reason"]


def test_tgz_head_budget_is_configurable():
    served, _ = virtual_tgz([(f"img/{i:03d}.png", 150_000) for i in range(500)])
    r = peek_local("oct.tgz", served, limits=PeekLimits(compressed_head_bytes=256 * KiB))
    assert r["bytes_read"] == 256 * KiB and 0 < r["members_listed"] < 3


def test_concatenated_gzip_members_are_followed():
    tar = tar_bytes([(f"{i}.png", bytes(3000)) for i in range(6)])
    cut = 512 * 12
    data = gzip.compress(tar[:cut]) + gzip.compress(tar[cut:])  # as pigz/bgzip write
    r = peek_local("multi.tar.gz", data)
    assert r["complete"] and r["member_count"] == 6


def test_decompression_bomb_stops_at_the_output_cap():
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    info = tarfile.TarInfo("zeros.raw")
    info.size = 64 * MiB
    out = comp.compress(info.tobuf(tarfile.PAX_FORMAT))
    for _ in range(64):
        out += comp.compress(bytes(MiB))
    out += comp.flush()
    assert len(out) < 100 * KiB  # 64 MiB of TAR in under 100 KiB: ratio > 600
    limits = PeekLimits(max_decompressed_bytes=8 * MiB)
    r = peek_local("bomb.tgz", out, limits=limits)
    assert not r["complete"] and r["member_count"] == 1
    assert "decompressed bytes (cap 8,388,608" in r["reason"]


def test_misnamed_tar_that_is_gzip_and_tgz_that_is_plain():
    gz = tar_bytes(MEMBERS, compression="gz")
    r = peek_local("really_gzip.tar", gz)
    assert r["format"] == "tar.gz" and r["complete"] and "content is tar.gz" in r["warnings"][0]
    plain = tar_bytes(MEMBERS)
    r = peek_local("really_plain.tar.gz", plain)
    assert r["format"] == "tar" and r["complete"] and "uncompressed TAR" in r["warnings"][0]
    r = peek_local("xz_named_bz2.tar.bz2", tar_bytes(MEMBERS, compression="xz"))
    assert r["format"] == "tar.xz" and r["complete"]


def test_zstd_tar_named_tar_is_reported():
    r = peek_local("z.tar", b"\x28\xb5\x2f\xfd" + bytes(100))
    assert not r["listed"] and "zstd" in r["reason"] and r["format"] == "tar.zst"


def test_compressed_stream_parses_headers_split_across_pieces():
    # Many tiny members: headers straddle the 256 KiB output pieces of the inflater.
    members = [(f"d/{i:05d}.jpg", bytes(i % 700)) for i in range(3000)]
    for compression, module in (("gz", gzip), ("bz2", bz2), ("xz", lzma)):
        data = tar_bytes(members, compression=compression)
        assert module.decompress(data)  # a real stream
        r = peek_local("many" + {"gz": ".tgz", "bz2": ".tbz2", "xz": ".txz"}[compression], data)
        assert r["complete"] and r["member_count"] == 3000, compression
        assert r["extension_counts"] == {".jpg": 3000}


def test_tar_peeker_direct_use_with_unknown_size():
    data = tar_bytes(MEMBERS)
    r = peek_local("scans.tar", data, known_size=False)
    assert r["complete"] and r["member_count"] == 7 and r["total_size"] == len(data)
    assert isinstance(TarPeeker("a.tar"), TarPeeker)
