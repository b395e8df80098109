"""Measuring classifiers: cross-validation on the built-in examples, and a labelled file.

* :func:`cross_validate` refits each method on k-1 folds of envision-classifier's 891
  examples and predicts the held-out fold (``StratifiedKFold(k, shuffle=True,
  random_state=seed)``), optionally for several seeds. Methods are the recipes of
  :mod:`.head` (exactly what the default model ships) and two baselines. The embeddings
  are computed once, since the backbone is frozen.
* :func:`evaluate_file` classifies a JSON Lines file of labelled records (``title``,
  ``description``, ``keywords``, ``label``) with any loaded :class:`Classifier`.

Both report, per method: precision, recall and F1 for each class, accuracy, the confusion
matrix, the Brier score, calibration (reliability table and expected calibration
error), the negatives scored P >= 0.8 (what would be downloaded and posted) and, where
records have a title and a description, the recall on eye imaging known by its title
only (no description: :func:`title_only`). Each is given for the text model alone and
for the decision that adds the file evidence (:mod:`.evidence`): on a labelled file with
``files`` and ``archives``, and in cross-validation on the project's records with files
(:data:`.data.FILE_EXAMPLES_FILE`), whose file-evidence weights are refitted on the
training folds. :func:`write_report` writes ``report.json`` and ``report.txt`` (and
``reliability.png`` when matplotlib is installed).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envision_spiders.storage import atomic_write_bytes, atomic_write_json
from envision_spiders.textutil import utcnow_iso

from .calibration import DEFAULT_BINS, expected_calibration_error, reliability_table
from .model import LABELS, Classifier

logger = logging.getLogger(__name__)

THRESHOLD = 0.5  # the label is EYE_IMAGING when P(EYE_IMAGING) >= 0.5
METHODS = ("text_head", "text_head_uncalibrated", "embedding_head", "embedding_head_uncalibrated", "tfidf_baseline")
# with "text_head": the project's records with files, scored by the text head of each fold
# alone and with the file evidence weights fitted on the other folds' records
FILE_METHODS = ("file_examples_text", "file_examples_combined")
METHOD_TITLES = {
    "text_head": "default model (envision_head.joblib): TF-IDF + last-4-layers MiniLM + eye-vocabulary, "
                 "non-eye-site (title) and software flags, 4-kind LR, Platt-calibrated",
    "text_head_uncalibrated": "the same before calibration",
    "embedding_head": "model_head.pkl (EyeImagingClassifier): MiniLM sentence embedding, LR, Platt-calibrated",
    "embedding_head_uncalibrated": "the same before calibration: frozen MiniLM + LR(C=10)",
    "tfidf_baseline": "baseline: TF-IDF word 1-2 + char_wb 3-5, LR(C=10, balanced)",
    "file_examples_text": "records with files (file_examples.jsonl): the text model alone",
    "file_examples_combined": "records with files (file_examples.jsonl): text and file evidence combined "
                              "(likelihood ratios fitted on the training folds)",
}


def parse_label(value: Any) -> int | None:
    """1 for EYE_IMAGING (also true / 1 / "positive"), 0 for NEGATIVE, None otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        v = value.strip().upper().replace("-", "_").replace(" ", "_")
        if v in ("EYE_IMAGING", "1", "TRUE", "POSITIVE", "YES"):
            return 1
        if v in ("NEGATIVE", "0", "FALSE", "NO", "NOT_EYE_IMAGING"):
            return 0
    return None


HARD_NEGATIVE_P = 0.8  # the default download and post threshold


def title_only(record: dict) -> bool:
    """A record known by its title (and keywords) only: no description."""
    from .text import clean_text

    return not clean_text(record.get("description"))


