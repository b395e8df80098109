"""Credentials that change during a crawl are set on a request when it leaves, not when
it was made.

A spider that renews its token (Dryad's OAuth tokens expire) marks its API requests with
``meta["fresh_credentials"] = True``. Requests wait in the scheduler and in the
rate-limit middleware, sometimes for minutes; one that waited while the token was
renewed would otherwise go out with the old token, be refused, and cost the API a
wasted request. This middleware, placed after the rate-limit wait, first awaits the
spider's ``credentials_ready()`` when it has one (a renewal in progress), then replaces
the ``Authorization`` header of such a request with the spider's current
``auth_headers()`` (or removes it when the spider has none any more), and only on the
spider's API host: a redirect to storage elsewhere never gets the token back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.utils.httpobj import urlparse_cached

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler


class FreshCredentialsMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FreshCredentialsMiddleware:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        spider = self.crawler.spider
        if not request.meta.get("fresh_credentials") or spider is None:
            return None
        if urlparse_cached(request).hostname != getattr(spider, "api_host", None):
            return None
        ready = getattr(spider, "credentials_ready", None)
        if ready is not None:
            await ready()
        request.headers.pop("Authorization", None)
        for name, value in spider.auth_headers().items():
            request.headers[name] = value
        return None
