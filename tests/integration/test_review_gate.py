"""Curators' decisions gate what is downloaded and posted: the shared gate, the crawl's
download queue, and the whole flow crawl -> classify -> review -> download / post against
the local API server and the portal stand-in."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from envision_spiders.downloads.queue import DownloadQueue, gate
from localapi.portal import state_of
from envision_spiders.review import Ledger, decision_from

from tests.conftest import crawl_env, run_crawl, scrapy_in_process


def decided(decision: str, **more):
    return decision_from({"source": "zenodo", "source_id": "1", "decision": decision, "curator": "alice",
                          "reason": more.pop("reason", "seen"), **more})


def test_the_gate_honours_decisions_and_evidence():
    confident = {"label": "EYE_IMAGING", "prob_eye_imaging": 0.95}
    low = {"label": "NEGATIVE", "prob_eye_imaging": 0.2}
    assert gate(confident, 0.8) == (True, "")
    assert gate(confident, 0.8, requires_review=True) == (False, "waiting for a curator: not reviewed yet")
    assert gate(confident, 0.8, decided("accept"), requires_review=True) == (True, "")
    ok, why = gate(confident, 0.8, decided("reject", code="not-eye", reason="coronary"))
    assert not ok and why == "rejected by alice (not-eye: coronary)"
    assert gate(confident, 0.8, decided("unsure"))[1] == "waiting for a curator: alice marked it unsure"
    # an accept wins over the model's label and threshold; a duplicate is never selected
    assert gate(low, 0.8, decided("accept")) == (True, "")
    assert gate({"source_id": "x"}, 0.8, decided("accept")) == (True, ""), "accepted before it was classified"
    assert gate({**confident, "duplicate_of": "zenodo:2"}, 0.8, decided("accept"))[1].startswith("duplicate of")
    # text and file evidence that disagree hold a confident record back, in either shape
    assert gate({**confident, "disagreement": True}, 0.8)[1] == "waiting for a curator: its text and its files disagree"
    assert gate({"classification": {**confident, "disagreement": True}}, 0.8)[0] is False
    assert gate({**confident, "disagreement": True}, 0.8, decided("accept")) == (True, "")
    # results records keep the model's label apart from the curator's: the gate reads the model's
    assert gate({"label": "NEGATIVE", "model_label": "EYE_IMAGING", "prob_eye_imaging": 0.95}, 0.8) == (True, "")


def test_the_crawl_queues_no_rejected_record_and_sees_decisions_made_meanwhile(tmp_path):
    from scrapy.utils.test import get_crawler

    from pipelines.downloads import DownloadQueuePipeline

    crawler = get_crawler(settings_dict={"DATA_DIR": str(tmp_path), "RESULTS_DIR": str(tmp_path / "results"),
                                         "DOWNLOAD_THRESHOLD": 0.8, "DOWNLOAD_ENABLED": False})
    pipe = DownloadQueuePipeline.from_crawler(crawler)
    item = {"source": "zenodo", "source_id": "1", "classification": {"label": "EYE_IMAGING", "prob_eye_imaging": 0.9}}
    Ledger(tmp_path).append([decided("reject", code="not-eye")])
    pipe.process_item(dict(item))
    assert DownloadQueue(tmp_path).entries() == []
    Ledger(tmp_path).append([decided("accept", curator="bob")])  # during the crawl
    pipe.process_item(dict(item))
    assert [e["source_id"] for e in DownloadQueue(tmp_path).entries()] == ["1"]


def scrapy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``scrapy <args>`` as a curator types it, run in this process (Scrapy's own command line:
    :func:`tests.conftest.scrapy_in_process`): a new interpreter per command cost the test
    most of its time."""
    return scrapy_in_process(list(args), env)


def downloaded(data_dir: Path) -> set[str]:
    return {p.parent.name for p in (data_dir / "downloads" / "zenodo").glob("*/manifest.json")}