def metrics(probabilities: Sequence[float], labels: Sequence[int], bins: int = DEFAULT_BINS,
            title_only_mask: Sequence[bool] | None = None) -> dict[str, Any]:
    """Per-class precision/recall/F1, accuracy, confusion matrix, Brier, ECE, reliability,
    negatives at P >= 0.8 and (with ``title_only_mask``) the recall on title-only eye
    imaging."""
    from sklearn.metrics import brier_score_loss, confusion_matrix, precision_recall_fscore_support

    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=int)
    extra: dict[str, Any] = {"negatives_at_0.8": int(((p >= HARD_NEGATIVE_P) & (y == 0)).sum()),
                             "negatives": int((y == 0).sum())}
    if title_only_mask is not None:
        mask = np.asarray(title_only_mask, dtype=bool) & (y == 1)
        extra["title_only_eye_imaging"] = int(mask.sum())
        extra["title_only_recall"] = round(float((p[mask] >= THRESHOLD).mean()), 4) if mask.any() else None
    pred = (p >= THRESHOLD).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=[0, 1], zero_division=0)
    cm = confusion_matrix(y, pred, labels=[0, 1])
    per_class = {
        LABELS[i]: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                    "f1": round(float(f1[i]), 4), "support": int(support[i])}
        for i in (1, 0)
    }
    return {
        "n": int(len(y)),
        "per_class": per_class,
        "accuracy": round(float((pred == y).mean()), 4) if len(y) else 0.0,
        # rows: true NEGATIVE, EYE_IMAGING; columns: predicted NEGATIVE, EYE_IMAGING
        "confusion_matrix": {"labels": list(LABELS), "rows_true_columns_predicted": cm.tolist()},
        "brier": round(float(brier_score_loss(y, p, labels=[0, 1])), 4) if len(y) else 0.0,
        "ece": round(expected_calibration_error(p, y, bins), 4),
        "reliability": reliability_table(p, y, bins),
        **extra,
    }


INTERVAL_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 2000


