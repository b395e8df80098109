"""A summary at the end of every crawl: in the log, and as JSON under ``data/runs/``.

Per source: terms searched, hits, unique records, new / changed / unchanged records,
requests, retries, 429s, failures, malformed answers, bytes, elapsed time. The JSON
(``data/runs/{run_id}/{spider}.json``) carries the same figures plus every
``envision/*`` stat; ``scrapy crawl all`` and ``automation.sh`` gather them per run.

A spider that searches in more than one way (``spider.channels``: DataCite's search
terms and its funder search) also gets ``channels``: how many records this run each
channel found that the other did not, and how many both found
(``{"terms_only", "funder_only", "both"}``), in the JSON and in a log line.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from scrapy import signals

from envision_spiders import paths
from envision_spiders.extensions.state import CrawlState
from envision_spiders.storage import atomic_write_json, read_json
from envision_spiders.textutil import utcnow_iso

logger = logging.getLogger(__name__)


# Exit status of a step that finished and saved its work but found problems (requests lost
# for good, files that failed, hits collapsing): automation.sh goes on with the next steps
# and ends the run with a non-zero status. 1 stays "failed: nothing to build on".
EXIT_UNHEALTHY = 3


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


SUMMARY_FIELDS = (
    ("terms_searched", ("envision/terms_searched",)),
    ("hits", ("envision/hits",)),
    ("unique_records", ("envision/records/unique",)),
    ("new", ("envision/records/new",)),
    ("changed", ("envision/records/changed", "envision/records/rewritten_unchanged")),
    ("unchanged", ("envision/records/unchanged",)),
    ("requests", ("downloader/request_count",)),
    ("retries", ("retry/count",)),
    # answered 429 by the server ("rate-limited"), apart from our own pacing waits
    ("rate_limited", ("envision/ratelimit/429",)),
    ("pacing_waits", ("envision/pacing/waits",)),
    ("failures", ("envision/failures",)),
    ("bad_records", ("envision/bad_record",)),
    ("bytes", ("downloader/response_bytes",)),
    ("errors", ("log_count/ERROR",)),
)


# A source whose hits fall below this share of its recent runs' median is unhealthy
# (the original DataCite scraper returned nothing for months without anyone noticing).
HITS_DROP_RATIO = {"full": 0.5, "incremental": 0.1}
HISTORY = 4  # recent runs compared
MIN_MEDIAN = 10  # too few hits before to judge a drop


def health(summary: dict, previous: list[dict]) -> list[str]:
    """What is wrong with a spider's run, in words a curator can act on ([] = healthy)."""
    problems = []
    # an unreachable source says so in its own words (SourceSpider.report_problem)
    if summary["finish_reason"] not in ("finished", "unreachable"):
        problems.append(f"the crawl did not finish normally ({summary['finish_reason']})")
    if summary["failures"]:
        problems.append(f"{summary['failures']} requests failed for good (kept in data/failures/, retried next run)")
    same_mode = [p for p in previous if p.get("mode") == summary.get("mode") and p.get("finish_reason") == "finished"]
    recent = sorted(p.get("hits", 0) for p in same_mode[-HISTORY:])
    if recent:
        median = recent[len(recent) // 2]
        ratio = HITS_DROP_RATIO.get(summary.get("mode") or "full", 0.5)
        if median >= MIN_MEDIAN and summary["hits"] < ratio * median:
            problems.append(
                f"hits fell to {summary['hits']} from a median of {median} over the last {len(recent)} "
                f"{summary.get('mode')} runs: is the API or its parser broken?"
            )
    return problems


def previous_summaries(data_dir: Path, spider: str, run_id: str) -> list[dict]:
    out = []
    for path in sorted((data_dir / "runs").glob(f"*/{spider}.json")):
        if path.parent.name == run_id:
            continue
        data = read_json(path)
        if isinstance(data, dict):
            out.append(data)
    return out


def summarize(stats: dict) -> dict:
    out = {name: sum(int(stats.get(k) or 0) for k in keys) for name, keys in SUMMARY_FIELDS}
    out["bad_responses"] = sum(int(v or 0) for k, v in stats.items() if k.startswith("envision/bad_response/"))
    return out


class RunSummary:
    def __init__(self, crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        self.run_id = settings.get("RUN_ID") or new_run_id()
        self.data_dir = paths.data_dir(settings)
        self.started = time.monotonic()
        self.started_at = utcnow_iso()
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler) -> RunSummary:
        return cls(crawler)

    @property
    def path(self) -> Path:
        return self.data_dir / "runs" / self.run_id / f"{self.crawler.spidercls.name}.json"

    def spider_closed(self, spider, reason: str) -> None:
        stats = dict(self.crawler.stats.get_stats())
        figures = summarize(stats)
        elapsed = round(time.monotonic() - self.started, 1)
        since = getattr(spider, "since", None)
        summary = {
            "spider": spider.name,
            "run_id": self.run_id,
            "mode": "incremental" if since else "full",
            "since": since.isoformat() if since else None,
            "finish_reason": reason,
            "started_at": self.started_at,
            "finished_at": utcnow_iso(),
            "elapsed_seconds": elapsed,
            **figures,
            # "<host> unreachable (<why>); source skipped this run", or None
            "unreachable": stats.get("envision/unreachable"),
            "stats": {k: v for k, v in sorted(stats.items()) if k.startswith(("envision/", "retry/", "downloader/response_status_count/"))},
        }
        if len(getattr(spider, "channels", ())) > 1:
            channels = CrawlState.of(self.crawler).channel_counts()
            summary["channels"] = channels
            logger.info("%s channels: %d records found only by the search terms, %d only by the funder search, "
                        "%d by both", spider.name, channels["terms_only"], channels["funder_only"], channels["both"])
        problems = list(getattr(spider, "problems", [])) + health(summary, previous_summaries(self.data_dir, spider.name, self.run_id))
        summary["healthy"] = not problems
        summary["problems"] = problems
        logger.info(
            "%s summary: %d terms searched, %d hits, %d unique records (%d new, %d changed, %d unchanged); "
            "%d requests, %d retries, %d rate-limited (429), %d pacing waits, %d failures, %d malformed answers, "
            "%d bad records, %.1f MB, %.1f s; finish reason: %s",
            spider.name, figures["terms_searched"], figures["hits"], figures["unique_records"], figures["new"],
            figures["changed"], figures["unchanged"], figures["requests"], figures["retries"],
            figures["rate_limited"], figures["pacing_waits"], figures["failures"], figures["bad_responses"], figures["bad_records"],
            figures["bytes"] / 1e6, elapsed, reason,
        )
        for problem in problems:
            logger.error("%s RUN HEALTH: %s", spider.name.upper(), problem)
        try:
            atomic_write_json(self.path, summary)
        except OSError as exc:
            logger.error("Cannot write the run summary %s: %s", self.path, exc)
