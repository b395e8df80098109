"""Funding references: NIH award numbers normalised, funders recognised, bad input reported.

Every dataset record keeps its funding references in ``funding`` (a list of dicts)::

    {"funder_name": "National Eye Institute", "funder_id": "10.13039/100000053",
     "award_number": "5R01EY012345-03", "award_title": "Imaging the ...",
     "award_uri": None, "nih_awards": [{"core_project_num": "R01EY012345",
     "serial": "EY012345", "ic": "EY", "activity": "R01"}], "nei": True}

A spider knows where its API keeps funding (DataCite ``fundingReferences``, Zenodo
``metadata.grants``, Figshare ``funding_list`` and the free-text ``funding``, Dryad
``funders``) and passes the field names to :func:`funding_references`; everything
else lives here, once:

* :func:`nih_awards` finds NIH award numbers in any text and normalises them to the
  **core project number** RePORTER uses (activity code + institute code + six-digit
  serial): ``5R01EY012345-03`` -> ``R01EY012345``; ``R01 EY 012345``, ``R01-EY-12345``,
  ``NIH/NEI R01EY012345`` -> ``R01EY012345``; a bare ``EY012345`` (no activity code)
  keeps only its ``serial`` (``core_project_num`` None) and is matched to a project by
  it. Several awards in one string are all found; numbers of other funders (NSF's
  ``DEB-1354996``, an EU ``H2020-MSCA-IF-2017-798083``) are not NIH awards: the
  institute code must be one of NIH's;
* :func:`funder_id` normalises a funder identifier: Crossref Funder Registry DOIs in any
  form (``https://doi.org/10.13039/100000053``, ``10.13039/100000053``, a bare
  ``100000053`` given as a Crossref Funder ID) become ``10.13039/…``, ROR ids
  ``https://ror.org/…``;
* a reference is an NEI one (``nei``) when its funder is the National Eye Institute (by
  Crossref Funder ID 10.13039/100000053, by ROR https://ror.org/03wkg3b53, or by name)
  or one of its awards carries NEI's institute code ``EY``;
* :func:`funding_references` turns one record's raw references into entries and a list
  of problems: a field that is not a list, an entry that is not an object, a value of
  the wrong type (a number is read as text, anything else is left out). Each problem
  names the record it came from; nothing here raises on bad input.

Hand-written: NIH award numbers follow NIH's own published layout (application type,
activity code, institute code, serial, support year, suffix) and no maintained Python
library parses them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

# Crossref Funder Registry ids (the DOI suffixes of 10.13039/…) and ROR ids of the two
# funders the project links on. NEI sits under NIH in the Funder Registry.
NEI_FUNDER_ID = "10.13039/100000053"
NIH_FUNDER_ID = "10.13039/100000002"
NEI_ROR = "https://ror.org/03wkg3b53"
NIH_ROR = "https://ror.org/01cwqze88"
NEI_IC = "EY"
NEI_NAMES = frozenset({"national eye institute", "nei", "nih nei", "nih national eye institute",
                       "national institutes of health national eye institute"})

# NIH institute and center codes as they appear in award numbers (RePORTER's
# ``project_num_split.ic_code``), current and retired.
NIH_IC_CODES = frozenset(
    "AA AG AI AR AT CA DA DC DE DK EB ES EY GM HD HG HL LM MD MH NR NS OD RM RR TR TW "
    "CL CP HV OH PS NU HS CE CI DD EH".split()
)

_NIH_FULL = re.compile(
    r"(?<![A-Z0-9])"
    r"(?:(?P<type>[1-9])[\s-]?)?"
    r"(?P<activity>[A-Z][A-Z0-9]{2})[\s/-]*"
    r"(?P<ic>[A-Z]{2})[\s-]*"
    r"(?P<serial>\d{4,6})"
    r"(?:-(?P<year>\d{2})(?P<suffix>[A-Z]\d{1,2})?)?"
    r"(?![0-9])",
)
_NIH_SERIAL = re.compile(r"(?<![A-Z0-9])(?P<ic>[A-Z]{2})[\s-]?(?P<serial>\d{5,6})(?![0-9])")
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)", re.IGNORECASE)
_ROR = re.compile(r"^(?:https?://)?(?:www\.)?ror\.org/(?P<id>0[a-z0-9]{6}\d{2})/?$", re.IGNORECASE)
_ROR_BARE = re.compile(r"^0[a-z0-9]{6}\d{2}$")
_FUNDREF_BARE = re.compile(r"^\d{9}$")


def _ascii_upper(text: str) -> str:
    return unicodedata.normalize("NFKC", text).upper()


def nih_awards(text: Any) -> list[dict[str, str | None]]:
    """Every NIH award number in ``text``, normalised (see the module doc): dicts with
    ``core_project_num`` (None for a bare ``EY012345``), ``serial`` (institute code +
    six digits), ``ic`` and ``activity``; in the order found, without repeats. Anything
    that is not a string (or a number) yields []."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        return []
    s = _ascii_upper(str(text))
    out: list[dict[str, str | None]] = []
    seen: set[str] = set()
    taken: list[tuple[int, int]] = []
    for m in _NIH_FULL.finditer(s):
        if m.group("ic") not in NIH_IC_CODES or not _activity_code(m.group("activity")):
            continue
        serial = m.group("ic") + m.group("serial").zfill(6)
        core = m.group("activity") + serial
        taken.append(m.span())
        if core not in seen:
            seen.add(core)
            out.append({"core_project_num": core, "serial": serial, "ic": m.group("ic"), "activity": m.group("activity")})
    for m in _NIH_SERIAL.finditer(s):
        if m.group("ic") not in NIH_IC_CODES or any(a <= m.start() < b for a, b in taken):
            continue
        serial = m.group("ic") + m.group("serial").zfill(6)
        if serial in seen or any(a["serial"] == serial for a in out):
            continue
        seen.add(serial)
        out.append({"core_project_num": None, "serial": serial, "ic": m.group("ic"), "activity": None})
    return out


