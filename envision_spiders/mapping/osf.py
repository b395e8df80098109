"""OSF nodes and registrations (API v2, JSON:API) -> DatasetItem fields.

``embed=identifiers`` and ``embed=license`` bring the DOI and the licence name inside
the search answer; without the embed only the licence id of ``relationships.license``
is known (kept in ``extra``). Files of an osfstorage listing: hashes from
``extra.hashes`` (sha256 preferred for ``checksum``, both kept), the download link from
``links.download``; timestamps with and without ``Z`` both parse.

``extra`` holds: ``kind`` (``nodes`` or ``registrations``), ``category``,
``license_id``, ``license_url``, ``node_license`` (copyright holders and year),
``parent`` and ``root`` (ids of the enclosing project), ``fork``, ``preprint``,
``identifiers`` (non-DOI identifiers such as ARKs), for registrations
``date_registered``, ``withdrawn``, ``embargo_end_date``, ``registration_supplement``,
``registered_from``, and about the file listing ``files_truncated``
(``{"reasons": [...], "skipped_folders": n, "skipped_pages": n}``) and
``files_listing_errors``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from envision_spiders.textutil import checksum, html_to_text, iso, normalize_doi, plain_text, strings, year_of


# ------------------------------------------------------------------ files
def checksum_of(hashes: Any) -> str | None:
    """``sha256:<hex>`` when OSF has it, else ``md5:<hex>``."""
    if not isinstance(hashes, dict):
        return None
    return checksum(hashes.get("sha256"), "sha256") or checksum(hashes.get("md5"), "md5")


def map_file(entry: dict, base_url: str = "") -> dict[str, Any] | None:
    """A file of an osfstorage listing (or ``/v2/files/{id}/``); None for a folder."""
    attrs = entry.get("attributes") or {}
    if attrs.get("kind") != "file":
        return None
    name = attrs.get("materialized_path") or attrs.get("name")
    if not isinstance(name, str) or not name.strip("/"):
        raise ValueError("file without a name")
    size = attrs.get("size")
    hashes = (attrs.get("extra") or {}).get("hashes") or {}
    download = (entry.get("links") or {}).get("download")
    out = {
        "name": name.lstrip("/"),
        "size_bytes": size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        "url": urljoin(base_url, download) if isinstance(download, str) and download else None,
        "file_id": str(entry["id"]) if entry.get("id") else None,
        "checksum": checksum_of(hashes),
    }
    for algo in ("md5", "sha256"):
        if isinstance(hashes.get(algo), str) and hashes[algo]:
            out[algo] = hashes[algo].lower()
    return out


# ------------------------------------------------------------------ field mapping
def _related_id(record: dict, name: str) -> str | None:
    data = ((record.get("relationships") or {}).get(name) or {}).get("data")
    return str(data["id"]) if isinstance(data, dict) and data.get("id") else None


def identifiers_of(record: dict) -> tuple[str | None, list[dict[str, str]]]:
    """The DOI among the embedded identifiers, and the other identifiers (ARKs)."""
    embedded = ((record.get("embeds") or {}).get("identifiers") or {}).get("data")
    doi, others = None, []
    for ident in embedded if isinstance(embedded, list) else []:
        attrs = (ident or {}).get("attributes") or {}
        category, value = attrs.get("category"), attrs.get("value")
        if not isinstance(value, str) or not value:
            continue
        if category == "doi" and doi is None and normalize_doi(value):
            doi = normalize_doi(value)
        elif category != "doi":
            others.append({"category": str(category), "value": value})
    return doi, others


def license_of(record: dict) -> tuple[str | None, str | None, str | None]:
    """(name, url) of the embedded licence, and the licence id from the relationship."""
    lic = ((record.get("embeds") or {}).get("license") or {}).get("data")
    attrs = lic.get("attributes") if isinstance(lic, dict) else None
    name = url = None
    if isinstance(attrs, dict):
        name = attrs.get("name") if isinstance(attrs.get("name"), str) and attrs.get("name") else None
        url = attrs.get("url") if isinstance(attrs.get("url"), str) and attrs.get("url") else None
    license_id = _related_id(record, "license") or (str(lic["id"]) if isinstance(lic, dict) and lic.get("id") else None)
    return name, url, license_id


def access_type_of(attrs: dict) -> str:
    if attrs.get("withdrawn"):
        return "metadata-only"  # a withdrawn registration keeps its metadata, not its files
    if attrs.get("embargoed") or attrs.get("pending_embargo_approval"):
        return "embargoed"
    return "restricted" if attrs.get("public") is False else "open"


def keywords_of(attrs: dict) -> list[str]:
    keywords = strings(attrs.get("tags"))
    # subjects: a list of taxonomy paths, each a list of {id, text}
    for path in attrs.get("subjects") or []:
        for subject in path if isinstance(path, list) else [path]:
            text = subject.get("text") if isinstance(subject, dict) else None
            if isinstance(text, str) and text.strip() and text.strip() not in keywords:
                keywords.append(text.strip())
    return keywords


def map_record(record: dict) -> dict[str, Any]:
    """DatasetItem fields of a node or registration resource (files apart)."""
    attrs = record.get("attributes")
    if not isinstance(attrs, dict):
        raise TypeError("record without attributes")
    kind = record.get("type")
    registration = kind == "registrations"
    doi, other_ids = identifiers_of(record)
    license_name, license_url, license_id = license_of(record)
    description, links = html_to_text(attrs.get("description"))
    related, related_dois = [], []
    article = normalize_doi(attrs.get("article_doi"))
    if article and article != doi:
        related.append({"identifier": article, "relation": "IsSupplementTo", "scheme": "doi"})
        related_dois.append(article)
    published = attrs.get("date_registered") if registration else attrs.get("date_created")
    dates = {
        k: v
        for k, v in (
            ("created", iso(attrs.get("date_created"))),
            ("modified", iso(attrs.get("date_modified"))),
            ("registered", iso(attrs.get("date_registered"))),
            ("withdrawn", iso(attrs.get("date_withdrawn"))),
            ("embargo_end", iso(attrs.get("embargo_end_date"))),
        )
        if v
    }
    category = attrs.get("category") if isinstance(attrs.get("category"), str) else None
    node_license = attrs.get("node_license")
    root = _related_id(record, "root")
    extra = {
        "kind": kind,
        "category": category or None,
        "license_id": license_id,
        "license_url": license_url,
        "node_license": node_license if isinstance(node_license, dict) and any(node_license.values()) else None,
        "parent": _related_id(record, "parent"),
        "root": root if root != str(record.get("id")) else None,
        "fork": attrs.get("fork") or None,
        "preprint": attrs.get("preprint") or None,
        "identifiers": other_ids or None,
    }
    if registration:
        extra.update(
            {
                "date_registered": iso(attrs.get("date_registered")),
                "withdrawn": bool(attrs.get("withdrawn")),
                "embargo_end_date": iso(attrs.get("embargo_end_date")),
                "registration_supplement": attrs.get("registration_supplement"),
                "registered_from": _related_id(record, "registered_from"),
            }
        )
    return {
        "doi": doi,
        "url": (record.get("links") or {}).get("html"),
        "title": plain_text(attrs.get("title")),
        "description": description,
        "keywords": keywords_of(attrs),
        "publication_year": year_of(published) or year_of(attrs.get("date_created")),
        "dates": dates,
        "license": license_name,
        "access_type": access_type_of(attrs),
        # OSF categories: project, data, analysis, software, ... ("" is "Uncategorized")
        "resource_type": "registration" if registration else (category or None),
        "related_identifiers": related,
        "related_dois": related_dois,
        "external_links": links,
        "extra": {k: v for k, v in extra.items() if v is not None},
    }
