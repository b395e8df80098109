"""``scrapy download``: fetch the files of confident EYE_IMAGING records.

::

    scrapy download [--source zenodo] [--source dryad] [--threshold 0.9] [--dry-run]

Consumes the download queue (records a crawl queued) and the results on disk
(``results/{source}_eye_imaging.json``: label EYE_IMAGING, ``prob_eye_imaging >=
threshold``, no ``duplicate_of``), fetching each record's files from its saved
metadata into ``data/downloads/{source}/{safe id}/`` with a ``manifest.json`` (see
``envision_spiders.downloads``). ``--dry-run`` lists what would be downloaded, with
sizes and totals, and changes nothing. Exit status 3 when a file failed (it is retried
on the next run: its record stays queued).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from envision_spiders.downloads.cli import RecordsCommand
from envision_spiders.extensions.runsummary import EXIT_UNHEALTHY, new_run_id
from envision_spiders.storage import atomic_write_json

logger = logging.getLogger(__name__)


class Command(RecordsCommand):
    def syntax(self) -> str:
        return "[--source S ...] [--threshold T] [--dry-run]"

    def short_desc(self) -> str:
        return "Download the files of confident EYE_IMAGING records (queue and results on disk)"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--dry-run", action="store_true", help="list what would be downloaded; change nothing")
        parser.add_argument("--progress", choices=("auto", "bar", "log", "off"), default=None,
                            help="progress display (default: DOWNLOAD_PROGRESS)")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        from envision_spiders.downloads.cli import selection
        from envision_spiders.downloads.progress import make_progress
        from envision_spiders.downloads.queue import DownloadQueue, ReadOnlyQueue
        from envision_spiders.downloads.runner import DownloadRunner, collect_candidates, dry_run_lines, plan_record

        assert self.settings is not None
        config, sources = selection(self.settings, args, opts)
        if opts.dry_run:
            # read-only: candidates from the queue and the results, nothing queued
            queue = ReadOnlyQueue(config.data_dir)
            plans = [plan_record(config, c) for c in collect_candidates(config, sources, queue)]
            runner = DownloadRunner(config)
            waiting = {s: why for s in {p.source for p in plans} if (why := runner.credentials_wait(s))}
            print("\n".join(dry_run_lines(plans, waiting)))
            return
        queue = DownloadQueue(config.data_dir)
        candidates = collect_candidates(config, sources, queue)
        reports: list = []
        counts: dict[str, int] = {}
        if not candidates:
            logger.info("download: nothing to download (sources: %s, threshold %.2f)", ", ".join(sources) or "none", config.threshold)
        else:
            logger.info("download: %d records from %s, threshold %.2f", len(candidates), ", ".join(sources), config.threshold)
            progress = make_progress(opts.progress or self.settings.get("DOWNLOAD_PROGRESS", "auto"),
                                     self.settings.getfloat("DOWNLOAD_PROGRESS_INTERVAL", 30.0))
            runner = DownloadRunner(config, progress=progress)

            async def go():
                async with runner:
                    return await runner.run(candidates)

            reports = asyncio.run(go())
            counts = {k: int(v) for k, v in runner.counts.items()}
        by_status: dict[str, int] = {}
        for r in reports:
            by_status[r.status] = by_status.get(r.status, 0) + 1
        if candidates:
            logger.info(
                "download finished: %d records (%s); files: %d downloaded (%d bytes), %d verified on disk, "
                "%d failed, %d skipped; manifests under %s",
                len(reports), ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())),
                counts.get("files_downloaded", 0), counts.get("bytes", 0), counts.get("files_verified_existing", 0),
                counts.get("files_failed", 0), counts.get("files_skipped", 0), config.downloads_dir,
            )
        if counts.get("files_failed") or counts.get("record_errors"):
            self.exitcode = EXIT_UNHEALTHY  # the others are on disk; these stay queued
        # the step's figures beside the crawl summaries of the same run (data/runs/RUN_ID/)
        run_id = self.settings.get("RUN_ID") or new_run_id()
        atomic_write_json(
            config.data_dir / "runs" / run_id / "download.json",
            {"step": "download", "run_id": run_id, "threshold": config.threshold, "records": len(reports),
             "records_by_status": by_status, **counts, "healthy": self.exitcode == 0},
        )
