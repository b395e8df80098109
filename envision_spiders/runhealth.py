"""The summary of a whole weekly run: ``data/runs/{RUN_ID}/summary.json``.

Every step leaves its own figures in the run's folder — one JSON per spider
(``{spider}.json``, see ``extensions/runsummary.py``), ``results/summary.json`` (classify),
``download.json``, ``post.json`` — and ``automation.sh`` calls this module at the end of
every run, failed or not, with the exit status of each step it ran::

    python -m envision_spiders.runhealth --run-id RUN --step scrape=0 --step classify=0 ...

It writes one ``summary.json`` (per spider: terms, hits, new / changed / unchanged,
requests, retries, failures, bytes, duration, and for DataCite ``channels``: records only
the search terms found, only the funder search, both; per step: records classified, EYE_IMAGING
found, files downloaded, records posted; the funnel of :mod:`envision_spiders.funnel`,
also logged as one line; the recall of the reference catalogue), says in the log what
is wrong — loudly, in
capitals, one line per problem — and exits 1 when the run is unhealthy: a step failed,
a spider did not finish or lost requests, or a source's hits collapsed against its
recent runs (the original tool's DataCite scraper returned nothing for months), or the
recall of the reference catalogue dropped since the previous check.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from envision_spiders import paths
from envision_spiders.funnel import Funnel, funnel
from envision_spiders.storage import atomic_write_json, read_json
from envision_spiders.textutil import utcnow_iso

logger = logging.getLogger("envision_spiders.runhealth")

SPIDER_FIGURES = ("terms_searched", "hits", "unique_records", "new", "changed", "unchanged", "requests",
                  "retries", "rate_limited", "pacing_waits", "failures", "bytes", "elapsed_seconds", "finish_reason",
                  "unreachable")


def run_summary(data_dir: Path, run_id: str, steps: list[tuple[str, int]], results_dir: Path | None = None,
                threshold: float = 0.80, stopped: str | None = None) -> dict[str, Any]:
    folder = Path(data_dir) / "runs" / run_id
    problems: list[str] = []
    if stopped:
        where = f" during step {steps[-1][0]}" if steps else ""
        problems.append(f"the run was stopped by SIG{stopped}{where}; the steps after it did not run")
    for i, (name, status) in enumerate(steps):
        if status != 0 and not (stopped and i == len(steps) - 1):
            problems.append(f"step {name} failed (exit status {status}); the steps after it did not run")
    spiders: dict[str, Any] = {}
    unreachable: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        data = read_json(path)
        if not isinstance(data, dict) or "spider" not in data:
            continue
        spiders[data["spider"]] = {k: data.get(k) for k in SPIDER_FIGURES} | {
            "healthy": data.get("healthy", True), "problems": data.get("problems", [])}
        if isinstance(data.get("channels"), dict):
            # records each way of searching found that the other did not (DataCite's terms and funder search)
            spiders[data["spider"]]["channels"] = data["channels"]
        problems += [f"{data['spider']}: {p}" for p in data.get("problems", [])]
        if data.get("unreachable"):
            unreachable[data["spider"]] = data["unreachable"]
    summary: dict[str, Any] = {
        "run_id": run_id,
        "written_at": utcnow_iso(),
        "steps": [{"step": name, "exit_status": status} for name, status in steps],
        "spiders": spiders,
        # sources whose API host could not be resolved or connected to: skipped this run
        "unreachable_sources": unreachable,
        # the signal (TERM, INT) that stopped the run, or None
        "stopped_by": stopped,
    }
    results = read_json(folder / "results" / "summary.json")
    if isinstance(results, dict):
        totals = results.get("totals") or {}
        summary["classify"] = {
            "records": totals.get("records"),
            "eye_imaging": totals.get("EYE_IMAGING"),
            "negative": totals.get("NEGATIVE"),
            "unclassified": totals.get("unclassified"),
            "eye_imaging_confidence": results.get("eye_imaging_confidence"),
            "duplicate_groups": results.get("duplicate_groups"),
        }
    download = read_json(folder / "download.json")
    if isinstance(download, dict):
        summary["download"] = {k: download.get(k) for k in ("records", "files_downloaded", "files_verified_existing",
                                                            "files_failed", "files_skipped", "bytes")}
        if download.get("healthy") is False:
            problems.append("download: some files failed (they stay queued for the next run)")
    post = read_json(folder / "post.json")
    if isinstance(post, dict):
        summary["post"] = {k: v for k, v in post.items() if isinstance(v, (int, float, str)) or k == "posted"}
    if results_dir is not None and Path(results_dir).is_dir():
        # found -> EYE_IMAGING -> confident -> canonical -> downloaded / posted, from the results on disk
        summary["funnel"] = funnel(data_dir, results_dir, threshold).as_dict()
    from envision_spiders.recall.check import run_figures

    recall, recall_problems = run_figures(folder)
    if recall is not None:
        summary["recall"] = recall
        problems += recall_problems
    summary["healthy"] = not problems
    summary["problems"] = problems
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m envision_spiders.runhealth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="default: DATA_DIR (settings, environment, .env)")
    parser.add_argument("--results-dir", default=None, help="default: RESULTS_DIR (settings, environment, .env)")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--step", action="append", default=[], metavar="NAME=STATUS",
                        help="a step this run ran and its exit status, in order")
    parser.add_argument("--stopped", default=None, metavar="SIGNAL",
                        help="the run was stopped by this signal (TERM, INT) during its last step")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings()
    args.data_dir = args.data_dir or paths.data_dir(settings)
    args.results_dir = paths.results_dir(settings, args.results_dir)
    try:
        threshold = settings.getfloat("DOWNLOAD_THRESHOLD", 0.80)
    except ValueError:  # the steps refused it already, in their own words
        threshold = 0.80
    steps = []
    for item in args.step:
        name, _, status = item.partition("=")
        steps.append((name, int(status or 0)))
    summary = run_summary(Path(args.data_dir), args.run_id, steps, Path(args.results_dir), threshold, args.stopped)
    path = Path(args.data_dir) / "runs" / args.run_id / "summary.json"
    atomic_write_json(path, summary)
    if "funnel" in summary:
        logger.info("run %s %s", args.run_id, Funnel(**summary["funnel"]).line())
    if summary.get("recall"):
        logger.info("run %s: %s", args.run_id, summary["recall"]["summary_line"])
    if summary["unreachable_sources"]:
        logger.error("run %s: unreachable sources, skipped this run: %s", args.run_id,
                     "; ".join(f"{name} ({why.split(';')[0]})" for name, why in summary["unreachable_sources"].items()))
    if summary["healthy"]:
        logger.info("run %s healthy; summary in %s", args.run_id, path)
        return 0
    for problem in summary["problems"]:
        logger.error("RUN %s IS UNHEALTHY: %s", args.run_id, problem)
    logger.error("run %s: %d problems; summary in %s", args.run_id, len(summary["problems"]), path)
    return 1


if __name__ == "__main__":
    sys.exit(main())
