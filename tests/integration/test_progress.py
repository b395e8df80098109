"""A curator's log: progress lines, Scrapy's dumps once, components that are off as INFO,
records counted as Scrapy's items, the incremental mark said the same way twice."""

from __future__ import annotations

import io
import logging
import re

from envision_spiders.extensions import progress
from envision_spiders.extensions.progress import progress_line, quiet_repeats

from tests.conftest import crawl_in_process, saved_records


def write_terms(tmp_path, terms: list[str]) -> str:
    path = tmp_path / "terms.txt"
    path.write_text("\n".join(terms) + "\n")
    return str(path)


def test_progress_line_says_where_the_spider_is():
    stats = {"envision/terms_searched": 12, "envision/records/unique": 318, "envision/records/new": 301,
             "downloader/request_count": 412, "envision/pacing/waits": 3, "envision/ratelimit/429": 1}
    assert progress_line("zenodo", 47, stats) == (
        "zenodo: term 12/47, 318 records (301 new), 0 failures; 412 requests, 3 pacing waits, 1 rate-limited (429)")


def _capture(*loggers: str) -> tuple[io.StringIO, logging.Handler]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    for name in loggers:
        logging.getLogger(name).addHandler(handler)
    return out, handler


def test_scrapy_dumps_are_said_once_and_a_component_that_is_off_is_info(monkeypatch):
    quiet_repeats()
    # once per process: forget what earlier crawls of this test process said
    monkeypatch.setattr(progress._FILTER, "seen", set())
    names = ("scrapy.middleware", "scrapy.crawler", "scrapy.statscollectors")
    out, handler = _capture(*names)
    levels = {name: logging.getLogger(name).level for name in names}
    try:
        for name in names:
            logging.getLogger(name).setLevel(logging.INFO)
        mw, crawler = logging.getLogger("scrapy.middleware"), logging.getLogger("scrapy.crawler")
        for spider in ("dryad", "zenodo"):
            crawler.info("Overridden settings:\n%(settings)s", {"settings": f"{{'DOWNLOAD_DELAY': '{spider}'}}"})
            mw.info("Enabled %(componentname)ss:\n%(enabledlist)s",
                    {"componentname": "test component", "enabledlist": "['a.B']"})
            mw.warning("Disabled %(clspath)s: %(eargs)s", {"clspath": "test.Pipeline", "eargs": "TEST is off"})
            logging.getLogger("scrapy.statscollectors").info("Dumping Scrapy stats:\n{'a': 1}")
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(levels[name])
    text = out.getvalue()
    assert text.count("Overridden settings") == 1 and text.count("Enabled test components") == 1
    assert text.count("INFO Disabled test.Pipeline: TEST is off") == 1 and "WARNING" not in text
    assert "Dumping Scrapy stats" not in text


def test_progress_items_and_the_incremental_mark(api, tmp_path):
    """The progress line replaces "Crawled N pages"; Scrapy's item count is the number
    of records (records found by several terms count once); the mark a run sets is said
    in the same words when the next run starts; a run capped by MAX_PER_QUERY says it
    did not move it."""
    api.generate("zenodo", 12, seed=5)
    terms = write_terms(tmp_path, ["fundus", "retina", "OCT", "glaucoma"])
    first = crawl_in_process(api, "zenodo", tmp_path, SEARCH_TERMS=terms, PROGRESS_INTERVAL=30)
    assert first.returncode == 0, first.stderr[-3000:]
    assert re.search(r"zenodo: term 0/4, 0 records \(0 new\), 0 failures; \d+ requests", first.stderr)
    assert "Crawled " not in first.stderr
    stats = first.crawler.stats
    records = saved_records(tmp_path, "zenodo")
    assert records and stats.get_value("item_scraped_count") == len(records) == stats.get_value("envision/records/unique")
    assert stats.get_value("envision/hits") > len(records), "some records were found by several terms"
    (mark,) = re.findall(r"zenodo: run complete; (incremental mark \S+ \(changes since [\d-]+\))", first.stderr)

    second = crawl_in_process(api, "zenodo", tmp_path, SEARCH_TERMS=terms)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"zenodo: 4 search terms against {api.base_url}" in second.stderr
    assert f"; {mark}\n" in second.stderr, "the start of the next run names the mark as the last one set it"

    capped = crawl_in_process(api, "zenodo", tmp_path, SEARCH_TERMS=terms, MAX_PER_QUERY=1)
    assert capped.returncode == 0, capped.stderr[-3000:]
    assert ("zenodo: this run did not move the incremental mark (MAX_PER_QUERY=1 capped the hits of each term); "
            "it stays: incremental mark") in capped.stderr
