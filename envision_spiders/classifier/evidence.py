"""File evidence: what a record's files say about EYE_IMAGING, and how it joins the text model.

**Features.** :func:`file_features` turns what :mod:`envision_spiders.modality` reads from
a record's files and archive listings into a few numbers (:data:`FEATURES`): ophthalmic
device formats, other OCT raw formats, DICOM, other medical volumes, raster images (a
log-scaled count), videos, numeric arrays, file or member names that name the eye (a word
that names another organ too, "fundus" or "macula", only when the record's text does not
name that organ: :func:`envision_spiders.modality.eye_words_in_context`), names
marked OD/OS, names of other body sites, genomics files, and two that only a **complete**
listing can give: "no image of any kind" and "code or model weights only". Every
feature is 0 when its evidence is unknown: a record without a listing (DataCite, NIH
RePORTER, Dryad or Kaggle without credentials, archives not peeked) has all zeros, and an
incomplete listing says only what it saw; neither ever says "no images".

**Combination.** The text model gives the probabilities of four kinds of record (eye
imaging, eye software, other eye data such as genotypes or eye tracking, everything
else; P(EYE_IMAGING) calibrated, the others rescaled to sum with it to one). "Everything
else" is split into non-eye imaging (a fitted share ``s``) and the rest, and the file
evidence multiplies each of these five kinds' odds by fitted likelihood ratios:

    log P(kind | text, files) = log(P_text(kind) + e[kind]) + W[kind] . f + const,   W[eye imaging] = 0

a multinomial logistic regression whose offset is the text model's log-probabilities and
that has no intercept. ``exp(W[kind, j])`` is how much more (or less) likely evidence j
is for that kind than for eye imaging, fitted (not hand-set) by maximum likelihood on
labelled records with files (:data:`.data.FILE_EXAMPLES_FILE`) scored by a text model
that never saw them. Why this form:

* per kind, because a file says different things against different alternatives: 300
  JPEGs argue against "eye data without images", eye software and random records, but
  not against chest X-rays, which come as JPEGs too. A single likelihood ratio for
  "images" (the binary model first tried, docs/classifier.md) learnt a large weight from
  vague-titled eye datasets and would have lifted every non-eye image set whose text was
  not quite certain; the text model's four kinds alone still lumped non-eye imaging with
  everything else, hence the split;
* unknown evidence (all zeros) leaves the text probability exactly as it was: nothing
  about a missing listing can move a label, which is what the issue asks and what a
  free intercept or a rescaled text logit would break;
* the text model is already calibrated on a thousand examples; a few hundred records
  with files are enough to fit a few dozen likelihood ratios, not to re-learn the text;
* it stays calibrated (maximum likelihood on the records with files) and each piece of
  evidence has a readable share: the log-odds lost when it is taken away, which orders
  the evidence lines a label carries.

The floor ``e`` (fitted with ``W``; used only for records with file evidence) says how
far the text model can be wrong about eye imaging when files are there to correct it: a
vague "Supplementary data" is 1e-5 eye imaging to the text, and 412 .e2e files must still
be able to make it one. It is a floor of eye imaging only. One floor shared by every kind
(the first version) also lifted every other kind for records whose text was sure, so a
fundus dataset with one listed image fell from 0.999 to 0.78; one floor per kind (recipe
4) fitted near 0 for the other kinds until records of eye data whose text reads like
imaging joined the fit (recipe 5), and then took every sure fundus text with any file
listing down to 0.96. For the other kinds the files speak through their likelihood
ratios alone (a complete listing of tables against eye imaging), which the penalty keeps
in proportion (docs/classifier.md).

An L2 penalty (:data:`PENALTY`) keeps weights of rare features small. The fit uses scipy's
L-BFGS on the penalised log-loss because scikit-learn's LogisticRegression has no offset
term (hand-written: about fifteen lines; :func:`fit_weights`).

The floor is for a text that may be wrong, and a text that does not say what it holds
("Supplementary data S1", "Images for the manuscript") may be wrong about anything. A text
that names its subject ("Breast ultrasound images", "Galaxy images for morphology
classification") is rarely wrong about it, and one floor for both lifted the second kind,
with its plain image files, to about 0.2. So the floor of each record falls with the
number ``s`` of its text's subject words (:func:`envision_spiders.classifier.head.specificity`):
``e exp(-d s)``, the decay ``d`` fitted with the rest (bounded at 0: the floor never rises
with the words).

**The stretch.** The penalty that keeps a rare feature's ratio in proportion also keeps
the files of an eye record known mainly by them from saying all they say: fitted with it,
such records stopped at 0.7 to 0.9 though all of them were eye imaging. So the files' move
of the log-odds (``z1 - z0``: the combination's log-odds less those of the same record with
its features zeroed and the floor held) is multiplied by one factor ``a``, fitted by
maximum likelihood on out-of-fold combinations of the records with files (each combined by
ratios fitted without it): ``z0 + a (z1 - z0)``. A sigmoid on the whole log-odds (tried
first) stretched the text's part too, and lifted non-eye records whose text names the eye
in passing and whose files are plain images; here evidence that moves nothing (plain
images are neutral) is not stretched, and no evidence still means no change.

**Disagreement.** Text and files disagree when the text says one label and the file
evidence alone pushes the other way by at least :data:`DISAGREEMENT_LOGIT` (a likelihood
ratio of 3): a curator should look at such a record whatever its final label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envision_spiders.filetypes import (
    ARCHIVE,
    ARRAY,
    CODE,
    DEVICE_FORMATS,
    DOCUMENT,
    GENOMICS,
    IMAGING,
    MEDICAL,
    TABLE,
    VIDEO,
    WEIGHTS,
    category_of_extension,
)
from envision_spiders.modality import (
    DICOM,
    VOLUMES,
    FileListing,
    device_counts,
    eye_device_count,
    eye_words_in_context,
    file_listing,
    name_facts,
    plain,
)

from .text import record_text

FEATURES = (
    "eye_device",  # Heidelberg .e2e/.vol/.sdb, Topcon .fds/.fda files
    "other_oct_device",  # .oct (Bioptigen, Optovue, Thorlabs), .img without .hdr (Zeiss Cirrus)
    "dicom",
    "medical_volumes",  # NIfTI, MHA/MHD, NRRD, MGZ
    "images",  # raster images: log10(1 + n) / 3, at most 1
    "video",
    "arrays",  # .mat .h5 .npy: may hold images, or not
    "eye_names",  # image, device, video or archive names that name the eye (fundus_0001.jpg, macula, cornea)
    "oct_names",  # such names with an OCT word (oct, bscan): OCT, of the eye or of another organ
    "laterality",  # image or device names marked OD / OS / OU
    "non_eye_names",  # names of another body site or modality (chest, CT, knee, ECG)
    "genomics",
    "no_images",  # complete listing: no image, device, medical, video or array file at all
    "code_only",  # complete listing without images, holding code or model weights
)
# L2 on the weights (the log-loss is summed over records). Cross-validated log-loss on the
# records with files keeps falling as the penalty shrinks (they are nearly separable: none
# of our negatives has eye-named image files), so it is set where the largest likelihood
# ratio stays near e^7 (about a thousand): what one piece of file evidence can be worth on
# records no one has seen; 0.1 gave ratios up to e^12 (docs/classifier.md).
PENALTY = 0.3
DISAGREEMENT_LOGIT = math.log(3.0)
# the stretch of the files' move of the log-odds (module doc): fitted on out-of-fold
# combinations, these many folds, this seed, within these bounds
CALIBRATION_FOLDS = 5
CALIBRATION_SEED = 0
STRETCH_BOUNDS = (0.5, 5.0)
MAX_REASONS = 6
_EPS = 1e-6


@dataclass
class FileEvidence:
    """The file features of one record and the plain-text lines that describe them."""

    values: np.ndarray  # one value per FEATURES entry
    lines: dict[str, str] = field(default_factory=dict)  # feature -> plain-text description
    known: bool = False
    complete: bool = False
    gaps: list[str] = field(default_factory=list)

    def key(self) -> str:
        """A short, stable digest of the features (a saved label is reused only when its
        text and its file evidence are unchanged)."""
        return ",".join(f"{v:.4g}" for v in self.values) + ("|c" if self.complete else "|i" if self.known else "|u")


def _n(value: int) -> str:
    return f"{value:,}"


def _files(n: int, what: str) -> str:
    return f"{_n(n)} {what}{'' if n == 1 else 's'}"


def file_evidence(record: Mapping[str, Any], listing: FileListing | None = None) -> FileEvidence:
    """The :class:`FileEvidence` of a saved record, a results row or a labelled line."""
    listing = listing or file_listing(record)
    values = np.zeros(len(FEATURES))
    lines: dict[str, str] = {}
    ev = FileEvidence(values, lines, listing.known, listing.complete, list(listing.gaps))
    if not listing.known:
        return ev

    def put(name: str, value: float, line: str) -> None:
        values[FEATURES.index(name)] = value
        lines[name] = line

    counts = listing.counts
    devices = device_counts(listing)
    eye = eye_device_count(devices)
    if eye:
        top = sorted(((n, e) for e, n in devices.items() if e not in (".oct", ".img")), reverse=True)
        put("eye_device", 1.0, "; ".join(f"{_n(n)} {e} file{'s' if n != 1 else ''} ({DEVICE_FORMATS[e]})"
                                           for n, e in top[:2]))
    other = {e: n for e, n in devices.items() if e in (".oct", ".img")}
    if other:
        put("other_oct_device", 1.0, "; ".join(f"{_n(n)} {e} file{'s' if n != 1 else ''} ({DEVICE_FORMATS[e]})"
                                                 for e, n in sorted(other.items())))
    dicom = listing.count(DICOM)
    if dicom:
        put("dicom", 1.0, f"{_files(dicom, 'DICOM file')} (any organ)")
    volumes = listing.count(VOLUMES)
    if volumes:
        put("medical_volumes", 1.0, f"{_files(volumes, 'medical volume')} (NIfTI, MHA, NRRD)")
    images = listing.of_category(IMAGING)
    if images:
        kinds = ", ".join(e for e, _ in sorted(((e, n) for e, n in counts.items()
                                                if category_of_extension(e) == IMAGING), key=lambda kv: -kv[1])[:3])
        put("images", min(1.0, math.log10(1 + images) / 3), f"{_files(images, 'image')} ({kinds})")
    video = listing.of_category(VIDEO)
    if video:
        put("video", 1.0, _files(video, "video"))
    arrays = listing.of_category(ARRAY)
    if arrays:
        put("arrays", 1.0, f"{_files(arrays, 'numeric array file')} (.mat, .h5, .npy: contents unknown)")
    facts = name_facts(listing.names)
    eye_words = eye_words_in_context(facts.eye_words, record_text(record)) if facts.eye else set()
    if eye_words:
        words = ", ".join([w for w, _ in facts.eye_words.most_common() if w in eye_words][:3])
        put("eye_names", 1.0, f"file names name the eye ({words}): {_n(facts.eye)} of {_n(facts.pictured)} read, "
                              f"e.g. {facts.eye_examples[0]}")
    if facts.oct:
        put("oct_names", 1.0, f"file names name OCT scans (oct, bscan): {_n(facts.oct)} of {_n(facts.pictured)} read")
    if facts.laterality:
        put("laterality", 1.0, f"{_n(facts.laterality)} image names marked OD / OS (right / left eye)")
    if facts.non_eye:
        words = ", ".join(w for w, _ in facts.non_eye_words.most_common(3))
        put("non_eye_names", 1.0, f"file names name another body site or modality ({words})")
    genomics = listing.of_category(GENOMICS)
    if genomics:
        put("genomics", 1.0, _files(genomics, "genomics file"))
    if listing.complete:
        pictured = images + video + arrays + dicom + volumes + listing.of_category(MEDICAL) + sum(devices.values())
        if not pictured:
            code = listing.of_category(CODE) + listing.of_category(WEIGHTS)
            put("no_images", 1.0, "complete listing: " + _contents(counts) + ", no images")
            if code:
                put("code_only", 1.0, f"complete listing: code or model weights ({_files(code, 'file')}), no data images")
    return ev


_KIND_WORDS = {TABLE: "table", DOCUMENT: "document", CODE: "code file", WEIGHTS: "model file", GENOMICS: "genomics file",
               ARCHIVE: "archive"}


def _contents(counts: Mapping[str, int]) -> str:
    """"3 tables, 1 document" from extension counts."""
    kinds: dict[str, int] = {}
    for ext, n in counts.items():
        kind = _KIND_WORDS.get(category_of_extension(ext) or "", "other file")
        kinds[kind] = kinds.get(kind, 0) + n
    parts = sorted(kinds.items(), key=lambda kv: -kv[1])
    return ", ".join(_files(n, k) for k, n in parts[:3]) or "no files"


def evidence_sha256() -> str:
    """sha256 of what the file features are made of (their list, the penalty, the
    extension table and the name word lists): an input of the default model."""
    import hashlib
    import json

    from envision_spiders import filetypes, modality

    spec = {"features": FEATURES, "penalty": PENALTY, "floors": "eye imaging only",
            "stretch": ["files' move, out of fold", CALIBRATION_FOLDS, CALIBRATION_SEED, STRETCH_BOUNDS],
            "floor_decay": "exp(-d * subject words)", "extensions": filetypes.EXTENSIONS,
            "devices": filetypes.DEVICE_FORMATS, "eye_names": sorted(modality.EYE_NAME_WORDS),
            "weak_eye_names": sorted(modality.WEAK_EYE_WORDS),
            "ambiguous_eye_names": {w: r.pattern for w, r in modality.AMBIGUOUS_EYE_WORDS.items()},
            "oct_names": sorted(modality.OCT_NAME_WORDS), "neutral": NEUTRAL,
            "non_eye_names": sorted(modality.NON_EYE_NAME_WORDS), "laterality": sorted(modality.LATERALITY_WORDS),
            "name_limit": modality.NAME_LIMIT}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def feature_matrix(records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    return np.array([file_evidence(r).values for r in records]).reshape(len(records), len(FEATURES))


# ------------------------------------------------------------------ the combination
# The text head's four kinds, its last ("everything else") split in two for the file
# evidence: non-eye imaging (chest X-rays, skin photographs) and everything without images.
FILE_KINDS = ("eye_imaging", "eye_software", "other_eye_data", "negative_imaging", "negative_other")
POSITIVE = 0
# Held at 1 (weight 0): generic image formats and OCT words cannot tell eye imaging from
# other imaging. Fitted freely, "images" learnt from vague-titled records (which the text
# model rates as unlikely eye imaging whatever their files) a ratio that lifted any image
# set whose text was unsure, and OCT words in names would do the same for intravascular
# OCT; only eye-specific evidence (Heidelberg and Topcon formats, eye words and OD/OS in
# names) and other sites' names may move the balance between eye and non-eye imaging.
NEUTRAL = {"negative_imaging": ("images", "video", "dicom", "medical_volumes", "arrays", "oct_names",
                                "other_oct_device")}


def _free_mask() -> np.ndarray:
    mask = np.ones((len(FILE_KINDS), len(FEATURES)))
    mask[POSITIVE] = 0
    for kind, names in NEUTRAL.items():
        for name in names:
            mask[FILE_KINDS.index(kind), FEATURES.index(name)] = 0
    return mask


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(p, dtype=float), _EPS, 1.0))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _split(kind_probabilities: np.ndarray, share: float) -> np.ndarray:
    """P_text of the five file kinds: the text head's "everything else" split into an
    imaging share and the rest (the split sums back to it, so no evidence, no change)."""
    k = np.atleast_2d(np.asarray(kind_probabilities, dtype=float))
    return np.column_stack([k[:, :3], k[:, 3] * share, k[:, 3] * (1.0 - share)])


def _offsets(kind_probabilities: np.ndarray, share: float, floor: np.ndarray | float = 0.0) -> np.ndarray:
    """log(P_text(kind) + floor[kind]): with file evidence (a floor above 0) the text alone
    cannot rule a kind out beyond what its floor allows. ``floor``: one row per record, or
    one value per kind, or a number."""
    return _log(_split(kind_probabilities, share) + np.asarray(floor, dtype=float))


def floors(fitted: Mapping[str, Any]) -> np.ndarray:
    """The fitted floor of each file kind (zeros when there is none)."""
    value = np.asarray(fitted.get("floor", 0.0), dtype=float)
    return np.broadcast_to(value, (len(FILE_KINDS),)).copy() if value.ndim == 0 else value


def _specificity(n: int, specificity: Any) -> np.ndarray:
    """One number per record: how much its text says about its subject (head.specificity);
    zeros when none is given."""
    if specificity is None:
        return np.zeros(n)
    out = np.asarray(specificity, dtype=float).reshape(-1)
    return np.broadcast_to(out, (n,)) if out.size == 1 else out


def record_floors(fitted: Mapping[str, Any], specificity: Any, n: int) -> np.ndarray:
    """The floor of each kind for each record: the fitted floor times ``exp(-decay * s)``,
    ``s`` the text's specificity (module doc)."""
    decay = float(fitted.get("floor_decay", 0.0) or 0.0)
    return floors(fitted)[None, :] * np.exp(-decay * _specificity(n, specificity))[:, None]


