"""Queue confident EYE_IMAGING records for download; with ``DOWNLOAD_ENABLED``, fetch them.

Runs after classification and persistence (priority 800): a record is queued when it
passes the gate of ``scrapy download`` (:func:`envision_spiders.downloads.queue.gate`):
a curator accepted it, or its classification (``item["classification"]["label"]`` /
``["prob_eye_imaging"]``, or top-level ``label`` / ``prob_eye_imaging``) says
``EYE_IMAGING`` with ``prob_eye_imaging >= DOWNLOAD_THRESHOLD``, no curator rejected it
or waits to decide (``DOWNLOAD_REQUIRES_REVIEW``: only accepted records) and it is not a
``duplicate_of`` another record. The curators' ledger is read again when it changes
during the crawl. A record without a classification is not queued.

Every passing record goes to the queue under ``data/downloads/.queue/`` (idempotent:
queuing again rewrites the same entry; see ``envision_spiders.downloads.queue``), so
``scrapy download`` (``automation.sh download``) fetches it later even when the crawl
does not.

With ``DOWNLOAD_ENABLED`` the crawl also fetches the records whose duplicates are
known: those :func:`envision_spiders.selection.select_records` selects in the results
on disk (written by the last classification, with every record's ``duplicate_of``).
A record the results do not list yet (new in this crawl) cannot be known not to be a
duplicate until the results are rebuilt: it stays queued for ``scrapy download``, which
the weekly run starts after ``scrapy classify`` (the log says how many wait). Each
selected record becomes a task on the crawl's own event loop (the asyncio reactor's),
streaming with aiohttp beside Scrapy's requests, so the crawl never waits for a
transfer; when the spider closes, ``close_spider`` waits for the transfers still
running. Progress goes to the log (bars would garble a crawl's log).
"""

from __future__ import annotations

import logging

from itemadapter import ItemAdapter

from envision_spiders.downloads.progress import LogProgress
from envision_spiders.downloads.queue import DownloadQueue, classification_of, gate
from envision_spiders.downloads.runner import DownloadConfig, DownloadRunner
from envision_spiders.review import Review
from envision_spiders.review.decisions import LiveReview
from envision_spiders.selection import Selection, select_records

logger = logging.getLogger(__name__)


class DownloadQueuePipeline:
    def __init__(self, crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        self.config = DownloadConfig.from_settings(settings)
        self.threshold = self.config.threshold
        self.enabled = settings.getbool("DOWNLOAD_ENABLED", False)
        self.queue = DownloadQueue(self.config.data_dir)
        self.review = LiveReview(self.config.data_dir, self.config.results_dir)
        self.runner: DownloadRunner | None = None
        # per source, read from the results on disk once per state of the curators' ledger
        self.selections: dict[str, tuple[Review, Selection]] = {}
        self.waiting = 0  # confident records left to `scrapy download` (duplicates not known yet)
        if self.enabled:
            # the spider's credentials, the very object its requests and peeks use
            spider = crawler.spider
            creds = getattr(spider, "credentials", None)
            self.runner = DownloadRunner(
                self.config,
                progress=LogProgress(settings.getfloat("DOWNLOAD_PROGRESS_INTERVAL", 30.0)),
                stats=lambda key, n: crawler.stats.inc_value(key, n),
                credentials={spider.name: creds} if creds is not None else None,
            )

    @classmethod
    def from_crawler(cls, crawler) -> DownloadQueuePipeline:
        return cls(crawler)

    def process_item(self, item):
        adapter = ItemAdapter(item)
        source, source_id = adapter.get("source"), str(adapter.get("source_id"))
        review = self.review.get()
        decision = review.standing(f"{source}:{source_id}")
        ok, why = gate(adapter, self.threshold, decision, self.config.requires_review)
        if not ok:
            if why != "not classified":
                self.crawler.stats.inc_value("envision/download/not_queued")
            return item
        label, prob = classification_of(adapter)
        try:
            new = self.queue.add(source, source_id, label=label, prob=prob, threshold=self.threshold, origin="crawl")
        except OSError as exc:
            self.crawler.stats.inc_value("envision/download/queue_errors")
            logger.error("Cannot queue %s %s for download in %s: %s", source, source_id, self.queue.root, exc)
            return item
        self.crawler.stats.inc_value("envision/download/queued" if new else "envision/download/requeued")
        if self.runner is not None:
            if source not in self.selections or self.selections[source][0] is not review:
                self.selections[source] = (review, select_records(self.config.results_dir, [source], self.threshold,
                                                                  review, self.config.requires_review))
            selection = self.selections[source][1]
            if selection.why_not((source, source_id)) is None:
                self.runner.submit({"source": source, "source_id": source_id, "label": label, "prob_eye_imaging": prob})
            elif (source, source_id) not in selection.refused:  # the refused: `scrapy download` says why
                self.waiting += 1
                self.crawler.stats.inc_value("envision/download/waiting_for_results")
        return item

    async def close_spider(self) -> None:
        if self.runner is None:
            return
        if self.waiting:
            logger.info("%d confident records stay queued for `scrapy download`: the results do not list them yet "
                        "(their duplicates are known once `scrapy classify` rewrote the results)", self.waiting)
        if self.runner.running:
            logger.info("waiting for %d record downloads still running", self.runner.running)
        try:
            await self.runner.drain()
        finally:
            await self.runner.close()
