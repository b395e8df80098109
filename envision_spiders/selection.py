"""Which records are downloaded and posted: one function for ``scrapy download``, the
downloads of a crawl with ``DOWNLOAD_ENABLED``, ``scrapy export-addf`` and ``scrapy post``.

A record is selected when its row in ``results/{source}_eye_imaging.json`` passes the
gate (:func:`envision_spiders.downloads.queue.gate`) with the decision the curators'
ledger holds for it (:mod:`envision_spiders.review`): EYE_IMAGING, ``prob_eye_imaging``
at or above the threshold, and no ``duplicate_of``; never when a curator rejected it,
whatever the model says when a curator accepted it, and, when the step requires review
(``POST_REQUIRES_REVIEW``, ``DOWNLOAD_REQUIRES_REVIEW``), only then. Those rows are rewritten by every
classification with the duplicates of every record on disk marked, so they are the only
place where "is this record a duplicate?" has an answer. The download queue is a list of
records to look at, never a verdict: a record queued during a crawl, before its
duplicates were known, is judged again here (the demo once downloaded 105 duplicates
because queued records were trusted as they had been queued).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envision_spiders.downloads.queue import REJECTED, WAITING, gate, read_results, results_path
from envision_spiders.review import Review

Key = tuple[str, str]

# the kind of each reason ``gate`` gives
DUPLICATE = "duplicate"
BELOW_THRESHOLD = "below_threshold"
NOT_EYE_IMAGING = "not_eye_imaging"
REJECTED_BY_CURATOR = "rejected"
AWAITING_REVIEW = "awaiting_review"


def reason_kind(why: str) -> str:
    if why.startswith("duplicate"):
        return DUPLICATE
    if "below the threshold" in why:
        return BELOW_THRESHOLD
    if why.startswith(REJECTED):
        return REJECTED_BY_CURATOR
    if why.startswith(WAITING):
        return AWAITING_REVIEW
    return NOT_EYE_IMAGING


@dataclass
class Selection:
    threshold: float
    rows: dict[Key, dict[str, Any]] = field(default_factory=dict)  # selected, in results order
    refused: dict[Key, str] = field(default_factory=dict)  # EYE_IMAGING rows that are not selected, and why
    counts: Counter = field(default_factory=Counter)  # selected / duplicate / below_threshold / ...

    def why_not(self, key: Key) -> str | None:
        """None when the record is selected, else why not ("no EYE_IMAGING row" when its
        results do not list it as EYE_IMAGING: not classified yet, or another label)."""
        if key in self.rows:
            return None
        return self.refused.get(key, "no EYE_IMAGING row in the results")


def select_rows(rows: Iterable[tuple[str, dict[str, Any]]], threshold: float,
                selection: Selection | None = None, review: Review | None = None,
                requires_review: bool = False) -> Selection:
    """The decision itself, on ``(source, row)`` pairs of the results (the review
    page's funnel counts with it too, so its figures are these records), with the
    curators' decisions of ``review`` (none when None)."""
    selection = selection or Selection(threshold)
    for source, row in rows:
        key = (str(row.get("source") or source), str(row["source_id"]))
        if key in selection.rows or key in selection.refused:
            continue
        decision = review.standing(f"{key[0]}:{key[1]}") if review is not None else None
        ok, why = gate(row, threshold, decision, requires_review)
        if ok:
            selection.rows[key] = row
            selection.counts["selected"] += 1
        else:
            selection.refused[key] = why
            selection.counts[reason_kind(why)] += 1
    return selection


def select_records(results_dir: str | Path, sources: Iterable[str], threshold: float, review: Review | None = None,
                   requires_review: bool = False) -> Selection:
    """The records of ``sources`` to download and post (see the module doc)."""
    return select_rows(((s, row) for s in sources for row in read_results(results_path(results_dir, s))), threshold,
                       review=review, requires_review=requires_review)
