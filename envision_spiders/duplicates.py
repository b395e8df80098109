"""Records of different sources that are the same dataset.

DataCite indexes the DOIs of Zenodo, Figshare and Dryad, so one dataset arrives two or
three times; Zenodo keeps one record per version under a concept; Figshare versions
its DOIs (``.v1``, ``.v2``); Kaggle users re-upload academic datasets. Records are
joined (union-find) when

* ``doi``: their normalised DOIs are equal (``datacite-hosting`` when one of the two is
  a DataCite record whose hosting repository, ``extra.hosting_repository``, is the other
  record's source);
* ``relation:<type>``: one names the other (or both name the same DOI) in
  ``related_identifiers`` with a version relation: IsIdenticalTo, IsVersionOf,
  HasVersion, and Zenodo's IsNewVersionOf / IsPreviousVersionOf between versions;
* ``zenodo-concept``: they share ``extra.conceptrecid``, or one's DOI is the other's
  ``extra.conceptdoi``;
* ``figshare-version``: their Figshare DOIs are equal once the version suffix ``.vN``
  is dropped (Figshare records, DataCite records hosted by Figshare, and any DOI of
  the ``10.6084/m9.figshare.`` form);
* ``near-duplicate``: for mirrors that share no identifier (a Kaggle re-upload), the
  word 3-shingles of title + description have a Jaccard similarity of at least
  ``NEAR_JACCARD``. Candidates come from MinHash LSH (datasketch), so 40,000 records
  cost seconds, not the 800 million comparisons of a pairwise loop; each candidate
  pair is then checked on its exact shingle sets. Only records of different sources
  are joined this way (a source's own versions are joined by identifiers, and series
  such as monthly radar uploads share almost all their text), titles that both
  carry numbers must carry the same ones ("... 2019" is not "... 2020"), and the
  numbers written as words of one text must all be in the other (a copy may add a
  sentence, not change "1,200 eyes" into "80 eyes": templated records of different
  datasets share most of their words but not their counts). A text whose LSH query
  returns more than ``MAX_CANDIDATES`` records is boilerplate shared by many records (a
  template, a series), not a mirror: it is neither joined by this rule nor added to the
  index, which keeps the work linear however large such a family grows (the number is
  logged). A pair already in one group is not compared again.

The canonical record of a group is the one on the hosting repository (Zenodo,
Figshare, Dryad, OSF), else DataCite's, else a mirror's (Kaggle), else a grant's; among
equals the newest (the latest version, by its published or created date), then the
smallest key. This module is pure:
records in, groups out (and one log line about boilerplate texts).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from envision_spiders.storage import read_json
from envision_spiders.textutil import normalize_doi, parse_datetime, strings

# Lower is preferred as the canonical record of a group.
SOURCE_TIER = {"zenodo": 0, "figshare": 0, "dryad": 0, "osf": 0, "datacite": 1, "kaggle": 2, "nei": 3}
OTHER_TIER = 2
# DataCite's names, by their lower-case form (APIs differ in case)
VERSION_RELATIONS = {r.lower(): r for r in ("IsIdenticalTo", "IsVersionOf", "HasVersion", "IsNewVersionOf",
                                            "IsPreviousVersionOf")}
NEAR_JACCARD = 0.6  # exact Jaccard of word 3-shingles for a near-duplicate
LSH_THRESHOLD = 0.5  # candidates (a little below NEAR_JACCARD: MinHash is an estimate)
# Recall over precision in the LSH bands (30 bands of 4 rows with 128 permutations): a
# pair at Jaccard 0.6 becomes a candidate with p = 0.98, at 0.75 with p > 0.9999; the
# extra candidates cost one exact set comparison each.
LSH_WEIGHTS = (0.2, 0.8)  # (false positive, false negative)
NUM_PERM = 128
SHINGLE = 3
MIN_SHINGLES = 8  # shorter texts ("Dataset", "Images") never count as near-duplicates
MAX_TEXT = 4000  # characters of title + description used for shingles
# A mirror has a few copies (a DataCite record, a Kaggle re-upload or two); a text with
# more near-duplicate candidates than this is a template or a series (see the module doc).
MAX_CANDIDATES = 50

logger = logging.getLogger(__name__)

_FIGSHARE_VERSION = re.compile(r"^(?P<base>.+)\.v\d+$")
_WORD = re.compile(r"[a-z0-9]+")
_NUMBER = re.compile(r"\d+")
_NUMBER_WORD = re.compile(r"(?<![\w.,])\d[\d,.]*(?![\w])")


def record_key(record: Mapping[str, Any]) -> str:
    return f"{record.get('source')}:{record.get('source_id')}"


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[rb] = ra
        return True


def _extra(record: Mapping[str, Any]) -> Mapping[str, Any]:
    extra = record.get("extra")
    return extra if isinstance(extra, Mapping) else {}


def _hosting(record: Mapping[str, Any]) -> str | None:
    host = _extra(record).get("hosting_repository")
    return host.lower() if isinstance(host, str) else None


def _is_figshare(record: Mapping[str, Any], doi: str) -> bool:
    return record.get("source") == "figshare" or _hosting(record) == "figshare" or ".figshare." in doi


def _identifier_keys(record: Mapping[str, Any]) -> list[tuple[tuple[str, str], str]]:
    """(key, rule) pairs: records that emit the same key are the same dataset."""
    keys: list[tuple[tuple[str, str], str]] = []
    doi = normalize_doi(record.get("doi"))
    if doi:
        keys.append((("doi", doi), "doi"))
        m = _FIGSHARE_VERSION.match(doi)
        if _is_figshare(record, doi):
            keys.append((("figshare", m.group("base") if m else doi), "figshare-version"))
    for rel in record.get("related_identifiers") or []:
        if not isinstance(rel, Mapping):
            continue
        relation = VERSION_RELATIONS.get(str(rel.get("relation") or "").lower())
        target = normalize_doi(rel.get("identifier"))
        if target and relation:
            keys.append((("doi", target), f"relation:{relation}"))
    extra = _extra(record)
    if record.get("source") == "zenodo":
        concept = extra.get("conceptrecid")
        if concept not in (None, ""):
            keys.append((("zenodo-concept", str(concept)), "zenodo-concept"))
        concept_doi = normalize_doi(extra.get("conceptdoi"))
        if concept_doi:
            keys.append((("doi", concept_doi), "zenodo-concept"))
    return keys


def _shingles(record: Mapping[str, Any]) -> set[str]:
    text = f"{record.get('title') or ''} {record.get('description') or ''}"[:MAX_TEXT].lower()
    words = _WORD.findall(text)
    return {" ".join(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def _title_numbers(record: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(n.lstrip("0") or "0" for n in _NUMBER.findall(str(record.get("title") or "")))


def _text_numbers(record: Mapping[str, Any]) -> frozenset[str]:
    """Numbers written as words in title + description ("1,200", "3.5"; not the 1 of "T1")."""
    text = f"{record.get('title') or ''} {record.get('description') or ''}"[:MAX_TEXT]
    return frozenset(n.rstrip(".,").replace(",", "") for n in _NUMBER_WORD.findall(text))


def _same_numbers(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    ta, tb = _title_numbers(a), _title_numbers(b)
    if ta and tb and ta != tb:
        return False
    na, nb = _text_numbers(a), _text_numbers(b)
    return na <= nb or nb <= na


def near_duplicate_pairs(
    records: Sequence[Mapping[str, Any]],
    joined: Callable[[int, int], bool] | None = None,
    skipped: list[int] | None = None,
) -> Iterator[tuple[int, int, float]]:
    """Index pairs of records of different sources whose texts are near-duplicates, with
    their exact Jaccard similarity, as they are found. ``joined(i, j)`` tells pairs
    already in one group (they are not compared again); ``skipped`` collects the records
    left out as boilerplate (more than ``MAX_CANDIDATES`` candidates)."""
    from datasketch import MinHash, MinHashLSH

    # One record's shingles and MinHash at a time (the index keeps only its band hashes):
    # holding every shingle set of 65,000 records took about 300 MB. A candidate's set is
    # computed again for the exact check; there are at most MAX_CANDIDATES of them.
    blank = MinHash(num_perm=NUM_PERM)
    lsh = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM, weights=LSH_WEIGHTS)
    for i, record in enumerate(records):
        a = _shingles(record)
        if len(a) < MIN_SHINGLES:
            continue
        mh = blank.copy()
        mh.update_batch([x.encode("utf-8") for x in a])
        candidates = lsh.query(mh)
        if len(candidates) > MAX_CANDIDATES:
            if skipped is not None:
                skipped.append(i)
            continue
        for j in candidates:
            if record.get("source") == records[j].get("source") or (joined and joined(i, j)):
                continue
            if not _same_numbers(record, records[j]):
                continue
            b = _shingles(records[j])
            jaccard = len(a & b) / len(a | b)
            if jaccard >= NEAR_JACCARD:
                yield j, i, round(jaccard, 3)
        lsh.insert(i, mh)


def _canonical_order(record: Mapping[str, Any]) -> tuple:
    # the version's own date (published, else created), not "modified": a metadata edit
    # of an old version does not make it the latest one
    dates = record.get("dates") if isinstance(record.get("dates"), Mapping) else {}
    stamp = next((d for d in (parse_datetime(dates.get(k)) for k in ("published", "created", "issued")) if d), None)
    return (SOURCE_TIER.get(str(record.get("source")), OTHER_TIER), -(stamp.timestamp() if stamp else 0.0),
            record_key(record))


def find_duplicates(records: Sequence[Mapping[str, Any]], near_duplicates: bool = True) -> list[dict[str, Any]]:
    """Groups of two or more records that are the same dataset (see the module doc):
    ``{"canonical": key, "members": [...], "rules": [...], "links": [...]}``."""
    uf = _UnionFind(len(records))
    links: list[tuple[int, int, str, dict]] = []
    first: dict[tuple[str, str], tuple[int, str]] = {}  # key -> first record that emitted it, and why
    for i, record in enumerate(records):
        for key, rule in _identifier_keys(record):
            j, first_rule = first.setdefault(key, (i, rule))
            if j == i:
                continue
            # a DOI met as a relation target or a concept DOI: that rule explains the join
            rule = first_rule if first_rule != "doi" else rule
            if rule == "doi" and _datacite_hosted_by(records[j], record):
                rule = "datacite-hosting"
            if uf.union(j, i):
                links.append((j, i, rule, {}))
    if near_duplicates and len(records) > 1:
        skipped: list[int] = []
        for i, j, jaccard in near_duplicate_pairs(records, lambda a, b: uf.find(a) == uf.find(b), skipped):
            if uf.union(i, j):
                links.append((i, j, "near-duplicate", {"jaccard": jaccard}))
        if skipped:
            logger.info("Near-duplicate test: %d of %d records share their text with more than %d others "
                        "(templates, series) and were left to the identifier rules", len(skipped), len(records),
                        MAX_CANDIDATES)
    members: dict[int, list[int]] = {}
    for i in range(len(records)):
        members.setdefault(uf.find(i), []).append(i)
    group_links: dict[int, list[tuple[int, int, str, dict]]] = {}
    for link in links:
        group_links.setdefault(uf.find(link[0]), []).append(link)
    groups = []
    for root, idx in members.items():
        if len(idx) < 2:
            continue
        ordered = sorted(idx, key=lambda i: _canonical_order(records[i]))
        glinks = group_links.get(root, [])
        groups.append({
            "canonical": record_key(records[ordered[0]]),
            "members": [
                {"key": record_key(records[i]), "source": records[i].get("source"),
                 "source_id": records[i].get("source_id"), "doi": records[i].get("doi"),
                 "title": records[i].get("title")}
                for i in ordered
            ],
            "rules": sorted({rule for _, _, rule, _ in glinks}),
            "links": [{"a": record_key(records[a]), "b": record_key(records[b]), "rule": rule, **info}
                      for a, b, rule, info in glinks],
        })
    groups.sort(key=lambda g: g["canonical"])
    return groups


def _datacite_hosted_by(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """One of the two is a DataCite record whose hosting repository is the other's source."""
    for dc, other in ((a, b), (b, a)):
        if dc.get("source") == "datacite" and _hosting(dc) and _hosting(dc) == other.get("source"):
            return True
    return False


