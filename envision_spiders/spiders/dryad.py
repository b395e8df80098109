"""Dryad: a curated repository of research data (API v2, HAL JSON).

* API: ``GET /search?q=...&per_page=100`` (every word of a term required), following
  ``_links.next``; each hit is the dataset's latest viewable version; its files come
  from ``/versions/{id}/files`` (every page; deleted entries left out).
* Caveats: links are root-relative; DOIs in paths are fully percent-encoded;
  ``modifiedSince`` for incremental runs, but the modified date is only a day; 30
  requests a minute anonymous, 240 with a token, file downloads about 100 an hour.
* Auth: ``DRYAD_CLIENT_ID`` + ``DRYAD_CLIENT_SECRET`` (OAuth client credentials, renewed
  on 401, see ``credentials.DryadOAuth``); without them Dryad serves no files, so
  archives are not peeked (``extra.files_need_auth``).
* Arguments: ``-a since=YYYY-MM-DD``, ``-a full=1``.
* Docs: https://datadryad.org/api ; docs/sources/dryad.md
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import scrapy
from scrapy.settings import BaseSettings
from twisted.python.failure import Failure

from envision_spiders.credentials import has_credentials, site_root
from envision_spiders.mapping.dryad import is_deleted, link, map_dataset, map_files, modified_of, trailing_id
from envision_spiders.politeness import Pace
from envision_spiders.query import term_query
from envision_spiders.spiders.base import SourceSpider
from envision_spiders.textutil import normalize_doi, parse_datetime

logger = logging.getLogger(__name__)

PAGE_SIZE = 100  # Dryad's largest per_page
# 240 requests a minute with a token (older docs said 120: AutoThrottle and the 429
# handling cover a lower real limit).
TOKEN_PACE = Pace(interval=0.25, windows=((240, 60.0),))
# 30 a minute anonymous. The one-in-two-seconds window restates the interval so the pace
# also holds when a crawl that expected a token goes on without one (its download slot
# was set up for the token's pace).
ANONYMOUS_PACE = Pace(interval=2.0, windows=((1, 2.0), (30, 60.0)))
# Dryad counts requests with and without a token apart (240 and 30 a minute): each has a
# budget of its own (see RateLimitMiddleware), created with the pace of its kind. The
# token request has one too ("dryad-oauth"), outside both.
ANONYMOUS_SUFFIX = "#anonymous"


# ------------------------------------------------------------------ requests
def build_query(term: str) -> str:
    """Every word of a term required, each an exact phrase (Lucene operators inert):
    ``OCT-A retina`` -> ``"OCT-A" "retina"`` (Dryad ANDs the parts of ``q``)."""
    return term_query(term, joiner=" ")  # Dryad ANDs the words of q


def since_param(since: datetime | None) -> str | None:
    """``modifiedSince`` wants ISO 8601 in UTC with a ``Z`` (400 otherwise)."""
    return since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if since else None


def dataset_path(identifier: str) -> str:
    """``doi:10.5061/dryad.x`` -> ``datasets/doi%3A10.5061%2Fdryad.x`` (``:`` and ``/``
    encoded too, as the API requires)."""
    return "datasets/" + quote(identifier.strip(), safe="")


# ------------------------------------------------------------------ HAL
def embedded(page: Any, rel: str) -> list:
    """``page["_embedded"][rel]``; [] when the page holds none, TypeError when the
    answer is not a HAL page (a malformed answer is retried, see BadResponseMiddleware)."""
    if not isinstance(page, dict):
        raise TypeError(f"expected a HAL object, got {type(page).__name__}")
    found = (page.get("_embedded") or {}).get(rel, [])
    if not isinstance(found, list):
        raise TypeError(f"_embedded[{rel!r}] is {type(found).__name__}, not a list")
    return found


class DryadSpider(SourceSpider):
    name = "dryad"
    api_setting = "DRYAD_API_URL"
    pace = ANONYMOUS_PACE
    # File downloads (archive peeks too) have their own limit, about 100 an hour on a
    # fixed clock hour whatever the token
    extra_budgets = {"dryad-downloads": Pace(interval=0.0, windows=((100, 3600.0),))}
    files_budget = "dryad-downloads"
    id_fields = ("identifier", "id")

    @classmethod
    def pace_for(cls, settings: BaseSettings) -> Pace:
        # 240 requests a minute with an API account, 30 without
        return TOKEN_PACE if has_credentials("dryad") else ANONYMOUS_PACE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settled_before: Any = ...  # the day of the last successful run, looked up once
        self._told_anonymous_401 = False

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> DryadSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.site_root = site_root(spider.api_root)
        spider.page_size = min(PAGE_SIZE, spider.max_per_query) if spider.max_per_query else PAGE_SIZE
        spider.budget_keys = {spider.api_host, spider.api_host + ANONYMOUS_SUFFIX}
        return spider

    # ------------------------------------------------------------------ credentials
    def api_budget(self) -> str:
        return self.api_host if self.credentials.authenticated else self.api_host + ANONYMOUS_SUFFIX

    def windows_for(self, budget: str, scale: float) -> tuple[tuple[int, float], ...]:
        if budget == self.api_host:
            return TOKEN_PACE.scaled(scale).windows
        if budget == self.api_host + ANONYMOUS_SUFFIX:
            return ANONYMOUS_PACE.scaled(scale).windows
        return super().windows_for(budget, scale)

    async def start(self):
        if self.credentials.configured:
            await self.credentials.headers()  # the token, before the first request
        if not self.credentials.authenticated:
            logger.warning(
                "dryad: crawling without an OAuth token (set DRYAD_CLIENT_ID and DRYAD_CLIENT_SECRET for one): "
                "30 API requests a minute instead of 240, and Dryad refuses anonymous file downloads, so its "
                "archives are not peeked (records carry extra.files_need_auth)"
            )
        async for request in super().start():
            yield request

    def on_request_failed(self, failure: Failure):
        """A 401 the credentials could not cure (CredentialsMiddleware renews them) is
        kept for the next run, like any failure that is not the request's fault."""
        request = failure.request
        response = getattr(failure.value, "response", None)
        self.remember_terms(request)
        if response is None or response.status != 401:
            return super().on_request_failed(failure)
        if not self.credentials.configured and not self._told_anonymous_401:
            self._told_anonymous_401 = True
            logger.error("dryad: %s answered 401 to an anonymous request: set DRYAD_CLIENT_ID and DRYAD_CLIENT_SECRET",
                         request.url)
        self.crawler.stats.inc_value("envision/http_error/401")
        self.state.record_failure(request, "HTTP 401 (authentication refused)")
        return None

    def remember_terms(self, request: scrapy.Request) -> None:
        """A files listing that fails is retried next run, before any search: it keeps
        every term that found its record so far."""
        hit = request.cb_kwargs.get("hit")
        if isinstance(hit, dict):
            doi = normalize_doi(hit.get("identifier"))
            if doi:
                request.cb_kwargs["terms"] = self.terms_for(doi)

    # ------------------------------------------------------------------ incremental
    def same_version(self, saved_modified: Any, modified: Any) -> bool:
        """Dryad's modified date is a day: a record saved on the day it changed may have
        changed again later that day, so only dates before the day of the last
        successful run can prove a record unchanged."""
        day = parse_datetime(modified)
        if self._settled_before is ...:
            last = self.state.last_success(self.terms_sha)
            self._settled_before = last.date() if last else None
        if day is not None and self._settled_before is not None and day.date() >= self._settled_before:
            return False
        return super().same_version(saved_modified, modified)

    # ------------------------------------------------------------------ searching
    def search_request(self, term: str) -> scrapy.Request:
        params = {"q": build_query(term), "per_page": self.page_size, "modifiedSince": since_param(self.since)}
        return self.api_request(self.api_url("search", params), self.parse_search, cb_kwargs={"term": term, "page": 1})

    def parse_search(self, response, term: str, page: int):
        data = response.json()
        hits = embedded(data, "stash:datasets")
        yield from self.hits_arrived(term, hits)
        if not self.wants_more(term):
            return
        following = self.next_page(response, data) if hits else None
        if following:
            yield self.api_request(following, self.parse_search, cb_kwargs={"term": term, "page": page + 1})
            return
        total, seen = data.get("total"), self.hits_of(term)
        if isinstance(total, int) and seen < total:
            self.crawler.stats.inc_value("envision/dryad/paging_ended_early")
            logger.warning("dryad: term %r: the API counts %d hits but its pages held %d", term, total, seen)

    def next_page(self, response, data: dict) -> str | None:
        href = link(data, "next")
        if not href:
            return None
        url = response.urljoin(href)
        if url == response.url:
            self.crawler.stats.inc_value("envision/dryad/self_link_loop")
            logger.error("dryad: %s names itself as the next page; paging stopped", response.url)
            return None
        return url

    def handle_hit(self, hit: dict, term: str | None):
        identifier = hit["identifier"]
        doi = normalize_doi(identifier)
        if not doi:
            raise ValueError(f"identifier {identifier!r} is not a DOI")
        if not isinstance(hit.get("_links"), dict):
            # "Identifier cannot be viewed ...": a stub without metadata or versions
            self.crawler.stats.inc_value("envision/dryad/not_viewable")
            logger.info("dryad: %s cannot be viewed (%s); skipped", identifier, str(hit.get("message") or "")[:120])
            return
        if not self.needs_fetching(doi, term, modified_of(hit)):
            return
        version_id = trailing_id(link(hit, "stash:version"), "versions")
        if version_id is None:
            self.crawler.stats.inc_value("envision/dryad/no_version")
            logger.warning("dryad: %s names no latest version (_links.stash:version); saved without files", identifier)
            yield self.record_item(hit, [], None)
            return
        yield self.files_request(
            self.api_url(f"versions/{version_id}/files", {"per_page": PAGE_SIZE}),
            hit=hit, version_id=version_id, files=[], deleted=0, terms=self.terms_for(doi),
        )

    def files_request(self, url: str, **cb_kwargs: Any) -> scrapy.Request:
        # ahead of further search pages, so a record in progress is finished and saved first
        return self.api_request(url, self.parse_files, cb_kwargs=cb_kwargs, priority=1)

    def parse_files(self, response, hit: dict, version_id: int, files: list, deleted: int, terms: list | None = None):
        data = response.json()
        entries = embedded(data, "stash:files")
        doi = normalize_doi(hit["identifier"])
        for term in terms or []:  # a listing retried from an earlier run
            self.first_sighting(doi, term)
        page_files = map_files(entries, response.urljoin, lambda file_id: self.api_url(f"files/{file_id}/download"))
        page_deleted = sum(1 for e in entries if is_deleted(e))
        unusable = len(entries) - len(page_files) - page_deleted
        if unusable:
            self.crawler.stats.inc_value("envision/bad_record", unusable)
            logger.error("dryad: %s: %d file entries without a name on %s; left out", doi, unusable, response.url)
        files = files + page_files
        deleted += page_deleted
        following = self.next_page(response, data) if entries else None
        if following:
            yield self.files_request(following, hit=hit, version_id=version_id, files=files, deleted=deleted, terms=terms)
            return
        if deleted:
            self.crawler.stats.inc_value("envision/dryad/deleted_files_skipped", deleted)
        yield self.record_item(hit, files, version_id, deleted)

    def record_item(self, hit: dict, files: list[dict], version_id: int | None, deleted: int = 0):
        fields = map_dataset(hit, self.site_root)
        extra = fields.pop("extra")
        extra.update({k: v for k, v in (("version_id", version_id), ("deleted_files", deleted)) if v})
        if not self.files_readable():
            extra["files_need_auth"] = True
        return self.new_item(
            fields["doi"],
            source_modified=modified_of(hit),
            api_url=self.api_url(dataset_path(hit["identifier"])),
            files=files,
            extra=extra,
            **fields,
        )
