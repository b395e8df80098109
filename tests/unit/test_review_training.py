"""The model learns from curators' decisions: which decisions teach what, the model's
inputs (and so its id) follow the ledger, train-classifier builds with them and compares
with and without them, and a model given decisions agrees with them more."""

from __future__ import annotations

import json

import pytest

from envision_spiders.classifier.data import Examples
from envision_spiders.classifier.model import fingerprint, input_versions, is_current
from envision_spiders.review import Ledger, decision_from
from envision_spiders.review.training import labelled_records, training_examples

from tests.unit.test_results import save


def decide(data, sid, decision, code=None, curator="alice", reason="seen"):
    Ledger(data).append([decision_from({"source": "zenodo", "source_id": sid, "decision": decision, "code": code,
                                        "curator": curator, "reason": reason})])


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "data"
    save(data, "zenodo", "1", 0.97, title="Intracoronary OCT pullbacks", description="Plaque annotations.",
         file_names=["pullback_001.dcm"], file_types=[".dcm"],
         archives=[{"name": "a.zip", "members_sample": ["run1/frame_0001.dcm"]}])
    save(data, "zenodo", "2", 0.30, title="Widefield fundus photographs of retinopathy of prematurity")
    save(data, "zenodo", "3", 0.90, title="Genotypes of a glaucoma cohort, no images")
    save(data, "zenodo", "4", 0.95, title="Mouse retina OCT")
    save(data, "zenodo", "5", 0.95, title="A copy of a fundus dataset")
    return data


def test_which_decisions_teach_what(data):
    decide(data, "1", "accept")
    decide(data, "1", "reject", code="not-eye", curator="bob")  # the latest of the record counts
    decide(data, "2", "accept")
    decide(data, "3", "reject", code="no-images")
    decide(data, "4", "reject", code="not-human")
    decide(data, "5", "reject", code="mirror")
    decide(data, "9", "accept")  # a record no longer on disk
    decide(data, "6", "unsure")
    records, left_out = labelled_records(data)
    assert [(r["source_id"], r["label"], r["kind"]) for r in records] == [
        ("1", "NEGATIVE", "negative"), ("2", "EYE_IMAGING", "eye_imaging"), ("3", "NEGATIVE", "other_eye_data")]
    assert records[0]["file_types"] == [".dcm"] and records[0]["archive_members"] == ["run1/frame_0001.dcm"]
    assert left_out == {"reject (not-human)": 1, "reject (mirror)": 1, "record no longer on disk": 1, "unsure": 1}
    examples = training_examples(data)
    assert examples.labels == (0, 1, 0) and examples.texts[0].startswith("Intracoronary OCT pullbacks")


def test_the_models_inputs_and_id_follow_the_decisions(data, classifier_models):
    base = input_versions()
    assert input_versions(training_examples(data)) == base, "no decision: the model stays the one built without"
    decide(data, "2", "accept")
    first = training_examples(data)
    assert fingerprint(input_versions(first)) != fingerprint(base)
    decide(data, "2", "accept", curator="bob", reason="again")  # the same lesson: the same model
    assert training_examples(data).digest() == first.digest()
    decide(data, "5", "reject", code="mirror")  # teaches nothing
    assert training_examples(data).digest() == first.digest()
    decide(data, "1", "reject", code="not-eye")
    assert training_examples(data).digest() != first.digest()
    # the model built without decisions is out of date for a ledger that teaches something
    from envision_spiders.classifier import default_model_dir

    folder = default_model_dir(classifier_models)
    assert is_current(folder) and not is_current(folder, training_examples(data))


