"""The weekly re-run: a second run with nothing changed, and a third with 1% changed.

    .venv/bin/python bench/rerun.py [--records 100] [--scale 0.01] [--changed 0.01]

Three ``scrapy crawl all`` runs into the same data folder, with every API's limit
simulated on the local server and kept by the spiders, scaled by ``--scale`` (as in
crawl_all.py): a first (full) run; a second with nothing changed on the server (an
incremental run: each spider asks only for records modified since its last successful
run, less a day of overlap); then ``modify(--changed)`` on every source and a third
run. Per source: requests the crawler sent (API and archive peeks; the run summary's
``requests``), records new / changed / unchanged, and the spider's elapsed time; and the
wall time of each ``crawl all``. Results go to ``bench/RESULTS.md`` (section 4).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    LIMITS, SPIDERS, apply_limits, floor_seconds, generate_all, machine_line, run_crawl, save_json, table, write_section,
)
from localapi import LocalAPIServer  # noqa: E402


def one_run(server, data: Path, scale: float) -> dict:
    apply_limits(server, scale)
    start = time.time()
    run = run_crawl(server, "all", data, scale)
    end = time.time()
    out = {"wall_s": run["wall_s"], "returncode": run["returncode"], "peak_rss_mb": run.get("peak_rss_mb"), "sources": {}}
    for s in SPIDERS:
        summ = run["summaries"].get(s, {})
        entries = [e for e in server.state.entries("") if e["path"].startswith(LIMITS[s].prefix) and start <= e["time"] <= end]
        api = sum(1 for e in entries if e["status"] != 429)
        out["sources"][s] = {
            "requests": summ.get("requests"), "api_served": api, "refused_429": len(entries) - api,
            "unique": summ.get("unique_records"), "new": summ.get("new"), "changed": summ.get("changed"),
            "unchanged": summ.get("unchanged"), "elapsed_s": summ.get("elapsed_seconds"), "mode": summ.get("mode"),
            "floor_s": floor_seconds(api, LIMITS[s], scale, entries), "healthy": summ.get("healthy"),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--changed", type=float, default=0.01, help="fraction of records modified before the third run")
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args()
    runs = {}
    with LocalAPIServer() as server, tempfile.TemporaryDirectory(prefix="bench-rerun-") as tmp:
        data = Path(tmp) / "d"
        generate_all(server, args.records)
        runs["first"] = one_run(server, data, args.scale)
        print("first", runs["first"]["wall_s"])
        runs["unchanged"] = one_run(server, data, args.scale)
        print("unchanged", runs["unchanged"]["wall_s"])
        modified = {s: server.modify(s, args.changed) for s in SPIDERS}
        runs["changed"] = one_run(server, data, args.scale)
        print("changed", runs["changed"]["wall_s"])
    save_json("rerun.json", {"records": args.records, "scale": args.scale, "modified": modified, "runs": runs})
    rows = []
    for s in SPIDERS:
        a, b, c = (runs[k]["sources"][s] for k in ("first", "unchanged", "changed"))
        rows.append([
            s, f"{a['requests']} / {a['api_served']}", f"{a['elapsed_s']:.1f}",
            f"{b['requests']} / {b['api_served']}", f"{b['elapsed_s']:.1f}", f"{100 * b['requests'] / max(1, a['requests']):.0f}%",
            modified[s], f"{c['requests']} / {c['api_served']}", f"{c['elapsed_s']:.1f}",
            f"{c['new']} new, {c['changed']} changed", f"{100 * c['requests'] / max(1, a['requests']):.0f}%",
        ])
    walls = {k: runs[k]["wall_s"] for k in runs}
    md = f"""## 4. The weekly re-run

{machine_line()}

`bench/rerun.py --records {args.records} --scale {args.scale} --changed {args.changed}`: three `crawl all` runs into one
data folder, every API's anonymous limit simulated and kept, scaled by {args.scale}. Requests
are "all the crawler sent / API requests the server served" (the difference is archive peeks
and redirects to file storage); s = the spider's own elapsed time in the run.

| run | `crawl all` wall time | against the first |
|---|---|---|
| first (full) | {walls['first']:.1f} s | 100% |
| second, nothing changed | {walls['unchanged']:.1f} s | {100 * walls['unchanged'] / walls['first']:.0f}% |
| third, {args.changed:.0%} of records changed | {walls['changed']:.1f} s | {100 * walls['changed'] / walls['first']:.0f}% |

{table(["source", "first: requests", "s", "unchanged: requests", "s", "vs first", "records modified", "1% changed: requests", "s", "found", "vs first"], rows)}

A re-run asks each API only for what changed since the last successful run (less a
day), so it costs one search page per query and the detail calls and peeks of the
changed records; sources whose API cannot filter by date pay their full search again.
The wall time of a re-run is still set by the slowest source's query count under its
limit (OSF: {len(['nodes', 'registrations'])} queries per term, 100 requests an hour).
"""
    print(md)
    if not args.no_results:
        write_section("4", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
