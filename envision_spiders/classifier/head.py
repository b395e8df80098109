"""The two classification heads of the default model, and how they are calibrated.

``model_head.pkl`` (loadable by ``EyeImagingClassifier``): a logistic regression on the
sentence embedding, binary, calibrated. Plain scikit-learn objects only, so the folder
works with envision-classifier alone, outside this project.

``envision_head.joblib`` (used by :class:`envision_spiders.classifier.Classifier`): the
better model. It reads each text through the field's lexicon (:func:`prepare_texts`,
:mod:`.language`: abbreviations and device names spelt out, negated eye words taken
out). Its features are word and character TF-IDF of that text, the last-layers
embedding (:mod:`.encoder`) and four flags: whether the text uses any word of
:data:`EYE_VOCABULARY`, whether its first ``lead_chars`` characters (the title, as a
rule: the subject of a record is named there) do, whether they name a body site or
imaging target other than the eye before any sign of the eye (:data:`NON_EYE_SITE`,
:func:`site_before_eye`), and whether the text names software (:data:`SOFTWARE`).
A multinomial logistic regression learns the four
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
systemic data (HbA1c, brain MRI, kidney function). Since recipe 4 it fires only when the
site comes before any sign of the eye ("Diabetic foot ulcer photographs from a diabetic
retinopathy clinic", not "Retinal photographs and kidney function"): in cross-validation
that beat the flag on any site in the opening (docs/classifier.md).

Why the software flag: eye software (code, trained weights, plugins) is the negative
kind whose words are nearest eye imaging, and the training titles of eye software are
short, like catalogue titles of eye datasets; without the flag the head read short eye
dataset titles that share their words ("... optic nerve head segmentation") as software.
The flag lets the head ask for a software word before it says software.

The quick reading (:func:`read_texts`): the encoder is most of the classifier's time,
and most records a crawl meets are plainly about something else (soil samples, surveys,
code) or plainly eye imaging. So the build also fits the quick head: the same model
without the embedding, calibrated on its own. It reads every text first; where it puts
P(EYE_IMAGING) below ``quick_below`` (0.01) or above ``quick_above`` (0.99), and the
record's decision, its files combined as always, is as sure, its answer stands and the
encoder never reads that text: a text the files may overrule is always read in full. In
cross-validation on the built-in examples (texts alone) it settled 57 % of the texts and
changed no label (docs/classifier.md). The file evidence is fitted on the full head's
probabilities.

Every label says why: :func:`text_contributions` splits the text's share of the
log-odds among its words, flags and wording, and :func:`text_reasons` turns the largest
into plain lines.

Calibration (both heads): a logistic regression on the logit of out-of-fold
probabilities (Platt scaling). The model itself is then refitted on every example.
The state is stored as a dict of scikit-learn objects and numbers, and this module
applies it, so a saved head does not pickle any class of this project.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from .data import KINDS, POSITIVE_KIND
from .language import EYE_WORDS, first_eye_signal, lexicon_sha256, model_text, subject_words

HEAD_FORMAT = 1
SEED = 42
CALIBRATION_FOLDS = 5

# Words for the eye: the field's lexicon (language.py), compounds included.
EYE_VOCABULARY = EYE_WORDS

# Words for a body site, organ or imaging target that is not the eye, and for the non-eye
# specialties and modalities named after them, compounds included (intracoronary,
# echocardiography). Left out on purpose: "vascular"/"vessel" (retinal vessels),
# "melanoma" (uveal melanoma), "nerve" (optic nerve), "thyroid" (thyroid eye disease),
# "nasal" (the nasal retina), "muscle" (extraocular muscles), "tumour", "bone",
# "MRI"/"CT"/"ultrasound" (orbit and eye imaging use them too).
NON_EYE_SITE = re.compile(
    r"\b((?:intra|epi|peri|trans)?coronar\w*|\w*cardi(?:ac|o\w*)|heart|myocard\w*|arter(?:y|ies|ial)|aort\w*|carotid"
    r"|femoral|intravascular|stents?|dental|dentin\w*|teeth|tooth|enamel|caries|periodont\w*|mandib\w*|oral|tongue"
    r"|skin|derm\w*|cutaneous|o?esophag\w*|gastr\w*|colon\w*|colorectal|bowel|endoscop\w*|pancrea\w*|spleen"
    r"|cochlea[rs]?|inner ear|middle ear|tympanic|otitis|sinus\w*|laryn\w*|vocal|lungs?|pulmonary|chest|thora\w*"
    r"|breasts?|mammogra\w*|brain|cerebral|liver|hepat\w*|kidneys?|renal|bladder|prostat\w*|uter(?:us|ine)|ovar\w*"
    r"|cervix|placenta\w*|fetal|fetus|foetal|abdom\w*|pelvi\w*|nailfold|nails?|hair|scalp|histolog\w*"
    r"|histopatholog\w*|lymph\w*|knees?|hips?|shoulders?|ankles?|wrists?|hands?|foot|feet|toes?|spinal|spine"
    r"|vertebra\w*|wounds?)\b",
    re.IGNORECASE,
)

# Words for software, code and trained models: what the eye software kind is written with. Words other
# fields use too are left out: "source" (swept-source OCT), "program" (a screening programme), "tool",
# "application", "release" (see the module's docstring for why the flag).
SOFTWARE = re.compile(
    r"\b(code|codes|software|packages?|librar(?:y|ies)|toolbox|toolkit|plug-?ins?|macros?|scripts?|notebooks?"
    r"|implementation|repository|github|gitlab|pip|api|weights|checkpoints?|pytorch|tensorflow|keras|onnx|matlab"
    r"|python|pre-?trained|trained models?|gui|cli|command[- ]line|installer|executable)\b",
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
    "lead_eye_weight": 3.0,  # EYE_VOCABULARY in the lead (since the model after recipe 5)
    "lead_site_weight": 0.0,  # NON_EYE_SITE in the lead, 0: not used (recipe 3: 3.0)
    "site_first_weight": 3.0,  # NON_EYE_SITE in the lead before any sign of the eye (site_before_eye)
    "software_weight": 3.0,  # SOFTWARE anywhere in the text (since the model after recipe 5)
    "C": 10.0,
    # the quick reading (read_texts): the same head without the embedding decides alone the
    # texts whose P(EYE_IMAGING) it puts below / above these; the encoder reads the rest
    "quick_below": 0.01,
    "quick_above": 0.99,
}
EMBEDDING_HEAD_C = 10.0

_EPS = 1e-6
SPECIFICITY_CAP = 10  # words that name a subject, counted up to this many


def recipe_sha256() -> str:
    """sha256 of the text head's parameters and word lists: an input of the default model."""
    spec = {"params": TEXT_HEAD_PARAMS, "eye_vocabulary": EYE_VOCABULARY.pattern,
            "non_eye_site": NON_EYE_SITE.pattern, "software": SOFTWARE.pattern, "format": HEAD_FORMAT, "lexicon": lexicon_sha256(),
            "specificity_cap": SPECIFICITY_CAP}
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


