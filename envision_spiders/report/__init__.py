"""The weekly review page, ``results/report.html``: one self-contained file (every script
and style inline, no network) a curator opens to review what the run found.

::

    from envision_spiders.report import write_report, report_after_classify

    write_report("data", "results")                 # -> Path("results/report.html")
    report_after_classify(settings, run_id=run_id)   # after results are written; never raises

* :mod:`.gather` reads the results, duplicates, run summaries, download manifests and
  queue, the saved records' archive listings, and the previous report's snapshot (which
  records are *new* EYE_IMAGING; see its module doc), into a :class:`~.gather.Report`;
* :mod:`.render` turns it into the page (figures, inline-SVG charts, two paged tables).

``write_report`` writes the page atomically, then this run's snapshot
(``DATA_DIR/report/snapshots/{run_id}.json``); ``scrapy report`` calls it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from envision_spiders import paths
from envision_spiders.storage import atomic_write_bytes, atomic_write_json

from .gather import Report, gather, prune_snapshots, snapshot_key, snapshot_path
from .render import render

logger = logging.getLogger(__name__)

REPORT_NAME = "report.html"

__all__ = ["REPORT_NAME", "Report", "build_report", "gather", "render", "report_after_classify", "write_report"]


def build_report(data_dir: str | Path, results_dir: str | Path, *, run_id: str | None = None,
                 threshold: float = 0.80) -> tuple[Report, str]:
    """(the gathered figures, the page's HTML), writing nothing."""
    report = gather(data_dir, results_dir, run_id=run_id, threshold=threshold)
    return report, render(report)


def write_report(data_dir: str | Path, results_dir: str | Path, *, output: str | Path | None = None,
                 run_id: str | None = None, threshold: float = 0.80, snapshot: bool = True) -> Path:
    """Write the review page (default ``results_dir/report.html``) and, unless
    ``snapshot`` is false, this run's snapshot of EYE_IMAGING records for the next
    report's "new" column. Only the results folder's own page is snapshotted: a page
    written elsewhere (``output``) is a copy, and the snapshot names its results folder
    (another RESULTS_DIR's reports never count as this one's last). Raises OSError
    when the page cannot be written."""
    started = time.monotonic()
    data_dir, results_dir = Path(data_dir), Path(results_dir)
    own = results_dir / REPORT_NAME
    path = Path(output) if output else own
    report, page = build_report(data_dir, results_dir, run_id=run_id, threshold=threshold)
    atomic_write_bytes(path, page.encode("utf-8"))
    if snapshot and path.resolve() != own.resolve():
        logger.info("report: %s is not the page of %s: no snapshot kept (the next report's \"new\" compares with "
                    "the last page written there)", path, results_dir)
    elif snapshot:
        try:
            atomic_write_json(snapshot_path(data_dir, report.run_id), {
                "run_id": report.run_id,
                "generated_at": report.generated_at,
                "report": str(path),
                "results_dir": snapshot_key(results_dir),
                "eye_imaging": sorted(set(report.eye_keys)),
            })
            prune_snapshots(data_dir)
        except OSError as exc:
            logger.error("report: cannot write the snapshot under %s (%s); the next report will count "
                         "new records against an older one", data_dir / "report", exc)
    totals = report.totals
    logger.info(
        "report: %s (%.1f MB, %.1f s): %d records, %d EYE_IMAGING datasets (%d new since %s, %d duplicates folded), "
        "%d borderline, downloads %d done / %d pending",
        path, len(page) / 1e6, time.monotonic() - started, sum(totals.values()), len(report.eye.rows),
        len(report.new_keys), f"run {report.baseline['run_id']}" if report.baseline else "ever (first report)",
        report.eye.folded, len(report.borderline.rows), report.downloads["done"], report.downloads["pending"],
    )
    return path


def report_after_classify(settings: Any, run_id: str | None = None) -> Path | None:
    """For the classify step, after it wrote ``results/``: regenerate the page from the
    project settings (DATA_DIR, RESULTS_DIR, DOWNLOAD_THRESHOLD, RUN_ID). A report that
    fails is logged and never fails the classification (returns None)."""
    try:
        return write_report(
            paths.data_dir(settings),
            paths.results_dir(settings),
            run_id=run_id or settings.get("RUN_ID") or None,
            threshold=settings.getfloat("DOWNLOAD_THRESHOLD", 0.80),
        )
    except Exception as exc:  # the report is a view: it must never cost the results
        logger.error("report: could not write the review page: %s (run `scrapy report` to retry)", exc, exc_info=True)
        return None
