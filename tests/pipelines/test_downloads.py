"""Downloads: the gate and the queue, hostile names and URLs, and transfers against the
local API server (multi-file records, cuts and resumes, servers ignoring Range,
corrupt files, 429s, credentials, caps, the disk check, dry runs, a crawl with
DOWNLOAD_ENABLED)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from envision_spiders.credentials import StaticCredentials, credentials_for
from envision_spiders.downloads.queue import DownloadQueue, classification_of, gate
from envision_spiders.downloads.runner import DownloadConfig, DownloadRunner, collect_candidates, plan_record
from envision_spiders.downloads.safety import UnsafeURL, assign_paths, check_url, redact_url, safe_relpath
from envision_spiders.downloads.transfer import parse_checksum
from localapi import ServedFile
from localapi.downloads import cut_once, state_of
from envision_spiders.storage import atomic_write_json, read_jsonl, record_path
from tests.conftest import crawl_env, scrapy_in_process

TOKEN = "tok-NEVER-in-files-or-logs"


# ------------------------------------------------------------------ helpers
def served(api, path: str, size: int = 50_000, seed: int = 0, **kw: Any) -> tuple[str, ServedFile]:
    data = hashlib.sha256(f"{path}{seed}".encode()).digest() * (size // 32 + 1)
    f = ServedFile.from_bytes(data[:size], **kw)
    api.state.add_file(path, f)
    return f"{api.base_url}/storage/{path}", f


def file_entry(name: str, url: str, f: ServedFile | None, checksum: str | None = "md5", **kw: Any) -> dict:
    cs = None
    if f is not None and checksum == "md5":
        cs = f"md5:{f.md5}"
    elif f is not None and checksum == "sha256":
        cs = f"sha256:{f.sha256}"
    elif checksum not in (None, "md5", "sha256"):
        cs = checksum
    entry = {"name": name, "size_bytes": f.size if f is not None else None, "url": url, "file_id": name, "checksum": cs}
    entry.update(kw)
    return entry


def put_record(data_dir: Path, source: str, sid: str, files: list[dict], **fields: Any) -> dict:
    record = {"source": source, "source_id": sid, "doi": f"10.1234/{sid}", "url": f"https://example.org/{sid}",
              "title": f"Record {sid}", "files": files, **fields}
    atomic_write_json(record_path(data_dir, source, sid), record)
    return record


def config(tmp_path: Path, **kw: Any) -> DownloadConfig:
    values = dict(data_dir=tmp_path / "data", results_dir=tmp_path / "results", scale=0.0, min_free_bytes=0,
                  retries=3, timeout=20.0)
    values.update(kw)
    return DownloadConfig(**values)


def run(cfg: DownloadConfig, *candidates: dict, credentials: dict | None = None) -> tuple[list, DownloadRunner]:
    runner = DownloadRunner(cfg, credentials=credentials)

    async def go():
        async with runner:
            return await runner.run(candidates)

    return asyncio.run(go()), runner


# Dryad and Kaggle serve files only to authenticated clients: tests about other behaviour
# give them credentials (these apply to their API sites only, not to /storage).
DRYAD_ACCOUNT = {"dryad": StaticCredentials("dryad", "https://datadryad.org", "Bearer", "test-token", "test")}
KAGGLE_ACCOUNT = {"kaggle": StaticCredentials("kaggle", "https://www.kaggle.com", "Bearer", "test-token", "test")}


def cand(source: str, sid: str, prob: float = 0.95) -> dict:
    return {"source": source, "source_id": sid, "label": "EYE_IMAGING", "prob_eye_imaging": prob}


def manifest(cfg: DownloadConfig, source: str, folder: str) -> dict:
    return json.loads((cfg.downloads_dir / source / folder / "manifest.json").read_text())


def files_on_disk(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", ".envision-download.lock")}


# ------------------------------------------------------------------ pure helpers
def test_gate_reads_nested_and_top_level_classification():
    assert classification_of({"classification": {"label": "EYE_IMAGING", "prob_eye_imaging": 0.9}}) == ("EYE_IMAGING", 0.9)
    assert classification_of({"label": "NEGATIVE", "prob_eye_imaging": 0.1}) == ("NEGATIVE", 0.1)
    assert classification_of({"title": "x"}) == (None, None)
    assert gate({"label": "EYE_IMAGING", "prob_eye_imaging": 0.8}, 0.8) == (True, "")
    assert gate({"label": "EYE_IMAGING", "prob_eye_imaging": 0.79}, 0.8)[0] is False
    assert gate({"label": "NEGATIVE", "prob_eye_imaging": 0.99}, 0.8) == (False, "label NEGATIVE")
    assert gate({"title": "unclassified"}, 0.8) == (False, "not classified")
    assert gate({"label": "EYE_IMAGING", "prob_eye_imaging": True}, 0.8) == (False, "no prob_eye_imaging")
    assert gate({"label": "EYE_IMAGING", "prob_eye_imaging": 0.95, "duplicate_of": "zenodo:1"}, 0.8)[0] is False


def test_queue_is_idempotent(tmp_path):
    q = DownloadQueue(tmp_path)
    assert q.add("zenodo", "10/1", label="EYE_IMAGING", prob=0.9, threshold=0.8, origin="crawl") is True
    assert q.add("zenodo", "10/1", label="EYE_IMAGING", prob=0.91, threshold=0.8, origin="crawl") is False
    q.add("dryad", "doi:10.5061/x", label="EYE_IMAGING", prob=0.85, threshold=0.8, origin="results")
    entries = q.entries()
    assert [(e["source"], e["source_id"]) for e in entries] == [("dryad", "doi:10.5061/x"), ("zenodo", "10/1")]
    assert entries[1]["prob_eye_imaging"] == 0.91
    assert [e["source_id"] for e in q.entries(["zenodo"])] == ["10/1"]
    q.remove("zenodo", "10/1")
    assert not q.contains("zenodo", "10/1") and len(q.entries()) == 1


@pytest.mark.parametrize(
    "name,expected",
    [
        ("../../etc/passwd", "etc/passwd"),
        ("/etc/passwd", "etc/passwd"),
        ("C:\\Users\\x\\scan.dcm", "Users/x/scan.dcm"),
        ("d:relative.png", "relative.png"),
        ("a\x00b.png", "a_b.png"),
        ("imgs/./../imgs/x.png", "imgs/imgs/x.png"),
        ("..", "fallback"),
        ("", "fallback"),
        ("trailing. ", "trailing"),
        ("CON", "_CON"),
        ("we\u0301ird/\u0436.tif", "we\u0301ird/\u0436.tif"),
    ],
)
def test_safe_relpath(name, expected):
    assert safe_relpath(name, "fallback") == expected


def test_safe_relpath_limits_component_length_keeping_extension():
    p = safe_relpath("x" * 400 + ".nii.gz")
    assert p.endswith(".nii.gz") and len(p.encode()) <= 255


def test_assign_paths_never_collide():
    names = ["a/README.txt", "b/README.txt", "README.txt", "readme.txt", "README.txt", "manifest.json",
             "x", "x/inner.png", "data.part", "../README.txt"]
    paths = assign_paths((n, f"f{i}") for i, n in enumerate(names))
    assert paths[:3] == ["a/README.txt", "b/README.txt", "README.txt"]
    assert len({p.casefold() for p in paths}) == len(paths)
    assert "manifest.json" not in paths and not any(p.endswith(".part") for p in paths)
    assert paths[7].startswith("x~") and paths[7].endswith("/inner.png")  # "x" is a file already


@pytest.mark.timeout(20)
def test_long_names_leave_room_for_every_suffix_and_stay_distinct():
    """Names are cut with room for the ``.part`` and ``.part.json`` the downloader adds,
    keeping their extension; two long names cut to the same bytes get ``~2`` inside the
    limit (the cut used to drop the ``~2`` again, and assign_paths never returned)."""
    from envision_spiders.downloads.safety import MAX_NAME_BYTES, MAX_PATH_BYTES, PART_SUFFIX

    names = ["a" * 300 + ".png", "a" * 300 + "b.png", "é" * 300 + ".nii.gz", "é" * 300 + ".nii.gz",
             "n" * 300 + ".part", "/".join(["d" * 255] * 31) + "/f.png", "x" * 600]
    paths = assign_paths((n, f"f{i}") for i, n in enumerate(names))
    assert len({p.casefold() for p in paths}) == len(paths)
    for name, path in zip(names, paths):
        last = path.rsplit("/", 1)[-1]
        assert len(("." + last + PART_SUFFIX + ".json.abcdefgh.tmp").encode()) <= 255, path
        assert len(path.encode()) <= MAX_PATH_BYTES and len(last.encode()) <= MAX_NAME_BYTES
    assert paths[0].endswith(".png") and paths[1].endswith("~2.png") and paths[3].endswith("~2.nii.gz")
    assert not paths[4].endswith(".part")


def test_long_ids_make_short_distinct_file_names():
    from envision_spiders.storage import SAFE_ID_BYTES, safe_id

    a, b = safe_id("é" * 300), safe_id("é" * 299 + "x")
    assert a != b and max(len(a.encode()), len(b.encode())) <= SAFE_ID_BYTES
    assert safe_id("10.5061/dryad.8515") == "10.5061_dryad.8515"


def test_check_url():
    assert check_url("https://zenodo.org/api/records/1/files/a.zip/content")
    for bad in ["file:///etc/passwd", "data:text/plain,hi", "ftp://x/y", "javascript:alert(1)", "https://u:p@h/x",
                "http:///nohost", "https://h:99999/x", "gopher://h/", "", None, 42, "https://h/x\r\nX: y"]:
        with pytest.raises(UnsafeURL):
            check_url(bad)


def test_parse_checksum_and_redact():
    assert parse_checksum("md5:" + "A" * 32) == ("md5", "a" * 32)
    assert parse_checksum("sha-256:" + "b" * 64) == ("sha256", "b" * 64)
    assert parse_checksum("c" * 32) == ("md5", "c" * 32)
    assert parse_checksum("md5:xyz") == (None, None)
    assert parse_checksum("md5:" + "a" * 64) == (None, None)  # wrong length for md5
    assert parse_checksum(None) == (None, None)
    assert redact_url("https://s.example/f?X-Amz-Signature=abc&x=1&access_token=t") == \
        "https://s.example/f?X-Amz-Signature=REDACTED&x=1&access_token=REDACTED"


# ------------------------------------------------------------------ transfers
def test_multi_file_record_downloaded_and_verified(api, tmp_path):
    cfg = config(tmp_path)
    u1, f1 = served(api, "rec1/train/img 001.png", 120_000)
    u2, f2 = served(api, "rec1/labels.csv", 3_000)
    u3, f3 = served(api, "rec1/scans.zip", 400_000)
    files = [
        file_entry("train/img 001.png", u1, f1, "md5"),
        file_entry("labels.csv", u2.replace("/storage/", "/redirect/"), f2, "sha256"),
        file_entry("scans.zip", u3, f3, None),  # no checksum: size checked, sha256 recorded
    ]
    put_record(cfg.data_dir, "zenodo", "rec/1", files)
    DownloadQueue(cfg.data_dir).add("zenodo", "rec/1", label="EYE_IMAGING", prob=0.9, threshold=0.8, origin="crawl")
    reports, runner = run(cfg, cand("zenodo", "rec/1"))
    assert reports[0].status == "complete" and reports[0].counts["downloaded"] == 3
    folder = cfg.downloads_dir / "zenodo" / "rec_1"
    assert files_on_disk(folder) == {"train/img 001.png": f1.data, "labels.csv": f2.data, "scans.zip": f3.data}
    m = manifest(cfg, "zenodo", "rec_1")
    assert m["source_id"] == "rec/1" and m["status"] == "complete" and m["threshold"] == 0.8
    assert m["prob_eye_imaging"] == 0.95 and m["doi"] == "10.1234/rec/1" and m["title"] == "Record rec/1"
    by_name = {f["name"]: f for f in m["files"]}
    assert by_name["train/img 001.png"]["checksum_computed"] == f"md5:{f1.md5}" == by_name["train/img 001.png"]["checksum_expected"]
    assert by_name["labels.csv"]["algorithm"] == "sha256" and by_name["labels.csv"]["checksum_computed"] == f"sha256:{f2.sha256}"
    assert by_name["scans.zip"]["checksum_expected"] is None and by_name["scans.zip"]["checksum_computed"] == f"sha256:{f3.sha256}"
    assert all(f["status"] == "downloaded" and f["size_on_disk"] == f["expected_size"] and f["finished_at"] for f in m["files"])
    assert m["totals"]["bytes_on_disk"] == f1.size + f2.size + f3.size
    assert not DownloadQueue(cfg.data_dir).contains("zenodo", "rec/1")  # complete: out of the queue
    events = [e["event"] for e in read_jsonl(cfg.downloads_dir / "zenodo" / "download-log.jsonl")]
    assert events[0] == "started" and events.count("downloaded") == 3 and events[-1] == "record_done"
    assert not list(folder.rglob("*.part*"))

    # a second run verifies what is there and fetches nothing
    api.state.reset_counters()
    reports, _ = run(cfg, cand("zenodo", "rec/1"))
    assert reports[0].counts["verified-existing"] == 3 and api.state.count("/storage/") == 0
    assert {f["status"] for f in manifest(cfg, "zenodo", "rec_1")["files"]} == {"verified-existing"}


def test_existing_file_that_does_not_match_is_fetched_again(api, tmp_path):
    cfg = config(tmp_path)
    url, f = served(api, "rec2/a.bin", 10_000)
    put_record(cfg.data_dir, "zenodo", "2", [file_entry("a.bin", url, f)])
    target = cfg.downloads_dir / "zenodo" / "2" / "a.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\0" * f.size)  # right size, wrong bytes
    reports, _ = run(cfg, cand("zenodo", "2"))
    assert reports[0].counts["downloaded"] == 1 and target.read_bytes() == f.data


def test_cut_transfer_resumes_with_range(api, tmp_path):
    cfg = config(tmp_path)
    whole = ServedFile.from_bytes(os.urandom(3_000_000))
    api.state.add_file("rec3/big.tif", cut_once(whole, 1_500_000))
    put_record(cfg.data_dir, "figshare", "3", [file_entry("big.tif", f"{api.base_url}/storage/rec3/big.tif", whole)])
    reports, _ = run(cfg, cand("figshare", "3"))
    assert reports[0].status == "complete"
    assert (cfg.downloads_dir / "figshare" / "3" / "big.tif").read_bytes() == whole.data
    log = api.state.entries("/storage/rec3/")
    assert [e["status"] for e in log] == [200, 206]
    entry = manifest(cfg, "figshare", "3")["files"][0]
    kept = entry["resumed_from"]  # what reached the disk before the cut
    assert 0 < kept <= 1_500_000 and log[1]["range"] == f"bytes={kept}-"
    assert log[1]["bytes"] == whole.size - kept  # only the rest is fetched again
    assert entry["attempts"] == 2 and entry["restarts"] == 0


def test_resume_across_runs_from_a_part_file(api, tmp_path):
    """A .part left by a killed run is continued by the next run, not restarted."""
    cfg = config(tmp_path)
    url, f = served(api, "rec4/vol.e2e", 500_000)
    put_record(cfg.data_dir, "osf", "abcde", [file_entry("vol.e2e", url, f, "sha256")])
    plan = plan_record(cfg, cand("osf", "abcde"))
    job = plan.files[0].job
    job.part.parent.mkdir(parents=True, exist_ok=True)
    job.part.write_bytes(f.data[:200_000])
    atomic_write_json(job.part_meta, {"url": job.url, "digest": job.expected_digest, "size": job.expected_size})
    reports, _ = run(cfg, cand("osf", "abcde"))
    assert reports[0].status == "complete" and job.path.read_bytes() == f.data
    assert [e["range"] for e in api.state.entries("/storage/rec4/")] == ["bytes=200000-"]
    assert not job.part.exists() and not job.part_meta.exists()


def test_part_file_of_another_version_is_not_resumed(api, tmp_path):
    cfg = config(tmp_path)
    url, f = served(api, "rec5/a.bin", 100_000)
    put_record(cfg.data_dir, "zenodo", "5", [file_entry("a.bin", url, f)])
    job = plan_record(cfg, cand("zenodo", "5")).files[0].job
    job.part.parent.mkdir(parents=True, exist_ok=True)
    job.part.write_bytes(b"x" * 50_000)
    atomic_write_json(job.part_meta, {"url": job.url, "digest": "0" * 32, "size": job.expected_size})
    reports, _ = run(cfg, cand("zenodo", "5"))
    assert reports[0].status == "complete" and job.path.read_bytes() == f.data
    assert [e["range"] for e in api.state.entries("/storage/rec5/")] == [None]


def test_server_ignoring_range_restarts_cleanly(api, tmp_path):
    cfg = config(tmp_path)
    whole = ServedFile.from_bytes(os.urandom(2_000_000), ignore_range=True)
    api.state.add_file("rec6/a.fds", cut_once(whole, 1_000_000))
    put_record(cfg.data_dir, "dryad", "6", [file_entry("a.fds", f"{api.base_url}/storage/rec6/a.fds", whole, "sha256")])
    reports, _ = run(cfg, cand("dryad", "6"), credentials=DRYAD_ACCOUNT)
    assert reports[0].status == "complete"
    assert (cfg.downloads_dir / "dryad" / "6" / "a.fds").read_bytes() == whole.data
    log = api.state.entries("/storage/rec6/")
    assert [e["status"] for e in log] == [200, 200] and log[1]["range"] is not None
    entry = manifest(cfg, "dryad", "6")["files"][0]
    assert entry["restarts"] == 1 and entry["status"] == "downloaded"
    events = [e["event"] for e in read_jsonl(cfg.downloads_dir / "dryad" / "download-log.jsonl")]
    assert "restart" in events


def test_checksum_mismatch_keeps_nothing_corrupt(api, tmp_path):
    cfg = config(tmp_path)
    url, f = served(api, "rec7/a.dcm", 80_000)
    url2, f2 = served(api, "rec7/b.dcm", 1_000)
    files = [file_entry("a.dcm", url, f, "md5:" + "0" * 32), file_entry("b.dcm", url2, f2)]
    put_record(cfg.data_dir, "zenodo", "7", files)
    DownloadQueue(cfg.data_dir).add("zenodo", "7", label="EYE_IMAGING", prob=0.9, threshold=0.8, origin="crawl")
    reports, _ = run(cfg, cand("zenodo", "7"))
    folder = cfg.downloads_dir / "zenodo" / "7"
    assert reports[0].status == "incomplete" and reports[0].counts == {"failed": 1, "downloaded": 1}
    assert not (folder / "a.dcm").exists() and not list(folder.glob("*.part*"))
    assert (folder / "b.dcm").read_bytes() == f2.data
    entry = next(x for x in manifest(cfg, "zenodo", "7")["files"] if x["name"] == "a.dcm")
    assert entry["status"] == "failed" and "checksum mismatch" in entry["reason"]
    assert entry["checksum_expected"] == "md5:" + "0" * 32 and entry["size_on_disk"] is None
    assert DownloadQueue(cfg.data_dir).contains("zenodo", "7")  # retried next run
    assert api.state.count("/storage/rec7/a.dcm") == 1  # a whole transfer that mismatches is final


def test_truncated_answer_without_error_is_resumed(api, tmp_path):
    """A body shorter than the record's size (the server closed early without a
    framing error) is kept and continued, not accepted."""
    cfg = config(tmp_path)
    whole = ServedFile.from_bytes(os.urandom(200_000))
    short = ServedFile.from_bytes(whole.data[:120_000])
    api.state.add_file("rec8/a.bin", short)
    put_record(cfg.data_dir, "zenodo", "8", [file_entry("a.bin", f"{api.base_url}/storage/rec8/a.bin", whole)])

    # the first answer is short; then the server has the whole file
    reports, _ = run(cfg, cand("zenodo", "8"))
    assert reports[0].counts["failed"] == 1
    part = cfg.downloads_dir / "zenodo" / "8" / "a.bin.part"
    assert part.read_bytes() == whole.data[:120_000]
    api.state.add_file("rec8/a.bin", whole)
    reports, _ = run(cfg, cand("zenodo", "8"))
    assert reports[0].status == "complete" and (cfg.downloads_dir / "zenodo" / "8" / "a.bin").read_bytes() == whole.data
    assert api.state.entries("/storage/rec8/")[-1]["range"] == "bytes=120000-"


def test_429_on_download_is_waited_out(api, tmp_path):
    cfg = config(tmp_path)
    url, f = served(api, "rec9/a.png", 20_000)
    api.state.add_fault(path="/storage/rec9/", kind="429", retry_after="1", count=2)
    put_record(cfg.data_dir, "zenodo", "9", [file_entry("a.png", url, f)])
    reports, runner = run(cfg, cand("zenodo", "9"))
    assert reports[0].status == "complete"
    log = api.state.entries("/storage/rec9/")
    assert [e["status"] for e in log] == [429, 429, 200]
    assert log[2]["time"] - log[0]["time"] >= 1.9  # Retry-After: 1, twice
    assert runner.counts["events_rate_limited"] == 2


def test_dryad_ratelimit_reset_header_pauses_the_host(api, tmp_path):
    """Dryad answers 429 with RateLimit-Reset and no Retry-After."""
    cfg = config(tmp_path)
    urls = [served(api, f"rec10/f{i}.png", 5_000) for i in range(3)]
    api.state.set_rate_limit("/storage/rec10/", [(2, 2.0)], retry_header="RateLimit-Reset")
    put_record(cfg.data_dir, "dryad", "10", [file_entry(f"f{i}.png", u, f) for i, (u, f) in enumerate(urls)])
    reports, runner = run(cfg, cand("dryad", "10"), credentials=DRYAD_ACCOUNT)
    assert reports[0].counts["downloaded"] == 3
    statuses = [e["status"] for e in api.state.entries("/storage/rec10/")]
    assert statuses.count(200) == 3 and statuses.count(429) >= 1
    assert runner.counts["events_rate_limited"] >= 1


def test_hostile_names_stay_inside_the_record_folder(api, tmp_path):
    cfg = config(tmp_path)
    names = ["../../etc/passwd", "/abs/olute.txt", "C:\\Windows\\win.ini", "nul\x00byte.png",
             "one/README.txt", "two/README.txt", "README.txt", "readme.TXT", "manifest.json", "../../../../tmp/x.part"]
    files = []
    contents = {}
    for i, name in enumerate(names):
        url, f = served(api, f"rec11/{i}", 1_000 + i)
        files.append(file_entry(name, url, f))
        contents[i] = f.data
    put_record(cfg.data_dir, "kaggle", "owner/slug", files)
    reports, _ = run(cfg, cand("kaggle", "owner/slug"), credentials=KAGGLE_ACCOUNT)
    assert reports[0].status == "complete"
    folder = cfg.downloads_dir / "kaggle" / "owner_slug"
    on_disk = files_on_disk(folder)
    assert len(on_disk) == len(names)
    m = manifest(cfg, "kaggle", "owner_slug")
    for i, entry in enumerate(m["files"]):
        assert entry["original_name"] == names[i]
        assert on_disk[entry["name"]] == contents[i]
        assert (folder / entry["name"]).resolve().is_relative_to(folder.resolve())
    got = [e["name"] for e in m["files"]]
    assert got[:6] == ["etc/passwd", "abs/olute.txt", "Windows/win.ini", "nul_byte.png", "one/README.txt", "two/README.txt"]
    assert got[6] == "README.txt" and got[7] != "readme.TXT" and got[8] != "manifest.json"
    assert json.loads((folder / "manifest.json").read_text())["source"] == "kaggle"  # ours, not the file's
    assert not (tmp_path / "etc").exists() and not (cfg.downloads_dir / "kaggle" / "etc").exists()


def test_symlinked_folder_is_refused(api, tmp_path):
    cfg = config(tmp_path)
    url, f = served(api, "rec12/x", 100)
    put_record(cfg.data_dir, "zenodo", "12", [file_entry("sub/x.png", url, f)])
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = cfg.downloads_dir / "zenodo" / "12"
    folder.mkdir(parents=True)
    (folder / "sub").symlink_to(outside, target_is_directory=True)
    reports, _ = run(cfg, cand("zenodo", "12"))
    assert reports[0].counts["failed"] == 1 and not list(outside.iterdir())


def test_unsafe_urls_are_refused_without_a_request(api, tmp_path):
    cfg = config(tmp_path)
    url, f = served(api, "rec13/ok.png", 1_000)
    files = [
        file_entry("secret.txt", "file:///etc/passwd", None),
        file_entry("data.txt", "data:text/plain;base64,aGk=", None),
        file_entry("ftp.txt", "ftp://example.org/x", None),
        file_entry("ok.png", url, f),
    ]
    put_record(cfg.data_dir, "zenodo", "13", files)
    reports, _ = run(cfg, cand("zenodo", "13"))
    m = manifest(cfg, "zenodo", "13")
    assert [f["status"] for f in m["files"]] == ["skipped", "skipped", "skipped", "downloaded"]
    assert all("refused URL" in f["reason"] for f in m["files"][:3])
    assert m["status"] == "complete" and reports[0].counts == {"skipped": 3, "downloaded": 1}
    assert files_on_disk(cfg.downloads_dir / "zenodo" / "13") == {"ok.png": f.data}


def test_size_cap_skips_the_record_and_stops_unannounced_sizes(api, tmp_path):
    cfg = config(tmp_path, max_bytes=50_000)
    big = [served(api, f"rec14/{i}.png", 30_000) for i in range(2)]
    put_record(cfg.data_dir, "zenodo", "14", [file_entry(f"{i}.png", u, f) for i, (u, f) in enumerate(big)])
    reports, _ = run(cfg, cand("zenodo", "14"))
    m = manifest(cfg, "zenodo", "14")
    assert reports[0].status == "skipped" and m["status"] == "skipped"
    assert all(f["status"] == "skipped" and "DOWNLOAD_MAX_BYTES" in f["reason"] for f in m["files"])
    assert api.state.count("/storage/rec14/") == 0

    # sizes the record does not state are capped while streaming
    u, f = served(api, "rec15/unknown.bin", 80_000)
    put_record(cfg.data_dir, "zenodo", "15", [{"name": "unknown.bin", "url": u, "size_bytes": None, "checksum": None}])
    reports, _ = run(cfg, cand("zenodo", "15"))
    entry = manifest(cfg, "zenodo", "15")["files"][0]
    assert entry["status"] == "skipped" and "DOWNLOAD_MAX_BYTES" in entry["reason"]
    folder = cfg.downloads_dir / "zenodo" / "15"
    assert not (folder / "unknown.bin").exists() and not list(folder.glob("*.part*"))


def test_free_disk_check_before_each_file(api, tmp_path):
    cfg = config(tmp_path, min_free_bytes=10**18)
    url, f = served(api, "rec16/a.png", 1_000)
    put_record(cfg.data_dir, "zenodo", "16", [file_entry("a.png", url, f)])
    reports, _ = run(cfg, cand("zenodo", "16"))
    entry = manifest(cfg, "zenodo", "16")["files"][0]
    assert entry["status"] == "failed" and "not enough free disk space" in entry["reason"]
    assert api.state.count("/storage/rec16/") == 0


def test_an_over_long_name_downloads_and_no_file_error_escapes_its_file(api, tmp_path, monkeypatch):
    """A 300-character name became 255 bytes, then ``.part`` made it too long: the error
    escaped the per-file handling, the manifest said verified files were pending, and
    every run ended unhealthy. Now it downloads, and an error of one file (here one
    planted in the transfer) ends that file only."""
    from envision_spiders.downloads import transfer

    cfg = config(tmp_path)
    long_url, long = served(api, "rec44/long.png", 3_000)
    ok_url, ok = served(api, "rec44/ok.png", 2_000)
    boom_url, boom = served(api, "rec44/boom.png", 1_000)
    put_record(cfg.data_dir, "zenodo", "44", [file_entry("z" * 300 + ".png", long_url, long), file_entry("ok.png", ok_url, ok),
                                             file_entry("boom.png", boom_url, boom)])
    real_run = transfer.FileTransfer.run

    async def broken(self, job):
        if job.name == "boom.png":
            raise RuntimeError("planted")
        return await real_run(self, job)

    monkeypatch.setattr(transfer.FileTransfer, "run", broken)
    reports, runner = run(cfg, cand("zenodo", "44"))
    m = manifest(cfg, "zenodo", "44")
    status = {f["name"]: f["status"] for f in m["files"]}
    assert status == {"z" * 227 + ".png": "downloaded", "ok.png": "downloaded", "boom.png": "failed"}, status
    assert "planted" in next(f["reason"] for f in m["files"] if f["name"] == "boom.png")
    assert m["totals"]["pending"] == 0 and not runner.counts["record_errors"]
    monkeypatch.setattr(transfer.FileTransfer, "run", real_run)
    reports, runner = run(cfg, cand("zenodo", "44"))
    m = manifest(cfg, "zenodo", "44")
    assert reports[0].status == "complete" and m["status"] == "complete", m
    assert sorted(f["status"] for f in m["files"]) == ["downloaded", "verified-existing", "verified-existing"]
    assert files_on_disk(cfg.downloads_dir / "zenodo" / "44")["z" * 227 + ".png"] == long.data


def test_a_file_verified_before_is_never_reported_pending(api, tmp_path):
    """Until a run looks at a file again, its manifest shows what the last run knew: a
    file verified then and untouched since is verified, not pending (a run killed in
    the middle leaves that manifest)."""
    from envision_spiders.downloads.manifest import RecordManifest
    from envision_spiders.downloads.runner import plan_record

    cfg = config(tmp_path)
    url, f = served(api, "rec45/a.png", 1_000)
    put_record(cfg.data_dir, "zenodo", "45", [file_entry("a.png", url, f)])
    run(cfg, cand("zenodo", "45"))
    plan = plan_record(cfg, cand("zenodo", "45"))
    m = RecordManifest(plan.folder, plan.header)
    p = plan.files[0]
    entry = m.add_file(p.job, name="a.png", original_name="a.png", url=url, file_id="a.png", expected_size=f.size,
                       checksum_expected=f"md5:{f.md5}", algorithm="md5")
    assert entry["status"] == "verified-existing"
    (plan.folder / "a.png").write_bytes(b"changed")
    m = RecordManifest(plan.folder, plan.header)
    entry = m.add_file(p.job, name="a.png", original_name="a.png", url=url, file_id="a.png", expected_size=f.size,
                       checksum_expected=f"md5:{f.md5}", algorithm="md5")
    assert entry["status"] == "pending"


GB = 10**9
GB = 10**9


def test_a_declared_size_larger_than_the_free_space_is_refused_before_a_byte(api, tmp_path):
    """The record does not say the size; the server declares 50 GB (Content-Length of a
    virtual file). Before anything is written it is compared with the free space."""
    from localapi.core import sparse_reader

    cfg = config(tmp_path, min_free_bytes=GB, free_space=lambda folder: 10 * GB, max_bytes=0)
    api.state.add_file("rec40/huge.bin", ServedFile(size=50 * GB, reader=sparse_reader(50 * GB, {})))
    put_record(cfg.data_dir, "zenodo", "40",
               [{"name": "huge.bin", "url": f"{api.base_url}/storage/rec40/huge.bin", "size_bytes": None, "checksum": None}])
    run(cfg, cand("zenodo", "40"))
    entry = manifest(cfg, "zenodo", "40")["files"][0]
    assert entry["status"] == "failed", entry
    assert "the server declares 50000000000 bytes" in entry["reason"] and "10.00 GB free" in entry["reason"]
    assert api.state.bytes_for("/storage/rec40/") < 64 << 20, "the body was not read (what the socket buffers took only)"
    assert not list((cfg.downloads_dir / "zenodo" / "40").glob("huge.bin*")), "nothing written"


class ShrinkingDisk:
    """Free space that drops below the reserve once ``after`` bytes were written to the
    record folder (another process filling the disk)."""

    def __init__(self, folder: Path, after: int) -> None:
        self.folder, self.after, self.full = folder, after, True

    def __call__(self, folder: Path) -> int:
        written = sum(p.stat().st_size for p in self.folder.rglob("*.part")) if self.folder.exists() else 0
        return 10 * GB if written < self.after or not self.full else GB // 2


@pytest.mark.parametrize("takes_ranges", [True, False])
def test_the_free_space_floor_stops_a_file_and_keeps_only_a_resumable_part(api, tmp_path, takes_ranges):
    folder = tmp_path / "data" / "downloads" / "zenodo" / "41"
    disk = ShrinkingDisk(folder, after=3 << 20)
    cfg = config(tmp_path, min_free_bytes=GB, free_space=disk, retries=0)
    url, f = served(api, "rec41/scan.nii", 8 << 20, ignore_range=not takes_ranges)
    put_record(cfg.data_dir, "zenodo", "41", [file_entry("scan.nii", url, f)])
    run(cfg, cand("zenodo", "41"))
    entry = manifest(cfg, "zenodo", "41")["files"][0]
    assert entry["status"] == "failed" and "below DOWNLOAD_MIN_FREE_BYTES" in entry["reason"], entry
    part = folder / "scan.nii.part"
    if not takes_ranges:
        assert "the partial file is deleted: the server cannot resume it" in entry["reason"]
        assert not part.exists()
        return
    assert "is kept: the next run resumes it" in entry["reason"]
    assert 3 << 20 <= part.stat().st_size < f.size
    events = [json.loads(line)["event"] for line in (cfg.downloads_dir / "zenodo" / "download-log.jsonl").open()]
    assert "failed" in events
    disk.full = False  # space again: the next run resumes where it stopped
    api.state.reset_counters()
    run(cfg, cand("zenodo", "41"))
    assert manifest(cfg, "zenodo", "41")["files"][0]["status"] == "downloaded"
    assert (folder / "scan.nii").read_bytes() == f.data
    assert [e["range"] for e in api.state.entries("/storage/rec41/")][0].startswith("bytes=")


def test_a_body_of_unknown_length_is_cut(api, tmp_path):
    """Neither the record nor the server states a size (a chunked answer that does not
    end): the file is cut at DOWNLOAD_MAX_UNKNOWN_BYTES, and nothing of it stays."""
    cfg = config(tmp_path, max_bytes=0, max_unknown_bytes=2 << 20)
    put_record(cfg.data_dir, "zenodo", "42", [{"name": "stream.bin", "url": f"{api.base_url}/dl/endless?stop={64 << 20}",
                                               "size_bytes": None, "checksum": None}])
    run(cfg, cand("zenodo", "42"))
    entry = manifest(cfg, "zenodo", "42")["files"][0]
    assert entry["status"] == "skipped" and "DOWNLOAD_MAX_UNKNOWN_BYTES" in entry["reason"], entry
    assert not list((cfg.downloads_dir / "zenodo" / "42").glob("stream.bin*"))


def test_a_sender_that_trickles_a_byte_per_read_meets_a_deadline(api, tmp_path):
    """One byte every 20 ms never trips a read timeout; after the grace (DOWNLOAD_TIMEOUT)
    the transfer must average DOWNLOAD_MIN_SPEED, so it is stopped within seconds."""
    import time

    cfg = config(tmp_path, timeout=1.0, min_speed=1000.0, retries=0)
    _, f = served(api, "rec43/slow.png", 2_000)
    put_record(cfg.data_dir, "zenodo", "43", [file_entry("slow.png", f"{api.base_url}/dl/trickle/rec43/slow.png?interval=0.02", f)])
    started = time.monotonic()
    run(cfg, cand("zenodo", "43"))
    entry = manifest(cfg, "zenodo", "43")["files"][0]
    assert entry["status"] == "failed" and "below DOWNLOAD_MIN_SPEED" in entry["reason"], entry
    assert time.monotonic() - started < 30  # 2,000 bytes at 50 a second would take 40 s


def test_missing_record_and_empty_record(api, tmp_path):
    cfg = config(tmp_path)
    put_record(cfg.data_dir, "datacite", "10.1/empty", [])
    reports, _ = run(cfg, cand("zenodo", "nowhere"), cand("datacite", "10.1/empty"))
    assert [r.status for r in reports] == ["missing", "skipped"]
    assert manifest(cfg, "datacite", "10.1_empty")["reason"] == "the record lists no downloadable files"


def test_a_locked_record_is_left_to_its_owner(api, tmp_path):
    from envision_spiders.downloads.runner import RecordLock

    cfg = config(tmp_path)
    url, f = served(api, "rec17/a.png", 1_000)
    put_record(cfg.data_dir, "zenodo", "17", [file_entry("a.png", url, f)])
    lock = RecordLock(cfg.downloads_dir / "zenodo" / "17")
    assert lock.acquire()
    try:
        reports, _ = run(cfg, cand("zenodo", "17"))
    finally:
        lock.release()
    assert reports[0].status == "busy" and api.state.count("/storage/rec17/") == 0


# ------------------------------------------------------------------ credentials
def test_dryad_downloads_carry_a_renewed_token_and_never_leak_it(api, tmp_path, caplog):
    cfg = config(tmp_path)
    dl = state_of(api.state)
    dl.clients["client-id"] = TOKEN + "-secret"
    files = []
    for i in range(3):
        _, f = served(api, f"rec18/f{i}.png", 2_000 + i)
        files.append(file_entry(f"f{i}.png", f"{api.base_url}/dl/auth/rec18/f{i}.png", f, "sha256"))
    put_record(cfg.data_dir, "dryad", "doi:10.5061/dryad.x", files)
    env = {"DRYAD_CLIENT_ID": "client-id", "DRYAD_CLIENT_SECRET": TOKEN + "-secret"}
    creds = credentials_for("dryad", f"{api.base_url}/dl/api/v2", environ=env)
    with caplog.at_level(logging.DEBUG):
        reports, _ = run(cfg, cand("dryad", "doi:10.5061/dryad.x"), credentials={"dryad": creds})
        assert reports[0].counts["downloaded"] == 3
        assert dl.token_requests == 1  # one token for every file
        # the server forgets its tokens: the next download gets a 401, renews once
        dl.rotate()
        (cfg.downloads_dir / "dryad" / "doi_10.5061_dryad.x" / "f0.png").unlink()
        reports, _ = run(cfg, cand("dryad", "doi:10.5061/dryad.x"), credentials={"dryad": creds})
    assert reports[0].counts == {"downloaded": 1, "verified-existing": 2}
    assert dl.token_requests == 2
    log = api.state.entries("/dl/auth/|/storage/rec18/")
    assert all(e["auth"] == "Bearer" for e in log if e["path"].startswith("/dl/auth/") and e["status"] == 302)
    assert all(e["auth"] is None for e in log if e["path"].startswith("/storage/"))  # not sent to storage
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert leaked == [] and TOKEN not in caplog.text
    assert all(tok not in caplog.text for tok in dl.tokens)


def test_downloads_needing_credentials_wait_for_them_and_refusals_fail(api, tmp_path):
    cfg = config(tmp_path)
    _, f = served(api, "rec19/a.csv", 100)
    put_record(cfg.data_dir, "kaggle", "o/s", [file_entry("a.csv", f"{api.base_url}/dl/auth/rec19/a.csv", f, None)])
    DownloadQueue(cfg.data_dir).add("kaggle", "o/s", label="EYE_IMAGING", prob=0.95, threshold=0.8, origin="crawl")
    # no credentials: not a failure, nothing asked of the server, the record stays queued
    creds = credentials_for("kaggle", f"{api.base_url}/dl/api/v1", environ={}, home=tmp_path)
    reports, runner = run(cfg, cand("kaggle", "o/s"), credentials={"kaggle": creds})
    assert reports[0].status == "skipped" and "no credentials" in reports[0].reason
    assert runner.counts["records_need_credentials"] == 1 and not runner.counts["files_failed"]
    assert api.state.count("/dl/auth/") == 0 and DownloadQueue(cfg.data_dir).contains("kaggle", "o/s")
    # credentials the server refuses: a failure, with a hint
    creds = credentials_for("kaggle", f"{api.base_url}/dl/api/v1", environ={"KAGGLE_API_TOKEN": "wrong"}, home=tmp_path)
    reports, _ = run(cfg, cand("kaggle", "o/s"), credentials={"kaggle": creds})
    entry = manifest(cfg, "kaggle", "o_s")["files"][0]
    assert entry["status"] == "failed" and "401" in entry["reason"]

    state_of(api.state).accepted.add("Bearer kg-token")
    creds = credentials_for("kaggle", f"{api.base_url}/dl/api/v1", environ={"KAGGLE_API_TOKEN": "kg-token"}, home=tmp_path)
    reports, _ = run(cfg, cand("kaggle", "o/s"), credentials={"kaggle": creds})
    assert reports[0].status == "complete"


def test_ratelimit_remaining_zero_pauses_before_a_429(api, tmp_path):
    # OSF's download pace: one transfer at a time (scaled down, ratios kept)
    cfg = config(tmp_path, scale=0.001)
    dl = state_of(api.state)
    dl.accepted.add("Bearer t")
    dl.ratelimit_remaining, dl.ratelimit_reset = 0, 1
    files = []
    for i in range(2):
        _, f = served(api, f"rec20/{i}.png", 500)
        files.append(file_entry(f"{i}.png", f"{api.base_url}/dl/auth/rec20/{i}.png", f))
    put_record(cfg.data_dir, "osf", "20", files)
    creds = credentials_for("osf", f"{api.base_url}/dl/api", environ={"OSF_TOKEN": "t"})
    reports, runner = run(cfg, cand("osf", "20"), credentials={"osf": creds})
    assert reports[0].counts["downloaded"] == 2 and runner.counts["events_budget_exhausted"] >= 1
    starts = sorted(e["time"] for e in api.state.entries("/dl/auth/"))
    assert starts[1] - starts[0] >= 0.9


def test_the_progress_line_never_passes_100_percent_and_ends_at_the_real_total(api, tmp_path):
    """Files of unknown size, files already on disk, records that wait for credentials
    and a file that fails: the overall line counts what is really transferred, never
    shows more than 100 % and ends with its bytes equal to its total."""
    import re

    from envision_spiders.downloads.progress import LogProgress

    cfg = config(tmp_path, retries=0)
    known_url, known = served(api, "rec30/known.png", 30_000)
    unknown_url, unknown = served(api, "rec30/unknown.bin", 70_000)
    have_url, have = served(api, "rec30/have.png", 20_000)
    bad_url, bad = served(api, "rec30/bad.png", 10_000)
    put_record(cfg.data_dir, "zenodo", "30", [
        file_entry("known.png", known_url, known), file_entry("have.png", have_url, have),
        {"name": "unknown.bin", "url": unknown_url, "size_bytes": None, "checksum": None},
        file_entry("bad.png", bad_url, bad, "md5:" + "0" * 32),
    ])
    folder = cfg.downloads_dir / "zenodo" / "30"
    folder.mkdir(parents=True)
    (folder / "have.png").write_bytes(have.data)
    _, wait = served(api, "rec31/w.csv", 5_000)
    put_record(cfg.data_dir, "kaggle", "o/w", [file_entry("w.csv", f"{api.base_url}/dl/auth/rec31/w.csv", wait)])
    lines = []

    class Recording(LogProgress):
        def file_advanced(self, key, n):
            super().file_advanced(key, n)
            lines.append(self.line())

        def close(self):
            lines.append(self.line())

    creds = credentials_for("kaggle", f"{api.base_url}/dl/api/v1", environ={}, home=tmp_path)
    runner = DownloadRunner(cfg, progress=Recording(interval=3600), credentials={"kaggle": creds})

    async def go():
        async with runner:
            return await runner.run([cand("zenodo", "30"), cand("kaggle", "o/w")])

    asyncio.run(go())
    assert runner.counts["files_downloaded"] == 2 and runner.counts["files_failed"] == 1
    shares = [int(m.group(1)) for line in lines if (m := re.search(r"\((\d+)%\)", line))]
    assert shares and max(shares) <= 100, lines
    progress = runner.progress
    assert progress.done == progress.expected == known.size + unknown.size + bad.size, lines[-1]
    assert lines[-1].startswith(f"downloads: {lines[-1].split(' of ')[0].split(': ')[1]} of ") and "(100%)" in lines[-1]


# ------------------------------------------------------------------ candidates and the command
def test_candidates_from_queue_and_results(tmp_path):
    cfg = config(tmp_path, threshold=0.8)
    cfg.results_dir.mkdir(parents=True)
    rows = [
        {"source": "zenodo", "source_id": "1", "label": "EYE_IMAGING", "prob_eye_imaging": 0.95},
        {"source": "zenodo", "source_id": "2", "label": "EYE_IMAGING", "prob_eye_imaging": 0.5},
        {"source": "zenodo", "source_id": "3", "label": "NEGATIVE", "prob_eye_imaging": 0.9},
        {"source": "zenodo", "source_id": "4", "label": "EYE_IMAGING", "prob_eye_imaging": 0.99, "duplicate_of": "figshare:9"},
    ]
    (cfg.results_dir / "zenodo_eye_imaging.json").write_text(json.dumps(rows))
    (cfg.results_dir / "osf_eye_imaging.json").write_text("{broken")
    figshare = [{"source": "figshare", "source_id": "7", "label": "EYE_IMAGING", "prob_eye_imaging": 0.9},
                {"source": "figshare", "source_id": "8", "label": "EYE_IMAGING", "prob_eye_imaging": 0.85}]
    (cfg.results_dir / "figshare_eye_imaging.json").write_text(json.dumps(figshare))
    q = DownloadQueue(cfg.data_dir)
    q.add("figshare", "7", label="EYE_IMAGING", prob=0.9, threshold=0.8, origin="crawl")
    q.add("figshare", "8", label="EYE_IMAGING", prob=0.85, threshold=0.8, origin="crawl")
    cfg.threshold = 0.88
    got = collect_candidates(cfg, ["figshare", "osf", "zenodo"], q)
    assert [(c["source"], c["source_id"]) for c in got] == [("figshare", "7"), ("zenodo", "1")]
    assert q.contains("zenodo", "1") and q.contains("figshare", "8")  # below this run's threshold: stays queued


def test_a_record_queued_during_the_crawl_is_judged_by_its_results_now(tmp_path):
    """The crawl queues a confident record before anything knows its duplicates; the
    download step must take the verdict of the results classify wrote since (the demo
    downloaded 105 duplicates that were queued as they came). A queued record now
    marked as a duplicate, or no longer EYE_IMAGING, leaves the queue; one that has no
    results row yet waits for it."""
    cfg = config(tmp_path, threshold=0.8)
    cfg.results_dir.mkdir(parents=True)
    q = DownloadQueue(cfg.data_dir)
    for sid in ("mirror", "canonical", "relabelled", "unclassified"):
        q.add("kaggle", sid, label="EYE_IMAGING", prob=0.97, threshold=0.8, origin="crawl")
    eye = [{"source": "kaggle", "source_id": "mirror", "label": "EYE_IMAGING", "prob_eye_imaging": 0.97,
            "duplicate_of": {"source": "zenodo", "source_id": "42"}},
           {"source": "kaggle", "source_id": "canonical", "label": "EYE_IMAGING", "prob_eye_imaging": 0.97}]
    every = eye + [{"source": "kaggle", "source_id": "relabelled", "label": "NEGATIVE", "prob_eye_imaging": 0.2}]
    (cfg.results_dir / "kaggle_eye_imaging.json").write_text(json.dumps(eye))
    (cfg.results_dir / "kaggle_all_results.json").write_text(json.dumps(every))
    got = collect_candidates(cfg, ["kaggle"], q)
    assert [c["source_id"] for c in got] == ["canonical"]
    assert sorted(e["source_id"] for e in q.entries()) == ["canonical", "unclassified"]


def run_command(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    values = crawl_env(None, tmp_path / "data", RESULTS_DIR=str(tmp_path / "results"), DOWNLOAD_MIN_FREE_BYTES="0", **env)
    return scrapy_in_process(["download", *args], values)


def test_dry_run_lists_sizes_and_totals_and_changes_nothing(api, tmp_path):
    cfg = config(tmp_path)
    cfg.results_dir.mkdir(parents=True)
    u1, f1 = served(api, "rec21/a.png", 1_500)
    u2, f2 = served(api, "rec21/b/c.nii.gz", 2_500)
    put_record(cfg.data_dir, "zenodo", "21", [file_entry("a.png", u1, f1), file_entry("b/c.nii.gz", u2, f2),
                                             file_entry("evil", "file:///etc/shadow", None)])
    rows = [{"source": "zenodo", "source_id": "21", "label": "EYE_IMAGING", "prob_eye_imaging": 0.97}]
    (cfg.results_dir / "zenodo_eye_imaging.json").write_text(json.dumps(rows))
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = run_command(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "get   a.png" in out and "get   b/c.nii.gz" in out and "refused URL" in out
    assert "total: 2 files to download, 4000 bytes" in out
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert api.state.count("/storage/") == 0

    # the real run then downloads them and exits 0
    result = run_command(tmp_path, "--source", "zenodo", "--progress", "log")
    assert result.returncode == 0, result.stderr[-3000:]
    assert files_on_disk(cfg.downloads_dir / "zenodo" / "21") == {"a.png": f1.data, "b/c.nii.gz": f2.data}
    assert "download finished: 1 records (1 complete)" in result.stderr


def test_dry_run_marks_files_that_will_wait_for_credentials(api, tmp_path):
    """Dryad and Kaggle serve files only to authenticated clients: without credentials a
    real run leaves their records queued; the dry run must say so, not count them as
    files to download."""
    cfg = config(tmp_path)
    cfg.results_dir.mkdir(parents=True)
    u1, f1 = served(api, "rec23/a.png", 1_000)
    put_record(cfg.data_dir, "zenodo", "23", [file_entry("a.png", u1, f1)])
    _, f2 = served(api, "rec24/b.csv", 2_000)
    put_record(cfg.data_dir, "kaggle", "o/s", [file_entry("b.csv", f"{api.base_url}/dl/auth/rec24/b.csv", f2)])
    for source, sid in (("zenodo", "23"), ("kaggle", "o/s")):
        (cfg.results_dir / f"{source}_eye_imaging.json").write_text(json.dumps(
            [{"source": source, "source_id": sid, "label": "EYE_IMAGING", "prob_eye_imaging": 0.95}]))
    result = run_command(tmp_path, "--dry-run", HOME=str(tmp_path), KAGGLE_CONFIG_DIR=str(tmp_path / "kaggle"),
                         KAGGLE_API_URL=f"{api.base_url}/dl/api/v1")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "get   a.png" in out and "wait  b.csv  1.95kB  (needs credentials)" in out
    assert "total: 1 files to download, 1000 bytes" in out and "1 wait for credentials" in out
    assert "wait: kaggle serves files only to authenticated clients" in out and "KAGGLE_API_TOKEN" in out


def test_command_exits_1_when_a_file_failed(api, tmp_path):
    cfg = config(tmp_path)
    cfg.results_dir.mkdir(parents=True)
    url, f = served(api, "rec22/a.png", 1_000)
    put_record(cfg.data_dir, "zenodo", "22", [file_entry("a.png", url, f, "md5:" + "1" * 32)])
    (cfg.results_dir / "zenodo_eye_imaging.json").write_text(json.dumps(
        [{"source": "zenodo", "source_id": "22", "label": "EYE_IMAGING", "prob_eye_imaging": 0.9}]))
    result = run_command(tmp_path, "--threshold", "0.85", RUN_ID="week48")
    assert result.returncode == 3 and "checksum mismatch" in result.stderr
    summary = json.loads((cfg.data_dir / "runs" / "week48" / "download.json").read_text())
    assert summary["healthy"] is False and summary["files_failed"] == 1 and summary["records"] == 1


# ------------------------------------------------------------------ the pipeline and a crawl
class FakeClassifier:
    """Stands in for the classification pipeline in crawl tests: every record is
    EYE_IMAGING at 0.9, in the nested shape."""

    def process_item(self, item):
        from itemadapter import ItemAdapter

        return {**ItemAdapter(item).asdict(), "classification": {"label": "EYE_IMAGING", "prob_eye_imaging": 0.9}}


def test_pipeline_queues_only_passing_records(tmp_path):
    from scrapy.utils.test import get_crawler

    from pipelines.downloads import DownloadQueuePipeline

    crawler = get_crawler(settings_dict={"DATA_DIR": str(tmp_path), "DOWNLOAD_THRESHOLD": 0.8, "DOWNLOAD_ENABLED": False})
    pipe = DownloadQueuePipeline.from_crawler(crawler)
    items = [
        {"source": "zenodo", "source_id": "1", "classification": {"label": "EYE_IMAGING", "prob_eye_imaging": 0.9}},
        {"source": "zenodo", "source_id": "2", "label": "EYE_IMAGING", "prob_eye_imaging": 0.81},
        {"source": "zenodo", "source_id": "3", "label": "EYE_IMAGING", "prob_eye_imaging": 0.79},
        {"source": "zenodo", "source_id": "4", "label": "NEGATIVE", "prob_eye_imaging": 0.2},
        {"source": "zenodo", "source_id": "5"},
        {"source": "zenodo", "source_id": "1", "classification": {"label": "EYE_IMAGING", "prob_eye_imaging": 0.92}},
    ]
    for item in items:
        assert pipe.process_item(item) is item
    q = DownloadQueue(tmp_path)
    assert [e["source_id"] for e in q.entries()] == ["1", "2"]
    stats = crawler.stats.get_stats()
    assert stats["envision/download/queued"] == 2 and stats["envision/download/requeued"] == 1
    assert stats["envision/download/not_queued"] == 2


def test_crawl_with_download_enabled_fetches_files(api, tmp_path):
    """During a crawl only records whose results say they are no duplicate are fetched:
    new records wait for `scrapy download` (after classify), a duplicate never goes."""
    from envision_spiders.results import write_results
    from tests.conftest import crawl_in_process

    api.generate("zenodo", 30, seed=5)
    terms = tmp_path / "terms.txt"
    terms.write_text("fundus\nOCT\n")
    data_dir = tmp_path / "data"
    args = ("-s", 'ITEM_PIPELINES={"pipelines.normalize.NormalizePipeline": 100, "tests.pipelines.test_downloads.FakeClassifier": 200, '
                  '"pipelines.persist.PersistPipeline": 300, "pipelines.downloads.DownloadQueuePipeline": 800}')
    settings = dict(SEARCH_TERMS=str(terms), DOWNLOAD_ENABLED="1", DOWNLOAD_MIN_FREE_BYTES="0")
    result = crawl_in_process(api, "zenodo", data_dir, *args, **settings)
    assert result.returncode == 0, result.stderr[-4000:]
    queued = {e["source_id"] for e in DownloadQueue(data_dir).entries()}
    assert queued and not (data_dir / "downloads" / "zenodo").exists(), "nothing is known of their duplicates yet"
    assert f"{len(queued)} confident records stay queued for `scrapy download`" in result.stderr

    # classify rewrote the results: one record is a duplicate of another source's
    write_results(data_dir, data_dir / "results")
    rows_path = data_dir / "results" / "zenodo_eye_imaging.json"
    rows = json.loads(rows_path.read_text())
    rows[0]["duplicate_of"] = {"source": "figshare", "source_id": "1"}
    rows_path.write_text(json.dumps(rows))
    duplicate = rows[0]["source_id"]
    result = crawl_in_process(api, "zenodo", data_dir, *args, "-a", "full=1", **settings)
    assert result.returncode == 0, result.stderr[-4000:]
    manifests = sorted((data_dir / "downloads" / "zenodo").glob("*/manifest.json"))
    records = {p.stem for p in (data_dir / "metadata" / "zenodo").glob("*.json")}
    assert len(records) > 1 and {p.parent.name for p in manifests} == records - {duplicate}
    for path in manifests:
        m = json.loads(path.read_text())
        record = json.loads((data_dir / "metadata" / "zenodo" / f"{path.parent.name}.json").read_text())
        assert m["status"] == "complete" and len(m["files"]) == len(record["files"])
        for entry in m["files"]:
            assert entry["status"] == "downloaded" and entry["checksum_computed"] == entry["checksum_expected"]
            assert (path.parent / entry["name"]).stat().st_size == entry["expected_size"]
    # the stats dump is at DEBUG now: the crawler's stats themselves
    assert result.crawler.stats.get_value("envision/download/files_downloaded")
    assert [e["source_id"] for e in DownloadQueue(data_dir).entries()] == [duplicate]  # `scrapy download` drops it
