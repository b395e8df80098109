"""The two classification heads of the default model, and how they are calibrated.

``model_head.pkl`` (loadable by ``EyeImagingClassifier``): a logistic regression on the
sentence embedding, binary, calibrated. Plain scikit-learn objects only, so the folder
works with envision-classifier alone, outside this project.

``envision_head.joblib`` (used by :class:`envision_spiders.classifier.Classifier`): the
better model. Its features are word and character TF-IDF of the text, the last-layers
embedding (:mod:`.encoder`) and two flags: whether the text uses any word of
:data:`EYE_VOCABULARY`, and whether its first ``lead_chars`` characters (the title, as a
rule: the subject of a record is named there) name a body site or imaging target other
than the eye (:data:`NON_EYE_SITE`). A multinomial logistic regression learns the four
kinds of the training examples (eye imaging, eye software, other eye data, other negatives) and
P(EYE_IMAGING) is the probability of the first kind. In 5-fold cross-validation on the
built-in examples this head reaches a clearly higher EYE_IMAGING F1 than the embedding
head (docs/classifier.md). It cannot live in ``model_head.pkl``, which only ever sees
the embedding.

Why the flag: OCT, angiography or "segmentation of images" say nothing about the organ,
and without it coronary, skin or cochlear OCT came out as eye imaging with p > 0.95 (the
original tool's false positives). A record that names no part of the eye, no eye
disease and no ophthalmic method is rarely eye imaging; a linear model over thousands
of n-grams cannot express "at least one of these words", so the flag does.

Why the second flag: the eye flag fires on any record that mentions the eye in passing
("related work used retina scans"), so intravascular OCT of coronary arteries that
cites retinal work still scored near 1.0. What a record is about is named in its
title, so "the opening of the text names a non-eye site" is the counterweight; on the
whole text (weight 0 here) the flag would also fire on eye imaging that reports
systemic data (HbA1c, brain MRI, kidney function).

Calibration (both heads): a logistic regression on the logit of out-of-fold
probabilities (Platt scaling). The model itself is then refitted on every example.
The state is stored as a dict of scikit-learn objects and numbers, and this module
applies it, so a saved head does not pickle any class of this project.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from .data import KINDS, POSITIVE_KIND

HEAD_FORMAT = 1
SEED = 42
CALIBRATION_FOLDS = 5

# Words for the eye, its parts, its diseases and ophthalmic methods. Left out on purpose:
# "lens" and "iris" (cameras, flowers, biometrics), "vision"/"visual" (psychophysics,
# computer vision), "AMD" (processors), bare "kerat-" (keratinocytes), "papillary"
# (thyroid), "oct" itself.
EYE_VOCABULARY = re.compile(
    r"\b(eyes?|ocular|intraocular|periocular|retina[ls]?|retinopath\w*|fund(?:us|i)|cornea[ls]?|macula[r]?"
    r"|ophthalm\w*|optic (?:disc|nerve|cup)s?|choroid\w*|glaucoma\w*|vitreo\w*|vitreous|uvea[l]?|uveitis"
    r"|sclera[l]?|conjunctiv\w*|eyelids?|meibo\w*|keratoconus|keratitis|keratoplasty|cataracts?|myopi\w*"
    r"|fovea[l]?|drusen|papilledema|peripapillary|anterior segment|slit[- ]lamp)\b",
    re.IGNORECASE,
)

# Words for a body site, organ or imaging target that is not the eye, and for the non-eye
# specialties and modalities named after them. Left out on purpose: "vascular"/"vessel"
# (retinal vessels), "melanoma" (uveal melanoma), "nerve" (optic nerve), "thyroid"
# (thyroid eye disease), "tumour", "bone", "MRI"/"CT"/"ultrasound" (orbit and eye imaging
# use them too).
NON_EYE_SITE = re.compile(
    r"\b(coronar\w*|cardiac|cardio\w*|heart|myocard\w*|arter(?:y|ies|ial)|aort\w*|carotid|femoral|intravascular"
    r"|stents?|dental|dentin\w*|teeth|tooth|enamel|caries|periodont\w*|mandib\w*|skin|derm\w*|cutaneous"
    r"|o?esophag\w*|gastr\w*|colon\w*|colorectal|bowel|endoscop\w*|cochlea[rs]?|inner ear|middle ear|tympanic"
    r"|otitis|lungs?|pulmonary|chest|thora\w*|breasts?|mammogra\w*|brain|cerebral|liver|hepat\w*|kidneys?"
    r"|renal|nailfold|histolog\w*|histopatholog\w*|bladder|prostat\w*|knee|spinal|spine|laryn\w*)\b",
    re.IGNORECASE,
)

# Chosen by 5-fold cross-validation on the built-in examples (docs/classifier.md).
TEXT_HEAD_PARAMS = {
    "word_ngrams": (1, 2),
    "char_ngrams": (3, 5),
    "char_weight": 1.5,  # the character TF-IDF block is scaled by this
    "embedding_weight": 2.0,  # the last-layers embedding (unit norm) by this
    "eye_vocabulary_weight": 3.0,  # and the EYE_VOCABULARY flag (0 or 1) by this
    "non_eye_site_weight": 0.0,  # the NON_EYE_SITE flag (0 or 1), 0: not used
    "lead_chars": 100,  # how much of the text the lead flags read
    "lead_eye_weight": 0.0,  # EYE_VOCABULARY in the lead, 0: not used
    "lead_site_weight": 3.0,  # NON_EYE_SITE in the lead, 0: not used
    "C": 10.0,
}
EMBEDDING_HEAD_C = 10.0

_EPS = 1e-6


def recipe_sha256() -> str:
    """sha256 of the text head's parameters and word lists: an input of the default model."""
    spec = {"params": TEXT_HEAD_PARAMS, "eye_vocabulary": EYE_VOCABULARY.pattern,
            "non_eye_site": NON_EYE_SITE.pattern, "format": HEAD_FORMAT}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def fit_platt(probabilities: np.ndarray, labels: np.ndarray) -> LogisticRegression:
    """A sigmoid of the logit, fitted to out-of-fold probabilities."""
    return LogisticRegression(C=1e4, max_iter=1000).fit(_logit(probabilities).reshape(-1, 1), labels)


