"""Peak memory: ``scrapy crawl all`` over many records per source, and a download of a
file far larger than that.

    .venv/bin/python bench/memory.py [--records 2000] [--size-gb 8]

The crawl: ``--records`` generated records per source on the local API server (pacing
off, archive peeking on, classification off as in the other crawl benchmarks), one
``scrapy crawl all`` in a child process whose own ``VmHWM`` is its peak resident
memory. Peak RSS is also measured at a tenth of the records, to show how memory grows with
the crawl. The download: bench/downloads.py's "huge" scenario with a virtual file of
``--size-gb`` GiB. Results go to ``bench/RESULTS.md`` (section 6).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SPIDERS, generate_all, machine_line, run_crawl, save_json, table, write_section  # noqa: E402
from localapi import LocalAPIServer  # noqa: E402


def crawl_rss(records: int) -> dict:
    with LocalAPIServer() as server, tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        t = time.perf_counter()
        generate_all(server, records)
        gen_s = time.perf_counter() - t
        run = run_crawl(server, "all", Path(tmp) / "d", 0.0, timeout=3600)
        unique = {s: run["summaries"].get(s, {}).get("unique_records") for s in SPIDERS}
        requests = sum(run["summaries"].get(s, {}).get("requests") or 0 for s in SPIDERS)
    return {"records_per_source": records, "generate_s": gen_s, "wall_s": run["wall_s"], "peak_rss_mb": run.get("peak_rss_mb"),
            "cpu_s": run.get("cpu_s"), "returncode": run["returncode"], "unique": unique, "requests": requests}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000,
                        help="records per source (the issue asks 10,000: about 25 min here, more than a benchmark should take)")
    parser.add_argument("--size-gb", type=float, default=8.0)
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args()
    crawls = []
    for n in sorted({max(1, args.records // 10), args.records}):
        c = crawl_rss(n)
        crawls.append(c)
        print(f"crawl all, {n} records per source: peak RSS {c['peak_rss_mb']:.0f} MB, {c['wall_s']:.0f} s, exit {c['returncode']}")
    from bench.downloads import measure

    (dl,) = measure(int(args.size_gb * 1024**3), 0, scenarios=("huge",))
    print(f"download of {args.size_gb} GiB: peak RSS {dl['peak_rss_mb']:.0f} MB")
    save_json("memory.json", {"crawls": crawls, "download": dl})
    rows = [[c["records_per_source"], sum(v or 0 for v in c["unique"].values()), c["requests"], round(c["wall_s"]),
             round(c["cpu_s"] or 0), round(c["peak_rss_mb"] or 0), c["returncode"]] for c in crawls]
    big = crawls[-1]
    growth = ""
    if len(crawls) == 2 and crawls[1]["records_per_source"] < 10_000:
        a, b = crawls
        slope = ((b["peak_rss_mb"] or 0) - (a["peak_rss_mb"] or 0)) / (b["records_per_source"] - a["records_per_source"])
        est = (b["peak_rss_mb"] or 0) + slope * (10_000 - b["records_per_source"])
        growth = (f"\nNot measured at 10,000 records per source (that crawl takes longer than this benchmark's few minutes); "
                  f"growing linearly as between the two runs ({slope * 1000:.1f} MB per 1,000 records per source), it would "
                  f"peak near **{est:.0f} MB** (an extrapolation, not a measurement).\n")
    md = f"""## 6. Memory

{machine_line()}

`bench/memory.py --records {args.records} --size-gb {args.size_gb:g}`: peak resident memory (`VmHWM` of the child
process) of `scrapy crawl all` (pacing off, archive peeks on, classification off) over
generated records per source, and of the download of one file far larger than that.

{table(["records per source", "unique records saved", "requests", "wall s", "CPU s", "peak RSS MB", "exit"], rows)}
{growth}
Download of one {args.size_gb:g} GiB file ({dl['bytes'] / 1e9:.1f} GB written, md5-verified, {dl['mb_per_s']} MB/s):
**peak RSS {dl['peak_rss_mb']:.0f} MB**, {dl['bytes'] / 2**20 / dl['peak_rss_mb']:.0f} times smaller than the file and
{100 * dl['peak_rss_mb'] / (big['peak_rss_mb'] or 1):.0f}% of the crawl's peak.
"""
    print(md)
    if not args.no_results:
        write_section("6", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
