"""Rate windows, Retry-After parsing, backoff, and the rate-limit middleware."""

from __future__ import annotations

import asyncio
import email.utils
import random

import pytest
from scrapy import Request
from scrapy.http import Response

from envision_spiders.middlewares.ratelimit import RateLimitMiddleware
from envision_spiders.politeness import Backoff, Pace, WindowBudget, exhausted_wait, parse_reset, parse_retry_after, server_wait
from envision_spiders.spiders.zenodo import ZenodoSpider

from tests.conftest import make_spider


def test_window_budget_allows_a_burst_then_waits_for_the_oldest_to_expire():
    b = WindowBudget(((3, 10.0),))
    for t in (0.0, 1.0, 2.0):
        assert b.wait(t) == 0
        b.take(t)
    assert b.wait(3.0) == pytest.approx(7.0)  # the request at t=0 leaves the window at t=10
    assert b.wait(10.0) == 0
    b.take(10.0)
    assert b.wait(10.5) == pytest.approx(0.5)  # t=1 leaves at 11


def test_window_budget_honours_every_window_and_a_block():
    b = WindowBudget(((2, 1.0), (3, 60.0)))
    for t in (0.0, 0.1):
        b.take(t)
    assert b.wait(0.2) == pytest.approx(0.8)
    b.take(1.5)
    assert b.wait(2.0) == pytest.approx(58.0)  # the hourly-style window binds now
    b.block(100.0)
    assert b.wait(70.0) == pytest.approx(30.0)
    assert WindowBudget().wait(5.0) == 0


def test_parse_retry_after_seconds_and_http_date():
    now = 1_700_000_000.0
    assert parse_retry_after("58", now) == 58
    assert parse_retry_after(b" 3 ", now) == 3
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def test_reset_headers_epoch_or_delta():
    now = 1_784_876_300.0
    assert parse_reset("1784876353", now) == pytest.approx(53)  # Zenodo: epoch seconds
    assert parse_reset("120", now) == 120  # IETF draft (Dryad): delta seconds
    assert server_wait({"X-RateLimit-Reset": "1784876353"}, now) == pytest.approx(53)
    assert server_wait({"Retry-After": ["7"], "X-RateLimit-Reset": "1784876353"}, now) == 7
    assert server_wait({}, now) is None


