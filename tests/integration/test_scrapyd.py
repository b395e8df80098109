"""Deployment to scrapyd: the egg holds both packages and the settings entry point, and a
real scrapyd on 127.0.0.1 lists the spiders and runs one against the local API server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, saved_records

BIN = Path(sys.executable).parent


def build_egg(out: Path) -> Path:
    """scrapyd-deploy's egg of the project, built from a copy of the checkout: the build
    writes setup.py, build/ and *.egg-info next to scrapy.cfg, and parallel workers must
    not share (or leave behind) those in the repository."""
    source = out / "checkout"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "results", "build", "dist", "*.egg-info", "setup.py", "__pycache__", "artifacts", "out"))
    egg = out / "envision.egg"
    result = subprocess.run([str(BIN / "scrapyd-deploy"), f"--build-egg={egg}"], cwd=source, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return egg


@pytest.fixture(scope="module")
def egg(tmp_path_factory):
    if not (BIN / "scrapyd-deploy").exists():
        pytest.skip("scrapyd-client is not installed (pip install -e '.[deploy]')")
    return build_egg(tmp_path_factory.mktemp("egg"))


def test_egg_holds_both_packages_and_the_settings_entry_point_and_no_test_support(egg):
    with zipfile.ZipFile(egg) as z:
        names = set(z.namelist())
        entry_points = z.read("EGG-INFO/entry_points.txt").decode()
    assert "envision_spiders/settings.py" in names and "envision_spiders/spiders/zenodo.py" in names
    assert "pipelines/persist.py" in names
    assert "envision_spiders/search_terms.txt" in names
    assert not any(n.startswith("tests/") for n in names)
    # the local API server and its recorded samples are test and demo support, not production code
    assert not any(n.startswith(("localapi/", "envision_spiders/localapi/")) or "/samples/" in n for n in names), \
        sorted(n for n in names if "localapi" in n or "/samples/" in n)
    assert "[scrapy]" in entry_points and "settings = envision_spiders.settings" in entry_points


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def _post(url: str, fields: list[tuple[str, str]]) -> dict:
    data = urllib.parse.urlencode(fields).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as r:
        return json.load(r)


@pytest.mark.slow
def test_real_scrapyd_deploys_lists_and_runs_a_spider(egg, api, tmp_path):
    if not (BIN / "scrapyd").exists():
        pytest.skip("scrapyd is not installed (pip install -e '.[deploy]')")
    port = _free_port()
    home = tmp_path / "scrapyd"
    home.mkdir()
    (home / "scrapyd.conf").write_text(
        "[scrapyd]\nbind_address = 127.0.0.1\n"
        f"http_port = {port}\npoll_interval = 0.2\n"
        "logs_dir = logs\neggs_dir = eggs\ndbs_dir = dbs\n"
        "jobstorage = scrapyd.jobstorage.SqliteJobStorage\n"
    )
    proc = subprocess.Popen([str(BIN / "scrapyd")], cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                assert _get(f"{base}/daemonstatus.json")["status"] == "ok"
                break
            except OSError:
                time.sleep(0.1)
        with open(egg, "rb") as fh:
            body = fh.read()
        boundary = "envisionegg"
        payload = b"".join(
            [
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"project\"\r\n\r\nenvision\r\n".encode(),
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n1\r\n".encode(),
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"egg\"; filename=\"envision.egg\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n".encode(),
                body,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        req = urllib.request.Request(f"{base}/addversion.json", data=payload,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=120) as r:
            added = json.load(r)
        assert added["status"] == "ok", added
        from scrapy.spiderloader import SpiderLoader
        from scrapy.utils.project import get_project_settings

        spiders = _get(f"{base}/listspiders.json?project=envision")
        assert spiders["status"] == "ok"
        assert sorted(spiders["spiders"]) == sorted(SpiderLoader.from_settings(get_project_settings()).list())

        api.generate("zenodo", 25, seed=21)
        data_dir = tmp_path / "data"
        fields = [("project", "envision"), ("spider", "zenodo")]
        for name, value in {**api.api_settings(), "DATA_DIR": str(data_dir), "POLITENESS_SCALE": "0",
                            "CLASSIFY_ENABLED": "0"}.items():
            fields.append(("setting", f"{name}={value}"))
        job = _post(f"{base}/schedule.json", fields)
        assert job["status"] == "ok", job
        deadline = time.time() + 180
        while time.time() < deadline:
            jobs = _get(f"{base}/listjobs.json?project=envision")
            if any(j["id"] == job["jobid"] for j in jobs["finished"]):
                break
            time.sleep(0.3)
        else:
            pytest.fail("the scrapyd job did not finish")
        records = saved_records(data_dir, "zenodo")
        assert records and all(r["source"] == "zenodo" for r in records.values())
        summary = next((data_dir / "runs").glob("*/zenodo.json"))
        assert json.loads(summary.read_text())["finish_reason"] == "finished"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_scrapyd_client_reaches_the_deploy_target_of_scrapy_cfg(tmp_path):
    """``scrapyd-client`` appends ``/listprojects.json`` to the target's URL as it is: a
    trailing slash in ``scrapy.cfg`` made ``//listprojects.json``, which scrapyd answers
    with 404. The real command runs against a stand-in that answers scrapyd's paths only,
    with the project's own ``scrapy.cfg`` (only the port changed)."""
    import http.server
    import threading

    if not (BIN / "scrapyd-client").exists():
        pytest.skip("scrapyd-client is not installed (pip install -e '.[deploy]')")
    paths: list[str] = []

    class Scrapyd(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server interface
            # the raw request target: http.server folds a leading "//" of self.path into "/"
            target = self.requestline.split()[1]
            paths.append(target)
            ok = target == "/listprojects.json"
            body = json.dumps({"status": "ok", "projects": ["envision"]} if ok else {"status": "error"}).encode()
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scrapyd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = (ROOT / "scrapy.cfg").read_text()
        assert "localhost:6800" in cfg
        (tmp_path / "scrapy.cfg").write_text(cfg.replace("localhost:6800", f"127.0.0.1:{server.server_address[1]}"))
        result = subprocess.run([str(BIN / "scrapyd-client"), "projects"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=60)
    finally:
        server.shutdown()
    assert paths == ["/listprojects.json"], paths
    assert result.returncode == 0 and result.stdout.split() == ["envision"], result.stdout + result.stderr


def test_scrapyd_working_folders_are_ignored_by_git():
    """``cd /srv/envision-spiders && .venv/bin/scrapyd`` (as the README says) writes its eggs,
    job logs, queues and items into the checkout: none of them may show up in git."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["eggs/envision/1700000000.egg", "logs/envision/zenodo/0a1b.log", "dbs/envision.db",
             "items/envision/zenodo/0a1b.jl", "jobs/envision.db", "twistd.pid"]
    result = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert result.stdout.split() == paths, result.stdout + result.stderr