def _headline(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """EYE_IMAGING F1, precision, recall and the ECE of (resampled) predictions along the
    last axis, as :func:`metrics` computes them (0 where a ratio has nothing to divide by)."""
    pred, pos = p >= THRESHOLD, y > 0.5
    tp = (pred & pos).sum(-1)
    fp = (pred & ~pos).sum(-1)
    fn = (~pred & pos).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return np.stack([f1, precision, recall, expected_calibration_error(p, y)])


def intervals(probabilities: Sequence[float], labels: Sequence[int],
              title_only_mask: Sequence[bool] | None = None, seed: int = 0) -> dict[str, Any]:
    """95 % intervals of a labelled file's headline figures: what the same classifier
    could score on another file of the same kind and size, so that a target missed or met
    by a few records is read as such. EYE_IMAGING F1, precision, recall and ECE: a
    percentile bootstrap over records (``scipy.stats.bootstrap``, labels and probabilities
    resampled together); the recall on title-only eye imaging, a proportion of a few dozen
    records: the Wilson interval."""
    from scipy.stats import binomtest, bootstrap

    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(labels, dtype=float)
    out: dict[str, Any] = {"level": INTERVAL_LEVEL}
    if len(p) >= 2 and 0 < y.sum() < len(y):
        ci = bootstrap((p, y), lambda a, b, axis=-1: _headline(a, b), paired=True, vectorized=True,
                       n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=INTERVAL_LEVEL, method="percentile",
                       rng=np.random.default_rng(seed)).confidence_interval
        for i, name in enumerate(("eye_imaging_f1", "eye_imaging_precision", "eye_imaging_recall", "ece")):
            out[name] = [round(float(ci.low[i]), 4), round(float(ci.high[i]), 4)]
    if title_only_mask is not None:
        mask = np.asarray(title_only_mask, dtype=bool) & (y > 0.5)
        if mask.any():
            found = int((p[mask] >= THRESHOLD).sum())
            ci = binomtest(found, int(mask.sum())).proportion_ci(INTERVAL_LEVEL, method="wilson")
            out["title_only_recall"] = [round(float(ci.low), 4), round(float(ci.high), 4)]
    return out


def _summarize_runs(runs: list[dict]) -> dict[str, Any]:
    """Mean and standard deviation of the headline figures over repeated CV runs."""
    def stat(get):
        vals = np.array([get(r) for r in runs], dtype=float)
        return {"mean": round(float(vals.mean()), 4), "sd": round(float(vals.std()), 4)}

    return {
        "eye_imaging_f1": stat(lambda r: r["per_class"]["EYE_IMAGING"]["f1"]),
        "eye_imaging_precision": stat(lambda r: r["per_class"]["EYE_IMAGING"]["precision"]),
        "eye_imaging_recall": stat(lambda r: r["per_class"]["EYE_IMAGING"]["recall"]),
        "accuracy": stat(lambda r: r["accuracy"]),
        "ece": stat(lambda r: r["ece"]),
        "brier": stat(lambda r: r["brier"]),
    }


NEAR_DUPLICATE_COSINE = 0.9


def near_duplicate_groups(embeddings: np.ndarray, threshold: float = NEAR_DUPLICATE_COSINE) -> np.ndarray:
    """Group id per example: examples whose sentence embeddings have a cosine similarity
    above ``threshold`` (directly or through others) share a group. The built-in data
    holds series of near-identical texts (43 monthly "SuperDARN data in netCDF format"
    uploads, repeated positives); with ``grouped`` CV a series is never split between
    training and test folds."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    similar = csr_matrix(embeddings @ embeddings.T > threshold)
    return connected_components(similar, directed=False)[1]


def cv_splits(n_scored: int, n_extra: int, splits) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs over ``n_scored + n_extra`` examples: every fold of
    ``splits`` (indices into the first ``n_scored``) trains on its training part plus all
    ``n_extra`` extras (indices ``n_scored`` onwards) and is scored on its test part only,
    so the extras never count in a figure and the figure stays comparable with CV on the
    built-in examples alone."""
    extra = np.arange(n_scored, n_scored + n_extra)
    return [(np.concatenate([np.asarray(train), extra]).astype(int), np.asarray(test)) for train, test in splits]


def cross_validate(folds: int = 5, seeds: Sequence[int] = (42,), methods: Sequence[str] = METHODS,
                   progress: Callable[[str], None] | None = None, grouped: bool = False,
                   extras: bool = True) -> dict[str, Any]:
    """k-fold stratified CV of each method on the built-in examples (see module doc);
    ``grouped`` keeps near-duplicate examples in one fold (StratifiedGroupKFold). With
    ``extras`` (as the default model is built) the project's own training records
    (:func:`.data.extra_examples`) are added to every training fold and never scored."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline, make_union

    from .data import builtin_examples, extra_examples, file_examples
    from .encoder import Encoder
    from .evidence import POSITIVE, feature_matrix, file_targets, fit_files, read_records
    from .head import fit_embedding_head, fit_text_head, predict_text_head, predict_text_kinds, prepare_texts, specificity
    from .model import _backbone_path, _quiet_loading
    from .text import record_text

    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods: {sorted(unknown)}")
    say = progress or (lambda msg: logger.info("%s", msg))
    started = time.monotonic()
    _quiet_loading()
    ex = builtin_examples()
    extra = extra_examples() if extras else None
    n = len(ex)  # scored examples: the built-in ones, first
    texts = list(ex.texts) + (list(extra.texts) if extra else [])
    y_all = np.array(ex.labels + (extra.labels if extra else ()))
    kinds = list(ex.kinds) + (list(extra.kinds) if extra else [])
    y = y_all[:n]
    prepared = prepare_texts(texts)
    with_files = "text_head" in methods
    fx = file_examples() if with_files else None
    # as the default model is built: the text head on the quantized backbone, the embedding
    # head (and the near-duplicate groups) on the fp32 one EyeImagingClassifier runs
    encoder = Encoder(_backbone_path(), quantized=True)
    say(f"Encoding {len(texts)} examples with the frozen backbone")
    _, layers = encoder.encode(prepared)
    sentence = Encoder(_backbone_path()).encode(texts)[0] if ({"embedding_head", "embedding_head_uncalibrated"}
                                                              & set(methods) or grouped) else None
    if fx is not None:
        say(f"Encoding {len(fx)} records with files")
        f_records = list(fx.records)
        f_prepared = prepare_texts([record_text(r) for r in f_records])
        f_layers = encoder.encode(f_prepared)[1]
        f_features = feature_matrix(f_records)
        f_specificity = specificity(f_prepared)
        f_y = np.array(fx.labels)
        f_targets = np.array(file_targets(f_records, fx.labels))
        f_title_only = [title_only(r) for r in f_records]
    scored = list(methods) + (list(FILE_METHODS) if fx is not None else [])
    per_seed: dict[str, list[dict]] = {m: [] for m in scored}
    predictions: dict[str, list[list[float]]] = {m: [] for m in scored}
    groups = near_duplicate_groups(sentence[:n]) if grouped else None
    for seed in seeds:
        oof = {m: np.zeros(n) for m in methods}
        f_oof = {m: np.zeros(len(fx)) for m in FILE_METHODS} if fx is not None else {}
        if grouped:
            splits = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(texts[:n], y, groups)
        else:
            splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts[:n], y)
        f_splits = (list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(f_features, f_y))
                    if fx is not None else [None] * folds)
        for k, ((train, test), f_split) in enumerate(zip(cv_splits(n, len(texts) - n, splits), f_splits), 1):
            say(f"seed {seed}: fold {k}/{folds}")
            tr_texts = [texts[i] for i in train]
            te_texts = [texts[i] for i in test]
            tr_prep = [prepared[i] for i in train]
            te_prep = [prepared[i] for i in test]
            if {"text_head", "text_head_uncalibrated"} & set(methods):
                state = fit_text_head(tr_prep, layers[train], [kinds[i] for i in train],
                                      calibrate="text_head" in methods)
                if "text_head" in methods:
                    oof["text_head"][test] = predict_text_head(state, te_prep, layers[test])
                if "text_head_uncalibrated" in methods:
                    oof["text_head_uncalibrated"][test] = predict_text_head(state, te_prep, layers[test], calibrated=False)
                if fx is not None:
                    # the text head never trains on these records: every one is out of sample
                    f_train, f_test = f_split
                    # as the model is built: the file weights fitted on the full head's probabilities,
                    # the records then read as the classifier reads them (the quick head first)
                    p_kinds = predict_text_kinds(state, [f_prepared[i] for i in f_train], f_layers[f_train])
                    fitted = fit_files(p_kinds, f_features[f_train], f_targets[f_train],
                                       specificity=f_specificity[f_train])
                    reading, p = read_records(state, [f_prepared[i] for i in f_test], f_layers[f_test],
                                              f_features[f_test], fitted, f_specificity[f_test])
                    f_oof["file_examples_text"][f_test] = reading.kinds[:, POSITIVE]
                    f_oof["file_examples_combined"][f_test] = p
            if "embedding_head" in methods:
                oof["embedding_head"][test] = fit_embedding_head(sentence[train], y_all[train]).predict_proba(sentence[test])[:, 1]
            if "embedding_head_uncalibrated" in methods:
                head = fit_embedding_head(sentence[train], y_all[train], calibrate=False)
                oof["embedding_head_uncalibrated"][test] = head.predict_proba(sentence[test])[:, 1]
            if "tfidf_baseline" in methods:
                baseline = make_pipeline(
                    make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                               TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)),
                    LogisticRegression(C=10, class_weight="balanced", max_iter=5000),
                ).fit(tr_texts, y_all[train])
                oof["tfidf_baseline"][test] = baseline.predict_proba(te_texts)[:, 1]
        for m in methods:
            per_seed[m].append(metrics(oof[m], y))
            predictions[m].append([round(float(v), 6) for v in oof[m]])
        for m, values in f_oof.items():
            per_seed[m].append(metrics(values, f_y, title_only_mask=f_title_only))
            predictions[m].append([round(float(v), 6) for v in values])
    results = {}
    for m in scored:
        truth = f_y if m in FILE_METHODS else y
        mask = np.tile(f_title_only, len(seeds)) if m in FILE_METHODS else None
        pooled = metrics(np.concatenate([np.array(p) for p in predictions[m]]), np.tile(truth, len(seeds)),
                         title_only_mask=mask)
        results[m] = {"description": METHOD_TITLES[m], "summary": _summarize_runs(per_seed[m]),
                      "pooled": pooled, "per_seed": per_seed[m]}
    return {
        "kind": "cross-validation",
        "data": {"examples": len(y), "positives": int(y.sum()), "sha256": ex.digest(),
                 "training_extras": ({"count": len(extra), "positives": int(sum(extra.labels)),
                                      "sha256": extra.digest()} if extra else None),
                 "file_examples": ({"count": len(fx), "positives": int(sum(fx.labels))} if fx is not None else None)},
        "protocol": (f"StratifiedGroupKFold({folds}, shuffle=True, random_state=seed), groups of near-duplicate "
                     f"examples (sentence-embedding cosine > {NEAR_DUPLICATE_COSINE}: {len(set(groups))} groups)"
                     if grouped else f"StratifiedKFold({folds}, shuffle=True, random_state=seed)")
                    + f" for seed in {list(seeds)}"
                    + (f"; the {len(extra)} training extras added to every training fold, never scored" if extra else "")
                    + (f"; the {len(fx)} records with files split into the same number of folds: scored by the "
                       "fold's text head (which never trains on them) alone and combined with file-evidence "
                       "weights fitted on the other folds" if fx is not None else "")
                    + f"; label EYE_IMAGING when P >= {THRESHOLD}; "
                      f"ECE over {DEFAULT_BINS} equal-width bins",
        "grouped": grouped,
        "folds": folds,
        "seeds": list(seeds),
        "methods": results,
        "seconds": round(time.monotonic() - started, 1),
        "created_at": utcnow_iso(),
    }


def read_labelled(path: str | Path) -> tuple[list[dict], list[str]]:
    """Records of a JSON Lines file that carry a usable label, and a note for each line
    that was skipped."""
    records, skipped = [], []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                skipped.append(f"line {n}: not JSON ({exc})")
                continue
            if not isinstance(obj, dict):
                skipped.append(f"line {n}: not an object")
                continue
            label = parse_label(obj.get("label"))
            if label is None:
                skipped.append(f"line {n}: label {obj.get('label')!r} is neither EYE_IMAGING nor NEGATIVE")
                continue
            records.append({**obj, "_label": label, "_line": n})
    return records, skipped


def evaluate_file(classifier: Classifier, path: str | Path) -> dict[str, Any]:
    """The classifier on a labelled JSON Lines file: the text model alone (``prob_text``)
    and the decision (text and the record's files and archive listings, when it has
    them), each with the figures of :func:`metrics`."""
    started = time.monotonic()
    records, skipped = read_labelled(path)
    for note in skipped:
        logger.warning("%s: skipped %s", path, note)
    results = classifier.classify_records(records)
    y = [r["_label"] for r in records]
    mask = [title_only(r) for r in records]
    p_text = [r.get("prob_text", r["prob_eye_imaging"]) for r in results]
    p = [r["prob_eye_imaging"] for r in results]
    with_files = sum(1 for r in records if r.get("files") or r.get("file_names") or r.get("archives")
                     or r.get("file_types"))
    return {
        "kind": "labelled-file",
        "file": str(path),
        "model_id": classifier.model_id,
        "skipped": skipped,
        "records_with_files": with_files,
        "methods": {
            "text": {"description": f"classifier {classifier.model_id}: the text model alone",
                     "pooled": metrics(p_text, y, title_only_mask=mask),
                     "intervals": intervals(p_text, y, title_only_mask=mask)},
            "combined": {"description": f"classifier {classifier.model_id}: text and file evidence (the label)",
                         "pooled": metrics(p, y, title_only_mask=mask),
                         "intervals": intervals(p, y, title_only_mask=mask)},
        },
        "predictions": [
            {"line": r["_line"], "id": r.get("id") or r.get("source_id"), "title": r.get("title"),
             "label": LABELS[r["_label"]], "predicted": c["label"], "prob_eye_imaging": c["prob_eye_imaging"],
             "prob_text": c.get("prob_text"), "disagreement": c.get("disagreement"), "evidence": c.get("evidence")}
            for r, c in zip(records, results)
        ],
        "seconds": round(time.monotonic() - started, 1),
        "created_at": utcnow_iso(),
    }


# ------------------------------------------------------------------ reporting


def format_report(report: dict[str, Any]) -> str:
    lines = []
    if report["kind"] == "cross-validation":
        d = report["data"]
        lines.append(f"Cross-validation on envision-classifier's {d['examples']} built-in examples "
                     f"({d['positives']} EYE_IMAGING)")
        lines.append(f"Protocol: {report['protocol']}")
    else:
        lines.append(f"Evaluation of {report['model_id']} on {report['file']}: {len(report['predictions'])} records, "
                     f"{report.get('records_with_files', 0)} with files or archive listings")
        if report["skipped"]:
            lines.append(f"{len(report['skipped'])} lines skipped (see report.json)")
    for name, m in report["methods"].items():
        pooled = m["pooled"]
        lines += ["", f"== {name}: {m['description']}"]
        if "summary" in m and len(report.get("seeds", [])) > 1:
            s = m["summary"]
            lines.append(f"   mean over seeds: EYE_IMAGING F1 {s['eye_imaging_f1']['mean']:.3f} "
                         f"(sd {s['eye_imaging_f1']['sd']:.3f}), ECE {s['ece']['mean']:.3f}")
        lines.append(f"   {'class':<12} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}")
        for label, c in pooled["per_class"].items():
            lines.append(f"   {label:<12} {c['precision']:>9.3f} {c['recall']:>7.3f} {c['f1']:>6.3f} {c['support']:>8}")
        lines.append(f"   accuracy {pooled['accuracy']:.3f}   Brier {pooled['brier']:.4f}   ECE {pooled['ece']:.4f}")
        lines.append(f"   negatives at P >= {HARD_NEGATIVE_P}: {pooled.get('negatives_at_0.8', 0)} of {pooled.get('negatives', 0)}"
                     + (f"   recall on title-only eye imaging: {pooled['title_only_recall']:.3f} "
                        f"({pooled['title_only_eye_imaging']} records)" if pooled.get("title_only_recall") is not None
                        else ""))
        bounds = m.get("intervals") or {}
        shown = [(label, bounds[key]) for label, key in (("F1", "eye_imaging_f1"), ("precision", "eye_imaging_precision"),
                                                          ("recall", "eye_imaging_recall"), ("ECE", "ece"),
                                                          ("title-only recall", "title_only_recall")) if key in bounds]
        if shown:
            lines.append(f"   {bounds['level']:.0%} intervals (records resampled; title-only recall: Wilson): "
                         + ", ".join(f"{label} {lo:.3f} to {hi:.3f}" for label, (lo, hi) in shown))
        cm = pooled["confusion_matrix"]["rows_true_columns_predicted"]
        lines.append("   confusion matrix (rows true, columns predicted): "
                     f"NEGATIVE [{cm[0][0]} {cm[0][1]}]  EYE_IMAGING [{cm[1][0]} {cm[1][1]}]")
        lines.append(f"   reliability: {'bin':<11} {'n':>5} {'predicted':>9} {'observed':>9}")
        for row in pooled["reliability"]:
            lo, hi = row["bin"]
            lines.append(f"                {lo:.1f}-{hi:.1f}    {row['count']:>5} {row['mean_predicted']:>9.3f} "
                         f"{row['fraction_positive']:>9.3f}")
    return "\n".join(lines) + "\n"


def _plot(report: dict[str, Any], path: Path) -> bool:
    """A reliability diagram, when matplotlib is installed (it is not a dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    for name, m in report["methods"].items():
        rows = m["pooled"]["reliability"]
        ax.plot([r["mean_predicted"] for r in rows], [r["fraction_positive"] for r in rows], marker="o",
                label=f"{name} (ECE {m['pooled']['ece']:.3f})")
    ax.set_xlabel("predicted P(EYE_IMAGING)")
    ax.set_ylabel("observed fraction EYE_IMAGING")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """report.json, report.txt and, with matplotlib, reliability.png in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "report.json", report)
    atomic_write_bytes(out / "report.txt", format_report(report).encode("utf-8"))
    written = [out / "report.json", out / "report.txt"]
    if _plot(report, out / "reliability.png"):
        written.append(out / "reliability.png")
    return written
