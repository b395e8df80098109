"""`scrapy crawl all` and the project's wiring: every spider starts, and `crawl <name>`
still behaves as Scrapy's own (scrapyd runs jobs through it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from localapi import SOURCES

from tests.conftest import ROOT, crawl_env, make_spider, saved_records, scrapy_in_process

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
    assert "Traceback" not in result.stderr


def _error_line(stderr: str) -> str:
    """The one line a refused command prints after Scrapy's usage block."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("args, env, message", [
    (["crawl", "zenodoo"], {}, "no spider named 'zenodoo'; did you mean zenodo?"),
    (["crawl", "zenodo", "-a", "sinse=2025-01-01"], {}, "-a sinse: zenodo takes no such argument; did you mean since?"),
    (["crawl", "all", "-a", "page_size=50"], {}, "-a page_size: only datacite takes it"),
    (["crawl", "zenodo", "-s", "MAX_PER_QUERYY=5"], {}, "-s MAX_PER_QUERYY: no such setting; did you mean MAX_PER_QUERY?"),
    (["crawl", "zenodo"], {"MAX_PER_QUERY": "fifty"},
     "MAX_PER_QUERY='fifty' (environment or .env) is not a whole number (the default is 0)"),
    (["crawl", "nei", "-s", "CLASSIFY_ENABLED=maybe"], {}, "CLASSIFY_ENABLED='maybe' (-s) is not on or off"),
    (["download", "-s", "DOWNLOAD_THRESHOLD=high"], {}, "DOWNLOAD_THRESHOLD='high' (-s) is not a number"),
    (["classify", "--source", "zenodoo"], {}, "--source zenodoo: no such source; did you mean zenodo?"),
    (["download", "--source", "figshar"], {}, "--source figshar: no such source; did you mean figshare?"),
    (["report"], {"RESULTS_DIR": "missing"}, "RESULTS_DIR"),
    (["post", "--dry-run"], {"RESULTS_DIR": "missing"}, "does not exist: run `scrapy classify` first"),
])
def test_bad_input_from_the_user_is_one_line_and_exit_status_2(tmp_path, args, env, message):
    """Misspelt commands, settings and values, unknown sources, empty or missing folders:
    one line saying what is wrong and what would be right, no traceback, no work done."""
    values = crawl_env(None, tmp_path / "data", RESULTS_DIR=str(tmp_path / "results"))
    (tmp_path / "results").mkdir()
    if env.get("RESULTS_DIR") == "missing":
        env["RESULTS_DIR"] = str(tmp_path / "no-such-results")
    result = scrapy_in_process(args, {**values, **env})
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in _error_line(result.stderr)
    assert not (tmp_path / "data" / "models").exists(), "no model is built for a refused command"
    assert not (tmp_path / "data" / "runs").exists(), "nothing ran"


@pytest.mark.parametrize("args, which", [(["classify"], ""), (["classify", "--source", "osf"], " of osf")])
def test_classify_on_a_data_dir_without_records_says_so_and_builds_no_model(tmp_path, args, which):
    """Nothing to label: one line, a non-zero status (3: the step ran and found a problem,
    so a weekly run after a scrape that saved nothing still ends with its report), and no
    model loaded or built."""
    data = tmp_path / "data"
    (data / "metadata" / "zenodo").mkdir(parents=True)
    (data / "metadata" / "zenodo" / "1.json").write_text('{"source": "zenodo", "source_id": "1"}')
    if not which:
        (data / "metadata" / "zenodo" / "1.json").unlink()
    result = scrapy_in_process(args, crawl_env(None, data, RESULTS_DIR=str(tmp_path / "results")))
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "holds no saved records" in line]
    assert f"ERROR: classify: DATA_DIR {data} holds no saved records{which}" in line
    assert not (data / "models").exists() and "Classifier" not in result.stderr


def test_a_misspelt_setting_in_dot_env_is_named(tmp_path):
    """Settings come from .env too (python-dotenv, in the working directory): a misspelt
    name there was silently ignored."""
    (tmp_path / ".env").write_text("DOWNLOAD_TRESHOLD=0.9\n")
    env = crawl_env(None, tmp_path / "data", SCRAPY_SETTINGS_MODULE="envision_spiders.settings")
    result = subprocess.run([sys.executable, "-m", "scrapy", "crawl", "zenodo"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "DOWNLOAD_TRESHOLD (environment or .env) is not a setting; did you mean DOWNLOAD_THRESHOLD?" in \
        _error_line(result.stderr)


def test_spider_arguments_and_suggestions():
    from envision_spiders.spiders.datacite import DataCiteSpider
    from envision_spiders.spiders.zenodo import ZenodoSpider
    from envision_spiders.usercheck import did_you_mean, spider_problems

    assert ZenodoSpider.arguments() == {"since", "full"}
    assert DataCiteSpider.arguments() == {"since", "full", "page_size"}
    accepted = {"zenodo": {"since", "full"}, "datacite": {"since", "full", "page_size"}}
    assert spider_problems(accepted, "zenodo", {"since": "2026-01-01", "_job": "abc"}, accepted) == []
    assert spider_problems(accepted, "datacite", {"page_size": "50"}, accepted) == []
    assert spider_problems(accepted, "all", {"full": "1"}, accepted) == []
    (problem,) = spider_problems(accepted, "zenodo", {"name": "x"}, accepted)
    assert problem.startswith("-a name: zenodo takes no such argument") and "(arguments: full, since)" in problem
    assert did_you_mean("RESULT_DIR", ["RESULTS_DIR", "DATA_DIR"]) == "; did you mean RESULTS_DIR?"
    assert did_you_mean("PATH", ["RESULTS_DIR", "DATA_DIR"]) == ""


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
