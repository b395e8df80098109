"""Figshare articles (API v2) -> DatasetItem fields.

Files: ``download_url`` (ndownloader, which redirects to storage), checksum
``computed_md5`` falling back to ``supplied_md5``; ``is_link_only`` files are links to
elsewhere and go to ``external_links``, not to ``files``. Access from ``is_public`` /
``is_embargoed`` / ``is_confidential`` / ``is_metadata_record``; licence ``license.name``;
keywords ``tags`` + ``keywords`` + category titles; versioned DOIs
(``10.6084/m9.figshare.123.v2``) are kept as given.

``extra`` keeps: ``doi_unversioned`` (the DOI without ``.vN``, to find duplicates),
``version``, ``handle``, ``group_id``, ``project_id``, ``portal_host`` (the landing page's
host when it is not figshare.com: institution and publisher portals such as
plos.figshare.com, and mirrors), ``mirrored_from`` (the repository a mirrored record
comes from, e.g. ``zenodo`` for zenodo.figshare.com; its DOI belongs to that
repository), ``resource_title`` (the related publication), ``embargo`` (type, date,
reason), ``confidential_reason``, ``metadata_only_reason``, and
``files_from_listing`` when the file list came from ``/files``.

``funding`` comes from ``funding_list`` (FundingInformation: ``title``, ``grant_code``,
``funder_name``, ``url``) and the free-text ``funding`` statement (every NIH award
number in it that the list lacks becomes an entry of its own); None when the record
carries neither field (a search hit). Problems reading them are in ``funding_problems``.

``provenance.source_modified`` is the article's :func:`version_stamp`: its
``modified_date``, or a later version date the same record reports (so a search hit
of an unchanged record never looks newer than the copy saved from it).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlparse

from envision_spiders.funding import funding_references
from envision_spiders.textutil import as_list, checksum, dois_in, html_to_text, iso, normalize_doi, parse_datetime, plain_text, strings, year_of


# Dates in a record (search hit or detail) that move when a new version is published.
VERSION_TIMELINE_KEYS = ("posted", "revision", "firstOnline")


# Figshare mirrors other repositories under their own name or DOI prefix.
MIRROR_HOSTS = {"zenodo.figshare.com": "zenodo"}
MIRROR_DOI_PREFIXES = {"10.5281": "zenodo", "10.17632": "mendeley_data", "10.5061": "dryad"}
FIGSHARE_HOSTS = ("figshare.com", "www.figshare.com")
_VERSION_SUFFIX = re.compile(r"\.v\d+$", re.IGNORECASE)


# ------------------------------------------------------------------ change detection
def version_stamp(record: Any) -> datetime | None:
    """The latest date a record gives about its own state: ``modified_date`` (details
    only), ``published_date`` and the timeline's posted / revision / firstOnline (a new
    version moves them). Dates of the related paper (``publisherPublication``) are left
    out: they may lie after the dataset's last change."""
    if not isinstance(record, dict):
        return None
    values = [record.get("modified_date"), record.get("published_date")]
    timeline = record.get("timeline")
    if isinstance(timeline, dict):
        values += [timeline.get(k) for k in VERSION_TIMELINE_KEYS]
    dates = [d for d in map(parse_datetime, values) if d]
    return max(dates) if dates else None


# ------------------------------------------------------------------ field mapping
def article_id(record: dict) -> str:
    """A Figshare article id (a positive integer) as a string; ValueError otherwise."""
    value = record.get("id")
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise ValueError(f"article id {value!r} is not a number")
    return text


def unversioned_doi(doi: str | None) -> str | None:
    """``10.6084/m9.figshare.123.v2`` -> ``10.6084/m9.figshare.123`` (same DOI when
    it has no version)."""
    return _VERSION_SUFFIX.sub("", doi) if doi else None


def access_type_of(article: dict) -> str:
    if article.get("is_public") is False:
        return "closed"
    if article.get("is_embargoed"):
        return "embargoed"
    if article.get("is_confidential"):
        return "restricted"
    if article.get("is_metadata_record"):
        return "metadata-only"
    return "open"