def fit_weights(kind_probabilities: np.ndarray, features: np.ndarray, targets: Sequence[int],
                penalty: float = PENALTY, specificity: Any = None) -> dict[str, Any]:
    """Maximum-likelihood likelihood ratios of the file evidence (see the module doc):
    ``{"weights": W (FILE_KINDS x features, eye imaging's row 0), "share": s, "floor": e,
    "floor_decay": d}`` for ``log P(kind | text, files) = log(P_text(kind) + e[kind] exp(-d s)) + W[kind] . f + const``
    on records with file evidence (without any, the text model's own probabilities), with
    the share of imaging among the text's "everything else", the floor of eye imaging
    (``e``, zero for the other kinds) and its decay with the text's specificity ``s``
    fitted with them; an L2 penalty on ``W``. scipy's L-BFGS (see the module doc for why not
    scikit-learn)."""
    from scipy.optimize import minimize

    k = np.atleast_2d(np.asarray(kind_probabilities, dtype=float))
    X = np.asarray(features, dtype=float)
    y = np.asarray(targets, dtype=int)
    n_kinds, n_features = len(FILE_KINDS), X.shape[1]
    onehot = np.eye(n_kinds)[y]
    free = _free_mask()[:, :n_features].astype(bool)
    known = X.any(axis=1).astype(float)  # where the floor applies
    spec = _specificity(len(X), specificity)

    n_free = int(free.sum())

    def unpack(theta):
        W = np.zeros((n_kinds, n_features))
        W[free] = theta[:n_free]
        floor = np.zeros(n_kinds)
        floor[POSITIVE] = math.exp(theta[n_free + 1])  # eye imaging only (module doc)
        return W, 1.0 / (1.0 + math.exp(-theta[n_free])), floor, theta[n_free + 2]

    def loss(theta):
        W, share, floor, decay = unpack(theta)
        base = _split(k, share)
        each = known * floor[POSITIVE] * np.exp(-decay * spec)  # each record's floor of eye imaging
        shifted = base.copy()
        shifted[:, POSITIVE] += each
        shifted = np.clip(shifted, _EPS, None)
        z = np.log(shifted) + X @ W.T
        q = _softmax(z)
        z_max = z.max(axis=1, keepdims=True)
        log_norm = z_max[:, 0] + np.log(np.exp(z - z_max).sum(axis=1))
        w = theta[:n_free]
        value = np.sum(log_norm - (z * onehot).sum(axis=1)) + 0.5 * penalty * w @ w
        residual = q - onehot
        grad_w = (residual.T @ X)[free] + penalty * w
        # d log(P_split + e) / du through the split, s = sigmoid(u): P_neg * s (1 - s) / (P_img + e) ...
        ds = share * (1.0 - share) * k[:, 3]
        grad_u = np.sum(residual[:, 3] * ds / shifted[:, 3] - residual[:, 4] * ds / shifted[:, 4])
        # floor e exp(-d s), e = exp(v): d z_eye / dv = floor / (P_eye + floor); d z_eye / dd = -s times that
        share_of_floor = residual[:, POSITIVE] * each / shifted[:, POSITIVE]
        return value, np.concatenate([grad_w, [grad_u], [share_of_floor.sum()], [-(share_of_floor * spec).sum()]])

    start = np.concatenate([np.zeros(n_free), [0.0], [math.log(1e-3)], [0.0]])
    bounds = [(None, None)] * (n_free + 2) + [(0.0, None)]  # the floor may only fall as the text says more
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    W, share, floor, decay = unpack(result.x)
    return {"weights": W, "share": share, "floor": floor, "floor_decay": float(decay)}


