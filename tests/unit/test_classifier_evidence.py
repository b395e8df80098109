"""File evidence (envision_spiders.classifier.evidence): features from a record's files,
unknown listings that stay unknown, the combination with the text model and its fit.
Pure numpy and scipy: no model needed."""

from __future__ import annotations

import numpy as np
import pytest

from envision_spiders.classifier import data
from envision_spiders.classifier.evidence import (
    FEATURES,
    FILE_KINDS,
    NEUTRAL,
    combine,
    disagreement,
    feature_matrix,
    file_evidence,
    file_reasons,
    file_logit,
    file_targets,
    fit_files,
    fit_stretch,
    fit_weights,
)


def kinds(p_eye, rest=(0.2, 0.3, 0.5)):
    """Text kind probabilities: P(eye imaging), then the other three sharing the rest."""
    p_eye = np.atleast_1d(np.asarray(p_eye, dtype=float))
    return np.column_stack([p_eye] + [(1 - p_eye) * r for r in rest])


def archive(name, counts, sample=(), *, listed=True, complete=True, reason=None):
    return {"name": name, "format": "zip", "listed": listed, "complete": complete,
            "members_sample": list(sample), "extension_counts": counts if listed else {}, "reason": reason}


def value(ev, name):
    return ev.values[FEATURES.index(name)]


def test_device_formats_names_and_counts():
    record = {"files": [{"name": "export.zip"}],
              "archives": [archive("export.zip", {".e2e": 412}, [f"P{i:03d}_OD.E2E" for i in range(30)])]}
    ev = file_evidence(record)
    assert value(ev, "eye_device") == 1 and value(ev, "laterality") == 1
    assert "412 .e2e files (Heidelberg OCT)" in ev.lines["eye_device"]
    named = file_evidence({"files": [{"name": f"fundus_{i:04d}.jpg"} for i in range(100)]})
    assert value(named, "eye_names") == 1 and 0.6 < value(named, "images") <= 1
    assert "fundus" in named.lines["eye_names"]


def test_eye_words_that_name_another_organ_count_only_beside_a_text_that_does_not():
    stills = [{"name": f"endo/fundus_varices_{i:03d}.jpg"} for i in range(70)]
    gastric = file_evidence({"title": "Fundus varices in retroflexion", "description": "GOV2 varices of the stomach",
                             "files": stills})
    assert value(gastric, "eye_names") == 0 and "eye_names" not in gastric.lines
    assert value(gastric, "images") > 0  # the images still count, as images
    eye = file_evidence({"title": "Fundus photographs", "description": "Diabetic retinopathy grades", "files": stills})
    assert value(eye, "eye_names") == 1 and "(fundus)" in eye.lines["eye_names"]
    kidney = file_evidence({"title": "Confocal images of the macula densa in mouse kidney",
                            "files": [{"name": f"macula_{i}.tif"} for i in range(24)]})
    assert value(kidney, "eye_names") == 0
    # a word that names only the eye still counts, whatever the text names
    mixed = file_evidence({"title": "Gastric and retinal images", "description": "stomach",
                           "files": stills + [{"name": "retina_001.png"}]})
    assert value(mixed, "eye_names") == 1 and "(retina)" in mixed.lines["eye_names"]
    assert "fundus" not in mixed.lines["eye_names"].split(":")[0]


def test_only_a_complete_listing_says_no_images():
    tables = {"files": [{"name": "genotypes.csv"}, {"name": "phenotypes.csv"}, {"name": "README.txt"}]}
    ev = file_evidence(tables)
    assert ev.complete and value(ev, "no_images") == 1
    assert ev.lines["no_images"] == "complete listing: 2 tables, 1 document, no images"
    unknown_cases = [
        {"title": "no files at all"},
        {"files": [{"name": "data.zip"}, {"name": "a.csv"}],
         "archives": [archive("data.zip", {}, listed=False, reason="dryad serves files only to authenticated clients")]},
        {"files": [{"name": "data.zip"}], "archives": [archive("data.zip", {".csv": 3}, complete=False)]},
        {"files": [{"name": "a.csv"}], "extra": {"files_complete": False}},
        {"files": [{"name": "a.csv"}], "file_count": 40},
    ]
    for record in unknown_cases:
        ev = file_evidence(record)
        assert value(ev, "no_images") == 0 and value(ev, "code_only") == 0, record


