"""The gate, the download queue, and the candidates a download run works on.

The gate (:func:`gate`, which :mod:`envision_spiders.selection` applies for ``scrapy
download``, ``scrapy post``, ``scrapy export-addf`` and the crawl's downloads): a record
that is a cross-source duplicate (``duplicate_of``) is never selected (its canonical
record is; a curator's decision applies to the whole group), nor one a curator rejected
(:mod:`envision_spiders.review`); one a curator accepted is, whatever the model says. Otherwise
its classification must say ``EYE_IMAGING`` with ``prob_eye_imaging >= threshold``, the
record must not wait for a curator (a curator marked it unsure, or its text and its
files disagree: ``disagreement``), and, when the step requires review
(``POST_REQUIRES_REVIEW``, ``DOWNLOAD_REQUIRES_REVIEW``), it must have been accepted.
The model's classification is read from ``record["classification"]`` (``label``,
``prob_eye_imaging``) or from the results format's top level (``model_label``, else
``label``, and ``prob_eye_imaging``); a record without one is never queued.

The queue: one small JSON file per record, ``data/downloads/.queue/{source}/{safe
id}.json``, written atomically. Queuing a record again rewrites the same file, so the
queue holds each record once however often a crawl sees it, and two processes (a crawl
queuing, ``scrapy download`` consuming) never corrupt each other. An entry is removed
when its record is complete (every file verified, or skipped for good); a record with
failed files stays queued for the next run.

Entry fields: ``source``, ``source_id``, ``label``, ``prob_eye_imaging``, ``threshold``
(the gate it passed), ``queued_at``, ``origin`` (``crawl`` or ``results``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from envision_spiders.storage import atomic_write_json, read_json, safe_id
from envision_spiders.textutil import utcnow_iso

logger = logging.getLogger(__name__)

EYE_IMAGING = "EYE_IMAGING"
QUEUE_DIR = ".queue"


def _get(record: Any, key: str) -> Any:
    """``record[key]`` for a dict or an ItemAdapter, None when absent."""
    try:
        return record.get(key)
    except (AttributeError, KeyError, TypeError):
        return None


def classification_of(record: Any) -> tuple[str | None, float | None]:
    """The model's (label, prob_eye_imaging) from ``record["classification"]`` or the top
    level (where results records keep the model's label as ``model_label`` when a
    curator's decision made ``label``)."""
    nested = _get(record, "classification")
    for holder in ((nested,) if isinstance(nested, Mapping) else ()) + (record,):
        label = _get(holder, "model_label") if holder is record else None
        label = label if label is not None else _get(holder, "label")
        if label is None:
            continue
        prob = _get(holder, "prob_eye_imaging")
        if isinstance(prob, bool) or not isinstance(prob, (int, float)):
            prob = None
        return (str(label), float(prob) if prob is not None else None)
    return None, None


# How ``gate`` says why not, for callers that count: the reason starts with one of these.
DUPLICATE = "duplicate of"
REJECTED = "rejected by"
WAITING = "waiting for a curator"


def gate(record: Any, threshold: float, decision: Any = None, requires_review: bool = False) -> tuple[bool, str]:
    """Whether a record passes the gate (see the module doc), and why not. ``decision``
    is the curator's decision standing for the record (a
    :class:`envision_spiders.review.Decision`, or None when there is none). A duplicate
    is told apart only among records that pass the label and the threshold (the
    funnel counts confident records as selected + duplicates)."""
    label, prob = classification_of(record)
    verdict = getattr(decision, "decision", None)
    if label is None and verdict is None:
        return False, "not classified"
    if verdict == "reject":
        return False, f"{REJECTED} {decision.curator} ({': '.join(x for x in (decision.code, decision.reason) if x)})"
    if verdict != "accept":  # a curator's accept passes whatever the model says
        if label != EYE_IMAGING:
            return False, f"label {label}"
        if prob is None:
            return False, "no prob_eye_imaging"
        if prob < threshold:
            return False, f"prob_eye_imaging {prob:.3f} below the threshold {threshold:.2f}"
    canonical = _get(record, "duplicate_of")
    if canonical:
        if isinstance(canonical, Mapping):
            canonical = f"{canonical.get('source')}:{canonical.get('source_id')}"
        return False, f"{DUPLICATE} {canonical}"
    if verdict == "accept":
        return True, ""
    if verdict == "unsure":
        return False, f"{WAITING}: {decision.curator} marked it unsure"
    if _get(record, "disagreement") is True or _get(_get(record, "classification") or {}, "disagreement") is True:
        return False, f"{WAITING}: its text and its files disagree"
    if requires_review:
        return False, f"{WAITING}: not reviewed yet"
    return True, ""


class DownloadQueue:
    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir) / "downloads" / QUEUE_DIR

    def path(self, source: str, source_id: str) -> Path:
        return self.root / safe_id(source) / f"{safe_id(source_id)}.json"

    def add(self, source: str, source_id: str, *, label: str | None, prob: float | None, threshold: float, origin: str) -> bool:
        """Queue a record (again); True when it was not queued before."""
        path = self.path(source, source_id)
        new = not path.exists()
        atomic_write_json(
            path,
            {
                "source": source,
                "source_id": source_id,
                "label": label,
                "prob_eye_imaging": prob,
                "threshold": threshold,
                "queued_at": utcnow_iso(),
                "origin": origin,
            },
        )
        return new

    def remove(self, source: str, source_id: str) -> None:
        self.path(source, source_id).unlink(missing_ok=True)

    def contains(self, source: str, source_id: str) -> bool:
        return self.path(source, source_id).exists()

    def entries(self, sources: Iterable[str] | None = None) -> list[dict[str, Any]]:
        wanted = {safe_id(s) for s in sources} if sources else None
        out: list[dict[str, Any]] = []
        if not self.root.is_dir():
            return out
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or (wanted is not None and folder.name not in wanted):
                continue
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if not entry.name.endswith(".json") or entry.name.startswith("."):
                    continue
                data = read_json(entry.path)
                if isinstance(data, dict) and data.get("source") and data.get("source_id") is not None:
                    out.append(data)
        return out


class ReadOnlyQueue(DownloadQueue):
    """The queue's entries for a run that must change nothing (``--dry-run``, exports)."""

    def add(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def remove(self, source: str, source_id: str) -> None:
        pass


def results_path(results_dir: str | Path, source: str) -> Path:
    return Path(results_dir) / f"{source}_eye_imaging.json"


def read_results(path: Path) -> list[dict[str, Any]]:
    """The classified records of a results file: a JSON list, or an object holding
    one under ``records`` / ``results``. A missing or broken file gives [] (logged)."""
    if not path.exists():
        return []
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        logger.error("Cannot read the results file %s: %s; its records are not downloaded this run", path, exc)
        return []
    if isinstance(data, dict):
        data = data.get("records") if isinstance(data.get("records"), list) else data.get("results")
    if not isinstance(data, list):
        logger.error("%s holds no list of records; its records are not downloaded this run", path)
        return []
    return [r for r in data if isinstance(r, dict) and r.get("source_id") is not None]


def sources_on_disk(data_dir: str | Path, results_dir: str | Path) -> list[str]:
    """Sources with a results file or queued records."""
    names = {p.name[: -len("_eye_imaging.json")] for p in Path(results_dir).glob("*_eye_imaging.json")}
    queue = Path(data_dir) / "downloads" / QUEUE_DIR
    if queue.is_dir():
        names.update(p.name for p in queue.iterdir() if p.is_dir())
    return sorted(n for n in names if n)
