"""``scrapy report``: write the review page, ``results/report.html``.

::

    scrapy report [-o FILE] [--run-id ID] [--threshold T] [--no-snapshot]

One self-contained HTML file (no server, no network) built from ``RESULTS_DIR`` (the
classified records, ``duplicates.json``) and ``DATA_DIR`` (run summaries, download
manifests and queue, saved records' archive listings, earlier reports' snapshots):
figures at a glance, charts, and sortable, filterable tables of the EYE_IMAGING and the
borderline NEGATIVE records (see ``envision_spiders.report``). Safe to run any number
of times: "new since the last run" compares with the report of an earlier run.
"""

from __future__ import annotations

import argparse
import logging

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from envision_spiders import paths
from envision_spiders.usercheck import CheckedCommand

logger = logging.getLogger(__name__)


class Command(CheckedCommand, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    needs_results = True
    default_settings = {"LOG_LEVEL": "INFO"}

    def syntax(self) -> str:
        return "[-o FILE] [--run-id ID] [--threshold T] [--no-snapshot]"

    def short_desc(self) -> str:
        return "Write the review page results/report.html (EYE_IMAGING and borderline records, figures, charts)"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("-o", "--output", default=None, metavar="FILE",
                            help="where to write the page (default RESULTS_DIR/report.html)")
        parser.add_argument("--run-id", default=None, metavar="ID",
                            help="the run this report belongs to (default RUN_ID, else the newest under DATA_DIR/runs/)")
        parser.add_argument("--threshold", type=float, default=None, metavar="T",
                            help="download threshold marked on the histogram (default DOWNLOAD_THRESHOLD)")
        parser.add_argument("--no-snapshot", action="store_true",
                            help="do not record this report's EYE_IMAGING records for the next report's 'new'")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        from scrapy.utils.log import configure_logging

        from envision_spiders.report import write_report

        assert self.settings is not None
        if args:
            raise UsageError("unexpected arguments: " + " ".join(args))
        threshold = opts.threshold if opts.threshold is not None else self.settings.getfloat("DOWNLOAD_THRESHOLD", 0.80)
        if not 0.0 <= threshold <= 1.0:
            raise UsageError("--threshold must be between 0 and 1")
        configure_logging(self.settings)
        try:
            path = write_report(paths.data_dir(self.settings), paths.results_dir(self.settings),
                                output=opts.output, run_id=opts.run_id or self.settings.get("RUN_ID") or None,
                                threshold=threshold, snapshot=not opts.no_snapshot)
        except OSError as exc:
            logger.error("report: cannot write the review page: %s", exc)
            self.exitcode = 1
            return
        print(path)