def kind_posterior(kind_probabilities: np.ndarray, features: np.ndarray, fitted: Mapping[str, Any],
                   floored: bool = False, specificity: Any = None) -> np.ndarray:
    """P(file kind | text, files) for each record (rows), before the stretch of the files' move. The
    floor applies to records with file evidence (to all with ``floored``), each record's
    falling with its text's ``specificity`` (:func:`record_floors`)."""
    W = np.asarray(fitted["weights"], dtype=float)
    X = np.atleast_2d(np.asarray(features, dtype=float))
    apply = X.any(axis=1) | floored
    floor = np.where(apply[:, None], record_floors(fitted, specificity, len(X)), 0.0)
    return _softmax(_offsets(kind_probabilities, float(fitted["share"]), floor) + X @ W.T)


def eye_probability(kind_probabilities: np.ndarray, features: np.ndarray, fitted: Mapping[str, Any],
                    floored: bool = False, specificity: Any = None) -> np.ndarray:
    """P(EYE_IMAGING | text, files) for each record. With a fitted ``stretch`` a, the
    files' move of the log-odds (the combination's log-odds ``z1`` less those of the same
    record with its features zeroed and the floor held, ``z0``) is stretched:
    ``z0 + a (z1 - z0)``; records without file evidence keep the text's probability."""
    X = np.atleast_2d(np.asarray(features, dtype=float))
    k = np.atleast_2d(np.asarray(kind_probabilities, dtype=float))
    p = kind_posterior(k, X, fitted, floored, specificity)[:, POSITIVE]
    stretch = fitted.get("stretch")
    if stretch is None or float(stretch) == 1.0:
        return p
    held = kind_posterior(k, np.zeros_like(X), fitted, True, specificity)[:, POSITIVE]
    z1, z0 = _logits(p), _logits(held)
    return np.where(X.any(axis=1) | floored, 1.0 / (1.0 + np.exp(-(z0 + float(stretch) * (z1 - z0)))), p)


