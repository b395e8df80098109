"""DataCite DOI records (REST API, JSON:API) -> DatasetItem fields.

DataCite is a registry: it lists no files. ``files`` stays empty; the declared
``formats`` become ``file_types`` where they name a file extension or a MIME type
(``image/tiff`` -> ``.tiff``, ``zip`` -> ``.zip``; prose such as "Darwin Core Archive"
is not a file type), and ``sizes`` with a byte unit (``"3009125660 Bytes"``) become
``total_size_bytes``. Affiliations and publishers come as strings or objects; both
shapes are read.

``extra`` keeps:

* ``hosting_repository``: ``zenodo``, ``figshare``, ``dryad``, ``osf`` or ``kaggle``
  when the DataCite client, the DOI prefix or the publisher shows the record is held by
  a repository this project also crawls (so results can tell a DataCite record
  duplicates one of theirs: same DOI); absent for other repositories;
* ``client_id``, ``provider_id``, ``publisher`` (its name, whatever the shape);
* ``formats`` and ``sizes`` as DataCite gives them; ``resource_subtype``
  (``types.resourceType``), ``version``, ``rights`` (every rights statement's text).

``funding`` comes from ``fundingReferences`` (schema 4: ``funderName``,
``funderIdentifier`` with ``funderIdentifierType``, ``awardNumber``, ``awardUri``,
``awardTitle``), normalised by :mod:`envision_spiders.funding`; what could not be read
is listed in ``funding_problems`` (the spider logs and counts it).
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from envision_spiders.filetypes import category_of_extension, file_extension
from envision_spiders.funding import funding_references
from envision_spiders.textutil import as_list, html_to_text, iso, plain_text, related_dois_and_links, strings, year_of


# ------------------------------------------------------------------ field mapping
def name_of(value: Any) -> str | None:
    """A publisher or affiliation as a string (``"Zenodo"``) or an object (``{"name": ...}``)."""
    if isinstance(value, dict):
        value = value.get("name")
    if isinstance(value, str):
        value = " ".join(value.split())
        return value or None
    return None


def main_title(titles: Any) -> str:
    """The first main title (no ``titleType``), else the first title of any type."""
    entries = [t for t in as_list(titles) if isinstance(t, dict) and plain_text(t.get("title"))]
    main = [t for t in entries if not t.get("titleType")]
    chosen = (main or entries or [None])[0]
    return plain_text(chosen.get("title")) if chosen else ""


def abstract_of(descriptions: Any) -> Any:
    """The first ``Abstract`` description, else the first non-empty one (raw, maybe HTML)."""
    entries = [d for d in as_list(descriptions) if isinstance(d, dict) and d.get("description")]
    for d in entries:
        if str(d.get("descriptionType") or "").lower() == "abstract":
            return d["description"]
    return entries[0]["description"] if entries else None


_ORCID = re.compile(r"(\d{4}-\d{4}-\d{4}-\d{3}[\dX])", re.IGNORECASE)


def orcid_of(name_identifiers: Any) -> str | None:
    """The bare ORCID (``0000-0002-2874-287X``) among a creator's name identifiers."""
    for ident in as_list(name_identifiers):
        if not isinstance(ident, dict):
            continue
        value = str(ident.get("nameIdentifier") or "")
        scheme = str(ident.get("nameIdentifierScheme") or "").upper()
        if scheme == "ORCID" or "orcid.org" in value.lower():
            m = _ORCID.search(value)
            if m:
                return m.group(1).upper()
    return None


def map_creators(creators: Any) -> list[dict[str, Any]]:
    """Creators with name type, given/family names, ORCID and affiliations (strings or
    objects); affiliations are joined with "; " into one string like other sources."""
    out = []
    for c in as_list(creators):
        if not isinstance(c, dict) or not name_of(c.get("name")):
            continue
        affiliations = [a for a in (name_of(x) for x in as_list(c.get("affiliation"))) if a]
        entry = {
            "name": name_of(c.get("name")),
            "name_type": c.get("nameType") if isinstance(c.get("nameType"), str) else None,
            "given_name": name_of(c.get("givenName")),
            "family_name": name_of(c.get("familyName")),
            "orcid": orcid_of(c.get("nameIdentifiers")),
            "affiliation": "; ".join(dict.fromkeys(affiliations)) or None,
        }
        out.append({k: v for k, v in entry.items() if v})
    return out


