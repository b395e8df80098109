"""What ``scrapy download`` and ``scrapy export-addf`` share: which records they act on."""

from __future__ import annotations

import argparse
from typing import Any

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from envision_spiders.usercheck import CheckedCommand


def add_selection_options(parser: argparse.ArgumentParser, threshold_setting: str = "DOWNLOAD_THRESHOLD") -> None:
    parser.add_argument("--source", action="append", default=[], metavar="SOURCE",
                        help="only this source (repeat for several; default: every source on disk)")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help=f"minimum prob_eye_imaging (default: {threshold_setting})")


def selection(settings: Any, args: list[str], opts: argparse.Namespace):
    """(DownloadConfig, sources) for the options; logging set up (these commands have
    no crawler process to do it)."""
    from scrapy.utils.log import configure_logging

    from .queue import sources_on_disk
    from .runner import DownloadConfig

    if args:
        raise UsageError("unexpected arguments: " + " ".join(args))
    if opts.threshold is not None and not 0.0 <= opts.threshold <= 1.0:
        raise UsageError("--threshold must be between 0 and 1")
    configure_logging(settings)
    config = DownloadConfig.from_settings(settings, opts.threshold)
    return config, opts.source or sources_on_disk(config.data_dir, config.results_dir)


class RecordsCommand(CheckedCommand, ScrapyCommand):
    """Base of the commands acting on the records that pass the download gate; it runs
    no crawler (no reactor), only asyncio or plain code. They read RESULTS_DIR."""

    requires_project = True
    requires_crawler_process = False
    needs_results = True
    default_settings = {"LOG_LEVEL": "INFO"}

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        add_selection_options(parser)
