"""One process for seven sources: ``scrapy crawl all`` against the seven spiders one after another.

    .venv/bin/python bench/crawl_all.py [--records 100] [--scale 0.01]

The local API server runs in this process with every API's documented (anonymous)
limit simulated (``bench/common.py: LIMITS``), its windows scaled by ``--scale``; the
spiders run with ``POLITENESS_SCALE`` = the same factor, so every source keeps the
ratio of its real pace. ``--records`` records are generated per source (the 47 shared
terms find them, most records by several terms).

Measured: the wall time of ``scrapy crawl all`` (one process), and of the seven
``scrapy crawl <name>`` run one after another (seven processes, as the original tool
ran its sources); per source, the API requests the server served and refused (429),
when its first request left and its last answer came back (from process start), and
the floor of its own requests under its limit.

The floor of the whole crawl is the slowest source's floor: the earliest time the last
of the requests it needs may leave under its API's limit (``common.floor_seconds``,
the greedy schedule). "Needs" = the API requests the crawl made, less the search pages
beyond one page per page-size hits of each query (see requests_per_record.py). Target:
``crawl all`` within 15% of that floor. Results go to ``bench/RESULTS.md`` (section 1).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    LIMITS, SPIDERS, apply_limits, ceil_div, floor_seconds, generate_all, machine_line,
    run_crawl, save_json, table, write_section,
)
from localapi import LocalAPIServer  # noqa: E402

TARGET = 1.15


def needed_search_pages(pages: list[dict], page_size: int) -> int:
    """One page per ``page_size`` hits of each distinct query, at least one per query."""
    hits: dict[str, int] = {}
    for p in pages:
        hits[p["query"]] = hits.get(p["query"], 0) + p["hits"]
    return sum(max(1, ceil_div(h, page_size)) for h in hits.values())


def source_figures(server, source: str, run: dict, since: float, until: float, scale: float) -> dict:
    served = [e for e in server.state.entries("")
              if e["path"].startswith(LIMITS[source].prefix) and since <= e["time"] <= until]
    refused = sum(1 for e in served if e["status"] == 429)
    made = len(served) - refused
    inst = run["instrument"].get(source, {})
    pages = inst.get("search_pages", [])
    excess = max(0, len(pages) - needed_search_pages(pages, LIMITS[source].page_size))
    needed = max(0, made - excess)
    t0 = run["t0_epoch"]
    return {
        "source": source,
        "served": made,
        "refused_429": refused,
        "search_pages": len(pages),
        "excess_search_pages": excess,
        "needed": needed,
        "floor_made_s": floor_seconds(made, LIMITS[source], scale, served),
        "floor_needed_s": floor_seconds(needed, LIMITS[source], scale, served),
        "first_request_s": (inst["first_request"] - t0) if inst.get("first_request") else None,
        "last_response_s": (inst["last_response"] - t0) if inst.get("last_response") else None,
        "closed_s": (inst["closed"] - t0) if inst.get("closed") else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100, help="records generated per source")
    parser.add_argument("--scale", type=float, default=0.01, help="POLITENESS_SCALE and the server's window scale")
    parser.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    args = parser.parse_args()
    scale = args.scale
    with LocalAPIServer() as server, tempfile.TemporaryDirectory(prefix="bench-crawl-all-") as tmp:
        generated = generate_all(server, args.records)
        # --- one process
        apply_limits(server, scale)
        server.state.reset_counters()
        start = time.time()
        one = run_crawl(server, "all", Path(tmp) / "all", scale)
        end = time.time()
        per_source = {s: source_figures(server, s, one, start, end, scale) for s in SPIDERS}
        print(f"crawl all: {one['wall_s']:.1f} s, exit {one['returncode']}, peak RSS {one.get('peak_rss_mb', 0):.0f} MB")
        # --- seven processes, one after another (the server's windows are fresh once, as
        # they would be for a weekly job; each source's window only sees its own spider)
        apply_limits(server, scale)
        seq = {}
        seq_wall = 0.0
        for s in SPIDERS:
            t = time.time()
            r = run_crawl(server, s, Path(tmp) / "seq", scale)
            seq[s] = {"wall_s": r["wall_s"], "returncode": r["returncode"],
                      **source_figures(server, s, r, t, time.time(), scale)}
            seq_wall += r["wall_s"]
            print(f"crawl {s}: {r['wall_s']:.1f} s, exit {r['returncode']}")
        print(f"seven in a row: {seq_wall:.1f} s")
    slowest = max(per_source.values(), key=lambda f: f["floor_needed_s"])
    floor = slowest["floor_needed_s"]
    floor_made = max(f["floor_made_s"] for f in per_source.values())
    data = {"records_per_source": generated, "scale": scale, "crawl_all": {k: v for k, v in one.items() if k != "instrument"},
            "per_source": per_source, "sequential": seq, "sequential_wall_s": seq_wall,
            "floor_s": floor, "floor_made_s": floor_made, "slowest": slowest["source"]}
    save_json("crawl_all.json", data)
    all_wall = one["wall_s"]
    ratio = all_wall / floor if floor else float("inf")
    met = ratio <= TARGET
    rows = []
    for s in SPIDERS:
        f = per_source[s]
        rows.append([s, f["served"], f["refused_429"], f["needed"], round(f["floor_needed_s"], 1),
                     round(f["first_request_s"] or 0, 1), round(f["last_response_s"] or 0, 1),
                     round(seq[s]["wall_s"], 1)])
    slow = per_source[slowest["source"]]
    lag_start = slow["first_request_s"] or 0.0
    lag_end = all_wall - (slow["last_response_s"] or all_wall)
    span = (slow["last_response_s"] or 0) - lag_start
    md = f"""## 1. One process for seven sources