@pytest.mark.slow
def test_classify_review_then_download_and_post_skip_rejected_records(api, tmp_path, classifier_models):
    api.generate("zenodo", 24, seed=11)
    terms = tmp_path / "terms.txt"
    terms.write_text("fundus\noptical coherence tomography\nretina\n")
    data_dir = tmp_path / "data"
    crawled = run_crawl(api, "zenodo", data_dir, SEARCH_TERMS=str(terms))
    assert crawled.returncode == 0, crawled.stderr[-3000:]
    env = crawl_env(api, data_dir, CLASSIFIER_MODELS_DIR=str(classifier_models), DOWNLOAD_MIN_FREE_BYTES="0",
                    REVIEW_CURATOR="alice", **api.portal_settings())
    result = scrapy(env, "classify")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((data_dir / "results" / "zenodo_eye_imaging.json").read_text())
    confident = [r["source_id"] for r in rows if r["prob_eye_imaging"] >= 0.8 and not r["duplicate_of"]]
    assert len(confident) >= 4, f"the generated corpus should hold confident EYE_IMAGING records: {rows}"
    rejected, accepted, rest = confident[:2], confident[2], confident[3:]

    result = scrapy(env, "review", "reject", *(f"zenodo:{i}" for i in rejected), "--code", "not-eye",
                    "--reason", "not the eye")
    assert result.returncode == 0, result.stderr[-3000:]
    result = scrapy(env, "review", "accept", f"zenodo:{accepted}", "--reason", "fundus photographs")
    assert result.returncode == 0, result.stderr[-3000:]

    # downloads (DOWNLOAD_REQUIRES_REVIEW off): every confident record but the rejected ones
    result = scrapy(env, "download", "--progress", "off")
    assert result.returncode == 0, result.stderr[-3000:]
    assert downloaded(data_dir) == set(confident) - set(rejected)
    assert "2 records rejected by curators are not downloaded" in result.stderr

    # posts (POST_REQUIRES_REVIEW on by default): only the accepted record, the rest wait
    portal = state_of(api.state)
    result = scrapy({**env, "RUN_ID": "p1"}, "post")
    assert result.returncode == 0, result.stderr[-3000:]
    title = {r["source_id"]: r["title"] for r in rows}
    assert [p["body"]["title"] for p in portal.posts()] == [title[accepted]]
    summary = json.loads((data_dir / "runs" / "p1" / "post.json").read_text())
    assert (summary["posted"], summary["rejected"], summary["awaiting_review"]) == (1, 2, len(rest))
    assert f"{len(rest)} EYE_IMAGING records wait for a curator" in result.stderr

    # off: confident records nobody rejected go too, never the rejected ones
    result = scrapy({**env, "RUN_ID": "p2", "POST_REQUIRES_REVIEW": "0"}, "post")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((data_dir / "runs" / "p2" / "post.json").read_text())
    assert (summary["posted"], summary["rejected"], summary["unchanged_skipped"]) == (len(rest), 2, 1)
    assert not {title[i] for i in rejected} & {p["body"]["title"] for p in portal.posts()}

    # a posted record rejected afterwards is listed for withdrawal; the portal cannot remove it
    result = scrapy(env, "review", "reject", f"zenodo:{accepted}", "--curator", "bob", "--code", "no-images")
    assert result.returncode == 0 and "was accepted by alice" in result.stdout
    result = scrapy({**env, "RUN_ID": "p3"}, "post")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((data_dir / "runs" / "p3" / "post.json").read_text())
    assert summary["to_withdraw"] == 1 and summary["to_withdraw_datasets"][0]["source_id"] == accepted
    assert "rejected by a curator after they were posted" in result.stderr
    datasets = len(portal.datasets)
    result = scrapy({**env, "RUN_ID": "p4"}, "post", "--withdraw")
    assert result.returncode == 1
    assert "cannot remove a dataset" in result.stderr and "Traceback" not in result.stderr
    assert len(portal.datasets) == datasets and not [r for r in portal.requests if r["method"] != "POST"]

    # DOWNLOAD_REQUIRES_REVIEW: only accepted records (none stands accepted now)
    result = scrapy({**env, "DOWNLOAD_REQUIRES_REVIEW": "1"}, "download", "--dry-run")
    assert result.returncode == 0 and "total: 0 files to download" in result.stdout and "; 0 records" in result.stdout

    # the decisions survive next week's crawl and classification: the ledger is untouched, the results carry
    # the curators' label, and download and post still leave the rejected out. The model is pinned to the
    # folder of the one built without decisions (CLASSIFIER_MODEL): the default would learn from these
    # decisions and rebuild the suite's shared model (the rebuild: test_review_training.py)
    pinned = str(classifier_models / "envision-default")
    ledger = Ledger(data_dir).path.read_bytes()
    recrawled = run_crawl(api, "zenodo", data_dir, SEARCH_TERMS=str(terms), CLASSIFIER_MODEL=pinned)
    assert recrawled.returncode == 0, recrawled.stderr[-3000:]
    result = scrapy({**env, "CLASSIFIER_MODEL": pinned}, "classify")
    assert result.returncode == 0, result.stderr[-3000:]
    assert Ledger(data_dir).path.read_bytes() == ledger
    again = {r["source_id"]: r for r in json.loads((data_dir / "results" / "zenodo_all_results.json").read_text())}
    for sid in [*rejected, accepted]:
        assert (again[sid]["label"], again[sid]["label_source"], again[sid]["review"]["decision"]) == \
            ("NEGATIVE", "curator", "reject"), again[sid]
    assert all(again[sid]["review"] is None for sid in rest)
    result = scrapy({**env, "RUN_ID": "p5", "POST_REQUIRES_REVIEW": "0"}, "post")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((data_dir / "runs" / "p5" / "post.json").read_text())
    assert summary["rejected"] == 3 and summary["to_withdraw"] == 1
    assert not {title[i] for i in rejected} & {p["body"]["title"] for p in portal.posts()}
    result = scrapy(env, "download", "--dry-run")
    assert result.returncode == 0 and "3 records rejected by curators are not downloaded" in result.stderr


