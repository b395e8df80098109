"""OSF (API v2, JSON:API): public projects, components and registrations for every term.

What this spider knows about OSF (../shared/apis.md §4):

* there is no search endpoint any more (``/v2/search/`` is an empty stub): a term is
  looked up with the list endpoints' filters, one query per endpoint —
  ``/v2/nodes/`` and ``/v2/registrations/`` with ``filter[title,description,tags]``, which
  OSF ORs (each field keeps its own operator: substring, case-insensitive for title and
  description, exact for tags; ``FilterMixin`` in OSF's ``api/base/filters.py``), so one
  query does the work of three; never with an empty value, which matches every node; ``filter[date_modified][gte]`` for incremental runs; with a token
  ``filter[public]=true``, since the list then also holds the token owner's private nodes;
* paging: ``page[size]=100`` (OSF's maximum), then ``links.next`` until it is null; the
  total is in ``links.meta.total`` at the default version 2.0, in the top-level ``meta``
  from 2.3 on (both are read);
* ``embed=identifiers`` and ``embed=license`` bring the DOI and the licence name inside
  the same answer, so they cost no request; without the embed only the licence id of
  ``relationships.license`` is known and is kept in ``extra``;
* files: ``/v2/{nodes|registrations}/{id}/files/osfstorage/``, every page, folders
  (``relationships.files.links.related.href``) walked down to ``MAX_FOLDER_DEPTH``
  and at most ``LISTING_REQUESTS_PER_NODE`` requests per node (more with a token); a
  record whose listing was cut says so in ``extra.files_truncated``. Hashes come from
  ``extra.hashes`` (sha256 preferred for ``checksum``, both kept), the download link
  from ``links.download``;
* one timestamp of a file carries ``Z`` and its neighbour does not; both parse;
* budget: 100 requests an hour without a token (DRF throttle ``non-cookie-auth``),
  10,000 a day with ``OSF_TOKEN`` (sent as ``Authorization: Bearer``). The budget is a
  ``Pace`` window, so the shared rate-limit middleware pauses this spider (and only it)
  when it is spent and says so. It is spent on search pages first and on the listings
  of new or changed nodes after (request priorities); a failing request is retried at
  most ``MAX_RETRIES`` times (each attempt counts against the budget) and is then kept
  for the next run.

``item.extra`` holds: ``kind`` (``nodes`` or ``registrations``), ``category``,
``license_id``, ``license_url``, ``node_license`` (copyright holders and year),
``parent`` and ``root`` (ids of the enclosing project), ``fork``, ``preprint``,
``identifiers`` (non-DOI identifiers such as ARKs), for registrations ``date_registered``,
``withdrawn``, ``embargo_end_date``, ``registration_supplement``, ``registered_from``,
and about the file listing ``files_truncated`` (``{"reasons": [...], "skipped_folders":
n, "skipped_pages": n}``) and ``files_listing_errors``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from w3lib.url import add_or_replace_parameter

from envision_spiders.politeness import Pace
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.textutil import checksum, html_to_text, iso, normalize_doi, plain_text, strings, year_of

logger = logging.getLogger(__name__)

ENDPOINTS = ("nodes", "registrations")
FILTER_FIELDS = ("title", "description", "tags")
# One filter over the three fields (OSF ORs them): a third of the searches of one query
# per field, which matters under 100 requests an hour.
SEARCH_FILTER = ",".join(FILTER_FIELDS)
PAGE_SIZE = 100  # OSF's MAX_PAGE_SIZE; a larger page[size] is silently capped
# DRF throttles (api/base/settings/defaults.py): 'non-cookie-auth' 100/hour for anonymous
# clients, 'user' 10000/day with a token. A request takes its share of the budget in
# the rate-limit middleware and may then wait in the download slot for at most the
# slot delay (AutoThrottle's ceiling, a minute at the real pace, see
# SourceSpider.update_settings) before the server counts it: a minute of slack on the
# window keeps the server from ever counting 101 requests in its own hour.
ANONYMOUS_PACE = Pace(interval=1.0, windows=((100, 3600.0 + 60.0),))
TOKEN_PACE = Pace(interval=1.0, windows=((10_000, 86_400.0 + 60.0),))


# ------------------------------------------------------------------ queries and paging
def search_params(
    term: str, field: str, since: str | None = None, *, public_only: bool = False, page_size: int = PAGE_SIZE
) -> list[tuple[str, str]]:
    """Query parameters of one filtered list query (``/v2/nodes/`` or ``/v2/registrations/``)."""
    value = " ".join(str(term).split())
    if not value:
        raise ValueError("an empty OSF filter value matches every node")
    if not field or any(f not in FILTER_FIELDS for f in field.split(",")):
        raise ValueError(f"not an OSF search field: {field!r}")
    params = [(f"filter[{field}]", value)]
    if since:
        params.append(("filter[date_modified][gte]", since))
    if public_only:
        params.append(("filter[public]", "true"))
    params += [("page[size]", str(page_size)), ("embed", "identifiers"), ("embed", "license")]
    return params


def load_body(response) -> dict:
    """The JSON:API document of an answer. OSF sends ``application/vnd.api+json``, which
    Scrapy does not map to a JSON response class, so the body is parsed directly."""
    body = json.loads(response.body)
    if not isinstance(body, dict):
        raise TypeError(f"expected a JSON:API document, got {type(body).__name__}")
    return body


def total_of(body: dict) -> int | None:
    """``links.meta.total`` (version 2.0, the default) or top-level ``meta.total`` (2.3+)."""
    for meta in ((body.get("links") or {}).get("meta"), body.get("meta")):
        if isinstance(meta, dict) and isinstance(meta.get("total"), int):
            return meta["total"]
    return None


def next_link(body: dict) -> str | None:
    nxt = (body.get("links") or {}).get("next")
    return nxt if isinstance(nxt, str) and nxt else None


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


def folder_link(entry: dict) -> str | None:
    """The listing URL of a folder entry, None for a file."""
    if (entry.get("attributes") or {}).get("kind") != "folder":
        return None
    href = ((((entry.get("relationships") or {}).get("files") or {}).get("links") or {}).get("related") or {}).get("href")
    if not isinstance(href, str) or not href:
        raise ValueError("folder without a files link")
    return href


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


# ------------------------------------------------------------------ file listing state
@dataclass
class Listing:
    """The osfstorage walk of one node: files found so far and requests in flight."""

    record: dict
    files: list[dict] = field(default_factory=list)
    requests: int = 0  # listing requests sent for this node (its budget)
    in_flight: int = 0
    skipped_folders: int = 0
    skipped_pages: int = 0
    reasons: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: bool = False  # a listing request failed for good: the node is kept for next run

    @property
    def node_id(self) -> str:
        return str(self.record["id"])

    @property
    def kind(self) -> str:
        return str(self.record["type"])

    def skip(self, reason: str, *, folder: bool) -> None:
        if folder:
            self.skipped_folders += 1
        else:
            self.skipped_pages += 1
        if reason not in self.reasons:
            self.reasons.append(reason)


class OSFSpider(SourceSpider):
    name = "osf"
    api_setting = "OSF_API_URL"
    pace = ANONYMOUS_PACE
    # Files are served by osf.io, not by the API host: archive peeks never spend the
    # API's hourly budget (on a local test server both share one host).
    files_budget = "osf-files"

    #: folders deeper than this below osfstorage's root are not listed
    MAX_FOLDER_DEPTH = 5
    #: listing requests (pages and folders) one node may cost, without / with a token
    LISTING_REQUESTS_PER_NODE = 10
    LISTING_REQUESTS_PER_NODE_TOKEN = 50
    #: retries of one failing request; each attempt costs budget, the rest waits for next run
    MAX_RETRIES = 2
    # the scheduler sends higher priorities first: searches, then the walks already
    # started, then the listings of further new or changed nodes
    SEARCH_PRIORITY = 100
    LISTING_CONTINUE_PRIORITY = 10
    LISTING_PRIORITY = 0

    @classmethod
    def pace_for(cls, settings) -> Pace:
        # 100 requests an hour anonymous, 10,000 a day with OSF_TOKEN (apis.md §4)
        return TOKEN_PACE if os.environ.get("OSF_TOKEN", "").strip() else cls.pace

    @classmethod
    def update_settings(cls, settings) -> None:
        super().update_settings(settings)
        # One request in the downloader at a time: it passes the budget just before it
        # is sent (not sixteen requests stamped at once and queued behind the slot
        # delay), and the scheduler picks every next request by priority. OSF allows a
        # request every 36 s on average, so nothing is lost by it.
        settings.set("CONCURRENT_REQUESTS", 1, priority="spider")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token = os.environ.get("OSF_TOKEN", "").strip()
        self.listing_budget = self.LISTING_REQUESTS_PER_NODE_TOKEN if self.token else self.LISTING_REQUESTS_PER_NODE
        self._listings: dict[str, Listing] = {}
        self._hits_per_query: dict[tuple[str, str, str], int] = {}
        self._terms_searched: set[str] = set()

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def budget_meta(self) -> dict[str, Any]:
        """Every OSF request counts against the API's budget (whatever host a link
        names) and is retried at most MAX_RETRIES times."""
        return {"budget": self.api_host, "max_retry_times": self.MAX_RETRIES}

    def osf_request(self, url: str, callback, *, cb_kwargs: dict | None = None, priority: int = 0, dont_filter: bool = False):
        return self.api_request(
            url, callback, cb_kwargs=cb_kwargs, priority=priority, dont_filter=dont_filter, meta=self.budget_meta()
        )

    # ------------------------------------------------------------------ searching
    async def searches(self):
        queries = len(self.terms) * len(ENDPOINTS)
        if self.token:
            logger.info("osf: OSF_TOKEN set: budget of 10,000 requests a day; %d search queries", queries)
        else:
            logger.info(
                "osf: no OSF_TOKEN: OSF allows 100 requests an hour, so the %d search queries alone take "
                "about %.1f hours (file listings come after); set OSF_TOKEN for 10,000 a day",
                queries, queries / 100,
            )
        for term in self.terms:
            for endpoint in ENDPOINTS:
                yield self.search_request(term, endpoint, SEARCH_FILTER)

    def search_request(self, term: str, endpoint: str, field: str, url: str | None = None, page: int = 1):
        if url is None:
            params = search_params(term, field, self.since_date(), public_only=bool(self.token))
            url = self.api_url(f"{endpoint}/", params)
        return self.osf_request(
            url,
            self.parse_search,
            cb_kwargs={"term": term, "endpoint": endpoint, "field": field, "page": page},
            priority=self.SEARCH_PRIORITY,
        )

    def parse_search(self, response, term: str, endpoint: str, field: str, page: int = 1):
        body = load_body(response)
        records = body["data"]
        if not isinstance(records, list):
            raise TypeError("search answer without a data list")
        if term not in self._terms_searched:
            self._terms_searched.add(term)
            self.crawler.stats.inc_value("envision/terms_searched")
        if page == 1:
            logger.debug("osf: %s %s~%r: %s hits", endpoint, field, term, total_of(body))
        self.count_hits(len(records))
        yield from self.each_record(records, lambda record: self.handle_record(record, term))
        key = (term, endpoint, field)
        seen = self._hits_per_query[key] = self._hits_per_query.get(key, 0) + len(records)
        if self.max_per_query and seen >= self.max_per_query:
            return
        nxt = next_link(body)
        if nxt and records:
            yield self.search_request(term, endpoint, field, response.urljoin(nxt), page + 1)

    def handle_record(self, record: dict, term: str | None):
        node_id = str(record["id"])
        if record.get("type") not in ENDPOINTS:
            raise ValueError(f"unexpected resource type {record.get('type')!r}")
        attrs = record["attributes"]
        if attrs.get("public") is False:
            # only a token's owner sees private nodes; they are not public datasets
            self.crawler.stats.inc_value("envision/osf/private_skipped")
            return
        known = term is not None and term in self.terms_for(node_id)
        if not self.first_sighting(node_id, term):
            if not known and (hit := self.term_hit(node_id, term)):
                yield hit
            return
        if self.is_unchanged(node_id, attrs.get("date_modified")):
            if hit := self.term_hit(node_id, term):
                yield hit
            return
        yield from self.start_listing(record)

    def node_request(self, node_id: str, kind: str):
        """A node (or registration) fetched on its own: to finish one whose listing
        failed in an earlier run."""
        params = [("embed", "identifiers"), ("embed", "license")]
        return self.osf_request(
            self.api_url(f"{kind}/{node_id}/", params), self.parse_node, priority=self.LISTING_PRIORITY, dont_filter=True
        )

    def parse_node(self, response):
        record = load_body(response)["data"]
        if not isinstance(record, dict):
            raise TypeError("node answer without a data object")
        yield from self.handle_record(record, None)

    def retry_previous_failures(self):
        """Requests that failed last time, under this run's budget; a listing is redone
        from its node, since a listing is only worth something complete."""
        restarted = set()
        for request in super().retry_previous_failures():
            if request.callback != self.parse_listing:
                priority = self.SEARCH_PRIORITY if request.callback == self.parse_search else self.LISTING_PRIORITY
                yield request.replace(priority=priority, meta={**request.meta, **self.budget_meta()})
                continue
            node = (request.cb_kwargs.get("node_id"), request.cb_kwargs.get("kind"))
            if all(node) and node[1] in ENDPOINTS and node not in restarted:
                restarted.add(node)
                yield self.node_request(*node)

    # ------------------------------------------------------------------ files
    def start_listing(self, record: dict):
        attrs = record["attributes"]
        listing = Listing(record)
        if attrs.get("withdrawn") or "files" not in (record.get("relationships") or {}):
            # a withdrawn registration shows no files (OSF hides the relationship)
            yield self.finish(listing)
            return
        self._listings[listing.node_id] = listing
        url = self.api_url(f"{listing.kind}/{listing.node_id}/files/osfstorage/", {"page[size]": PAGE_SIZE})
        yield self.listing_request(listing, url, 0, self.LISTING_PRIORITY)

    def listing_request(self, listing: Listing, url: str, depth: int, priority: int):
        listing.requests += 1
        listing.in_flight += 1
        self.crawler.stats.inc_value("envision/osf/listing_requests")
        return self.osf_request(
            url,
            self.parse_listing,
            cb_kwargs={"node_id": listing.node_id, "kind": listing.kind, "depth": depth},
            priority=priority,
        )

    def parse_listing(self, response, node_id: str, kind: str, depth: int = 0):
        body = load_body(response)
        entries = body["data"]
        if not isinstance(entries, list):
            raise TypeError("listing without a data list")
        listing = self._listings.get(node_id)
        if listing is None:
            # retried from an earlier run (see retry_previous_failures) or a stray answer
            yield self.node_request(node_id, kind)
            return
        listing.in_flight -= 1
        yield from self.each_record(entries, lambda entry: self.listing_entry(listing, entry, depth, response.url))
        nxt = next_link(body)
        if nxt and entries:
            if listing.requests < self.listing_budget:
                yield self.listing_request(listing, response.urljoin(nxt), depth, self.LISTING_CONTINUE_PRIORITY)
            else:
                listing.skip(f"request budget of {self.listing_budget} per node", folder=False)
        if listing.in_flight == 0:
            yield self.finish(listing)

    def listing_entry(self, listing: Listing, entry: dict, depth: int, base_url: str) -> Iterator[Any]:
        href = folder_link(entry)
        if href is None:
            f = map_file(entry, base_url)
            if f is not None:
                listing.files.append(f)
            return
        if depth + 1 > self.MAX_FOLDER_DEPTH:
            listing.skip(f"folders deeper than {self.MAX_FOLDER_DEPTH}", folder=True)
        elif listing.requests >= self.listing_budget:
            listing.skip(f"request budget of {self.listing_budget} per node", folder=True)
        else:
            url = add_or_replace_parameter(urljoin(base_url, href), "page[size]", str(PAGE_SIZE))
            yield self.listing_request(listing, url, depth + 1, self.LISTING_CONTINUE_PRIORITY)

    def on_request_failed(self, failure):
        """A listing request that failed for good: a permanent answer (403, 404, 410)
        leaves the record with the files listed so far; anything else keeps the whole
        node for the next run (the base errback records the request)."""
        super().on_request_failed(failure)
        request = failure.request
        if request.callback != self.parse_listing:
            return None
        listing = self._listings.get(request.cb_kwargs.get("node_id"))
        if listing is None:
            return None
        listing.in_flight -= 1
        response = getattr(failure.value, "response", None)
        if response is not None and 400 <= response.status < 500 and response.status not in (408, 429):
            listing.errors.append(f"HTTP {response.status} for {request.url}")
        else:
            listing.failed = True
        if listing.in_flight == 0:
            item = self.finish(listing)
            return [item] if item is not None else None
        return None

    def finish(self, listing: Listing):
        """The record of a node whose walk is over (None if it failed: kept for next run)."""
        self._listings.pop(listing.node_id, None)
        if listing.failed:
            self.crawler.stats.inc_value("envision/osf/listing_failed")
            logger.warning("osf: %s %s not saved: its file listing failed; it is retried next run", listing.kind, listing.node_id)
            return None
        fields = map_record(listing.record)
        extra = fields.pop("extra")
        if listing.reasons:
            self.crawler.stats.inc_value("envision/osf/listing_truncated")
            extra["files_truncated"] = {
                "reasons": listing.reasons,
                "skipped_folders": listing.skipped_folders,
                "skipped_pages": listing.skipped_pages,
            }
            logger.info(
                "osf: %s %s: file listing cut (%s): %d folders and %d pages not listed, %d files kept",
                listing.kind, listing.node_id, "; ".join(listing.reasons),
                listing.skipped_folders, listing.skipped_pages, len(listing.files),
            )
        if listing.errors:
            extra["files_listing_errors"] = listing.errors
        attrs = listing.record["attributes"]
        return self.new_item(
            listing.node_id,
            source_modified=attrs.get("date_modified"),
            api_url=self.api_url(f"{listing.kind}/{listing.node_id}/"),
            files=listing.files,
            extra=extra,
            **fields,
        )

    def closed(self, reason: str) -> None:
        if self._listings:
            logger.warning(
                "osf: %d nodes were not saved because their file listing did not finish (%s); "
                "their failed requests are retried next run", len(self._listings), reason,
            )
