"""Benchmark-only instrumentation, loaded by ``bench/bench_settings.py``.

* ``SearchPages`` (a spider middleware next to the spider): for every search page
  (a response whose callback is ``parse_search``), the records on it (the crawl's
  ``envision/hits`` stat, which ``SourceSpider.hits_arrived`` counts), how many it saw for
  the first time in this run (``envision/records/unique``), its term; so a benchmark can
  tell pages that brought nothing new.
* ``Timeline``: when the crawler was created, when its first request reached the
  downloader and when its last response came back (epoch seconds), requests per callback.

Both write ``{DATA_DIR}/bench/{spider}.json`` when the spider closes.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path

from scrapy import signals

from envision_spiders import paths

_STORE: dict[int, dict] = {}


def _store(crawler) -> dict:
    return _STORE.setdefault(id(crawler), {"pages": [], "callbacks": collections.Counter()})


def _callback_name(request) -> str:
    cb = request.callback
    return getattr(cb, "__name__", None) or (cb if isinstance(cb, str) else "parse")


class SearchPages:
    def __init__(self, crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def _page(self, response):
        spider = self.crawler.spider
        if _callback_name(response.request) != "parse_search" or not hasattr(spider, "hits_arrived"):
            return None
        kw = response.request.cb_kwargs
        # the query a page belongs to: its term and whatever else names the search
        # (OSF's endpoint and field, a date slice), not its position in the paging
        query = json.dumps({k: v for k, v in sorted(kw.items()) if k not in ("page", "cursor", "offset", "window", "latest", "ordered")},
                           default=str)
        return {"term": kw.get("term"), "query": query, "hits": 0, "new": 0, "status": response.status}

    def _step(self, page):
        """Context for one step of the callback: count its hits and first sightings."""
        stats = self.crawler.stats
        hits, unique = stats.get_value("envision/hits", 0), stats.get_value("envision/records/unique", 0)

        def done() -> None:
            page["hits"] += stats.get_value("envision/hits", 0) - hits
            page["new"] += stats.get_value("envision/records/unique", 0) - unique

        return done

    # The callback's own code runs inside each next(): this middleware sits next to the
    # spider, so nothing else runs between the two counts of a step.
    def process_spider_output(self, response, result):
        page = self._page(response)
        if page is None:
            yield from result
            return
        it = iter(result)
        while True:
            done = self._step(page)
            try:
                x = next(it)
            except StopIteration:
                break
            finally:
                done()
            yield x
        _store(self.crawler)["pages"].append(page)

    async def process_spider_output_async(self, response, result):
        page = self._page(response)
        if page is None:
            async for x in result:
                yield x
            return
        it = result.__aiter__()
        while True:
            done = self._step(page)
            try:
                x = await it.__anext__()
            except StopAsyncIteration:
                break
            finally:
                done()
            yield x
        _store(self.crawler)["pages"].append(page)


class Timeline:
    def __init__(self, crawler) -> None:
        self.crawler = crawler
        self.created = time.time()
        self.first_request = None
        self.last_response = None
        crawler.signals.connect(self.request_reached, signal=signals.request_reached_downloader)
        crawler.signals.connect(self.response_received, signal=signals.response_received)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def request_reached(self, request, spider) -> None:
        now = time.time()
        if self.first_request is None:
            self.first_request = now
        _store(self.crawler)["callbacks"][_callback_name(request)] += 1

    def response_received(self, response, request, spider) -> None:
        self.last_response = time.time()

    def spider_closed(self, spider, reason) -> None:
        data = _STORE.pop(id(self.crawler), {"pages": [], "callbacks": {}})
        out = {"spider": spider.name, "created": self.created, "first_request": self.first_request,
               "last_response": self.last_response, "closed": time.time(), "reason": reason,
               "requests_by_callback": dict(data["callbacks"]), "search_pages": data["pages"]}
        path = paths.data_dir(self.crawler.settings) / "bench" / f"{spider.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out))
