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
# the eye word a short name is paired with, most telling first
EYE_PREFERENCE = {w: i for i, w in enumerate(
    "oct octa fundus retinal retina glaucoma cataract cornea corneal macular macula retinopathy optic ocular eye "
    "eyes ophthalmic ophthalmology choroid choroidal vessel vessels angiography tomography slit lamp".split())}


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
        if len(v.terms) == 1 and not set(v.found_by) - {"terms"}:
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
    """A name rather than a word: ``IDRiD``, ``LES-AV``, ``G1020``, ``PAPILA`` (not
    ``High-Resolution`` or ``Glaucoma``)."""
    for part in re.split(r"[-_]", word):
        letters = [c for c in part if c.isalpha()]
        upper = sum(c.isupper() for c in letters)
        if any(c.isdigit() for c in part) or upper >= 2 or any(c.isupper() for c in part[1:]):
            return True
    return False


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


def _words(text: str) -> list[str]:
    """Words as written (``LES-AV``, ``CHASE_DB1`` kept whole; ``Eye_diseases`` split)."""
    out = []
    for w in _ORIGINAL_WORD.findall(unicodedata.normalize("NFC", text)):
        out.extend([w] if "_" not in w or _acronym_like(w) else [p for p in w.split("_") if p])
    return out


def suggest_term(entry: Entry, terms: list[str]) -> str | None:
    """A search term that would find the entry: a name (an acronym-like word) or a new
    word of its title, first from the title, then from its aliases; a short or everyday
    one goes with an eye word of the same text (``Fundus HRF``). None when every word is
    covered and some term already matches the title."""
    covered = term_words(terms)
    existing = {" ".join(title_tokens(t)) for t in terms}
    candidates: list[tuple[bool, int, int, str]] = []
    for rank, text in enumerate([entry.title or entry.name, *entry.aliases]):
        original = _words(text)
        eye = min((w for w in original if _fold(w) in EYE_WORDS), key=lambda w: EYE_PREFERENCE.get(_fold(w), 99),
                  default=None)
        for pos, w in enumerate(original):
            f = _fold(w)
            if not f or f in STOPWORDS or f.isdigit() or set(title_tokens(w)) <= covered:
                continue
            long = len(f.replace(" ", "")) >= MIN_SINGLE_WORD and f not in COMMON_WORDS
            alone = _acronym_like(w) and long
            if alone:
                phrase = w
            elif eye and _fold(eye) == f:  # an eye word itself: alone only when specific ("cataract", not "eye")
                if len(f) < MIN_SINGLE_WORD:
                    continue
                phrase = w
            elif not eye:  # no eye word to pair it with: only a long word of the title itself
                if not long or rank:
                    continue
                phrase = w
            else:  # short or everyday: with an eye word of the same text, in its order
                phrase = " ".join([eye, w] if original.index(eye) < pos else [w, eye])
            candidates.append((not _acronym_like(w), rank, pos, phrase))
    for *_, phrase in sorted(candidates):
        if " ".join(title_tokens(phrase)) not in existing:
            return phrase
    if any(set(title_tokens(t)) <= set(title_tokens(entry.title or entry.name)) for t in terms):
        return None
    content = [w for w in _words(entry.title or entry.name) if _fold(w) not in STOPWORDS]
    return " ".join(content[:3]) if len(content) >= 2 else None
