"""automation.sh: one run at a time, a log per run, and a failed step stops the run."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess

import pytest

from tests.conftest import ROOT

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
def test_demo_runs_the_weekly_pipeline_offline_and_sums_it_up(tmp_path, classifier_models):
    # the results folder given relative to the checkout, as the default results/demo is
    results_dir = os.path.relpath(tmp_path / "demo-results", ROOT)
    env = _env(tmp_path, DEMO_RECORDS="8", DEMO_DATA_DIR=str(tmp_path / "demo"), DEMO_RESULTS_DIR=results_dir,
               CLASSIFIER_MODELS_DIR=str(classifier_models))
    result = automation("demo", env=env, timeout=900)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert not (tmp_path / "data").exists(), "the demo never touches the real DATA_DIR"
    for step in ("scrape:", "classify:", "download:", "post:", "recall:", "report:"):
        assert step in out, step
    runs = tmp_path / "demo" / "runs" / "testrun"
    names = {p.name for p in runs.iterdir()}
    assert {"automation.log", "zenodo.json", "nei.json", "download.json", "post.json", "recall.json", "summary.json"} <= names, names
    summary = json.loads((runs / "summary.json").read_text())
    assert summary["healthy"] and [s["step"] for s in summary["steps"]] == ["scrape", "classify", "download", "post", "recall",
                                                                            "report"]
    assert summary["recall"]["summary_line"].startswith("recall of the reference catalogue: ")
    assert "recall of the reference catalogue: " in out
    assert summary["classify"]["records"] > 0 and set(summary["spiders"]) >= {"zenodo", "nei", "osf"}
    assert (tmp_path / "demo-results" / "report.html").exists()
    # duplicates are neither downloaded nor posted, and the funnel's figures nest
    rows = [r for p in (tmp_path / "demo-results").glob("*_all_results.json") for r in json.loads(p.read_text())]
    duplicates = {(r["source"], str(r["source_id"])) for r in rows if r.get("duplicate_of")}
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "demo" / "downloads").glob("*/*/manifest.json")]
    assert not duplicates & {(m["source"], str(m["source_id"])) for m in manifests}
    # nobody has accepted anything yet: with POST_REQUIRES_REVIEW (the default) the demo posts nothing and says
    # how many records wait for a curator (which records a post selects: test_review_gate.py, test_portal.py)
    post = json.loads((runs / "post.json").read_text())
    assert post["requires_review"] and post["posted"] == 0 and post["awaiting_review"] > 0, post
    assert not (tmp_path / "demo" / "portal" / "posted.json").exists()
    assert "EYE_IMAGING records wait for a curator" in out
    f = summary["funnel"]
    assert f["found"] == len(rows) >= f["eye_imaging"] >= f["confident"] >= f["canonical"] >= f["downloaded"]
    assert f["canonical"] >= f["posted"] and f"run testrun funnel: {f['found']} found" in out
    # where the page really is, whatever folder the curator ran the script from
    assert f"demo review page: file://{(tmp_path / 'demo-results' / 'report.html').resolve()}" in out


@pytest.mark.slow
def test_an_unhealthy_scrape_lets_the_run_go_on_and_ends_it_non_zero(tmp_path, api, classifier_models):
    """A spider that lost requests saved everything else: classify and the later steps
    run on it, and the run ends with a non-zero status and says why."""
    api.generate("zenodo", 10, seed=3)
    api.state.add_fault(path=r"q=%28%22retinal%22", kind="status", status=500, count=-1)
    env = _env(tmp_path, **api.api_settings(), POLITENESS_SCALE="0", RETRY_TIMES="0", PORTAL_URL="",
               CLASSIFIER_MODELS_DIR=str(classifier_models), SEARCH_TERMS=str(_terms(tmp_path)))
    result = automation("all", env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    for step in ("classify:", "download:", "post:", "report:"):
        assert step in out, f"{step} did not run after an unhealthy scrape"
    summary = json.loads((tmp_path / "data" / "runs" / "testrun" / "summary.json").read_text())
    assert not summary["healthy"] and any("zenodo" in p and "failed for good" in p for p in summary["problems"])
    assert [(s["step"], s["exit_status"]) for s in summary["steps"]][0] == ("scrape", 3)
    assert "RUN testrun IS UNHEALTHY" in out


def _terms(tmp_path):
    p = tmp_path / "terms.txt"
    p.write_text("retinal OCT\n")
    return p


def test_the_local_api_server_prints_every_export_a_shell_needs(tmp_path):
    """``python -m localapi`` prints the lines a curator pastes into a
    shell to run the commands against it; without POLITENESS_SCALE=0 the spiders keep
    the real APIs' pace (OSF: 100 requests an hour) against a local server."""
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "localapi", "--port", "0", "--records", "1",
                             "--sources", "zenodo"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("export PORTAL_API_KEY="):
                break
    finally:
        proc.terminate()
        proc.wait(30)
    exports = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
    assert exports.get("POLITENESS_SCALE") == "0", lines
    assert exports["ZENODO_API_URL"].startswith("http://127.0.0.1:") and "PORTAL_URL" in exports


