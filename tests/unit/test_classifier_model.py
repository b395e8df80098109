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


def test_the_text_head_reads_the_quantized_encoder_whose_batches_run_side_by_side(classifier_models, default_classifier,
                                                                                  monkeypatch):
    from envision_spiders.classifier import encoder as encoder_mod

    assert model_mod.input_versions()["text_encoder"] == encoder_mod.quantization()
    assert default_classifier.encoder.quantized == (encoder_mod.quantization() == encoder_mod.INT8)
    folder = model_mod.default_model_dir(classifier_models)
    texts = [f"{t} ({i})" for i, t in enumerate(TEXTS * 6)]
    quantized = encoder_mod.Encoder(folder, batch_size=4, quantized=True)
    side_by_side = quantized.encode(texts)
    monkeypatch.setattr(encoder_mod, "WORKERS", 1)
    one_by_one = quantized.encode(texts)
    assert np.array_equal(side_by_side[0], one_by_one[0]) and np.array_equal(side_by_side[1], one_by_one[1])
    if quantized.quantized:  # near the fp32 embedding, not equal to it
        cosine = (encoder_mod.Encoder(folder).encode(texts)[1] * side_by_side[1]).sum(axis=1)
        assert 0.9 < cosine.min() and cosine.max() < 1 - 1e-6


def test_a_title_in_another_language_is_read_in_english(default_classifier):
    german, spanish, satellite = default_classifier.classify_records([
        {"title": "Netzhaut-OCT vor und nach Makulaforamen-Operation"},
        {"title": "Imágenes de fondo de ojo de pacientes diabéticos"},
        {"title": "Imágenes de satélite de la cuenca del Amazonas"}])
    assert german["label"] == spanish["label"] == "EYE_IMAGING" and satellite["label"] == "NEGATIVE"
    assert any(e["reason"].startswith("read as: ") and "fondo de ojo = fundus of the eye" in e["reason"]
               for e in spanish["evidence"]), spanish["evidence"]


def test_a_record_gets_the_same_probability_alone_and_among_others(default_classifier):
    """The int8 encoder's activation scale is one per forward pass, so the classifier
    encodes each text alone: what a record is classified with (other records, longer
    texts, padding) does not move its probability (with passes of 16 texts it moved by up
    to 0.09)."""
    records = [{"title": t, "description": d} for t, d in [
        ("SD-OCT B-scans with intraretinal fluid annotations", ""),
        ("Images", "Photographs from the clinic."),
        ("Choroidal thickness maps from swept-source OCT in high myopia",
         "Automated segmentation of 1,200 macular volumes; maps exported per eye. " * 4),
        ("Corneal ulcers", "Slit-lamp photographs with fluorescein staining"),
        ("Supplementary data", "Data for the manuscript."),
        ("Reading with central field loss", "Eye movements of patients with macular degeneration while reading."),
    ]] + [{"title": t} for t in TEXTS]
    before = default_classifier.reading["encoded"]
    together = default_classifier.classify_records(records)
    read = default_classifier.reading["encoded"] - before
    assert read >= 4, "most of these texts are read by the encoder, not settled by the quick head"
    alone = [default_classifier.classify_records([r])[0] for r in records]
    assert [(r["prob_eye_imaging"], r["prob_text"]) for r in alone] == \
        [(r["prob_eye_imaging"], r["prob_text"]) for r in together]