def test_unknown_evidence_leaves_the_text_probability_unchanged():
    rng = np.random.default_rng(1)
    fitted = {"weights": rng.normal(0, 3, (len(FILE_KINDS), len(FEATURES))), "share": 0.3}
    fitted["weights"][0] = 0
    unknown = file_evidence({"title": "DataCite record without files"}).values
    assert not unknown.any()
    p = np.array([0.03, 0.5, 0.97])
    assert np.allclose(combine(kinds(p), np.tile(unknown, (3, 1)), fitted), p)


def test_weights_are_fitted_likelihood_ratios_per_kind():
    rng = np.random.default_rng(0)
    n = 900
    X = np.zeros((n, len(FEATURES)))
    device, tables, images = (FEATURES.index(f) for f in ("eye_device", "no_images", "images"))
    third = n // 3
    X[:third, device] = 1  # eye imaging in vendor formats, mostly
    X[third:2 * third, tables] = 1  # eye data without images, mostly
    X[2 * third:, images] = 1  # images: eye imaging or other imaging, as the text says
    targets = np.concatenate([np.where(rng.random(third) < 0.95, 0, 3), np.where(rng.random(third) < 0.05, 0, 2),
                              np.where(rng.random(n - 2 * third) < 0.5, 0, 3)])
    fitted = fit_weights(kinds(np.full(n, 0.5)), X, targets)
    W = fitted["weights"]
    assert not W[0].any(), "eye imaging is the reference kind"
    assert W[FILE_KINDS.index("negative_imaging"), device] < -1.5 and W[FILE_KINDS.index("other_eye_data"), tables] > 1.5
    for kind, names in NEUTRAL.items():  # generic image formats never separate eye from other imaging
        assert all(W[FILE_KINDS.index(kind), FEATURES.index(name)] == 0 for name in names)
    assert 0 <= fitted["share"] <= 1 and fitted["floor"].shape == (len(FILE_KINDS),) and (fitted["floor"] >= 0).all()
    p = combine(kinds(np.full(n, 0.5)), X, fitted)
    assert abs(p[:third].mean() - (targets[:third] == 0).mean()) < 0.05  # calibrated on its data
    from envision_spiders.classifier.evidence import kind_posterior

    # images alone never change the odds of eye imaging against other imaging
    with_images = kind_posterior(kinds([0.5]), X[-1:], fitted)[0]
    without = kind_posterior(kinds([0.5]), np.zeros((1, len(FEATURES))), fitted, floored=True)[0]  # same floors
    imaging = FILE_KINDS.index("negative_imaging")
    assert with_images[0] / with_images[imaging] == pytest.approx(without[0] / without[imaging])