def test_exhausted_budget_on_successful_answers():
    now = 1_784_876_300.0
    assert exhausted_wait({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1784876310"}, now) == pytest.approx(10)
    assert exhausted_wait({"RateLimit-Remaining": "0", "RateLimit-Reset": "60"}, now) == 60
    # Zenodo sends Retry-After on every 200: that alone is no reason to wait
    assert exhausted_wait({"X-RateLimit-Remaining": "129", "Retry-After": "58"}, now) is None


def test_backoff_grows_with_jitter_and_is_capped():
    b = Backoff(base=2.0, cap=30.0, rng=random.Random(1))
    waits = [b.delay(n) for n in range(1, 8)]
    assert 1.0 <= waits[0] <= 2.0 and 2.0 <= waits[1] <= 4.0 and 4.0 <= waits[2] <= 8.0
    assert all(15.0 <= w <= 30.0 for w in waits[4:])
    assert len({round(Backoff(rng=random.Random(s)).delay(3), 6) for s in range(5)}) > 1


def test_pace_scaling():
    p = Pace(2.0, ((100, 3600.0),))
    assert p.scaled(0.5) == Pace(1.0, ((100, 1800.0),))
    assert p.scaled(0).interval == 0 and p.scaled(0).windows == ()


def test_spider_pace_becomes_slot_settings(tmp_path):
    spider = make_spider(ZenodoSpider, tmp_path, POLITENESS_SCALE=1.0)
    s = spider.crawler.settings
    # the host's pace (60 requests a minute for guests); searches have their own budget
    assert s.getfloat("DOWNLOAD_DELAY") == 1.0 and s.getint("CONCURRENT_REQUESTS_PER_DOMAIN") == 1
    assert s.getbool("AUTOTHROTTLE_ENABLED") and s.getfloat("AUTOTHROTTLE_MAX_DELAY") >= 1.0
    scaled = make_spider(ZenodoSpider, tmp_path, POLITENESS_SCALE=0.01).crawler.settings
    assert scaled.getfloat("DOWNLOAD_DELAY") == pytest.approx(0.01)


def _middleware(tmp_path, **settings):
    spider = make_spider(ZenodoSpider, tmp_path, ZENODO_API_URL="https://zenodo.example/api", **settings)
    return RateLimitMiddleware.from_crawler(spider.crawler), spider


def test_429_blocks_its_host_only_and_retries(tmp_path):
    mw, spider = _middleware(tmp_path, POLITENESS_SCALE=1.0)
    req = Request("https://zenodo.example/api/records?q=x")
    result = mw.process_response(req, Response(req.url, status=429, headers={"Retry-After": "30"}))
    assert isinstance(result, Request) and result.dont_filter and result.meta["ratelimit_retries"] == 1
    import time

    now = time.monotonic()
    assert mw.budget("zenodo.example").wait(now) == pytest.approx(30, abs=1)
    assert mw.budget("files.example").wait(now) == 0, "other hosts are not slowed down"
    assert spider.crawler.stats.get_value("envision/ratelimit/429") == 1
    # a file host can share its API's budget by naming it
    shared = Request("https://files.example/x", meta={"budget": "zenodo.example"})
    assert asyncio.run(_waits(mw, shared)) is True


async def _waits(mw, request) -> bool:
    try:
        await asyncio.wait_for(mw.process_request(request), 0.05)
    except asyncio.TimeoutError:
        return True
    return False


def test_429_without_header_and_giving_up(tmp_path):
    mw, spider = _middleware(tmp_path, POLITENESS_SCALE=0, RATELIMIT_MAX_RETRIES=2)
    req = Request("https://zenodo.example/api/records")
    for attempt in (1, 2):
        req = mw.process_response(req, Response(req.url, status=429))
        assert isinstance(req, Request) and req.meta["ratelimit_retries"] == attempt
    final = mw.process_response(req, Response(req.url, status=429))
    assert isinstance(final, Response) and final.status == 429
    assert spider.crawler.stats.get_value("envision/ratelimit/gave_up") == 1


def test_hourly_window_pauses_then_lets_requests_through(tmp_path):
    class Budgeted(ZenodoSpider):
        name = "budgeted"
        pace = Pace(interval=0.0, windows=((2, 0.3),))

    spider = make_spider(Budgeted, tmp_path, ZENODO_API_URL="https://zenodo.example/api", POLITENESS_SCALE=1.0)
    mw = RateLimitMiddleware.from_crawler(spider.crawler)

    async def send(n):
        import time

        times = []
        for _ in range(n):
            await mw.process_request(Request("https://zenodo.example/api/records"))
            times.append(time.monotonic())
        return times

    times = asyncio.run(send(4))
    assert times[2] - times[0] >= 0.29 and times[3] - times[1] >= 0.29


def test_a_request_counts_in_its_window_until_its_answer_arrived():
    """The server counts a request when it receives it, at the latest when it answers:
    a request that took 5 s keeps the next one of a 1-per-10-s window waiting 10 s
    from its answer, not from its sending (flaky OSF test: 101 in a server window)."""
    b = WindowBudget(((1, 10.0),))
    stamp = b.take(0.0)
    b.done(stamp, 5.0)
    assert b.wait(10.0) == pytest.approx(5.0)
    assert b.wait(15.0) == 0
    # a request still in flight keeps its sending time
    in_flight = WindowBudget(((1, 10.0),))
    in_flight.take(0.0)
    assert in_flight.wait(9.0) == pytest.approx(1.0) and in_flight.wait(10.0) == 0
    # answers arriving out of order: the window holds the `limit` latest ones
    b2 = WindowBudget(((2, 10.0),))
    first, second = b2.take(0.0), b2.take(1.0)
    b2.done(second, 2.0)
    b2.done(first, 8.0)
    assert b2.wait(9.0) == pytest.approx(3.0), "frees when the earlier of the two answers (2.0) leaves"


def test_a_request_that_never_reached_the_server_spends_nothing():
    b = WindowBudget(((1, 3600.0),))
    b.refund(b.take(0.0))
    assert b.wait(1.0) == 0 and b.used(1.0, 3600.0) == 0