def prepare_texts(texts: Sequence[str]) -> list[str]:
    """What the text head (and the encoder before it) reads: each text rewritten by the
    field's lexicon (abbreviations and devices expanded, negated eye words taken out;
    :mod:`.language`). Training, cross-validation and classification all call this."""
    return [model_text(t) for t in texts]


def uses_eye_vocabulary(text: str) -> bool:
    return EYE_VOCABULARY.search(text) is not None


def names_non_eye_site(text: str) -> bool:
    return NON_EYE_SITE.search(text) is not None


def names_software(text: str) -> bool:
    return SOFTWARE.search(text) is not None


def specificity(texts: Sequence[str]) -> np.ndarray:
    """For each (prepared) text, how much it says about what it holds: the number of its
    distinct words that are neither stop words nor words any dataset uses (language.subject_words),
    capped at SPECIFICITY_CAP; the file evidence's floor of eye imaging falls with it (:mod:`.evidence`)."""
    return np.array([min(len(subject_words(t)), SPECIFICITY_CAP) for t in texts], dtype=float)


def site_before_eye(text: str, lead: int = 100) -> bool:
    """The opening of a model text names another body site before any sign of the eye
    (or with none): the record is about that site ("Intracoronary OCT ...", "Diabetic foot
    ulcer photographs from a diabetic retinopathy clinic"), not about the eye ("Retinal
    photographs and kidney function", "RetCam images of ROP and neonatal lung disease")."""
    opening = text.partition(" | ")[0][:lead]
    site = NON_EYE_SITE.search(opening)
    if site is None:
        return False
    eye = first_eye_signal(text, lead)
    return eye is None or site.start() < eye


