"""Malformed answers never stop a crawl.

A callback that meets a body it cannot parse (invalid or truncated JSON, a field of an
unexpected type that breaks the page's structure) raises; this spider middleware
logs which URL failed and why, counts it (``envision/bad_response/<Error>``), asks for
the page again (a truncated body is often transient), and once retries are exhausted
records the request for the next run. Records inside a good page are protected one
by one by ``SourceSpider.each_record``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.downloadermiddlewares.retry import get_retry_request

from envision_spiders.extensions.state import CrawlState

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

MALFORMED = (ValueError, KeyError, TypeError, AttributeError, IndexError, UnicodeError)


class BadResponseMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BadResponseMiddleware:
        return cls(crawler)

    def process_spider_exception(self, response: Response, exception: Exception):
        if not isinstance(exception, MALFORMED):
            return None
        name = type(exception).__name__
        self.crawler.stats.inc_value(f"envision/bad_response/{name}")
        logger.error(
            "Malformed answer from %s (HTTP %s, %d bytes): %s: %s",
            response.url, response.status, len(response.body), name, str(exception)[:200],
        )
        request = response.request
        retry = get_retry_request(
            request,
            spider=self.crawler.spider,
            reason=f"malformed_{name}",
            max_retry_times=2,
            logger=logger,
            give_up_log_level="WARNING",
        )
        if retry is not None:
            return [retry]
        CrawlState.of(self.crawler).record_failure(request, f"malformed answer: {name}: {str(exception)[:200]}")
        return []
