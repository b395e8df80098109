"""`scrapy crawl all` and the project's wiring: every spider starts, and `crawl <name>`
still behaves as Scrapy's own (scrapyd runs jobs through it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from envision_spiders.localapi import SOURCES

from .conftest import ROOT, crawl_env, make_spider, saved_records

SPIDERS = ["datacite", "dryad", "figshare", "kaggle", "nei", "osf", "zenodo"]


def scrapy(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "scrapy", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_every_spider_is_listed_and_its_start_yields_requests(tmp_path):
    from scrapy.spiderloader import SpiderLoader
    from scrapy.utils.project import get_project_settings

    import asyncio

    loader = SpiderLoader.from_settings(get_project_settings())
    names = sorted(loader.list())
    assert set(names) <= set(SPIDERS) and "zenodo" in names
    for name in names:
        spider = make_spider(loader.load(name), tmp_path / name)

        async def first():
            out = []
            async for r in spider.start():
                out.append(r)
                if len(out) >= 3:
                    break
            return out

        assert asyncio.run(first()), f"{name} starts nothing"


def test_crawl_of_an_unknown_spider_fails_clearly(tmp_path):
    result = scrapy("crawl", "nosuchspider", env=crawl_env(None, tmp_path))
    assert result.returncode != 0 and "nosuchspider" in result.stderr


@pytest.mark.slow
def test_crawl_all_runs_every_spider_in_one_process(api, tmp_path):
    for source in SOURCES:
        api.generate(source, 30, seed=11)
    result = scrapy("crawl", "all", env=crawl_env(api, tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, "one run id for the whole run"
    names = sorted(p.stem for p in runs[0].glob("*.json"))
    from scrapy.spiderloader import SpiderLoader
    from scrapy.utils.project import get_project_settings

    assert names == sorted(SpiderLoader.from_settings(get_project_settings()).list())
    for name in names:
        summary = json.loads((runs[0] / f"{name}.json").read_text())
        assert summary["finish_reason"] == "finished" and summary["failures"] == 0, name
        if name in SOURCES:
            assert saved_records(tmp_path, name), f"{name} saved nothing"
    assert "crawl (run" in result.stderr
    # results/ rebuilt once at the end, for every source on disk
    for source in SOURCES:
        if source in names:
            assert (tmp_path / "results" / f"{source}_all_results.json").exists(), source


def test_run_health_flags_a_collapse_of_hits_against_recent_runs():
    from envision_spiders.extensions.runsummary import health

    def run(hits, mode="full", reason="finished", failures=0):
        return {"hits": hits, "mode": mode, "finish_reason": reason, "failures": failures}

    history = [run(400), run(380), run(420), run(5, mode="incremental")]
    assert health(run(390), history) == []
    (problem,) = health(run(12), history)
    assert "hits fell to 12 from a median of 400" in problem
    # incremental runs are compared with incremental runs only, and more leniently
    inc_history = [run(60, "incremental"), run(40, "incremental"), run(50, "incremental")]
    assert health(run(8, "incremental"), history + inc_history) == []
    assert health(run(0, "incremental"), history + inc_history)
    assert health(run(0), []) == [], "no history, no judgement"
    assert len(health(run(400, reason="shutdown", failures=2), history)) == 2