def flag_features(texts: Sequence[str], params: dict[str, Any]) -> np.ndarray:
    """The weighted flag columns (one per flag with a weight other than 0)."""
    lead = int(params.get("lead_chars", 100))
    columns = [(params["eye_vocabulary_weight"], uses_eye_vocabulary, False),
               (params.get("non_eye_site_weight", 0.0), names_non_eye_site, False),
               (params.get("lead_eye_weight", 0.0), uses_eye_vocabulary, True),
               (params.get("lead_site_weight", 0.0), names_non_eye_site, True),
               (params.get("site_first_weight", 0.0), lambda t: site_before_eye(t, lead), False),
               (params.get("software_weight", 0.0), names_software, False)]
    columns = [c for c in columns if c[0]]
    return np.array([[weight * float(test(t[:lead] if in_lead else t)) for weight, test, in_lead in columns]
                     for t in texts]).reshape(len(texts), len(columns))


def reads_embedding(state_or_params: dict[str, Any]) -> bool:
    """Whether a head (or its parameters) reads the embedding: the quick head does not."""
    params = state_or_params.get("params", state_or_params)
    return bool(params["embedding_weight"])


def text_features(state: dict[str, Any], texts: Sequence[str], layers: np.ndarray | None, quick: Any = None):
    """The head's feature matrix of (prepared) texts: computed once per batch and given to
    :func:`predict_text_kinds` and :func:`text_contributions` (the TF-IDF transforms are
    a tenth of the classifier's time). A head that does not read the embedding
    (``embedding_weight`` 0: the quick head) has no embedding columns and takes ``layers``
    None. ``quick``: the quick head's features of the same texts, whose TF-IDF and flag
    columns (the same vectorizers, the same flags) are reused rather than computed again."""
    p = state["params"]
    if quick is not None:
        n_tfidf = len(state["word"].vocabulary_) + len(state["char"].vocabulary_)
        tfidf, flag = quick[:, :n_tfidf], quick[:, n_tfidf:]
    else:
        tfidf = hstack([state["word"].transform(texts), state["char"].transform(texts) * p["char_weight"]])
        flag = csr_matrix(flag_features(texts, p))
    blocks = [tfidf, csr_matrix(np.asarray(layers, dtype=np.float64) * p["embedding_weight"])] if reads_embedding(p) else [tfidf]
    return hstack([*blocks, flag]).tocsr()


def _one_blas_thread():
    """A context in which BLAS runs on one thread, for the logistic regressions' fits.
    scipy's L-BFGS-B (rewritten in C in scipy 1.15) makes BLAS calls on vectors the size
    of the coefficients at each step; with two BLAS threads those steps took most of a
    fit (scipy issue 22438). On two cores one thread fits the text head about 1.6 times
    as fast, to the same coefficients (66 iterations either way)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def _fit_text_model(texts: Sequence[str], layers: np.ndarray | None, kinds: Sequence[str], params: dict,
                    vectorizers: dict[str, Any] | None = None) -> dict[str, Any]:
    """``vectorizers``: the word and character TF-IDF already fitted on these texts (the
    quick head shares the full head's: the same texts give the same vocabularies)."""
    state: dict[str, Any] = {"params": dict(params)}
    if vectorizers is not None:
        state.update(word=vectorizers["word"], char=vectorizers["char"])
    else:
        state.update(word=TfidfVectorizer(ngram_range=tuple(params["word_ngrams"]), sublinear_tf=True),
                     char=TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(params["char_ngrams"]), sublinear_tf=True))
        state["word"].fit(texts)
        state["char"].fit(texts)
    targets = np.array([KINDS.index(k) for k in kinds])
    features = text_features(state, texts, layers)
    with _one_blas_thread():
        state["model"] = LogisticRegression(C=params["C"], max_iter=5000).fit(features, targets)
    state["positive_column"] = int(np.flatnonzero(state["model"].classes_ == KINDS.index(POSITIVE_KIND))[0])
    return state


def _text_raw(state: dict[str, Any], texts: Sequence[str], layers: np.ndarray | None) -> np.ndarray:
    return state["model"].predict_proba(text_features(state, texts, layers))[:, state["positive_column"]]