_ACCESS = re.compile(r"info:eu-repo/semantics/(open|embargoed|restricted|closed)access", re.IGNORECASE)
_CC = re.compile(r"creativecommons\.org/licenses/([a-z-]+)/(\d(?:\.\d)?)", re.IGNORECASE)
_CC_ZERO = re.compile(r"creativecommons\.org/publicdomain/zero/(\d\.\d)", re.IGNORECASE)
_SPDX_URL = re.compile(r"spdx\.org/licenses/([A-Za-z0-9.+-]+?)(?:\.html|\.json)?/?$", re.IGNORECASE)


def access_of(rights: dict) -> str | None:
    """``open`` / ``embargoed`` / ``restricted`` / ``closed`` from an
    ``info:eu-repo/semantics/...Access`` statement (in ``rightsUri`` or ``rights``)."""
    for key in ("rightsUri", "rights"):
        m = _ACCESS.search(str(rights.get(key) or ""))
        if m:
            return m.group(1).lower()
    return None


def license_id(uri: str) -> str | None:
    """The SPDX id (lower case, as DataCite writes ``rightsIdentifier``) of a licence URL
    that names one: Creative Commons, CC0, spdx.org; None for other URLs."""
    m = _CC_ZERO.search(uri)
    if m:
        return f"cc0-{m.group(1)}"
    m = _CC.search(uri)
    if m:
        version = m.group(2) if "." in m.group(2) else m.group(2) + ".0"
        return f"cc-{m.group(1).lower()}-{version}"
    m = _SPDX_URL.search(uri)
    return m.group(1).lower() if m else None


def rights_of(rights_list: Any) -> tuple[str | None, str | None]:
    """(licence, access type) from ``rightsList``: the licence is the first entry that is
    not an access statement, as its SPDX id when it has or names one, else its URI,
    else its text; the access type comes only from an eu-repo access statement."""
    license_, access = None, None
    for r in as_list(rights_list):
        if not isinstance(r, dict):
            continue
        a = access_of(r)
        if a:
            access = access or a
            continue
        if license_ is None:
            ident = r.get("rightsIdentifier")
            uri = str(r.get("rightsUri") or "").strip()
            if isinstance(ident, str) and ident.strip():
                spdx = str(r.get("rightsIdentifierScheme") or "SPDX").upper() == "SPDX"
                license_ = ident.strip().lower() if spdx else ident.strip()
            elif uri:
                license_ = license_id(uri) or uri
            elif name_of(r.get("rights")):
                license_ = name_of(r.get("rights"))
    return license_, access


_SIZE = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*(bytes?|b|kb|kib|mb|mib|gb|gib|tb|tib)\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "byte": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def size_in_bytes(value: Any) -> int | None:
    """Bytes of a DataCite ``sizes`` entry that has a byte unit (``"3009125660 Bytes"``,
    ``"1.2 GB"``). Bare numbers and other units (pages, records, files) are not sizes we
    can trust: None. Hand-written: a regular expression, where a library (humanfriendly)
    would also read bare numbers as bytes."""
    m = _SIZE.match(str(value)) if isinstance(value, (str, int)) else None
    if not m:
        return None
    return int(float(m.group(1).replace(",", ".")) * _UNITS[m.group(2).lower()])


def total_size(sizes: Any) -> int | None:
    known = [b for b in (size_in_bytes(s) for s in as_list(sizes)) if b is not None]
    return sum(known) if known else None


# The standard library's table lacks these MIME types, the ones an imaging dataset declares.
_MIME_EXTRA = {
    "application/dicom": ".dcm",
    "application/x-zip-compressed": ".zip",
    "application/gzip": ".gz",
    "application/x-gzip": ".gz",
    "application/x-7z-compressed": ".7z",
    "application/vnd.rar": ".rar",
    "application/x-rar-compressed": ".rar",
}


