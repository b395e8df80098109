"""The test-archive builders agree with the standard library, and local_answer with HTTP."""

from __future__ import annotations

import io
import tarfile
import zipfile

from envision_spiders.archive import ByteRange
from localapi.archives import (
    ServedFileIO,
    local_answer,
    virtual_big_tar,
    virtual_tar,
    virtual_tgz,
    virtual_zip,
    virtual_zip64,
    zip64_bytes,
    zip_bytes,
)
from localapi.core import ServedFile, sparse_reader


def test_virtual_zip64_reads_with_zipfile():
    served, names = virtual_zip64(20_000, 60 * 10**9)
    assert served.size > 60 * 10**9
    with zipfile.ZipFile(ServedFileIO(served)) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == names
    assert infos[-1].header_offset > 2**32 and infos[-1].file_size == infos[0].file_size


def test_virtual_zip_without_zip64_and_forced():
    names = ["a/ä.png", "b.csv", "c/"]
    for zip64 in (None, True):
        served = virtual_zip(names, member_size=100, zip64=zip64)
        with zipfile.ZipFile(ServedFileIO(served)) as zf:
            assert zf.namelist() == names
        tail = served.read(served.size - 200, 200)
        assert (b"PK\x06\x06" in tail) == bool(zip64)


def test_zip64_bytes_is_zip64_and_valid():
    data = zip64_bytes(["x.png", ("y.txt", b"hello")])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("y.txt") == b"hello"
    assert b"PK\x06\x06" in data[-200:] and zip_bytes(["x.png"]).find(b"PK\x06\x06") == -1


def test_virtual_tar_reads_with_tarfile():
    served, names = virtual_big_tar(40, 3 * 10**9)
    assert served.size > 120 * 10**9
    with tarfile.open(fileobj=ServedFileIO(served)) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == names and all(m.size == 3 * 10**9 for m in members)
    long_name = "x/" * 80 + "deep.png"
    with tarfile.open(fileobj=ServedFileIO(virtual_tar([(long_name, 10)]))) as tf:
        assert tf.getnames() == [long_name]


def test_virtual_tgz_real_part_streams_with_tarfile():
    served, names = virtual_tgz([(f"{i}.png", 100_000) for i in range(100)], real_bytes=600_000)
    got = []
    try:
        with tarfile.open(fileobj=ServedFileIO(served), mode="r|gz") as tf:
            for m in tf:
                got.append(m.name)
    except (tarfile.ReadError, EOFError, OSError):
        pass  # the real stream stops; the rest is never meant to be read
    assert got == names[: len(got)] and len(got) >= len(names) - 1 >= 5


def test_sparse_reader_regions():
    read = sparse_reader(100, {10: b"abc", 50: b"XYZ", 98: b"!!"})
    assert read(0, 100) == bytes(10) + b"abc" + bytes(37) + b"XYZ" + bytes(45) + b"!!"
    assert read(11, 41) == b"bc" + bytes(37) + b"XY"
    assert read(60, 10) == bytes(10)
    assert read(99, 1) == b"!"


def test_local_answer_like_the_server():
    served = ServedFile.from_bytes(bytes(range(100)))
    a = local_answer(served, ByteRange.suffix(10))
    assert (a.status, a.content_range, a.data) == (206, "bytes 90-99/100", bytes(range(90, 100)))
    a = local_answer(served, ByteRange.suffix(1000))
    assert (a.status, a.content_range, len(a.data)) == (206, "bytes 0-99/100", 100)
    a = local_answer(served, ByteRange.span(5, 3))
    assert (a.status, a.content_range, a.data) == (206, "bytes 5-7/100", b"\x05\x06\x07")
    a = local_answer(served, ByteRange.span(500, 3))
    assert (a.status, a.content_range) == (416, "bytes */100")
    a = local_answer(served, ByteRange.span(50, 30), ignore_range=True)
    assert (a.status, a.total_size, a.data) == (200, 100, bytes(range(30)))  # cut at the budget
