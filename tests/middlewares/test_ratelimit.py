"""The rate-limit middleware: budgets per class of request, stamps at the answer,
connection failures that spend nothing, unreachable sources, waits that end when the
crawl stops."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

import pytest
from scrapy import Request
from scrapy.exceptions import CannotResolveHostError
from scrapy.http import Response

from envision_spiders.middlewares.ratelimit import CrawlStopping
from envision_spiders.spiders.zenodo import SEARCH, ZenodoSpider

from tests.conftest import ROOT, crawl_env, crawl_in_process, make_spider, saved_records
from .test_politeness import _middleware, _waits


async def _passes(mw, request) -> bool:
    """True when the middleware lets the request go at once."""
    return not await _waits(mw, request)


# ------------------------------------------------------------------ classes of request
def test_zenodo_searches_and_other_requests_go_at_their_own_budgets(tmp_path):
    """Searches: 30 a minute, one every 2 s; everything else (records, file content):
    60 a minute for guests. A file request right after a search does not wait for the
    search budget; a second search does; both spend the host's budget."""
    mw, spider = _middleware(tmp_path, POLITENESS_SCALE=1.0)
    search = lambda: Request("https://zenodo.example/api/records?q=x", meta={"request_class": SEARCH})  # noqa: E731
    content = lambda: Request("https://zenodo.example/api/records/1/files/a.zip/content")  # noqa: E731
    assert asyncio.run(_passes(mw, search()))
    assert asyncio.run(_passes(mw, content())), "file content is not paced at the search rate"
    assert not asyncio.run(_passes(mw, search())), "a second search within 2 s waits"
    now = time.monotonic()
    assert mw.budget("zenodo.example").used(now, 60.0) == 2
    assert mw.budget(SEARCH).used(now, 60.0) == 1
    assert mw.budget(SEARCH).windows == ((1, 2.0), (30, 60.0))
    assert mw.budget("zenodo.example").windows == ((60, 60.0), (2000, 3600.0))
    assert spider.crawler.settings.getfloat("DOWNLOAD_DELAY") == 1.0


def test_zenodo_with_a_token_has_the_larger_host_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("ZENODO_TOKEN", "t0ken")
    mw, spider = _middleware(tmp_path, POLITENESS_SCALE=1.0)
    assert mw.budget("zenodo.example").windows == ((100, 60.0), (5000, 3600.0))
    assert mw.budget(SEARCH).windows == ((1, 2.0), (30, 60.0)), "searches: 30 a minute with a token too"
    assert spider.crawler.settings.getfloat("DOWNLOAD_DELAY") == pytest.approx(0.6)


def test_a_search_page_is_a_search_request(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path, ZENODO_API_URL="https://zenodo.example/api")
    assert spider.search_request("fundus").meta["request_class"] == SEARCH


def test_a_429_on_a_search_pauses_searches_only(tmp_path):
    mw, _ = _middleware(tmp_path, POLITENESS_SCALE=1.0)
    req = Request("https://zenodo.example/api/records?q=x", meta={"request_class": SEARCH})
    asyncio.run(mw.process_request(req))
    mw.process_response(req, Response(req.url, status=429, headers={"Retry-After": "30"}))
    now = time.monotonic()
    assert mw.budget(SEARCH).wait(now) == pytest.approx(30, abs=1)
    assert mw.budget("zenodo.example").wait(now) == 0


# ------------------------------------------------------------------ connection failures
def test_connection_failures_give_their_budget_back(tmp_path):
    mw, spider = _middleware(tmp_path, POLITENESS_SCALE=1.0, UNREACHABLE_TRIES=100)
    req = Request("https://zenodo.example/api/records/1")
    asyncio.run(mw.process_request(req))
    assert mw.budget("zenodo.example").used(time.monotonic(), 3600.0) == 1
    assert mw.process_exception(req, CannotResolveHostError("no results")) is None
    assert mw.budget("zenodo.example").used(time.monotonic(), 3600.0) == 0
    # an answer (even an error) spends its budget
    req = Request("https://zenodo.example/api/records/2")
    asyncio.run(mw.process_request(req))
    mw.process_response(req, Response(req.url, status=500))
    assert mw.budget("zenodo.example").used(time.monotonic(), 3600.0) == 1