# Built-in table only (not /etc/mime.types), so the answer is the same on every machine.
_MIMETYPES = mimetypes.MimeTypes()
_BARE_EXT = re.compile(r"^\.?[a-z0-9]{1,8}(?:\.[a-z0-9]{1,4})?$")


def format_extensions(formats: Any) -> list[str]:
    """File extensions that DataCite ``formats`` name: MIME types (``image/tiff``) and
    bare extensions (``zip``, ``.nii.gz``, ``DICOM``) that the project's extension table
    or the MIME table knows. Free text ("Darwin Core Archive") names no extension."""
    out: set[str] = set()
    for entry in strings(formats):
        for part in re.split(r"[,;]", entry.lower()):
            part = part.strip()
            if not part or part == "application/octet-stream":
                continue
            if "/" in part:
                ext = _MIME_EXTRA.get(part) or _MIMETYPES.guess_extension(part, strict=False)
            elif _BARE_EXT.match(part):
                ext = file_extension("file." + part.lstrip("."))
                if not (category_of_extension(ext) or ext in _MIMETYPES.types_map[True] or ext in _MIMETYPES.types_map[False]):
                    ext = None
            else:
                ext = None
            if ext:
                out.add(ext)
    return sorted(out)


def kebab(value: Any) -> str | None:
    """``PhysicalObject`` -> ``physical-object``: DataCite's own resource-type id form."""
    if not isinstance(value, str) or not value.strip():
        return None
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", value.strip()).lower()


# DOI prefixes and DataCite clients of the repositories this project crawls directly.
HOSTS_BY_PREFIX = {"10.5281": "zenodo", "10.6084": "figshare", "10.5061": "dryad", "10.17605": "osf", "10.34740": "kaggle"}
HOSTS_BY_CLIENT = {"cern.zenodo": "zenodo", "dryad.dryad": "dryad", "cos.osf": "osf"}
HOSTS_BY_PUBLISHER = {
    "zenodo": "zenodo", "figshare": "figshare", "dryad": "dryad", "dryad digital repository": "dryad",
    "open science framework": "osf", "osf": "osf", "osf home": "osf", "kaggle": "kaggle",
}


def hosting_repository(doi: str | None, client_id: str | None, publisher: str | None) -> str | None:
    """Which of the project's other sources holds this record, from the DataCite client,
    then the DOI prefix, then the publisher's name; None for any other repository."""
    client = (client_id or "").lower()
    if client in HOSTS_BY_CLIENT:
        return HOSTS_BY_CLIENT[client]
    if client.startswith("figshare."):
        return "figshare"
    prefix = (doi or "").split("/", 1)[0]
    if prefix in HOSTS_BY_PREFIX:
        return HOSTS_BY_PREFIX[prefix]
    return HOSTS_BY_PUBLISHER.get((publisher or "").strip().lower())


def map_related(attributes: dict) -> list[dict[str, str]]:
    """``relatedIdentifiers`` and ``relatedItems`` as {identifier, relation, scheme,
    resource_type?}, relation and scheme as DataCite names them."""
    found = []  # (identifier, relation, scheme, resource type) of both shapes
    for r in as_list(attributes.get("relatedIdentifiers")):
        if isinstance(r, dict):
            found.append((r.get("relatedIdentifier"), r.get("relationType"),
                          r.get("relatedIdentifierType"), r.get("resourceTypeGeneral")))
    for item in as_list(attributes.get("relatedItems")):
        ident = item.get("relatedItemIdentifier") if isinstance(item, dict) else None
        if isinstance(ident, dict):
            found.append((ident.get("relatedItemIdentifier"), item.get("relationType"),
                          ident.get("relatedItemIdentifierType"), item.get("relatedItemType")))
    related = []
    for identifier, relation, scheme, resource_type in found:
        if isinstance(identifier, str) and identifier.strip():
            entry = {"identifier": identifier.strip(), "relation": str(relation or ""), "scheme": str(scheme or "")}
            if resource_type:
                entry["resource_type"] = str(resource_type)
            related.append(entry)
    return related


