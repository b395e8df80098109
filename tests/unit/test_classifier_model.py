"""The default classifier: built offline from packaged parts, loadable by envision-classifier,
rebuilt only when its inputs change; the other CLASSIFIER_MODEL values and their fallback."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import shutil
import warnings

import numpy as np
import pytest

from envision_spiders.classifier import ModelError, load_classifier, record_text, text_hash
from envision_spiders.classifier import model as model_mod
from envision_spiders.classifier.data import builtin_examples, import_envision_classifier, training_examples
from envision_spiders.classifier.text import MAX_TEXT_LENGTH, compose_text, training_text

TEXTS = [
    "Retinal OCT B-scans of 400 eyes with diabetic macular edema, Heidelberg Spectralis",
    "Colour fundus photographs graded for diabetic retinopathy",
    "Eye-tracking recordings of participants reading sentences",
    "SuperDARN radar data in netCDF format",
]


def test_the_hub_is_unreachable_in_tests():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_default_model_is_built_from_packaged_parts_and_records_its_inputs(classifier_models):
    folder = model_mod.default_model_dir(classifier_models)
    manifest = json.loads((folder / model_mod.MANIFEST).read_text())
    assert manifest["inputs"] == model_mod.input_versions()
    assert manifest["model_id"] == f"{model_mod.DEFAULT_NAME}@{model_mod.fingerprint(manifest['inputs'])}"
    assert manifest["backbone"]["sha256"] == model_mod.BACKBONE_SHA256["0.1.0"]
    examples = training_examples()  # the built-in examples and the project's extras
    trained = dict(manifest["training_examples"])
    assert trained.pop("curator_decisions", 0) == 0, "the suite's model is built without curators' decisions"
    assert trained == {"count": len(examples), "positives": sum(examples.labels), "sha256": examples.digest()}
    builtin = builtin_examples()
    assert len(builtin) == 891 and sum(builtin.labels) == 262
    assert len(examples) > len(builtin) and examples.texts[:891] == builtin.texts
    assert model_mod.is_current(folder)


def test_envision_classifier_loads_the_folder_and_agrees_with_the_project_encoder(classifier_models):
    """The folder is an EyeImagingClassifier folder; its model_head.pkl on our Encoder's
    sentence embedding gives exactly what the package computes."""
    import joblib

    from envision_spiders.classifier.encoder import Encoder

    folder = model_mod.default_model_dir(classifier_models)
    ec = import_envision_classifier()
    with contextlib.redirect_stdout(io.StringIO()):
        clf = ec.EyeImagingClassifier(model_path=str(folder), device="cpu")
    package = clf.classify_batch(TEXTS, batch_size=8, verbose=False)
    sentence, layers = Encoder(folder).encode(TEXTS)
    ours = joblib.load(folder / model_mod.EMBEDDING_HEAD).predict_proba(sentence)[:, 1]
    assert np.allclose([r["probabilities"]["EYE_IMAGING"] for r in package], ours, atol=1e-5)
    assert [r["label"] for r in package] == ["EYE_IMAGING" if p >= 0.5 else "NEGATIVE" for p in ours]
    # the sentence embedding is SentenceTransformer's own (mean pooling, normalised)
    assert np.allclose(clf._encoder.encode(TEXTS), sentence, atol=1e-5)
    assert layers.shape == (len(TEXTS), 4 * sentence.shape[1])
    assert np.allclose(np.linalg.norm(layers, axis=1), 1.0, atol=1e-5)


def test_default_classifier_labels_and_probabilities(default_classifier):
    results = default_classifier.classify(TEXTS)
    assert [r["label"] for r in results[:2]] == ["EYE_IMAGING", "EYE_IMAGING"]
    assert [r["label"] for r in results[2:]] == ["NEGATIVE", "NEGATIVE"]
    for r, text in zip(results, TEXTS):
        assert r["prob_eye_imaging"] + r["prob_negative"] == pytest.approx(1.0, abs=1e-6)
        assert r["confidence"] == max(r["prob_eye_imaging"], r["prob_negative"])
        assert r["model_id"] == default_classifier.model_id and r["text_sha256"] == text_hash(text)
    # the order of a batch does not change a record's probability
    again = default_classifier.predict(list(reversed(TEXTS)))
    assert np.allclose(again[::-1], [r["prob_eye_imaging"] for r in results], atol=1e-6)


def test_up_to_date_model_is_not_rebuilt_and_changed_inputs_rebuild_it(classifier_models, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(model_mod, "_build", lambda folder, curated=None: calls.append(folder))
    model_mod.build_default_model(classifier_models)
    assert calls == []  # cache hit
    changed = {**model_mod.input_versions(), "envision-classifier": "9.9.9"}
    monkeypatch.setattr(model_mod, "input_versions", lambda curated=None: changed)
    model_mod.build_default_model(classifier_models)
    assert calls == [model_mod.default_model_dir(classifier_models)]  # miss: rebuilt
    model_mod.build_default_model(tmp_path)  # a folder with no model at all
    assert calls[-1] == model_mod.default_model_dir(tmp_path)


def test_a_folder_that_does_not_load_is_rebuilt(classifier_models, tmp_path, monkeypatch):
    folder = model_mod.default_model_dir(tmp_path)
    shutil.copytree(model_mod.default_model_dir(classifier_models), folder)
    (folder / model_mod.TEXT_HEAD).write_bytes(b"truncated")
    rebuilt = []

    def fake_build(f, curated=None):
        rebuilt.append(f)
        shutil.rmtree(f)
        shutil.copytree(model_mod.default_model_dir(classifier_models), f)

    monkeypatch.setattr(model_mod, "_build", fake_build)
    classifier = load_classifier("", tmp_path)
    assert rebuilt == [folder] and classifier.kind == "envision"


def test_a_local_folder_is_used_through_envision_classifier(classifier_models, tmp_path, default_classifier):
    folder = tmp_path / "my-model"
    shutil.copytree(model_mod.default_model_dir(classifier_models), folder,
                    ignore=shutil.ignore_patterns(model_mod.TEXT_HEAD, model_mod.MANIFEST))
    classifier = load_classifier(str(folder), tmp_path / "unused")
    assert classifier.kind == "package" and classifier.model_id.startswith("local:my-model@")
    assert not (tmp_path / "unused").exists()  # the default model was not built
    labels = [r["label"] for r in classifier.classify(TEXTS)]
    assert labels[0] == "EYE_IMAGING" and labels[3] == "NEGATIVE"
    # another head is another model: its records are classified again
    (folder / "model_head.pkl").write_bytes((folder / "model_head.pkl").read_bytes() + b"\n")
    assert model_mod._folder_id(folder) != classifier.model_id


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ModelError, match="no such folder"):
        load_classifier(str(tmp_path / "nope"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="model_head.pkl"):
        load_classifier(str(tmp_path / "empty"), tmp_path)


def test_unreachable_hub_falls_back_to_the_default_with_one_log_line(classifier_models, caplog):
    caplog.set_level(logging.WARNING, logger="envision_spiders.classifier.model")
    classifier = load_classifier("hf:fairdataihub/envision-eye-imaging-classifier@main", classifier_models)
    assert classifier.kind == "envision" and classifier.model_id.startswith("envision-default@")
    warnings_ = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == model_mod.__name__]
    assert len(warnings_) == 1
    assert "model hub" in warnings_[0].getMessage() and "default offline model" in warnings_[0].getMessage()


def test_importing_envision_classifier_does_not_silence_warnings():
    before = list(warnings.filters)
    import_envision_classifier()
    assert warnings.filters == before


def test_record_text_composes_like_envision_classifier():
    ec = import_envision_classifier()
    assert MAX_TEXT_LENGTH == ec.MAX_TEXT_LENGTH
    record = {"title": "Fundus images", "description": "<p>Colour  fundus\nphotographs &amp; masks</p>",
              "keywords": ["retina", "  DR "]}
    assert record_text(record) == "Fundus images Colour fundus photographs & masks retina DR"
    package = ec.EyeImagingClassifier.extract_text(record)
    assert " ".join(package.split()) == "Fundus images Colour fundus photographs & masks retina DR"
    assert len(compose_text("t" * 400, "d" * 400, ["k"])) == MAX_TEXT_LENGTH
    assert record_text({"title": None, "description": None, "keywords": None}) == ""
    # training examples escaped twice lose their markup too
    assert training_text("A &lt;p&gt;fundus&lt;/p&gt; dataset") == "A fundus dataset"


def test_reusable_only_for_the_same_model_and_text(default_classifier):
    record = {"title": "Retinal OCT", "description": "B-scans", "keywords": []}
    (c,) = default_classifier.classify_records([record])
    assert default_classifier.reusable(c, record_text(record))
    assert not default_classifier.reusable(c, record_text({**record, "description": "B-scans and masks"}))
    assert not default_classifier.reusable({**c, "model_id": "other@1"}, record_text(record))
    assert not default_classifier.reusable(None, record_text(record))


@pytest.mark.parametrize("text, expected", [
    ("Retinal OCT of 300 eyes", True), ("Colour fundus photographs", True), ("slit-lamp images", True),
    ("optic discs and cups", True), ("vitreoretinal surgery videos", True), ("keratoconus maps", True),
    ("Intravascular OCT of coronary arteries", False), ("keratinocyte cultures", False),
    ("AMD Ryzen benchmark", False), ("papillary thyroid carcinoma", False), ("camera lens calibration", False),
])
def test_eye_vocabulary_flag(text, expected):
    from envision_spiders.classifier.head import uses_eye_vocabulary

    assert uses_eye_vocabulary(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("Intravascular OCT pullbacks of coronary arteries", True), ("Swept-source OCT of enamel caries", True),
    ("Nailfold capillaroscopy in systemic sclerosis", True), ("Paediatric chest X-ray images", True),
    ("Brain MRI of 300 patients", True), ("Dermoscopy of skin lesions", True), ("Oesophageal OCT", True),
    ("Cochlear OCT in mice", True), ("Digital mammograms", True), ("Kidney biopsy histology", True),
    ("Retinal OCT of 300 eyes", False), ("Colour fundus photographs with vessel masks", False),
    ("Optic nerve head and retinal vessels", False), ("Uveal melanoma fundus images", False),
    ("Corneal topography of keratoconus", False), ("Macular OCT angiography of the choroid", False),
])
def test_non_eye_site_flag(text, expected):
    from envision_spiders.classifier.head import names_non_eye_site

    assert names_non_eye_site(text) is expected


def test_flag_columns_follow_their_weights():
    from envision_spiders.classifier.head import TEXT_HEAD_PARAMS, flag_features

    texts = ["Retinal OCT with a note on coronary arteries", "Coronary OCT pullbacks, retina mentioned"]
    only_eye = {**TEXT_HEAD_PARAMS, "non_eye_site_weight": 0.0, "lead_eye_weight": 0.0, "lead_site_weight": 0.0}
    assert flag_features(texts, only_eye).tolist() == [[3.0], [3.0]]
    every = {**only_eye, "non_eye_site_weight": 2.0, "lead_eye_weight": 1.0, "lead_site_weight": 4.0, "lead_chars": 12}
    # columns: eye vocabulary, non-eye site, eye vocabulary in the lead, non-eye site in the lead
    assert flag_features(texts, every).tolist() == [[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 0.0, 4.0]]


def test_a_changed_text_head_recipe_changes_the_fingerprint(monkeypatch):
    from envision_spiders.classifier import head

    before = model_mod.input_versions()
    monkeypatch.setitem(head.TEXT_HEAD_PARAMS, "non_eye_site_weight", head.TEXT_HEAD_PARAMS["non_eye_site_weight"] + 1)
    after = model_mod.input_versions()
    assert model_mod.fingerprint(after) != model_mod.fingerprint(before)
    monkeypatch.undo()
    monkeypatch.setattr(head, "NON_EYE_SITE", re.compile(head.NON_EYE_SITE.pattern + "|spleen"))
    assert model_mod.fingerprint(model_mod.input_versions()) != model_mod.fingerprint(before)
