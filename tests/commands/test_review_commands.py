"""`scrapy review` as a curator runs it, the results/ fields decisions make, and bad input:
unknown ids, malformed or truncated decisions files, records that no longer exist, two
curators deciding differently at once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from envision_spiders.results import write_results
from envision_spiders.review import Ledger, Review, decision_from
from envision_spiders.review.importing import FORMAT
from envision_spiders.review.pending import catalogue_negatives, waiting

from tests.conftest import ROOT, scrapy_in_process
from tests.unit.test_results import save


def setup_records(tmp_path: Path) -> tuple[Path, Path]:
    data, results = tmp_path / "data", tmp_path / "results"
    save(data, "zenodo", "1", 0.97, title="Intracoronary OCT pullbacks")
    save(data, "zenodo", "2", 0.91, title="Fundus photographs", doi="10.5281/zenodo.2")
    save(data, "zenodo", "3", 0.40, title="Eye tracking during reading")
    save(data, "zenodo", "4", 0.10, title="Radar data")
    save(data, "zenodo", "5", 0.99, title="OCT volumes of AMD")
    save(data, "datacite", "10.5281/zenodo.2", 0.90, doi="10.5281/zenodo.2", title="Fundus photographs",
         extra={"hosting_repository": "zenodo"})
    write_results(data, results)
    return data, results


def review(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "RESULTS_DIR": str(tmp_path / "results"),
               "PYTHONPATH": str(ROOT), "REVIEW_CURATOR": "alice", **env}
    return scrapy_in_process(["review", *args], environ)


def rows(results: Path, source: str, which: str = "all_results") -> dict[str, dict]:
    return {r["source_id"]: r for r in json.loads((results / f"{source}_{which}.json").read_text())}


def test_results_carry_the_decision_and_the_label_that_stands(tmp_path):
    data, results = setup_records(tmp_path)
    Ledger(data).append([
        decision_from({"source": "zenodo", "source_id": "1", "decision": "reject", "code": "not-eye",
                       "reason": "coronary arteries", "curator": "alice", "model_id": "m@1", "prob_eye_imaging": 0.97}),
        decision_from({"source": "zenodo", "source_id": "3", "decision": "accept", "reason": "retinal videos",
                       "curator": "bob"}),
        decision_from({"source": "zenodo", "source_id": "2", "decision": "unsure", "curator": "bob"}),
    ])
    summary = write_results(data, results)
    z = rows(results, "zenodo")
    assert (z["1"]["label"], z["1"]["model_label"], z["1"]["label_source"]) == ("NEGATIVE", "EYE_IMAGING", "curator")
    assert z["1"]["review"]["decision"] == "reject" and z["1"]["review"]["code"] == "not-eye"
    assert z["1"]["review"]["curator"] == "alice" and z["1"]["review"]["reason"] == "coronary arteries"
    assert z["1"]["confidence"] == pytest.approx(0.03), "the model's probability of the label shown"
    assert (z["3"]["label"], z["3"]["label_source"]) == ("EYE_IMAGING", "curator")
    assert (z["2"]["label"], z["2"]["label_source"], z["2"]["review"]["decision"]) == ("EYE_IMAGING", "model", "unsure")
    assert (z["5"]["label"], z["5"]["label_source"], z["5"]["review"]) == ("EYE_IMAGING", "model", None)
    # the EYE_IMAGING list follows the curators: the rejection leaves it, the accept joins it
    assert set(rows(results, "zenodo", "eye_imaging")) == {"2", "3", "5"}
    # the DataCite copy of zenodo:2 follows it
    dc = rows(results, "datacite")["10.5281/zenodo.2"]
    assert dc["review"]["decision"] == "unsure" and dc["review"]["on"] == "zenodo:2"
    assert summary["review"] == {"decisions": 3, "accept": 1, "reject": 1, "unsure": 2}
    assert summary["totals"]["EYE_IMAGING"] == 4


def test_the_queue_puts_new_eye_imaging_first_then_borderline_then_disagreement(tmp_path):
    data, results = setup_records(tmp_path)
    all_rows = [*rows(results, "zenodo").values(), *rows(results, "datacite").values()]
    all_rows.append({"source": "osf", "source_id": "x", "label": "NEGATIVE", "model_label": "NEGATIVE",
                     "prob_eye_imaging": 0.05, "disagreement": True})
    all_rows.append({"source": "osf", "source_id": "y", "label": "NEGATIVE", "prob_eye_imaging": 0.05,
                     "classification": {"disagreement": False}})
    before = {"zenodo:5"}  # EYE_IMAGING in the previous report: not new
    # the recall check queued zenodo:4, a catalogue dataset the model labelled NEGATIVE
    recall = {"review_queue_version": 1, "review_queue": [{"key": "zenodo:4", "reason": "recall-negative"}]}
    queue = waiting(all_rows, Review([], []), before, catalogue_negatives(recall))
    assert [(w.key, w.why) for w in queue] == [
        ("zenodo:2", "new EYE_IMAGING"), ("zenodo:1", "new EYE_IMAGING"),  # least sure first
        ("zenodo:4", "known dataset, labelled NEGATIVE"),
        ("zenodo:3", "borderline"), ("osf:x", "text and files disagree"), ("zenodo:5", "EYE_IMAGING, not reviewed"),
    ], "the DataCite duplicate waits with its canonical record, not apart"
    assert catalogue_negatives({**recall, "review_queue_version": 2}) == set(), "another contract version is not read"
    assert catalogue_negatives(None) == set() and catalogue_negatives({"review_queue_version": 1}) == set()
    ledger = Ledger(data)
    ledger.append([decision_from({"source": "zenodo", "source_id": "2", "decision": "accept", "curator": "a"}),
                   decision_from({"source": "zenodo", "source_id": "3", "decision": "unsure", "curator": "a"})])
    queue = waiting(all_rows, Review(ledger.read(), []), before)
    assert [w.key for w in queue] == ["zenodo:1", "zenodo:3", "osf:x", "zenodo:5"], "an unsure record still waits"


def test_decide_from_the_command_line(tmp_path):
    data, results = setup_records(tmp_path)
    done = review(tmp_path, "reject", "zenodo:1", "--code", "not-eye", "--reason", "coronary OCT")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "recorded: zenodo:1 rejected by alice" in done.stdout
    assert rows(results, "zenodo")["1"]["label"] == "NEGATIVE", "results rewritten at once"
    assert "zenodo:1" in (results / "report.html").read_text(), "and the page"
    # an unknown id records nothing, not even the good one beside it
    before = Ledger(data).path.read_bytes()
    bad = review(tmp_path, "accept", "zenodo:5", "zenodo:999", "nonsense")
    assert bad.returncode == 1
    assert "zenodo:999: no such record" in bad.stderr and "'nonsense' is not a record id" in bad.stderr
    assert "nothing recorded" in bad.stderr and "Traceback" not in bad.stderr
    assert Ledger(data).path.read_bytes() == before
    # a rejection without a reason is refused
    bad = review(tmp_path, "reject", "zenodo:5")
    assert bad.returncode == 1 and "needs a reason" in bad.stderr
    # a second curator overrules the first: both kept, the message says so
    done = review(tmp_path, "accept", "zenodo:1", "--curator", "bob", "--reason", "it is the retina after all")
    assert done.returncode == 0 and "was rejected by alice" in done.stdout and "bob's accept stands now" in done.stdout
    listed = review(tmp_path, "list", "zenodo:1")
    assert listed.returncode == 0 and "zenodo:1: accepted by bob" in listed.stdout
    assert listed.stdout.count("the model said EYE_IMAGING P 0.97") == 2
    pending = review(tmp_path, "list", "--pending")
    assert pending.returncode == 0 and "zenodo:1" not in pending.stdout and "zenodo:2" in pending.stdout


def test_withdraw_a_decision_from_the_command_line(tmp_path):
    data, results = setup_records(tmp_path)
    assert review(tmp_path, "reject", "zenodo:1", "--code", "not-eye").returncode == 0
    assert review(tmp_path, "accept", "zenodo:2", "--reason", "fundus").returncode == 0
    assert rows(results, "datacite")["10.5281/zenodo.2"]["review"]["decision"] == "accept", "the group follows"
    done = review(tmp_path, "withdraw", "zenodo:1", "--reason", "rejected the wrong row")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "recorded: zenodo:1 decision withdrawn by alice" in done.stdout
    line = json.loads(Ledger(data).path.read_text().splitlines()[-1])
    assert (line["decision"], line["source_id"], line["reason"]) == ("withdraw", "1", "rejected the wrong row")
    row = rows(results, "zenodo")["1"]
    assert (row["label"], row["label_source"], row["review"]) == ("EYE_IMAGING", "model", None)
    listed = review(tmp_path, "list", "zenodo:1")
    assert "zenodo:1: no decision stands" in listed.stdout and "rejected by alice" in listed.stdout
    pending = review(tmp_path, "list", "--pending")
    assert "zenodo:1" in pending.stdout, "it waits for a curator again"
    # nothing stands: nothing to withdraw; a decision made on a duplicate is withdrawn there
    before = Ledger(data).path.read_bytes()
    bad = review(tmp_path, "withdraw", "zenodo:1")
    assert bad.returncode == 1 and "zenodo:1: no decision stands for it; nothing to withdraw" in bad.stderr
    bad = review(tmp_path, "withdraw", "datacite:10.5281/zenodo.2")
    assert bad.returncode == 1 and "withdraw it there: scrapy review withdraw zenodo:2" in bad.stderr
    bad = review(tmp_path, "withdraw", "zenodo:2", "--code", "not-eye")
    assert bad.returncode == 1 and "takes no reason code" in bad.stderr and "Traceback" not in bad.stderr
    assert Ledger(data).path.read_bytes() == before


def export(path: Path, decisions: list[dict], **header) -> Path:
    path.write_text(json.dumps({"format": FORMAT, "version": 1, "exported_at": "2026-07-08T10:00:00Z",
                                "page": {"run_id": "r1"}, "decisions": decisions, **header}))
    return path


def page_decision(sid: str, decision: str, ident: str, **more) -> dict:
    return {"id": ident, "source": "zenodo", "source_id": sid, "decision": decision, "curator": "carol",
            "decided_at": "2026-07-08T09:00:00Z", "reason": more.pop("reason", "seen on the page"), **more}


def test_import_a_page_file_once_however_often(tmp_path):
    data, results = setup_records(tmp_path)
    file = export(tmp_path / "decisions.json", [page_decision("1", "reject", "page-0001", code="not-eye"),
                                                page_decision("5", "accept", "page-0002", curator="")])
    first = review(tmp_path, "import", str(file))
    assert first.returncode == 0, first.stderr[-2000:]
    decisions = Ledger(data).read()
    assert [(d.key, d.decision, d.curator, d.origin) for d in decisions] == [
        ("zenodo:1", "reject", "carol", "page"), ("zenodo:5", "accept", "alice", "page")], \
        "a decision without a name gets REVIEW_CURATOR's"
    assert decisions[0].model_id == "m@1" and decisions[0].prob_eye_imaging == 0.97, "filled from the record"
    ledger = Ledger(data).path.read_bytes()
    again = review(tmp_path, "import", str(file))
    assert again.returncode == 0 and "2 decisions were in the ledger already" in again.stdout
    assert Ledger(data).path.read_bytes() == ledger, "importing twice changes nothing"


@pytest.mark.parametrize("content, message", [
    ('{"format": "envision-review-decisions", "version": 1, "decisions": [{"id": "abcdefgh1", "sou',
     "is not a complete decisions file"),
    ('[1, 2, 3]', "is not a decisions file of the review page"),
    (json.dumps({"format": FORMAT, "version": 1, "decisions": [
        page_decision("5", "accept", "page-0003"), page_decision("1", "maybe", "page-0004")]}),
     "decision 2 (zenodo:1): decision 'maybe' is not one of accept, reject, unsure, withdraw; nothing imported"),
    (json.dumps({"format": FORMAT, "version": 1, "decisions": [page_decision("1", "reject", "page-0005", reason="")]}),
     "needs a reason"),
    (json.dumps({"format": FORMAT, "version": 7, "decisions": []}), "version 7"),
    ("\xff\xfe", "is not"),
])
def test_a_malformed_or_truncated_file_imports_nothing(tmp_path, content, message):
    data, _ = setup_records(tmp_path)
    Ledger(data).append([decision_from({"source": "zenodo", "source_id": "2", "decision": "accept", "curator": "a"})])
    before = Ledger(data).path.read_bytes()
    file = tmp_path / "bad.json"
    file.write_text(content, encoding="latin-1")
    result = review(tmp_path, "import", str(file))
    assert result.returncode == 1
    lines = [x for x in result.stderr.splitlines() if x.startswith("review:")]
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert Ledger(data).path.read_bytes() == before


def test_a_missing_or_unreadable_decisions_file_is_one_line(tmp_path):
    setup_records(tmp_path)
    for path, message in ((tmp_path / "nowhere.json", "cannot read"), (tmp_path, "cannot read")):
        result = review(tmp_path, "import", str(path))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        lines = [x for x in result.stderr.splitlines() if x.startswith("review:")]
        assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], result.stderr[-2000:]
    assert not Ledger(tmp_path / "data").path.exists()


def test_a_decision_for_a_record_that_no_longer_exists_is_not_recorded(tmp_path):
    data, _ = setup_records(tmp_path)
    file = export(tmp_path / "d.json", [page_decision("1", "reject", "page-0010"), page_decision("77", "accept", "page-0011")])
    result = review(tmp_path, "import", str(file))
    assert result.returncode == 1
    assert "zenodo:77: no such record" in result.stderr
    assert [d.key for d in Ledger(data).read()] == ["zenodo:1"], "the others are recorded"


def test_two_curators_deciding_differently_at_once(tmp_path):
    data, results = setup_records(tmp_path)
    # carol's page showed no decision on zenodo:1 and zenodo:5; meanwhile dave decided both
    Ledger(data).append([decision_from({"source": "zenodo", "source_id": "1", "decision": "accept", "curator": "dave"}),
                         decision_from({"source": "zenodo", "source_id": "5", "decision": "accept", "curator": "dave"})])
    file = export(tmp_path / "d.json", [page_decision("1", "reject", "page-0020", code="not-eye"),
                                        page_decision("5", "accept", "page-0021")])
    result = review(tmp_path, "import", str(file))
    assert result.returncode == 1
    assert ("zenodo:1: accepted by dave" in result.stderr and "after your page was made; your reject (carol) was not "
            "recorded" in result.stderr)
    decisions = Ledger(data).read()
    assert [(d.key, d.curator, d.decision) for d in decisions] == [
        ("zenodo:1", "dave", "accept"), ("zenodo:5", "dave", "accept"), ("zenodo:5", "carol", "accept")]
    assert rows(results, "zenodo")["1"]["review"]["curator"] == "dave"
    # a page made after dave's decision (based on it) may change it
    file = export(tmp_path / "d2.json", [page_decision("1", "reject", "page-0022", code="not-eye",
                                                       based_on=decisions[0].id)])
    result = review(tmp_path, "import", str(file))
    assert result.returncode == 0, result.stderr[-2000:]
    assert Review(Ledger(data).read()).standing("zenodo:1").curator == "carol"


def test_the_page_lists_the_queue_once_and_the_rejections_with_their_reasons(tmp_path):
    from envision_spiders.report import build_report
    from envision_spiders.report.render import ROW_FIELDS, payload

    data, results = setup_records(tmp_path)
    save(data, "osf", "q", 0.05, title="Tables of visual fields")
    # a licence only a rejected record has still gets its index
    save(data, "zenodo", "6", 0.95, title="Skin OCT", license="LicenseRef-only-here")
    Ledger(data).append([decision_from({"source": "zenodo", "source_id": "1", "decision": "reject", "code": "not-eye",
                                        "reason": "coronary", "curator": "alice"}),
                         decision_from({"source": "zenodo", "source_id": "6", "decision": "reject", "code": "not-eye",
                                        "curator": "bob", "decided_at": "2026-01-01T00:00:00Z"})])
    write_results(data, results)
    # a NEGATIVE record whose text and files disagree waits too, in no other table (results/
    # carry evidence and disagreement once the classifier gives reasons)
    osf = json.loads((results / "osf_all_results.json").read_text())
    osf[0].update(disagreement=True, evidence=[{"supports": "EYE_IMAGING", "reason": "412 .e2e files"},
                                               {"supports": "bogus", "reason": "dropped"}])
    (results / "osf_all_results.json").write_text(json.dumps(osf))
    (results / "recall.json").write_text(json.dumps({"review_queue_version": 1, "review_queue": [
        {"key": "zenodo:4", "source": "zenodo", "source_id": "4", "reason": "recall-negative"}]}))
    report, html = build_report(data, results, run_id="r1")
    assert [r["key"] for r in report.queue.rows] == ["zenodo:2", "zenodo:5", "zenodo:4", "zenodo:3", "osf:q"]
    assert [r["key"] for r in report.rejected.rows] == ["zenodo:1", "zenodo:6"], "newest decision first"
    assert report.rejected.rows[0]["review"]["reason"] == "coronary"
    assert "zenodo:1" not in {r["key"] for r in report.eye.rows}
    assert report.queue.rows[-1]["reasons"] == [[1, "412 .e2e files"]]  # 1: for EYE_IMAGING; the bogus one dropped
    data_ = payload(report)
    queue = data_["tables"]["queue"]
    assert queue["refs"] == [["eye", 1], ["eye", 0], ["queue", 0], ["borderline", 0], ["queue", 1]]
    assert len(queue["rows"]) == 2, "rows of other tables are not embedded twice"
    assert queue["tiers"] == [0, 0, 1, 2, 3]
    row, other = data_["tables"]["rejected"]["rows"]
    assert row[ROW_FIELDS.index("review")][:4] == ["reject", "coronary", "not-eye", "alice"]
    assert data_["licenses"][other[ROW_FIELDS.index("license")]] == "LicenseRef-only-here"
    assert data_["models"][row[ROW_FIELDS.index("model_id")]] == "m@1"
    assert data_["review"]["known"] == [d.id for d in Ledger(data).read()]
    assert 'id="queue"' in html and 'id="rejected"' in html and 'id="review-bar"' in html
