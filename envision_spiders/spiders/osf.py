"""OSF: the Open Science Framework's projects, components and registrations (API v2, JSON:API).

* API: no search endpoint; ``/v2/nodes/`` and ``/v2/registrations/`` filtered with
  ``filter[title,description,tags]`` (OSF ORs the fields: one query per endpoint and
  term), then each new or changed node's osfstorage listing, folders walked to a
  bounded depth and request budget per node.
* Caveats: 100 requests an hour anonymous, 10,000 a day with a token: the spider pauses
  when the budget is spent and says so; searches go first, listings after; a failing
  request is retried at most twice (each attempt costs budget) and then kept for the
  next run; a node whose listing failed is not saved and is redone next run.
* Auth: ``OSF_TOKEN`` (Bearer), optional; with it only public nodes are asked for.
* Arguments: ``-a since=YYYY-MM-DD``, ``-a full=1``.
* Docs: https://developer.osf.io/ ; docs/sources/osf.md
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from w3lib.url import add_or_replace_parameter

from envision_spiders.credentials import has_credentials
from envision_spiders.mapping.osf import map_file, map_record
from envision_spiders.politeness import Pace
from envision_spiders.spiders.base import SourceSpider, source_id

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


def folder_link(entry: dict) -> str | None:
    """The listing URL of a folder entry, None for a file."""
    if (entry.get("attributes") or {}).get("kind") != "folder":
        return None
    href = ((((entry.get("relationships") or {}).get("files") or {}).get("links") or {}).get("related") or {}).get("href")
    if not isinstance(href, str) or not href:
        raise ValueError("folder without a files link")
    return href


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
        # 100 requests an hour anonymous, 10,000 a day with OSF_TOKEN
        return TOKEN_PACE if has_credentials("osf") else cls.pace

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
        self._listings: dict[str, Listing] = {}

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> OSFSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        token = spider.credentials.configured
        spider.listing_budget = cls.LISTING_REQUESTS_PER_NODE_TOKEN if token else cls.LISTING_REQUESTS_PER_NODE
        return spider

    def api_budget(self) -> str:
        return self.api_host

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
        if self.credentials.configured:
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
            params = search_params(term, field, self.since_date(), public_only=self.credentials.configured)
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
        if page == 1:
            logger.debug("osf: %s %s~%r: %s hits", endpoint, field, term, total_of(body))
        yield from self.hits_arrived(term, records, self.handle_record, query=(endpoint, field))
        nxt = next_link(body)
        if nxt and records and self.wants_more(term, (endpoint, field)):
            yield self.search_request(term, endpoint, field, response.urljoin(nxt), page + 1)

    def handle_record(self, record: dict, term: str | None):
        node_id = source_id(record["id"])
        if record.get("type") not in ENDPOINTS:
            raise ValueError(f"unexpected resource type {record.get('type')!r}")
        attrs = record["attributes"]
        if attrs.get("public") is False:
            # only a token's owner sees private nodes; they are not public datasets
            self.crawler.stats.inc_value("envision/osf/private_skipped")
            return
        if self.needs_fetching(node_id, term, attrs.get("date_modified")):
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
