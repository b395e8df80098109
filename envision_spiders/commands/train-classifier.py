"""``scrapy train-classifier``: rebuild the default offline model, or fine-tune one with SetFit.

Without options the default model (:mod:`envision_spiders.classifier.model`) is rebuilt
from packaged parts in ``{DATA_DIR}/models/envision-default/`` (``CLASSIFIER_MODELS_DIR``),
even when it is up to date; about a minute on two cores. It learns from the curators'
decisions too (``data/review/``, :mod:`envision_spiders.review.training`); when there are
any, the command then cross-validates the recipe with and without them (on the built-in
examples, and on the decisions themselves) and writes the figures to
``{DATA_DIR}/evaluations/<time>/decisions-cv.{json,txt}`` (``--no-cv`` skips it: a few
minutes on two cores). ``--setfit`` fine-tunes the
packaged MiniLM with SetFit instead (about 20 minutes and 4.4 GB of memory on two CPU
cores, see :mod:`envision_spiders.classifier.setfit_train`) and saves a folder to use
with ``CLASSIFIER_MODEL``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from envision_spiders import paths
from envision_spiders.usercheck import CheckedCommand

logger = logging.getLogger(__name__)


class Command(CheckedCommand, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False

    def syntax(self) -> str:
        return "[--no-cv] [--folds K] | --setfit [--iterations N] [--output DIR]"

    def short_desc(self) -> str:
        return "Rebuild the default offline classifier (or fine-tune one with SetFit: slow on CPU)"

    def add_options(self, parser) -> None:
        super().add_options(parser)
        parser.add_argument("--setfit", action="store_true",
                            help="full SetFit fine-tuning of MiniLM (about 20 min and 4.4 GB on 2 CPU cores)")
        parser.add_argument("--iterations", type=int, default=3, help="SetFit pair-sampling iterations (default 3)")
        parser.add_argument("--max-examples", type=int, default=None,
                            help="SetFit on a sample of the examples only (a quick trial, not a usable model)")
        parser.add_argument("--output", metavar="DIR",
                            help="where the SetFit model goes (default: <models dir>/envision-setfit-minilm)")
        parser.add_argument("--no-cv", action="store_true",
                            help="do not cross-validate with and without the curators' decisions")
        parser.add_argument("--folds", type=int, default=5, help="folds of that cross-validation (default 5)")

    def run(self, args: list[str], opts) -> None:
        from scrapy.utils.log import configure_logging

        from envision_spiders.classifier import ModelError, build_default_model, models_dir
        from envision_spiders.classifier.model import read_manifest
        from envision_spiders.review.training import describe, examples_of, labelled_records

        assert self.settings is not None
        if args:
            raise UsageError(f"unexpected arguments: {' '.join(args)}")
        if not opts.setfit and (opts.output or opts.max_examples):
            raise UsageError("--output and --max-examples go with --setfit")
        if opts.folds < 2:
            raise UsageError("--folds must be 2 or more")
        configure_logging(self.settings)
        root = models_dir(self.settings)
        started = time.monotonic()
        try:
            if opts.setfit:
                from envision_spiders.classifier.setfit_train import SETFIT_NAME, train_setfit

                folder = train_setfit(opts.output or root / SETFIT_NAME, opts.iterations, opts.max_examples)
                print(f"SetFit model saved to {folder} in {time.monotonic() - started:.0f} s; "
                      f"use it with CLASSIFIER_MODEL={folder}")
                return
            data_dir = paths.data_dir(self.settings)
            records, left_out = labelled_records(data_dir)
            curated = examples_of(records)
            print(describe(curated, left_out) if records or left_out else
                  f"no curator decisions in {data_dir / 'review'} yet: the model learns from its built-in examples")
            folder = build_default_model(root, force=True, curated=curated)
        except (ModelError, OSError) as exc:
            logger.error("Training failed: %s", exc)
            self.exitcode = 1
            return
        manifest = read_manifest(folder) or {}
        print(f"default classifier {manifest.get('model_id')} built in {folder} "
              f"({time.monotonic() - started:.0f} s)")
        if curated and not opts.no_cv:
            self.compare(curated, opts.folds, data_dir)

    def compare(self, curated, folds: int, data_dir: Path) -> None:
        from datetime import datetime, timezone

        from envision_spiders.review.training import compare, format_comparison, write_comparison

        started = time.monotonic()
        report = compare(curated, folds)
        out = data_dir / "evaluations" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        written = write_comparison(report, out)
        print(format_comparison(report), end="")
        print(f"({time.monotonic() - started:.0f} s) written: " + ", ".join(str(p) for p in written))
