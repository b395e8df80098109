"""results/: every record on disk in the classified-record format, never shrinking, with
duplicates marked and a summary."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from envision_spiders.items import RESULT_FIELDS
from envision_spiders.results import classified_record, size_mb, write_results
from envision_spiders.storage import atomic_write_json, record_path

from tests.conftest import crawl_in_process


def classification(p: float, model: str = "m@1") -> dict:
    label = "EYE_IMAGING" if p >= 0.5 else "NEGATIVE"
    return {"label": label, "confidence": max(p, 1 - p), "prob_eye_imaging": p, "prob_negative": 1 - p,
            "model_id": model, "text_sha256": "x", "classified_at": "2026-01-01T00:00:00Z"}


def save(data_dir, source, source_id, p=None, **fields):
    record = {"source": source, "source_id": source_id, "doi": None, "url": f"https://x/{source_id}",
              "title": f"Record {source_id}", "description": "", "keywords": [], "file_names": [], "file_types": [],
              "file_count": 0, "img_count": 0, "medical_count": 0, "archive_count": 0, "genomics_count": 0,
              "total_size_bytes": None, "external_links": [], "related_dois": [], **fields}
    if p is not None:
        record["classification"] = classification(p)
    atomic_write_json(record_path(data_dir, source, source_id), record)
    return record


def read(path):
    return json.loads(path.read_text())


def test_results_cover_every_record_on_disk_in_the_classified_format(tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    # records saved by earlier runs and by this one alike
    save(data, "zenodo", "1", 0.97, total_size_bytes=5 * 2**20, doi="10.5281/zenodo.1", title="Fundus images")
    save(data, "zenodo", "2", 0.97, total_size_bytes=50 * 2**20)
    save(data, "zenodo", "3", 0.85)
    save(data, "zenodo", "4", 0.10)
    save(data, "zenodo", "5")  # not classified yet
    save(data, "datacite", "10.5281/zenodo.1", 0.96, doi="10.5281/zenodo.1", title="Fundus images",
         extra={"hosting_repository": "zenodo"})
    summary = write_results(data, results, run_id="r1")

    rows = read(results / "zenodo_all_results.json")
    assert [r["source_id"] for r in rows] == ["2", "1", "3", "4", "5"]  # probability, then size
    for row in rows:
        assert set(RESULT_FIELDS) <= set(row)
    by_id = {r["source_id"]: r for r in rows}
    assert by_id["1"]["size_mb"] == 5.0 and by_id["3"]["size_mb"] is None
    assert by_id["3"]["confidence"] == 0.85 and by_id["4"]["confidence"] == pytest.approx(0.9)
    assert by_id["4"]["label"] == "NEGATIVE" and by_id["5"]["label"] is None
    eye = read(results / "zenodo_eye_imaging.json")
    assert [r["source_id"] for r in eye] == ["2", "1", "3"]

    dc = read(results / "datacite_all_results.json")
    assert dc[0]["duplicate_of"] == {"source": "zenodo", "source_id": "1"}
    assert by_id["1"]["duplicate_of"] is None
    dups = read(results / "duplicates.json")
    assert dups["records"] == 6 and dups["groups"][0]["canonical"] == "zenodo:1"
    assert dups["groups"][0]["rules"] == ["datacite-hosting"]

    assert summary["sources"]["zenodo"] == {"records": 5, "EYE_IMAGING": 3, "NEGATIVE": 1, "unclassified": 1,
                                            "duplicates": 0}
    assert summary["eye_imaging_confidence"] == {"ge_0.95": 3, "0.80_to_0.95": 1, "lt_0.80": 0}
    assert read(data / "runs" / "r1" / "results" / "summary.json") == summary
    assert not list(results.glob(".*"))  # no temporary file left behind


def test_records_of_earlier_runs_stay_in_the_results(tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    save(data, "figshare", "old", 0.9)
    write_results(data, results)
    save(data, "figshare", "new", 0.2)  # a later, partial run saves one more record
    write_results(data, results)
    assert {r["source_id"] for r in read(results / "figshare_all_results.json")} == {"old", "new"}


def test_results_never_shrink_when_records_disappear(tmp_path, caplog):
    data, results = tmp_path / "data", tmp_path / "results"
    for i in range(3):
        save(data, "dryad", str(i), 0.9)
    save(data, "osf", "a", 0.9)
    write_results(data, results)
    before = (results / "dryad_all_results.json").read_bytes()
    record_path(data, "dryad", "0").unlink()
    shutil.rmtree(data / "metadata" / "osf")
    caplog.set_level(logging.ERROR)
    write_results(data, results)
    assert (results / "dryad_all_results.json").read_bytes() == before
    assert len(read(results / "osf_all_results.json")) == 1
    assert read(results / "duplicates.json")["records"] == 4
    assert any("Not rewriting" in r.getMessage() and "dryad_all_results" in r.getMessage() for r in caplog.records)


def test_the_eye_imaging_list_may_shrink_when_labels_change(tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    save(data, "osf", "a", 0.9)
    write_results(data, results)
    save(data, "osf", "a", 0.1)  # a better model says NEGATIVE
    write_results(data, results)
    assert read(results / "osf_eye_imaging.json") == []


def test_size_and_missing_fields():
    assert size_mb(3 * 2**20 + 5000) == 3.0 and size_mb(None) is None and size_mb(-1) is None and size_mb(True) is None
    row = classified_record({"source": "nei", "source_id": "1", "keywords": None, "img_count": None})
    assert row["keywords"] == [] and row["img_count"] == 0 and row["label"] is None


def test_a_scrape_that_returns_nothing_leaves_results_intact(api, tmp_path):
    """A real crawl whose searches all come back empty rewrites the results from disk:
    every record of earlier runs is still listed, nothing shrinks."""
    data = tmp_path
    results = data / "results"
    for i in range(4):
        save(data, "zenodo", str(i), 0.9 if i % 2 else 0.2)
    write_results(data, results)
    before = read(results / "zenodo_all_results.json")
    # the local API server holds no record: every search comes back empty
    proc = crawl_in_process(api, "zenodo", data, SEARCH_TERMS=str(terms_file(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read(results / "zenodo_all_results.json") == before
    assert len(read(results / "zenodo_eye_imaging.json")) == 2
    assert "results zenodo: 4 records" in proc.stderr


def terms_file(tmp_path):
    path = tmp_path / "terms.txt"
    path.write_text("fundus\nretinal OCT\n")
    return path


def test_results_rows_carry_the_reasons_and_the_disagreement(tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    reasons = [{"supports": "EYE_IMAGING", "reason": "412 .e2e files (Heidelberg OCT)"},
               {"supports": "NEGATIVE", "reason": "words in the text: 'supplementary'"}]
    record = save(data, "zenodo", "1", 0.6)
    record["classification"].update(evidence=reasons + ["not a reason", None], disagreement=True, prob_text=0.01)
    atomic_write_json(record_path(data, "zenodo", "1"), record)
    save(data, "zenodo", "2", 0.3)  # saved before labels said why: no reasons, no disagreement
    bad = save(data, "zenodo", "3", 0.9)
    bad["classification"].update(evidence="odd", disagreement="yes")
    atomic_write_json(record_path(data, "zenodo", "3"), bad)
    write_results(data, results)
    rows = {r["source_id"]: r for r in read(results / "zenodo_all_results.json")}
    assert rows["1"]["evidence"] == reasons and rows["1"]["disagreement"] is True and rows["1"]["prob_text"] == 0.01
    assert rows["2"]["evidence"] == [] and rows["2"]["disagreement"] is False and rows["2"]["prob_text"] is None
    assert rows["3"]["evidence"] == [] and rows["3"]["disagreement"] is False


def test_one_funnel_from_the_same_records_in_the_summary_the_log_and_the_page(tmp_path, caplog, monkeypatch):
    """found -> EYE_IMAGING -> confident -> canonical -> downloaded / posted: each figure
    counts records of the one before it, and the run summary, its log line, the review
    page and the download step's selection agree."""
    from envision_spiders import runhealth
    from envision_spiders.downloads.queue import DownloadQueue
    from envision_spiders.downloads.runner import DownloadConfig, collect_candidates
    from envision_spiders.report import build_report
    from envision_spiders.storage import safe_id

    from tests.report_data import result, write_results as write_rows

    monkeypatch.delenv("PORTAL_URL", raising=False)
    data, results = tmp_path / "data", tmp_path / "results"
    rows = [
        result("zenodo", "1", label="EYE_IMAGING", p=0.97),  # canonical, downloaded and posted
        result("zenodo", "2", label="EYE_IMAGING", p=0.91),  # canonical, downloaded only partly
        result("zenodo", "3", label="EYE_IMAGING", p=0.55),  # not confident
        result("zenodo", "4", label="NEGATIVE", p=0.1),
        result("kaggle", "o/s", label="EYE_IMAGING", p=0.99, duplicate_of={"source": "zenodo", "source_id": "1"}),
        result("kaggle", "u/x", label=None, p=None),
    ]
    write_rows(results, rows)
    for sid, status in (("1", "complete"), ("2", "incomplete"), ("3", "complete")):
        atomic_write_json(data / "downloads" / "zenodo" / safe_id(sid) / "manifest.json", {"status": status})
    atomic_write_json(data / "downloads" / "kaggle" / "o_s" / "manifest.json", {"status": "complete"})
    atomic_write_json(data / "portal" / "posted.json", {"version": 1, "portals": {"https://portal.example.org": {
        "datasets": {"https://doi.org/a": {"source": "zenodo", "source_id": "1"},
                     "https://doi.org/b": {"source": "kaggle", "source_id": "o/s"}}}}})
    line = "funnel: 6 found → 4 EYE_IMAGING → 3 confident (P ≥ 0.80) → 2 canonical → 1 downloaded / 1 posted"

    caplog.set_level(logging.INFO)
    assert runhealth.main(["--data-dir", str(data), "--results-dir", str(results), "--run-id", "r1"]) == 0
    summary = read(data / "runs" / "r1" / "summary.json")
    assert summary["funnel"] == {"threshold": 0.8, "found": 6, "eye_imaging": 4, "confident": 3, "canonical": 2,
                                 "downloaded": 1, "posted": 1}
    assert f"run r1 {line}" in caplog.text
    report, page = build_report(data, results, run_id="r1", threshold=0.8)
    assert report.funnel.line() == line and line in page.replace("&gt;", ">")
    config = DownloadConfig(data_dir=data, results_dir=results, threshold=0.8)
    selected = collect_candidates(config, ["kaggle", "zenodo"], DownloadQueue(tmp_path / "elsewhere"))
    assert sorted(c["source_id"] for c in selected) == ["1", "2"]  # the canonical records, no other
