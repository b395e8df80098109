"""Classifying during a crawl (pipelines.classify) and without one (scrapy classify)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import threading
import time

import pytest
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from envision_spiders.classifier import record_text
from envision_spiders.items import DatasetItem
from envision_spiders.storage import atomic_write_json, record_path
from pipelines.classify import ClassifyPipeline
from pipelines.persist import PersistPipeline

from tests.conftest import crawl_env, crawl_in_process, last_summary, saved_records, scrapy_in_process

POSITIVE = ("Retinal OCT volumes of 300 eyes with diabetic macular edema",
            "Spectral-domain OCT B-scans acquired on a Heidelberg Spectralis, with fluid segmentation masks.")
NEGATIVE = ("Eye-tracking recordings during reading",
            "Gaze positions and fixations of 50 participants reading sentences, 1000 Hz eye tracker, CSV tables.")


class _Spider(Spider):
    name = "zenodo"


def crawler_for(tmp_path, models, **settings):
    values = {"DATA_DIR": str(tmp_path), "CLASSIFIER_MODELS_DIR": str(models), "CLASSIFY_BATCH_SIZE": 4,
              "CLASSIFY_BATCH_WAIT": 0.05, **settings}
    crawler = get_crawler(_Spider, values)
    crawler.spider = _Spider()
    return crawler


def item(i: int, title: str, description: str, **fields) -> DatasetItem:
    return DatasetItem(source="zenodo", source_id=str(i), title=title, description=description, **fields)


def run_items(pipeline, items, during=None):
    async def main():
        tasks = [asyncio.ensure_future(pipeline.process_item(i)) for i in items]
        if during:
            await during(tasks)
        out = await asyncio.gather(*tasks)
        await pipeline.close_spider()
        return out

    return asyncio.run(main())


def test_items_are_classified_in_batches_off_the_event_loop(tmp_path, classifier_models, default_classifier, monkeypatch):
    calls = []
    original = default_classifier.classify_inputs

    def slow_classify(inputs):
        calls.append((len(inputs), threading.current_thread().name))
        time.sleep(0.1)  # a slow model must not hold up the event loop
        return original(inputs)

    monkeypatch.setattr(default_classifier, "classify_inputs", slow_classify)
    crawler = crawler_for(tmp_path, classifier_models)
    pipeline = ClassifyPipeline.from_crawler(crawler)
    items = [item(i, *(POSITIVE if i % 2 else NEGATIVE)) for i in range(10)]
    ticks = []

    async def tick(tasks):
        while not all(t.done() for t in tasks):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    out = run_items(pipeline, items, during=tick)
    assert sorted(n for n, _ in calls) == [2, 4, 4]
    assert all(name.startswith("envision-classify") for _, name in calls)
    assert len(ticks) >= 20  # the loop kept running while the batches were classified
    for i, it in enumerate(out):
        c = it.classification
        assert c["label"] == ("EYE_IMAGING" if i % 2 else "NEGATIVE")
        assert c["model_id"] == default_classifier.model_id
        assert set(c) >= {"label", "confidence", "prob_eye_imaging", "prob_negative", "text_sha256", "classified_at",
                          "prob_text", "evidence", "disagreement", "files_sha256"}
    stats = crawler.stats
    assert stats.get_value("envision/classify/classified") == 10 and stats.get_value("envision/classify/batches") == 3
    assert stats.get_value("envision/classify/eye_imaging") == 5


def test_a_record_saved_with_this_models_label_is_not_classified_again(tmp_path, classifier_models, default_classifier,
                                                                      monkeypatch):
    unchanged, changed, other_model = item(1, *POSITIVE), item(2, *POSITIVE), item(3, *NEGATIVE)
    for it in (unchanged, changed, other_model):
        (c,) = default_classifier.classify_records([it.__dict__])
        if it is other_model:
            c["model_id"] = "someone-else@1"
        atomic_write_json(record_path(tmp_path, "zenodo", it.source_id), {**it.__dict__, "classification": c})
    saved = json.loads(record_path(tmp_path, "zenodo", "1").read_text())["classification"]
    changed.description += " Now with OCT angiography."
    seen = []
    original = default_classifier.classify_inputs
    monkeypatch.setattr(default_classifier, "classify_inputs",
                        lambda inputs: seen.extend(i.text for i in inputs) or original(inputs))
    crawler = crawler_for(tmp_path, classifier_models)
    out = run_items(ClassifyPipeline.from_crawler(crawler), [unchanged, changed, other_model])
    assert out[0].classification == saved  # reused as it was, time included
    assert sorted(seen) == sorted([record_text(changed.__dict__), record_text(other_model.__dict__)])
    assert out[2].classification["model_id"] == default_classifier.model_id
    assert crawler.stats.get_value("envision/classify/cached") == 1
    assert crawler.stats.get_value("envision/classify/classified") == 2


def test_disabled_pipeline_is_not_configured(tmp_path, classifier_models):
    with pytest.raises(NotConfigured):
        ClassifyPipeline.from_crawler(crawler_for(tmp_path, classifier_models, CLASSIFY_ENABLED=False))


def test_a_model_that_cannot_load_leaves_items_unlabelled_and_logs_once(tmp_path, classifier_models, caplog):
    caplog.set_level(logging.ERROR, logger="pipelines.classify")
    crawler = crawler_for(tmp_path, classifier_models, CLASSIFIER_MODEL=str(tmp_path / "missing-model"))
    out = run_items(ClassifyPipeline.from_crawler(crawler), [item(i, *POSITIVE) for i in range(3)])
    assert [o.classification for o in out] == [None, None, None]
    errors = [r for r in caplog.records if r.name == "pipelines.classify"]
    assert len(errors) == 1 and "missing-model" in errors[0].getMessage()
    assert crawler.stats.get_value("envision/classify/unclassified") == 3


def test_the_model_loads_only_when_a_record_needs_it(tmp_path, monkeypatch):
    """An incremental crawl that finds nothing new ends within seconds: a model load
    started when the spider opened was still running as the process exited, failed at
    interpreter shutdown, and was reported as a broken model being rebuilt ("The
    default classifier ... does not load ...; rebuilding it"). Nothing loads until a
    record needs a label."""
    loads = []

    class Model:
        model_id = "fake@1"

        def reusable(self, classification, inp):
            return False

        def classify_inputs(self, inputs):
            return [{"label": "EYE_IMAGING", "prob_eye_imaging": 0.9} for _ in inputs]

    def load(spec, root, curated=None):
        loads.append(spec)
        return Model()

    monkeypatch.setattr("pipelines.classify.shared_classifier", load)
    crawler = crawler_for(tmp_path, tmp_path / "models")
    assert run_items(ClassifyPipeline.from_crawler(crawler), []) == []
    assert loads == [], "a crawl without records loaded the model"
    out = run_items(ClassifyPipeline.from_crawler(crawler), [item(i, *POSITIVE) for i in range(3)])
    assert loads == [""] and [o.classification["label"] for o in out] == ["EYE_IMAGING"] * 3


def test_persistence_keeps_the_saved_label_of_an_item_not_classified_this_run(tmp_path):
    crawler = crawler_for(tmp_path, tmp_path)
    persist = PersistPipeline.from_crawler(crawler)
    label = {"label": "EYE_IMAGING", "model_id": "m@1", "text_sha256": "x"}
    persist.process_item(item(1, *POSITIVE, classification=label))
    persist.process_item(item(1, *POSITIVE))  # CLASSIFY_ENABLED=0: classification None
    assert json.loads(record_path(tmp_path, "zenodo", "1").read_text())["classification"] == label
    new_label = {**label, "label": "NEGATIVE"}
    persist.process_item(item(1, *POSITIVE, classification=new_label))
    assert json.loads(record_path(tmp_path, "zenodo", "1").read_text())["classification"] == new_label


# ------------------------------------------------------------------ through the engine (in this process)


def test_crawl_labels_each_record_once_per_model_and_text(api, tmp_path, classifier_models):
    api.generate("zenodo", 40, seed=5)
    settings = {"CLASSIFY_ENABLED": "1", "CLASSIFIER_MODELS_DIR": str(classifier_models)}
    result = crawl_in_process(api, "zenodo", tmp_path, **settings)
    assert result.returncode == 0, result.stderr[-3000:]
    records = saved_records(tmp_path, "zenodo")
    assert records and all(r["classification"]["model_id"].startswith("envision-default@") for r in records.values())
    stats = last_summary(tmp_path, "zenodo")["stats"]
    assert stats["envision/classify/classified"] == len(records) and "envision/classify/cached" not in stats
    rows = json.loads((tmp_path / "results" / "zenodo_all_results.json").read_text())
    assert {r["source_id"] for r in rows} == set(records)
    assert {r["label"] for r in rows} == {"EYE_IMAGING", "NEGATIVE"}  # the corpus holds both

    # a full re-run finds the same texts: nothing is classified again
    result = crawl_in_process(api, "zenodo", tmp_path, "-a", "full=1", **settings)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = last_summary(tmp_path, "zenodo")["stats"]
    assert stats.get("envision/classify/cached") == len(records) and "envision/classify/classified" not in stats

    # records whose title changed are classified again, and only those
    changed = api.modify("zenodo", 0.2)
    result = crawl_in_process(api, "zenodo", tmp_path, "-a", "full=1", **settings)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = last_summary(tmp_path, "zenodo")["stats"]
    assert stats["envision/classify/classified"] == changed
    assert stats["envision/classify/cached"] == len(records) - changed


def scrapy(command: list[str], data_dir, **settings) -> subprocess.CompletedProcess:
    return scrapy_in_process(command, crawl_env(None, data_dir, **settings))


@pytest.mark.slow
def test_classify_command_labels_what_is_missing_then_writes_results(tmp_path, classifier_models):
    models = {"CLASSIFIER_MODELS_DIR": str(classifier_models)}
    for i, (title, description) in enumerate([POSITIVE, NEGATIVE, POSITIVE]):
        atomic_write_json(record_path(tmp_path, "zenodo", str(i)), item(i, title, description).__dict__)
    atomic_write_json(record_path(tmp_path, "kaggle", "u/x"),
                      {**item(9, *NEGATIVE).__dict__, "source": "kaggle", "source_id": "u/x"})
    out = tmp_path / "elsewhere"
    result = scrapy(["classify", "--source", "zenodo", "--results-dir", str(out)], tmp_path, **models)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "classified 3, already labelled 0" in result.stdout
    # how the texts were read: the quick head and the encoder between them read each once
    settled, encoded = map(int, re.search(r"classify: 3 records classified \((\d+) decided by the quick head, "
                                          r"(\d+) read by the encoder\)", result.stderr).groups())
    assert settled + encoded == 3
    labels = {sid: r["classification"]["label"] for sid, r in saved_records(tmp_path, "zenodo").items()}
    assert labels == {"0": "EYE_IMAGING", "1": "NEGATIVE", "2": "EYE_IMAGING"}
    assert saved_records(tmp_path, "kaggle")["u/x"]["classification"] is None  # not asked for
    assert [r["source_id"] for r in json.loads((out / "zenodo_eye_imaging.json").read_text())] != []
    assert len(json.loads((out / "kaggle_all_results.json").read_text())) == 1  # results cover every source

    result = scrapy(["classify"], tmp_path, **models)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "classified 1, already labelled 3" in result.stdout  # the kaggle record only
    assert (tmp_path / "results" / "zenodo_all_results.json").exists()

    # same text, new files: classified again, and the label says why
    path = record_path(tmp_path, "zenodo", "1")
    record = json.loads(path.read_text())
    record["files"] = [{"name": f"raw/{k:03d}_OD.e2e"} for k in range(40)]
    atomic_write_json(path, record)
    result = scrapy(["classify"], tmp_path, **models)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "classified 1, already labelled 3" in result.stdout
    c = saved_records(tmp_path, "zenodo")["1"]["classification"]
    assert any(e["reason"] == "40 .e2e files (Heidelberg OCT)" for e in c["evidence"]) and "prob_text" in c
    row = next(r for r in json.loads((tmp_path / "results" / "zenodo_all_results.json").read_text())
               if r["source_id"] == "1")
    assert row["evidence"] == c["evidence"] and row["disagreement"] == c["disagreement"]
