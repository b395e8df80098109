"""``scrapy evaluate-classifier``: how good the classifier is, measured reproducibly.

* Without ``--file``: stratified k-fold cross-validation on envision-classifier's 891
  built-in examples, for the default model's recipe and the baselines
  (:func:`envision_spiders.classifier.evaluate.cross_validate`); about 3 minutes for
  5 folds and one seed on two cores. The project's own training records
  (``classifier/hard_examples.jsonl``) join every training fold and are never scored;
  ``--no-extras`` leaves them out. With the default recipe (``text_head``), the
  project's records with files (``classifier/file_examples.jsonl``) are scored too: by
  the text model alone and combined with file evidence fitted on the other folds.
* ``--file labelled.jsonl``: the configured classifier (``CLASSIFIER_MODEL`` or
  ``--model``) on a curator's JSON Lines file (``title``, ``description``,
  ``keywords``, ``label`` = EYE_IMAGING or NEGATIVE per line; with ``files`` and
  ``archives`` as saved records have them, the file evidence counts), the text model
  alone and the label.

Prints, per method, precision, recall and F1 per class, the confusion matrix, the
negatives scored P >= 0.8, the recall on title-only eye imaging (records without a
description) and calibration (the reliability table and the expected calibration
error); writes ``report.json`` (with every prediction, its reasons and whether text and
files disagree), ``report.txt`` and, when matplotlib is installed, ``reliability.png``
to ``--output`` (default ``{DATA_DIR}/evaluations/<time>/``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
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
        return "[--folds K] [--seeds S,S,...] [--methods M,M,...] [--grouped] | --file LABELLED.jsonl [--model SPEC]"

    def short_desc(self) -> str:
        return "Cross-validate the classifier on its built-in examples, or evaluate it on a labelled file"

    def add_options(self, parser) -> None:
        from envision_spiders.classifier.evaluate import METHODS

        super().add_options(parser)
        parser.add_argument("--file", metavar="JSONL",
                            help="labelled records (title, description, keywords, label; files and archives count)")
        parser.add_argument("--model", metavar="SPEC", help="CLASSIFIER_MODEL for --file")
        parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
        parser.add_argument("--seeds", default="42", help="comma-separated shuffling seeds, one CV run each (default 42)")
        parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of: {', '.join(METHODS)}")
        parser.add_argument("--grouped", action="store_true",
                            help="keep near-duplicate examples in one fold (a stricter estimate)")
        parser.add_argument("--no-extras", action="store_true",
                            help="train the folds on the built-in examples only, without the project's own "
                                 "training records (classifier/hard_examples.jsonl), as before they existed")
        parser.add_argument("--output", metavar="DIR", help="report folder (default DATA_DIR/evaluations/<time>)")

    def run(self, args: list[str], opts) -> None:
        from scrapy.utils.log import configure_logging

        from envision_spiders.classifier import classifier_for_command
        from envision_spiders.classifier.evaluate import cross_validate, evaluate_file, format_report, write_report

        assert self.settings is not None
        if args:
            raise UsageError(f"unexpected arguments: {' '.join(args)}")
        configure_logging(self.settings)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = Path(opts.output or paths.data_dir(self.settings) / "evaluations" / stamp)
        if opts.file:
            if not Path(opts.file).is_file():
                raise UsageError(f"--file {opts.file}: no such file")
            classifier = classifier_for_command(self.settings, opts.model)
            if classifier is None:
                self.exitcode = 1
                return
            report = evaluate_file(classifier, opts.file)
            if not report["predictions"]:
                logger.error("%s holds no labelled record", opts.file)
                self.exitcode = 1
        else:
            try:
                seeds = [int(s) for s in opts.seeds.split(",") if s.strip()]
                methods = [m.strip() for m in opts.methods.split(",") if m.strip()]
                if opts.folds < 2 or not seeds:
                    raise ValueError("at least 2 folds and one seed")
                report = cross_validate(opts.folds, seeds, methods, grouped=opts.grouped,
                                        extras=not opts.no_extras)
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
        written = write_report(report, out)
        print(format_report(report), end="")
        print("written: " + ", ".join(str(p) for p in written))
