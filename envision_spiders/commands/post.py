"""``scrapy post``: send confident EYE_IMAGING records to the EyeACT envision portal.

::

    scrapy post [--source S ...] [--threshold T] [--dry-run [FILE]] [--force] [--withdraw]

Every record of ``results/{source}_eye_imaging.json`` a curator accepted (with
``POST_REQUIRES_REVIEW``, the default; without it also those with ``prob_eye_imaging >=
POST_THRESHOLD`` — default ``DOWNLOAD_THRESHOLD`` — that no curator rejected and whose
evidence does not disagree) that is not a cross-source duplicate
goes to ``POST {PORTAL_URL}/api/discover/dataset/external`` with the header
``x-api-key: {PORTAL_API_KEY}`` (both from the environment or ``.env`` only). A record
whose body did not change since it was last posted to that portal is skipped
(``data/portal/posted.json``) unless ``--force``. ``--dry-run`` writes the bodies that
would be sent to FILE (default ``DATA_DIR/portal/dry-run-{RUN_ID}.json``) and sends
nothing; it needs neither the address nor the key. The summary goes to the log and to
``DATA_DIR/runs/{RUN_ID}/post.json``; it says how many records wait for a curator, and
lists datasets posted earlier that a curator rejected since (to withdraw: the portal's
API has no way to remove one, so ``--withdraw`` says so and exits 1 while any is left).
Exit status 1 when the portal refused the key or
a body (401/403, 400: the run stops with the portal's message), when the address is
wrong, when a record failed after its retries, or when PORTAL_URL / PORTAL_API_KEY
are missing. See ``envision_spiders.portal``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from envision_spiders.downloads.cli import RecordsCommand, add_selection_options

logger = logging.getLogger(__name__)

DEFAULT_DRY_RUN = "-"  # --dry-run without a file: DATA_DIR/portal/dry-run-{RUN_ID}.json


class Command(RecordsCommand):
    def syntax(self) -> str:
        return "[--source S ...] [--threshold T] [--dry-run [FILE]] [--force] [--withdraw]"

    def short_desc(self) -> str:
        return "Post confident EYE_IMAGING records to the envision portal (PORTAL_URL, PORTAL_API_KEY)"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super(RecordsCommand, self).add_options(parser)
        add_selection_options(parser, "POST_THRESHOLD, else DOWNLOAD_THRESHOLD")
        parser.add_argument("--dry-run", nargs="?", const=DEFAULT_DRY_RUN, default=None, metavar="FILE",
                            help="write the bodies to FILE (default DATA_DIR/portal/dry-run-RUN_ID.json); send nothing")
        parser.add_argument("--force", action="store_true", help="post every selected record, changed or not")
        parser.add_argument("--withdraw", action="store_true",
                            help="ask the portal to remove datasets a curator rejected after they were posted "
                                 "(the portal's API has no removal: they are listed for removal by hand)")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        from pathlib import Path

        from scrapy.exceptions import UsageError
        from scrapy.utils.log import configure_logging

        from envision_spiders.portal.run import PostConfig, post_run, sources_with_results

        assert self.settings is not None
        if args:
            raise UsageError("unexpected arguments: " + " ".join(args))
        if opts.threshold is not None and not 0.0 <= opts.threshold <= 1.0:
            raise UsageError("--threshold must be between 0 and 1")
        configure_logging(self.settings)
        config = PostConfig.from_settings(self.settings, opts.threshold)
        dry_run = opts.dry_run is not None
        if not dry_run:
            problem = config.problem()
            if problem:
                logger.error("post: %s", problem)
                self.exitcode = 1
                return
        sources = opts.source or sources_with_results(config.results_dir)
        if not sources:
            logger.warning("post: no results files under %s (run the classification first); nothing to post", config.results_dir)
        target = Path(opts.dry_run) if dry_run and opts.dry_run != DEFAULT_DRY_RUN else None
        summary = asyncio.run(post_run(config, sources, force=opts.force, dry_run=dry_run, dry_run_file=target,
                                       withdraw=opts.withdraw))
        if not summary.ok:
            self.exitcode = 1
