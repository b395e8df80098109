"""Throughput and memory of downloads: one huge file, and many small files at once.

    .venv/bin/python bench/downloads.py [--size-gb 4] [--small 200] [--json bench/out/downloads.json]

The local API server runs in this process; each download run is a child process (so
its peak RSS is the downloader's alone) that downloads into a temporary folder and
reports wall time, CPU time and its peak RSS (``VmHWM``: ``ru_maxrss`` would carry the
parent's size across exec). Scenarios:

* ``huge``: one virtual file of ``--size-gb`` GiB, md5-verified, streamed to disk;
* ``resume``: the same file cut at half on the first transfer and resumed with Range;
* ``small``: ``--small`` files of 256 KiB in one record (politeness off), the rate of a
  record made of many files;
* ``server``: the same huge file read by a bare aiohttp client in a child process that
  throws the bytes away (no disk, no checksum): the server's bandwidth on this machine,
  the ceiling of any downloader here.

For ``resume``, the server's own counters give the requests and the body bytes it sent
for the file (the first transfer's half, then the rest from the cut): the cost of an
interrupted file is the bytes sent beyond its size.

MB/s counts bytes written and verified (MB = 10^6 bytes). The files are deleted after
each run. Numbers vary with the disk and the other load on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import PEAK_RSS_MB  # noqa: E402
from localapi import LocalAPIServer, ServedFile, sparse_reader  # noqa: E402
from localapi.downloads import cut_once, digest_of  # noqa: E402
from envision_spiders.storage import atomic_write_json, record_path  # noqa: E402

CHILD = PEAK_RSS_MB + textwrap.dedent(
    """
    import asyncio, json, resource, sys, time
    from pathlib import Path
    from envision_spiders.downloads.runner import DownloadConfig, DownloadRunner

    data_dir, cand = Path(sys.argv[1]), json.loads(sys.argv[2])
    cfg = DownloadConfig(data_dir=data_dir, results_dir=data_dir / "results", scale=0.0, min_free_bytes=0, concurrency=8)

    async def main():
        async with DownloadRunner(cfg) as runner:
            t0, c0 = time.perf_counter(), time.process_time()
            reports = await runner.run([cand])
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ru = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"status": reports[0].status, "counts": dict(reports[0].counts), "bytes": runner.counts["bytes"],
                          "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb()}))

    asyncio.run(main())
    """
)


def run_child(data_dir: Path, source_id: str) -> dict:
    cand = {"source": "zenodo", "source_id": source_id, "label": "EYE_IMAGING", "prob_eye_imaging": 0.9}
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    result = subprocess.run([sys.executable, "-c", CHILD, str(data_dir), json.dumps(cand)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["mb_per_s"] = round(out["bytes"] / 1e6 / out["wall_s"], 1) if out["wall_s"] else None
    return out


BANDWIDTH_CHILD = PEAK_RSS_MB + textwrap.dedent(
    """
    import asyncio, json, resource, sys, time
    import aiohttp

    async def main():
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        async with aiohttp.ClientSession() as s, s.get(sys.argv[1]) as r:
            async for chunk in r.content.iter_chunked(1 << 20):
                n += len(chunk)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ru = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"bytes": n, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb()}))

    asyncio.run(main())
    """
)


def server_bandwidth(url: str) -> dict:
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    result = subprocess.run([sys.executable, "-c", BANDWIDTH_CHILD, url], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["mb_per_s"] = round(out["bytes"] / 1e6 / out["wall_s"], 1)
    return out


def measure(size: int, small: int, scenarios: tuple[str, ...] = ("server", "huge", "resume", "small")) -> list[dict]:
    """Run the scenarios against a local server started here; one row each."""
    rows = []
    with LocalAPIServer() as server, tempfile.TemporaryDirectory(prefix="bench-downloads-") as tmp:
        data_dir = Path(tmp) / "data"
        huge = ServedFile(size=size, reader=sparse_reader(size, {}))
        md5 = digest_of(huge)
        server.state.add_file("bench/huge.e2e", huge)
        server.state.add_file("bench/cut.e2e", cut_once(huge, size // 2))
        if "server" in scenarios:
            rows.append({"scenario": "server", "file_bytes": size, **server_bandwidth(f"{server.base_url}/storage/bench/huge.e2e")})
        for sid, path in (("huge", "bench/huge.e2e"), ("resume", "bench/cut.e2e")):
            if sid not in scenarios:
                continue
            files = [{"name": f"{sid}.e2e", "size_bytes": size, "url": f"{server.base_url}/storage/{path}",
                      "file_id": sid, "checksum": f"md5:{md5}"}]
            atomic_write_json(record_path(data_dir, "zenodo", sid), {"source": "zenodo", "source_id": sid, "files": files})
            row = {"scenario": sid, "file_bytes": size, **run_child(data_dir, sid)}
            if sid == "resume":
                log = server.state.entries("/storage/bench/cut")
                row["requests"] = [(e["status"], e["range"], e["bytes"]) for e in log]
                row["server_bytes_sent"] = server.state.bytes_for("^/storage/bench/cut")
            rows.append(row)
            (data_dir / "downloads" / "zenodo" / sid / f"{sid}.e2e").unlink(missing_ok=True)
        if "small" in scenarios:
            files = []
            for i in range(small):
                f = ServedFile.from_bytes(os.urandom(256 * 1024))
                server.state.add_file(f"bench/small/{i}.png", f)
                files.append({"name": f"img/{i:05d}.png", "size_bytes": f.size, "url": f"{server.base_url}/storage/bench/small/{i}.png",
                              "file_id": i, "checksum": f"md5:{f.md5}"})
            atomic_write_json(record_path(data_dir, "zenodo", "small"), {"source": "zenodo", "source_id": "small", "files": files})
            rows.append({"scenario": "small", "files": small, "file_bytes": 256 * 1024, **run_child(data_dir, "small")})
    return rows


def md5_rate() -> float:
    """MB/s of hashlib's md5 on this machine, one thread: a verified download cannot go faster."""
    import hashlib
    import time

    block, h = bytes(1 << 20), hashlib.md5()
    t = time.perf_counter()
    for _ in range(512):
        h.update(block)
    return 512 * len(block) / 1e6 / (time.perf_counter() - t)


