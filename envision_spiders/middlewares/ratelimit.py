"""Per-source pace, budgets per class of request, 429 handling and unreachable hosts,
without blocking the reactor.

The base pace of each API is the download slot's ``DOWNLOAD_DELAY`` (set by every
spider from its documented limit, see ``SourceSpider.update_settings``), with
AutoThrottle on top. This middleware adds what Scrapy lacks:

* sliding-window budgets a spider declares (``Pace.windows``, e.g. OSF's 100 requests
  an hour): when a budget is spent, that spider's requests wait until it refills
  ("pacing", counted as ``envision/pacing/waits``), and the log says so once;
* budgets per class of request: a request whose ``meta["request_class"]`` names one of
  the spider's ``extra_budgets`` (Zenodo's searches: 30 a minute) spends that budget
  *and* its host's (Zenodo's 60 a minute for every request), so each class goes at its
  own published pace;
* 429 answers ("rate-limited", counted as ``envision/ratelimit/429``): the wait the
  server names (``Retry-After`` in seconds or as an HTTP date, ``X-RateLimit-Reset``,
  ``RateLimit-Reset``) pauses every request of that budget (the request's class, else
  the API's host, or the ``budget`` a request names so a file host can share its API's
  budget), then the request is sent again; other sources, which are other crawlers,
  are never slowed down;
* a successful answer saying ``X-RateLimit-Remaining: 0`` / ``RateLimit-Remaining: 0``
  pauses the budget until the reset time, before a 429 happens;
* retry backoff: a request the retry middleware scheduled for later
  (``meta["retry_not_before"]``) waits here;
* connection failures (DNS lookup failed, connection refused or timed out: the server
  never saw the request) give its share of the budget back; when the API's host gave
  ``UNREACHABLE_TRIES`` of them in a row over at least ``UNREACHABLE_SECONDS``, with no
  answer in between, the source is stopped with one line (``osf: api.osf.io unreachable
  (DNS lookup failed); source skipped this run``), a problem for the run's health, and
  the spider closes with the reason ``unreachable``; the other sources go on.

Waiting is an ``await asyncio.sleep`` in ``process_request``: the reactor keeps serving
every other request and spider in the process. A wait ends early when the crawl stops
(SIGTERM, Ctrl-C, the source closed): the request is dropped with
:class:`CrawlStopping`, which the spiders do not keep as a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import CannotResolveHostError, DownloadConnectionRefusedError, IgnoreRequest
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import error as twisted_errors

from envision_spiders.politeness import WindowBudget, exhausted_wait, server_wait

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

# Waits shorter than this are routine pacing and are not announced in the log.
ANNOUNCE_AFTER = 10.0
# A long wait is slept in slices of at most this many seconds, so that a crawl told to
# stop (SIGTERM, Ctrl-C: Scrapy sets ``crawler.crawling`` to False; a closed source)
# drops its waiting requests within a second instead of at the end of the wait.
STOP_CHECK_SECONDS = 1.0
# What the request's failure says about why it never reached the server, for the one
# line that stops an unreachable source: Scrapy's own exceptions (2.19's HTTP handler),
# then Twisted's (other handlers). DNSLookupError is not a ConnectError.
CONNECTION_FAILURES: tuple[tuple[type[BaseException], str], ...] = (
    (CannotResolveHostError, "DNS lookup failed"),
    (DownloadConnectionRefusedError, "connection refused"),
    (twisted_errors.DNSLookupError, "DNS lookup failed"),
    (twisted_errors.ConnectionRefusedError, "connection refused"),
    (twisted_errors.TCPTimedOutError, "connection timed out"),
    (twisted_errors.NoRouteError, "no route to host"),
    (twisted_errors.ConnectError, "cannot connect"),
)


class CrawlStopping(IgnoreRequest):
    """A request dropped because its crawl is stopping or its source's host is
    unreachable: not a failure of the request, so it is not kept for the next run."""


def connection_failure(exception: BaseException) -> str | None:
    """Why a request never reached its server (None: it may have)."""
    for kind, why in CONNECTION_FAILURES:
        if isinstance(exception, kind):
            return why
    return None


def budget_key(request: Request) -> str:
    return request.meta.get("budget") or urlparse_cached(request).hostname or ""


def budget_keys(request: Request) -> tuple[str, ...]:
    """Every budget a request spends: its class's (``meta["request_class"]``), if it
    has one, then its host's (or the ``budget`` it names)."""
    key = budget_key(request)
    cls = request.meta.get("request_class")
    return (cls, key) if cls else (key,)


class RateLimitMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        self.scale = settings.getfloat("POLITENESS_SCALE", 1.0)
        self.max_retries = settings.getint("RATELIMIT_MAX_RETRIES", 8)
        self.max_wait = settings.getfloat("RATELIMIT_MAX_WAIT", 3600.0)
        self.unreachable_tries = max(1, settings.getint("UNREACHABLE_TRIES", 3))
        self.unreachable_seconds = settings.getfloat("UNREACHABLE_SECONDS", 10.0)
        self.budgets: dict[str, WindowBudget] = {}
        self._announced: dict[str, float] = {}
        # connection failures in a row of the API's host: count, time of the first
        self._failing: tuple[int, float] = (0, 0.0)
        #: why this source stopped (None while it runs)
        self.stopped: str | None = None
        self._started = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RateLimitMiddleware:
        o = cls(crawler)
        crawler.signals.connect(o._engine_started, signal=signals.engine_started)
        return o

    def _engine_started(self) -> None:
        self._started = True

    def budget(self, key: str) -> WindowBudget:
        b = self.budgets.get(key)
        if b is None:
            spider = self.crawler.spider
            windows_for = getattr(spider, "windows_for", None)
            windows = windows_for(key, self.scale) if windows_for else ()
            b = self.budgets[key] = WindowBudget(windows)
        return b

    def stopping(self) -> bool:
        """True once the crawl was told to stop (Scrapy's graceful shutdown clears
        ``crawler.crawling``) or this source was stopped here."""
        return bool(self.stopped) or (self._started and not self.crawler.crawling)

    async def process_request(self, request: Request) -> None:
        keys = budget_keys(request)
        budgets = [self.budget(k) for k in keys]
        not_before = request.meta.get("retry_not_before", 0.0)
        counted = False
        while True:
            if self.stopping():
                self.crawler.stats.inc_value("envision/stopped/dropped_requests")
                raise CrawlStopping(f"not sent: {self.stopped or 'the crawl is stopping'}")
            now = time.monotonic()
            waits = [b.wait(now) for b in budgets]
            wait = max(not_before - now, *waits)
            if wait <= 0:
                request.meta["_ratelimit_stamps"] = [(k, b.take(now)) for k, b in zip(keys, budgets)]
                return None
            slowest = max(range(len(keys)), key=lambda i: waits[i])
            self._announce(keys[slowest], budgets[slowest], wait, now)
            if not counted and waits[slowest] >= wait and budgets[slowest].blocked_until <= now:
                # pacing: a budget of this source is spent (a wait the server asked for is
                # counted with its 429, a retry's backoff by the retry middleware)
                self.crawler.stats.inc_value("envision/pacing/waits")
                self.crawler.stats.inc_value("envision/pacing/wait_seconds", int(wait + 0.5))
            counted = True
            await asyncio.sleep(min(wait, STOP_CHECK_SECONDS))

    def _settle(self, request: Request, now: float, refund: bool = False) -> None:
        """The request's answer (or failure) arrived: its stamps move to now, the latest
        the server can have counted it (see WindowBudget); a request that never reached
        the server gives them back."""
        for key, stamp in request.meta.pop("_ratelimit_stamps", ()):
            budget = self.budget(key)
            if refund:
                budget.refund(stamp)
            else:
                budget.done(stamp, now)

    def process_exception(self, request: Request, exception: BaseException) -> None:
        why = connection_failure(exception)
        self._settle(request, time.monotonic(), refund=why is not None)
        if why is None or urlparse_cached(request).hostname != getattr(self.crawler.spider, "api_host", None):
            return None
        self.crawler.stats.inc_value("envision/unreachable/connection_failures")
        now = time.monotonic()
        count, first = self._failing
        count, first = count + 1, first if count else now
        self._failing = (count, first)
        if count >= self.unreachable_tries and now - first >= self.unreachable_seconds and not self.stopped:
            self._stop_source(urlparse_cached(request).hostname or "", why)
        if self.stopped:
            raise CrawlStopping(f"not sent: {self.stopped}")
        return None

    def _stop_source(self, host: str, why: str) -> None:
        spider = self.crawler.spider
        self.stopped = f"{host} unreachable ({why}); source skipped this run"
        self.crawler.stats.set_value("envision/unreachable", self.stopped)
        report = getattr(spider, "report_problem", None)
        if report is not None:
            report(self.stopped)  # logs "<source>: <host> unreachable (...); source skipped this run"
        else:
            logger.error("%s: %s", spider.name, self.stopped)
        # not awaited: closing waits for the requests in progress, this one included
        self._closing = deferred_from_coro(self.crawler.engine.close_spider_async(reason="unreachable"))

    def process_response(self, request: Request, response: Response) -> Request | Response:
        key = budget_keys(request)[0]
        budget = self.budget(key)
        now, epoch = time.monotonic(), time.time()
        self._settle(request, now)
        if urlparse_cached(request).hostname == getattr(self.crawler.spider, "api_host", None):
            self._failing = (0, 0.0)
        if response.status == 429:
            stats = self.crawler.stats
            stats.inc_value("envision/ratelimit/429")
            wait = server_wait(response.headers, epoch)
            if wait is None:
                # no header: a minute at the real pace, at least a second
                wait = max(1.0, 60.0 * self.scale)
            wait = min(wait, self.max_wait)
            budget.block(now + wait)
            stats.inc_value("envision/ratelimit/wait_seconds", int(wait + 0.5))
            attempts = request.meta.get("ratelimit_retries", 0) + 1
            if attempts > self.max_retries or request.meta.get("dont_retry"):
                stats.inc_value("envision/ratelimit/gave_up")
                logger.error(
                    "%s still answers 429 after %d attempts for %s; giving up on this request",
                    key, attempts - 1, request.url,
                )
                return response
            retry = request.replace(dont_filter=True)
            retry.meta["ratelimit_retries"] = attempts
            return retry
        exhausted = exhausted_wait(response.headers, epoch)
        if exhausted is not None and exhausted > 0:
            budget.block(now + min(exhausted, self.max_wait))
            self.crawler.stats.inc_value("envision/ratelimit/budget_exhausted")
        return response

    def _announce(self, key: str, budget: WindowBudget, wait: float, now: float) -> None:
        # a wait of a quarter of the budget's longest window is worth saying whatever the
        # POLITENESS_SCALE (OSF's hour is 14 s at 0.004)
        threshold = min([ANNOUNCE_AFTER] + [period / 4 for _, period in budget.windows])
        if wait < threshold:
            return
        until = now + wait
        if self._announced.get(key, 0.0) >= until - threshold:
            return
        self._announced[key] = until
        name = getattr(self.crawler.spider, "name", "?")
        if budget.blocked_until > now:
            logger.info("%s: rate-limited by %s: waiting %.0f s, as the server asked (429 or an exhausted "
                        "rate limit)", name, key, wait)
        else:
            logger.info("%s: pacing: waiting %.0f s before the next request to %s: its request budget (%s) is spent",
                        name, wait, key, ", ".join(f"{n} per {int(s)} s" for n, s in budget.windows))
