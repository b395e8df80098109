"""Per-source pace, hourly budgets and 429 handling, without blocking the reactor.

The base pace of each API is the download slot's ``DOWNLOAD_DELAY`` (set by every
spider from its documented limit, see ``SourceSpider.update_settings``), with
AutoThrottle on top. This middleware adds what Scrapy lacks:

* sliding-window budgets a spider declares (``Pace.windows``, e.g. OSF's 100 requests
  an hour): when a budget is spent, that spider's requests wait until it refills,
  and the log says so once;
* 429 answers: the wait the server names (``Retry-After`` in seconds or as an HTTP
  date, ``X-RateLimit-Reset``, ``RateLimit-Reset``) pauses every request of that budget
  (the API's host, or the ``budget`` a request names so a file host can share its API's
  budget), then the request is sent again; other sources, which are other crawlers,
  are never slowed down;
* a successful answer saying ``X-RateLimit-Remaining: 0`` / ``RateLimit-Remaining: 0``
  pauses the budget until the reset time, before a 429 happens;
* retry backoff: a request the retry middleware scheduled for later
  (``meta["retry_not_before"]``) waits here.

Waiting is an ``await asyncio.sleep`` in ``process_request``: the reactor keeps serving
every other request and spider in the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from scrapy.utils.httpobj import urlparse_cached

from envision_spiders.politeness import WindowBudget, exhausted_wait, server_wait

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

# Waits shorter than this are routine pacing and are not announced in the log.
ANNOUNCE_AFTER = 10.0


def budget_key(request: Request) -> str:
    return request.meta.get("budget") or urlparse_cached(request).hostname or ""


class RateLimitMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        self.scale = settings.getfloat("POLITENESS_SCALE", 1.0)
        self.max_retries = settings.getint("RATELIMIT_MAX_RETRIES", 8)
        self.max_wait = settings.getfloat("RATELIMIT_MAX_WAIT", 3600.0)
        self.budgets: dict[str, WindowBudget] = {}
        self._announced: dict[str, float] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RateLimitMiddleware:
        return cls(crawler)

    def budget(self, key: str) -> WindowBudget:
        b = self.budgets.get(key)
        if b is None:
            spider = self.crawler.spider
            windows_for = getattr(spider, "windows_for", None)
            windows = windows_for(key, self.scale) if windows_for else ()
            b = self.budgets[key] = WindowBudget(windows)
        return b

    async def process_request(self, request: Request) -> None:
        key = budget_key(request)
        budget = self.budget(key)
        not_before = request.meta.get("retry_not_before", 0.0)
        while True:
            now = time.monotonic()
            wait = max(not_before - now, budget.wait(now))
            if wait <= 0:
                budget.take(now)
                return None
            self._announce(key, budget, wait, now)
            self.crawler.stats.inc_value("envision/ratelimit/waits")
            await asyncio.sleep(wait)

    def process_response(self, request: Request, response: Response) -> Request | Response:
        key = budget_key(request)
        budget = self.budget(key)
        now, epoch = time.monotonic(), time.time()
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
        if wait < ANNOUNCE_AFTER:
            return
        until = now + wait
        if self._announced.get(key, 0.0) >= until - ANNOUNCE_AFTER:
            return
        self._announced[key] = until
        name = getattr(self.crawler.spider, "name", "?")
        if budget.blocked_until > now:
            why = "the server asked us to wait (429 or an exhausted rate limit)"
        else:
            why = "its request budget (%s) is spent" % ", ".join(
                f"{n} per {int(s)} s" for n, s in budget.windows
            )
        logger.info("%s: pausing requests to %s for %.0f s: %s", name, key, wait, why)
