"""Measuring the classifier: metrics, calibration, a labelled file, cross-validation, the commands."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from envision_spiders.classifier.data import extra_examples
from envision_spiders.classifier.calibration import expected_calibration_error, reliability_table
from envision_spiders.classifier.evaluate import (
    cross_validate,
    evaluate_file,
    format_report,
    intervals,
    metrics,
    parse_label,
    read_labelled,
    write_report,
)

from tests.conftest import ROOT, crawl_env, scrapy_in_process

PROBES = ROOT / "tests" / "fixtures" / "classifier" / "probes.jsonl"


def test_metrics_per_class_and_confusion_matrix():
    p = [0.9, 0.8, 0.3, 0.6, 0.1, 0.2]
    y = [1, 1, 1, 0, 0, 0]
    m = metrics(p, y)
    assert m["confusion_matrix"]["rows_true_columns_predicted"] == [[2, 1], [1, 2]]
    assert m["per_class"]["EYE_IMAGING"] == {"precision": pytest.approx(2 / 3, abs=1e-4),
                                             "recall": pytest.approx(2 / 3, abs=1e-4),
                                             "f1": pytest.approx(2 / 3, abs=1e-4), "support": 3}
    assert m["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert m["brier"] == pytest.approx(np.mean((np.array(p) - np.array(y)) ** 2), abs=1e-4)


def test_hard_negatives_and_title_only_recall():
    p = [0.95, 0.4, 0.85, 0.2, 0.81, 0.1]
    y = [1, 1, 1, 0, 0, 0]
    m = metrics(p, y, title_only_mask=[True, True, False, True, False, False])
    assert m["negatives_at_0.8"] == 1 and m["negatives"] == 3
    assert m["title_only_eye_imaging"] == 2 and m["title_only_recall"] == 0.5
    assert "title_only_recall" not in metrics(p, y)


def test_calibration_error_and_reliability_table():
    # bin 0.8-0.9 holds 0.8 and 0.85 (1 positive of 2), bin 0.1-0.2 holds 0.1 (negative)
    p, y = [0.8, 0.85, 0.1], [1, 0, 0]
    table = reliability_table(p, y)
    assert [row["bin"] for row in table] == [[0.1, 0.2], [0.8, 0.9]]
    assert table[1] == {"bin": [0.8, 0.9], "count": 2, "mean_predicted": 0.825, "fraction_positive": 0.5}
    assert expected_calibration_error(p, y) == pytest.approx((2 * 0.325 + 0.1) / 3)
    assert expected_calibration_error([1.0, 0.0], [1, 0]) == 0.0  # 1.0 falls in the last bin
    assert expected_calibration_error([], []) == 0.0


def test_intervals_hold_the_figures_and_narrow_with_more_records():
    rng = np.random.default_rng(3)

    def sample(n):
        p = rng.uniform(size=n)
        return p, (rng.uniform(size=n) < p).astype(int)

    small, large = sample(150), sample(3000)
    a, b = intervals(*small), intervals(*large)
    m = metrics(*small)
    for key, value in (("eye_imaging_f1", m["per_class"]["EYE_IMAGING"]["f1"]),
                       ("eye_imaging_precision", m["per_class"]["EYE_IMAGING"]["precision"]),
                       ("eye_imaging_recall", m["per_class"]["EYE_IMAGING"]["recall"]), ("ece", m["ece"])):
        lo, hi = a[key]
        assert lo <= value <= hi, key
        assert b[key][1] - b[key][0] < (hi - lo) / 2, key  # 20 times the records: about a quarter the width
    assert intervals(*small) == a, "seeded: the same file gives the same intervals"


def test_title_only_recall_gets_the_wilson_interval_and_one_class_no_bootstrap():
    # 54 of 62 title-only eye records found: Wilson's closed form
    p = [0.9] * 54 + [0.1] * 8 + [0.1] * 40
    y = [1] * 62 + [0] * 40
    lo, hi = intervals(p, y, title_only_mask=[True] * 62 + [False] * 40)["title_only_recall"]
    k, n, z = 54, 62, 1.959964
    centre, half = (k + z * z / 2) / (n + z * z), z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    assert (lo, hi) == (pytest.approx(centre - half, abs=1e-4), pytest.approx(centre + half, abs=1e-4))
    only_negatives = intervals([0.2, 0.9], [0, 0])
    assert only_negatives == {"level": 0.95}, "no F1 to resample without a positive"


def test_labels_in_every_spelling():
    assert [parse_label(v) for v in ("EYE_IMAGING", "eye-imaging", 1, True, "NEGATIVE", 0, "false")] == [1, 1, 1, 1, 0, 0, 0]
    assert parse_label("maybe") is None and parse_label(None) is None and parse_label(2) is None


def test_evaluation_on_a_small_labelled_file(tmp_path, default_classifier):
    lines = PROBES.read_text().splitlines()
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join([lines[0], "not json", json.dumps({"title": "x", "label": "maybe"}),
                               json.dumps(["a list"]), lines[20], lines[21], ""]) + "\n")
    records, skipped = read_labelled(path)
    assert len(records) == 3 and len(skipped) == 3
    report = evaluate_file(default_classifier, path)
    assert report["model_id"] == default_classifier.model_id
    assert [p["label"] for p in report["predictions"]] == ["EYE_IMAGING", "NEGATIVE", "NEGATIVE"]
    assert all(p["evidence"] and isinstance(p["disagreement"], bool) for p in report["predictions"])
    m = report["methods"]["combined"]["pooled"]
    cm = m["confusion_matrix"]["rows_true_columns_predicted"]
    assert m["n"] == 3 and sum(map(sum, cm)) == 3 and cm[1][0] + cm[1][1] == 1
    written = write_report(report, tmp_path / "out")
    assert {p.name for p in written} >= {"report.json", "report.txt"}
    assert json.loads((tmp_path / "out" / "report.json").read_text())["file"] == str(path)
    assert "ECE" in (tmp_path / "out" / "report.txt").read_text()


def test_hand_written_probes_are_mostly_right(default_classifier):
    """Probe records written for this project (eye imaging and hard negatives: coronary and
    cochlear OCT, eye tracking, psychophysics, ocular genetics, other medical imaging).
    Not training data; a floor that catches a broken model, not a measurement."""
    report = evaluate_file(default_classifier, PROBES)
    assert report["methods"]["combined"]["pooled"]["accuracy"] >= 0.8


def test_a_labelled_file_with_files_reports_the_text_alone_and_the_decision(tmp_path, default_classifier):
    """Vague titles whose files show eye imaging, and an eye text whose complete listing is
    tables only: the text model alone and the decision are measured apart."""
    vague = [{"title": f"Supplementary data {i}", "label": "EYE_IMAGING",
              "files": [{"name": f"raw/{k:03d}_OD.e2e"} for k in range(30)]} for i in range(3)]
    tables = [{"title": "Diabetic retinopathy grades from fundus photographs", "label": "NEGATIVE",
               "description": "Grades only.", "files": [{"name": "grades.csv"}, {"name": "README.txt"}]}]
    path = tmp_path / "with_files.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in vague + tables))
    report = evaluate_file(default_classifier, path)
    text, combined = report["methods"]["text"]["pooled"], report["methods"]["combined"]["pooled"]
    assert report["records_with_files"] == 4
    assert text["per_class"]["EYE_IMAGING"]["recall"] < combined["per_class"]["EYE_IMAGING"]["recall"] == 1.0
    assert combined["title_only_eye_imaging"] == 3 and combined["title_only_recall"] == 1.0
    assert all(p["disagreement"] for p in report["predictions"][:3])
    assert "recall on title-only eye imaging" in format_report(report)
    assert "title-only recall" in format_report(report) and report["methods"]["combined"]["intervals"]["title_only_recall"]


@pytest.mark.slow
def test_cross_validation_on_the_built_in_examples(example_embeddings, monkeypatch):
    # the real encoder's embeddings of these examples, computed once per model fingerprint
    monkeypatch.setattr("envision_spiders.classifier.encoder.Encoder", example_embeddings)
    report = cross_validate(folds=3, seeds=(0,), methods=("embedding_head", "embedding_head_uncalibrated"))
    assert report["data"]["examples"] == 891 and report["folds"] == 3
    assert report["data"]["training_extras"]["count"] == len(extra_examples())  # trained on, never scored
    for name in ("embedding_head", "embedding_head_uncalibrated"):
        pooled = report["methods"][name]["pooled"]
        assert pooled["n"] == 891  # every example predicted once, by a model that did not see it
        assert sum(map(sum, pooled["confusion_matrix"]["rows_true_columns_predicted"])) == 891
        assert 0 <= pooled["ece"] <= 1 and pooled["per_class"]["EYE_IMAGING"]["support"] == 262
    text = format_report(report)
    assert "Cross-validation" in text and "reliability" in text
    with pytest.raises(ValueError, match="unknown methods"):
        cross_validate(methods=("magic",))


@pytest.mark.slow
def test_cross_validation_scores_the_records_with_files_by_text_and_combined(example_embeddings, monkeypatch):
    from envision_spiders.classifier import head
    from envision_spiders.classifier.data import file_examples

    monkeypatch.setattr("envision_spiders.classifier.encoder.Encoder", example_embeddings)
    # the text head's calibration in two inner folds, not five: the inner folds are not what this
    # test is about, and they were four fifths of its minute
    folds = head._folds
    monkeypatch.setattr(head, "_folds", lambda labels: folds(labels, 2))

    report = cross_validate(folds=2, seeds=(0,), methods=("text_head",))
    n = len(file_examples())
    assert report["data"]["file_examples"]["count"] == n
    text = report["methods"]["file_examples_text"]["pooled"]
    combined = report["methods"]["file_examples_combined"]["pooled"]
    assert text["n"] == combined["n"] == n and report["methods"]["text_head"]["pooled"]["n"] == 891
    # the file evidence is what these records are for: it must help
    assert combined["per_class"]["EYE_IMAGING"]["f1"] > text["per_class"]["EYE_IMAGING"]["f1"]
    assert "title_only_recall" in combined and "negatives_at_0.8" in combined


def scrapy(command: list[str], data_dir, **settings) -> subprocess.CompletedProcess:
    return scrapy_in_process(command, crawl_env(None, data_dir, **settings))


@pytest.mark.slow
def test_evaluate_command_on_a_labelled_file(tmp_path, classifier_models):
    out = tmp_path / "report"
    result = scrapy(["evaluate-classifier", "--file", str(PROBES), "--output", str(out)], tmp_path,
                    CLASSIFIER_MODELS_DIR=str(classifier_models))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "EYE_IMAGING" in result.stdout and "reliability" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["methods"]["combined"]["pooled"]["n"] == 40 and report["methods"]["text"]["pooled"]["n"] == 40
    bad = scrapy(["evaluate-classifier", "--file", str(tmp_path / "missing.jsonl")], tmp_path)
    assert bad.returncode != 0 and "no such file" in bad.stderr


def test_commands_are_registered_under_their_dashed_names(tmp_path):
    """One package (COMMANDS_MODULE) registers every command, the dashed ones by their
    modules' names: no entry point is needed (a checkout or a scrapyd egg has them all)
    and no command has a second, underscored name."""
    from importlib.metadata import entry_points

    result = scrapy([], tmp_path)
    for name in ("classify", "train-classifier", "evaluate-classifier", "export-addf"):
        assert f"  {name} " in result.stdout, result.stdout
    for name in ("train_classifier", "evaluate_classifier", "export_addf"):
        assert f"  {name} " not in result.stdout, result.stdout
    ours = [ep for ep in entry_points(group="scrapy.commands") if ep.value.startswith("envision_spiders.")]
    assert not ours, ours


@pytest.mark.parametrize("command", [["classify"], ["evaluate-classifier", "--file", str(PROBES)]])
def test_commands_exit_1_with_one_clear_line_when_the_model_cannot_load(tmp_path, command):
    # a record to classify: on an empty DATA_DIR classify loads no model at all
    (tmp_path / "metadata" / "zenodo").mkdir(parents=True)
    (tmp_path / "metadata" / "zenodo" / "1.json").write_text('{"source": "zenodo", "source_id": "1", "title": "OCT"}')
    result = scrapy([*command, "--model", str(tmp_path / "no-model")], tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Cannot load the classifier" in result.stderr and "no such folder" in result.stderr
    assert "Traceback" not in result.stderr