def test_the_recall_check_says_what_curators_decided(tmp_path):
    from tests.commands.test_recall import corpus, reasons, rows_by_name, run_check

    data, results = corpus(tmp_path)
    Ledger(data).append([
        decision_from({"source": "zenodo", "source_id": "500", "decision": "reject", "code": "restricted",
                       "reason": "on request only", "curator": "alice"}),
        decision_from({"source": "zenodo", "source_id": "300", "decision": "accept", "reason": "OCT volumes",
                       "curator": "bob"}),
    ])
    result = run_check(data, results)
    rows = rows_by_name(result)
    # rejected: why not says so, nothing about downloads or posts waiting
    juliet = rows["Juliet"]
    assert "rejected" in reasons(juliet) and not {"download_pending", "awaiting_review"} & set(reasons(juliet))
    assert "rejected by alice" in next(w["detail"] for w in juliet["why_not"] if w["reason"] == "rejected")
    # accepted although classified NEGATIVE: no longer queued for review, eligible for download and post
    charlie = rows["Charlie"]
    assert charlie["review"] == "accept" and "accepted by bob" in charlie["why_not"][0]["detail"]
    assert {"not_downloaded", "not_posted"} <= set(reasons(charlie))
    assert [i["key"] for i in result["review_queue"]] == []
    # confident, nobody accepted: it waits for a curator (POST_REQUIRES_REVIEW)
    assert "awaiting_review" in reasons(rows["Bravo"])


def gated_corpus(tmp_path: Path) -> tuple[Path, Path]:
    """Three confident EYE_IMAGING records: 1 rejected, 2 accepted, 3 nobody decided."""
    from envision_spiders.results import write_results

    from tests.unit.test_results import save

    data, results = tmp_path / "data", tmp_path / "results"
    for sid in ("1", "2", "3"):
        save(data, "zenodo", sid, 0.95, title=f"Fundus photographs {sid}", doi=f"10.5281/zenodo.{sid}")
    Ledger(data).append([decided("reject", code="not-eye"),
                         decision_from({"source": "zenodo", "source_id": "2", "decision": "accept", "curator": "bob"})])
    write_results(data, results)
    return data, results


@pytest.mark.parametrize("requires_review, fetched", [(False, ["2", "3"]), (True, ["2"])])
def test_the_crawls_own_downloads_follow_download_requires_review(tmp_path, requires_review, fetched):
    from scrapy.utils.test import get_crawler

    from pipelines.downloads import DownloadQueuePipeline

    data, results = gated_corpus(tmp_path)
    crawler = get_crawler(settings_dict={"DATA_DIR": str(data), "RESULTS_DIR": str(results), "DOWNLOAD_THRESHOLD": 0.8,
                                         "DOWNLOAD_ENABLED": True, "DOWNLOAD_REQUIRES_REVIEW": requires_review})
    pipe = DownloadQueuePipeline.from_crawler(crawler)
    assert pipe.runner is not None

    class Runner:  # what the pipeline hands to the downloader (the downloads themselves: test_downloads.py)
        submitted: list = []

        def submit(self, candidate):
            self.submitted.append(candidate["source_id"])

    pipe.runner = Runner()
    for sid in ("1", "2", "3"):
        pipe.process_item({"source": "zenodo", "source_id": sid,
                           "classification": {"label": "EYE_IMAGING", "prob_eye_imaging": 0.95}})
    assert Runner.submitted == fetched
    assert sorted(e["source_id"] for e in DownloadQueue(data).entries()) == fetched


@pytest.mark.parametrize("env, exported", [({}, ["2", "3"]), ({"DOWNLOAD_REQUIRES_REVIEW": "1"}, ["2"])])
def test_export_addf_follows_the_download_gate(tmp_path, env, exported):
    data, results = gated_corpus(tmp_path)
    environ = {**os.environ, "DATA_DIR": str(data), "RESULTS_DIR": str(results), **env}
    result = scrapy(environ, "export-addf")
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert sorted(p.name for p in (data / "addf" / "zenodo").iterdir()) == exported