def duplicate_of(groups: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """key -> canonical key, for every member that is not its group's canonical record."""
    out = {}
    for g in groups:
        for m in g["members"]:
            if m["key"] != g["canonical"]:
                out[m["key"]] = g["canonical"]
    return out


# ------------------------------------------------------------------ reading duplicates.json
def duplicate_key(value: Any) -> str | None:
    """The canonical record a ``duplicate_of`` names, as ``source:id``."""
    if isinstance(value, Mapping):
        if value.get("source") and value.get("source_id") not in (None, ""):
            return record_key(value)
        return None
    if isinstance(value, str) and ":" in value:
        return value
    return None


def read_duplicate_groups(results_dir: Path) -> list[dict[str, Any]]:
    """Groups of ``duplicates.json`` as ``{"canonical": key, "members": [key...],
    "rules": [...], "titles": {key: title}}`` (odd entries skipped)."""
    path = results_dir / "duplicates.json"
    data = read_json(path) if path.is_file() else None
    groups = data.get("groups") if isinstance(data, Mapping) else data
    out = []
    for g in groups if isinstance(groups, list) else []:
        if not isinstance(g, Mapping):
            continue
        members, titles = [], {}
        for m in g.get("members") or []:
            key = None
            if isinstance(m, str):
                key = m
            elif isinstance(m, Mapping):
                key = m.get("key") if isinstance(m.get("key"), str) else duplicate_key(m)
                if key and isinstance(m.get("title"), str):
                    titles[key] = m["title"]
            if key and key not in members:
                members.append(key)
        canonical = g.get("canonical") if isinstance(g.get("canonical"), str) else (members[0] if members else None)
        if canonical and canonical not in members:
            members.insert(0, canonical)
        if canonical and len(members) > 1:
            rules = strings(g.get("rules")) or strings([g.get("rule")])
            out.append({"canonical": canonical, "members": members, "rules": rules, "titles": titles})
    return out