def apply_platt(calibrator: LogisticRegression | None, probabilities: np.ndarray) -> np.ndarray:
    if calibrator is None:
        return probabilities
    return calibrator.predict_proba(_logit(probabilities).reshape(-1, 1))[:, 1]


def _folds(labels: np.ndarray, k: int = CALIBRATION_FOLDS):
    k = min(k, int(np.bincount(labels).min()))
    if k < 2:
        return []
    return list(StratifiedKFold(k, shuffle=True, random_state=SEED).split(np.zeros(len(labels)), labels))


# ---------------------------------------------------------------- text head


def uses_eye_vocabulary(text: str) -> bool:
    return EYE_VOCABULARY.search(text) is not None


def names_non_eye_site(text: str) -> bool:
    return NON_EYE_SITE.search(text) is not None


def flag_features(texts: Sequence[str], params: dict[str, Any]) -> np.ndarray:
    """The weighted flag columns (one per flag with a weight other than 0)."""
    lead = int(params.get("lead_chars", 100))
    columns = [(params["eye_vocabulary_weight"], uses_eye_vocabulary, False),
               (params.get("non_eye_site_weight", 0.0), names_non_eye_site, False),
               (params.get("lead_eye_weight", 0.0), uses_eye_vocabulary, True),
               (params.get("lead_site_weight", 0.0), names_non_eye_site, True)]
    columns = [c for c in columns if c[0]]
    return np.array([[weight * float(test(t[:lead] if in_lead else t)) for weight, test, in_lead in columns]
                     for t in texts]).reshape(len(texts), len(columns))


def _text_features(state: dict[str, Any], texts: Sequence[str], layers: np.ndarray):
    p = state["params"]
    flag = flag_features(texts, p)
    return hstack([
        state["word"].transform(texts),
        state["char"].transform(texts) * p["char_weight"],
        csr_matrix(np.asarray(layers, dtype=np.float64) * p["embedding_weight"]),
        csr_matrix(flag),
    ]).tocsr()


def _fit_text_model(texts: Sequence[str], layers: np.ndarray, kinds: Sequence[str], params: dict) -> dict[str, Any]:
    state: dict[str, Any] = {
        "params": dict(params),
        "word": TfidfVectorizer(ngram_range=tuple(params["word_ngrams"]), sublinear_tf=True),
        "char": TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(params["char_ngrams"]), sublinear_tf=True),
    }
    state["word"].fit(texts)
    state["char"].fit(texts)
    targets = np.array([KINDS.index(k) for k in kinds])
    state["model"] = LogisticRegression(C=params["C"], max_iter=5000).fit(_text_features(state, texts, layers), targets)
    state["positive_column"] = int(np.flatnonzero(state["model"].classes_ == KINDS.index(POSITIVE_KIND))[0])
    return state


def _text_raw(state: dict[str, Any], texts: Sequence[str], layers: np.ndarray) -> np.ndarray:
    return state["model"].predict_proba(_text_features(state, texts, layers))[:, state["positive_column"]]


def fit_text_head(texts: Sequence[str], layers: np.ndarray, kinds: Sequence[str],
                  params: dict | None = None, calibrate: bool = True) -> dict[str, Any]:
    params = {**TEXT_HEAD_PARAMS, **(params or {})}
    texts = list(texts)
    kinds = list(kinds)
    labels = np.array([int(k == POSITIVE_KIND) for k in kinds])
    calibrator = None
    if calibrate:
        oof = np.zeros(len(texts))
        folds = _folds(labels)
        for train, test in folds:
            fold = _fit_text_model([texts[i] for i in train], layers[train], [kinds[i] for i in train], params)
            oof[test] = _text_raw(fold, [texts[i] for i in test], layers[test])
        calibrator = fit_platt(oof, labels) if folds else None
    state = _fit_text_model(texts, layers, kinds, params)
    state.update(format=HEAD_FORMAT, kind="text", calibrator=calibrator)
    return state


def predict_text_head(state: dict[str, Any], texts: Sequence[str], layers: np.ndarray,
                      calibrated: bool = True) -> np.ndarray:
    """P(EYE_IMAGING) for each text."""
    raw = _text_raw(state, list(texts), layers)
    return apply_platt(state.get("calibrator"), raw) if calibrated else raw


# ---------------------------------------------------------------- embedding head


def fit_embedding_head(embeddings: np.ndarray, labels: Sequence[int], calibrate: bool = True):
    """Binary classifier for ``model_head.pkl``: predict() gives 0/1 (NEGATIVE /
    EYE_IMAGING) and predict_proba() two columns in that order, as EyeImagingClassifier
    expects. Calibrated with sklearn's CalibratedClassifierCV (sigmoid on out-of-fold
    predictions, then one model refitted on everything: ``ensemble=False``)."""
    from sklearn.calibration import CalibratedClassifierCV

    labels = np.asarray(labels)
    base = LogisticRegression(C=EMBEDDING_HEAD_C, max_iter=5000)
    if not calibrate:
        return base.fit(embeddings, labels)
    cv = StratifiedKFold(min(CALIBRATION_FOLDS, int(np.bincount(labels).min())), shuffle=True, random_state=SEED)
    return CalibratedClassifierCV(base, method="sigmoid", cv=cv, ensemble=False).fit(embeddings, labels)
