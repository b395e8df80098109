"""The curators' decisions as training data, and what they change.

:func:`labelled_records` turns the ledger into labelled records; :func:`training_examples`
into the classifier's :class:`~envision_spiders.classifier.data.Examples`, which the
default model learns from beside its built-in examples (and whose sha256 is one of the
model's inputs: the model is rebuilt, with a new id, when the decisions change).

Which decisions teach what (the latest decision a record itself received; a duplicate
that only follows its group teaches nothing more):

* ``accept``: EYE_IMAGING (kind ``eye_imaging``);
* ``reject`` without a code or with ``not-eye``: NEGATIVE (kind ``negative``);
* ``reject`` with ``no-images``: NEGATIVE (kind ``other_eye_data``: about the eye, no images);
* ``reject`` with ``not-human``, ``mirror`` or ``restricted``, ``unsure`` and ``withdraw``: left out —
  they say nothing about what the record's text describes (an animal's retina, a copy,
  an access rule are still eye imaging).

A record that no longer exists is left out (and counted). Each example keeps the
record's text and its files (names, types, archive members), so a classifier that reads
file evidence can learn from them too; the text model sees the text as it sees any
record (:func:`envision_spiders.classifier.record_text`).

:func:`compare` is the evidence ``scrapy train-classifier`` prints: cross-validation on
the built-in examples with and without the decisions in every training fold, and how
well the model predicts the curators' decisions without them and (cross-validated)
with them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envision_spiders.storage import read_json, record_path

from .decisions import Review
from .ledger import Ledger

logger = logging.getLogger(__name__)

# (decision, code) -> (label, kind); None: left out
LESSONS: dict[tuple[str, str | None], tuple[str, str] | None] = {
    ("accept", None): ("EYE_IMAGING", "eye_imaging"),
    ("reject", None): ("NEGATIVE", "negative"),
    ("reject", "not-eye"): ("NEGATIVE", "negative"),
    ("reject", "no-images"): ("NEGATIVE", "other_eye_data"),
}
MEMBERS_KEPT = 50


def lesson(decision: str, code: str | None) -> tuple[str, str] | None:
    """(label, kind) a decision teaches, None when it teaches nothing (see the module doc)."""
    if decision == "accept":
        return LESSONS[("accept", None)]
    return LESSONS.get((decision, code))


def labelled_records(data_dir: str | Path) -> tuple[list[dict[str, Any]], Counter]:
    """(labelled records, why others were left out): one per record with a decision that
    teaches something, sorted by record, each with ``title``, ``description``,
    ``keywords``, ``file_names``, ``file_types``, ``archive_members``, ``label``,
    ``kind``, ``source``, ``source_id`` and the ``decision_id``."""
    review = Review(Ledger(data_dir).read())
    out, left_out = [], Counter()
    for key in sorted(review.history):
        d = review.latest(key)
        taught = lesson(d.decision, d.code)
        if taught is None:
            left_out[f"reject ({d.code})" if d.decision == "reject" else d.decision] += 1
            continue
        record = read_json(record_path(data_dir, d.source, d.source_id))
        if not isinstance(record, dict):
            left_out["record no longer on disk"] += 1
            continue
        members = [m for a in record.get("archives") or [] if isinstance(a, dict)
                   for m in a.get("members_sample") or [] if isinstance(m, str)]
        out.append({
            "source": d.source, "source_id": d.source_id, "decision_id": d.id,
            "title": record.get("title"), "description": record.get("description"), "keywords": record.get("keywords"),
            "file_names": record.get("file_names") or [], "file_types": record.get("file_types") or [],
            "archive_members": members[:MEMBERS_KEPT], "label": taught[0], "kind": taught[1],
        })
    return out, left_out


def training_examples(data_dir: str | Path):
    """The decisions of ``data_dir``'s ledger as classifier examples (empty when none
    teaches anything)."""
    return examples_of(labelled_records(data_dir)[0])


def examples_of(records: list[dict[str, Any]]):
    """Labelled records (:func:`labelled_records`) as classifier examples, composed like
    any record the model classifies (records without text are left out)."""
    from envision_spiders.classifier.data import Examples
    from envision_spiders.classifier.text import record_text

    kept = [(record_text(r), r) for r in records]
    kept = [(t, r) for t, r in kept if t]
    return Examples(tuple(t for t, _ in kept), tuple(int(r["label"] == "EYE_IMAGING") for _, r in kept),
                    tuple(r["kind"] for _, r in kept))


def describe(examples, left_out: Counter) -> str:
    positives = sum(examples.labels)
    text = (f"{len(examples)} curator decisions teach the model ({positives} EYE_IMAGING, "
            f"{len(examples) - positives} NEGATIVE)")
    if left_out:
        text += "; left out: " + ", ".join(f"{n} {why}" for why, n in sorted(left_out.items()))
    return text


# ------------------------------------------------------------------ with and without
def compare(curated, folds: int = 5, seed: int = 42, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Cross-validation of the default recipe (the calibrated text head) with and without
    the curators' examples ``curated`` (see the module doc). Slow: one model fit per fold
    and figure (about 5 minutes with 5 folds on two cores)."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    from envision_spiders.classifier.data import builtin_examples, extra_examples
    from envision_spiders.classifier.encoder import Encoder
    from envision_spiders.classifier.evaluate import cv_splits, metrics
    from envision_spiders.classifier.head import fit_text_head, predict_text_head, prepare_texts
    from envision_spiders.classifier.model import _backbone_path

    say = progress or (lambda msg: logger.info("%s", msg))
    started = time.monotonic()
    base, extra = builtin_examples(), extra_examples()
    n, n_extra, n_cur = len(base), len(extra), len(curated)
    # read as the default model reads them: rewritten by the field's lexicon
    texts = prepare_texts(list(base.texts) + list(extra.texts) + list(curated.texts))
    kinds = list(base.kinds) + list(extra.kinds) + list(curated.kinds)
    labels = np.array(base.labels + extra.labels + curated.labels)
    say(f"Encoding {len(texts)} examples with the frozen backbone")
    _, layers = Encoder(_backbone_path(), quantized=True).encode(texts)  # as the text head is built
    cur = np.arange(n + n_extra, n + n_extra + n_cur)

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        state = fit_text_head([texts[i] for i in train], layers[train], [kinds[i] for i in train])
        return predict_text_head(state, [texts[i] for i in test], layers[test])

    figures: dict[str, Any] = {}
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(n), labels[:n]))
    for name, with_curated in (("builtin_without", False), ("builtin_with", True)):
        oof = np.zeros(n)
        for k, (train, test) in enumerate(cv_splits(n, n_extra, splits), 1):
            say(f"built-in examples, {'with' if with_curated else 'without'} decisions: fold {k}/{folds}")
            oof[test] = fit_predict(np.concatenate([train, cur]) if with_curated else train, test)
        figures[name] = metrics(oof, labels[:n])
    say("curators' decisions, model without them")
    figures["decisions_without"] = metrics(fit_predict(np.arange(n + n_extra), cur), labels[cur])
    counts = np.bincount(labels[cur], minlength=2)
    k = min(folds, n_cur)
    if k >= 2:
        if counts.min() >= k:
            inner = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n_cur), labels[cur])
        else:  # too few of one kind to stratify
            inner = KFold(k, shuffle=True, random_state=seed).split(np.zeros(n_cur))
        oof = np.zeros(n_cur)
        for j, (train, test) in enumerate(inner, 1):
            say(f"curators' decisions, cross-validated with the others: fold {j}/{k}")
            oof[test] = fit_predict(np.concatenate([np.arange(n + n_extra), cur[train]]), cur[test])
        figures["decisions_with"] = metrics(oof, labels[cur])
    return {
        "kind": "curator-decisions",
        "protocol": (f"text head (the default model's recipe); built-in examples: StratifiedKFold({folds}, shuffle, "
                     f"seed {seed}), the {n_extra} project extras in every training fold, with or without the "
                     f"{n_cur} curator examples; on the decisions: the model trained on every built-in example and "
                     f"extra, without them, and cross-validated over the decisions ({k} folds) with the others"),
        "decisions": {"count": n_cur, "eye_imaging": int(counts[1]), "negative": int(counts[0]),
                      "sha256": curated.digest()},
        "figures": figures,
        "seconds": round(time.monotonic() - started, 1),
    }


def format_comparison(report: dict[str, Any]) -> str:
    def line(m: dict[str, Any]) -> str:
        e = m["per_class"]["EYE_IMAGING"]
        return (f"F1 {e['f1']:.3f}  precision {e['precision']:.3f}  recall {e['recall']:.3f}  "
                f"accuracy {m['accuracy']:.3f}  ECE {m['ece']:.3f}  (n={m['n']})")

    f, d = report["figures"], report["decisions"]
    lines = [f"Cross-validation with and without the curators' {d['count']} decisions "
             f"({d['eye_imaging']} EYE_IMAGING, {d['negative']} NEGATIVE); {report['protocol']}",
             "  on the built-in examples:",
             f"    without the decisions  {line(f['builtin_without'])}",
             f"    with the decisions     {line(f['builtin_with'])}",
             "  on the curators' decisions (does the model now agree with them?):",
             f"    model without them     {line(f['decisions_without'])}"]
    if "decisions_with" in f:
        lines.append(f"    with them (CV)         {line(f['decisions_with'])}")
    else:
        lines.append("    with them (CV)         too few decisions to cross-validate")
    return "\n".join(lines) + "\n"


def write_comparison(report: dict[str, Any], folder: Path) -> list[Path]:
    from envision_spiders.storage import atomic_write_bytes, atomic_write_json

    atomic_write_json(folder / "decisions-cv.json", report)
    atomic_write_bytes(folder / "decisions-cv.txt", format_comparison(report).encode("utf-8"))
    return [folder / "decisions-cv.json", folder / "decisions-cv.txt"]

