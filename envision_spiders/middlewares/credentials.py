"""Every request of a crawl leaves with its source's credentials where they apply, and
nowhere else; a 401 is answered by renewing them, once for all the requests it failed.

The spider owns its source's credentials (``spider.credentials``, built once from the
environment by :func:`envision_spiders.credentials.credentials_for`); the API requests,
the archive peeks and (in the download pipeline) the file downloads all use that one
object. This middleware applies its one rule, ``credentials.applies_to(url)``: the
exact origin (scheme, host, port) of the source's API site, under its path.

On the way out (after the rate-limit wait, so a request that waited minutes does not
leave with a token renewed meanwhile):

* a request whose URL is outside the source's origin loses any ``Authorization``;
* a redirected request (``meta["redirect_urls"]``) whose ``Authorization`` Scrapy
  removed (the redirect changed scheme, host or port) never gets it back, even when
  the new URL is on the origin again;
* any other request to the origin gets the credentials current *now* (awaiting a
  token being fetched or renewed), replacing whatever it was built with.

On the way back, a 401 to a request that carried credentials asks them to
``renew``; when that is worth it (a new token, or, for a source whose reads are all
public, no token any more), the request is sent again ahead of the queue, with its retry
and redirect history cleared: at most ``MAX_RESENDS`` times for refusals that renewed the
credentials, at most ``MAX_SENT_AGAIN`` in all. Any other answer
to a request with credentials tells them they work (a renewed token that is refused
before it ever worked means the account is refused, see ``DryadOAuth``).

``meta["credentials"] = False`` keeps a request out of all this (a token request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envision_spiders.credentials import Renewal

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from envision_spiders.credentials import Credentials

# meta: how often a request's own refusal renewed the credentials; after MAX_RESENDS the
# request, not the token, is what the API refuses
RESENDS = "credentials_resends"
MAX_RESENDS = 2
# meta: how often it was sent again in all. A request in flight when its token expired is
# sent again with the token another refusal brought: nobody's fault and no token fetched,
# so it does not count against MAX_RESENDS; this bound only stops it going round for ever
SENT_AGAIN = "credentials_sent_again"
MAX_SENT_AGAIN = 8
# what one journey of a request leaves in its meta; a request sent again starts afresh
SPENT_META = ("download_latency", "download_slot", "retry_times", "ratelimit_retries", "first_attempt_at",
              "retry_not_before", "redirect_times", "redirect_ttl", "redirect_urls", "redirect_reasons")


class CredentialsMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CredentialsMiddleware:
        return cls(crawler)

    def _credentials(self, request: Request) -> Credentials | None:
        if request.meta.get("credentials") is False:
            return None
        return getattr(self.crawler.spider, "credentials", None)

    async def process_request(self, request: Request) -> None:
        creds = self._credentials(request)
        if creds is None:
            return None
        if not creds.applies_to(request.url):
            request.headers.pop("Authorization", None)
            return None
        if request.meta.get("redirect_urls") and "Authorization" not in request.headers:
            return None  # Scrapy removed it when the redirect left the origin: never put back
        current = await creds.headers()
        request.headers.pop("Authorization", None)
        for name, value in current.items():
            request.headers[name] = value
        return None

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        creds = self._credentials(request)
        # covers, not applies_to: a request sent with a token dropped since (Figshare)
        # still has its 401 answered here, with the request sent again without it
        if creds is None or not creds.covers(request.url):
            return response
        raw = request.headers.get("Authorization")
        sent = raw.decode("latin-1") if raw is not None else None
        if response.status != 401:
            creds.accepted(sent)
            return response
        tries = request.meta.get(RESENDS, 0)
        again_so_far = request.meta.get(SENT_AGAIN, 0)
        if tries >= MAX_RESENDS or again_so_far >= MAX_SENT_AGAIN:
            return response
        renewal = await creds.renew({"Authorization": sent} if sent else {}, resent=again_so_far > 0)
        if not renewal:
            return response
        self.crawler.stats.inc_value("envision/credentials/resent")
        meta = {k: v for k, v in request.meta.items() if k not in SPENT_META}
        meta[RESENDS] = tries + (renewal is Renewal.RENEWED)
        meta[SENT_AGAIN] = again_so_far + 1
        spider = self.crawler.spider
        if meta.get("budget") in getattr(spider, "budget_keys", ()):
            # with or without a token may be budgets of their own (Dryad)
            meta["budget"] = spider.api_budget() or meta["budget"]
        again = request.replace(dont_filter=True, meta=meta, priority=request.priority + 10)
        again.headers.pop("Authorization", None)  # the credentials current when it leaves
        return again