def _activity_code(code: str) -> bool:
    """NIH activity codes: a letter and two letters or digits with at least one digit
    (R01, K23, U10, P30, T32, UG1, DP2, ZIA is the exception: intramural projects)."""
    return any(c.isdigit() for c in code[1:]) or code in ("ZIA", "ZIB", "ZIC", "ZID", "ZIE", "ZIH", "ZIJ")


def core_project_num(text: Any) -> str | None:
    """The first full NIH core project number in ``text`` (``5R01EY012345-03`` ->
    ``R01EY012345``), or None."""
    return next((a["core_project_num"] for a in nih_awards(text) if a["core_project_num"]), None)


def funder_id(value: Any, id_type: Any = None) -> str | None:
    """A funder identifier in one form: ``10.13039/<n>`` for Crossref Funder Registry ids
    (a bare nine-digit number counts as one only when ``id_type`` says Crossref),
    ``https://ror.org/<id>`` for ROR ids (a bare ROR id only when ``id_type`` says ROR);
    other identifiers stripped as given; None for nothing or a non-string."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    if not text:
        return None
    kind = str(id_type or "").strip().lower()
    bare = _DOI_PREFIX.sub("", text)
    if bare.lower().startswith("10.13039/"):
        return "10.13039/" + bare.split("/", 1)[1].strip().rstrip("/")
    if _FUNDREF_BARE.match(bare) and ("crossref" in kind or "fundref" in kind):
        return "10.13039/" + bare
    m = _ROR.match(text)
    if m:
        return "https://ror.org/" + m.group("id").lower()
    if _ROR_BARE.match(text.lower()) and kind == "ror":
        return "https://ror.org/" + text.lower()
    return text


def _norm_name(name: Any) -> str:
    if not isinstance(name, str):
        return ""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"\(.*?\)", " ", text)
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.replace("/", " ")).split())


def is_nei_funder(name: Any = None, identifier: Any = None) -> bool:
    """The funder is the National Eye Institute (by Crossref Funder ID, ROR or name)."""
    fid = funder_id(identifier)
    if fid in (NEI_FUNDER_ID, NEI_ROR):
        return True
    n = _norm_name(name)
    return n in NEI_NAMES or "national eye institute" in n


def funding_entry(
    *,
    funder_name: Any = None,
    funder_identifier: Any = None,
    funder_identifier_type: Any = None,
    award_number: Any = None,
    award_title: Any = None,
    award_uri: Any = None,
    extra_text: Iterable[Any] = (),
) -> dict[str, Any]:
    """One normalised funding entry (see the module doc). ``extra_text`` is searched for
    NIH award numbers too (an award title or free text that names the grant)."""
    number = _text(award_number)
    awards = nih_awards(number or "")
    for t in (award_title, *extra_text):
        for a in nih_awards(t):
            if not any(a["serial"] == b["serial"] for b in awards):
                awards.append(a)
    name = _text(funder_name)
    fid = funder_id(funder_identifier, funder_identifier_type)
    entry: dict[str, Any] = {
        "funder_name": name,
        "funder_id": fid,
        "award_number": number,
        "award_title": _text(award_title),
        "award_uri": _text(award_uri),
        "nih_awards": awards,
    }
    entry["nei"] = is_nei_funder(name, fid) or any(a["ic"] == NEI_IC for a in awards)
    return entry


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return " ".join(value.split()) or None
    return None


def _get(obj: Mapping[str, Any], path: str | None) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; None where a step is missing or not an object."""
    if not path:
        return None
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


