"""What DataCite's search by funder costs: requests per run with it on and off.

    .venv/bin/python bench/funder_search.py [--records 2000] [--scale 0.01] [--changed 0.01]

One DataCite corpus on the local API server (``--records`` DOIs; one in 25 only the
funder search reaches), DataCite's anonymous limit simulated and kept (scaled by
``--scale``), and two data folders crawled side by side by ``scrapy crawl datacite``:
one with ``DATACITE_FUNDER_SEARCH=0``, one with it on. Three runs each: a first (full),
a second with nothing changed (incremental), a third after ``modify(--changed)``. Per
run: the requests the server answered for each folder (all ``/datacite/dois`` requests,
and those of the funder search: the ``funder-id`` filter or a ``funding_references``
query), the records each channel found that the other did not (the run summary's
``channels``), and the spider's elapsed time. Results go to ``bench/RESULTS.md``
(section 9).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import LIMITS, apply_limits, machine_line, run_crawl, save_json, table, write_section  # noqa: E402
from localapi import LocalAPIServer  # noqa: E402


def is_funder(path_qs: str) -> bool:
    return "funder-id=" in path_qs or "funding_references" in path_qs


def one_run(server, data: Path, scale: float, funder: bool) -> dict:
    start = time.time()
    run = run_crawl(server, "datacite", data, scale, DATACITE_FUNDER_SEARCH="1" if funder else "0")
    end = time.time()
    summ = run["summaries"].get("datacite", {})
    entries = [e for e in server.state.entries("") if e["path"].startswith(LIMITS["datacite"].prefix)
               and start <= e["time"] <= end and e["status"] != 429]
    return {"returncode": run["returncode"], "requests": len(entries),
            "funder_requests": sum(is_funder(e["path_qs"]) for e in entries),
            "mode": summ.get("mode"), "new": summ.get("new"), "changed": summ.get("changed"),
            "unique": summ.get("unique_records"),
            "channels": summ.get("channels"), "elapsed_s": summ.get("elapsed_seconds"),
            "not_nei": (summ.get("stats") or {}).get("envision/datacite/funder_not_nei", 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args()
    runs: dict[str, dict[str, dict]] = {"off": {}, "on": {}}
    with LocalAPIServer() as server, tempfile.TemporaryDirectory(prefix="bench-funder-") as tmp:
        server.generate("datacite", args.records, seed=7)
        apply_limits(server, args.scale)
        for label in ("first (full)", "second, nothing changed", f"third, {args.changed:.0%} changed"):
            if label.startswith("third"):
                server.modify("datacite", args.changed)
            for mode in ("off", "on"):
                runs[mode][label] = one_run(server, Path(tmp) / mode, args.scale, mode == "on")
                r = runs[mode][label]
                print(f"{label} / funder search {mode}: {r['requests']} requests ({r['funder_requests']} funder), "
                      f"{r['new']} new, channels {r['channels']}, {r['elapsed_s']} s", flush=True)
    save_json("funder_search.json", {"args": vars(args), "runs": runs})
    rows = []
    for label in runs["on"]:
        on, off = runs["on"][label], runs["off"][label]
        ch = on["channels"] or {}
        rows.append([label, off["requests"], on["requests"], on["requests"] - off["requests"], on["funder_requests"],
                     f"{off['elapsed_s']} / {on['elapsed_s']}", f"{off['new']} / {off['changed']}",
                     f"{on['new']} / {on['changed']}",
                     f"{ch.get('terms_only', 0)} / {ch.get('funder_only', 0)} / {ch.get('both', 0)}", on["not_nei"]])
    markdown = f"""## 9. The search by funder (DataCite)

{machine_line()}

`bench/funder_search.py --records {args.records} --scale {args.scale} --changed {args.changed}`: one
DataCite corpus of {args.records:,} DOIs on the local server (one in 25 reached only by the
funder search), DataCite's anonymous limit (500 requests per 5 minutes) simulated and kept,
scaled by {args.scale}; two data folders crawled by `scrapy crawl datacite` one after the
other on each run, with `DATACITE_FUNDER_SEARCH=0` (off) and on. Requests are those the
server answered for each crawl (`/datacite/dois`, 429s excluded); funder requests are
those with the `funder-id` filter or a `funding_references` query. Channels: records this
run only the terms / only the funder search / both found (the run summary's `channels`).

{table(["run", "requests, off", "requests, on", "extra", "of which funder search", "s off / on",
        "new / changed, off", "new / changed, on", "channels: terms only / funder only / both", "funder hits not NEI"], rows)}

The funder search is two queries (the `funder-id` filter on NEI's Crossref Funder ID, and a
query on NEI's ROR id, its name and award numbers holding `EY`), each paged by cursor at
250 DOIs a page: it costs one request per query per run while its hits fit one page, plus
one per further 250 hits. The first run with it on is a full run (switching it on changes
the incremental mark's hash), so it also pays the terms' full search; later runs ask both
channels only for what changed since the last successful run. Elapsed times are the
spiders' own, on shared cores: the request counts are the figure, not the seconds.
"""
    print(markdown)
    if not args.no_results:
        write_section("9", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
