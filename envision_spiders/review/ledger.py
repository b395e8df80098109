"""The curator decision ledger: ``data/review/decisions.jsonl``, append-only JSON Lines.

One line per decision, never rewritten or deleted::

    {"id": "…", "source": "zenodo", "source_id": "123", "doi": "10.5281/zenodo.123",
     "decision": "reject", "reason": "coronary OCT pullbacks", "code": "not-eye",
     "curator": "alice", "decided_at": "2026-07-08T10:12:03Z", "recorded_at": "…",
     "model_id": "envision-default@…", "model_label": "EYE_IMAGING", "prob_eye_imaging": 0.979,
     "origin": "cli", "based_on": null}

``decision`` is ``accept``, ``reject``, ``unsure`` or ``withdraw`` (the curator takes back
the decisions recorded on the record before it: it is one more line, the earlier ones
stay as history, and the model's label stands again); ``code`` one of :data:`REASON_CODES`
or null; ``model_*`` and ``prob_eye_imaging`` are what the model said when the curator
decided (the label the decision overrode); ``origin`` is ``cli`` or ``page`` (a file
exported by the review page and imported with ``scrapy review import``), ``based_on`` the
id of the decision the page showed for the record when the curator decided (how an
import tells a decision taken meanwhile by someone else, see :mod:`.importing`).

Safe against kill and concurrent writers (why hand-written: the format must stay plain
JSON Lines that a curator can read and grep):

* writers take an exclusive lock (``.decisions.lock``, filelock: a ``flock`` the kernel
  releases when a process dies) and, under it, read the ledger again, so a check such
  as "was this id imported already" sees every earlier append;
* each line goes to the file with one ``write`` on a descriptor opened with
  ``O_APPEND``, then the file is ``fsync``ed before the lock is released;
* a line cut short by a kill (or a full disk) has no newline: the next writer first ends
  it with one, so the cut line stays a single damaged line and the new decision starts a
  line of its own; readers skip a damaged line with a warning (and never need the lock).

The order of the lines is the order decisions were recorded; the latest line of a record
stands (:mod:`.decisions`), the earlier ones are its history.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from envision_spiders.textutil import parse_datetime, utcnow_iso

logger = logging.getLogger(__name__)

LEDGER_DIR = "review"
LEDGER_NAME = "decisions.jsonl"
LOCK_NAME = ".decisions.lock"
LOCK_TIMEOUT = 60.0  # seconds a writer waits for another one before giving up
DECISIONS = ("accept", "reject", "unsure", "withdraw")
# The reason codes of a decision (EyeDataHub's screening reasons, as this project uses them).
REASON_CODES = {
    "not-eye": "not eye imaging (another organ or no imaging of the eye)",
    "no-images": "about the eye, but holds no images (tables, code, questionnaires)",
    "not-human": "eye imaging of animals",
    "mirror": "a copy of a dataset held elsewhere",
    "restricted": "access is restricted or on request only",
}
ORIGINS = ("cli", "page")
MAX_REASON = 2000
MAX_NAME = 120
_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class DecisionError(ValueError):
    """A decision that cannot be recorded; the message says which field and why."""


class LedgerBusy(RuntimeError):
    """Another writer held the ledger longer than :data:`LOCK_TIMEOUT`."""


@dataclass(frozen=True)
class Decision:
    source: str
    source_id: str
    decision: str
    reason: str = ""
    code: str | None = None
    curator: str = ""
    decided_at: str = ""
    doi: str | None = None
    model_id: str | None = None
    model_label: str | None = None
    prob_eye_imaging: float | None = None
    origin: str = "cli"
    based_on: str | None = None
    id: str = ""
    recorded_at: str | None = None

    @property
    def key(self) -> str:
        return f"{self.source}:{self.source_id}"

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: out[k] for k in ("id", "source", "source_id", "doi", "decision", "reason", "code", "curator",
                                    "decided_at", "recorded_at", "model_id", "model_label", "prob_eye_imaging",
                                    "origin", "based_on")}

    def describe(self) -> str:
        """``rejected by alice on 2026-07-08 (not-eye: coronary OCT)``."""
        verb = {"accept": "accepted", "reject": "rejected", "unsure": "marked unsure",
                "withdraw": "decision withdrawn"}[self.decision]
        why = ": ".join(x for x in (self.code or "", self.reason) if x)
        return f"{verb} by {self.curator or 'a curator'} on {self.decided_at[:10]}" + (f" ({why})" if why else "")


def new_id() -> str:
    return uuid.uuid4().hex


def _text(obj: Mapping[str, Any], name: str, limit: int, *, required: bool = False) -> str:
    value = obj.get(name)
    if value is None or value == "":
        if required:
            raise DecisionError(f"{name} is missing")
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise DecisionError(f"{name} must be text, not {type(value).__name__}")
    text = " ".join(str(value).split())
    if len(text) > limit:
        raise DecisionError(f"{name} is longer than {limit} characters")
    return text


def parse_key(text: str) -> tuple[str, str]:
    """``SOURCE:ID`` -> (source, id); the id may hold ``/`` and further ``:``."""
    source, sep, source_id = str(text).strip().partition(":")
    if not sep or not source or not source_id or not re.fullmatch(r"[a-z][a-z0-9_-]*", source):
        raise DecisionError(f"{text!r} is not a record id of the form SOURCE:ID (e.g. zenodo:1234567)")
    return source, source_id


def decision_from(obj: Any, *, defaults: Mapping[str, Any] | None = None) -> Decision:
    """A validated :class:`Decision` from a JSON object (a ledger line, a line of a page's
    decisions file, the options of ``scrapy review``); ``defaults`` fill fields the object
    lacks. Raises :class:`DecisionError`."""
    if not isinstance(obj, Mapping):
        raise DecisionError(f"a decision must be a JSON object, not {type(obj).__name__}")
    obj = {**(defaults or {}), **{k: v for k, v in obj.items() if v is not None and v != ""}}
    source = _text(obj, "source", 40, required=True)
    source_id = _text(obj, "source_id", 500, required=True)
    parse_key(f"{source}:{source_id}")
    decision = obj.get("decision")
    if decision not in DECISIONS:
        raise DecisionError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    code = obj.get("code") or None
    if code is not None and code not in REASON_CODES:
        raise DecisionError(f"reason code {code!r} is not one of {', '.join(REASON_CODES)}")
    if code is not None and decision == "withdraw":
        raise DecisionError("a withdrawal takes no reason code (--reason TEXT says why)")
    reason = _text(obj, "reason", MAX_REASON)
    if decision == "reject" and not reason and not code:
        raise DecisionError("a rejection needs a reason (--reason TEXT) or a reason code (--code CODE)")
    curator = _text(obj, "curator", MAX_NAME, required=True)
    decided_at = obj.get("decided_at") or utcnow_iso()
    if not isinstance(decided_at, str) or parse_datetime(decided_at) is None:
        raise DecisionError(f"decided_at {decided_at!r} is not a date and time")
    ident = obj.get("id") or new_id()
    if not isinstance(ident, str) or not _ID.match(ident):
        raise DecisionError(f"id {ident!r} is not a decision id (8 to 64 letters, digits, - or _)")
    based_on = obj.get("based_on") or None
    if based_on is not None and (not isinstance(based_on, str) or not _ID.match(based_on)):
        raise DecisionError(f"based_on {based_on!r} is not a decision id")
    prob = obj.get("prob_eye_imaging")
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not math.isfinite(prob) or not 0 <= prob <= 1:
        prob = None
    origin = obj.get("origin") if obj.get("origin") in ORIGINS else "cli"
    model_label = obj.get("model_label") if obj.get("model_label") in ("EYE_IMAGING", "NEGATIVE") else None
    return Decision(
        source=source, source_id=source_id, decision=decision, reason=reason, code=code, curator=curator,
        decided_at=decided_at, doi=_text(obj, "doi", 300) or None, model_id=_text(obj, "model_id", 200) or None,
        model_label=model_label, prob_eye_imaging=float(prob) if prob is not None else None, origin=origin,
        based_on=based_on, id=ident, recorded_at=obj.get("recorded_at") if isinstance(obj.get("recorded_at"), str) else None,
    )


@dataclass
class Appended:
    """What :meth:`Ledger.append` did with each decision it was given."""

    written: list[Decision]
    known: list[Decision]  # an id already in the ledger: nothing written (importing twice)
    refused: list[tuple[Decision, str]]  # the check said no, with its message


class Ledger:
    def __init__(self, data_dir: str | Path) -> None:
        self.folder = Path(data_dir) / LEDGER_DIR
        self.path = self.folder / LEDGER_NAME
        self.damaged: list[int] = []  # line numbers skipped by the last read()

    @property
    def identity(self) -> str:
        """Which data folder's ledger this is, as a short name (the review page keeps a
        curator's choices in the browser under it, and its exported file carries it)."""
        return hashlib.sha256(str(self.folder.resolve()).encode("utf-8")).hexdigest()[:16]

    def read(self) -> list[Decision]:
        """Every decision in the order recorded; damaged lines (a write cut short, a hand
        edit) are skipped with one warning each and listed in ``damaged``."""
        self.damaged = []
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return []
        out: list[Decision] = []
        lines = data.split(b"\n")
        for n, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                out.append(decision_from(json.loads(raw.decode("utf-8"))))
            except (ValueError, DecisionError) as exc:
                self.damaged.append(n)
                torn = n == len(lines)  # no newline after it: a write that was cut short
                logger.warning("%s line %d is %s; skipped (%s)", self.path, n,
                               "cut short (a write was interrupted)" if torn else "damaged", str(exc)[:200])
        return out

    def append(self, decisions: Iterable[Decision],
               check: Callable[[Decision, list[Decision]], str | None] | None = None) -> Appended:
        """Append decisions (one line each) under the writers' lock. A decision whose id is
        in the ledger already is left out (``known``); ``check(decision, ledger)`` (the
        ledger as read under the lock, with the decisions written so far by this call) may
        refuse one with a message. Raises :class:`LedgerBusy` or OSError (nothing
        half-written stays in the way of the next writer)."""
        from filelock import FileLock, Timeout

        decisions = list(decisions)
        result = Appended([], [], [])
        if not decisions:
            return result
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(self.folder / LOCK_NAME), timeout=LOCK_TIMEOUT):
                current = self.read()
                ids = {d.id for d in current}
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    self._end_torn_line(fd)
                    for d in decisions:
                        if d.id in ids:
                            result.known.append(d)
                            continue
                        problem = check(d, current) if check else None
                        if problem:
                            result.refused.append((d, problem))
                            continue
                        d = replace(d, recorded_at=utcnow_iso())
                        _write_all(fd, (json.dumps(d.as_json(), ensure_ascii=False) + "\n").encode("utf-8"))
                        ids.add(d.id)
                        current.append(d)
                        result.written.append(d)
                    if result.written:
                        os.fsync(fd)
                finally:
                    os.close(fd)
        except Timeout as exc:
            raise LedgerBusy(f"{self.path} is locked by another `scrapy review` for more than {LOCK_TIMEOUT:.0f} s; "
                             "nothing was recorded, try again") from exc
        return result

    def _end_torn_line(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if not size:
            return
        with open(self.path, "rb") as fh:
            fh.seek(size - 1)
            last = fh.read(1)
        if last != b"\n":
            logger.warning("%s ends with a line cut short (an interrupted write); it is kept as it is and "
                           "skipped by readers", self.path)
            _write_all(fd, b"\n")


def _write_all(fd: int, data: bytes) -> None:
    """One ``write`` for the whole line as a rule (O_APPEND puts it at the end in one
    piece); the loop only covers a short write, which a full disk can cause."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
