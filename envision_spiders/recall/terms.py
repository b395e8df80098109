"""Search terms that earn their place, and terms for catalogue entries no term finds.

**Contribution.** ``provenance.search_terms`` lists every term that ever found a record
(the union over runs). A record is *unique* to a term when that term is the only one in
the list and no other channel (``provenance.found_by``, e.g. the DataCite funder search)
found it: without the term, the crawl would not have it. Each recall check keeps a
snapshot per term (records found, unique records, unique EYE_IMAGING records, the unique
records' keys) in the run's history file; a term with no unique record in each of its
last ``IDLE_RUNS`` snapshots *adds nothing*, and the page and the log name it. A term
whose unique records are all NEGATIVE is named too: it brings records, not eye images.

**Coverage of a missed entry.** A search finds a record when every word of the term is
in its text. For a catalogue entry no record matched, the check lists the words of its
title (and aliases) that no search term holds, the terms whose words are all in its
title (they *should* have found it: the record's real title differs, the source ranks it
out of reach, or it is not there), and suggests a term: the dataset's own name, paired
with an eye word of its title when the name alone is short or an everyday word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from .catalogue import COMMON_WORDS, MIN_SINGLE_WORD, Entry, title_tokens
from .match import View

IDLE_RUNS = 3  # snapshots in a row without a unique record before a term is named
UNIQUE_KEYS_KEPT = 200  # keys of unique records kept per term in a snapshot (the page shows a few)

STOPWORDS = frozenset(
    "a an and are as at based by de del for from in into is its of on or the to using via with within "
    "dataset datasets data database databases set images image".split()
)
EYE_WORDS = frozenset(
    "retina retinal fundus oct octa ophthalmic ophthalmology eye eyes ocular macula macular optic cornea corneal "
    "cataract glaucoma retinopathy choroid choroidal vessel vessels slit lamp angiography tomography".split()
)
_ORIGINAL_WORD = re.compile(r"[^\W_]+(?:[-_][^\W_]+)*")


def term_words(terms: Iterable[str]) -> set[str]:
    return {w for t in terms for w in title_tokens(t)}


def contributions(views: Iterable[View], terms: list[str]) -> dict[str, dict[str, Any]]:
    """Per term: ``found`` (records it found), ``unique`` (records no other term or
    channel found), ``unique_eye_imaging``, ``unique_keys`` (sorted, the first
    UNIQUE_KEYS_KEPT). Terms of records that are not in ``terms`` (an older term list)
    are counted too, under their own name."""
    out: dict[str, dict[str, Any]] = {t: {"found": 0, "unique": 0, "unique_eye_imaging": 0, "unique_keys": []}
                                      for t in terms}
    for v in views:
        for t in v.terms:
            row = out.setdefault(t, {"found": 0, "unique": 0, "unique_eye_imaging": 0, "unique_keys": [],
                                     "retired": True})
            row["found"] += 1
        if len(v.terms) == 1 and not v.found_by:
            row = out[v.terms[0]]
            row["unique"] += 1
            row["unique_eye_imaging"] += v.label == "EYE_IMAGING"
            row["unique_keys"].append(v.key)
    for row in out.values():
        row["unique_keys"] = sorted(row["unique_keys"])[:UNIQUE_KEYS_KEPT]
    return out


def idle_terms(current: Mapping[str, Mapping[str, Any]], history: list[Mapping[str, Any]],
               runs: int = IDLE_RUNS) -> dict[str, int]:
    """Terms of the current list without a unique record in this snapshot and the ones
    before it, ``runs`` in a row at least: term -> how many snapshots in a row."""
    out = {}
    for term, row in current.items():
        if row.get("retired") or row.get("unique"):
            continue
        streak = 1
        for snap in history:  # newest first
            past = (snap.get("terms") or {}).get(term) if isinstance(snap, Mapping) else None
            if not isinstance(past, Mapping) or past.get("unique"):
                break
            streak += 1
        if streak >= runs:
            out[term] = streak
    return out


def _fold(word: str) -> str:
    return " ".join(title_tokens(word))


def _acronym_like(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    upper = sum(c.isupper() for c in letters)
    return any(c.isdigit() for c in word) or upper >= 2 or (0 < upper < len(letters) and not word[0].isupper())


def coverage(entry: Entry, terms: list[str]) -> dict[str, Any]:
    """Why the terms may miss a catalogue entry (see the module doc)."""
    covered = term_words(terms)
    texts = [entry.title or entry.name, *entry.aliases]
    words = [w for t in texts for w in title_tokens(t)]
    content = list(dict.fromkeys(w for w in words if w not in STOPWORDS and not w.isdigit() and len(w) > 1))
    entry_words = set(words)
    matching = [t for t in terms if set(title_tokens(t)) and set(title_tokens(t)) <= entry_words]
    return {
        "uncovered_words": [w for w in content if w not in covered],
        "matching_terms": matching,
        "suggested_term": suggest_term(entry, terms),
    }


def suggest_term(entry: Entry, terms: list[str]) -> str | None:
    """A search term that would find the entry by its title (its words are all in it)."""
    covered = term_words(terms)
    existing = {" ".join(title_tokens(t)) for t in terms}
    title = unicodedata.normalize("NFC", entry.title or entry.name)
    original = _ORIGINAL_WORD.findall(title)
    eye = next((w for w in original if _fold(w) in EYE_WORDS), None)
    content = [w for w in original if _fold(w) and _fold(w) not in STOPWORDS and not _fold(w).isdigit()]
    new = [w for w in content if not set(title_tokens(w)) <= covered]
    candidates: list[str] = []
    for w in sorted(new, key=lambda w: (not _acronym_like(w), original.index(w))):
        f = _fold(w)
        alone = _acronym_like(w) and len(f.replace(" ", "")) >= MIN_SINGLE_WORD and f not in COMMON_WORDS
        if alone or not eye or _fold(eye) == f:
            candidates.append(w)
        else:  # short or everyday: with an eye word of the title, in the title's order
            pair = [eye, w] if original.index(eye) < original.index(w) else [w, eye]
            candidates.append(" ".join(pair))
    if not candidates and len(content) >= 2:
        candidates.append(" ".join(content[:3]))
    for c in candidates:
        if " ".join(title_tokens(c)) not in existing:
            return c
    return None
