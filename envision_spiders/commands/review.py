"""``scrapy review``: curators' decisions on records, recorded in ``data/review/decisions.jsonl``.

::

    scrapy review accept  SOURCE:ID [SOURCE:ID ...] [--reason TEXT] [--code CODE] [--curator NAME]
    scrapy review reject  SOURCE:ID [...] --reason TEXT | --code CODE [--curator NAME]
    scrapy review unsure  SOURCE:ID [...] [--reason TEXT] [--curator NAME]
    scrapy review withdraw SOURCE:ID [...] [--reason TEXT] [--curator NAME]
    scrapy review list    [--pending] [--limit N] [SOURCE:ID ...]
    scrapy review import  FILE [--curator NAME]

``accept`` / ``reject`` / ``unsure`` record one decision per record (every id is checked
first: an unknown one records nothing); ``withdraw`` takes back the decisions recorded on
a record (one more line in the ledger: the model's label stands again and the record
waits for a curator). ``import`` records the decisions file the review
page exports (see :mod:`envision_spiders.review.importing`; importing a file twice changes
nothing). Both rewrite ``results/`` and the review page, so every reader sees the
decisions at once. ``list`` shows the decisions that stand (with ids: each record's whole
history), ``list --pending`` what waits for a curator, most useful first
(:mod:`envision_spiders.review.pending`). The curator is ``--curator``, else the
``REVIEW_CURATOR`` setting, else the login name.

Exit status 1 (with one line per problem, and nothing half-recorded) for an unknown
record, a malformed or truncated decisions file, a decision for a record that no longer
exists, or one that contradicts a decision another curator recorded meanwhile.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from envision_spiders import paths
from envision_spiders.usercheck import CheckedCommand

logger = logging.getLogger(__name__)

ACTIONS = ("accept", "reject", "unsure", "withdraw", "list", "import")
LIST_LIMIT = 50


def say(line: str) -> None:
    print(line, flush=True)


def fail(line: str) -> None:
    print(f"review: {line}", file=sys.stderr, flush=True)


class Command(CheckedCommand, ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    makes_results = True  # results/ and the page are rewritten after recording
    default_settings = {"LOG_LEVEL": "WARNING"}

    def syntax(self) -> str:
        return ("accept|reject|unsure|withdraw SOURCE:ID [...] [--reason TEXT] [--code CODE] | list [--pending] "
                "| import FILE")

    def short_desc(self) -> str:
        return ("Record curator decisions (accept, reject, unsure, withdraw), list them and what waits, import the "
                "page's file")

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        from envision_spiders.review import REASON_CODES

        super().add_options(parser)
        parser.add_argument("--reason", default="", metavar="TEXT", help="why (needed to reject, unless --code)")
        parser.add_argument("--code", choices=list(REASON_CODES), default=None,
                            help="reason code: " + "; ".join(f"{k}: {v}" for k, v in REASON_CODES.items()))
        parser.add_argument("--curator", default=None, metavar="NAME",
                            help="who decides (default: REVIEW_CURATOR, else the login name)")
        parser.add_argument("--pending", action="store_true", help="list: what waits for a curator, most useful first")
        parser.add_argument("--limit", type=int, default=LIST_LIMIT, metavar="N",
                            help=f"list: at most N lines (default {LIST_LIMIT}; 0: all)")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        from scrapy.utils.log import configure_logging

        assert self.settings is not None
        if not args or args[0] not in ACTIONS:
            raise UsageError(f"say what to do: {', '.join(ACTIONS)}")
        action, rest = args[0], args[1:]
        if action in ("list",) and (opts.reason or opts.code):
            raise UsageError("--reason and --code go with accept, reject, unsure or withdraw")
        if action != "list" and opts.pending:
            raise UsageError("--pending goes with list")
        if opts.limit < 0:
            raise UsageError("--limit must be 0 or more")
        configure_logging(self.settings)
        self.data_dir = paths.data_dir(self.settings)
        self.results_dir = paths.results_dir(self.settings)
        if action == "list":
            self.exitcode = self.show(rest, opts)
        elif action == "import":
            if len(rest) != 1:
                raise UsageError("import takes one decisions file (exported by the review page)")
            self.exitcode = self.import_file(rest[0], opts)
        else:
            if not rest:
                raise UsageError(f"{action} needs at least one record id, SOURCE:ID (e.g. zenodo:1234567)")
            self.exitcode = self.decide(action, rest, opts)

    # ------------------------------------------------------------------ deciding
    def curator(self, opts: argparse.Namespace) -> str:
        name = opts.curator or self.settings.get("REVIEW_CURATOR") or ""
        if not name:
            try:
                name = getpass.getuser()
            except (KeyError, OSError):  # no login name (a container without one)
                name = "curator"
        return name

    def decide(self, action: str, keys: list[str], opts: argparse.Namespace) -> int:
        from envision_spiders.review import DecisionError, decision_from, parse_key
        from envision_spiders.review.importing import model_fields

        curator, decisions, problems = self.curator(opts), [], []
        for key in dict.fromkeys(keys):
            try:
                source, source_id = parse_key(key)
                if model_fields(self.data_dir, source, source_id) is None:
                    problems.append(f"{key}: no such record under {self.data_dir / 'metadata'} "
                                    f"(ids are SOURCE:ID as `scrapy review list --pending` shows them)")
                    continue
                decisions.append(decision_from({"source": source, "source_id": source_id, "decision": action,
                                                "reason": opts.reason, "code": opts.code, "curator": curator}))
            except DecisionError as exc:
                problems.append(f"{key}: {exc}" if "SOURCE:ID" not in str(exc) else str(exc))
        if problems:
            for p in problems:
                fail(p)
            fail("nothing recorded")
            return 1
        return self.record(decisions, from_page=False)

    def import_file(self, path: str, opts: argparse.Namespace) -> int:
        from envision_spiders.review.importing import ImportProblem, read_decisions_file

        try:
            header, decisions = read_decisions_file(path, self.curator(opts))
        except ImportProblem as exc:
            fail(str(exc))
            return 1
        if not decisions:
            say(f"{path} holds no decisions; nothing to import")
            return 0
        page = header.get("page") if isinstance(header.get("page"), dict) else {}
        ledger_id = header.get("ledger")
        if ledger_id and ledger_id != self.ledger().identity:
            logger.warning("%s was exported from a review page of another data folder; its decisions are imported "
                           "into %s for the records that exist here", path, self.data_dir)
        say(f"{path}: {len(decisions)} decisions exported {header.get('exported_at') or '?'} from the page of run "
            f"{page.get('run_id') or '?'}")
        return self.record(decisions, from_page=True)

    def record(self, decisions: list, *, from_page: bool) -> int:
        from envision_spiders.review import LedgerBusy
        from envision_spiders.review.importing import record

        try:
            outcome = record(self.data_dir, decisions, self.groups(), from_page=from_page)
        except (LedgerBusy, OSError) as exc:
            fail(f"cannot record in the ledger: {exc}; nothing recorded")
            return 1
        for d in outcome.appended.written:
            say(f"recorded: {d.key} {d.describe()}")
        for note in outcome.notes:
            say(f"note: {note}")
        if outcome.appended.known:
            say(f"{len(outcome.appended.known)} decisions were in the ledger already (imported before); unchanged")
        for problem in outcome.problems:
            fail(problem)
        status = 0
        if outcome.appended.written:
            status = self.refresh()
        say(f"{len(outcome.appended.written)} decisions recorded in {self.ledger_path()}"
            + (f"; {len(outcome.problems)} not recorded (see above)" if outcome.problems else ""))
        return 1 if outcome.problems else status

    def groups(self) -> list:
        from envision_spiders.duplicates import read_duplicate_groups

        return read_duplicate_groups(self.results_dir)

    def ledger(self):
        from envision_spiders.review import Ledger

        return Ledger(self.data_dir)

    def ledger_path(self) -> Path:
        return self.ledger().path

    def refresh(self) -> int:
        """``results/`` and the review page again, with the new decisions."""
        from envision_spiders.report import write_report
        from envision_spiders.results import write_results

        try:
            write_results(self.data_dir, self.results_dir)
            page = write_report(self.data_dir, self.results_dir, snapshot=False,
                                threshold=self.settings.getfloat("DOWNLOAD_THRESHOLD", 0.80))
        except Exception as exc:  # the decisions are recorded; only the views are behind
            fail(f"the decisions are recorded, but results/ or the review page could not be rewritten ({exc}); "
                 "run `scrapy classify` or `scrapy report` to bring them up to date")
            return 1
        say(f"results in {self.results_dir} and the review page {page} show them")
        return 0

    # ------------------------------------------------------------------ listing
    def show(self, keys: list[str], opts: argparse.Namespace) -> int:
        from envision_spiders.review import DecisionError, Review, parse_key

        review = Review.load(self.data_dir, self.results_dir)
        if keys:
            status = 0
            for key in keys:
                try:
                    parse_key(key)
                except DecisionError as exc:
                    fail(str(exc))
                    status = 1
                    continue
                own, standing = review.own(key), review.standing(key)
                if not own and standing is None:
                    say(f"{key}: no decision")
                    continue
                say(f"{key}: {standing.describe() if standing else 'no decision stands'}"
                    + (f" (made on its duplicate {standing.key})" if standing and standing.key != key else ""))
                for d in own:
                    say(f"    {d.recorded_at or d.decided_at}  {d.describe()}  [{d.origin}, id {d.id}; the model said "
                        f"{d.model_label or '?'} P {_p(d.prob_eye_imaging)} ({d.model_id or '?'})]")
            return status
        if opts.pending:
            return self.show_pending(review, opts.limit)
        latest = {}
        for d in review.decisions:
            latest[d.key] = d
        shown = sorted(latest.values(), key=lambda d: d.recorded_at or d.decided_at, reverse=True)
        limit = opts.limit or len(shown)
        counts = {v: sum(1 for d in latest.values() if d.decision == v) for v in ("accept", "reject", "unsure")}
        say(f"{len(review)} decisions on {len(latest)} records in {self.ledger_path()}: {counts['accept']} accepted, "
            f"{counts['reject']} rejected, {counts['unsure']} unsure (newest first)")
        for d in shown[:limit]:
            say(f"  {d.key:<44} {d.describe()}")
        if len(shown) > limit:
            say(f"  ... {len(shown) - limit} more (--limit 0 for all)")
        return 0

    def show_pending(self, review, limit: int) -> int:
        from envision_spiders.report.gather import current_run_id, previous_snapshot, read_records, result_sources
        from envision_spiders.review.pending import catalogue_negatives, waiting
        from envision_spiders.storage import read_json
        from envision_spiders.textutil import strings

        rows = []
        for name in result_sources(self.results_dir):
            rows.extend(read_records(self.results_dir / f"{name}_all_results.json"))
        if not rows:
            say(f"no results under {self.results_dir}: run `scrapy classify` first")
            return 0
        baseline = previous_snapshot(self.data_dir, current_run_id(self.data_dir, None))
        before = set(strings(baseline.get("eye_imaging"))) if baseline else None
        recall = read_json(self.results_dir / "recall.json") if (self.results_dir / "recall.json").is_file() else None
        queue = waiting(rows, review, before, catalogue_negatives(recall))
        limit = limit or len(queue)
        say(f"{len(queue)} records wait for a curator, most useful first "
            "(scrapy review accept|reject|unsure SOURCE:ID --reason ...):")
        for w in queue[:limit]:
            title = " ".join(str(w.row.get("title") or "").split())
            unsure = f"  [{w.decision.describe()}]" if w.decision else ""
            say(f"  {w.why:<26} {w.key:<44} P {_p(w.row.get('prob_eye_imaging'))}  {title[:80]}{unsure}")
        if len(queue) > limit:
            say(f"  ... {len(queue) - limit} more (--limit 0 for all)")
        return 0


def _p(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else " ?  "

