"""Archive peeking through the real engine (whole crawls, in this process): what each
archive costs on the server side, and what lands on the saved record."""

from __future__ import annotations

from datetime import datetime, timezone
import re

import pytest

from localapi.archives import virtual_zip64, zip_bytes, zip_with_large_directory
from localapi.core import ServedFile
from localapi.payloads import make_payload
from localapi.zenodo import add_record

from tests.conftest import crawl_in_process, last_summary, saved_records

TERMS = "retinal OCT\n"


def _record(api, rid, files):
    add_record(api.state, rid, title="Retinal OCT volumes", description="retinal OCT scans", keywords=["OCT"],
               created=datetime(2024, 1, 1, tzinfo=timezone.utc), files=files)


def storage(rid, name):
    return f"/storage/zenodo/{rid}/{re.escape(name)}$"  # the server counts decoded paths


@pytest.fixture
def terms(tmp_path):
    p = tmp_path / "terms.txt"
    p.write_text(TERMS)
    return p


@pytest.mark.slow
def test_each_archive_kind_costs_what_it_should(api, tmp_path, terms):
    big_dir, names = zip_with_large_directory(3000)
    huge, huge_names = virtual_zip64(100_000, 50 * 10**9)
    import random

    files = {
        "small.zip": ServedFile.from_bytes(zip_bytes([("a/b/one.png", b"x" * 10), ("two.csv", b"y")])),
        "directory over 64k.zip": ServedFile.from_bytes(big_dir),
        "huge.zip": huge,
        "volumes.tar": make_payload("volumes.tar", random.Random(1)),
        "volumes.tar.gz": make_payload("volumes.tar.gz", random.Random(2)),
        "parts.7z": ServedFile.from_bytes(b"7z\xbc\xaf\x27\x1c" + b"\0" * 100),
        "scan.e2e": ServedFile.from_bytes(b"\0" * 100),
    }
    _record(api, 42, files)
    result = crawl_in_process(api, "zenodo", tmp_path / "d", SEARCH_TERMS=terms)
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = saved_records(tmp_path / "d", "zenodo").values()
    by_name = {a["name"]: a for a in record["archives"]}
    assert set(by_name) == {"small.zip", "directory over 64k.zip", "huge.zip", "volumes.tar", "volumes.tar.gz", "parts.7z"}
    s = api.state
    # small ZIP: one suffix request for the whole file
    assert s.count(storage(42, "small.zip")) == 1 and by_name["small.zip"]["member_count"] == 2
    assert s.bytes_for(storage(42, "small.zip")) == files["small.zip"].size
    # directory larger than the tail: exactly one more request, bytes at most tail + directory
    big = by_name["directory over 64k.zip"]
    assert s.count(storage(42, "directory over 64k.zip")) == 2 and big["complete"] and big["member_count"] == 3000
    assert s.bytes_for(storage(42, "directory over 64k.zip")) <= files["directory over 64k.zip"].size
    # 50 GB ZIP64: two requests, a few MB read
    h = by_name["huge.zip"]
    assert h["format"] == "zip64" and h["complete"] and h["member_count"] == 100_000
    assert s.count(storage(42, "huge.zip")) == 2 and s.bytes_for(storage(42, "huge.zip")) < 10 * 2**20
    assert by_name["volumes.tar"]["listed"] and by_name["volumes.tar.gz"]["listed"]
    # not listable: recorded with its reason, never requested
    assert by_name["parts.7z"]["listable"] is False and "7-Zip" in by_name["parts.7z"]["reason"]
    assert s.count(storage(42, "parts.7z")) == 0 and s.count(storage(42, "scan.e2e")) == 0
    # the members count as file evidence on the record
    assert ".png" in record["file_types"] and record["img_count"] >= 3000 + 100_000
    # redirects to storage kept the Range header
    assert all(e["range"] for e in s.entries(r"/storage/zenodo/42/"))
    summary = last_summary(tmp_path / "d", "zenodo")
    assert summary["stats"]["envision/archive/not_listable"] == 1
    assert summary["stats"]["envision/archive/listed"] == 5


