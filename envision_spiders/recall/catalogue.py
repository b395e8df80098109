"""The reference catalogue: known public eye imaging datasets, one per line.

The project ships ``catalogue.csv`` (package data, read through importlib.resources so
it is found inside a scrapyd egg). Curators point ``RECALL_CATALOGUE`` at their own file
in the same format; ``RECALL_CATALOGUE_MODE`` says whether it is **added** to the shipped
one (``add``, the default: a line naming the same dataset as a shipped line replaces it)
or **replaces** it (``replace``). The columns are described at the top of the shipped
file and in docs/recall.md.

Bad lines never stop the check: every problem is reported with its file and line
number, and the line is kept where it can be (an identifier that does not fit its
source is dropped and the entry is matched by title; a line with an unknown source,
no name and no title, or naming a dataset an earlier line names, is left out).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from envision_spiders.textutil import normalize_doi

SHIPPED = "catalogue.csv"
COLUMNS = ("name", "source", "id", "doi", "url", "title", "aliases", "modality", "id_confidence", "source_type",
           "listed_in", "reason")
REQUIRED = ("name", "source")
SOURCES = ("zenodo", "figshare", "dryad", "osf", "datacite", "kaggle")
MODALITIES = ("fundus", "oct", "octa", "anterior", "multimodal")
CONFIDENCE = ("sure", "likely", "none")
MODES = ("add", "replace")
# A title phrase must say enough to match by itself: two words or more, or one word of
# at least this many characters ("IDRiD", "Messidor"; not "HRF" or "DDR") that is not an
# everyday English word some dataset names are ("STARE", "DRIVE": those need a second word).
MIN_SINGLE_WORD = 5
COMMON_WORDS = frozenset({"stare", "drive", "grape", "chase", "fives", "olives", "image", "images", "retina",
                          "retinal", "fundus", "dataset", "glaucoma", "cataract", "vessel", "vessels", "ocular"})

_ID_SHAPES = {
    "zenodo": re.compile(r"^\d+$"),
    "figshare": re.compile(r"^\d+$"),
    "osf": re.compile(r"^[a-z0-9]{5}$"),
    "kaggle": re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"),
}
_KAGGLE_COMPETITION = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_WORD = re.compile(r"[a-z0-9]+")


def title_tokens(text: Any) -> tuple[str, ...]:
    """Lower-case ASCII words of a title (accents folded, punctuation and ``_`` as
    spaces): ``Chákṣu: a glaucoma`` -> ``("chaksu", "a", "glaucoma")``."""
    if not isinstance(text, str):
        return ()
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return tuple(_WORD.findall(folded))


def long_enough(words: tuple[str, ...]) -> bool:
    """A title phrase that may match by itself (see MIN_SINGLE_WORD)."""
    return len(words) >= 2 or (len(words) == 1 and len(words[0]) >= MIN_SINGLE_WORD and words[0] not in COMMON_WORDS)


@dataclass(frozen=True)
class Entry:
    name: str
    source: str
    id: str = ""
    doi: str = ""
    url: str = ""
    title: str = ""
    aliases: tuple[str, ...] = ()
    modality: str = ""
    id_confidence: str = "none"
    source_type: str = ""
    listed_in: str = ""
    reason: str = ""
    origin: str = ""  # the file it came from
    line: int = 0

    @property
    def key(self) -> str:
        """Stable across runs and catalogue edits: the source and its id, DOI or title."""
        if self.id:
            return f"{self.source}:{self.id}"
        if self.doi:
            return f"{self.source}:doi:{self.doi}"
        return f"{self.source}:title:{' '.join(title_tokens(self.title or self.name))}"

    @property
    def phrases(self) -> list[tuple[str, ...]]:
        """The title and the aliases as word tuples, those long enough to match alone."""
        out = []
        for text in (self.title or self.name, *self.aliases):
            words = title_tokens(text)
            if words and long_enough(words) and words not in out:
                out.append(words)
        return out

    @property
    def is_dataset_type(self) -> bool:
        return self.source_type in ("", "dataset")

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "source": self.source, "id": self.id or None,
                "doi": self.doi or None, "url": self.url or None, "title": self.title or None,
                "aliases": list(self.aliases), "modality": self.modality or None,
                "id_confidence": self.id_confidence, "source_type": self.source_type or None,
                "listed_in": self.listed_in or None, "reason": self.reason or None,
                "origin": self.origin, "line": self.line}


@dataclass
class Catalogue:
    entries: list[Entry] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)  # {file, line, problem}
    files: list[str] = field(default_factory=list)
    mode: str = "add"


def _problem(problems: list, origin: str, line: int, text: str) -> None:
    problems.append({"file": origin, "line": line, "problem": text})


def _identifier(source: str, value: str, source_type: str) -> tuple[str, str | None]:
    """(the id in its canonical form, or "" and the reason it does not fit ``source``)."""
    if not value:
        return "", None
    if source in ("datacite", "dryad"):
        doi = normalize_doi(value)
        if not doi:
            return "", f"id {value!r} is not a DOI"
        if source == "dryad" and not doi.startswith("10.5061/dryad."):
            return "", f"id {value!r} is not a Dryad DOI (10.5061/dryad.…)"
        return doi, None
    if source == "kaggle" and source_type == "competition":
        return (value, None) if _KAGGLE_COMPETITION.match(value) else ("", f"id {value!r} is not a Kaggle competition slug")
    shape = _ID_SHAPES.get(source)
    if shape and not shape.match(value):
        expected = {"zenodo": "a Zenodo record number", "figshare": "a Figshare article number",
                    "osf": "a five-character OSF id", "kaggle": "a Kaggle owner/slug"}[source]
        return "", f"id {value!r} is not {expected}"
    return value, None


def _identities(entry: Entry) -> list[tuple[str, ...]]:
    """What makes two lines the same dataset."""
    out: list[tuple[str, ...]] = []
    if entry.id:
        out.append(("id", entry.source, entry.id.lower()))
    if entry.doi:
        out.append(("doi", entry.doi))
    if not entry.id and not entry.doi:
        out.append(("title", entry.source, " ".join(title_tokens(entry.title or entry.name))))
    return out


def parse_catalogue(text: str, origin: str) -> tuple[list[Entry], list[dict[str, Any]]]:
    """Entries and problems of one catalogue file (see the module doc)."""
    entries: list[Entry] = []
    problems: list[dict[str, Any]] = []
    header: list[str] | None = None
    seen: dict[tuple[str, ...], int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            fields = next(csv.reader([raw], strict=True))
        except (csv.Error, StopIteration) as exc:
            _problem(problems, origin, number, f"not a CSV line ({exc}); left out")
            continue
        fields = [f.strip() for f in fields]
        if header is None:
            header = [f.lower() for f in fields]
            missing = [c for c in REQUIRED if c not in header]
            unknown = [c for c in header if c not in COLUMNS]
            if missing:
                _problem(problems, origin, number, f"the header lacks {', '.join(missing)}; no line can be read")
                return [], problems
            if unknown:
                _problem(problems, origin, number, f"unknown columns {', '.join(unknown)} are ignored")
            continue
        if len(fields) != len(header):
            _problem(problems, origin, number, f"{len(fields)} fields where the header has {len(header)}; "
                     + ("the missing ones are empty" if len(fields) < len(header) else "the extra ones are ignored"))
        row = {c: (fields[i] if i < len(fields) else "") for i, c in enumerate(header) if c in COLUMNS}
        entry = _entry(row, origin, number, problems)
        if entry is None:
            continue
        duplicate = next((seen[k] for k in _identities(entry) if k in seen), None)
        if duplicate is not None:
            _problem(problems, origin, number, f"names the same dataset as line {duplicate}; left out")
            continue
        for k in _identities(entry):
            seen[k] = number
        entries.append(entry)
    if header is None:
        _problem(problems, origin, 0, "no header line: the file holds no entry")
    return entries, problems


def _entry(row: dict[str, str], origin: str, number: int, problems: list) -> Entry | None:
    name, source = row.get("name", ""), row.get("source", "").lower()
    title = row.get("title", "")
    if source not in SOURCES:
        why = "RePORTER holds grants, not datasets" if source == "nei" else f"one of {', '.join(SOURCES)}"
        _problem(problems, origin, number, f"unknown source {row.get('source')!r} ({why}); left out")
        return None
    if not name and not title:
        _problem(problems, origin, number, "no name and no title; left out")
        return None
    source_type = row.get("source_type", "").lower()
    ident, why = _identifier(source, row.get("id", ""), source_type)
    if why:
        _problem(problems, origin, number, f"{why}; matched without it")
    doi = ""
    if row.get("doi"):
        doi = normalize_doi(row["doi"]) or ""
        if not doi:
            _problem(problems, origin, number, f"doi {row['doi']!r} is not a DOI; matched without it")
    if source in ("datacite", "dryad") and ident and doi and ident != doi:
        _problem(problems, origin, number, f"id {ident} and doi {doi} differ; both are matched")
    if source in ("datacite", "dryad") and ident and not doi:
        doi = ident
    confidence = row.get("id_confidence", "").lower() or ("likely" if ident or doi else "none")
    if confidence not in CONFIDENCE:
        _problem(problems, origin, number, f"id_confidence {row.get('id_confidence')!r} is not one of "
                 f"{', '.join(CONFIDENCE)}; read as {'likely' if ident or doi else 'none'}")
        confidence = "likely" if ident or doi else "none"
    if confidence == "none" and (ident or doi):
        confidence = "likely"
        _problem(problems, origin, number, "an identifier with id_confidence none; read as likely")
    if confidence != "none" and not (ident or doi):
        confidence = "none"
    modality = row.get("modality", "").lower()
    if modality and modality not in MODALITIES:
        _problem(problems, origin, number, f"modality {row['modality']!r} is not one of {', '.join(MODALITIES)}")
    url = row.get("url", "")
    if url and not re.match(r"^https?://\S+$", url, re.IGNORECASE):
        _problem(problems, origin, number, f"url {url!r} is not an http(s) URL; left out")
        url = ""
    aliases = []
    for alias in (a.strip() for a in row.get("aliases", "").split("|")):
        if not alias:
            continue
        words = title_tokens(alias)
        if not long_enough(words):
            _problem(problems, origin, number, f"alias {alias!r} is too short to match by itself; left out")
            continue
        aliases.append(alias)
    entry = Entry(name=name or title, source=source, id=ident, doi=doi, url=url, title=title, aliases=tuple(aliases),
                  modality=modality, id_confidence=confidence, source_type=source_type,
                  listed_in=row.get("listed_in", ""), reason=row.get("reason", ""), origin=origin, line=number)
    if not entry.phrases and not (ident or doi or url):
        _problem(problems, origin, number, "no identifier and a title too short to match by itself; "
                 "it can never be found")
    return entry


def shipped_text() -> str:
    return resources.files("envision_spiders.recall").joinpath(SHIPPED).read_text(encoding="utf-8")


def load_catalogue(path: str | Path | None = None, mode: str = "add") -> Catalogue:
    """The shipped catalogue, with the curator's file at ``path`` added to it or
    replacing it (``mode``). A curator's file that cannot be read is a problem (the
    shipped catalogue is used alone, so the check still runs); an unknown mode is a
    ValueError (a setting to fix)."""
    mode = (mode or "add").strip().lower()
    if mode not in MODES:
        raise ValueError(f"RECALL_CATALOGUE_MODE={mode!r} is not one of {', '.join(MODES)}")
    cat = Catalogue(mode=mode)
    own: tuple[list[Entry], list[dict[str, Any]]] | None = None
    if path:
        p = Path(path)
        try:
            own = parse_catalogue(p.read_text(encoding="utf-8"), str(p))
        except (OSError, UnicodeDecodeError) as exc:
            _problem(cat.problems, str(p), 0, f"cannot be read ({getattr(exc, 'strerror', None) or exc}); "
                     "the shipped catalogue is used alone")
    if own is None or mode == "add":
        shipped, problems = parse_catalogue(shipped_text(), f"envision_spiders/recall/{SHIPPED}")
        cat.entries.extend(shipped)
        cat.problems.extend(problems)
        cat.files.append(f"envision_spiders/recall/{SHIPPED}")
    if own is not None:
        entries, problems = own
        cat.problems.extend(problems)
        cat.files.append(str(path))
        if mode == "replace":
            cat.entries = list(entries)
        else:
            for entry in entries:
                keys = set(_identities(entry))
                replaced = [e for e in cat.entries if keys & set(_identities(e))]
                for old in replaced:
                    _problem(cat.problems, entry.origin, entry.line,
                             f"names the same dataset as {old.origin} line {old.line}; this line replaces it")
                cat.entries = [e for e in cat.entries if e not in replaced] + [entry]
    return cat
