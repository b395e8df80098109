"""What waits for a curator, most useful first: ``scrapy review list --pending`` and the
"To review" table of the review page share this order.

A canonical record (duplicates follow it) waits when no accept or reject stands for it
(an ``unsure`` still waits) and it is, in this order of usefulness:

0. **new EYE_IMAGING**: labelled EYE_IMAGING by the model and not EYE_IMAGING in the
   previous report (neither it nor a duplicate): what the weekly post step would send
   once accepted;
1. **known dataset, labelled NEGATIVE**: a dataset of the reference catalogue the model
   labelled NEGATIVE (the recall check's ``review_queue`` in ``results/recall.json``,
   :mod:`envision_spiders.recall.check`): a miss, as a rule;
2. **borderline**: NEGATIVE with ``prob_eye_imaging`` in :data:`BORDERLINE`, where the
   model may have missed eye imaging;
3. **text and files disagree**: the classifier's text and file evidence point different
   ways (``disagreement``, from classifiers that give reasons);
4. **EYE_IMAGING, not reviewed**: the other EYE_IMAGING records nobody has decided yet.

Within a tier the record the model is least sure of (``prob_eye_imaging`` closest to
0.5) comes first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .decisions import EYE_IMAGING, NEGATIVE, Review, evidence_of
from .ledger import Decision

BORDERLINE = (0.3, 0.8)  # NEGATIVE records with prob_eye_imaging in this range are worth a look
TIERS = ("new EYE_IMAGING", "known dataset, labelled NEGATIVE", "borderline", "text and files disagree",
         "EYE_IMAGING, not reviewed")
RECALL_QUEUE_VERSION = 1  # the version of results/recall.json's review_queue this module reads


@dataclass
class Waiting:
    tier: int
    row: Mapping[str, Any]
    decision: Decision | None  # an "unsure" standing for it, else None

    @property
    def key(self) -> str:
        return f"{self.row.get('source')}:{self.row.get('source_id')}"

    @property
    def why(self) -> str:
        return TIERS[self.tier]


def _prob(row: Mapping[str, Any]) -> float | None:
    p = row.get("prob_eye_imaging")
    return float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) else None


def tier_of(row: Mapping[str, Any], verdict: str | None, new: bool, known: bool = False) -> int | None:
    """The tier of a results record (see the module doc) whose standing decision is
    ``verdict`` (accept, reject, unsure or None); ``known``: the recall check queued it
    (a catalogue dataset labelled NEGATIVE). None when it does not wait."""
    if row.get("duplicate_of") or verdict in ("accept", "reject"):
        return None
    label = row.get("model_label") if "model_label" in row else row.get("label")
    p = _prob(row)
    if label == EYE_IMAGING and new:
        return 0
    if known and label == NEGATIVE:
        return 1
    if label == NEGATIVE and p is not None and BORDERLINE[0] <= p <= BORDERLINE[1]:
        return 2
    if evidence_of(row)[1]:
        return 3
    if label == EYE_IMAGING:
        return 4
    return None


def catalogue_negatives(recall: Any) -> set[str]:
    """Keys of the recall check's review queue (``results/recall.json``: catalogue
    datasets found but labelled NEGATIVE); empty when there is none or it is of another
    version."""
    if not isinstance(recall, Mapping) or recall.get("review_queue_version") != RECALL_QUEUE_VERSION:
        return set()
    items = recall.get("review_queue")
    return {i["key"] for i in items if isinstance(i, Mapping) and isinstance(i.get("key"), str)} \
        if isinstance(items, list) else set()


def order(tier: int, row: Mapping[str, Any]) -> tuple:
    p = _prob(row)
    return (tier, abs(p - 0.5) if p is not None else 1.0, f"{row.get('source')}:{row.get('source_id')}")


def new_since(keys: Iterable[str], before: set[str] | None) -> bool:
    """New: none of ``keys`` (a record and its duplicates) was EYE_IMAGING in the previous
    report's snapshot ``before`` (None: there is no previous report, everything is new)."""
    return before is None or not set(keys) & before


def waiting(rows: Iterable[Mapping[str, Any]], review: Review, before: set[str] | None,
            known: set[str] = frozenset()) -> list[Waiting]:
    """The records of ``rows`` (results records) that wait for a curator, most useful first;
    ``known``: :func:`catalogue_negatives`."""
    out = []
    for row in rows:
        key = f"{row.get('source')}:{row.get('source_id')}"
        decision = review.standing(key)
        tier = tier_of(row, decision.decision if decision else None, new_since(review.group_of.get(key, (key,)), before),
                       key in known)
        if tier is not None:
            out.append(Waiting(tier, row, decision))
    out.sort(key=lambda w: order(w.tier, w.row))
    return out