def test_a_server_that_ignores_range_is_cut_at_the_budget(api, tmp_path, terms):
    huge, _ = virtual_zip64(1000, 2 * 10**9)
    _record(api, 43, {"whole.zip": huge})
    api.state.add_fault(path=r"/storage/zenodo/43/", kind="ignore_range", count=-1)
    result = crawl_in_process(api, "zenodo", tmp_path / "d", SEARCH_TERMS=terms)
    assert result.returncode == 0
    (record,) = saved_records(tmp_path / "d", "zenodo").values()
    (entry,) = record["archives"]
    assert entry["listed"] is False and "Range" in entry["reason"]
    assert entry["bytes_read"] <= 65_633
    # the server stopped sending soon after: far less than the 2 GB it offered
    assert api.state.bytes_for(r"/storage/zenodo/43/") < 16 * 2**20


def test_peeking_can_be_turned_off_and_hostile_archives_keep_the_record(api, tmp_path, terms):
    _record(api, 44, {"broken.zip": ServedFile.from_bytes(b"PK\x03\x04 not really a zip" * 100)})
    result = crawl_in_process(api, "zenodo", tmp_path / "off", SEARCH_TERMS=terms, ARCHIVE_PEEK_ENABLED="0")
    assert result.returncode == 0
    assert api.state.count(r"/storage/") == 0
    assert saved_records(tmp_path / "off", "zenodo")["44"]["archives"] == []
    result = crawl_in_process(api, "zenodo", tmp_path / "on", SEARCH_TERMS=terms)
    assert result.returncode == 0
    (entry,) = saved_records(tmp_path / "on", "zenodo")["44"]["archives"]
    assert entry["listed"] is False and entry["reason"]


def test_archives_per_record_are_capped(api, tmp_path, terms):
    files = {f"part{i:02d}.zip": ServedFile.from_bytes(zip_bytes([(f"img{i}.png", b"x")])) for i in range(5)}
    _record(api, 45, files)
    result = crawl_in_process(api, "zenodo", tmp_path / "d", SEARCH_TERMS=terms, ARCHIVE_PEEK_MAX_ARCHIVES="3")
    assert result.returncode == 0
    entries = saved_records(tmp_path / "d", "zenodo")["45"]["archives"]
    assert sum(1 for e in entries if e["listed"]) == 3
    assert sum(1 for e in entries if "ARCHIVE_PEEK_MAX_ARCHIVES" in (e.get("reason") or "")) == 2
    assert api.state.count(r"/storage/zenodo/45/") == 3


def test_a_small_zip_behind_a_server_that_ignores_range_is_read_whole(api, tmp_path, terms):
    data, names = zip_with_large_directory(3000)  # ~400 KB: larger than the tail, within the budget
    _record(api, 46, {"whole.zip": ServedFile.from_bytes(data)})
    api.state.add_fault(path=r"/storage/zenodo/46/", kind="ignore_range", count=-1)
    result = crawl_in_process(api, "zenodo", tmp_path / "d", SEARCH_TERMS=terms)
    assert result.returncode == 0
    (entry,) = saved_records(tmp_path / "d", "zenodo")["46"]["archives"]
    assert entry["listed"] and entry["complete"] and entry["member_count"] == 3000
    assert entry["requests"] == 1 and entry["bytes_read"] == len(data)
    assert entry["reason"] is None
    assert api.state.count(r"/storage/zenodo/46/") == 1


def test_a_refreshed_record_reuses_the_listing_of_an_unchanged_archive(api, tmp_path, terms):
    data, _ = zip_with_large_directory(3000)
    _record(api, 47, {"images.zip": ServedFile.from_bytes(data)})
    assert crawl_in_process(api, "zenodo", tmp_path / "d", SEARCH_TERMS=terms).returncode == 0
    first = saved_records(tmp_path / "d", "zenodo")["47"]["archives"]
    api.state.reset_counters()
    api.modify("zenodo", 1.0)  # a new title, the same files
    assert crawl_in_process(api, "zenodo", tmp_path / "d", SEARCH_TERMS=terms).returncode == 0
    record = saved_records(tmp_path / "d", "zenodo")["47"]
    assert record["title"].endswith("(revised)") and record["archives"] == first
    assert api.state.count(r"/storage/") == 0, "no peek for an archive that did not change"
    # a full run looks again
    assert crawl_in_process(api, "zenodo", tmp_path / "d", "-a", "full=1", SEARCH_TERMS=terms).returncode == 0
    assert api.state.count(r"/storage/zenodo/47/") == 2