def _logits(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p) - np.log(1 - p)


def fit_stretch(kind_probabilities: np.ndarray, features: np.ndarray, targets: Sequence[int],
                penalty: float = PENALTY, specificity: Any = None) -> float | None:
    """The factor ``a`` of :func:`eye_probability` by maximum likelihood (bounded to
    :data:`STRETCH_BOUNDS`) on the records with file evidence, each combined by likelihood
    ratios fitted without it (:data:`CALIBRATION_FOLDS` folds). None when there are too
    few records of either label."""
    from scipy.optimize import minimize_scalar
    from sklearn.model_selection import StratifiedKFold

    k = np.atleast_2d(np.asarray(kind_probabilities, dtype=float))
    X = np.asarray(features, dtype=float)
    t = np.asarray(targets, dtype=int)
    y = (t == POSITIVE).astype(int)
    known = X.any(axis=1)
    spec = _specificity(len(X), specificity)
    if min(int(y[known].sum()), int((1 - y[known]).sum())) < 2 * CALIBRATION_FOLDS:
        return None
    z1, z0 = np.zeros(len(t)), np.zeros(len(t))
    for train, test in StratifiedKFold(CALIBRATION_FOLDS, shuffle=True, random_state=CALIBRATION_SEED).split(X, y):
        fitted = fit_weights(k[train], X[train], t[train], penalty, spec[train])
        z1[test] = _logits(kind_posterior(k[test], X[test], fitted, False, spec[test])[:, POSITIVE])
        z0[test] = _logits(kind_posterior(k[test], np.zeros_like(X[test]), fitted, True, spec[test])[:, POSITIVE])
    z1, z0, y = z1[known], z0[known], y[known]

    def loss(a):
        z = z0 + a * (z1 - z0)
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    return float(minimize_scalar(loss, bounds=STRETCH_BOUNDS, method="bounded").x)