def files_hidden(article: dict) -> bool:
    """Files an anonymous reader cannot list (embargoed, confidential, metadata-only)."""
    return bool(article.get("is_embargoed") or article.get("is_confidential") or article.get("is_metadata_record"))


def size_of(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def map_files(entries: Any, base_url: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    """Figshare file entries (embedded or from ``/files``) as project files, and the
    links of link-only files."""
    files: list[dict[str, Any]] = []
    links: list[str] = []
    for f in entries if isinstance(entries, list) else []:
        if not isinstance(f, dict):
            continue
        url = f.get("download_url")
        url = urljoin(base_url, url.strip()) if isinstance(url, str) and url.strip() else None
        if f.get("is_link_only"):
            if url and url not in links:
                links.append(url)
            continue
        name = f.get("name")
        if not isinstance(name, str) or not name.strip():
            continue
        file_id = f.get("id")
        files.append(
            {
                "name": name,
                "size_bytes": size_of(f.get("size")),
                "url": url,
                "file_id": str(file_id) if isinstance(file_id, (int, str)) and str(file_id) else None,
                "checksum": checksum(f.get("computed_md5"), "md5") or checksum(f.get("supplied_md5"), "md5"),
            }
        )
    return files, links


def merge_files(primary: list[dict], secondary: list[dict]) -> list[dict]:
    """Files of ``primary`` (the listing), then those of ``secondary`` it lacks."""
    seen = {f.get("file_id") or f.get("name") for f in primary}
    return primary + [f for f in secondary if (f.get("file_id") or f.get("name")) not in seen]


def keywords_of(article: dict) -> list[str]:
    """``tags`` + ``keywords`` + category titles, without repeats (case-insensitive)."""
    out: list[str] = []
    seen: set[str] = set()
    categories = [c.get("title") for c in as_list(article.get("categories")) if isinstance(c, dict)]
    for word in strings(article.get("tags")) + strings(article.get("keywords")) + strings(categories):
        if word.lower() not in seen:
            seen.add(word.lower())
            out.append(word)
    return out


def creators_of(article: dict) -> list[dict[str, str]]:
    out = []
    for a in as_list(article.get("authors")):
        if isinstance(a, dict) and isinstance(a.get("full_name"), str) and a["full_name"].strip():
            person = {"name": a["full_name"].strip()}
            if isinstance(a.get("orcid_id"), str) and a["orcid_id"].strip():
                person["orcid"] = a["orcid_id"].strip()
            out.append(person)
    return out


def related_of(article: dict) -> list[dict[str, str]]:
    """The related publication (``resource_doi``), ``related_materials`` and
    ``references`` as related identifiers."""
    related: list[dict[str, str]] = []

    def add(identifier: Any, relation: str, scheme: str) -> None:
        if isinstance(identifier, str) and identifier.strip():
            entry = {"identifier": identifier.strip(), "relation": relation, "scheme": scheme}
            if entry not in related:
                related.append(entry)

    add(article.get("resource_doi"), "IsSupplementTo", "doi")
    for m in as_list(article.get("related_materials")):
        if isinstance(m, dict):
            add(m.get("identifier"), str(m.get("relation") or "References"), str(m.get("identifier_type") or "").lower())
    for ref in as_list(article.get("references")):
        add(ref, "References", "doi" if normalize_doi(ref) else "url")
    return related


def portal_facts(article: dict) -> dict[str, str]:
    """Where the landing page lives (institution and publisher portals, mirrors) and,
    for mirrored records, the repository the DOI belongs to."""
    facts: dict[str, str] = {}
    url = article.get("url_public_html") or article.get("figshare_url")
    host = (urlparse(url).hostname or "").lower() if isinstance(url, str) else ""
    if host and host not in FIGSHARE_HOSTS:
        facts["portal_host"] = host
    doi = normalize_doi(article.get("doi"))
    origin = MIRROR_HOSTS.get(host) or (MIRROR_DOI_PREFIXES.get(doi.split("/", 1)[0]) if doi else None)
    if origin:
        facts["mirrored_from"] = origin
    return facts


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


# Figshare's names of the parts of a FundingInformation object, by their role here
FUNDING_FIELDS = dict(funder_name="funder_name", award_number="grant_code", award_title="title", award_uri="url")


def funding_of(record_id: str, article: dict) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """``funding_list`` and the free-text ``funding`` as funding entries (None when the
    article has neither field), and the problems met reading them."""
    if "funding_list" not in article and "funding" not in article:
        return None, []
    return funding_references(article.get("funding_list"), f"figshare:{record_id}", field="funding_list",
                              free_text=article.get("funding"), **FUNDING_FIELDS)


def map_article(article: dict, base_url: str, listing: list | None = None) -> dict[str, Any]:
    """DatasetItem fields of an article (``GET /articles/{id}``); ``listing``: the entries
    of ``/articles/{id}/files`` when they were read (they win over the embedded list)."""
    files, links = map_files(article.get("files"), base_url)
    if listing is not None:
        listed, listed_links = map_files(listing, base_url)
        files = merge_files(listed, files)
        links = list(dict.fromkeys(listed_links + links))
    description, desc_links = html_to_text(article.get("description"))
    doi = normalize_doi(article.get("doi"))
    related = related_of(article)
    own = {doi, unversioned_doi(doi)}
    related_dois = [d for d in dois_in(r["identifier"] for r in related) if d not in own]
    external = list(dict.fromkeys(desc_links + links))
    for r in related:
        ident = r["identifier"]
        if ident.lower().startswith(("http://", "https://")) and not normalize_doi(ident) and ident not in external:
            external.append(ident)
    license_ = article.get("license")
    license_name = _text(license_.get("name")) if isinstance(license_, dict) else _text(license_)
    timeline = article.get("timeline") if isinstance(article.get("timeline"), dict) else {}
    published = article.get("published_date") or timeline.get("posted")
    funding, funding_problems = funding_of(article_id(article), article)
    dates = {
        k: v
        for k, v in (
            ("created", iso(article.get("created_date"))),
            ("modified", iso(article.get("modified_date"))),
            ("published", iso(published)),
            ("first_online", iso(timeline.get("firstOnline"))),
            ("embargo_until", iso(article.get("embargo_date")) if article.get("is_embargoed") else None),
        )
        if v
    }
    extra: dict[str, Any] = {
        "doi_unversioned": unversioned_doi(doi),
        "version": article.get("version") if isinstance(article.get("version"), int) else None,
        "handle": _text(article.get("handle")),
        "group_id": article.get("group_id") if isinstance(article.get("group_id"), int) else None,
        "project_id": article.get("project_id") if isinstance(article.get("project_id"), int) else None,
        **portal_facts(article),
        "resource_title": plain_text(article.get("resource_title")) or None,
        "confidential_reason": _text(article.get("confidential_reason")) if article.get("is_confidential") else None,
        "metadata_only_reason": _text(article.get("metadata_reason")) if article.get("is_metadata_record") else None,
        "files_from_listing": True if listing is not None else None,
    }
    if article.get("is_embargoed"):
        extra["embargo"] = {
            k: v
            for k, v in (
                ("type", _text(article.get("embargo_type"))),
                ("until", iso(article.get("embargo_date"))),
                ("reason", plain_text(article.get("embargo_reason")) or None),
            )
            if v
        }
    return {
        "doi": doi,
        "url": _text(article.get("url_public_html")) or _text(article.get("figshare_url")),
        "title": plain_text(article.get("title")),
        "description": description,
        "keywords": keywords_of(article),
        "creators": creators_of(article),
        "publication_year": year_of(published) or year_of(article.get("created_date")),
        "dates": dates,
        "license": license_name,
        "access_type": access_type_of(article),
        "resource_type": _text(article.get("defined_type_name")),
        "related_identifiers": related,
        "related_dois": related_dois,
        "external_links": external,
        "files": files,
        "total_size_bytes": size_of(article.get("size")),
        "funding": funding,
        "funding_problems": funding_problems,
        "extra": {k: v for k, v in extra.items() if v not in (None, [], {}, "")},
    }
