"""The base of every source spider: the spider knows its API; everything else is here.

A source spider declares its API and writes three small hooks; ``SourceSpider`` runs the
search loop around them: search terms, ``MAX_PER_QUERY``, the incremental rule ("skip a
record whose saved copy has the same modified date"), one fetch per record per run with
every term that found it remembered, credentials, failures kept for the next run, and
the run's health.

Recipe for a new source
-----------------------
1. **Declare** (class attributes): ``name`` (the spider, the ``data/metadata/{name}/``
   folder, the state file), ``api_setting`` (the setting holding the API root: add it to
   ``settings.py`` and ``localapi``), ``pace`` (the API's documented limit, a
   :class:`~envision_spiders.politeness.Pace`). Optional: ``extra_budgets`` and
   ``files_budget`` (a file host's own limit, or a class of request with a budget of
   its own, named by its requests' ``meta["request_class"]``, like Zenodo's searches), ``accumulated_extra`` (``extra`` keys that
   grow across runs), ``id_fields`` (where a hit keeps its id, for log lines),
   ``api_setting_aliases`` (older names of the API setting), ``landing_pages = False``
   (no schema.org page to render). Credentials come from
   :func:`envision_spiders.credentials.credentials_for` by ``name`` (add the source there
   when its API takes any).
2. **Map** (pure functions in ``envision_spiders/mapping/{name}.py``, no spider, no
   I/O): ``map_record(hit, ...) -> dict`` of :class:`~envision_spiders.items.DatasetItem`
   fields, tested on the recorded samples in ``localapi/samples/{name}/``.
3. **Ask** (``search_request(term, ...)``): the first request of one term, built with
   ``api_request`` / ``api_url``; paging state goes in ``cb_kwargs``, which must stay
   plain JSON (a request that fails for good is kept with them and sent again next run,
   by callback name).
4. **Read a page** (the callback, ``parse_search``): ``yield from self.hits_arrived(term,
   hits)`` counts the term and its hits and calls ``handle_hit(hit, term)`` for each (a
   malformed hit is logged by its id and counted, the page goes on); ask for the next
   page while ``self.wants_more(term)`` (False once ``MAX_PER_QUERY`` hits arrived).
5. **Decide per hit** (``handle_hit(hit, term)``): ``self.needs_fetching(source_id, term,
   modified)`` is False when this run already has the record (the term is remembered) or
   when the saved copy has this modified date (its terms are merged into it); otherwise
   yield ``self.new_item(source_id, source_modified=..., api_url=..., **map_record(hit))``,
   or the request that fetches what the hit lacks (files).

Runtime order: ``from_crawler`` (API root, credentials, terms) -> ``start()``: requests
that failed last run first, then ``searches()`` (``search_request(term)`` for every term)
-> ``parse_search`` -> ``hits_arrived`` -> ``handle_hit`` -> ``needs_fetching`` ->
``new_item``; every API request's errback is ``on_request_failed``. Overridable hooks:
``searches``, ``same_version`` (when a saved copy is current), ``files_readable``,
``api_budget``, ``pace_for``, ``on_request_failed``. For an API that pages only so deep:
``too_many_hits`` (search narrower windows, ``envision_spiders.windows``) and
``window_overflow`` (what is out of reach keeps the incremental mark). Shared mechanics live elsewhere:
credentials attached and renewed by ``CredentialsMiddleware``, archives peeked by
``ArchivePeekMiddleware``, pace and 429s by ``RateLimitMiddleware``, records written by
the pipelines, terms and saved records kept by ``CrawlState``.

A whole spider, for an API that answers ``{"results": [...]}`` pages::

    class ExampleSpider(SourceSpider):
        name, api_setting, pace = "example", "EXAMPLE_API_URL", Pace(interval=1.0)

        def search_request(self, term, page=1):
            url = self.api_url("search", {"q": term, "page": page})
            return self.api_request(url, self.parse_search, cb_kwargs={"term": term, "page": page})

        def parse_search(self, response, term, page):
            hits = response.json()["results"]
            yield from self.hits_arrived(term, hits)
            if hits and self.wants_more(term):
                yield self.search_request(term, page + 1)

        def handle_hit(self, hit, term):
            sid = source_id(hit["id"])
            if self.needs_fetching(sid, term, hit.get("modified")):
                yield self.new_item(sid, source_modified=hit.get("modified"),
                                    api_url=self.api_url(f"records/{sid}"), **map_record(hit))

Politeness lives in settings and middlewares: ``update_settings`` turns ``pace`` into
the slot delay (AutoThrottle's floor) and concurrency, scaled by POLITENESS_SCALE.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode, urlparse

import scrapy
from scrapy.settings import BaseSettings
from twisted.python.failure import Failure

from envision_spiders.credentials import FILES_NEED_CREDENTIALS, Credentials, credentials_for
from envision_spiders.extensions.state import SINCE_OVERLAP, CrawlState, mark_text, terms_hash
from envision_spiders.items import DatasetItem
from envision_spiders.middlewares.ratelimit import CrawlStopping
from envision_spiders.politeness import Pace
from envision_spiders.terms import load_terms
from envision_spiders.textutil import iso, name_text, parse_datetime, utcnow_iso

logger = logging.getLogger(__name__)

# Requests that failed for good last time go before everything else this time.
RETRY_FIRST_PRIORITY = 1000
# Where a record may keep an identifier worth naming in a log line about it.
ID_FIELDS = ("id", "doi", "identifier", "ref")
# What a malformed record raises inside a mapping; anything else is a bug and propagates.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def source_id(value: Any) -> str:
    """A record's id as the string it is saved under: ids are strings or integers;
    anything else (an object, a list, a boolean, blank text) is a malformed record."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"id {str(value)[:60]!r} is a {type(value).__name__}, not a string or an integer")
    text = str(value).strip()
    if not text:
        raise ValueError("empty id")
    return text