def fit_files(kind_probabilities: np.ndarray, features: np.ndarray, targets: Sequence[int],
              penalty: float = PENALTY, specificity: Any = None) -> dict[str, Any]:
    """Everything the combination needs: :func:`fit_weights` on all the records, and the
    stretch of the files' move (:func:`fit_stretch`) on out-of-fold combinations of them."""
    fitted = fit_weights(kind_probabilities, features, targets, penalty, specificity)
    fitted["stretch"] = fit_stretch(kind_probabilities, features, targets, penalty, specificity)
    return fitted


def combine(kind_probabilities: np.ndarray, features: np.ndarray, fitted: Mapping[str, Any],
            specificity: Any = None) -> np.ndarray:
    """P(EYE_IMAGING) from the text model's kind probabilities and the file features
    (``specificity``: each record's number of subject words, :func:`record_floors`)."""
    if len(kind_probabilities) == 0:
        return np.zeros(0)
    return eye_probability(kind_probabilities, features, fitted, specificity=specificity)


def read_records(head: Mapping[str, Any], texts: Sequence[str], layers: Any, features: np.ndarray,
                 fitted: Mapping[str, Any], specificity: Any, contributions: bool = False) -> tuple[Any, np.ndarray]:
    """How the classifier reads records: the text head's reading of their (prepared)
    texts (:func:`.head.read_texts`; the quick head settles a record only where its
    decision, these files combined, is as sure as its text) and each record's
    P(EYE_IMAGING). The classifier and the file cross-validation both call this, so the
    figures are those of what classifies."""
    from .head import read_texts

    reading = read_texts(head, texts, layers, contributions,
                         decide=lambda kinds: combine(kinds, features, fitted, specificity))
    return reading, combine(reading.kinds, features, fitted, specificity)