def test_help_lists_every_step_and_says_what_a_bare_run_does(tmp_path):
    """Every step the script accepts (its ``case`` block) is in ``--help``, and the help
    says that no step at all means the real, hours-long weekly crawl."""
    import re

    script = (ROOT / "automation.sh").read_text()
    block = script[script.index('case "$STEP" in'):script.index("esac")]
    steps = {name for names in re.findall(r"^\s+([a-z|-]+)\)", block, re.M) for name in names.split("|")}
    steps -= {"-h", "--help"}
    assert {"all", "setup", "demo", "report"} <= steps
    result = automation("--help", env=_env(tmp_path), timeout=60)
    assert result.returncode == 0
    listed = set(re.findall(r"^  ([a-z]+)\s", result.stdout, re.M))
    assert steps <= listed, steps - listed
    assert "REAL weekly pipeline" in result.stdout and "hours" in result.stdout


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_warning(tmp_path):
    """The kernel freed the lock of a run that was killed; its owner file still names it:
    the next run says whose lock it takes over, and removes the file when it ends."""
    data = tmp_path / "data"
    data.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (data / ".automation.lock.owner").write_text(f"{gone.pid} 20261205T020000Z scrape\n")
    result = automation("post", env=_env(tmp_path, PORTAL_URL=""), timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert f"taking over the lock of run 20261205T020000Z (pid {gone.pid}, step scrape), which is dead" in out
    assert not (data / ".automation.lock.owner").exists(), "a run that ends releases the lock"
    again = automation("post", env=_env(tmp_path, PORTAL_URL=""), timeout=120)
    assert "taking over" not in again.stdout + again.stderr


@pytest.mark.slow
def test_sigterm_stops_the_run_promptly_and_it_is_still_summed_up(tmp_path, api):
    """A weekly run waiting out an hour-long Retry-After is stopped by SIGTERM: the
    scrape closes (the wait ends), no later step runs, the spider's summary and the
    run's summary.json are written, the exit status says a signal stopped it."""
    import signal
    import time

    api.generate("zenodo", 5, seed=3)
    api.state.add_fault(path=r"^/zenodo/api/records\?", kind="429", count=-1, retry_after="3600")
    env = _env(tmp_path, **api.api_settings(), POLITENESS_SCALE="0", PORTAL_URL="", CLASSIFY_ENABLED="0",
               SEARCH_TERMS=str(_terms(tmp_path)))
    log = tmp_path / "data" / "runs" / "testrun" / "automation.log"
    with open(tmp_path / "out.txt", "w") as out:
        proc = subprocess.Popen([str(ROOT / "automation.sh"), "all"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            # a hang guard, not a timing: the line comes once the crawl waits
            for _ in range(3000):
                if log.exists() and "zenodo: rate-limited by " in log.read_text():
                    break
                assert proc.poll() is None, (tmp_path / "out.txt").read_text()[-3000:]
                time.sleep(0.1)
            else:
                pytest.fail("the crawl never said it was rate-limited: " + (tmp_path / "out.txt").read_text()[-3000:])
            proc.send_signal(signal.SIGTERM)
            returncode = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = (tmp_path / "out.txt").read_text()
    assert returncode == 143, text[-3000:]
    assert "stopped by SIGTERM during step scrape" in text and "classify:" not in text
    zenodo = json.loads((tmp_path / "data" / "runs" / "testrun" / "zenodo.json").read_text())
    assert zenodo["finish_reason"] == "shutdown"
    summary = json.loads((tmp_path / "data" / "runs" / "testrun" / "summary.json").read_text())
    assert [s["step"] for s in summary["steps"]] == ["scrape"] and not summary["healthy"]
    assert summary["stopped_by"] == "TERM" and "the run was stopped by SIGTERM during step scrape" in summary["problems"][0]
    assert not (tmp_path / "data" / ".automation.lock.owner").exists()
