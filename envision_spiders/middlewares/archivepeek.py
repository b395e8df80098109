"""List the members of the archives among a record's files before the record is saved.

Every spider yields its records with their files; this spider middleware, the same for
every source, takes each record that has archives among its files (ZIP, ZIP64, TAR,
TAR.GZ, ... by the project's extension table), and for each archive drives an
``envision_spiders.archive`` peeker: HTTP Range requests, one or two per ZIP, a few per
TAR, sent with ``engine.download_async`` so that they pass through the downloader
middlewares — the same per-host pace, 429 handling and retries as the API calls (and
where the file host is the API host, as on Zenodo, the same budget). The listing is on
the record (``archives``) when the record leaves this middleware, so the pipelines
(statistics, classification, persistence) see it.

Budgets: ``ARCHIVE_PEEK_MAX_BYTES`` / ``ARCHIVE_PEEK_MAX_REQUESTS`` per archive,
``ARCHIVE_PEEK_MAX_ARCHIVES`` per record (the others are recorded as not peeked). A
server that ignores Range and answers 200 with the whole file is cut off at the peek's
budget (``StopDownload`` from ``bytes_received``): nothing beyond it is held or read,
save the last network chunk. A record whose file host refuses us (Dryad, Kaggle without
credentials) gets its archives recorded as not peeked, with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter, is_item
from scrapy import Request, signals
from scrapy.exceptions import NotConfigured, StopDownload

from envision_spiders.archive import PeekLimits, make_peeker
from envision_spiders.extensions.state import CrawlState

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

# Parsing a large directory is CPU work (0.9 s for 16 MiB): do it off the reactor thread.
THREAD_FEED_BYTES = 1024 * 1024
_LIMIT = "archive_peek_limit"
_WHOLE = "archive_peek_whole_file_limit"
_RECEIVED = "archive_peek_received"


def not_peeked(name: str, url: str | None, reason: str) -> dict[str, Any]:
    return {"name": name, "url": url, "listable": True, "listed": False, "complete": False,
            "member_count": None, "bytes_read": 0, "requests": 0, "reason": reason}


class ArchivePeekMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("ARCHIVE_PEEK_ENABLED", True):
            raise NotConfigured
        self.crawler = crawler
        self.limits = PeekLimits.from_settings(settings)
        self.max_archives = settings.getint("ARCHIVE_PEEK_MAX_ARCHIVES", 10)
        crawler.signals.connect(self.headers_received, signal=signals.headers_received)
        crawler.signals.connect(self.bytes_received, signal=signals.bytes_received)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ArchivePeekMiddleware:
        return cls(crawler)

    # ------------------------------------------------------------------ spider output
    async def process_spider_output(self, response, result):
        async for obj in result:
            if is_item(obj):
                await self.peek_record(ItemAdapter(obj))
            yield obj

    async def peek_record(self, record: ItemAdapter) -> None:
        if "files" not in record.field_names() or record.get("archives"):
            return
        candidates = []
        for f in record.get("files") or []:
            peeker = make_peeker(f.get("name") or "", url=f.get("url"), size=f.get("size_bytes"), limits=self.limits)
            if peeker is not None:
                candidates.append((f, peeker))
        if not candidates:
            return
        spider = self.crawler.spider
        entries: list[dict[str, Any] | None] = [None] * len(candidates)
        jobs = []
        readable = getattr(spider, "files_readable", lambda: True)()
        known = {} if getattr(spider, "full", False) else self.saved_listings(record)
        for i, (f, peeker) in enumerate(candidates):
            url = f.get("url")
            reuse = known.get((f.get("name"), f.get("size_bytes"), f.get("checksum")))
            if reuse is not None:
                # a refreshed record whose archive did not change: its listing stands
                entries[i] = reuse
                self.crawler.stats.inc_value("envision/archive/reused")
            elif peeker.next_request() is None:  # not listable: the result says why, no request
                entries[i] = peeker.result()
            elif not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
                entries[i] = not_peeked(f.get("name"), url, "no http(s) download URL")
            elif not readable:
                entries[i] = not_peeked(f.get("name"), url, f"{spider.name} serves files only to authenticated clients and no credentials are set")
            elif len(jobs) >= self.max_archives:
                entries[i] = not_peeked(f.get("name"), url, f"not peeked: more than {self.max_archives} archives in this record (ARCHIVE_PEEK_MAX_ARCHIVES)")
            else:
                jobs.append((i, peeker, url))
        results = await asyncio.gather(*(self.peek(peeker, url) for _, peeker, url in jobs))
        for (i, _, _), entry in zip(jobs, results):
            entries[i] = entry
        record["archives"] = entries
        stats = self.crawler.stats
        for entry in entries:
            stats.inc_value("envision/archive/seen")
            if entry.get("listable") is False:
                stats.inc_value("envision/archive/not_listable")
            elif entry.get("listed"):
                stats.inc_value("envision/archive/listed")
                if not entry.get("complete"):
                    stats.inc_value("envision/archive/incomplete")
            else:
                stats.inc_value("envision/archive/not_listed")
            stats.inc_value("envision/archive/bytes", entry.get("bytes_read") or 0)
            stats.inc_value("envision/archive/requests", entry.get("requests") or 0)

    def saved_listings(self, record: ItemAdapter) -> dict[tuple, dict[str, Any]]:
        """Listings of the saved copy of this record, by (name, size, checksum) of the
        file they list: a refreshed record (new title, say) does not peek again archives
        that are byte for byte the same. ``-a full=1`` peeks everything again."""
        saved = CrawlState.of(self.crawler).saved(str(record.get("source_id")))
        if not isinstance(saved, dict):
            return {}
        files = {f.get("name"): f for f in saved.get("files") or [] if isinstance(f, dict)}
        out = {}
        for entry in saved.get("archives") or []:
            f = files.get(entry.get("name")) if isinstance(entry, dict) else None
            if f and entry.get("listed") and (f.get("checksum") or f.get("size_bytes")):
                out[(f.get("name"), f.get("size_bytes"), f.get("checksum"))] = entry
        return out

    # ------------------------------------------------------------------ one archive
    async def peek(self, peeker, url: str) -> dict[str, Any]:
        spider = self.crawler.spider
        engine = self.crawler.engine
        budget = getattr(spider, "files_budget", None)
        self.crawler.stats.inc_value("envision/archive/peeked")
        while (rng := peeker.next_request()) is not None:
            # credentials are set when the request leaves, where they apply, and renewed
            # after a 401 (CredentialsMiddleware), as for any API request
            meta = {
                _LIMIT: rng.length,
                # a server that ignores Range may send a whole file this small: keep it all
                _WHOLE: peeker.budget_left,
                _RECEIVED: 0,
                "download_maxsize": 0,  # the peek's own limit (bytes_received) cuts it
                "download_warnsize": 0,
                "dont_cache": True,
            }
            if budget:
                meta["budget"] = budget
            request = Request(
                url,
                headers={"Range": rng.header, "Accept-Encoding": "identity", "Accept": "*/*"},
                meta=meta,
                dont_filter=True,
            )
            try:
                response = await engine.download_async(request)
            except Exception as exc:  # the request failed for good (after retries)
                peeker.fail(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            data = response.body  # cut in bytes_received, and by the peeker to what it asked
            total = None
            if response.status == 200:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            args = dict(status=response.status, content_range=response.headers.get("Content-Range"), total_size=total)
            if len(data) > THREAD_FEED_BYTES:
                await asyncio.to_thread(peeker.feed, data, **args)
            else:
                peeker.feed(data, **args)
        result = peeker.result()
        if result.get("reason"):
            logger.info("%s: archive %s: %s", spider.name, result.get("name"), result["reason"])
        return result

    # ------------------------------------------------------------------ byte budget
    def headers_received(self, headers, body_length, request: Request, spider) -> None:
        # count each answer on its own: the body of a redirect before it does not count
        if _LIMIT in request.meta:
            request.meta[_RECEIVED] = 0
            # A whole file (a server that ignored Range) within the archive's byte budget
            # is read to its end: the peeker lists it like a file smaller than the tail.
            # (A 206 is never longer than the range asked for.)
            if isinstance(body_length, int) and request.meta[_LIMIT] < body_length <= request.meta.get(_WHOLE, 0):
                request.meta[_LIMIT] = body_length

    def bytes_received(self, data: bytes, request: Request, spider) -> None:
        limit = request.meta.get(_LIMIT)
        if limit is None:
            return
        received = request.meta[_RECEIVED] = request.meta.get(_RECEIVED, 0) + len(data)
        if received > limit:
            # more than this peek asked for: a server that ignored Range is sending the
            # whole file. (A 206 of exactly the range completes normally: stopping it would
            # abort a connection the pool may reuse.)
            raise StopDownload(fail=False)
