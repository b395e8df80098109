"""Dryad records (API v2, HAL JSON) -> DatasetItem fields.

The description is the abstract alone (what DataCite shows for the same DOI); methods
and usage notes are kept in ``extra``. ``extra`` holds: ``dryad_id`` (the dataset's
number), ``version_id``, ``version_number``, ``curation_status``, ``version_changes``,
``field_of_science`` (also a keyword), ``methods``, ``usage_notes`` (plain text; their
links go to ``external_links``), ``locations``, ``storage_size`` (the API's
total, also the record's ``total_size_bytes`` when files have no sizes),
``related_publication_issn``, ``deleted_files`` (deleted entries the listing held) and
``files_need_auth``. Authors' e-mail addresses are not kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from envision_spiders.funding import funding_references
from envision_spiders.textutil import checksum, dois_in, html_to_text, name_text, normalize_doi, parse_datetime, plain_text, strings, year_of


def link(obj: Any, rel: str) -> str | None:
    """``obj["_links"][rel]["href"]`` or None."""
    links = obj.get("_links") if isinstance(obj, dict) else None
    target = links.get(rel) if isinstance(links, dict) else None
    href = target.get("href") if isinstance(target, dict) else None
    return href.strip() if isinstance(href, str) and href.strip() else None


def trailing_id(href: str | None, collection: str) -> int | None:
    """The number ending a ``/{collection}/{n}`` link path: ``/api/v2/versions/93`` -> 93."""
    if not href:
        return None
    m = re.search(rf"/{collection}/(\d+)/?$", urlsplit(href).path)
    return int(m.group(1)) if m else None


def is_deleted(entry: Any) -> bool:
    return isinstance(entry, dict) and str(entry.get("status") or "").lower() == "deleted"


def map_files(entries: Iterable[Any], resolve: Callable[[str], str], download_url: Callable[[int], str]) -> list[dict[str, Any]]:
    """Files of a ``stash:files`` page (deleted ones left out). ``resolve`` makes a link
    absolute (the listing's ``response.urljoin``); ``download_url`` builds the documented
    ``/files/{id}/download`` when a file has no download link."""
    files = []
    for f in entries:
        if not isinstance(f, dict) or is_deleted(f):
            continue
        name = f.get("path")
        if not isinstance(name, str) or not name.strip():
            continue
        file_id = trailing_id(link(f, "self"), "files")
        href = link(f, "stash:download") or link(f, "stash:file-download")
        url = resolve(href) if href else (download_url(file_id) if file_id is not None else None)
        size = f.get("size")
        files.append(
            {
                "name": name,
                "size_bytes": size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
                "url": url,
                "file_id": str(file_id) if file_id is not None else None,
                "checksum": checksum(f.get("digest"), f.get("digestType")),
            }
        )
    return files


_ORCID = re.compile(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]", re.IGNORECASE)


def orcid_of(value: Any) -> str | None:
    """A bare ORCID iD from ``0000-...`` or ``https://orcid.org/0000-...``."""
    m = _ORCID.search(value) if isinstance(value, str) else None
    return m.group(0).upper() if m else None


def creators_of(authors: Any) -> list[dict[str, str]]:
    """``{name: "Family, Given", given_name, family_name, orcid, affiliation}`` per author,
    in the API's order, empty parts left out (e-mail addresses are not kept)."""
    creators = []
    for a in authors if isinstance(authors, list) else []:
        if not isinstance(a, dict):
            continue
        given, family = name_text(a.get("firstName")), name_text(a.get("lastName"))
        if not given and not family:
            continue
        affiliations = strings([name_text(a.get("affiliation"))] + [name_text(x) for x in a.get("affiliations") or [] if isinstance(x, dict)])
        entry = {
            "name": f"{family}, {given}" if family and given else family or given,
            "given_name": given,
            "family_name": family,
            "orcid": orcid_of(a.get("orcid")),
            "affiliation": "; ".join(affiliations),
        }
        creators.append({k: v for k, v in entry.items() if v})
    return creators


_SPDX_URL = re.compile(r"^https?://spdx\.org/licenses/([A-Za-z0-9.+-]+?)(?:\.html|\.json)?/?(?:#.*)?$", re.IGNORECASE)


def license_of(value: Any) -> str | None:
    """The SPDX id of Dryad's license URL (``https://spdx.org/licenses/CC0-1.0.html`` ->
    ``CC0-1.0``); any other license string is kept as given."""
    if not isinstance(value, str) or not value.strip():
        return None
    m = _SPDX_URL.match(value.strip())
    return m.group(1) if m else value.strip()


def access_of(record: dict) -> str | None:
    status = str(record.get("curationStatus") or "").lower()
    visibility = str(record.get("visibility") or "").lower()
    if "embargo" in status:
        return "embargoed"
    if visibility == "restricted":
        return "restricted"
    if status == "published" or visibility == "public":
        return "open"
    return None


def date_of(value: Any) -> str | None:
    """A date the API sent (``2025-03-28``), kept as given when it parses."""
    return value.strip() if isinstance(value, str) and parse_datetime(value) else None


def modified_of(record: dict) -> str | None:
    """The record's modified day: ``lastModificationDate``; answers of the 2020 shape have
    none, and their ``publicationDate`` stands in (a full run refreshes them)."""
    return date_of(record.get("lastModificationDate")) or date_of(record.get("publicationDate"))


def related_of(works: Any, own_doi: str | None) -> tuple[list[dict[str, str]], list[str], list[str]]:
    """``relatedWorks`` as related identifiers, the DOIs among them (not the record's
    own) and the web links that are not DOIs."""
    related = []
    for w in works if isinstance(works, list) else []:
        if isinstance(w, dict) and isinstance(w.get("identifier"), str) and w["identifier"].strip():
            related.append(
                {
                    "identifier": w["identifier"].strip(),
                    "relation": str(w.get("relationship") or ""),
                    "scheme": str(w.get("identifierType") or ""),
                }
            )
    related_dois = [d for d in dois_in(r["identifier"] for r in related) if d != own_doi]
    links = [
        r["identifier"] for r in related
        if r["identifier"].lower().startswith(("http://", "https://")) and not normalize_doi(r["identifier"])
    ]
    return related, related_dois, links


# Dryad's names of the parts of a ``funders`` entry (2026: organization, identifierType,
# identifier, awardNumber, awardURI, awardTitle; 2020: organization and awardNumber)
FUNDING_FIELDS = dict(funder_name="organization", funder_identifier="identifier",
                      funder_identifier_type="identifierType", award_number="awardNumber",
                      award_title="awardTitle", award_uri="awardURI")


def funding_of(record: dict, doi: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """``funders`` as funding entries (several awards in one ``awardNumber`` are all
    read), and the problems met reading them (naming the record by its DOI, else its
    own link)."""
    name = f"dryad:{doi or link(record, 'self') or 'without an id'}"
    return funding_references(record.get("funders"), name, field="funders", **FUNDING_FIELDS)


def map_dataset(record: dict, site: str) -> dict[str, Any]:
    """DatasetItem fields of a dataset (a search hit) or version record, files aside."""
    identifier = record.get("identifier")
    doi = normalize_doi(identifier)
    description, links = html_to_text(record.get("abstract"))
    methods, method_links = html_to_text(record.get("methods"))
    usage, usage_links = html_to_text(record.get("usageNotes"))
    related, related_dois, related_links = related_of(record.get("relatedWorks"), doi)
    keywords = strings(record.get("keywords"))
    field = plain_text(record.get("fieldOfScience"))
    if field and field not in keywords:
        keywords.append(field)
    size = record.get("storageSize", record.get("storage_size"))
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    published, modified = date_of(record.get("publicationDate")), date_of(record.get("lastModificationDate"))
    places = strings([p.get("place") for p in record.get("locations") or [] if isinstance(p, dict)])
    issn = record.get("relatedPublicationISSN")
    funding, funding_problems = funding_of(record, doi)
    extra = {
        "dryad_id": record.get("id") if isinstance(record.get("id"), int) else None,
        "version_number": record.get("versionNumber") if isinstance(record.get("versionNumber"), int) else None,
        "curation_status": plain_text(record.get("curationStatus")),
        "version_changes": plain_text(record.get("versionChanges")),
        "field_of_science": field,
        "methods": methods,
        "usage_notes": usage,
        "locations": places,
        "storage_size": size,
        "related_publication_issn": issn if isinstance(issn, str) and issn else None,
    }
    return {
        "doi": doi,
        "url": f"{site}/dataset/{identifier.strip()}" if doi else None,
        "title": plain_text(record.get("title")),
        "description": description,
        "keywords": keywords,
        "creators": creators_of(record.get("authors")),
        "publication_year": year_of(published),
        "dates": {k: v for k, v in (("published", published), ("modified", modified)) if v},
        "license": license_of(record.get("license")),
        "access_type": access_of(record),
        "resource_type": "dataset",
        "related_identifiers": related,
        "related_dois": related_dois,
        "external_links": list(dict.fromkeys(links + method_links + usage_links + related_links)),
        "total_size_bytes": size,
        "funding": funding,
        "funding_problems": funding_problems,
        "extra": {k: v for k, v in extra.items() if v not in (None, "", [])},
    }