def test_passes_side_by_side_share_the_cores_out_and_give_the_threads_back(classifier_models, monkeypatch):
    import torch

    from envision_spiders.classifier import encoder as encoder_mod

    encoder = encoder_mod.Encoder(model_mod.default_model_dir(classifier_models), batch_size=1, quantized=True)
    seen = []
    real = encoder._forward
    monkeypatch.setattr(encoder, "_forward", lambda batch: seen.append(torch.get_num_threads()) or real(batch))
    threads = torch.get_num_threads()
    encoder.encode(TEXTS)
    assert seen == [max(1, threads // encoder_mod.WORKERS)] * len(TEXTS)
    assert torch.get_num_threads() == threads


def test_a_torch_without_quantization_builds_an_fp32_text_encoder(monkeypatch):
    from envision_spiders.classifier import encoder as encoder_mod

    monkeypatch.setattr(encoder_mod, "_quantize_dynamic", lambda: (None, None))  # a torch that has it
    before = model_mod.input_versions()
    assert before["text_encoder"] == encoder_mod.INT8
    monkeypatch.setattr(encoder_mod, "_quantize_dynamic", lambda: None)
    assert encoder_mod.quantization() == "fp32"
    sentinel = object()
    assert encoder_mod.quantize(sentinel) is sentinel
    after = model_mod.input_versions()
    assert after["text_encoder"] == "fp32" and model_mod.fingerprint(after) != model_mod.fingerprint(before)


def test_the_heads_fit_with_one_blas_thread(monkeypatch):
    """scipy's L-BFGS-B spends most of a fit in BLAS calls when BLAS has several threads
    (head._one_blas_thread): both logistic regressions of the build fit on one; outside a
    fit BLAS keeps its threads."""
    from threadpoolctl import threadpool_info

    from envision_spiders.classifier import head
    from envision_spiders.classifier.data import KINDS, POSITIVE_KIND

    def blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen = []
    real_fit = head.LogisticRegression.fit

    def fit(self, X, y, *args, **kwargs):
        seen.append(blas_threads())
        return real_fit(self, X, y, *args, **kwargs)

    monkeypatch.setattr(head.LogisticRegression, "fit", fit)
    before = blas_threads()
    rng = np.random.default_rng(0)
    texts = [f"retinal fundus photographs {i}" if i % 2 else f"soil samples {i}" for i in range(40)]
    kinds = [POSITIVE_KIND if i % 2 else next(k for k in KINDS if k != POSITIVE_KIND) for i in range(40)]
    head.fit_text_head(texts, rng.normal(size=(40, 8)), kinds, calibrate=False)
    head.fit_embedding_head(rng.normal(size=(40, 8)), [i % 2 for i in range(40)], calibrate=False)
    # the text head, its quick head (read_texts) and the embedding head
    assert len(seen) == 3 and all(s == {1} for s in seen), seen
    assert blas_threads() == before


def _small_text_head(**params):
    from envision_spiders.classifier import head
    from envision_spiders.classifier.data import KINDS, POSITIVE_KIND

    rng = np.random.default_rng(0)
    others = [k for k in KINDS if k != POSITIVE_KIND]
    texts = [f"retinal fundus photographs set {i}" if i % 2 else f"soil moisture samples site {i}" for i in range(60)]
    texts += [f"images of cohort {i}" for i in range(20)]  # the same words either way: unsure
    # every kind, as in the training data (the negatives' kind by position)
    kinds = [POSITIVE_KIND if i % 2 else others[(i // 2) % len(others)] for i in range(80)]
    layers = rng.normal(size=(80, 8))
    layers[:, 0] += np.array([1.0 if k == POSITIVE_KIND else -1.0 for k in kinds])
    return head.fit_text_head(texts, layers, kinds, params=params), texts, layers


def test_the_quick_head_settles_sure_texts_and_the_encoder_reads_only_the_rest():
    from envision_spiders.classifier import head

    state, texts, layers = _small_text_head()
    quick = state["quick"]
    assert not head.reads_embedding(quick) and quick["word"] is state["word"]  # one vectorizer, shared
    asked = []

    def encode(index):
        asked.extend(index.tolist())
        return layers[index]

    reading = head.read_texts(state, texts, encode, contributions=True)
    settled = np.flatnonzero(reading.quick)
    unsure = np.flatnonzero(~reading.quick)
    assert settled.size and unsure.size
    assert sorted(asked) == unsure.tolist(), "the encoder reads exactly the texts the quick head left"
    p_quick = head.predict_text_kinds(quick, texts, None)
    assert np.allclose(reading.kinds[settled], p_quick[settled])
    assert ((p_quick[settled, 0] < 0.01) | (p_quick[settled, 0] > 0.99)).all()
    assert np.allclose(reading.kinds[unsure], head.predict_text_kinds(state, [texts[i] for i in unsure], layers[unsure]))
    assert all(c["words"] for c in reading.contributions)
    # an array of layers gives the same reading; bounds nothing passes leave it all to the full head
    assert np.array_equal(head.read_texts(state, texts, layers).kinds, reading.kinds)
    never = {**state, "params": {**state["params"], "quick_below": 0.0, "quick_above": 1.0}}
    assert np.allclose(head.read_texts(never, texts, layers).kinds, head.predict_text_kinds(state, texts, layers))
    # ``decide``: the record's decision, not the text's, says whether it is sure
    unsure_anyway = head.read_texts(state, texts, layers, decide=lambda kinds: np.full(len(kinds), 0.5))
    assert not unsure_anyway.quick.any()


def test_a_head_without_the_embedding_has_no_quick_head_and_reads_no_layers():
    from envision_spiders.classifier import head

    state, texts, _ = _small_text_head(embedding_weight=0.0)
    assert "quick" not in state and state["layers_mean"] is None
    reading = head.read_texts(state, texts, lambda index: pytest.fail("no embedding to compute"))
    assert not reading.quick.any() and reading.kinds.shape == (len(texts), 4)


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

    texts = ["Retinal OCT with a note on coronary arteries", "Coronary OCT pullbacks, retina mentioned, MATLAB code"]
    only_eye = {**TEXT_HEAD_PARAMS, "non_eye_site_weight": 0.0, "lead_eye_weight": 0.0, "lead_site_weight": 0.0,
                "site_first_weight": 0.0, "software_weight": 0.0}
    assert flag_features(texts, only_eye).tolist() == [[3.0], [3.0]]
    every = {**only_eye, "non_eye_site_weight": 2.0, "lead_eye_weight": 1.0, "lead_site_weight": 4.0, "lead_chars": 12,
             "site_first_weight": 5.0, "software_weight": 6.0}
    # columns: eye vocabulary, non-eye site, eye vocabulary in the lead, non-eye site in the lead, a site before
    # any sign of the eye in the lead, software
    assert flag_features(texts, every).tolist() == [[3.0, 2.0, 1.0, 0.0, 0.0, 0.0], [3.0, 2.0, 0.0, 4.0, 5.0, 6.0]]
    # what the model uses: the eye in the text, the eye in the lead (both short texts are all lead), a site first,
    # software
    assert flag_features(texts, TEXT_HEAD_PARAMS).tolist() == [[3.0, 3.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0]]


@pytest.mark.parametrize("text, expected", [
    ("MATLAB toolbox for OCT layer segmentation", True), ("Pretrained PyTorch weights", True),
    ("Source code on GitHub", True), ("ImageJ plug-in and macros", True), ("Jupyter notebooks", True),
    ("Swept-source OCT volumes of the choroid", False), ("Images from a national screening program", False),
    ("A tool-free grading protocol; data release 2", False), ("Fundus photographs with grades", False),
])
def test_software_flag(text, expected):
    from envision_spiders.classifier.head import names_software

    assert names_software(text) is expected


def test_a_changed_text_head_recipe_changes_the_fingerprint(monkeypatch):
    from envision_spiders.classifier import head

    before = model_mod.input_versions()
    monkeypatch.setitem(head.TEXT_HEAD_PARAMS, "non_eye_site_weight", head.TEXT_HEAD_PARAMS["non_eye_site_weight"] + 1)
    after = model_mod.input_versions()
    assert model_mod.fingerprint(after) != model_mod.fingerprint(before)
    monkeypatch.undo()
    monkeypatch.setattr(head, "NON_EYE_SITE", re.compile(head.NON_EYE_SITE.pattern + "|spleen"))
    assert model_mod.fingerprint(model_mod.input_versions()) != model_mod.fingerprint(before)


# ------------------------------------------------------------------ evidence: every label says why
def archive_entry(name, counts, sample=(), *, listed=True, complete=True, reason=None):
    return {"name": name, "format": "zip", "listed": listed, "complete": complete, "members_sample": list(sample),
            "extension_counts": counts if listed else {}, "reason": reason,
            "member_count": sum(counts.values()) if listed and complete else None}


def check_classification(c):
    assert c["label"] in ("EYE_IMAGING", "NEGATIVE") and 0 <= c["prob_text"] <= 1
    assert isinstance(c["disagreement"], bool) and 1 <= len(c["evidence"]) <= 6
    for e in c["evidence"]:
        assert set(e) == {"supports", "reason"} and e["supports"] in ("EYE_IMAGING", "NEGATIVE")
        assert isinstance(e["reason"], str) and e["reason"] and len(e["reason"]) <= 200
        assert not re.search(r"[\x00-\x1f\u202a-\u202e]", e["reason"])


def test_a_label_carries_its_reasons_and_the_text_probability(default_classifier):
    (c,) = default_classifier.classify_records([{"title": "AMD OCT"}])
    check_classification(c)
    assert c["prob_text"] == c["prob_eye_imaging"], "no files: the text decides alone"
    assert any("age-related macular degeneration" in e["reason"] for e in c["evidence"])
    assert set(c) >= {"files_sha256", "text_sha256", "model_id", "classified_at"}


def test_the_eye_named_in_the_title_is_a_reason_of_its_own(default_classifier):
    late = ("Images from a multi-centre screening programme collected between 2015 and 2019 across eleven "
            "sites and several camera models, graded for diabetic retinopathy")
    titled, untitled = default_classifier.classify_records([{"title": "Fundus photographs of glaucoma patients"},
                                                            {"title": late}])
    reasons = [e["reason"] for e in titled["evidence"]]
    assert any(r.startswith("the title names the eye (fundus") for r in reasons), reasons
    reasons = [e["reason"] for e in untitled["evidence"]]
    assert not any(r.startswith("the title names the eye") for r in reasons), reasons
    assert any(r.startswith("the text names the eye") for r in reasons), reasons


def test_software_named_in_the_text_is_a_reason_of_its_own(default_classifier):
    code, data = default_classifier.classify_records([
        {"title": "Python package with pretrained weights for fundus vessel segmentation"},
        {"title": "Swept-source OCT volumes of the choroid in pathological myopia"}])
    reasons = {e["reason"]: e["supports"] for e in code["evidence"]}
    assert any(r.startswith("the text names software (python, package") and s == "NEGATIVE"
               for r, s in reasons.items()), reasons
    assert code["label"] == "NEGATIVE" and data["label"] == "EYE_IMAGING"
    assert not any(e["reason"].startswith("the text names software") for e in data["evidence"])


def test_a_word_of_two_organs_beside_the_other_one_is_a_reason_against(default_classifier):
    gastric, eye = default_classifier.classify_records([
        {"title": "Fundus varices in retroflexion", "description": "Endoscopy stills of the stomach",
         "files": [{"name": f"fundus_{i:03d}.jpg"} for i in range(40)]},
        {"title": "Fundus photographs", "description": "Colour photographs of the retina",
         "files": [{"name": f"fundus_{i:03d}.jpg"} for i in range(40)]}])
    reasons = {e["reason"]: e["supports"] for e in gastric["evidence"]}
    assert reasons.get("eye words that name another organ here, not counted: fundus") == "NEGATIVE", reasons
    assert not any(r.startswith("file names name the eye") for r in reasons), reasons
    assert gastric["label"] == "NEGATIVE" and eye["label"] == "EYE_IMAGING"
    assert any(e["reason"].startswith("file names name the eye (fundus)") for e in eye["evidence"])


def test_device_files_make_a_vague_record_eye_imaging(default_classifier, monkeypatch):
    """The files decide the label; the text's own probability beside them is the text
    model's reading of the text alone, unmoved by the files. Files that pull the other way
    send the text to the full head (the quick reading), so it is compared with the full
    head's reading of the same text without files, not with the quick head's."""
    vague = {"title": "Supplementary data", "description": "Data for the manuscript."}
    with_files = {**vague, "files": [{"name": "export.zip"}],
                  "archives": [archive_entry("export.zip", {".e2e": 412}, [f"{i:06d}.E2E" for i in range(50)])]}
    text_only, files = default_classifier.classify_records([vague, with_files])
    check_classification(files)
    assert text_only["label"] == "NEGATIVE" and files["label"] == "EYE_IMAGING"
    monkeypatch.setitem(default_classifier.head["params"], "quick_below", 0.0)  # the quick head settles nothing
    monkeypatch.setitem(default_classifier.head["params"], "quick_above", 1.0)
    (full,) = default_classifier.classify_records([vague])
    assert files["prob_text"] == full["prob_text"] == full["prob_eye_imaging"] < 0.5
    assert files["evidence"][0] == {"supports": "EYE_IMAGING", "reason": "412 .e2e files (Heidelberg OCT)"}
    assert files["disagreement"], "the text says negative, the files eye imaging"


def test_a_sure_text_keeps_its_probability_when_its_files_are_plain_images(default_classifier):
    """The floor that lets files rescue a vague text must not flatten a sure one: a fundus
    dataset listing a few JPEGs stays as sure as its text (one shared floor made it 0.78)."""
    text = {"title": "Colour fundus photographs of diabetic retinopathy graded by ophthalmologists",
            "description": "Retinal images from a screening programme with lesion annotations."}
    (alone, listed) = default_classifier.classify_records([text, {**text, "file_types": [".jpg", ".csv"]}])
    assert alone["prob_eye_imaging"] > 0.95
    assert listed["prob_eye_imaging"] >= alone["prob_eye_imaging"] - 0.02


def test_a_complete_listing_of_tables_counts_against_and_an_unknown_one_does_not(default_classifier):
    text = {"title": "Diabetic retinopathy screening: fundus photograph grades",
            "description": "Grades of fundus photographs from a screening programme with HbA1c."}
    tables = {**text, "files": [{"name": "grades.csv"}, {"name": "hba1c.csv"}, {"name": "README.txt"}]}
    unpeeked = {**text, "files": [{"name": "data.zip"}],
                "archives": [archive_entry("data.zip", {}, listed=False, reason="dryad serves files only to "
                                           "authenticated clients and no credentials are set")]}
    alone, complete, unknown = default_classifier.classify_records([text, tables, unpeeked])
    assert complete["prob_eye_imaging"] < alone["prob_eye_imaging"]
    assert any(e["reason"] == "complete listing: 2 tables, 1 document, no images" and e["supports"] == "NEGATIVE"
               for e in complete["evidence"])
    assert unknown["prob_eye_imaging"] == alone["prob_eye_imaging"] == unknown["prob_text"]


def test_the_encoder_reads_only_records_the_quick_head_is_not_sure_of(default_classifier, monkeypatch):
    """A plainly unrelated record is decided without the encoder, with its reasons, and
    gets the same probability in any batch; a vague text whose files speak for the eye
    is always read in full (the files could overrule the quick head)."""
    encoded = []
    real = default_classifier.encoder.encode
    monkeypatch.setattr(default_classifier.encoder, "encode", lambda texts: encoded.extend(texts) or real(texts))
    soil = {"title": "Soil moisture and nitrate leaching in maize plots, 2018-2020",
            "description": "Weekly lysimeter measurements from three tillage treatments.",
            "files": [{"name": "lysimeter.csv"}, {"name": "README.txt"}]}
    vague = {"title": "Supplementary data", "description": "Data for the manuscript.", "files": [{"name": "export.zip"}],
             "archives": [archive_entry("export.zip", {".e2e": 412}, [f"{i:06d}.E2E" for i in range(50)])]}
    (alone,) = default_classifier.classify_records([soil])
    assert encoded == []
    check_classification(alone)
    assert alone["label"] == "NEGATIVE"
    assert {"supports": "NEGATIVE", "reason": "the wording as a whole (its spelling; sure enough without the encoder)"
            } in alone["evidence"]
    in_batch, files = default_classifier.classify_records([soil, vague])
    assert in_batch["prob_eye_imaging"] == alone["prob_eye_imaging"]
    assert len(encoded) == 1 and "supplementary" in encoded[0].lower()
    assert files["label"] == "EYE_IMAGING"


def test_bad_input_gets_a_label_and_evidence(default_classifier):
    hostile = "\u202e<script>alert(1)</script>\x00" + "x" * 300 + ".jpg"
    records = [
        {},
        {"title": None, "description": None, "keywords": None, "files": None, "archives": None},
        {"title": "Images", "files": [{"name": f"img_{i:05d}.png"} for i in range(12_000)]},
        {"title": "Scans", "files": [{"name": "a.zip"}, {"name": 5}, None, {"name": hostile}],
         "archives": [archive_entry("a.zip", {".png": 40, ".e2e": "many"}, [hostile, None, 7], complete=False),
                      "junk", {"name": {"odd": 1}, "listed": True, "extension_counts": []}]},
        {"title": 12345, "keywords": "retina", "description": ["a", "list"]},
    ]
    results = default_classifier.classify_records(records)
    assert len(results) == len(records)
    for c in results:
        check_classification(c)
    assert results[0]["evidence"] == [{"supports": "NEGATIVE", "reason": "no text and no file listing to judge by"}]
    assert any("12,000 images" in e["reason"] for e in results[2]["evidence"])


def test_reusable_needs_the_same_file_evidence(default_classifier):
    record = {"title": "Retinal OCT", "description": "B-scans", "files": [{"name": "a.csv"}]}
    (c,) = default_classifier.classify_records([record])
    assert default_classifier.reusable(c, model_mod.record_input(record))
    changed = {**record, "files": [{"name": "a.csv"}, {"name": "scan.e2e"}]}
    assert not default_classifier.reusable(c, model_mod.record_input(changed))


def test_a_changed_file_evidence_input_changes_the_model_id(monkeypatch):
    from envision_spiders.classifier import data as data_mod, evidence

    before = model_mod.fingerprint(model_mod.input_versions())
    monkeypatch.setattr(data_mod, "file_examples_bytes", lambda: b'{"label": "NEGATIVE", "title": "x"}\n')
    assert model_mod.fingerprint(model_mod.input_versions()) != before
    monkeypatch.undo()
    monkeypatch.setattr(evidence, "PENALTY", 2.5)
    assert model_mod.fingerprint(model_mod.input_versions()) != before