# the fields a source's funding objects may hold, by their role here
FIELDS = ("funder_name", "funder_identifier", "funder_identifier_type", "award_number", "award_title", "award_uri")


def funding_references(
    raw: Any,
    record: str,
    *,
    field: str = "funding",
    free_text: Any = None,
    id_type: str | None = None,
    **paths: str,
) -> tuple[list[dict[str, Any]], list[str]]:
    """A record's funding entries and the problems met reading them.

    ``raw`` is the source's list of funding objects; ``paths`` maps the roles of
    :data:`FIELDS` to the source's field names (dotted for nested objects, e.g.
    ``funder_name="funder.name"``). ``free_text`` is a source's free-text funding
    statement (Figshare's ``funding``): every NIH award in it becomes an entry of its
    own unless an object already holds it. ``id_type`` is the funder identifier's type
    when the objects do not say (Zenodo's InvenioRDM ``funder.id`` is a bare ROR id).
    ``record`` (``source:id``) and ``field`` name where a problem came from; problems
    never stop the others from being read."""
    unknown = set(paths) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown funding roles: {sorted(unknown)}")  # a programming error, not bad input
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    if raw is None:
        items: list[Any] = []
    elif isinstance(raw, Mapping):
        problems.append(f"{record}: {field} is an object, not a list; read as one reference")
        items = [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        problems.append(f"{record}: {field} is {type(raw).__name__}, not a list; left out")
        items = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            if isinstance(item, str) and nih_awards(item):
                problems.append(f"{record}: {field}[{i}] is text, not an object; its award numbers are kept")
                entries.append(funding_entry(award_number=item))
            else:
                problems.append(f"{record}: {field}[{i}] is {type(item).__name__}, not an object; left out")
            continue
        values: dict[str, Any] = {}
        for role, path in paths.items():
            value = _get(item, path)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
                problems.append(f"{record}: {field}[{i}].{path} is {type(value).__name__}, not text; left out")
                value = None
            values[role] = value
        if id_type and not values.get("funder_identifier_type"):
            values["funder_identifier_type"] = id_type
        entry = funding_entry(**values)
        if any(entry[k] for k in ("funder_name", "funder_id", "award_number", "award_title")):
            entries.append(entry)
    if free_text is not None:
        if not isinstance(free_text, str):
            problems.append(f"{record}: the free-text funding is {type(free_text).__name__}, not text; left out")
        else:
            known = {a["serial"] for e in entries for a in e["nih_awards"]}
            statement = " ".join(free_text.split())[:500]
            for award in nih_awards(free_text):
                if award["serial"] not in known:
                    known.add(award["serial"])
                    entry = funding_entry(award_number=award["core_project_num"] or award["serial"])
                    entry["statement"] = statement  # where the number came from
                    entries.append(entry)
    return entries, problems


def saved_awards(funding: Any) -> Iterator[Mapping[str, Any]]:
    """Every NIH award of a record's saved ``funding`` (an entry without ``nih_awards``,
    an older or hand-edited record, has its award number read again); odd entries are
    skipped."""
    for entry in funding if isinstance(funding, list) else []:
        if not isinstance(entry, Mapping):
            continue
        awards = entry.get("nih_awards")
        if not isinstance(awards, list):
            awards = nih_awards(entry.get("award_number"))
        yield from (a for a in awards if isinstance(a, Mapping))


def nih_serials(funding: Any) -> set[str]:
    """The serials (``EY012345``) of every NIH award in a record's saved ``funding``."""
    return {a["serial"] for a in saved_awards(funding) if isinstance(a.get("serial"), str)}


def nih_cores(funding: Any) -> set[str]:
    """The full core project numbers of every NIH award in a record's saved ``funding``."""
    return {a["core_project_num"] for a in saved_awards(funding) if isinstance(a.get("core_project_num"), str)}


def nei_citations(funding: Any) -> list[str]:
    """The NEI awards (institute code EY) a record's saved ``funding`` cites, as written:
    the core project number, else the serial; in order, without repeats."""
    labels = (a.get("core_project_num") or a.get("serial") for a in saved_awards(funding) if a.get("ic") == NEI_IC)
    return list(dict.fromkeys(x for x in labels if isinstance(x, str)))