def setting_with_aliases(settings: BaseSettings, name: str, *aliases: str) -> Any:
    """A setting that also has older names: whichever was given with the higher priority
    (``-s OLD_NAME=...`` beats the default of ``NAME``); ``name`` on a tie."""
    best, best_priority = settings.get(name), settings.getpriority(name) or 0
    for alias in aliases:
        priority = settings.getpriority(alias) or 0
        if priority > best_priority:
            best, best_priority = settings.get(alias), priority
    return best


def clean_creators(creators: Any) -> list[dict[str, Any]]:
    """Creators as mappings of text: a name that is an object or a list becomes its text
    (``{"name": "X"}`` -> ``"X"``) or, when it holds none, the creator is dropped; other
    values that are objects are turned into text the same way or left out."""
    out = []
    for c in creators if isinstance(creators, list) else []:
        entry = {"name": c} if isinstance(c, str) else c
        if not isinstance(entry, dict):
            continue
        name = name_text(entry.get("name"))
        if not name:
            continue
        cleaned: dict[str, Any] = {"name": name}
        for key, value in entry.items():
            if key == "name" or value is None:
                continue
            if isinstance(value, (dict, list)):
                value = name_text(value)
            if value not in (None, ""):
                cleaned[key] = value
        out.append(cleaned)
    return out


