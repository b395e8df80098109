"""DataCite (REST API, JSON:API): dataset DOIs for every search term.

What this spider knows about DataCite (../shared/apis.md §5):

* ``GET /dois?query=...&resource-type-id=dataset&page[cursor]=...&page[size]=...``;
  ``query`` is an Elasticsearch query string: every word of a term is a quoted,
  required phrase (``"retinal" AND "OCT"``); incremental runs add
  ``updated:[YYYY-MM-DD TO *]``;
* **cursor paging only**: page numbers stop at 10,000 records (past that the API keeps
  answering the last page with a ``next`` link to itself). The first page asks for
  ``page[cursor]=1``; each ``links.next`` carries an opaque base64 cursor, which is
  extracted and put into a URL rebuilt here, because ``next`` drops parameters (the
  shape switches, ``mailto``). A cursor that does not advance ends the term and keeps
  the "last successful run" mark where it was;
* search hits carry the whole record (no detail request): a second run costs only the
  search pages;
* ``affiliation=false&publisher=false`` freeze the string shapes that DataCite plans to
  turn into objects; the mapping reads both shapes anyway;
* limits per IP and 5 minutes: 500 requests for anonymous clients, 1,000 for clients
  that identify themselves. With ``CONTACT_EMAIL`` set, the address goes into every
  URL as ``mailto=`` and into the User-Agent, and the spider keeps the higher pace.
  DataCite sends no rate-limit headers, and 429s come without ``Retry-After``;
* reading needs no credentials (repository credentials only raise the limit to 3,000).

DataCite is a registry: it lists no files. ``files`` stays empty; the declared
``formats`` become ``file_types`` where they name a file extension or a MIME type
(``image/tiff`` -> ``.tiff``, ``zip`` -> ``.zip``; prose such as "Darwin Core Archive"
is not a file type), and ``sizes`` with a byte unit (``"3009125660 Bytes"``) become
``total_size_bytes``.

``item.extra`` keeps:

* ``hosting_repository``: ``zenodo``, ``figshare``, ``dryad``, ``osf`` or ``kaggle``
  when the DataCite client, the DOI prefix or the publisher shows the record is held by
  a repository this project also crawls (so results can tell a DataCite record
  duplicates one of theirs: same DOI); absent for other repositories;
* ``client_id``, ``provider_id``, ``publisher`` (its name, whatever the shape);
* ``formats`` and ``sizes`` as DataCite gives them; ``resource_subtype``
  (``types.resourceType``), ``version``, ``rights`` (every rights statement's text).
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlparse

from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings

from envision_spiders.filetypes import category_of_extension, file_extension
from envision_spiders.politeness import Pace
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.query import term_query
from envision_spiders.textutil import (
    as_list,
    html_to_text,
    iso,
    normalize_doi,
    plain_text,
    related_dois_and_links,
    strings,
    year_of,
)

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
# A quarter of the maximum: a page stays around a megabyte (records are 3-8 kB), and
# nearly every term fits in one or two pages.
PAGE_SIZE = 250
FIRST_CURSOR = "1"

# Requests per 5 minutes and IP (apis.md §5, support.datacite.org/docs/rate-limit).
ANONYMOUS_PACE = Pace(interval=300.0 / 500, windows=((500, 300.0),))
IDENTIFIED_PACE = Pace(interval=300.0 / 1000, windows=((1000, 300.0),))

_EMAIL = re.compile(r"[^@\s<>(),;]+@[^@\s<>(),;]+\.[^@\s<>(),;]+")


# ------------------------------------------------------------------ identification
def contact_email(settings: BaseSettings | Mapping) -> str | None:
    """``CONTACT_EMAIL`` when it looks like an address, else None."""
    value = str(settings.get("CONTACT_EMAIL") or "").strip()
    return value if _EMAIL.fullmatch(value) else None


def identified_user_agent(user_agent: str | None, email: str) -> str:
    """``name/1.0 (+https://site)`` -> ``name/1.0 (+https://site; mailto:a@b.org)``, the
    form DataCite (like Crossref) recognises."""
    ua = (user_agent or "").strip()
    if f"mailto:{email}" in ua:
        return ua
    if ua.endswith(")"):
        return f"{ua[:-1]}; mailto:{email})"
    return f"{ua} (mailto:{email})".strip()


# ------------------------------------------------------------------ query and paging
def build_query(term: str, since: str | None = None) -> str:
    """Every word of the term required; records updated since ``since`` (YYYY-MM-DD)."""
    query = f"({term_query(term)})"
    return f"{query} AND updated:[{since} TO *]" if since else query


def search_params(query: str, cursor: str, page_size: int, email: str | None) -> list[tuple[str, str]]:
    """Every parameter of a search page, rebuilt for each page (``next`` drops some)."""
    params = [
        ("query", query),
        ("resource-type-id", "dataset"),
        ("page[cursor]", cursor),
        ("page[size]", str(page_size)),
        ("affiliation", "false"),
        ("publisher", "false"),
        # the facet buckets in `meta` cost DataCite work and us bytes; we read none
        ("disable-facets", "true"),
    ]
    if email:
        params.append(("mailto", email))
    return params


def next_cursor(links: Any) -> str | None:
    """The cursor token of ``links.next``, or None when there is no next page (or the
    link is a page-number link, which this spider never follows)."""
    if not isinstance(links, dict) or not isinstance(links.get("next"), str):
        return None
    values = parse_qs(urlparse(links["next"]).query).get("page[cursor]")
    return values[0] if values and values[0] else None


def cursor_position(cursor: str) -> str | None:
    """What an opaque cursor encodes (``<created ms>,<doi>``), for log messages only."""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


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


# ------------------------------------------------------------------ the spider
class DataCiteSpider(SourceSpider):
    name = "datacite"
    api_setting = "DATACITE_API_URL"
    # 500 requests per 5 minutes for anonymous clients; identified ones get IDENTIFIED_PACE.
    pace = ANONYMOUS_PACE

    def __init__(self, *args: Any, page_size: str | int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.page_size_arg = None
        if page_size is not None:
            size = int(page_size)
            if not 1 <= size <= MAX_PAGE_SIZE:
                raise ValueError(f"-a page_size={page_size!r}: DataCite pages hold 1 to {MAX_PAGE_SIZE} records")
            self.page_size_arg = size
        self._hits_per_term: dict[str, int] = {}

    @classmethod
    def pace_for(cls, settings: BaseSettings) -> Pace:
        return IDENTIFIED_PACE if contact_email(settings) else ANONYMOUS_PACE

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        email = contact_email(settings)
        if email:
            priority = max(settings.getpriority("USER_AGENT") or 0, SETTINGS_PRIORITIES["spider"])
            settings.set("USER_AGENT", identified_user_agent(settings.get("USER_AGENT"), email), priority=priority)

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> DataCiteSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.email = contact_email(crawler.settings)
        spider.page_size = spider.page_size_arg or PAGE_SIZE
        if spider.max_per_query:
            # no point in fetching a page longer than what will be kept
            spider.page_size = min(spider.page_size, spider.max_per_query)
        raw = str(crawler.settings.get("CONTACT_EMAIL") or "").strip()
        if raw and not spider.email:
            logger.warning("datacite: CONTACT_EMAIL=%r is not an e-mail address; requests go unidentified", raw)
        return spider

    # ------------------------------------------------------------------ searching
    async def searches(self):
        if self.email:
            logger.info("datacite: identified with CONTACT_EMAIL (mailto and User-Agent): up to 1000 requests per 5 minutes")
        else:
            logger.info("datacite: requests are unidentified (no usable CONTACT_EMAIL): DataCite allows them "
                        "500 requests per 5 minutes, half the identified pace")
        for term in self.terms:
            yield self.search_request(term)

    def search_request(self, term: str, cursor: str = FIRST_CURSOR):
        params = search_params(build_query(term, self.since_date()), cursor, self.page_size, self.email)
        return self.api_request(
            self.api_url("dois", params),
            self.parse_search,
            cb_kwargs={"term": term, "cursor": cursor},
        )

    def parse_search(self, response, term: str, cursor: str):
        data = response.json()
        records = data["data"]
        if not isinstance(records, list):
            raise TypeError(f"`data` is {type(records).__name__}, not a list of DOIs")
        if cursor == FIRST_CURSOR:
            self.crawler.stats.inc_value("envision/terms_searched")
            total = (data.get("meta") or {}).get("total")
            logger.debug("datacite: term %r: %s datasets", term, total)
        self.count_hits(len(records))
        yield from self.each_record(records, lambda record: self.handle_hit(record, term))
        seen = self._hits_per_term[term] = self._hits_per_term.get(term, 0) + len(records)
        if self.max_per_query and seen >= self.max_per_query:
            return
        links = data.get("links")
        following = next_cursor(links)
        if not records or following is None:
            if records and isinstance(links, dict) and links.get("next"):
                # a page-number link: we never asked for one, and it stops at 10,000
                self.crawler.stats.inc_value("envision/datacite/next_without_cursor")
                self.hit_cap_reached = True
                logger.error("datacite: term %r: the next link has no cursor (%s); the term is incomplete",
                             term, links["next"])
            return
        if following == cursor:
            self.crawler.stats.inc_value("envision/datacite/cursor_stuck")
            self.hit_cap_reached = True
            logger.error(
                "datacite: term %r: the cursor did not advance past %s after %d records; the term is incomplete "
                "and the next run searches this period again", term, cursor_position(cursor) or cursor, seen,
            )
            return
        self.crawler.stats.inc_value("envision/datacite/cursor_pages")
        yield self.search_request(term, following)

    def handle_hit(self, record: dict, term: str | None):
        attributes = record["attributes"]
        doi = normalize_doi(record.get("id")) or normalize_doi(attributes.get("doi"))
        if not doi:
            raise ValueError(f"no DOI in id={record.get('id')!r}")
        if not self.first_sighting(doi, term):
            if hit := self.term_hit(doi, term):
                yield hit
            return
        if self.is_unchanged(doi, attributes.get("updated")):
            if hit := self.term_hit(doi, term):
                yield hit
            return
        yield self.record_item(doi, record)

    # ------------------------------------------------------------------ mapping
    def record_item(self, doi: str, record: dict):
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
        return self.new_item(
            doi,
            source_modified=attributes.get("updated"),
            api_url=self.api_url(f"dois/{doi}"),
            doi=doi,
            url=url.strip() if url else f"https://doi.org/{doi}",
            title=main_title(attributes.get("titles")),
            description=description,
            keywords=keywords,
            creators=map_creators(attributes.get("creators")),
            publication_year=year_of(attributes.get("publicationYear")),
            dates=map_dates(attributes),
            license=license_,
            access_type=access,
            resource_type=kebab(types.get("resourceTypeGeneral")),
            related_identifiers=related,
            related_dois=related_dois,
            external_links=external,
            files=[],
            file_types=format_extensions(formats),
            total_size_bytes=total_size(sizes),
            extra={k: v for k, v in extra.items() if v not in (None, "", [])},
        )