def test_an_unreachable_api_host_stops_the_source_in_one_line(api, tmp_path):
    """DNS fails for the API host: after UNREACHABLE_TRIES failures the spider closes
    (reason ``unreachable``) with one line, no request is kept as a failure, and the
    summary says so; the rate budget was never spent."""
    result = crawl_in_process(api, "zenodo", tmp_path, ZENODO_API_URL="http://zenodo.invalid/api",
                              UNREACHABLE_TRIES=3, UNREACHABLE_SECONDS=0)
    assert result.returncode == 3, result.stderr[-3000:]
    line = "zenodo: zenodo.invalid unreachable (DNS lookup failed); source skipped this run"
    assert result.stderr.count(line) == 1, result.stderr[-3000:]
    assert "request failed for good" not in result.stderr
    assert not (tmp_path / "failures" / "zenodo.jsonl").exists()
    summary = json.loads(next((tmp_path / "runs").glob("*/zenodo.json")).read_text())
    assert summary["finish_reason"] == "unreachable" and not summary["healthy"]
    assert summary["unreachable"] == "zenodo.invalid unreachable (DNS lookup failed); source skipped this run"
    assert summary["problems"] == [summary["unreachable"]]
    assert summary["stats"]["envision/unreachable/connection_failures"] >= 3
    assert "envision/pacing/waits" not in summary["stats"]


def test_a_host_that_answers_between_failures_is_not_unreachable(tmp_path):
    mw, spider = _middleware(tmp_path, POLITENESS_SCALE=0, UNREACHABLE_TRIES=2, UNREACHABLE_SECONDS=0)
    req = Request("https://zenodo.example/api/records/1")
    mw.process_exception(req, CannotResolveHostError("x"))
    mw.process_response(req, Response(req.url, status=200))
    mw.process_exception(req, CannotResolveHostError("x"))
    assert mw.stopped is None and not spider.problems
    # the file host's failures do not stop the source
    other = Request("https://files.example/a.zip")
    for _ in range(3):
        mw.process_exception(other, CannotResolveHostError("x"))
    assert mw.stopped is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_crawl_all_goes_on_without_an_unreachable_source(api, tmp_path):
    """One API refuses connections: that source stops with one line, the others finish,
    the end lines and the run's summary name it, and the run is unhealthy (exit 3)."""
    for source in ("zenodo", "nei"):
        api.generate(source, 10, seed=3)
    env = crawl_env(api, tmp_path, UNREACHABLE_SECONDS=0,
                    OSF_API_URL=f"http://127.0.0.1:{_closed_port()}/osf/v2")
    result = subprocess.run([sys.executable, "-m", "scrapy", "crawl", "all"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 3, result.stderr[-3000:]
    assert result.stderr.count("osf: 127.0.0.1 unreachable (connection refused); source skipped this run") == 1
    # seven crawlers, and Scrapy's dumps once; a component that is off is not a warning
    assert result.stderr.count("Overridden settings:") == 1
    assert result.stderr.count("Enabled downloader middlewares:") == 1
    assert "WARNING: Disabled" not in result.stderr and "INFO: Disabled pipelines.classify.ClassifyPipeline" in result.stderr
    end = result.stderr[result.stderr.index("crawl (run"):]
    assert "osf" in end and "unreachable (connection refused)" in end
    assert saved_records(tmp_path, "zenodo") and saved_records(tmp_path, "nei"), "the other sources went on"
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "zenodo.json").read_text())["healthy"]
    # the run's summary (automation.sh's last step) names the unreachable source
    health = subprocess.run([sys.executable, "-m", "envision_spiders.runhealth", "--data-dir", str(tmp_path),
                             "--run-id", run.name, "--step", "scrape=3"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["unreachable_sources"] == {"osf": "127.0.0.1 unreachable (connection refused); source skipped this run"}
    assert "osf" in health.stdout + health.stderr and "unreachable" in health.stdout + health.stderr


def test_waits_end_when_the_crawl_stops(tmp_path):
    """A request waiting for an hour's budget is dropped within a second once the
    crawl stops (Scrapy clears ``crawler.crawling`` on SIGTERM / Ctrl-C)."""
    mw, spider = _middleware(tmp_path, POLITENESS_SCALE=1.0)
    mw.budget("zenodo.example").block(time.monotonic() + 3600)
    mw._engine_started()
    spider.crawler.crawling = True

    async def go():
        task = asyncio.ensure_future(mw.process_request(Request("https://zenodo.example/api/records/1")))
        await asyncio.sleep(0.05)
        assert not task.done()
        spider.crawler.crawling = False
        with pytest.raises(CrawlStopping):
            await asyncio.wait_for(task, 60)

    asyncio.run(go())
    assert spider.crawler.stats.get_value("envision/stopped/dropped_requests") == 1