class SourceSpider(scrapy.Spider):
    #: name of the setting that holds this API's root URL
    api_setting: str = ""
    #: older names of that setting, still read (the one given with the higher priority wins)
    api_setting_aliases: tuple[str, ...] = ()
    #: the API's documented pace (see docs/sources/); scaled by POLITENESS_SCALE
    pace: Pace = Pace(interval=1.0)
    #: other limits a request can name with ``meta["budget"]`` (a file host's own limit,
    #: such as Dryad's 100 downloads an hour); their windows are enforced the same way
    extra_budgets: dict[str, Pace] = {}
    #: the budget archive peeks of this source's files use (None: the file host's own)
    files_budget: str | None = None
    #: ``extra`` keys whose values grow across runs (merged by the persistence pipeline)
    accumulated_extra: tuple[str, ...] = ()
    #: where a hit keeps an identifier to name it in log lines, first found first
    id_fields: tuple[str, ...] = ID_FIELDS
    #: False when the source's landing pages hold no schema.org Dataset to render
    #: (LandingPageMiddleware, RENDER_LANDING_PAGES)
    landing_pages: bool = True

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
        self.hit_cap_reached = False
        # what went wrong in a way the run's health must show (see RunSummary)
        self.problems: list[str] = []
        self._terms_searched: set[str] = set()
        self._hits_per_query: Counter = Counter()

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
        limit depends on a setting or on credentials (DataCite doubles it for clients
        that identify themselves with CONTACT_EMAIL). The rate-limit middleware reads the
        result from the spider instance (set in ``from_crawler``)."""
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
        root = str(setting_with_aliases(settings, cls.api_setting, *cls.api_setting_aliases) or "").strip()
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
        # this source's credentials, built once: API requests, archive peeks and downloads
        creds: Credentials = credentials_for(cls.name, spider.api_root, settings=settings)
        creds.count = lambda key: crawler.stats.inc_value(f"envision/{cls.name}/{key}")
        creds.use_post(spider.post_form)
        spider.credentials = creds
        return spider

    @property
    def state(self) -> CrawlState:
        """Saved records, this run's terms, failures and the last successful run (an
        extension, which Scrapy creates after the spider)."""
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
        return not self.incomplete_reasons()

    def incomplete_reasons(self) -> list[str]:
        """Why this run did not search everything (and so keeps the incremental mark)."""
        reasons = []
        if self.max_per_query:
            reasons.append(f"MAX_PER_QUERY={self.max_per_query} capped the hits of each term")
        if self.hit_cap_reached:
            reasons.append("part of a term's results was out of the API's reach")
        return reasons + self.problems

    def report_problem(self, text: str) -> None:
        """A problem that makes this run unhealthy (said in the summary, the log and the
        exit status) and keeps the "last successful run" mark where it was."""
        if text not in self.problems:
            self.problems.append(text)
            logger.error("%s: %s", self.name, text)

    # ---------------------------------------------------------------- start
    async def start(self) -> AsyncIterator[Any]:
        if self.since_arg:
            scope = f"changes since {self.since_arg:%Y-%m-%d} (-a since)"
        elif self.full:
            scope = "a full run (-a full=1)"
        else:
            # the words the run that set the mark ended with (CrawlState.spider_closed)
            scope = mark_text(self.since and self.since + SINCE_OVERLAP)
        logger.info("%s: %d search terms against %s; %s", self.name, len(self.terms), self.api_root, scope)
        for request in self.retry_previous_failures():
            yield request
        async for request in self.searches():
            yield request

    async def searches(self) -> AsyncIterator[Any]:
        """The first request of every term (override to search otherwise)."""
        for term in self.terms:
            yield self.search_request(term)

    def search_request(self, term: str) -> scrapy.Request:  # pragma: no cover - abstract
        raise NotImplementedError

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

    # ---------------------------------------------------------------- the search loop
    def hits_arrived(
        self, term: str, hits: Any, handle: Callable[[dict, str], Iterable[Any]] | None = None, *, query: Any = None,
        channel: str = "terms",
    ) -> Iterator[Any]:
        """A page of search hits for ``term`` arrived: the term counts as searched (once),
        its hits are counted (for the run and for ``MAX_PER_QUERY`` of this ``query``:
        the term by default, or the term and ``query`` when one term makes several
        queries), and ``handle(hit, term)`` (``handle_hit`` by default) runs on each.
        A search of another ``channel`` than the terms (DataCite's ``funder``) names
        itself with ``term`` and is counted as that channel's search, not as a term."""
        if term not in self._terms_searched:
            self._terms_searched.add(term)
            self.crawler.stats.inc_value("envision/terms_searched" if channel == "terms"
                                         else f"envision/channels/{channel}/searches")
        n = len(hits) if isinstance(hits, list) else 0
        self.crawler.stats.inc_value("envision/hits", n)
        if channel != "terms":
            self.crawler.stats.inc_value(f"envision/channels/{channel}/hits", n)
        self._hits_per_query[term if query is None else (term, query)] += n
        handle = handle or self.handle_hit
        yield from self.each_record(hits, lambda hit: handle(hit, term))

    def handle_hit(self, hit: dict, term: str) -> Iterable[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def hits_of(self, term: str, query: Any = None) -> int:
        """Hits of this term (and query) that arrived so far this run."""
        return self._hits_per_query[term if query is None else (term, query)]

    def wants_more(self, term: str, query: Any = None) -> bool:
        """False once ``MAX_PER_QUERY`` hits of this query have arrived."""
        return not (self.max_per_query and self.hits_of(term, query) >= self.max_per_query)

    def too_many_hits(self, term: str, total: int, limit: int, where: str, halves: list | None) -> list | None:
        """``term`` has ``total`` hits in the window ``where`` (for the log), more than the
        API pages to (``limit``): the ``halves`` to search instead (counted, logged), or
        None when the window cannot narrow (see :meth:`window_overflow`)."""
        if halves:
            self.crawler.stats.inc_value(f"envision/{self.name}/window_splits")
            logger.info("%s: term %r: %d hits in %s pass the %d-result window; searching it in two halves",
                        self.name, term, total, where, limit)
            return halves
        self.window_overflow(term, f"{total} hits in {where}, a window that cannot narrow further; "
                                   f"only the first {limit} are reachable")
        return None

    def window_overflow(self, term: str, why: str) -> None:
        """Part of a term's results is out of reach: logged, counted, and this run does
        not move the incremental mark (the next run searches the period again)."""
        self.hit_cap_reached = True
        self.crawler.stats.inc_value(f"envision/{self.name}/window_overflow")
        logger.warning("%s: term %r: %s; this run does not move the incremental mark", self.name, term, why)

    # ---------------------------------------------------------------- records
    def needs_fetching(self, source_id: str, term: str | None, modified: Any, channel: str = "terms") -> bool:
        """The one incremental and de-duplication rule: False when this run already has
        the record (``term`` and ``channel`` are remembered for it) or when its saved
        copy is current (``same_version``; the run's terms and channels are merged into
        that copy); True when the record must be fetched and saved."""
        return self.first_sighting(source_id, term, channel) and not self.is_unchanged(source_id, modified)

    def first_sighting(self, source_id: str, term: str | None, channel: str = "terms") -> bool:
        """Remember that ``term`` (of ``channel``) found ``source_id``; True the first
        time this run."""
        first = self.state.found(source_id, term, channel)
        if first:
            self.crawler.stats.inc_value("envision/records/unique")
        return first

    def terms_for(self, source_id: str) -> list[str]:
        """The terms that found this record this run, in the order they did."""
        return self.state.terms_found(source_id)

    def is_unchanged(self, source_id: str, modified: Any) -> bool:
        """True (and counted) when the saved copy is current and this is not a full run:
        such records are neither fetched nor re-inspected, and keep their saved copy."""
        if self.full:
            return False
        saved = self.state.saved_modified(source_id)
        if not saved or not self.same_version(saved, modified):
            return False
        self.crawler.stats.inc_value("envision/records/unchanged")
        self.state.keep_saved(source_id)
        return True

    def same_version(self, saved_modified: Any, modified: Any) -> bool:
        """Whether a record saved with ``saved_modified`` is current for a hit that says
        ``modified`` (by default: the very same modified date)."""
        return bool(modified) and saved_modified == iso(modified)

    def each_record(self, records: Any, mapper: Callable[[dict], Iterable[Any]]) -> Iterator[Any]:
        """Run ``mapper`` on each record of a page; a record that breaks it (wrong
        types, missing fields) is logged by whatever id it has and counted, and the
        others go on."""
        if not isinstance(records, list):
            raise TypeError(f"expected a list of records, got {type(records).__name__}")
        for record in records:
            if not isinstance(record, dict):
                self.crawler.stats.inc_value("envision/bad_record")
                logger.error("%s: skipped a record that is not an object: %r", self.name, str(record)[:100])
                continue
            try:
                yield from mapper(record)
            except MALFORMED as exc:
                self.bad_record(record, exc)

    def bad_record(self, record: dict, exc: Exception) -> None:
        self.crawler.stats.inc_value("envision/bad_record")
        logger.error("%s: skipped malformed record %s: %s: %s", self.name, self.record_name(record), type(exc).__name__, exc)

    def record_name(self, record: dict) -> str:
        """Whatever identifier a record has (``id_fields``, first found), for log lines."""
        for key in self.id_fields:
            value = record.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                return f"{key}={str(value).strip()[:80]}"
        return "without an id"

    def new_item(self, source_id_: Any, *, source_modified: Any, api_url: str, **fields: Any) -> DatasetItem:
        sid = source_id(source_id_)
        # what a mapping could not read of the record's funding: logged and counted here,
        # once for every source (each problem names the record it came from)
        for problem in fields.pop("funding_problems", None) or ():
            self.crawler.stats.inc_value("envision/funding/problems")
            self.crawler.stats.inc_value(f"envision/{self.name}/funding_problems")
            logger.warning("%s: funding: %s", self.name, problem)
        if "creators" in fields:
            fields["creators"] = clean_creators(fields["creators"])
        item = DatasetItem(source=self.name, source_id=sid, **fields)
        item.provenance = {
            "harvested_at": utcnow_iso(),
            "search_terms": self.terms_for(sid),
            "found_by": self.state.channels_found(sid),
            "source_modified": iso(source_modified),
            "api_url": api_url,
        }
        return item

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

    def api_budget(self) -> str | None:
        """The budget API requests take (see RateLimitMiddleware); None: their host's."""
        return None

    def windows_for(self, budget: str, scale: float) -> tuple[tuple[int, float], ...]:
        """The sliding windows of a budget (see RateLimitMiddleware)."""
        if budget in self.extra_budgets:
            return self.extra_budgets[budget].scaled(scale).windows
        if budget in getattr(self, "budget_keys", ()):
            return self.pace.scaled(scale).windows
        return ()

    def files_readable(self) -> bool:
        """False when this source's file host refuses anonymous reads and we have no
        credentials (archives are then not peeked, and the record says why)."""
        return self.name not in FILES_NEED_CREDENTIALS or self.credentials.authenticated

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
        """A request to this API, with the credentials current now where they apply
        (``CredentialsMiddleware`` sets the current ones again when it leaves)."""
        hdrs = {"Accept": "application/json"}
        if self.credentials.applies_to(url):
            hdrs.update(self.credentials.current_headers())
        if json_body is not None:
            body = json.dumps(json_body)
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update({k: v for k, v in headers.items() if k.lower() != "authorization"})
        meta = dict(meta or {})
        budget = self.api_budget()
        if budget and urlparse(url).hostname == self.api_host:
            meta.setdefault("budget", budget)
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.on_request_failed,
            method=method,
            body=body,
            headers=hdrs,
            cb_kwargs=cb_kwargs or {},
            meta=meta,
            priority=priority,
            dont_filter=dont_filter,
        )

    async def post_form(self, url: str, form: dict[str, str]) -> tuple[int, bytes]:
        """POST a form through the engine, for OAuth token requests: paced like any other
        request, never followed through a redirect (the secret is in the body), never
        given credentials, never kept as a failure (no errback)."""
        request = scrapy.Request(
            url,
            method="POST",
            body=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            dont_filter=True,
            meta={"budget": f"{self.name}-oauth", "dont_redirect": True, "credentials": False},
        )
        response = await self.crawler.engine.download_async(request)
        return response.status, response.body

    def on_request_failed(self, failure: Failure) -> None:
        """Errback of every API request: 4xx answers other than 429 are permanent
        (logged, counted); everything else that reaches here exhausted its retries
        and is kept for the next run."""
        request = failure.request
        if failure.check(CrawlStopping):
            # dropped because the crawl is stopping or the host is unreachable: the
            # next run searches again (the incremental mark did not move)
            return
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