def test_train_classifier_builds_with_the_decisions_and_compares(data, monkeypatch, capsys, tmp_path):
    from scrapy.settings import Settings

    import importlib

    # the command's module is named after the command, dash included (see envision_spiders.commands)
    train_classifier = importlib.import_module("envision_spiders.commands.train-classifier")
    from envision_spiders.review import training

    decide(data, "1", "reject", code="not-eye")
    decide(data, "2", "accept")
    built, compared = {}, {}

    def fake_build(root, force=False, curated=None):
        built.update(root=root, force=force, curated=curated)
        folder = tmp_path / "models" / "envision-default"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "envision_model.json").write_text(json.dumps({"model_id": "envision-default@abc"}))
        return folder

    def fake_compare(curated, folds=5, seed=42, progress=None):
        compared.update(curated=curated, folds=folds)
        m = {"n": 2, "per_class": {"EYE_IMAGING": {"f1": 1.0, "precision": 1.0, "recall": 1.0}}, "accuracy": 1.0,
             "ece": 0.1}
        return {"protocol": "p", "decisions": {"count": 2, "eye_imaging": 1, "negative": 1, "sha256": "x"},
                "figures": {"builtin_without": m, "builtin_with": m, "decisions_without": m}}

    monkeypatch.setattr("envision_spiders.classifier.build_default_model", fake_build)
    monkeypatch.setattr(training, "compare", fake_compare)
    cmd = train_classifier.Command()
    cmd.settings = Settings({"DATA_DIR": str(data), "CLASSIFIER_MODELS_DIR": str(tmp_path / "models")})
    parser = __import__("argparse").ArgumentParser()
    cmd.add_options(parser)
    cmd.run([], parser.parse_args(["--folds", "3"]))
    out = capsys.readouterr().out
    assert built["force"] and built["curated"].labels == (0, 1)
    assert compared["folds"] == 3 and compared["curated"].digest() == built["curated"].digest()
    assert "2 curator decisions teach the model (1 EYE_IMAGING, 1 NEGATIVE)" in out
    assert "with the decisions" in out and "too few decisions to cross-validate" in out
    assert list((data / "evaluations").glob("*/decisions-cv.json"))


@pytest.mark.slow
def test_a_model_given_decisions_agrees_with_them_more(monkeypatch):
    """The comparison on a small slice of the built-in examples, with the text head fitted
    without its calibration (six fits instead of one each: the test would take ten minutes
    on a loaded machine): curators reject foot-ulcer photographs from an eye clinic, which
    the model calls eye imaging; cross-validated over such decisions, the model learns to
    agree with them."""
    import functools

    from envision_spiders.classifier import data as cdata
    from envision_spiders.classifier import head
    from envision_spiders.classifier.text import training_text
    from envision_spiders.review.training import compare, format_comparison

    full, extra = cdata.builtin_examples(), cdata.extra_examples()
    keep = [i for i in range(len(full)) if i % 15 == 0]
    small = Examples(tuple(full.texts[i] for i in keep), tuple(full.labels[i] for i in keep),
                     tuple(full.kinds[i] for i in keep))
    monkeypatch.setattr(head, "fit_text_head", functools.partial(head.fit_text_head, calibrate=False))
    monkeypatch.setattr(cdata, "builtin_examples", lambda: small)
    monkeypatch.setattr(cdata, "extra_examples", lambda: Examples(extra.texts[:10], extra.labels[:10], extra.kinds[:10]))
    # records the model takes for eye imaging (an eye clinic, eye words) that are not
    sites = ["heel", "forefoot", "plantar surface", "toe", "ankle", "midfoot", "hallux", "lateral foot"]
    texts = [training_text(f"Photographs of diabetic foot ulcers on the {s}, taken at a diabetic retinopathy "
                           f"screening clinic; wound area annotated by two readers") for s in sites]
    curated = Examples(tuple(texts), (0,) * len(texts), ("negative",) * len(texts))
    report = compare(curated, folds=2)
    f = report["figures"]
    assert f["decisions_without"]["n"] == f["decisions_with"]["n"] == len(texts)
    assert f["builtin_without"]["n"] == f["builtin_with"]["n"] == len(small)
    agree_without = f["decisions_without"]["accuracy"]
    agree_with = f["decisions_with"]["accuracy"]
    assert agree_with > agree_without, format_comparison(report)


def test_the_crawl_loads_the_model_with_the_decisions(data, tmp_path, monkeypatch):
    import asyncio

    from scrapy import Spider
    from scrapy.utils.test import get_crawler

    import pipelines.classify as classify

    decide(data, "2", "accept")
    calls = []
    monkeypatch.setattr(classify, "shared_classifier", lambda spec, root, curated=None: calls.append(curated) or "a model")
    crawler = get_crawler(Spider, {"DATA_DIR": str(data), "CLASSIFIER_MODELS_DIR": str(tmp_path / "m")})
    pipeline = classify.ClassifyPipeline.from_crawler(crawler)
    assert asyncio.run(pipeline._classifier()) == "a model"
    assert [c.labels for c in calls] == [(1,)], "the decisions reach the model"
