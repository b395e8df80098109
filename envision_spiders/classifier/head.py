"""The two classification heads of the default model, and how they are calibrated.

``model_head.pkl`` (loadable by ``EyeImagingClassifier``): a logistic regression on the
sentence embedding, binary, calibrated. Plain scikit-learn objects only, so the folder
works with envision-classifier alone, outside this project.

``envision_head.joblib`` (used by :class:`envision_spiders.classifier.Classifier`): the
better model. Its features are word and character TF-IDF of the text, the last-layers
embedding (:mod:`.encoder`) and one flag: whether the text uses any word of
:data:`EYE_VOCABULARY`. A multinomial logistic regression learns the four kinds of the
training examples (eye imaging, eye software, other eye data, other negatives) and
P(EYE_IMAGING) is the probability of the first kind. In 5-fold cross-validation on the
built-in examples this head reaches a clearly higher EYE_IMAGING F1 than the embedding
head (docs/classifier.md). It cannot live in ``model_head.pkl``, which only ever sees
the embedding.

Why the flag: OCT, angiography or "segmentation of images" say nothing about the organ,
and without it coronary, skin or cochlear OCT came out as eye imaging with p > 0.95 (the
original tool's false positives). A record that names no part of the eye, no eye
disease and no ophthalmic method is rarely eye imaging; a linear model over thousands
of n-grams cannot express "at least one of these words", so the flag does.

Calibration (both heads): a logistic regression on the logit of out-of-fold
probabilities (Platt scaling). The model itself is then refitted on every example.
The state is stored as a dict of scikit-learn objects and numbers, and this module
applies it, so a saved head does not pickle any class of this project.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import re

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

# Chosen by 5-fold cross-validation on the built-in examples (docs/classifier.md).
TEXT_HEAD_PARAMS = {
    "word_ngrams": (1, 2),
    "char_ngrams": (3, 5),
    "char_weight": 1.5,  # the character TF-IDF block is scaled by this
    "embedding_weight": 2.0,  # the last-layers embedding (unit norm) by this
    "eye_vocabulary_weight": 3.0,  # and the EYE_VOCABULARY flag (0 or 1) by this
    "C": 10.0,
}
EMBEDDING_HEAD_C = 10.0

_EPS = 1e-6


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


def _text_features(state: dict[str, Any], texts: Sequence[str], layers: np.ndarray):
    p = state["params"]
    flag = np.array([[float(uses_eye_vocabulary(t))] for t in texts]) * p["eye_vocabulary_weight"]
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