def _rows(layers: np.ndarray | None, index: np.ndarray) -> np.ndarray | None:
    return None if layers is None else layers[index]


def fit_text_head(texts: Sequence[str], layers: np.ndarray | None, kinds: Sequence[str],
                  params: dict | None = None, calibrate: bool = True, quick: bool = True,
                  vectorizers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The calibrated text head; with ``quick`` (and a head that reads the embedding) also
    the quick head (``state["quick"]``: the same features without the embedding, calibrated
    on its own), which :func:`read_texts` asks first."""
    params = {**TEXT_HEAD_PARAMS, **(params or {})}
    texts = list(texts)
    kinds = list(kinds)
    labels = np.array([int(k == POSITIVE_KIND) for k in kinds])
    calibrator = None
    if calibrate:
        oof = np.zeros(len(texts))
        folds = _folds(labels)
        for train, test in folds:
            fold = _fit_text_model([texts[i] for i in train], _rows(layers, train), [kinds[i] for i in train], params)
            oof[test] = _text_raw(fold, [texts[i] for i in test], _rows(layers, test))
        calibrator = fit_platt(oof, labels) if folds else None
    state = _fit_text_model(texts, layers, kinds, params, vectorizers)
    # the average training embedding: the baseline that "the wording" is measured from
    state.update(format=HEAD_FORMAT, kind="text", calibrator=calibrator,
                 layers_mean=np.asarray(layers, dtype=np.float64).mean(axis=0) if reads_embedding(params) else None)
    if quick and reads_embedding(params):
        state["quick"] = fit_text_head(texts, None, kinds, params={**params, "embedding_weight": 0.0},
                                       calibrate=calibrate, quick=False, vectorizers=state)
    return state


def predict_text_kinds(state: dict[str, Any], texts: Sequence[str], layers: np.ndarray,
                       features: Any = None) -> np.ndarray:
    """P(kind) for each text, columns in :data:`.data.KINDS` order: P(EYE_IMAGING)
    calibrated as :func:`predict_text_head` gives it, the other kinds' probabilities
    rescaled to sum with it to one (the file evidence weighs each kind, :mod:`.evidence`).
    ``features``: :func:`text_features` of the same texts, if already computed."""
    texts = list(texts)
    raw = state["model"].predict_proba(text_features(state, texts, layers) if features is None else features)
    out = np.zeros((len(texts), len(KINDS)))
    for column, kind_index in enumerate(state["model"].classes_):
        out[:, int(kind_index)] = raw[:, column]
    positive = KINDS.index(POSITIVE_KIND)
    p_eye = apply_platt(state.get("calibrator"), out[:, positive])
    rest = np.clip(1.0 - out[:, positive], _EPS, None)
    out *= ((1.0 - p_eye) / rest)[:, None]
    out[:, positive] = p_eye
    return out


def predict_text_head(state: dict[str, Any], texts: Sequence[str], layers: np.ndarray,
                      calibrated: bool = True) -> np.ndarray:
    """P(EYE_IMAGING) for each text: as :func:`read_texts` gives it; ``calibrated=False``:
    the full head's own, before calibration (the quick head not asked)."""
    if not calibrated:
        return _text_raw(state, list(texts), layers)
    return read_texts(state, texts, layers).kinds[:, KINDS.index(POSITIVE_KIND)]


@dataclass
class Reading:
    """What the text head made of a batch of texts (:func:`read_texts`)."""

    kinds: np.ndarray  # P(kind) per text, columns in KINDS order
    quick: np.ndarray  # True where the quick head decided alone (the encoder did not read it)
    contributions: list[dict[str, Any]] | None = None  # text_contributions, per text


def read_texts(state: dict[str, Any], texts: Sequence[str],
               layers: np.ndarray | Callable[[np.ndarray], np.ndarray], contributions: bool = False,
               decide: Callable[[np.ndarray], np.ndarray] | None = None) -> Reading:
    """P(kind) of each (prepared) text, read quickly where that is enough.

    The quick head (``state["quick"]``: word and character TF-IDF and the flags, no
    embedding) reads every text first. Where it puts P(EYE_IMAGING) below
    ``quick_below`` or above ``quick_above`` (and the record's decision with it is as
    sure, given ``decide``), its answer stands; the full head, with the
    encoder's embedding, reads the rest. The encoder is most of the classifier's time,
    and most texts a crawl meets are plainly about something else (docs/classifier.md,
    "The quick reading"). ``layers``: the texts' last-layers embeddings, or a function
    that computes them for the given indices only (the classifier's encoder), so the
    texts the quick head settles are never encoded. ``contributions``: also
    :func:`text_contributions`, each from the head that decided. ``decide``: what a
    record's P(EYE_IMAGING) would be from the quick head's P(kind) (the classifier's: the
    text combined with the record's files, :func:`.evidence.combine`), so that the quick
    head settles only records whose decision, files included, is as sure as their text:
    a text its files may overrule is read in full, and so is every text the quick head
    is unsure of, even where the files alone make the decision sure (the text's own
    probability is shown and compared with the files: "text and files disagree")."""
    texts = list(texts)
    n = len(texts)
    kinds = np.zeros((n, len(KINDS)))
    shares: list[Any] = [None] * n
    quick = state.get("quick")
    settled = np.zeros(n, dtype=bool)
    quick_features = None
    if quick is not None and n:
        quick_features = text_features(quick, texts, None)
        quick_kinds = predict_text_kinds(quick, texts, None, quick_features)
        below, above = state["params"]["quick_below"], state["params"]["quick_above"]
        text = quick_kinds[:, KINDS.index(POSITIVE_KIND)]
        # the record's decision as sure as its text, on the same side: a text its files
        # pull the other way (or to the middle) is read in full
        decision = text if decide is None else np.asarray(decide(quick_kinds))
        settled = ((text < below) & (decision < below)) | ((text > above) & (decision > above))
        kinds[settled] = quick_kinds[settled]
        done = np.flatnonzero(settled)
        if contributions and done.size:
            for i, c in zip(done, text_contributions(quick, [texts[i] for i in done], None, quick_features[done])):
                shares[i] = c
    rest = np.flatnonzero(~settled)
    if rest.size:
        subset = [texts[i] for i in rest]
        if not reads_embedding(state):
            rows = None
        else:
            rows = layers(rest) if callable(layers) else np.asarray(layers)[rest]
        X = text_features(state, subset, rows, None if quick_features is None else quick_features[rest])
        kinds[rest] = predict_text_kinds(state, subset, rows, X)
        if contributions:
            for i, c in zip(rest, text_contributions(state, subset, rows, X)):
                shares[i] = c
    return Reading(kinds, settled, shares if contributions else None)


# ---------------------------------------------------------------- embedding head


def fit_embedding_head(embeddings: np.ndarray, labels: Sequence[int], calibrate: bool = True):
    """Binary classifier for ``model_head.pkl``: predict() gives 0/1 (NEGATIVE /
    EYE_IMAGING) and predict_proba() two columns in that order, as EyeImagingClassifier
    expects. Calibrated with sklearn's CalibratedClassifierCV (sigmoid on out-of-fold
    predictions, then one model refitted on everything: ``ensemble=False``)."""
    from sklearn.calibration import CalibratedClassifierCV

    labels = np.asarray(labels)
    base = LogisticRegression(C=EMBEDDING_HEAD_C, max_iter=5000)
    with _one_blas_thread():
        if not calibrate:
            return base.fit(embeddings, labels)
        cv = StratifiedKFold(min(CALIBRATION_FOLDS, int(np.bincount(labels).min())), shuffle=True, random_state=SEED)
        return CalibratedClassifierCV(base, method="sigmoid", cv=cv, ensemble=False).fit(embeddings, labels)


# ---------------------------------------------------------------- why: the text's share of a label
WORDS_SHOWN = 4  # words named in one reason
MIN_REASON_LOGIT = 0.15  # smaller shares of the log-odds are not worth a line


def _vocabulary(state: dict[str, Any]) -> np.ndarray:
    """The word vectorizer's terms by column (cached on the loaded state, never saved)."""
    terms = state.get("_terms")
    if terms is None:
        terms = state["_terms"] = state["word"].get_feature_names_out()
    return terms


def _platt_slope(state: dict[str, Any]) -> float:
    calibrator = state.get("calibrator")
    return float(calibrator.coef_[0][0]) if calibrator is not None else 1.0


def text_contributions(state: dict[str, Any], texts: Sequence[str], layers: np.ndarray,
                       features: Any = None) -> list[dict[str, Any]]:
    """For each (prepared) text, how its features moved the calibrated log-odds of
    EYE_IMAGING: ``{"words": [(term, share), ...], "wording": share, "embedding": whether
    the wording includes the embedding (not for the quick head)}`` and a share for each
    flag that fired (``eye_flag``, ``eye_flag_lead``, ``site_first``...). Gradient times
    input of the multinomial model: the derivative of ``logit P(eye)`` along each feature,
    ``w_eye - sum_k P_k / (1 - P_eye) w_k``, times the feature's value, scaled by the Platt
    slope. The word shares are exact for a linear
    model at this point; they are what "the text terms that weighed most" are."""
    texts = list(texts)
    X = text_features(state, texts, layers) if features is None else features
    model = state["model"]
    probs = model.predict_proba(X)
    W = model.coef_
    # the embedding columns are measured from the average training text, not from zero
    n_word, n_char = len(state["word"].vocabulary_), len(state["char"].vocabulary_)
    pos = state["positive_column"]
    slope = _platt_slope(state)
    n_layers = layers.shape[1] if reads_embedding(state) else 0  # the quick head reads none
    if n_layers:
        mean = state.get("layers_mean")
        mean = np.zeros(n_layers) if mean is None else np.asarray(mean)
        centred = (np.asarray(layers, dtype=np.float64) - mean) * state["params"]["embedding_weight"]
    dense = slice(n_word + n_char, n_word + n_char + n_layers)
    flag_names = _flag_names(state["params"])
    terms = _vocabulary(state)
    out = []
    for i in range(X.shape[0]):
        row = X.getrow(i)
        p = probs[i]
        rest = max(1e-9, 1.0 - p[pos])
        mix = np.array([0.0 if k == pos else p[k] / rest for k in range(len(p))])
        cols, vals = row.indices, row.data
        sparse = cols < n_word + n_char
        grad = W[pos, cols] - mix @ W[:, cols]
        share = vals * grad * slope
        words, wording, flags = [], 0.0, {}
        for c, s in zip(cols[sparse], share[sparse]):
            if c < n_word:
                words.append((str(terms[c]), float(s)))
            else:
                wording += float(s)  # character n-grams: the spelling
        if n_layers:
            wording += float(centred[i] @ (W[pos, dense] - mix @ W[:, dense]) * slope)
        for c, s in zip(cols[cols >= n_word + n_char + n_layers], share[cols >= n_word + n_char + n_layers]):
            flags[flag_names[c - n_word - n_char - n_layers]] = float(s)
        out.append({"words": sorted(words, key=lambda ws: -abs(ws[1])), "wording": wording, "embedding": bool(n_layers),
                    **flags})
    return out


def _flag_names(params: dict[str, Any]) -> list[str]:
    """Names of the flag columns, in the order :func:`flag_features` writes them."""
    columns = [("eye_flag", params["eye_vocabulary_weight"]), ("site_flag_text", params.get("non_eye_site_weight", 0.0)),
               ("eye_flag_lead", params.get("lead_eye_weight", 0.0)), ("site_flag", params.get("lead_site_weight", 0.0)),
               ("site_first", params.get("site_first_weight", 0.0)), ("software", params.get("software_weight", 0.0))]
    return [name for name, weight in columns if weight]


def text_reasons(contributions: dict[str, Any], analysis: Any, lead: str) -> list[tuple[float, dict[str, str]]]:
    """(share of the log-odds, ``{"supports", "reason"}``) lines for one text, from
    :func:`text_contributions` and the :class:`.language.Analysis` of its original text."""
    out: list[tuple[float, dict[str, str]]] = []

    def line(share: float, reason: str) -> None:
        if abs(share) >= MIN_REASON_LOGIT:
            out.append((share, {"supports": "EYE_IMAGING" if share > 0 else "NEGATIVE", "reason": reason}))

    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    named = analysis.named
    rewritten = bool(analysis.expansions or named)  # the lexicon appended what it read
    expanded = {e.lower() for _, e in analysis.expansions} | {f"{n} {w}".lower() for n, w in named}
    expansion_words = set(" ".join(expanded).split())
    body = analysis.model_text.split(" | ")[0].lower()
    from_expansions = 0.0
    plain_words = []
    for term, share in contributions["words"]:
        words = term.split()
        if set(words) <= expansion_words and term not in body:
            from_expansions += share
        elif not all(w in ENGLISH_STOP_WORDS or w.isdigit() for w in words):  # shown: words that say something
            plain_words.append((term, share))
    for sign, label in ((1, "EYE_IMAGING"), (-1, "NEGATIVE")):
        chosen = [(t, s) for t, s in plain_words if s * sign > 0][:WORDS_SHOWN]
        if chosen:
            line(sum(s for _, s in chosen), "words in the text: " + ", ".join(f"'{t}'" for t, _ in chosen))
    eye = contributions.get("eye_flag", 0.0) + contributions.get("eye_flag_lead", 0.0)
    in_title = bool(contributions.get("eye_flag_lead", 0.0))
    if eye and rewritten and not EYE_VOCABULARY.search(body):
        # the text's own words do not name the eye: the flag fired on the expansions
        from_expansions, eye = from_expansions + eye, 0.0
    if rewritten:
        parts = [f"{a} = {e}" for a, e in analysis.expansions[:4]] + [f"{n}: {w}" for n, w in named[:2]]
        line(from_expansions, "read as: " + "; ".join(parts))
    if eye:
        terms = list(dict.fromkeys(t.lower() for t in analysis.eye_terms))[:4]
        line(eye, ("the title names the eye" if in_title else "the text names the eye")
             + (f" ({', '.join(terms)})" if terms else ""))
    site = contributions.get("site_flag", 0.0) + contributions.get("site_first", 0.0)
    if site:
        found = list(dict.fromkeys(m.group(0).lower() for m in NON_EYE_SITE.finditer(lead)))[:3]
        line(site, "the title names another body site" + (f" ({', '.join(found)})" if found else ""))
    if contributions.get("software"):
        found = list(dict.fromkeys(m.group(0).lower() for m in SOFTWARE.finditer(analysis.model_text)))[:3]
        line(contributions["software"], "the text names software" + (f" ({', '.join(found)})" if found else ""))
    if contributions.get("embedding", True):
        line(contributions["wording"], "the wording as a whole, compared with the average training text")
    else:  # the quick head: character n-grams only (read_texts)
        line(contributions["wording"], "the wording as a whole (its spelling; sure enough without the encoder)")
    if analysis.negated:
        quoted = "; ".join(f'"{s[:70]}"' for s in analysis.negated[:2])
        out.append((-MIN_REASON_LOGIT, {"supports": "NEGATIVE",
                                        "reason": f"eye words read as negated or in passing, not counted: {quoted}"}))
    if analysis.other_organ:
        out.append((-MIN_REASON_LOGIT, {"supports": "NEGATIVE",
                                        "reason": "eye words that name another organ here, not counted: "
                                                  + ", ".join(analysis.other_organ[:3])}))
    return out


# ---------------------------------------------------------------- file evidence weights
def fit_file_weights(state: dict[str, Any], encoder: Any, records: Sequence[Any], labels: Sequence[int],
                     penalty: float | None = None) -> dict[str, Any]:
    """The file evidence's likelihood ratios (:mod:`.evidence`), fitted on labelled
    records with files that the text head in ``state`` never saw, so their text
    probabilities are out of sample."""
    from .evidence import FEATURES, FILE_KINDS, PENALTY, feature_matrix, file_targets, fit_files
    from .text import record_text

    penalty = PENALTY if penalty is None else penalty
    prepared = prepare_texts([record_text(r) for r in records])
    # the full head's probabilities: the quick reading stands only where the decision is
    # sure anyway, and it needs these weights to know where that is
    _, layers = encoder.encode(prepared)
    kinds = predict_text_kinds(state, prepared, layers)
    fitted = fit_files(kinds, feature_matrix(records), file_targets(records, labels), penalty=penalty,
                       specificity=specificity(prepared))
    return {"features": list(FEATURES), "kinds": list(FILE_KINDS), "weights": np.round(fitted["weights"], 6).tolist(),
            "share": round(float(fitted["share"]), 6), "floor": [round(float(v), 8) for v in fitted["floor"]],
            "stretch": None if fitted["stretch"] is None else round(float(fitted["stretch"]), 6),
            "floor_decay": round(float(fitted["floor_decay"]), 6), "penalty": penalty, "examples": len(records)}