{machine_line()}

`bench/crawl_all.py --records {args.records} --scale {scale}`: {args.records} generated records per source, every API's
anonymous limit simulated on the server and kept by the spiders, both scaled by {scale}
(so one real hour is {3600 * scale:.0f} s here). No tokens: OSF's 100 requests an hour makes it the slowest source.

| | wall time | against the floor |
|---|---|---|
| `scrapy crawl all` (one process) | **{all_wall:.1f} s** | {ratio:.2f} x |
| seven `scrapy crawl <name>`, one after another | **{seq_wall:.1f} s** | {seq_wall / floor:.2f} x |
| ratio (in a row / one process) | **{seq_wall / all_wall:.2f} x** | |
| floor: {slowest['source']}'s {slowest['needed']} needed requests under {LIMITS[slowest['source']].note.split(';')[0]} | **{floor:.1f} s** ({floor / scale / 3600:.1f} h at the real pace) | 1.00 x |
| floor with every request the crawl made ({slowest['source']}: {slowest['served']}) | {floor_made:.1f} s | |

Target: `crawl all` within {round((TARGET - 1) * 100)}% of the floor ({TARGET * floor:.1f} s): **{"met" if met else "missed"}** ({(ratio - 1) * 100:+.1f}%).

Per source in the `crawl all` run (times from the start of the process; "in a row" is
that source's own process in the sequential run):

{table(["source", "API requests served", "429s", "needed", "floor s", "first request s", "last answer s", "in a row: wall s"], rows)}

Where the time of `crawl all` goes, for {slowest['source']} (the slowest): {lag_start:.1f} s of start-up
before its first request (Python and Scrapy imports, seven crawlers, the first search requests),
{span:.1f} s of paced requests (its floor for what it made: {slow['floor_made_s']:.1f} s), {lag_end:.1f} s
after its last answer (closing, the other spiders, run summaries).
"""
    data["markdown"] = md
    save_json("crawl_all.json", data)
    print(md)
    if not args.no_results:
        write_section("1", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
