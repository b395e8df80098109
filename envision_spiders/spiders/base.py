"""What every source spider shares; a spider itself only knows its API.

A source spider sets ``name``, ``api_setting`` (the setting holding its API root) and
``pace`` (its documented limit), and writes ``searches()`` (the first requests) and
its callbacks. This base class gives it:

* the search terms (``SEARCH_TERMS`` or the 47 shared ones), ``MAX_PER_QUERY``;
* incremental runs: ``self.since`` is the start of the last successful run (minus a
  day of overlap), or ``-a since=YYYY-MM-DD``, or None with ``-a full=1`` (which also
  refreshes every record);
* ``api_url()`` / ``api_request()``: URLs derived from the API root, auth headers only
  for the API's own host, and an errback that records what finally failed;
* ``first_sighting()``: one fetch per record per run, every term remembered;
* ``is_unchanged()``: skip records saved with the same modified date;
* ``each_record()``: one malformed record is logged and counted, its page goes on;
* ``new_item()``: a DatasetItem with its provenance filled in.

Politeness lives in settings and middlewares: ``update_settings`` turns ``pace`` into
the slot delay (AutoThrottle's floor) and concurrency, scaled by POLITENESS_SCALE.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode, urlparse

import scrapy
from scrapy.settings import BaseSettings
from twisted.python.failure import Failure

from envision_spiders.extensions.state import CrawlState, terms_hash
from envision_spiders.items import DatasetItem, TermHit
from envision_spiders.politeness import Pace
from envision_spiders.terms import load_terms
from envision_spiders.textutil import iso, parse_datetime, utcnow_iso

logger = logging.getLogger(__name__)

# An incremental run looks back this much further than the last successful run,
# for records indexed late and clocks that disagree.
SINCE_OVERLAP = timedelta(days=1)
# Requests that failed for good last time go before everything else this time.
RETRY_FIRST_PRIORITY = 1000


class SourceSpider(scrapy.Spider):
    #: name of the setting that holds this API's root URL
    api_setting: str = ""
    #: the API's documented pace (see apis.md); scaled by POLITENESS_SCALE
    pace: Pace = Pace(interval=1.0)
    #: other limits a request can name with ``meta["budget"]`` (a file host's own limit,
    #: such as Dryad's 100 downloads an hour); their windows are enforced the same way
    extra_budgets: dict[str, Pace] = {}
    #: the budget archive peeks of this source's files use (None: the file host's own)
    files_budget: str | None = None

    custom_settings: dict[str, Any] = {}

    def __init__(self, *args: Any, since: str | None = None, full: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.since_arg = since
        self.full = str(full or "").lower() in ("1", "true", "yes", "on")
        if since:
            parsed = parse_datetime(since)
            if parsed is None:
                raise ValueError(f"-a since={since!r} is not a date (expected YYYY-MM-DD)")
            self.since_arg = parsed
        self._terms_by_record: dict[str, list[str]] = {}
        self.hit_cap_reached = False
        # what went wrong in a way the run's health must show (see RunSummary)
        self.problems: list[str] = []

    # ---------------------------------------------------------------- set-up
    @classmethod
    def arguments(cls) -> set[str]:
        """The ``-a`` arguments this spider takes: the named parameters of the
        ``__init__`` of each of its classes (``scrapy crawl`` refuses any other)."""
        names: set[str] = set()
        for klass in cls.__mro__:
            if klass is scrapy.Spider:
                break
            if "__init__" in vars(klass):
                params = inspect.signature(vars(klass)["__init__"]).parameters.values()
                names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
        return names

    @classmethod
    def pace_for(cls, settings: BaseSettings) -> Pace:
        """The pace this spider keeps under these settings: ``pace``, unless the API's
        limit depends on a setting (DataCite doubles it for clients that identify
        themselves with CONTACT_EMAIL). The rate-limit middleware reads the result
        from the spider instance (set in ``from_crawler``)."""
        return cls.pace

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        cls.apply_pace(settings, cls.pace_for(settings))

    @staticmethod
    def apply_pace(settings: BaseSettings, pace: Pace) -> None:
        """Turn a documented pace into the slot delay, concurrency and AutoThrottle
        bounds, scaled by POLITENESS_SCALE."""
        scale = settings.getfloat("POLITENESS_SCALE", 1.0)
        pace = pace.scaled(scale)
        settings.set("DOWNLOAD_DELAY", pace.interval, priority="spider")
        settings.set("CONCURRENT_REQUESTS_PER_DOMAIN", pace.concurrency, priority="spider")
        settings.set("AUTOTHROTTLE_START_DELAY", pace.interval, priority="spider")
        # AutoThrottle may slow a source down to a minute between requests at the
        # real pace (scaled for tests and benchmarks), never below the floor.
        settings.set("AUTOTHROTTLE_MAX_DELAY", max(pace.interval, 60.0 * scale), priority="spider")

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any) -> SourceSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        root = (settings.get(cls.api_setting) or "").strip()
        if not root.lower().startswith(("http://", "https://")):
            raise ValueError(f"{cls.api_setting}={root!r} is not an http(s) URL")
        spider.api_root = root.rstrip("/")
        spider.api_host = urlparse(spider.api_root).hostname or ""
        spider.pace = cls.pace_for(settings)
        # requests to the API host share the API's budget (see RateLimitMiddleware)
        spider.budget_keys = {spider.api_host}
        spider.terms = load_terms(settings.get("SEARCH_TERMS"))
        spider.terms_sha = terms_hash(spider.terms)
        spider.max_per_query = settings.getint("MAX_PER_QUERY", 0)
        return spider

    @property
    def state(self) -> CrawlState:
        """Saved records, failures and the last successful run (an extension, which
        Scrapy creates after the spider)."""
        return CrawlState.of(self.crawler)

    # ---------------------------------------------------------------- run scope
    @property
    def since(self) -> datetime | None:
        """Ask the API only for records created or modified after this (or everything)."""
        if self.since_arg:
            return self.since_arg
        if self.full:
            return None
        last = self.state.last_success(self.terms_sha)
        return last - SINCE_OVERLAP if last else None

    def since_date(self) -> str | None:
        s = self.since
        return s.astimezone(timezone.utc).strftime("%Y-%m-%d") if s else None

    def covers_everything(self) -> bool:
        """True when this run searched every term completely (it may then move the
        "last successful run" mark)."""
        return not self.max_per_query and not self.hit_cap_reached and not self.problems

    def report_problem(self, text: str) -> None:
        """A problem that makes this run unhealthy (said in the summary, the log and the
        exit status) and keeps the "last successful run" mark where it was."""
        if text not in self.problems:
            self.problems.append(text)
            logger.error("%s: %s", self.name, text)

    # ---------------------------------------------------------------- start
    async def start(self) -> AsyncIterator[Any]:
        since = self.since
        logger.info(
            "%s: %d search terms against %s; %s",
            self.name, len(self.terms), self.api_root,
            f"changes since {since:%Y-%m-%d}" if since else "full run",
        )
        for request in self.retry_previous_failures():
            yield request
        async for request in self.searches():
            yield request

    async def searches(self) -> AsyncIterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def retry_previous_failures(self) -> Iterator[scrapy.Request]:
        for f in self.state.previous_failures:
            callback = getattr(self, f.get("callback") or "", None)
            if not callable(callback):
                logger.warning("%s: cannot retry %s: unknown callback %r", self.name, f.get("url"), f.get("callback"))
                continue
            self.crawler.stats.inc_value("envision/failures/retried_from_last_run")
            yield self.api_request(
                f["url"],
                callback,
                method=f.get("method") or "GET",
                body=f.get("body") or None,
                headers=f.get("headers") or None,
                cb_kwargs=f.get("cb_kwargs") or {},
                dont_filter=True,
                # first in the queue, whatever priorities the spider gives its own requests
                priority=RETRY_FIRST_PRIORITY,
            )

    # ---------------------------------------------------------------- requests
    def api_url(self, path: str, params: dict[str, Any] | Iterable[tuple[str, Any]] | None = None) -> str:
        """``{API root}/{path}?{params}``; None values are left out."""
        url = self.api_root + "/" + path.lstrip("/")
        if params:
            items = params.items() if isinstance(params, dict) else params
            query = urlencode([(k, v) for k, v in items if v is not None], doseq=True)
            if query:
                url += ("&" if "?" in url else "?") + query
        return url

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate against this API (tokens from the environment)."""
        return {}

    def auth_headers_for(self, url: str) -> dict[str, str]:
        """Credentials for a URL: only on the API's own host."""
        return self.auth_headers() if urlparse(url).hostname == self.api_host else {}

    async def with_new_token(self, request: scrapy.Request) -> scrapy.Request | None:
        """The request to send again after a 401, with renewed credentials, or None when
        this source has nothing to renew (only Dryad's tokens expire during a crawl)."""
        return None

    def files_readable(self) -> bool:
        """False when this source's file host refuses anonymous reads and we have no
        credentials (archives are then not peeked, and the record says why)."""
        return True

    def windows_for(self, budget: str, scale: float) -> tuple[tuple[int, float], ...]:
        """The sliding windows of a budget (see RateLimitMiddleware)."""
        if budget in self.extra_budgets:
            return self.extra_budgets[budget].scaled(scale).windows
        if budget in getattr(self, "budget_keys", ()):
            return self.pace.scaled(scale).windows
        return ()

    def api_request(
        self,
        url: str,
        callback: Callable,
        *,
        method: str = "GET",
        json_body: Any = None,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        cb_kwargs: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        priority: int = 0,
        dont_filter: bool = False,
    ) -> scrapy.Request:
        """A request to this API. Credentials are attached only when the URL is on the
        API's own host (a redirect to storage elsewhere never carries them: Scrapy
        drops Authorization on cross-domain redirects)."""
        hdrs = {"Accept": "application/json"}
        hdrs.update(self.auth_headers_for(url))
        if json_body is not None:
            body = json.dumps(json_body)
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update({k: v for k, v in headers.items() if k.lower() != "authorization"})
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.on_request_failed,
            method=method,
            body=body,
            headers=hdrs,
            cb_kwargs=cb_kwargs or {},
            meta=meta or {},
            priority=priority,
            dont_filter=dont_filter,
        )

    def on_request_failed(self, failure: Failure) -> None:
        """Errback of every API request: 4xx answers other than 429 are permanent
        (logged, counted); everything else that reaches here exhausted its retries
        and is kept for the next run."""
        request = failure.request
        response = getattr(failure.value, "response", None)
        if response is not None:
            status = response.status
            self.crawler.stats.inc_value(f"envision/http_error/{status}")
            if status == 401:
                self.report_problem(
                    "the API refused our credentials (HTTP 401); check the token in the environment or .env"
                )
                return
            if 400 <= status < 500 and status not in (408, 429):
                logger.warning("%s: %s answered HTTP %d; skipped", self.name, request.url, status)
                return
            reason = f"HTTP {status}"
        else:
            reason = f"{failure.type.__name__}: {failure.getErrorMessage()[:200]}"
        self.state.record_failure(request, reason)

    # ---------------------------------------------------------------- records
    def first_sighting(self, source_id: str, term: str | None) -> bool:
        """Remember that ``term`` found ``source_id``; True the first time this run."""
        terms = self._terms_by_record.get(source_id)
        if terms is None:
            self._terms_by_record[source_id] = [term] if term else []
            self.crawler.stats.inc_value("envision/records/unique")
            return True
        if term and term not in terms:
            terms.append(term)
        return False

    def terms_for(self, source_id: str) -> list[str]:
        return list(self._terms_by_record.get(source_id, []))

    def is_unchanged(self, source_id: str, source_modified: Any) -> bool:
        """True (and counted) when the saved record has this modified date and this is
        not a full run: such records are neither fetched nor re-inspected."""
        if self.full or not self.state.is_unchanged(source_id, source_modified):
            return False
        self.crawler.stats.inc_value("envision/records/unchanged")
        return True

    def term_hit(self, source_id: str, term: str | None) -> TermHit | None:
        """A TermHit for a record this run found again (merged into the saved file)."""
        return TermHit(source=self.name, source_id=source_id, term=term) if term else None

    def each_record(self, records: Any, mapper: Callable[[dict], Iterable[Any]]) -> Iterator[Any]:
        """Run ``mapper`` on each record of a page; a record that breaks it (wrong
        types, missing fields) is logged and counted and the others go on."""
        if not isinstance(records, list):
            raise TypeError(f"expected a list of records, got {type(records).__name__}")
        for record in records:
            if not isinstance(record, dict):
                self.crawler.stats.inc_value("envision/bad_record")
                logger.error("%s: skipped a record that is not an object: %r", self.name, str(record)[:100])
                continue
            try:
                yield from mapper(record)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                self.crawler.stats.inc_value("envision/bad_record")
                logger.error(
                    "%s: skipped malformed record %s: %s: %s",
                    self.name, str(record.get("id") or record.get("doi") or "?")[:80], type(exc).__name__, exc,
                )

    def count_hits(self, n: int) -> None:
        self.crawler.stats.inc_value("envision/hits", n)

    def new_item(self, source_id: str, *, source_modified: Any, api_url: str, **fields: Any) -> DatasetItem:
        item = DatasetItem(source=self.name, source_id=str(source_id), **fields)
        item.provenance = {
            "harvested_at": utcnow_iso(),
            "search_terms": self.terms_for(str(source_id)),
            "source_modified": iso(source_modified),
            "api_url": api_url,
        }
        return item
