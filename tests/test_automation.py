"""automation.sh: one run at a time, a log per run, and a failed step stops the run."""

from __future__ import annotations

import fcntl
import os
import subprocess

import pytest

from .conftest import ROOT

API_SETTINGS = ["ZENODO_API_URL", "FIGSHARE_API_URL", "DRYAD_API_URL", "OSF_API_URL",
                "DATACITE_API_URL", "KAGGLE_API_URL", "NIH_REPORTER_API_URL"]


def automation(*args, env, timeout=300):
    return subprocess.run([str(ROOT / "automation.sh"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_KEY", "_SECRET"))}
    env.update({"DATA_DIR": str(tmp_path / "data"), "RESULTS_DIR": str(tmp_path / "results"), "RUN_ID": "testrun"})
    env.update(extra)
    return env


def test_a_second_run_exits_while_the_first_holds_the_lock(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with open(data / ".automation.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (data / ".automation.lock.owner").write_text("4242 earlier-run all\n")
        result = automation("scrape", env=_env(tmp_path), timeout=60)
    assert result.returncode != 0
    assert "another automation.sh run is still going" in result.stderr and "4242 earlier-run" in result.stderr


def test_unknown_step_is_refused(tmp_path):
    result = automation("frobnicate", env=_env(tmp_path), timeout=60)
    assert result.returncode != 0 and "unknown step 'frobnicate'" in result.stderr


@pytest.mark.slow
def test_a_failed_scrape_stops_the_run_and_is_logged(tmp_path):
    env = _env(tmp_path, **{name: "not-a-url" for name in API_SETTINGS})
    result = automation("all", env=env)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "scrape: every spider" in out and "classify:" not in out, "no step runs after a failed one"
    log = tmp_path / "data" / "runs" / "testrun" / "automation.log"
    assert log.exists() and "is not an http(s) URL" in log.read_text()


@pytest.mark.slow
def test_demo_runs_offline_and_every_summary_of_a_run_sits_together(tmp_path):
    env = _env(tmp_path, DEMO_RECORDS="8", DEMO_DATA_DIR=str(tmp_path / "demo"), DEMO_RESULTS_DIR=str(tmp_path / "demo-results"))
    result = automation("demo", env=env, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert not (tmp_path / "data").exists(), "the demo never touches the real DATA_DIR"
    runs = tmp_path / "demo" / "runs" / "testrun"
    names = {p.name for p in runs.iterdir()}
    assert {"automation.log", "zenodo.json", "nei.json"} <= names, names
