"""The project's own training records (envision_spiders/classifier/hard_examples.jsonl):
packaged, well formed, part of the training data, kept out of every scored fold, and
disjoint from the held-out evaluation files."""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from envision_spiders.classifier import data
from envision_spiders.classifier import model as model_mod
from envision_spiders.classifier.evaluate import cv_splits
from envision_spiders.classifier.text import record_text

ROOT = Path(__file__).resolve().parents[2]  # the repository
FIXTURES = ROOT / "tests" / "fixtures" / "classifier"
# held out: never training data (probes.jsonl, the development set, is checked too)
HELD_OUT = ("heldout_evidence.jsonl", "heldout_hard.jsonl", "heldout_site.jsonl", "probes_heldout.jsonl", "probes.jsonl",
            "heldout_v5.jsonl", "heldout_v6.jsonl", "generic_titles.jsonl", "heldout_v7.jsonl", "heldout_v8.jsonl",
            "heldout_v9.jsonl", "heldout_v10.jsonl", "heldout_v11.jsonl", "heldout_v12.jsonl",
            "heldout_v13.jsonl")


def normalised(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def shingles(text: str, k: int) -> set[tuple[str, ...]]:
    words = normalised(text).split()
    return {tuple(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def extras_records() -> list[dict]:
    return [json.loads(line) for line in data.extras_bytes().decode("utf-8").splitlines() if line.strip()]


def test_the_packaged_file_loads_and_covers_every_kind():
    from importlib import resources

    assert resources.files("envision_spiders.classifier").joinpath(data.EXTRAS_FILE).is_file()
    extras = data.extra_examples()
    counts = Counter(extras.kinds)
    assert 100 <= len(extras) <= 300
    assert set(counts) == set(data.KINDS) and min(counts.values()) >= 10, counts
    assert all(label == data.KIND_LABELS[kind] for label, kind in zip(extras.labels, extras.kinds))
    assert len(set(map(normalised, extras.texts))) == len(extras)  # no duplicates


def test_the_file_is_package_data_of_the_wheel():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["envision_spiders"]
    assert any(fnmatch.fnmatch(f"classifier/{data.EXTRAS_FILE}", p) for p in patterns)


def test_the_extras_are_training_data_after_the_built_in_examples():
    builtin, extras, training = data.builtin_examples(), data.extra_examples(), data.training_examples()
    assert training.texts == builtin.texts + extras.texts
    assert training.labels == builtin.labels + extras.labels and training.kinds == builtin.kinds + extras.kinds
    assert training.digest() != builtin.digest()


@pytest.mark.parametrize("name", HELD_OUT)
def test_no_training_record_overlaps_a_held_out_record(name):
    """Neither the text model's extras nor the records the file evidence is fitted on
    (file_examples.jsonl) equal or nearly equal a held-out record."""
    held = [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    assert held
    held_texts = {normalised(record_text(r)) for r in held}
    held_titles = {normalised(r.get("title") or "") for r in held}
    held_descriptions = {normalised(r.get("description") or "") for r in held} - {""}
    held_shingles = [(shingles(record_text(h), 1), shingles(record_text(h), 2)) for h in held]
    for r in extras_records() + list(data.file_examples().records):
        # messages name the extra only: a failure must not print held-out text
        assert normalised(record_text(r)) not in held_texts, r["title"]
        assert normalised(r["title"]) not in held_titles, r["title"]
        assert normalised(r.get("description") or "") not in held_descriptions, r["title"]
        words, bigrams = shingles(record_text(r), 1), shingles(record_text(r), 2)
        closest_words = max(jaccard(words, w) for w, _ in held_shingles)
        closest_bigrams = max(jaccard(bigrams, b) for _, b in held_shingles)
        assert closest_words < 0.5 and closest_bigrams < 0.3, f"{r['title']}: too close to a record of {name}"


def test_the_extras_are_an_input_of_the_default_model(monkeypatch):
    before = model_mod.input_versions()
    assert before["training_extras_sha256"] == data.extras_sha256()
    monkeypatch.setattr(data, "extras_bytes", lambda: b'{"kind": "negative", "label": "NEGATIVE", "title": "x"}\n')
    after = model_mod.input_versions()
    assert after["training_extras_sha256"] != before["training_extras_sha256"]
    assert model_mod.fingerprint(after) != model_mod.fingerprint(before)


def test_a_malformed_extras_file_stops_the_build():
    good = {"kind": "eye_imaging", "label": "EYE_IMAGING", "title": "Fundus photographs", "keywords": ["retina"]}
    assert data.parse_extras(json.dumps(good).encode()).texts == ("Fundus photographs retina",)
    for bad in ({**good, "label": "NEGATIVE"}, {**good, "kind": "eye"}, {**good, "title": "", "keywords": []}):
        with pytest.raises(ValueError):
            data.parse_extras(json.dumps(bad).encode())


def test_extras_join_every_training_fold_and_are_never_scored():
    from sklearn.model_selection import StratifiedKFold

    y = np.array([0, 1] * 10)
    splits = cv_splits(20, 3, StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(20), y))
    assert len(splits) == 5
    tested = np.concatenate([test for _, test in splits])
    assert sorted(tested) == list(range(20))  # each scored example once, no extra among them
    for train, test in splits:
        assert {20, 21, 22} <= set(train) and not set(train) & set(test)
        assert len(train) == 16 + 3