def _logit(p: float) -> float:
    return float(_logits(p))


def file_logit(kind_probabilities: np.ndarray, features: np.ndarray, fitted: Mapping[str, Any],
               specificity: float = 0.0) -> float:
    """How far one record's file evidence moved the log-odds of EYE_IMAGING: its
    likelihood ratios alone, the text's floor held as in the combination (0 for a record
    without file evidence)."""
    x = np.asarray(features, dtype=float)
    if not x.any():
        return 0.0
    rows = np.vstack([x, np.zeros_like(x)])
    p = eye_probability(np.tile(kind_probabilities, (2, 1)), rows, fitted, floored=True, specificity=specificity)
    return _logit(p[0]) - _logit(p[1])


def disagreement(text_probability: float, files: float) -> bool:
    """The text says one label and the file evidence alone pushes the other way by at
    least a likelihood ratio of 3."""
    if text_probability >= 0.5:
        return files <= -DISAGREEMENT_LOGIT
    return files >= DISAGREEMENT_LOGIT


def file_targets(records: Sequence[Mapping[str, Any]], labels: Sequence[int]) -> list[int]:
    """Each labelled record's file kind: its ``kind`` (eye_imaging, eye_software,
    other_eye_data; a "negative" is split by its ``imaging`` flag, else by whether its
    listing holds images, video or medical files); without a kind, its label's."""
    out = []
    for r, label in zip(records, labels):
        kind = r.get("kind") if isinstance(r, Mapping) else None
        if label:
            out.append(0)
        elif kind in ("eye_software", "other_eye_data"):
            out.append(FILE_KINDS.index(kind))
        else:
            imaging = r.get("imaging") if isinstance(r, Mapping) else None
            if not isinstance(imaging, bool):
                listing = file_listing(r)
                imaging = bool(listing.of_category(IMAGING) + listing.of_category(MEDICAL) + listing.of_category(VIDEO))
            out.append(FILE_KINDS.index("negative_imaging" if imaging else "negative_other"))
    return out


