"""What the benchmarks share: the machine, the local API server with each API's limits,
crawls in a child process, the floor of a paced source, and ``bench/RESULTS.md``.

Nothing here talks to a real API: every crawl points at the local API server
(``localapi``) started in the benchmark's own process on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "RESULTS.md"
OUT = BENCH / "out"  # raw JSON of each run (not committed)
sys.path.insert(0, str(ROOT))

SPIDERS = ["datacite", "dryad", "figshare", "kaggle", "nei", "osf", "zenodo"]


# --------------------------------------------------------------------------- the APIs' limits
@dataclass(frozen=True)
class Limit:
    """An API's documented limit (docs/sources/), at the real pace.

    ``interval``: the pace the API asks for (seconds between requests) where it names one;
    ``windows``: the (requests, seconds) windows it enforces; ``page_size``: the largest
    search page it serves; ``server_windows``: what the local server enforces (a "1 a
    second" ask becomes 60 a minute there, so a request arriving a millisecond early is
    not refused: the real APIs do not enforce those asks to the millisecond either).
    """

    prefix: str
    interval: float
    windows: tuple[tuple[int, float], ...]
    page_size: int
    retry_header: str | None
    note: str
    server_windows: tuple[tuple[int, float], ...] | None = None
    # budgets of a class of request on top of the host's: (path regex, windows), e.g.
    # Zenodo's searches (30 a minute) within its 60 a minute for every request
    classes: tuple[tuple[str, tuple[tuple[int, float], ...]], ...] = ()

    def enforced(self) -> tuple[tuple[int, float], ...]:
        return self.server_windows if self.server_windows is not None else self.windows


# Anonymous limits (no tokens in the benchmarks), as docs/sources/ records them.
LIMITS: dict[str, Limit] = {
    "zenodo": Limit("/zenodo/api", 0.0, ((60, 60.0), (2000, 3600.0)), 25, "X-RateLimit-Reset",
                    "guests 60/min and 2,000/h for every request, searches 30/min; 25 a page anonymous",
                    classes=((r"^/zenodo/api/records$", ((30, 60.0),)),)),
    "figshare": Limit("/figshare/v2", 1.0, (), 1000, "Retry-After",
                      "no enforced limit, asks for <= 1 request/s; page_size up to 1,000",
                      server_windows=((60, 60.0),)),
    "dryad": Limit("/dryad/api", 0.0, ((30, 60.0),), 100, "RateLimit-Reset",
                   "anonymous 30/min; per_page up to 100"),
    "osf": Limit("/osf/v2", 0.0, ((100, 3600.0),), 100, "Retry-After",
                 "anonymous 100/hour; page[size] up to 100"),
    "datacite": Limit("/datacite", 0.0, ((500, 300.0),), 1000, None,
                      "unidentified 500 per 5 min, 429 without a header; page[size] up to 1,000"),
    "kaggle": Limit("/kaggle/api", 1.0, (), 20, "Retry-After",
                    "limits not published; the spider's 1/s taken as the limit; 20 a page (fixed)",
                    server_windows=((60, 60.0),)),
    "nei": Limit("/reporter/v2", 1.0, (), 500, "Retry-After",
                 "asks for <= 1 request/s (IP blocks otherwise); limit up to 500",
                 server_windows=((60, 60.0),)),
}


def apply_limits(server, scale: float) -> None:
    """Every API's limit on the local server, its windows scaled by ``scale`` (fresh
    windows: a run never inherits the previous run's spent budget)."""
    state = server.state
    with state.lock:
        state.rate_windows.clear()
    if scale <= 0:
        return
    for limit in LIMITS.values():
        windows = [(n, s * scale) for n, s in limit.enforced()]
        if windows:
            state.set_rate_limit(limit.prefix, windows, limit.retry_header)
        for pattern, class_windows in limit.classes:
            state.set_rate_limit(pattern, [(n, s * scale) for n, s in class_windows], limit.retry_header)


def floor_seconds(n: int, limit: Limit, scale: float, entries: list[dict] | None = None) -> float:
    """The earliest time the last of ``n`` requests may leave under ``limit`` (scaled):
    the greedy schedule (each request as early as the interval and every window allow),
    which no crawler can beat. 0 for one request. With the served ``entries``, a class
    of request with a budget of its own (``Limit.classes``) is a floor too: the later one."""
    floors = [_greedy_floor(n, limit.interval * scale, [(k, s * scale) for k, s in limit.windows])]
    for pattern, windows in limit.classes if entries is not None else ():
        count = sum(1 for e in entries if re.search(pattern, e["path"]) and e["status"] != 429)
        floors.append(_greedy_floor(count, 0.0, [(k, s * scale) for k, s in windows]))
    return max(floors)


def _greedy_floor(n: int, interval: float, windows: list[tuple[int, float]]) -> float:
    if n <= 1:
        return 0.0
    if not windows:
        return (n - 1) * interval
    times: list[float] = []
    t = 0.0
    for i in range(n):
        if i:
            t = times[-1] + interval
        for k, s in windows:
            if i >= k:
                t = max(t, times[i - k] + s)
        times.append(t)
    return times[-1]


