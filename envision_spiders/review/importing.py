"""Decisions files exported by the review page, and recording decisions into the ledger.

The page keeps a curator's choices in the browser and exports them as one JSON file::

    {"format": "envision-review-decisions", "version": 1, "exported_at": "…",
     "ledger": "<which data folder the page was made from>", "page": {"run_id": "…", "generated_at": "…"},
     "decisions": [{"id": "…", "source": "zenodo", "source_id": "123", "decision": "reject",
                    "reason": "…", "code": "not-eye", "curator": "alice", "decided_at": "…",
                    "based_on": "<id of the decision the page showed, or null>", "doi": "…",
                    "model_id": "…", "model_label": "EYE_IMAGING", "prob_eye_imaging": 0.97}, …]}

``scrapy review import FILE`` checks the whole file before it records anything (a
truncated or malformed file records nothing), then records each decision once (its id:
importing the same file again changes nothing). A decision is not recorded, and the
command exits non-zero, when its record no longer exists, or when another decision was
recorded for the record after the page was made (``based_on`` is not what stands now)
and says otherwise: two curators who decided differently at once; the message names
both, and ``scrapy review accept|reject`` decides again on purpose. A ``withdraw`` of a
record on which no decision stands (or only one made on a duplicate) is refused too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envision_spiders.storage import read_json, record_path

from .decisions import Review
from .ledger import Appended, Decision, DecisionError, Ledger, decision_from

FORMAT = "envision-review-decisions"
VERSION = 1
MAX_FILE_BYTES = 64 * 1024 * 1024


class ImportProblem(ValueError):
    """A decisions file that cannot be imported at all (one line: what and why)."""


def read_decisions_file(path: str | Path, curator: str) -> tuple[dict[str, Any], list[Decision]]:
    """(the file's header, its decisions), every decision checked; ``curator`` names
    decisions that carry no curator. Raises :class:`ImportProblem`."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImportProblem(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MB: not a decisions file")
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportProblem(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ImportProblem(f"{path} is not a decisions file (not UTF-8 text); nothing imported") from exc
    except ValueError as exc:
        raise ImportProblem(f"{path} is not a complete decisions file ({exc}); nothing imported: export it again "
                            "from the review page") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportProblem(f"{path} is not a decisions file of the review page (no \"format\": \"{FORMAT}\"); "
                            "nothing imported")
    if data.get("version") != VERSION:
        raise ImportProblem(f"{path} is a decisions file of version {data.get('version')!r}; this version reads "
                            f"version {VERSION}; nothing imported")
    items = data.get("decisions")
    if not isinstance(items, list):
        raise ImportProblem(f"{path} holds no list of decisions; nothing imported")
    decisions = []
    for n, item in enumerate(items, 1):
        try:
            d = decision_from({**item, "origin": "page"} if isinstance(item, Mapping) else item,
                              defaults={"curator": curator})
        except DecisionError as exc:
            what = f" ({item.get('source')}:{item.get('source_id')})" if isinstance(item, Mapping) else ""
            raise ImportProblem(f"{path}: decision {n}{what}: {exc}; nothing imported") from exc
        decisions.append(d)
    return {k: data.get(k) for k in ("exported_at", "ledger", "page")}, decisions


def model_fields(data_dir: str | Path, source: str, source_id: str) -> dict[str, Any] | None:
    """What the model says of a saved record (for the decision's record), None when the
    record does not exist."""
    record = read_json(record_path(data_dir, source, source_id))
    if not isinstance(record, dict):
        return None
    c = record.get("classification") if isinstance(record.get("classification"), dict) else {}
    return {"doi": record.get("doi"), "model_id": c.get("model_id"), "model_label": c.get("label"),
            "prob_eye_imaging": c.get("prob_eye_imaging")}


@dataclass
class Recorded:
    """The outcome of :func:`record`: what was written, what was there already, what
    could not be recorded (key, one-line message), and notes (decisions that replaced
    another curator's)."""

    appended: Appended
    missing: list[tuple[Decision, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [m for _, m in self.missing] + [m for _, m in self.appended.refused]


def record(data_dir: str | Path, decisions: Iterable[Decision], groups: Iterable[Mapping[str, Any]],
           *, from_page: bool) -> Recorded:
    """Append decisions to the ledger of ``data_dir``: records that do not exist are left
    out; a page's decision contradicting one recorded since the page was made is
    refused (``from_page``); a decision that replaces another curator's different one
    gets a note."""
    groups = list(groups)
    ready, missing = [], []
    for d in decisions:
        facts = model_fields(data_dir, d.source, d.source_id)
        if facts is None:
            missing.append((d, f"{d.key}: no such record under {Path(data_dir) / 'metadata'} (it may have been "
                               f"removed from its source); your {d.decision} was not recorded"))
            continue
        filled = {k: v for k, v in facts.items() if getattr(d, k) is None and v is not None}
        ready.append(decision_from({**d.as_json(), **filled}) if filled else d)
    notes: list[str] = []
    check = _checker(groups, from_page, notes)
    appended = Ledger(data_dir).append(ready, check)
    return Recorded(appended, missing, notes)


def _checker(groups: list, from_page: bool, notes: list[str]) -> Callable[[Decision, list[Decision]], str | None]:
    cache: dict[str, Any] = {"n": -1, "review": None}

    def check(d: Decision, current: list[Decision]) -> str | None:
        if cache["n"] != len(current):
            cache["review"], cache["n"] = Review(current, groups), len(current)
        standing = cache["review"].standing(d.key)
        if d.decision == "withdraw":
            if standing is None:
                return f"{d.key}: no decision stands for it; nothing to withdraw, nothing recorded"
            if standing.key != d.key:
                return (f"{d.key}: the decision that stands for it ({standing.describe()}) was made on its duplicate "
                        f"{standing.key}; withdraw it there: scrapy review withdraw {standing.key}")
        if standing is None or standing.decision == d.decision:
            return None
        if from_page and standing.id != d.based_on:
            return (f"{d.key}: {standing.describe()} after your page was made; your {d.decision} "
                    f"({d.curator}) was not recorded. To overrule it: scrapy review {d.decision} {d.key} "
                    f"--reason \"...\"")
        if standing.curator != d.curator:
            notes.append(f"{d.key}: was {standing.describe()}; {d.curator}'s {d.decision} stands now "
                         "(both are kept in the ledger)")
        return None

    return check
