"""Rewrite ``results/`` when a spider closes, from every record on disk.

The results cover every saved record of every source, not only what this run found
(:mod:`envision_spiders.results`), so a partial run or a scrape that returned nothing
never loses earlier records. Under ``scrapy crawl all`` (``RESULTS_DEFERRED``) the
command rebuilds them once, after the last spider, instead of once per spider.

The files are written in the ``spider_closed`` handler itself, before the run summary
(a later extension) is written, so the summary counts what writing them found (a
results file that would have shrunk is kept: ``envision/results/kept``). The crawl is
over by then and, since ``crawl all`` defers the rebuild, no other spider shares the
process: the reactor has nothing to serve meanwhile.
"""

from __future__ import annotations

import logging
from pathlib import Path

from scrapy import signals
from scrapy.exceptions import NotConfigured

from envision_spiders import paths
from envision_spiders.results import run_id_from, write_results

logger = logging.getLogger(__name__)


class ResultsWriter:
    def __init__(self, crawler) -> None:
        settings = crawler.settings
        if settings.getbool("RESULTS_DEFERRED"):
            raise NotConfigured("results/ are rebuilt by `scrapy crawl all` after the last spider")
        self.crawler = crawler
        self.data_dir = paths.data_dir(settings)
        self.results_dir = paths.results_dir(settings)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler) -> ResultsWriter:
        return cls(crawler)

    def spider_closed(self, spider) -> None:
        run_id = run_id_from(self.crawler.settings)
        try:
            write_results(self.data_dir, self.results_dir, run_id, self.crawler.stats)
        except Exception:
            self.crawler.stats.inc_value("envision/results/errors")
            logger.exception("Cannot write the results under %s; the records are saved, run `scrapy classify` "
                             "to write them again", self.results_dir)
