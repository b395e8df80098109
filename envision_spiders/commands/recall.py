"""``scrapy recall``: how much of the reference catalogue the pipeline finds, and why not.

::

    scrapy recall [--catalogue FILE] [--mode add|replace] [--results-dir DIR] [--run-id ID] [--check-catalogue]

Matches every entry of the reference catalogue (the shipped one, with ``RECALL_CATALOGUE``
added or instead, see ``envision_spiders.recall.catalogue``) to the saved records and
writes ``results/recall.json``, the run's figures (``data/runs/{RUN_ID}/recall.json``,
which the run summary reads) and a history snapshot (``data/recall/history/``). It reads
``results/duplicates.json``, the download manifests and ``data/portal/posted.json``,
so it runs after classify, download and post. ``--check-catalogue`` only reads the
catalogue and lists its problems (exit 1 when there are any).

Exit status: 0; 3 (the run goes on, but is unhealthy) when recall dropped since the
previous check; 1 when it cannot run (a bad setting, an unwritable results folder).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from envision_spiders import paths
from envision_spiders.usercheck import CheckedCommand

logger = logging.getLogger(__name__)


class Command(CheckedCommand, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings = {"LOG_LEVEL": "INFO"}

    def syntax(self) -> str:
        return "[--catalogue FILE] [--mode add|replace] [--results-dir DIR] [--run-id ID] [--check-catalogue]"

    def short_desc(self) -> str:
        return "Check which datasets of the reference catalogue the pipeline found, labelled, downloaded and posted"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--catalogue", metavar="FILE", default=None,
                            help="a curator's catalogue (default RECALL_CATALOGUE)")
        parser.add_argument("--mode", choices=("add", "replace"), default=None,
                            help="add the curator's catalogue to the shipped one, or replace it (default RECALL_CATALOGUE_MODE)")
        parser.add_argument("--results-dir", metavar="DIR", default=None, help="default RESULTS_DIR")
        parser.add_argument("--run-id", metavar="ID", default=None, help="default RUN_ID, else the current time")
        parser.add_argument("--check-catalogue", action="store_true",
                            help="only read the catalogue and list its problems")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        from scrapy.utils.log import configure_logging

        from envision_spiders.extensions.runsummary import EXIT_UNHEALTHY
        from envision_spiders.recall import check as recall
        from envision_spiders.recall.catalogue import load_catalogue
        from envision_spiders.results import run_id_from
        from envision_spiders.terms import load_terms

        assert self.settings is not None
        if args:
            raise UsageError("unexpected arguments: " + " ".join(args))
        configure_logging(self.settings)
        path = opts.catalogue if opts.catalogue is not None else self.settings.get("RECALL_CATALOGUE") or None
        try:
            catalogue = load_catalogue(path, opts.mode or self.settings.get("RECALL_CATALOGUE_MODE") or "add")
            terms = load_terms(self.settings.get("SEARCH_TERMS"))
        except ValueError as exc:
            logger.error("recall: %s", exc)
            self.exitcode = 1
            return
        if opts.check_catalogue:
            for p in catalogue.problems:
                print(f"{p['file']}:{p['line']}: {p['problem']}")
            print(f"{len(catalogue.entries)} entries from {', '.join(catalogue.files)} ({catalogue.mode}); "
                  f"{len(catalogue.problems)} problems")
            self.exitcode = 1 if catalogue.problems else 0
            return
        data_dir = paths.data_dir(self.settings)
        results_dir = paths.results_dir(self.settings, opts.results_dir)
        threshold = self.settings.getfloat("DOWNLOAD_THRESHOLD", 0.80)
        post = self.settings.get("POST_THRESHOLD")
        run_id = opts.run_id or run_id_from(self.settings)
        result = recall.check(data_dir, results_dir, catalogue, terms, run_id=run_id, download_threshold=threshold,
                              post_threshold=float(post) if post not in (None, "") else threshold,
                              post_requires_review=self.settings.getbool("POST_REQUIRES_REVIEW", True))
        recall.log_result(result)
        try:
            path_written = recall.write(result, data_dir, results_dir)
        except OSError as exc:
            logger.error("recall: cannot write the results: %s", exc)
            self.exitcode = 1
            return
        print(f"{result['summary_line']}; details in {path_written}")
        if not result["healthy"]:
            self.exitcode = EXIT_UNHEALTHY
