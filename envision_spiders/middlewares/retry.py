"""Retries with exponential backoff and jitter, bounded in attempts and in time.

Scrapy's RetryMiddleware decides *what* to retry (5xx, timeouts, dropped connections:
``RETRY_HTTP_CODES`` and ``RETRY_EXCEPTIONS``) and counts attempts; it sends the retry
at once. This subclass keeps that logic and only adds *when*: the retry carries
``meta["retry_not_before"]``, which the rate-limit middleware awaits without blocking
the reactor. A request that keeps failing past ``RETRY_MAX_ELAPSED`` seconds is given
up even if attempts remain. What finally fails reaches the spider's errback, which
records it for the next run.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from scrapy.downloadermiddlewares.retry import RetryMiddleware

from envision_spiders.politeness import Backoff

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class BackoffRetryMiddleware(RetryMiddleware):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        o = super().from_crawler(crawler)
        settings = crawler.settings
        scale = settings.getfloat("POLITENESS_SCALE", 1.0)
        o.backoff = Backoff(
            base=settings.getfloat("RETRY_BACKOFF_BASE", 2.0) * scale,
            cap=settings.getfloat("RETRY_BACKOFF_MAX", 300.0) * max(scale, 0.0),
        )
        o.max_elapsed = settings.getfloat("RETRY_MAX_ELAPSED", 1800.0)
        return o

    def _retry(self, request: Request, reason) -> Request | None:
        first = request.meta.get("first_attempt_at")
        now = time.monotonic()
        if first is None:
            first = request.meta["first_attempt_at"] = now
        if now - first > self.max_elapsed:
            self.crawler.stats.inc_value("retry/max_elapsed_reached")
            logger.error(
                "Gave up retrying %s after %.0f s (RETRY_MAX_ELAPSED): %s", request, now - first, reason
            )
            return None
        retry = super()._retry(request, reason)
        if retry is not None:
            delay = self.backoff.delay(retry.meta["retry_times"])
            retry.meta["retry_not_before"] = now + delay
            self.crawler.stats.inc_value("envision/retry/backoff_seconds", int(delay + 0.5))
        return retry
