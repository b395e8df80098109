"""A curator's log: a progress line per spider, and Scrapy's dumps said once.

* :class:`Progress` replaces Scrapy's ``LogStats`` ("Crawled 0 pages (at 0 pages/min)"),
  whose figures say nothing about a search: every ``PROGRESS_INTERVAL`` seconds (0: off)
  each spider says where it is in its terms and what it found, in one line::

      zenodo: term 12/47, 318 records (301 new), 0 failures; 412 requests, 3 pacing waits, 0 rate-limited (429)

  (``records``: the records this run found, each once whatever the terms that found
  it, which is also Scrapy's ``item_scraped_count`` for the records it saved).
* :func:`quiet_repeats`: Scrapy logs its settings and components once per crawler, and
  ``scrapy crawl all`` has seven: the first of each dump is logged, a repeat of it goes
  to DEBUG; the stats dump at a spider's close is at DEBUG (its figures are in the run
  summary and ``data/runs/``); a component that is off (``NotConfigured`` with a reason:
  the classifier, landing pages, the results writer under ``crawl all``) is an INFO line,
  once, not a WARNING.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.extensions.logstats import LogStats

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


def progress_line(name: str, terms: int, stats: dict[str, Any]) -> str:
    """One spider's progress from its stats (``terms``: how many it searches)."""
    def n(key: str) -> int:
        return int(stats.get(key) or 0)

    return (
        f"{name}: term {n('envision/terms_searched')}/{terms}, {n('envision/records/unique')} records "
        f"({n('envision/records/new')} new), {n('envision/failures')} failures; "
        f"{n('downloader/request_count')} requests, {n('envision/pacing/waits')} pacing waits, "
        f"{n('envision/ratelimit/429')} rate-limited (429)"
    )


class Progress(LogStats):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Progress:
        quiet_repeats()
        interval = crawler.settings.getfloat("PROGRESS_INTERVAL", 60.0)
        if interval <= 0:
            raise NotConfigured
        o = cls(crawler.stats, interval)
        crawler.signals.connect(o.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(o.spider_closed, signal=signals.spider_closed)
        return o

    def log(self, spider: Spider) -> None:
        self.calculate_stats()  # LogStats's rates, kept for its figures at the close
        terms = len(getattr(spider, "terms", ()) or ())
        logger.info(progress_line(spider.name, terms, self.stats.get_stats()))


# (logger, message template) of Scrapy's dumps: logged once per process, repeats at DEBUG
ONCE = {
    ("scrapy.crawler", "Overridden settings:\n%(settings)s"),
    ("scrapy.middleware", "Enabled %(componentname)ss:\n%(enabledlist)s"),
    ("scrapy.addons", "Enabled addons:\n%(addons)s"),
}
# always at DEBUG (Scrapy formats the stats into the message itself)
DEBUG_PREFIX = ("scrapy.statscollectors", "Dumping Scrapy stats:")
# a WARNING that is an INFO line, once
DISABLED = ("scrapy.middleware", "Disabled %(clspath)s: %(eargs)s")


class _Repeats(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[Any] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        if record.name == DEBUG_PREFIX[0] and str(record.msg).startswith(DEBUG_PREFIX[1]):
            _demote(record, logging.DEBUG)
        elif key in ONCE or key == DISABLED:
            # a dump is said once whatever it holds (each spider overrides other settings):
            # known by its first line ("Enabled item pipelines:"); a component that is
            # off, once per component and reason
            text = record.getMessage()
            seen = text.split("\n", 1)[0] if key in ONCE else text
            if seen in self.seen:
                _demote(record, logging.DEBUG)
            else:
                self.seen.add(seen)
                if key == DISABLED:
                    _demote(record, logging.INFO)
        # a demoted record is dropped here unless its logger takes that level
        return logging.getLogger(record.name).isEnabledFor(record.levelno)


def _demote(record: logging.LogRecord, level: int) -> None:
    record.levelno, record.levelname = level, logging.getLevelName(level)


_FILTER = _Repeats()


def quiet_repeats() -> None:
    """Install the filter on Scrapy's loggers that dump (once per process; idempotent)."""
    for name in {name for name, _ in ONCE | {DEBUG_PREFIX, DISABLED}}:
        log = logging.getLogger(name)
        if _FILTER not in log.filters:
            log.addFilter(_FILTER)