# --------------------------------------------------------------------------- machine and results
def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{kb / 2**20:.1f} GiB"
    except (OSError, AttributeError):
        pass
    import scrapy

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "python": platform.python_version(),
        "scrapy": scrapy.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line() -> str:
    m = machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"*Measured {m['date']} on {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, "
            f"Python {m['python']}, Scrapy {m['scrapy']}, {m['os']}; commit {git_commit()}; "
            f"load average when written {load} (the cores are shared with other work).*")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


HEADER = """# Benchmark results

Written by the scripts in `bench/` (see `bench/README.md`); each section is replaced
when its script runs again and says when and on what it was measured. Every crawl ran
against the local API server on 127.0.0.1, never a real API. A *floor* is the best any
crawler could do under the same limits; a *target* is what the project aims for.
"""


def write_section(key: str, markdown: str) -> None:
    """Replace (or add) section ``key`` of RESULTS.md; sections stay in key order."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    sections = dict(re.findall(r"<!-- section (\S+) -->\n(.*?)<!-- end \1 -->\n?", text, re.S))
    head = text.split("<!-- section ", 1)[0].rstrip() + "\n"
    sections[key] = markdown.rstrip() + "\n"
    body = "".join(f"\n<!-- section {k} -->\n{v}<!-- end {k} -->\n" for k, v in sorted(sections.items()))
    RESULTS.write_text(head + body, encoding="utf-8")


def save_json(name: str, data: Any) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return path


def table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- crawls
# A child that runs Scrapy's command line and, on exit, writes its own peak RSS and CPU
# time (the start-up cost is measured from the parent's clock).
#
# The peak is VmHWM, not ru_maxrss: on Linux ru_maxrss survives execve, so a child forked
# from a benchmark process that holds a big generated corpus would report the parent's size.
PEAK_RSS_MB = (
    "def peak_rss_mb():\n"
    "    import re, resource\n"
    "    try:\n"
    "        return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024\n"
    "    except (OSError, AttributeError):\n"
    "        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
)
_CHILD = (
    "import atexit, json, os, resource, sys, time\n"
    + PEAK_RSS_MB +
    "def _done():\n"
    "    ru = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    open(os.environ['BENCH_CHILD_OUT'], 'w').write(json.dumps({'peak_rss_mb': peak_rss_mb(),"
    " 'cpu_s': ru.ru_utime + ru.ru_stime}))\n"
    "atexit.register(_done)\n"
    "sys.argv = ['scrapy'] + sys.argv[1:]\n"
    "from scrapy.cmdline import execute\n"
    "execute()\n"
)


def crawl_env(server, data_dir: Path, scale: float, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_TOKEN", "_KEY", "_SECRET", "_CLIENT_ID")) and not k.startswith(("DRYAD_", "KAGGLE_", "OSF_", "ZENODO_", "FIGSHARE_"))}
    env.update(server.api_settings())
    env.update({
        "DATA_DIR": str(data_dir),
        "RESULTS_DIR": str(data_dir / "results"),
        "POLITENESS_SCALE": repr(scale),
        "CLASSIFY_ENABLED": "0",
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # the bench settings add the instrumentation (bench/instrument.py) to the project's
        "SCRAPY_SETTINGS_MODULE": "bench.bench_settings",
    })
    env.update({k: str(v) for k, v in settings.items()})
    return env


def run_crawl(server, spider: str, data_dir: Path, scale: float, *args: str, timeout: float = 1800,
              **settings: Any) -> dict[str, Any]:
    """``scrapy crawl <spider>`` in a child process; wall time, peak RSS, CPU, exit code,
    the run summaries it wrote and the instrumentation's figures."""
    data_dir.mkdir(parents=True, exist_ok=True)
    out = data_dir / f".child-{spider}-{time.monotonic_ns()}.json"
    env = crawl_env(server, data_dir, scale, BENCH_CHILD_OUT=str(out), **settings)
    before = {p for p in (data_dir / "runs").glob("*/*.json")} if (data_dir / "runs").exists() else set()
    log = data_dir / f"crawl-{spider}.log"
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        proc = subprocess.run([sys.executable, "-c", _CHILD, "crawl", spider, *args], cwd=ROOT, env=env,
                              stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
    wall = time.perf_counter() - t0
    child = json.loads(out.read_text()) if out.exists() else {}
    summaries = {}
    for p in sorted((data_dir / "runs").glob("*/*.json")):
        if p not in before:
            summaries[p.stem] = json.loads(p.read_text())
    return {"spider": spider, "returncode": proc.returncode, "wall_s": wall, **child, "summaries": summaries,
            "instrument": read_instrument(data_dir), "log": str(log), "t0_epoch": time.time() - wall}


def read_instrument(data_dir: Path) -> dict[str, Any]:
    out = {}
    for p in sorted((data_dir / "bench").glob("*.json")):
        out[p.stem] = json.loads(p.read_text())
    return out


def generate_all(server, records: int, seed: int = 7, sources: list[str] | None = None) -> dict[str, int]:
    return {s: server.generate(s, records, seed=seed) for s in (sources or SPIDERS)}


def ceil_div(a: int, b: int) -> int:
    return -(-a // b) if b else 0


__all__ = ["LIMITS", "Limit", "apply_limits", "floor_seconds", "machine", "machine_line", "write_section",
           "save_json", "table", "run_crawl", "generate_all", "ceil_div", "SPIDERS", "ROOT", "PEAK_RSS_MB"]