def shrunk_evidence(n=600, seed=3):
    """Records whose images and table listings nearly decide the label while the text says
    0.5: the penalised likelihood ratios cannot reach the truth, so the combination is
    under-confident, as it is on the project's records with files."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, len(FEATURES)))
    device, tables = FEATURES.index("eye_device"), FEATURES.index("no_images")
    half = n // 2
    X[:half, device] = 1
    X[half:, tables] = 1
    targets = np.concatenate([np.where(rng.random(half) < 0.97, 0, 2), np.where(rng.random(n - half) < 0.03, 0, 2)])
    return kinds(np.full(n, 0.5)), X, targets


def test_the_stretch_undoes_likelihood_ratios_the_penalty_shrank():
    k, X, targets = shrunk_evidence()
    penalised = fit_weights(k, X, targets, penalty=200.0)
    a = fit_stretch(k, X, targets, penalty=200.0)
    assert a > 1.5
    fitted = fit_files(k, X, targets, penalty=200.0)
    assert fitted["stretch"] == pytest.approx(a)
    before, after = combine(k, X, penalised), combine(k, X, fitted)
    truth = (targets == 0).astype(float)
    half = len(truth) // 2
    for part in (slice(None, half), slice(half, None)):
        assert abs(after[part].mean() - truth[part].mean()) < abs(before[part].mean() - truth[part].mean())
    # the reason lines and the disagreement flag read the same stretched move
    assert file_logit(k[0], X[0], fitted) == pytest.approx(a * file_logit(k[0], X[0], penalised))
    assert fit_stretch(k, X, targets) < a  # the project's penalty shrinks less


def test_the_stretch_moves_only_what_the_files_moved():
    W = np.zeros((len(FILE_KINDS), len(FEATURES)))
    W[FILE_KINDS.index("other_eye_data"), FEATURES.index("no_images")] = 1.0
    fitted = {"weights": W, "share": 0.5, "stretch": 3.0}
    p = np.array([0.03, 0.5, 0.97])
    assert np.allclose(combine(kinds(p), np.zeros((3, len(FEATURES))), fitted), p)  # no evidence, no change
    images = file_evidence({"files": [{"name": "img_1.png"}]}).values  # weighs nothing: not stretched
    assert combine(kinds(0.6), images[None, :], fitted)[0] == pytest.approx(0.6)
    tables = file_evidence({"files": [{"name": "a.csv"}]}).values
    plain = combine(kinds(0.6), tables[None, :], {**fitted, "stretch": None})[0]
    stretched = combine(kinds(0.6), tables[None, :], fitted)[0]
    z = np.log(0.6 / 0.4)
    assert np.log(stretched / (1 - stretched)) - z == pytest.approx(3 * (np.log(plain / (1 - plain)) - z))


def test_no_stretch_without_enough_records_of_each_label():
    k, X, targets = shrunk_evidence(n=600)
    targets = np.where(np.arange(len(targets)) < 5, 0, 2)  # five eye records among 600
    assert fit_stretch(k, X, targets) is None
    assert fit_files(k, X, targets)["stretch"] is None


def test_disagreement_needs_a_likelihood_ratio_of_three():
    assert disagreement(0.9, -1.2) and not disagreement(0.9, -0.5) and not disagreement(0.9, 2.0)
    assert disagreement(0.2, 1.2) and not disagreement(0.2, -3.0)


def test_reasons_are_signed_by_their_share_of_the_log_odds():
    ev = file_evidence({"files": [{"name": "a.csv"}, {"name": "b.csv"}]})
    W = np.zeros((len(FILE_KINDS), len(FEATURES)))
    W[FILE_KINDS.index("other_eye_data"), FEATURES.index("no_images")] = 2.5
    fitted = {"weights": W, "share": 0.5}
    ((share, reason),) = file_reasons(ev, kinds(0.6)[0], fitted)
    assert share < -0.5 and reason["supports"] == "NEGATIVE" and "no images" in reason["reason"]
    p = combine(kinds(0.6), ev.values[None, :], fitted)[0]
    assert share == pytest.approx(np.log(p / (1 - p)) - np.log(0.6 / 0.4))


def test_the_only_file_line_carries_the_floor_it_brings():
    images = file_evidence({"files": [{"name": f"img_{i:05d}.png"} for i in range(12_000)]})
    W = np.zeros((len(FILE_KINDS), len(FEATURES)))  # images weigh nothing against any kind
    fitted = {"weights": W, "share": 0.5, "floor": np.array([0.2] + [0.0] * (len(FILE_KINDS) - 1))}
    p = combine(kinds(0.05), images.values[None, :], fitted)[0]
    assert p > 0.15  # the floor alone lifts a doubtful text once there are files to judge by
    ((share, reason),) = file_reasons(images, kinds(0.05)[0], fitted)
    assert reason["supports"] == "EYE_IMAGING" and "12,000 images" in reason["reason"]
    assert share == pytest.approx(np.log(p / (1 - p)) - np.log(0.05 / 0.95))
    # beside other evidence, a line keeps only its own weight (here none, so it is not shown),
    # and the floor's lift is a line of its own that says why the files may overrule the text
    both = file_evidence({"files": [{"name": "img_00001.png"}, {"name": "chest_labels.csv"}]})
    ((share, reason),) = file_reasons(both, kinds(0.05)[0], fitted)
    p = combine(kinds(0.05), both.values[None, :], fitted)[0]
    assert reason == {"supports": "EYE_IMAGING",
                      "reason": "the text does not say what the record holds: its files can overrule it"}
    assert share == pytest.approx(np.log(p / (1 - p)) - np.log(0.05 / 0.95))
    ((_, reason),) = file_reasons(both, kinds(0.05)[0], {**fitted, "floor_decay": 0.5}, 2.0)
    assert "(2 subject words)" in reason["reason"]
    assert file_reasons(both, kinds(0.05)[0], {**fitted, "floor_decay": 1.0}, 8.0) == []  # no floor left to show


def test_the_floor_falls_with_the_words_that_name_a_subject():
    from envision_spiders.classifier.head import specificity
    from envision_spiders.classifier.language import model_text

    images = file_evidence({"files": [{"name": f"img_{i:05d}.png"} for i in range(500)]}).values[None, :]
    W = np.zeros((len(FILE_KINDS), len(FEATURES)))
    fitted = {"weights": W, "share": 0.5, "floor": np.array([0.2] + [0.0] * (len(FILE_KINDS) - 1)),
              "stretch": 2.0, "floor_decay": 1.0}
    lifted, kept = combine(kinds([0.01, 0.01]), np.vstack([images, images]), fitted, np.array([0.0, 6.0]))
    assert lifted > 0.15 and kept < 0.015
    texts = [model_text(t) for t in ("Supplementary data S1-S3", "Data for: manuscript under review, images",
                                     "Chest X-ray images of 300 patients", "Galaxy images for morphology classification")]
    assert specificity(texts).tolist() == [0.0, 0.0, 2.0, 2.0]  # chest, ray; galaxy, morphology


@pytest.mark.parametrize("specific_eye_rate, decays", [(0.0, True), (0.5, False)])
def test_the_decay_of_the_floor_is_fitted(specific_eye_rate, decays):
    """Vague texts with images are eye imaging half the time; texts that name a subject
    are eye imaging at ``specific_eye_rate``: the floor falls with the subject words only
    when they say something about the label."""
    rng = np.random.default_rng(7)
    n = 400
    X = np.zeros((n, len(FEATURES)))
    X[:, FEATURES.index("images")] = 1
    vague = np.arange(n) < n // 2
    words = np.where(vague, 0.0, 5.0)
    rate = np.where(vague, 0.5, specific_eye_rate)
    targets = np.where(rng.random(n) < rate, 0, 3)
    fitted = fit_weights(kinds(np.full(n, 0.01)), X, targets, specificity=words)
    p = combine(kinds(np.full(n, 0.01)), X, {**fitted, "stretch": None}, words)
    assert abs(p[vague].mean() - 0.5) < 0.1
    if decays:
        assert fitted["floor_decay"] > 0.5 and p[~vague].max() < 0.05
    else:
        assert fitted["floor_decay"] < 0.1 and abs(p[~vague].mean() - 0.5) < 0.1


def test_file_targets_split_the_negatives_by_imaging():
    records = [{"kind": "eye_imaging"}, {"kind": "other_eye_data"}, {"kind": "negative", "imaging": True},
               {"kind": "negative", "imaging": False}, {"files": [{"name": "x.png"}]}, {"files": [{"name": "x.csv"}]}]
    assert file_targets(records, [1, 0, 0, 0, 0, 0]) == [0, 2, 3, 4, 3, 4]


def test_hostile_and_huge_listings():
    names = [f"img_{i:06d}.png" for i in range(20_000)]
    ev = file_evidence({"files": [{"name": n} for n in names]})
    assert value(ev, "images") == 1 and "20,000 images" in ev.lines["images"]
    hostile = {"files": [{"name": "\u202egpj.exe"}, {"name": "<script>alert(1)</script>fundus_1.jpg"}, {"name": 7},
                         None, {"name": "../../etc/passwd"}],
               "archives": [None, {"name": ["odd"], "listed": "yes", "extension_counts": {"x": "y", 3: 4}},
                            archive("z.zip", {".jpg": -5, ".png": True})]}
    ev = file_evidence(hostile)
    for line in ev.lines.values():
        assert "\u202e" not in line and "\x00" not in line


def test_the_training_records_with_files_are_packaged_and_disjoint_from_text_training():
    fx = data.file_examples()
    assert len(fx) >= 200 and 0.2 < np.mean(fx.labels) < 0.6
    X = feature_matrix(fx.records)
    for name in ("eye_device", "eye_names", "oct_names", "no_images", "images", "non_eye_names"):
        assert X[:, FEATURES.index(name)].sum() >= 5, name  # every main feature has examples
    texts = set(data.training_examples().texts)
    from envision_spiders.classifier.text import record_text

    assert not any(record_text(r) in texts for r in fx.records)  # the text model never sees them


def test_a_malformed_file_examples_file_stops_the_build():
    with pytest.raises(ValueError):
        data.parse_labelled_records(b'{"label": "maybe", "title": "x"}\n', "f.jsonl")
    with pytest.raises(ValueError):
        data.parse_labelled_records(b'{"label": "NEGATIVE", "title": ""}\n', "f.jsonl")