def map_dates(attributes: dict) -> dict[str, str]:
    """The record's own ``dates`` by type (``created``, ``issued``, ``updated``,
    ``available``, ... first of each, as given), then the registry's timestamps:
    ``registered`` and ``modified`` (the DOI metadata's last update)."""
    dates: dict[str, str] = {}
    for d in as_list(attributes.get("dates")):
        if isinstance(d, dict) and isinstance(d.get("date"), (str, int)) and str(d["date"]).strip():
            key = kebab(d.get("dateType")) or "other"
            dates.setdefault(key, str(d["date"]).strip())
    for key, value in (("registered", iso(attributes.get("registered"))), ("modified", iso(attributes.get("updated")))):
        if value:
            dates[key] = value
    return dates


def relation_id(relationships: Any, name: str) -> str | None:
    data = (relationships or {}).get(name) if isinstance(relationships, dict) else None
    data = data.get("data") if isinstance(data, dict) else None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


# DataCite's names of the parts of a funding reference (schema 4), by their role here
FUNDING_FIELDS = dict(funder_name="funderName", funder_identifier="funderIdentifier",
                      funder_identifier_type="funderIdentifierType", award_number="awardNumber",
                      award_title="awardTitle", award_uri="awardUri")


def funding_of(doi: str, attributes: dict) -> tuple[list[dict[str, Any]], list[str]]:
    """``fundingReferences`` as funding entries, and the problems met reading them."""
    return funding_references(attributes.get("fundingReferences"), f"datacite:{doi}", field="fundingReferences",
                              **FUNDING_FIELDS)


def map_record(doi: str, record: dict) -> dict[str, Any]:
    """DatasetItem fields of a DOI resource (a search hit: the whole record)."""
    attributes = record["attributes"]
    relationships = record.get("relationships")
    description, links = html_to_text(abstract_of(attributes.get("descriptions")))
    related = map_related(attributes)
    related_dois, external = related_dois_and_links([r["identifier"] for r in related], doi, links)
    for url in strings(attributes.get("contentUrl")):
        # direct links to content, without names, sizes or checksums: links, not files
        if url.lower().startswith(("http://", "https://")) and url not in external:
            external.append(url)
    license_, access = rights_of(attributes.get("rightsList"))
    types = attributes.get("types") if isinstance(attributes.get("types"), dict) else {}
    client_id = relation_id(relationships, "client")
    publisher = name_of(attributes.get("publisher"))
    keywords = strings([s.get("subject") for s in as_list(attributes.get("subjects")) if isinstance(s, dict)])
    formats = strings(attributes.get("formats"))
    sizes = strings(attributes.get("sizes"))
    url = attributes.get("url") if isinstance(attributes.get("url"), str) and attributes["url"].strip() else None
    funding, funding_problems = funding_of(doi, attributes)
    extra = {
        "hosting_repository": hosting_repository(doi, client_id, publisher),
        "client_id": client_id,
        "provider_id": relation_id(relationships, "provider"),
        "publisher": publisher,
        "formats": formats,
        "sizes": sizes,
        "resource_subtype": types.get("resourceType") if isinstance(types.get("resourceType"), str) else None,
        "version": attributes.get("version") if isinstance(attributes.get("version"), (str, int)) else None,
        "rights": strings([name_of(r.get("rights")) for r in as_list(attributes.get("rightsList")) if isinstance(r, dict)]),
    }
    return {
        "doi": doi,
        "url": url.strip() if url else f"https://doi.org/{doi}",
        "title": main_title(attributes.get("titles")),
        "description": description,
        "keywords": keywords,
        "creators": map_creators(attributes.get("creators")),
        "publication_year": year_of(attributes.get("publicationYear")),
        "dates": map_dates(attributes),
        "license": license_,
        "access_type": access,
        "resource_type": kebab(types.get("resourceTypeGeneral")),
        "related_identifiers": related,
        "related_dois": related_dois,
        "external_links": external,
        "files": [],
        "file_types": format_extensions(formats),
        "total_size_bytes": total_size(sizes),
        "funding": funding,
        "funding_problems": funding_problems,
        "extra": {k: v for k, v in extra.items() if v not in (None, "", [])},
    }
