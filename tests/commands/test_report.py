"""The review page's figures: what gather() reads from results, duplicates, runs,
downloads, saved records and snapshots, and what render() makes of it (escaping, the
embedded rows, the policy); ``scrapy report`` and the after-classify hook."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from envision_spiders.report import build_report, report_after_classify, write_report
from envision_spiders.report.gather import (
    BORDERLINE,
    HISTOGRAM_BINS,
    gather,
    license_label,
    snapshot_path,
)
from envision_spiders.report.render import ROW_FIELDS, csp_hash, embed_json, payload
from envision_spiders.textutil import safe_url

from tests.conftest import scrapy_in_process
from tests.report_data import (
    archive,
    result,
    write_duplicates,
    write_manifest,
    write_queued,
    write_results,
    write_run,
    write_saved,
)

HOSTILE = '<img src=x onerror="window.__xss=1">'


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "data", tmp_path / "results"


def mixed_records() -> list[dict]:
    """Per source a known mix of labels and probabilities (the expectations below are
    computed from this list, not typed in)."""
    out = []
    for s, source in enumerate(("zenodo", "figshare", "dryad")):
        for i in range(4 + s):
            out.append(result(source, f"e{i}", label="EYE_IMAGING", p=0.81 + 0.04 * i, file_names=[f"fundus_{i}.png"]))
        for i, p in enumerate((0.05, 0.29, 0.3, 0.55, 0.8, 0.81)[: 3 + s]):
            out.append(result(source, f"n{i}", label="NEGATIVE", p=p))
        out.append(result(source, "u0", label=None, p=None))
    return out


# ------------------------------------------------------------------ counts
def test_counts_per_source_and_label_histogram_and_borderline_come_from_the_results(tmp_path):
    data, results = dirs(tmp_path)
    records = mixed_records()
    write_results(results, records)
    report = gather(data, results)

    expected = Counter()
    for r in records:
        expected[(r["source"], r["label"] or "unclassified")] += 1
    for (source, label), count in expected.items():
        assert report.sources[source][label] == count
    assert sum(report.totals.values()) == len(records)

    bins = [Counter() for _ in range(HISTOGRAM_BINS)]
    for r in records:
        if r["label"]:
            bins[min(HISTOGRAM_BINS - 1, int(r["prob_eye_imaging"] * HISTOGRAM_BINS))][r["label"]] += 1
    assert [(b["EYE_IMAGING"], b["NEGATIVE"]) for b in report.histogram] == \
        [(b["EYE_IMAGING"], b["NEGATIVE"]) for b in bins]

    lo, hi = BORDERLINE
    assert sorted(r["key"] for r in report.borderline.rows) == sorted(
        f"{r['source']}:{r['source_id']}" for r in records
        if r["label"] == "NEGATIVE" and lo <= r["prob_eye_imaging"] <= hi)
    assert {r["key"] for r in report.borderline.rows} >= {"dryad:n2", "dryad:n4"}, "0.3 and 0.8 are borderline"
    assert not {"dryad:n1", "dryad:n5"} & {r["key"] for r in report.borderline.rows}, "0.29 and 0.81 are not"
    assert len(report.eye.rows) == sum(1 for r in records if r["label"] == "EYE_IMAGING")


def test_a_source_with_only_its_eye_imaging_file_is_counted_and_flagged(tmp_path):
    data, results = dirs(tmp_path)
    write_results(results, mixed_records(), eye_only=("dryad",))
    report = gather(data, results)
    assert report.sources["dryad"] == Counter({"EYE_IMAGING": 6})
    assert any("dryad" in p and "dryad_all_results.json" in p for p in report.problems)


def test_fresh_install_renders_an_empty_page(tmp_path):
    data, results = dirs(tmp_path)
    report, page = build_report(data, results)
    assert not report.eye.rows and not report.borderline.rows and not report.sources
    assert report.downloads["done"] == 0 and report.crawl["spiders"] == []
    assert "No classified records yet" in page and "No crawl summaries" in page
    assert not (data / "report").exists(), "building writes nothing"


def test_bad_files_are_logged_and_skipped(tmp_path, caplog):
    data, results = dirs(tmp_path)
    results.mkdir(parents=True)
    (results / "zenodo_all_results.json").write_text("[{broken", encoding="utf-8")
    (results / "osf_all_results.json").write_text(json.dumps({"unexpected": 1}), encoding="utf-8")
    (results / "duplicates.json").write_text("not json", encoding="utf-8")
    write_results(results, [result("dryad", "1", label="EYE_IMAGING", p=0.9)])
    (data / "runs" / "20260101T000000Z").mkdir(parents=True)
    (data / "runs" / "20260101T000000Z" / "zenodo.json").write_text("{", encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        report, page = build_report(data, results)
    assert [r["key"] for r in report.eye.rows] == ["dryad:1"]
    assert "zenodo_all_results.json" in caplog.text and "osf_all_results.json" in caplog.text
    assert "<html" in page


def test_odd_field_values_do_not_break_a_row(tmp_path):
    data, results = dirs(tmp_path)
    odd = result("zenodo", "x", label="EYE_IMAGING", p=0.9, title=["not", "a string"], license={"id": 1},
                 access=7, size_mb="big", url="javascript:alert(1)", keywords="single", file_names=[None, 3, "a.png"],
                 file_types=[".png", 5, None])
    odd["prob_eye_imaging"] = float("nan")
    odd["confidence"] = float("inf")
    odd["file_count"] = True
    write_results(results, [odd])
    row = gather(data, results).eye.rows[0]
    assert row["title"] == "(untitled)" and row["p"] is None and row["confidence"] is None and row["size_mb"] is None and row["file_count"] is None
    assert row["url"] == "" and row["access"] == "unknown" and row["keywords"] == ["single"]
    json.dumps(payload(gather(data, results)), allow_nan=False)  # NaN never reaches the page


# ------------------------------------------------------------------ duplicates
def test_duplicates_fold_into_their_canonical_row_of_the_same_table(tmp_path):
    data, results = dirs(tmp_path)
    records = [
        result("zenodo", "1", label="EYE_IMAGING", p=0.97, url="https://zenodo.org/records/1"),
        result("datacite", "10.5281/zenodo.1", label="EYE_IMAGING", p=0.95, url="https://doi.org/10.5281/zenodo.1",
               duplicate_of={"source": "zenodo", "source_id": "1"}),
        result("kaggle", "user/mirror", label="EYE_IMAGING", p=0.9, duplicate_of="zenodo:1"),
        # canonical NEGATIVE: its EYE_IMAGING duplicate stays visible, marked
        result("figshare", "7", label="NEGATIVE", p=0.1),
        result("datacite", "10.6084/m9.figshare.7", label="EYE_IMAGING", p=0.85,
               duplicate_of={"source": "figshare", "source_id": "7"}),
    ]
    write_results(results, records)
    write_duplicates(results, [
        ("zenodo:1", ["zenodo:1", "datacite:10.5281/zenodo.1", "kaggle:user/mirror"], "doi"),
        ("figshare:7", ["figshare:7", "datacite:10.6084/m9.figshare.7"], "datacite-hosting"),
    ])
    report = gather(data, results)
    rows = {r["key"]: r for r in report.eye.rows}
    assert set(rows) == {"zenodo:1", "datacite:10.6084/m9.figshare.7"}
    assert report.eye.folded == 2
    assert [(d["key"], d["url"]) for d in rows["zenodo:1"]["duplicates"]] == [
        ("datacite:10.5281/zenodo.1", "https://doi.org/10.5281/zenodo.1"),
        ("kaggle:user/mirror", "https://kaggle.example.org/records/user/mirror"),
    ]
    assert rows["zenodo:1"]["duplicate_rules"] == ["doi"]
    marked = rows["datacite:10.6084/m9.figshare.7"]
    assert marked["duplicate_of"] == "figshare:7" and marked["duplicates"][0]["canonical"] is True
    assert report.duplicates == {"groups": 2, "records": 3}


def test_duplicate_of_alone_folds_when_duplicates_json_is_missing(tmp_path):
    data, results = dirs(tmp_path)
    write_results(results, [
        result("zenodo", "1", label="EYE_IMAGING", p=0.97),
        result("datacite", "d1", label="EYE_IMAGING", p=0.95, duplicate_of={"source": "zenodo", "source_id": "1"}),
    ])
    report = gather(data, results)
    assert [r["key"] for r in report.eye.rows] == ["zenodo:1"] and report.eye.folded == 1
    assert report.duplicates == {"groups": 1, "records": 1}


# ------------------------------------------------------------------ new since the last run
def test_new_records_are_counted_against_the_previous_runs_snapshot(tmp_path):
    data, results = dirs(tmp_path)
    week1 = [result("zenodo", str(i), label="EYE_IMAGING", p=0.9) for i in range(3)]
    write_results(results, week1)
    write_report(data, results, run_id="20260701T000000Z")
    first = gather(data, results, run_id="20260701T000000Z")
    assert first.baseline is None and first.new_keys == {f"zenodo:{i}" for i in range(3)}, "first report: all new"
    snap = json.loads(snapshot_path(data, "20260701T000000Z").read_text())
    assert snap["eye_imaging"] == sorted(f"zenodo:{i}" for i in range(3))

    week2 = week1 + [
        result("zenodo", "3", label="EYE_IMAGING", p=0.9),
        result("datacite", "dup-of-0", label="EYE_IMAGING", p=0.9),  # joined to a known dataset: not new
        result("zenodo", "4", label="NEGATIVE", p=0.5),
    ]
    write_results(results, week2)
    write_duplicates(results, [("datacite:dup-of-0", ["datacite:dup-of-0", "zenodo:0"], "doi")])
    for _ in range(2):  # regenerating the same run's report gives the same answer
        path = write_report(data, results, run_id="20260708T000000Z")
        report = gather(data, results, run_id="20260708T000000Z")
        assert report.baseline["run_id"] == "20260701T000000Z"
        assert report.new_keys == {"zenodo:3"}
    page = path.read_text(encoding="utf-8")
    assert "since the report of run 20260701T000000Z" in page
    rows = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))["tables"]["eye"]["rows"]
    assert sum(r[ROW_FIELDS.index("new")] for r in rows) == 1


def test_the_run_id_comes_from_the_newest_run_folder_and_snapshots_are_pruned(tmp_path, monkeypatch):
    data, results = dirs(tmp_path)
    monkeypatch.delenv("RUN_ID", raising=False)
    write_results(results, [result("zenodo", "1", label="EYE_IMAGING", p=0.9)])
    write_run(data, "20260701T000000Z", "zenodo")
    (data / "runs" / "20260708T000000Z").mkdir(parents=True)
    assert gather(data, results).run_id == "20260708T000000Z"
    monkeypatch.setenv("RUN_ID", "from-env")
    assert gather(data, results).run_id == "from-env"
    monkeypatch.setattr(sys.modules["envision_spiders.report.gather"], "SNAPSHOTS_KEPT", 3)
    for week in range(5):
        write_report(data, results, run_id=f"2026070{week}T000000Z")
    kept = sorted(p.name for p in (data / "report" / "snapshots").glob("*.json"))
    assert kept == [f"2026070{week}T000000Z.json" for week in (2, 3, 4)]


def test_a_page_for_another_results_folder_leaves_no_snapshot(tmp_path):
    """The snapshots in DATA_DIR say which records the last review page showed; a page
    written elsewhere (``-o``) or for another RESULTS_DIR (a demo's) must not count as
    the last page of this one, or next week's "new" column is wrong."""
    data, results = dirs(tmp_path)
    write_results(results, [result("zenodo", str(i), label="EYE_IMAGING", p=0.9) for i in range(2)])
    write_report(data, results, run_id="20260701T000000Z")
    demo = tmp_path / "demo-results"
    write_results(demo, [result("kaggle", str(i), label="EYE_IMAGING", p=0.9) for i in range(5)])
    write_report(data, demo, run_id="20260702T000000Z")  # the demo's page, with this DATA_DIR
    write_report(data, results, output=tmp_path / "mail" / "report.html", run_id="20260703T000000Z")
    assert not snapshot_path(data, "20260703T000000Z").exists(), "a page written outside RESULTS_DIR"
    write_results(results, [result("zenodo", str(i), label="EYE_IMAGING", p=0.9) for i in range(3)])
    report = gather(data, results, run_id="20260708T000000Z")
    assert report.baseline["run_id"] == "20260701T000000Z"
    assert report.new_keys == {"zenodo:2"}


# ------------------------------------------------------------------ modalities and archives
def test_modalities_come_from_file_names_archive_members_and_file_types(tmp_path):
    data, results = dirs(tmp_path)
    write_results(results, [
        result("zenodo", "fundus", label="EYE_IMAGING", p=0.9, file_names=["fundus/img1.png", "labels.csv"]),
        result("zenodo", "oct", label="EYE_IMAGING", p=0.9, file_names=["scans.zip"], file_types=[".e2e", ".zip"],
               archive_count=1),
        result("zenodo", "oct-unpeeked", label="EYE_IMAGING", p=0.9, file_names=["scans.zip"],
               file_types=[".vol", ".zip"], archive_count=1),
        result("zenodo", "slit", label="EYE_IMAGING", p=0.9, title="Slit-lamp photographs of keratoconus",
               file_names=["photos.zip"], file_types=[".jpg", ".zip"], archive_count=1),
        result("zenodo", "table", label="EYE_IMAGING", p=0.9, file_names=["table.csv"]),
    ])
    write_saved(data, "zenodo", "oct", [archive("scans.zip", {".e2e": 40, ".xml": 40}, ["pat001.e2e", "pat001.xml"]),
                                        archive("more.7z", {}, listed=False, fmt="7z", reason="not listable")])
    write_saved(data, "zenodo", "slit", [archive("photos.zip", {".jpg": 120}, ["eye_001.jpg"], complete=False)])
    report = gather(data, results)
    rows = {r["source_id"]: r for r in report.eye.rows}
    assert rows["fundus"]["modalities"] == ["fundus"]
    assert rows["oct"]["modalities"] == ["oct", "device"] and ".e2e" in rows["oct"]["modality_note"]
    assert rows["oct"]["archives"] == "1 archive · 80 members: .e2e 40, .xml 40; 1 not listed (7z)"
    assert rows["oct"]["members"] == ["pat001.e2e", "pat001.xml"]
    assert rows["oct"]["file_types"][0] == ".e2e", "device formats first"
    assert rows["oct-unpeeked"]["modalities"] == ["oct", "device"], "file_types stand in for unsaved listings"
    assert rows["oct-unpeeked"]["archives"] == "1 archive, contents not peeked"
    assert rows["slit"]["modalities"] == ["anterior"] and rows["slit"]["archives"].startswith("1 archive · ≥120 members")
    assert rows["table"]["modalities"] == []
    assert report.modality_counts == Counter({"fundus": 1, "oct": 2, "device": 2, "anterior": 1, "none": 1})


# ------------------------------------------------------------------ downloads and crawls
def test_downloads_done_and_pending_from_manifests_and_the_queue(tmp_path):
    data, results = dirs(tmp_path)
    write_results(results, [result("zenodo", str(i), label="EYE_IMAGING", p=0.9) for i in range(6)])
    write_manifest(data, "zenodo", "0", "complete", bytes_on_disk=1000)
    write_manifest(data, "zenodo", "1", "complete", bytes_on_disk=500)
    write_manifest(data, "zenodo", "2", "incomplete", failed=2, bytes_on_disk=10)
    write_manifest(data, "zenodo", "3", "skipped")
    write_queued(data, "zenodo", "2")  # still queued: partial wins
    write_queued(data, "zenodo", "4")
    (data / "downloads" / "zenodo" / "5").mkdir(parents=True)  # a folder without a manifest
    report = gather(data, results)
    d = report.downloads
    assert (d["done"], d["partial"], d["queued"], d["skipped"], d["pending"]) == (2, 1, 1, 1, 2)
    assert d["failed_files"] == 2 and d["bytes_on_disk"] == 1510
    states = {r["source_id"]: r["download"] for r in report.eye.rows}
    assert states == {"0": "done", "1": "done", "2": "partial", "3": "skipped", "4": "queued", "5": ""}


def test_the_crawl_figures_are_the_newest_run_with_spider_summaries(tmp_path):
    data, results = dirs(tmp_path)
    write_run(data, "20260701T000000Z", "zenodo", hits=10, new=1)
    write_run(data, "20260708T000000Z", "zenodo", hits=20, new=5, changed=2)
    write_run(data, "20260708T000000Z", "osf", hits=0, new=0, healthy=False,
              problems=["hits fell to 0 from a median of 40 <b>"])
    (data / "runs" / "20260708T000000Z" / "results.json").write_text(json.dumps({"sources": {}}), encoding="utf-8")
    write_run(data, "20260708T000000Z", "kaggle", hits="many", new=None, elapsed_seconds="x", problems="rate limited")
    (data / "runs" / "20260715T000000Z").mkdir(parents=True)  # a run without spider summaries (classify only)
    report, page = build_report(data, results)
    crawl = report.crawl
    assert crawl["run_id"] == "20260708T000000Z" and crawl["runs"] == 3
    assert sorted(s["spider"] for s in crawl["spiders"]) == ["kaggle", "osf", "zenodo"]
    assert "hits fell to 0 from a median of 40 &lt;b&gt;" in page and "2 with problems" in page
    assert "rate limited" in page and "+5</div>" in page, "odd values count as nothing"


# ------------------------------------------------------------------ the page
def test_hostile_text_is_escaped_and_the_embedded_rows_cannot_close_their_script(tmp_path):
    data, results = dirs(tmp_path)
    write_results(results, [
        result("zenodo", "</script><script>window.__xss=3</script>", label="EYE_IMAGING", p=0.9, title=HOSTILE,
               url="javascript:window.__xss=2", license="<b>MIT</b>", description="\u2028 & <!-- -->",
               evidence=[{"supports": "NEGATIVE", "reason": "</script>" + HOSTILE}, {"supports": "odd", "reason": "x"},
                         "not a reason", {"supports": "EYE_IMAGING", "reason": "y" * 500}], disagreement=True),
    ])
    write_run(data, "r1", "<svg onload=alert(1)>")
    _, page = build_report(data, results)
    data_block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in data_block and ">" not in data_block and "\u2028" not in data_block
    rows = json.loads(data_block)["tables"]["eye"]["rows"]
    assert rows[0][ROW_FIELDS.index("title")] == HOSTILE, "the text arrives intact, as text"
    assert rows[0][ROW_FIELDS.index("url")] == "", "javascript: never becomes a link"
    reasons = rows[0][ROW_FIELDS.index("reasons")]
    assert reasons[0] == [0, "</script>" + HOSTILE] and len(reasons) == 2, "odd reasons are skipped"
    assert len(reasons[1][1]) <= 200 and rows[0][ROW_FIELDS.index("disagree")] == 1
    assert "<svg onload" not in page and "&lt;svg onload=alert(1)&gt;" in page
    assert page.count("<script") == 2, "only the data block and the page's own script"


def test_the_page_is_self_contained_under_a_strict_policy(tmp_path):
    data, results = dirs(tmp_path)
    write_results(results, mixed_records())
    _, page = build_report(data, results)
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    script = re.search(r"<script>(.*)</script>", page, re.S).group(1)
    style = re.search(r"<style>(.*)</style>", page, re.S).group(1)
    assert "default-src 'none'" in policy and csp_hash(script) in policy and csp_hash(style) in policy
    assert "unsafe-inline" not in policy
    assert not re.search(r'<(script|link|img|iframe)[^>]+(src|href)="(?!data:)', page), "nothing is loaded"
    assert not re.search(r"\son[a-z]+=", page), "no inline event handlers"
    assert not re.search(r'\sstyle="', page), "no style attributes (the policy forbids them)"


def test_embed_json_round_trips_awkward_text():
    text = "</script><!-- & \u2028\u2029 é 👁"
    assert json.loads(embed_json({"t": text})) == {"t": text}


@pytest.mark.parametrize(("value", "label"), [
    ("cc-by-4.0", "CC-BY-4.0"),
    ("CC BY 4.0", "CC-BY-4.0"),
    ("https://creativecommons.org/licenses/by-nc/4.0/", "CC-BY-NC-4.0"),
    ("https://spdx.org/licenses/CC0-1.0.html", "CC0-1.0"),
    ("Other (specified in description)", "Other (specified in description)"),
    (None, "not stated"),
])
def test_license_labels(value, label):
    assert license_label(value) == label


@pytest.mark.parametrize(("url", "safe"), [
    ("https://zenodo.org/records/1", True), ("HTTP://example.org/x", True), ("javascript:alert(1)", False),
    ("data:text/html,x", False), ("https://", False), ("https://a.org/\nx", False), (None, False),
])
def test_safe_url(url, safe):
    assert bool(safe_url(url)) is safe


# ------------------------------------------------------------------ command and hook
def test_scrapy_report_writes_the_page_and_its_snapshot(tmp_path):
    data, results = dirs(tmp_path)
    write_results(results, mixed_records())
    env = {"DATA_DIR": str(data), "RESULTS_DIR": str(results), "RUN_ID": "20260708T000000Z",
           "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    done = scrapy_in_process(["report"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(results / "report.html")
    assert "report: " in done.stderr and "EYE_IMAGING datasets" in done.stderr
    assert (results / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert snapshot_path(data, "20260708T000000Z").exists()
    bad = scrapy_in_process(["report", "--threshold", "2"], env)
    assert bad.returncode != 0 and "--threshold" in bad.stderr
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    failed = scrapy_in_process(["report", "-o", str(blocked / "report.html")], env)
    assert failed.returncode == 1 and "cannot write the review page" in failed.stderr


def test_report_after_classify_logs_and_never_raises(tmp_path, caplog):
    from scrapy.settings import Settings

    data, results = dirs(tmp_path)
    write_results(results, mixed_records())
    settings = Settings({"DATA_DIR": str(data), "RESULTS_DIR": str(results), "DOWNLOAD_THRESHOLD": 0.9})
    path = report_after_classify(settings, run_id="r1")
    assert path == results / "report.html" and "download ≥ 0.90" in path.read_text(encoding="utf-8")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the results folder should be")
    with caplog.at_level(logging.ERROR):
        assert report_after_classify(Settings({"DATA_DIR": str(data), "RESULTS_DIR": str(blocked)})) is None
    assert "could not write the review page" in caplog.text
