"""Which decision stands for a record, and what it means for the label.

* The latest decision recorded for a record stands; the earlier ones are its history.
  A ``withdraw`` takes back the decisions recorded on that record before it (and spread
  from it to its duplicates): none of them stands any more.
* A decision applies to the record's duplicates too (the members of its group in
  ``results/duplicates.json``: one dataset found in several sources): what stands for a
  record is the latest decision on it or on any record of its group, except that a
  ``mirror`` rejection stays on the copy it was made for (it says "this copy is a mirror",
  not "this dataset is not eye imaging").
* The curator's decision wins over the model's label: ``accept`` makes the label
  EYE_IMAGING and ``reject`` NEGATIVE (``label_source`` = ``curator``); ``unsure`` and no
  decision leave the model's label (``label_source`` = ``model``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .ledger import Decision, Ledger

EYE_IMAGING, NEGATIVE = "EYE_IMAGING", "NEGATIVE"
CURATOR, MODEL = "curator", "model"
LABEL_OF = {"accept": EYE_IMAGING, "reject": NEGATIVE}


def member_keys(group: Mapping[str, Any]) -> list[str]:
    """The ``source:id`` keys of a duplicate group (members as keys or as objects)."""
    out = []
    for m in group.get("members") or []:
        key = m if isinstance(m, str) else (m.get("key") if isinstance(m, Mapping) else None)
        if isinstance(key, str) and key not in out:
            out.append(key)
    return out


class Review:
    """The decisions of a ledger, read once, with the duplicate groups they spread over."""

    def __init__(self, decisions: Iterable[Decision], groups: Iterable[Mapping[str, Any]] = ()) -> None:
        self.decisions = list(decisions)
        self.history: dict[str, list[tuple[int, Decision]]] = {}
        for pos, d in enumerate(self.decisions):
            self.history.setdefault(d.key, []).append((pos, d))
        self.group_of: dict[str, tuple[str, ...]] = {}
        for g in groups:
            keys = tuple(member_keys(g))
            for k in keys:
                self.group_of.setdefault(k, keys)
        self.ids = {d.id for d in self.decisions}

    @classmethod
    def load(cls, data_dir: str | Path, results_dir: str | Path | None = None,
             groups: Iterable[Mapping[str, Any]] | None = None) -> Review:
        """The ledger under ``data_dir`` with the groups given, else those of
        ``results_dir/duplicates.json``."""
        if groups is None and results_dir is not None:
            from envision_spiders.duplicates import read_duplicate_groups

            groups = read_duplicate_groups(Path(results_dir))
        return cls(Ledger(data_dir).read(), groups or ())

    def __len__(self) -> int:
        return len(self.decisions)

    def own(self, key: str) -> list[Decision]:
        """The decisions recorded on this record, oldest first."""
        return [d for _, d in self.history.get(key, [])]

    def latest(self, key: str) -> Decision | None:
        h = self.history.get(key)
        return h[-1][1] if h else None

    def live(self, key: str) -> list[tuple[int, Decision]]:
        """(position, decision) of a record's own decisions not taken back: those after
        its last ``withdraw``."""
        h = self.history.get(key, [])
        last = max((i for i, (_, d) in enumerate(h) if d.decision == "withdraw"), default=-1)
        return h[last + 1:]

    def standing(self, key: str) -> Decision | None:
        """The decision that stands for a record: its own or one of its group's (see
        the module doc). ``standing(key).key != key`` when it was made on a duplicate."""
        best: tuple[int, Decision] | None = None
        for k in self.group_of.get(key, (key,)):
            for pos, d in self.live(k):
                if k != key and d.decision == "reject" and d.code == "mirror":
                    continue
                if best is None or pos > best[0]:
                    best = (pos, d)
        return best[1] if best else None

    def rejected(self, sources: Iterable[str]) -> list[str]:
        """Records of these sources with a decision of their own, on which a rejection
        stands (what download and post count as "rejected by curators")."""
        wanted = set(sources)
        return [k for k in self.history
                if k.partition(":")[0] in wanted and (d := self.standing(k)) is not None and d.decision == "reject"]


def effective_label(model_label: str | None, decision: Decision | None) -> tuple[str | None, str | None]:
    """(label, label_source): the curator's accept / reject wins over the model."""
    if decision is not None and decision.decision in LABEL_OF:
        return LABEL_OF[decision.decision], CURATOR
    return model_label, (MODEL if model_label else None)


def review_field(decision: Decision | None, key: str, review: Review) -> dict[str, Any] | None:
    """The ``review`` object of a results record: the standing decision, where it was made
    (``on``: the record itself or a duplicate) and how many decisions came before it."""
    if decision is None:
        return None
    return {
        "decision": decision.decision, "reason": decision.reason, "code": decision.code,
        "curator": decision.curator, "decided_at": decision.decided_at, "id": decision.id,
        "on": decision.key, "earlier": max(0, len(review.own(key)) - (1 if decision.key == key else 0)),
        "model_id": decision.model_id, "prob_eye_imaging": decision.prob_eye_imaging,
    }


def evidence_of(row: Mapping[str, Any]) -> tuple[list[dict[str, str]], bool]:
    """(evidence, disagreement) of a results record or a saved record: the classifier's
    reasons for and against its label and whether its text and its files disagree. Both
    may be absent (records classified before the classifier gave reasons)."""
    c = row.get("classification") if isinstance(row.get("classification"), Mapping) else {}
    raw = row.get("evidence") if row.get("evidence") is not None else c.get("evidence")
    evidence = []
    for e in raw if isinstance(raw, Sequence) and not isinstance(raw, str) else []:
        if isinstance(e, Mapping) and isinstance(e.get("reason"), str) and e.get("supports") in (EYE_IMAGING, NEGATIVE):
            evidence.append({"supports": e["supports"], "reason": e["reason"]})
    disagreement = row.get("disagreement") if row.get("disagreement") is not None else c.get("disagreement")
    return evidence, disagreement is True


class LiveReview:
    """A :class:`Review` for a long-running process (a crawl queuing downloads): read
    again whenever the ledger or ``duplicates.json`` changed on disk (one ``stat`` each
    per call)."""

    def __init__(self, data_dir: str | Path, results_dir: str | Path) -> None:
        self.data_dir, self.results_dir = Path(data_dir), Path(results_dir)
        self._paths = (Ledger(data_dir).path, self.results_dir / "duplicates.json")
        self._stamp: tuple | None = None
        self._review: Review | None = None

    def _stat(self) -> tuple:
        out = []
        for p in self._paths:
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def get(self) -> Review:
        stamp = self._stat()
        if self._review is None or stamp != self._stamp:
            self._review = Review.load(self.data_dir, self.results_dir)
            self._stamp = stamp
        return self._review
