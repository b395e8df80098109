"""Curator review: the model proposes, a curator disposes, the model learns.

::

    ledger.py     data/review/decisions.jsonl: append-only, safe against kill and concurrent writers
    decisions.py  which decision stands for a record (latest wins, duplicates follow), the effective label
    pending.py    what waits for a curator, most useful first (``scrapy review list --pending``, the page)
    importing.py  decisions files exported by the review page (``scrapy review import``)
    training.py   the decisions as labelled examples for the default classifier

Curators decide with ``scrapy review accept|reject|unsure SOURCE:ID ...`` or on the review
page (exported to a file, then ``scrapy review import FILE``). The decisions are honoured
everywhere: ``results/`` records carry ``review`` and ``label_source``, the gate of
``scrapy download`` / ``scrapy post`` (:func:`envision_spiders.downloads.queue.gate`)
never selects a rejected record, and ``scrapy train-classifier`` learns from them.
"""

from .decisions import CURATOR, MODEL, Review, effective_label, evidence_of, review_field
from .ledger import (
    DECISIONS,
    REASON_CODES,
    Decision,
    DecisionError,
    Ledger,
    LedgerBusy,
    decision_from,
    parse_key,
)

__all__ = [
    "CURATOR", "DECISIONS", "MODEL", "REASON_CODES", "Decision", "DecisionError", "Ledger", "LedgerBusy", "Review",
    "decision_from", "effective_label", "evidence_of", "parse_key", "review_field",
]
