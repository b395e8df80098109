"""Rewrite ``results/`` when a spider closes, from every record on disk.

The results cover every saved record of every source, not only what this run found
(:mod:`envision_spiders.results`), so a partial run or a scrape that returned nothing
never loses earlier records. The files are rebuilt in a worker thread: reading tens of
thousands of records must not stall the other spiders of ``scrapy crawl all``.
The pipeline has no ``process_item``: it only acts when the spider closes. Under
``scrapy crawl all`` (``RESULTS_DEFERRED``) the command rebuilds them once, after the
last spider, instead of once per spider.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from envision_spiders.results import run_id_from, write_results

logger = logging.getLogger(__name__)


class ResultsPipeline:
    def __init__(self, crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        self.data_dir = Path(settings.get("DATA_DIR") or "data")
        self.results_dir = Path(settings.get("RESULTS_DIR") or "results")

    @classmethod
    def from_crawler(cls, crawler) -> ResultsPipeline:
        return cls(crawler)

    async def close_spider(self) -> None:
        if self.crawler.settings.getbool("RESULTS_DEFERRED"):
            return
        run_id = run_id_from(self.crawler.settings)
        try:
            await asyncio.to_thread(write_results, self.data_dir, self.results_dir, run_id, self.crawler.stats)
        except Exception:
            self.crawler.stats.inc_value("envision/results/errors")
            logger.exception("Cannot write the results under %s; the records are saved, run `scrapy classify` "
                             "to write them again", self.results_dir)
