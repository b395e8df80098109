"""Zenodo records (legacy JSON serializer) -> DatasetItem fields.

Search hits come in two shapes (2024+: ``files[]`` with ``key``, ``size``,
``checksum: "md5:..."``; October 2023: ``filename``, ``filesize``, a bare checksum), and
the ``/records/{id}/files`` listing has ``entries`` of the first shape. ``extra`` holds
``conceptrecid`` and ``conceptdoi`` (the concept every version shares), ``communities``,
``resource_subtype`` and ``version``.

``funding`` comes from ``metadata.grants`` (the legacy serializer: ``code``, ``title``,
``funder`` {``name``, ``doi``, ``acronym``}, ``internal_id``) and from
``metadata.funding`` (InvenioRDM records: ``funder`` {``id`` (a bare ROR id), ``name``},
``award`` {``number``, ``title`` {``en``}}), whichever the record carries; an award in
both is kept once. Problems reading them are listed in ``funding_problems``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envision_spiders.funding import funding_references
from envision_spiders.textutil import checksum, html_to_text, iso, normalize_doi, plain_text, related_dois_and_links, strings, year_of


# ------------------------------------------------------------------ field mapping
def map_files(entries: Any, file_url: Callable[[str], str]) -> list[dict[str, Any]]:
    """Both search-hit shapes and the ``/files`` listing's ``entries``."""
    files = []
    for f in entries or []:
        if not isinstance(f, dict):
            continue
        name = f.get("key") or f.get("filename")
        if not isinstance(name, str) or not name:
            continue
        size = f.get("size", f.get("filesize"))
        files.append(
            {
                "name": name,
                "size_bytes": int(size) if isinstance(size, (int, float)) and size >= 0 else None,
                "url": file_url(name),
                "file_id": str(f.get("id") or f.get("file_id") or "") or None,
                "checksum": checksum(f.get("checksum")),
            }
        )
    return files


def modified_of(hit: dict) -> Any:
    return hit.get("updated") or hit.get("modified")


def related_of(md: dict) -> list[dict[str, str]]:
    related = []
    for r in md.get("related_identifiers") or []:
        if isinstance(r, dict) and isinstance(r.get("identifier"), str):
            related.append(
                {
                    "identifier": r["identifier"],
                    "relation": str(r.get("relation") or ""),
                    "scheme": str(r.get("scheme") or ""),
                    **({"resource_type": str(r["resource_type"])} if r.get("resource_type") else {}),
                }
            )
    return related


def keywords_of(md: dict) -> list[str]:
    keywords = strings(md.get("keywords"))
    for s in md.get("subjects") or []:
        if isinstance(s, dict) and isinstance(s.get("term"), str) and s["term"] not in keywords:
            keywords.append(s["term"])
    return keywords


def creators_of(md: dict) -> list[dict[str, Any]]:
    creators = md.get("creators")
    return [
        {k: v for k, v in (("name", c.get("name")), ("affiliation", c.get("affiliation")), ("orcid", c.get("orcid"))) if v}
        for c in (creators if isinstance(creators, list) else [])
        if isinstance(c, dict) and c.get("name")
    ]


# Zenodo's names of the parts of a grant (legacy ``metadata.grants``) and of an
# InvenioRDM funding entry (``metadata.funding``), by their role here
GRANT_FIELDS = dict(funder_name="funder.name", funder_identifier="funder.doi", award_number="code",
                    award_title="title", award_uri="url")
RDM_FUNDING_FIELDS = dict(funder_name="funder.name", funder_identifier="funder.id", award_number="award.number",
                          award_title="award.title.en")


def funding_of(record_id: str, md: dict) -> tuple[list[dict[str, Any]], list[str]]:
    """``metadata.grants`` and ``metadata.funding`` as funding entries (an award both
    hold is kept once), and the problems met reading them."""
    record = f"zenodo:{record_id}"
    grants, problems = funding_references(md.get("grants"), record, field="metadata.grants", **GRANT_FIELDS)
    rdm, more = funding_references(md.get("funding"), record, field="metadata.funding", id_type="ror",
                                   **RDM_FUNDING_FIELDS)
    known = {e["award_number"] for e in grants if e["award_number"]}
    return grants + [e for e in rdm if not e["award_number"] or e["award_number"] not in known], problems + more


def map_record(hit: dict, files: list[dict], web_root: str) -> dict[str, Any]:
    """DatasetItem fields of a search hit (or record), with its ``files``."""
    md = hit.get("metadata") or {}
    record_id = str(hit["id"])
    description, links = html_to_text(md.get("description"))
    doi = normalize_doi(md.get("doi") or hit.get("doi"))
    related = related_of(md)
    related_dois, external = related_dois_and_links([r["identifier"] for r in related], doi, links)
    license_ = md.get("license")
    if isinstance(license_, dict):
        license_ = license_.get("id") or license_.get("title")
    resource = md.get("resource_type") or {}
    published = md.get("publication_date")
    funding, funding_problems = funding_of(record_id, md)
    return {
        "doi": doi,
        "url": (hit.get("links") or {}).get("self_html") or f"{web_root}/records/{record_id}",
        "title": plain_text(md.get("title") or hit.get("title")),
        "description": description,
        "keywords": keywords_of(md),
        "creators": creators_of(md),
        "publication_year": year_of(published),
        "dates": {
            k: v
            for k, v in (
                ("created", iso(hit.get("created"))),
                ("modified", iso(modified_of(hit))),
                ("published", published if isinstance(published, str) else None),
            )
            if v
        },
        "license": license_ if isinstance(license_, str) else None,
        "access_type": md.get("access_right") if isinstance(md.get("access_right"), str) else None,
        "resource_type": resource.get("type") if isinstance(resource, dict) else None,
        "related_identifiers": related,
        "related_dois": related_dois,
        "external_links": external,
        "files": files,
        "funding": funding,
        "funding_problems": funding_problems,
        "extra": {
            k: v
            for k, v in (
                ("conceptrecid", hit.get("conceptrecid")),
                ("conceptdoi", normalize_doi(hit.get("conceptdoi"))),
                ("communities", [c.get("id") for c in md.get("communities") or [] if isinstance(c, dict)]),
                ("resource_subtype", resource.get("subtype") if isinstance(resource, dict) else None),
                ("version", md.get("version")),
            )
            if v
        },
    }
