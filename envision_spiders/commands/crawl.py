"""``scrapy crawl all`` runs every spider in one process; any other name is Scrapy's crawl.

Each spider is its own crawler with its own settings, download slots, AutoThrottle and
rate budgets, so every source goes at its own API's pace and a slow or rate-limited
source never slows the others. scrapyd runs jobs through ``crawl <spider>``, which
this command leaves exactly as Scrapy does it.
"""

from __future__ import annotations

import logging

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.exceptions import UsageError

from envision_spiders import paths
from envision_spiders.extensions.progress import quiet_repeats
from envision_spiders.extensions.runsummary import EXIT_UNHEALTHY, new_run_id
from envision_spiders.storage import read_json
from envision_spiders.usercheck import CheckedCommand, spider_loader, spider_problems

logger = logging.getLogger(__name__)


class Command(CheckedCommand, ScrapyCrawl):
    def more_problems(self, args: list[str], opts) -> list[str]:
        """An unknown spider or an argument it does not take: one line, before anything
        starts (Scrapy would raise a KeyError with a traceback, or set the argument as
        an attribute nobody reads)."""
        if len(args) != 1:
            return []
        loader = spider_loader(self.settings)
        names = loader.list()
        accepted = {}
        for name in names:
            arguments = getattr(loader.load(name), "arguments", None)
            accepted[name] = arguments() if callable(arguments) else set(opts.spargs)
        return spider_problems(names, args[0], opts.spargs, accepted)

    def syntax(self) -> str:
        return "[options] <spider | all>"

    def short_desc(self) -> str:
        return "Run a spider of the project by name, or 'all' of them in one process"

    def run(self, args, opts) -> None:
        assert self.crawler_process is not None and self.settings is not None
        # one run id for every spider of this run, so their summaries sit together
        run_id = self.settings.get("RUN_ID") or new_run_id()
        self.settings.set("RUN_ID", run_id, priority="cmdline")
        if args != ["all"]:
            super().run(args, opts)
            if len(args) == 1:
                self._report(run_id, args)
            return
        names = sorted(self.crawler_process.spider_loader.list())
        if not names:
            raise UsageError("no spiders found")
        # seven crawlers: Scrapy's settings and component dumps once, not seven times
        quiet_repeats()
        crawlers = []
        for name in names:
            crawler = self._create_crawler(name)
            crawler.settings.set("RUN_ID", run_id, priority="cmdline")
            # results/ are rebuilt once, below, not at the close of every spider
            crawler.settings.set("RESULTS_DEFERRED", True, priority="cmdline")
            crawlers.append(crawler)
            self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed:
            self.exitcode = 1
        if (self.settings.getdict("EXTENSIONS") or {}).get("envision_spiders.extensions.results.ResultsWriter") is not None:
            from envision_spiders.results import write_results

            try:
                write_results(paths.data_dir(self.settings), paths.results_dir(self.settings), run_id)
            except Exception:
                logger.exception("Cannot write the results; the records are saved: run `scrapy classify` to write them")
                self.exitcode = self.exitcode or 1
        self._report(run_id, names)

    def _report(self, run_id: str, names: list[str]) -> None:
        """One line per spider. Exit status 1 when a spider did not start (nothing to
        build on), 3 (EXIT_UNHEALTHY) when every spider ran but one is unhealthy (did
        not finish, requests failed for good, hits fell far below recent runs): its
        records are saved and the next steps can use them, but the run must say so."""
        data_dir = paths.data_dir(self.settings)
        lines = []
        for name in names:
            summary = read_json(f"{data_dir}/runs/{run_id}/{name}.json")
            if not summary:
                lines.append(f"  {name:10s} NO SUMMARY: the spider did not start (see the errors above)")
                self.exitcode = 1
                continue
            state = "ok" if summary.get("healthy", True) else "UNHEALTHY: " + "; ".join(summary.get("problems", []))
            if not summary.get("healthy", True) and self.exitcode == 0:
                self.exitcode = EXIT_UNHEALTHY
            lines.append(
                f"  {name:10s} {summary['unique_records']:6d} records ({summary['new']} new, {summary['changed']} changed, "
                f"{summary['unchanged']} unchanged), {summary['requests']} requests, {summary['failures']} failures, "
                f"{summary['elapsed_seconds']:.0f} s, {summary['finish_reason']}; {state}"
            )
        log = logger.info if self.exitcode == 0 else logger.error
        log("crawl (run %s) finished:\n%s", run_id, "\n".join(lines))