def file_reasons(evidence: FileEvidence, kind_probabilities: np.ndarray,
                 fitted: Mapping[str, Any], specificity: float = 0.0) -> list[tuple[float, dict[str, str]]]:
    """(share of the log-odds, ``{"supports", "reason"}``) for each file feature that
    fired: how much the log-odds of EYE_IMAGING drop when that one feature is taken away,
    as the combination would weigh what is left. Taking away a record's only piece of
    file evidence leaves none, and so takes the text's floor with it: that line carries
    the whole move from the text's probability ("Images" with 12,000 PNGs: 0.05 -> 0.24),
    which would otherwise show in no reason at all. Beside other lines, the floor's lift
    is a line of its own, which says how many subject words the text has (module doc)."""
    values = evidence.values
    active = [i for i, v in enumerate(values) if v and FEATURES[i] in evidence.lines]
    if not active:
        return []
    rows = np.tile(values, (len(active) + 1, 1))
    for row, i in enumerate(active, 1):
        rows[row, i] = 0.0
    p = eye_probability(np.tile(kind_probabilities, (len(rows), 1)), rows, fitted, specificity=specificity)
    full = _logit(p[0])
    out = []
    for row, i in enumerate(active, 1):
        share = full - _logit(p[row])
        if abs(share) < 0.05:
            continue
        out.append((share, {"supports": "EYE_IMAGING" if share > 0 else "NEGATIVE",
                            "reason": plain(evidence.lines[FEATURES[i]], 160)}))
    if len(active) < 2:
        return out  # the only line carries the floor itself
    # how far the floor alone lifts the text: no evidence, the floor held
    held = kind_posterior(np.atleast_2d(kind_probabilities), np.zeros((1, len(values))), fitted, True, specificity)
    floor_lift = _logit(held[0, POSITIVE]) - _logit(float(np.ravel(kind_probabilities)[POSITIVE]))
    if floor_lift >= 0.05:
        words = int(specificity)
        said = ("the text does not say what the record holds" if words == 0 else
                f"the text says little of what the record holds ({words} subject word{'s' if words > 1 else ''})")
        out.append((floor_lift, {"supports": "EYE_IMAGING", "reason": f"{said}: its files can overrule it"}))
    return out


# which way each kind of file evidence points, for models that cannot weigh it (a foreign
# EyeImagingClassifier folder reads text only): those labels list the file lines, unweighed
_DIRECTION = {"eye_device": 1, "other_oct_device": 1, "images": 1, "eye_names": 1, "oct_names": 1, "laterality": 1,
              "medical_volumes": -1, "non_eye_names": -1, "genomics": -1, "no_images": -1, "code_only": -1}


def describe_files(evidence: FileEvidence) -> list[tuple[float, dict[str, str]]]:
    out = []
    for i, name in enumerate(FEATURES):
        direction = _DIRECTION.get(name, 0)
        if evidence.values[i] and direction and name in evidence.lines:
            out.append((0.0, {"supports": "EYE_IMAGING" if direction > 0 else "NEGATIVE",
                              "reason": plain(evidence.lines[name], 160)}))
    return out
