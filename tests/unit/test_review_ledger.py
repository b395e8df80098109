"""The curator decision ledger (data/review/decisions.jsonl): latest decision wins, history
kept, duplicates follow their canonical record, and nothing is lost when a writer is
killed mid-write or two writers append at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from envision_spiders.review import Decision, DecisionError, Ledger, Review, decision_from, effective_label, parse_key

from tests.conftest import ROOT


def decide(source_id: str, decision: str, curator: str = "alice", source: str = "zenodo", **more) -> Decision:
    reason = more.pop("reason", "because" if decision == "reject" else "")
    return decision_from({"source": source, "source_id": source_id, "decision": decision, "reason": reason,
                          "curator": curator, **more})


def test_the_latest_decision_stands_and_earlier_ones_stay_as_history(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.append([decide("1", "accept"), decide("2", "reject", code="not-eye")])
    ledger.append([decide("1", "reject", curator="bob", reason="coronary OCT")])
    ledger.append([decide("1", "unsure", curator="carol")])
    review = Review(ledger.read())
    assert review.standing("zenodo:1").decision == "unsure" and review.standing("zenodo:1").curator == "carol"
    assert [d.decision for d in review.own("zenodo:1")] == ["accept", "reject", "unsure"]
    assert review.standing("zenodo:2").code == "not-eye"
    assert review.standing("zenodo:3") is None
    # every line is plain JSON, one decision each, in the order recorded
    lines = ledger.path.read_text().splitlines()
    assert [json.loads(x)["decision"] for x in lines] == ["accept", "reject", "reject", "unsure"]
    assert all(json.loads(x)["recorded_at"] for x in lines)


def test_the_curators_decision_makes_the_label():
    accept, reject, unsure = decide("1", "accept"), decide("1", "reject"), decide("1", "unsure")
    assert effective_label("NEGATIVE", accept) == ("EYE_IMAGING", "curator")
    assert effective_label("EYE_IMAGING", reject) == ("NEGATIVE", "curator")
    assert effective_label("EYE_IMAGING", unsure) == ("EYE_IMAGING", "model")
    assert effective_label("EYE_IMAGING", None) == ("EYE_IMAGING", "model")
    assert effective_label(None, None) == (None, None)


def test_duplicates_follow_their_canonical_record_except_a_mirror_rejection(tmp_path):
    groups = [{"canonical": "zenodo:1", "members": [{"key": "zenodo:1"}, {"key": "datacite:10.5281/zenodo.1"},
                                                    {"key": "kaggle:lab/copy"}]}]
    ledger = Ledger(tmp_path)
    ledger.append([decide("1", "reject", code="not-eye")])
    review = Review(ledger.read(), groups)
    for key in ("zenodo:1", "datacite:10.5281/zenodo.1", "kaggle:lab/copy"):
        assert review.standing(key).decision == "reject", key
    assert review.standing("datacite:10.5281/zenodo.1").key == "zenodo:1", "made on the canonical record"
    # a later decision on the canonical record again moves every member
    ledger.append([decide("1", "accept", curator="bob")])
    review = Review(ledger.read(), groups)
    assert {review.standing(k).decision for k in ("zenodo:1", "kaggle:lab/copy")} == {"accept"}
    # a mirror rejection stays on the copy it names
    ledger.append([decide("lab/copy", "reject", source="kaggle", code="mirror")])
    review = Review(ledger.read(), groups)
    assert review.standing("kaggle:lab/copy").decision == "reject"
    assert review.standing("zenodo:1").decision == "accept"
    assert review.standing("datacite:10.5281/zenodo.1").decision == "accept"
    # without the groups each record has only its own decisions
    assert Review(ledger.read()).standing("datacite:10.5281/zenodo.1") is None


def test_a_withdrawal_is_a_line_of_its_own_and_takes_back_the_records_decisions(tmp_path):
    groups = [{"canonical": "zenodo:1", "members": [{"key": "zenodo:1"}, {"key": "kaggle:lab/copy"}]}]
    ledger = Ledger(tmp_path)
    ledger.append([decide("1", "reject", code="not-eye"), decide("1", "accept", curator="bob")])
    ledger.append([decide("1", "withdraw", curator="bob", reason="clicked the wrong row")])
    review = Review(ledger.read(), groups)
    assert review.standing("zenodo:1") is None and review.standing("kaggle:lab/copy") is None
    assert effective_label("EYE_IMAGING", review.standing("zenodo:1")) == ("EYE_IMAGING", "model")
    assert [d.decision for d in review.own("zenodo:1")] == ["reject", "accept", "withdraw"], "history kept"
    assert [json.loads(x)["decision"] for x in ledger.path.read_text().splitlines()] == ["reject", "accept", "withdraw"]
    assert review.latest("zenodo:1").describe().startswith("decision withdrawn by bob")
    # a withdrawal takes back the decisions of its own record only: a duplicate's own one stands again
    ledger.append([decide("lab/copy", "reject", source="kaggle", code="not-eye")])
    review = Review(ledger.read(), groups)
    assert review.standing("zenodo:1").key == "kaggle:lab/copy"
    ledger.append([decide("lab/copy", "withdraw", source="kaggle"), decide("1", "unsure", curator="carol")])
    review = Review(ledger.read(), groups)
    assert review.standing("kaggle:lab/copy").decision == "unsure", "a decision after the withdrawal stands"
    with pytest.raises(DecisionError, match="takes no reason code"):
        decide("1", "withdraw", code="not-eye")


def test_a_decision_is_checked_before_it_is_recorded(tmp_path):
    with pytest.raises(DecisionError, match="decision 'maybe'"):
        decide("1", "maybe")
    with pytest.raises(DecisionError, match="needs a reason"):
        decide("1", "reject", reason="")
    with pytest.raises(DecisionError, match="reason code 'ugly'"):
        decide("1", "accept", code="ugly")
    with pytest.raises(DecisionError, match="curator is missing"):
        decide("1", "accept", curator="")
    with pytest.raises(DecisionError, match="not a date"):
        decide("1", "accept", decided_at="yesterday")
    with pytest.raises(DecisionError, match="SOURCE:ID"):
        parse_key("zenodo")
    assert parse_key("kaggle:owner/slug:v2") == ("kaggle", "owner/slug:v2")
    assert not Ledger(tmp_path).path.exists()


def test_a_torn_last_line_is_skipped_and_the_next_decision_gets_a_line_of_its_own(tmp_path, caplog):
    ledger = Ledger(tmp_path)
    ledger.append([decide("1", "accept"), decide("2", "accept")])
    whole = ledger.path.read_bytes()
    # a write cut short (power loss, full disk): half a line, no newline
    torn = json.dumps(decide("3", "reject").as_json()).encode()[:40]
    ledger.path.write_bytes(whole + torn)
    assert [d.source_id for d in ledger.read()] == ["1", "2"] and ledger.damaged == [3]
    assert "cut short" in caplog.text
    ledger.append([decide("4", "reject", curator="bob")])
    assert [d.source_id for d in ledger.read()] == ["1", "2", "4"]
    assert ledger.path.read_bytes().startswith(whole + torn + b"\n"), "nothing written before is changed"


def test_appending_the_same_decision_twice_records_it_once(tmp_path):
    ledger = Ledger(tmp_path)
    d = decide("1", "reject", code="no-images")
    first = ledger.append([d])
    again = ledger.append([d])
    assert len(first.written) == 1 and not again.written and again.known == [d]
    assert len(ledger.read()) == 1


WRITER = """
import sys
from envision_spiders.review import Ledger, decision_from
ledger, name = Ledger(sys.argv[1]), sys.argv[2]
print("ready", flush=True)
for i in range(int(sys.argv[3])):
    ledger.append([decision_from({"source": "zenodo", "source_id": f"{name}-{i}", "decision": "reject",
                                  "reason": name + " " + "x" * 1500, "curator": name})])
