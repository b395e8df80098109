"""Catalogue entries matched to saved records.

Matching goes from the surest evidence to the weakest, and stops at the first that
matches:

1. **DOI**: the entry's DOI (for DataCite and Dryad entries also their id) equals a
   record's DOI or Zenodo concept DOI, in any source (a Figshare dataset is also found
   through DataCite's record of its DOI); Figshare DOIs are compared without ``.vN``;
2. **source + id**: a record of the entry's source with that id (Zenodo: or that
   concept record);
3. **URL**: the landing pages are the same once scheme, ``www.``, a trailing ``/``,
   the query and Kaggle's ``/datasets/`` segment are set aside (a ``doi.org`` URL counts
   as its DOI);
4. **title**: a record of the entry's source whose title contains the entry's title
   or one of its aliases, word for word after case, accents and punctuation are folded
   (``Chákṣu: A glaucoma…`` is ``chaksu a glaucoma…``). Titles of other sources are
   listed as seen elsewhere, never counted as found: a name on another site is weak
   evidence.

An identifier given with ``id_confidence`` ``likely`` must name a record whose title
looks like the entry's (one of its phrases in the record's title, or half of their
words shared); otherwise the identifier is reported as suspect and the entry is matched
by title. A ``sure`` identifier is trusted, a differing title only noted.

The index holds a few small fields per record (no descriptions), so 65,000 records
cost a few tens of MB; title candidates come from an inverted word index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from envision_spiders.textutil import normalize_doi, strings

from .catalogue import Entry, title_tokens

_FIGSHARE_VERSION = re.compile(r"^(10\.6084/.+)\.v\d+$")
SIMILAR_JACCARD = 0.5


def doi_key(value: Any) -> str | None:
    doi = normalize_doi(value)
    if not doi:
        return None
    m = _FIGSHARE_VERSION.match(doi)
    return m.group(1) if m else doi


def url_key(value: Any) -> str | None:
    """A landing page in a comparable form (see the module doc); a DOI URL as ``doi:…``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    doi = doi_key(text) if re.match(r"^https?://(dx\.)?doi\.org/", text, re.IGNORECASE) else None
    if doi:
        return "doi:" + doi
    try:
        parts = urlsplit(text if "://" in text else "https://" + text)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    path = parts.path.rstrip("/")
    if host == "kaggle.com" and path.lower().startswith("/datasets/"):
        path = path[len("/datasets"):]
    if host == "zenodo.org":
        path = re.sub(r"^/record/", "/records/", path)
    return f"{host}{path.lower()}" if host else None


@dataclass
class View:
    """The fields of a saved record the recall check needs."""

    key: str
    source: str
    source_id: str
    title: str
    words: tuple[str, ...]
    doi: str | None
    url: str | None
    resource_type: str | None
    access_type: str | None
    label: str | None
    prob: float | None
    terms: list[str]
    found_by: list[str] = field(default_factory=list)  # channels that found it: terms, funder (provenance.found_by)
    concept: str | None = None  # Zenodo concept record id
    concept_doi: str | None = None


def view_of(record: Mapping[str, Any]) -> View | None:
    source, source_id = record.get("source"), record.get("source_id")
    if not isinstance(source, str) or source_id in (None, ""):
        return None
    c = record.get("classification") if isinstance(record.get("classification"), Mapping) else {}
    prov = record.get("provenance") if isinstance(record.get("provenance"), Mapping) else {}
    extra = record.get("extra") if isinstance(record.get("extra"), Mapping) else {}
    prob = c.get("prob_eye_imaging")
    title = record.get("title") if isinstance(record.get("title"), str) else ""
    doi = doi_key(record.get("doi")) or (doi_key(source_id) if source in ("datacite", "dryad") else None)
    return View(
        key=f"{source}:{source_id}",
        source=source,
        source_id=str(source_id),
        title=" ".join(title.split())[:300],
        words=title_tokens(title),
        doi=doi,
        url=url_key(record.get("url")),
        resource_type=record.get("resource_type") if isinstance(record.get("resource_type"), str) else None,
        access_type=record.get("access_type") if isinstance(record.get("access_type"), str) else None,
        label=c.get("label") if c.get("label") in ("EYE_IMAGING", "NEGATIVE") else None,
        prob=float(prob) if isinstance(prob, (int, float)) and not isinstance(prob, bool) else None,
        terms=strings(prov.get("search_terms")),
        found_by=strings(prov.get("found_by")),
        concept=str(extra["conceptrecid"]) if source == "zenodo" and extra.get("conceptrecid") not in (None, "") else None,
        concept_doi=doi_key(extra.get("conceptdoi")) if source == "zenodo" else None,
    )


def contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(words[i:i + n] == phrase for i in range(len(words) - n + 1))


def similar(entry: Entry, words: tuple[str, ...]) -> bool:
    """The record's title looks like the entry's (see the module doc)."""
    if any(contains(words, p) for p in entry.phrases):
        return True
    a, b = set(title_tokens(entry.title or entry.name)), set(words)
    return bool(a and b) and len(a & b) / len(a | b) >= SIMILAR_JACCARD


@dataclass
class Match:
    record: View | None = None
    by: str | None = None  # doi | source_id | url | title
    also: list[View] = field(default_factory=list)  # other records of the same evidence
    elsewhere: list[View] = field(default_factory=list)  # title matches in other sources (not counted)
    suspect: View | None = None  # the record a "likely" identifier named, whose title does not fit
    title_differs: bool = False  # a "sure" identifier's record has another title


class Index:
    def __init__(self, views: Iterable[View]) -> None:
        self.views: list[View] = list(views)
        self.by_doi: dict[str, list[int]] = {}
        self.by_id: dict[tuple[str, str], list[int]] = {}
        self.by_url: dict[str, list[int]] = {}
        self.by_word: dict[str, set[int]] = {}
        self.sources = {v.source for v in self.views}
        for i, v in enumerate(self.views):
            for d in {v.doi, v.concept_doi} - {None}:
                self.by_doi.setdefault(d, []).append(i)
            self.by_id.setdefault((v.source, v.source_id.lower()), []).append(i)
            if v.concept:
                self.by_id.setdefault((v.source, v.concept), []).append(i)
            if v.url:
                self.by_url.setdefault(v.url, []).append(i)
            for w in set(v.words):
                self.by_word.setdefault(w, set()).add(i)

    def _order(self, entry: Entry, idx: Iterable[int]) -> list[View]:
        """Own source first, then an exact title, then the shorter title, then the key."""
        phrase = title_tokens(entry.title or entry.name)
        views = [self.views[i] for i in dict.fromkeys(idx)]
        return sorted(views, key=lambda v: (v.source != entry.source, v.words != phrase, len(v.words), v.key))

    def by_title(self, entry: Entry) -> list[int]:
        found: set[int] = set()
        for phrase in entry.phrases:
            postings = sorted((self.by_word.get(w, set()) for w in set(phrase)), key=len)
            if not postings or not postings[0]:
                continue
            candidates = set.intersection(*postings)
            found |= {i for i in candidates if contains(self.views[i].words, phrase)}
        return sorted(found)

    def match(self, entry: Entry) -> Match:
        result = Match()
        evidence: list[tuple[str, list[int]]] = []
        dois = {d for d in (doi_key(entry.doi), doi_key(entry.id) if entry.source in ("datacite", "dryad") else None) if d}
        evidence.append(("doi", [i for d in sorted(dois) for i in self.by_doi.get(d, [])]))
        if entry.id:
            evidence.append(("source_id", self.by_id.get((entry.source, entry.id.lower()), [])))
        url = url_key(entry.url)
        if url:
            evidence.append(("url", self.by_doi.get(url[4:], []) if url.startswith("doi:") else self.by_url.get(url, [])))
        for by, idx in evidence:
            if not idx:
                continue
            views = self._order(entry, idx)
            if by == "url" and not entry.id and not entry.doi:
                pass  # a URL given without an identifier is the curator's identifier: trusted like one
            elif entry.id_confidence != "sure" and not any(similar(entry, v.words) for v in views):
                result.suspect = result.suspect or views[0]
                continue
            fitting = [v for v in views if similar(entry, v.words)] or views
            result.record, result.by = fitting[0], by
            result.also = [v for v in views if v is not fitting[0]]
            result.title_differs = not similar(entry, result.record.words)
            return result
        titled = self._order(entry, self.by_title(entry))
        own = [v for v in titled if v.source == entry.source]
        if own:
            result.record, result.by, result.also = own[0], "title", own[1:]
        result.elsewhere = [v for v in titled if v.source != entry.source]
        return result