def markdown(rows: list[dict], size_gb: float) -> str:
    from bench.common import machine_line, table

    by = {r["scenario"]: r for r in rows}
    md5 = md5_rate()
    bw = by["server"]["mb_per_s"]
    out = []
    for r in rows:
        total = r.get("bytes", 0)
        out.append([r["scenario"], f"{r.get('files', 1)} x {r['file_bytes'] / 2**20:,.2f} MiB", f"{total / 1e6:,.0f} MB",
                    round(r["wall_s"], 1), r["mb_per_s"], f"{100 * r['mb_per_s'] / bw:.0f}%", round(r["cpu_s"], 1),
                    round(r["peak_rss_mb"])])
    res = by.get("resume", {})
    sent = res.get("server_bytes_sent", 0)
    extra = sent - res.get("file_bytes", 0)
    reqs = res.get("requests", [])
    return f"""## 7. Downloads

{machine_line()}

`bench/downloads.py --size-gb {size_gb:g}`: the local server serves a virtual file of {size_gb:g} GiB (computed
per range, so the server does no disk I/O); the downloader (`DownloadRunner`, md5-verified,
streamed to disk, pacing off) runs in a child process. "server" is a bare aiohttp client that
throws the bytes away: the server's bandwidth here, the ceiling of any downloader (floor of
the time). MB = 10^6 bytes.

{table(["scenario", "files", "bytes", "wall s", "MB/s", "of the server's bandwidth", "CPU s", "peak RSS MB"], out)}

md5 alone runs at {md5:,.0f} MB/s here (one thread): a download verified on the fly cannot beat
that, so the floor of a verified download is min(the server's bandwidth, md5) = {min(md5, bw):,.0f} MB/s and the
"huge" download reaches {100 * by.get('huge', {}).get('mb_per_s', 0) / min(md5, bw):.0f}% of it (its CPU time is close to its wall time: hashing
and writing each 1 MiB chunk in a worker thread, awaited before the next chunk is read).
Real APIs serve far below either figure, so the network sets the pace there.

Resuming an interrupted file: the first transfer was cut at half; the server answered
{len(reqs)} requests for it ({", ".join(f"{st} {rng or 'no Range'}" for st, rng, _ in reqs)}) and sent
{sent:,} body bytes for a {res.get('file_bytes', 0):,}-byte file: **{extra:,} bytes ({100 * extra / max(1, res.get('file_bytes', 1)):.2f}%) beyond the file** (floor 0:
a resume asks only for the bytes not yet on disk). Its time is the "resume" row.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=4.0)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    args = parser.parse_args()
    rows = measure(int(args.size_gb * 1024**3), args.small)
    print(json.dumps(rows, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if not args.no_results:
        from bench.common import write_section

        write_section("7", markdown(rows, args.size_gb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