"""


def writer(tmp_path, name: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, str(count)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)


def wait_for_lines(path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, "the writer ended before it was killed"
        time.sleep(0.01)
    raise AssertionError(f"fewer than {n} lines in {path} after 120 s")


def test_a_writer_killed_mid_write_loses_nothing_already_recorded(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.append([decide("before", "accept")])
    proc = writer(tmp_path, "killed", 1_000_000)
    wait_for_lines(ledger.path, 40, proc)
    proc.send_signal(signal.SIGKILL)  # wherever it is: between lines, mid-write or holding the lock
    proc.wait(timeout=30)
    data = ledger.path.read_bytes()
    complete = data.count(b"\n")
    decisions = ledger.read()
    assert ledger.damaged in ([], [complete + 1]), "at most the line being written is cut"
    assert len(decisions) == complete and decisions[0].source_id == "before"
    assert [d.source_id for d in decisions[1:]] == [f"killed-{i}" for i in range(complete - 1)]
    # the lock died with the process: the next writer gets it and its line is whole
    ledger.append([decide("after", "reject", curator="bob")])
    assert [d.source_id for d in ledger.read()][-1] == "after"
    assert len(ledger.read()) == complete + 1


def test_two_writers_at_once_interleave_whole_lines_only(tmp_path):
    procs = [writer(tmp_path, name, 150) for name in ("alice", "bob")]
    for p in procs:
        assert p.wait(timeout=240) == 0
    decisions = Ledger(tmp_path).read()
    assert len(decisions) == 300 and not Ledger(tmp_path).damaged
    for name in ("alice", "bob"):
        mine = [d.source_id for d in decisions if d.curator == name]
        assert mine == [f"{name}-{i}" for i in range(150)], "each writer's lines whole and in its order"
