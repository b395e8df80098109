"""``scrapy classify``: label saved records without crawling, then write ``results/``.

Every record under ``data/metadata`` (or of ``--source``) that does not yet carry the
current model's label for its present text and file evidence is classified, in batches,
and its file is rewritten with the new ``classification`` (label, probabilities, the
reasons and whether text and files disagree; atomically: just before writing, the record
is read again and skipped if a crawl changed its text or files meanwhile). Then ``results/`` is
rebuilt from every record on disk (:mod:`envision_spiders.results`), and the review page
``results/report.html`` from them (:func:`envision_spiders.report.report_after_classify`).
This is the original tool's ``--skip-scrape``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from envision_spiders import paths
from envision_spiders.storage import atomic_write_json, iter_records, read_json
from envision_spiders.extensions.runsummary import EXIT_UNHEALTHY
from envision_spiders.usercheck import CheckedCommand, no_records_problem

logger = logging.getLogger(__name__)

BATCH = 256  # records per model call (and per progress line)


class Command(CheckedCommand, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    makes_results = True

    def syntax(self) -> str:
        return "[--source SOURCE ...] [--results-dir DIR] [--model SPEC] [--force]"

    def short_desc(self) -> str:
        return "Classify saved records not yet labelled by the current model, then write results/"

    def add_options(self, parser) -> None:
        super().add_options(parser)
        parser.add_argument("--source", action="append", default=[], metavar="SOURCE",
                            help="only this source (repeatable; default: every source under DATA_DIR/metadata)")
        parser.add_argument("--results-dir", metavar="DIR", help="write results here (default: RESULTS_DIR)")
        parser.add_argument("--model", metavar="SPEC", help="CLASSIFIER_MODEL for this run")
        parser.add_argument("--force", action="store_true", help="classify every record again, labelled or not")

    def run(self, args: list[str], opts) -> None:
        from scrapy.utils.log import configure_logging

        from envision_spiders.classifier import classifier_for_command
        from envision_spiders.report import report_after_classify
        from envision_spiders.results import run_id_from, sources_on_disk, write_results

        assert self.settings is not None
        if args:
            raise UsageError(f"unexpected arguments: {' '.join(args)}")
        configure_logging(self.settings)
        data_dir = paths.data_dir(self.settings)
        results_dir = paths.results_dir(self.settings, opts.results_dir)
        sources = opts.source or sources_on_disk(data_dir)
        counts = {"classified": 0, "reused": 0, "changed_meanwhile": 0}
        problem = no_records_problem(data_dir, opts.source or None)
        if problem:
            # nothing to label: no model is loaded (nor built); the results and the page are
            # written as they are, and the exit status says the step found a problem (a
            # weekly run goes on to its report and ends unhealthy)
            logger.error("classify: %s", problem)
            self.exitcode = EXIT_UNHEALTHY
            model_id = "none loaded"
        else:
            classifier = classifier_for_command(self.settings, opts.model)
            if classifier is None:
                self.exitcode = 1
                return
            model_id = classifier.model_id
            self._label(classifier, data_dir, sources, opts.force, counts)
        run_id = run_id_from(self.settings)
        summary = write_results(data_dir, results_dir, run_id)
        # the review page follows the results it shows (it never fails this command)
        settings = self.settings.copy()
        settings.set("RESULTS_DIR", str(results_dir), priority="cmdline")
        report_after_classify(settings, run_id=run_id)
        print(f"classified {counts['classified']}, already labelled {counts['reused']} "
              f"(model {model_id}); results in {results_dir}: "
              f"{summary['totals']['EYE_IMAGING']} EYE_IMAGING of {summary['totals']['records']} records")

    @staticmethod
    def _label(classifier, data_dir: Path, sources: list[str], force: bool, counts: dict[str, int]) -> None:
        """Label what the current model has not labelled (everything with ``force``)."""
        from envision_spiders.classifier import record_input

        started = time.monotonic()
        read_before = dict(classifier.reading)
        for source in sources:
            todo = []
            for path, record in iter_records(data_dir, source):
                inp = record_input(record)
                if not force and classifier.reusable(record.get("classification"), inp):
                    counts["reused"] += 1
                else:
                    todo.append((path, inp))
            for start in range(0, len(todo), BATCH):
                batch = todo[start:start + BATCH]
                results = classifier.classify_inputs([i for _, i in batch])
                for (path, inp), result in zip(batch, results):
                    counts[_save(path, inp, result)] += 1
                logger.info("classify %s: %d/%d records classified", source, min(start + BATCH, len(todo)), len(todo))
        elapsed = time.monotonic() - started
        read = {k: v - read_before.get(k, 0) for k, v in classifier.reading.items()}
        how = (f" ({read.get('quick', 0)} decided by the quick head, {read.get('encoded', 0)} read by the encoder)"
               if read else "")
        logger.info("classify: %d records classified%s, %d already labelled by %s, %d skipped (changed by a crawl "
                    "meanwhile) in %.0f s", counts["classified"], how, counts["reused"], classifier.model_id,
                    counts["changed_meanwhile"], elapsed)


def _save(path: Path, inp, classification: dict) -> str:
    """Store the label in the record file, unless a crawl changed the record's text or
    files since it was read (the crawl's own pipeline labels it then)."""
    from envision_spiders.classifier import record_input

    current = read_json(path)
    if not isinstance(current, dict):
        return "changed_meanwhile"
    now = record_input(current)
    if now.text != inp.text or now.files_sha256 != inp.files_sha256:
        return "changed_meanwhile"
    current["classification"] = classification
    atomic_write_json(path, current)
    return "classified"
