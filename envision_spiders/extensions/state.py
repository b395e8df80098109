"""What one spider remembers between runs, under ``DATA_DIR``.

* ``data/state/{spider}.json``: the last *successful* run (start time and the hash of the
  search terms it covered). Incremental runs ask the APIs only for what changed since
  then. The mark moves only when a run finished normally, covered every term without
  ``MAX_PER_QUERY`` and left no failed request behind.
* ``data/failures/{spider}.jsonl``: requests that finally failed (retries exhausted,
  429s that never ended, malformed answers). Appended as they happen, so a killed run
  loses nothing; the next run retries them first; a finished run rewrites the file
  with only its own failures.
* the index of saved records (``source_id`` -> the source's modified date and the terms
  that found it), so a spider can skip records that did not change.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import signals

from envision_spiders.storage import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    iter_records,
    read_json,
    read_jsonl,
    remove_stale_temporaries,
    safe_id,
)
from envision_spiders.textutil import iso, parse_datetime, utcnow_iso

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

# Headers that may carry a secret never reach the failures file.
_SECRET_HEADER_WORDS = ("authorization", "cookie", "token", "key", "secret", "signature")


def terms_hash(terms: list[str]) -> str:
    return hashlib.sha256("\n".join(terms).encode("utf-8")).hexdigest()[:16]


def request_to_record(request: Request, reason: str) -> dict[str, Any]:
    """The parts of a failed request needed to send it again, and nothing secret."""
    callback = getattr(request.callback, "__name__", None)
    headers = {}
    for name, values in request.headers.items():
        key = name.decode("latin-1")
        if any(w in key.lower() for w in _SECRET_HEADER_WORDS):
            continue
        headers[key] = values[-1].decode("latin-1") if values else ""
    body = request.body.decode("utf-8", "replace") if request.body else ""
    return {
        "url": request.url,
        "method": request.method,
        "body": body,
        "headers": headers,
        "callback": callback,
        "cb_kwargs": request.cb_kwargs,
        "reason": reason,
        "failed_at": utcnow_iso(),
    }


class CrawlState:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.data_dir = Path(crawler.settings.get("DATA_DIR") or "data")
        self.started_at = utcnow_iso()
        self.index: dict[str, dict[str, Any]] = {}
        self.previous_failures: list[dict[str, Any]] = []
        self.new_failures = 0
        self._mark: dict[str, Any] = {}
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlState:
        return cls(crawler)

    @staticmethod
    def of(crawler: Crawler) -> CrawlState:
        state = crawler.get_extension(CrawlState)
        if state is None:  # pragma: no cover - only when someone removes it from EXTENSIONS
            raise RuntimeError("envision_spiders.extensions.state.CrawlState is not enabled")
        return state

    # ---------------------------------------------------------------- paths
    @property
    def name(self) -> str:
        return self.crawler.spidercls.name

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state" / f"{self.name}.json"

    @property
    def failures_path(self) -> Path:
        return self.data_dir / "failures" / f"{self.name}.jsonl"

    @property
    def metadata_dir(self) -> Path:
        return self.data_dir / "metadata" / self.name

    # ---------------------------------------------------------------- signals
    def spider_opened(self, spider: Spider) -> None:
        removed = remove_stale_temporaries(self.metadata_dir)
        if removed:
            logger.info("%s: removed %d temporary files left by an interrupted run", self.name, removed)
        self._mark = read_json(self.state_path) or {}
        seen = set()
        for f in read_jsonl(self.failures_path):
            key = (f.get("method"), f.get("url"), f.get("body"))
            if key not in seen and f.get("url") and f.get("callback"):
                seen.add(key)
                self.previous_failures.append(f)
        if self.previous_failures:
            logger.info("%s: %d requests failed last time and are retried first", self.name, len(self.previous_failures))
        for _, record in iter_records(self.data_dir, self.name):
            sid = record.get("source_id")
            if not isinstance(sid, str):
                continue
            prov = record.get("provenance") or {}
            self.index[safe_id(sid)] = {
                "source_modified": prov.get("source_modified"),
                "search_terms": prov.get("search_terms") or [],
            }
        self.crawler.stats.set_value("envision/records/on_disk_at_start", len(self.index))

    def spider_closed(self, spider: Spider, reason: str) -> None:
        if reason == "finished":
            # Everything retried from last time either worked or failed again (and was
            # recorded again): the file now holds exactly this run's failures.
            if self.new_failures == 0:
                self.failures_path.unlink(missing_ok=True)
            else:
                # this run's failures are the lines it appended, at the end of the file
                mine = read_jsonl(self.failures_path)[-self.new_failures :]
                atomic_write_bytes(
                    self.failures_path,
                    "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in mine).encode("utf-8"),
                )
        complete = getattr(spider, "covers_everything", lambda: False)()
        if reason == "finished" and self.new_failures == 0 and complete:
            atomic_write_json(
                self.state_path,
                {"last_success": self.started_at, "terms_sha": getattr(spider, "terms_sha", None)},
            )
            logger.info("%s: run complete; the next run asks only for changes since %s", self.name, self.started_at)
        elif reason == "finished" and complete:
            logger.warning(
                "%s: %d requests failed; the mark of the last successful run stays at %s",
                self.name, self.new_failures, self._mark.get("last_success") or "(none)",
            )

    # ---------------------------------------------------------------- API for spiders
    def last_success(self, terms_sha: str | None) -> datetime | None:
        """Start of the last successful run over the same terms, or None."""
        if not self._mark.get("last_success"):
            return None
        if terms_sha and self._mark.get("terms_sha") not in (None, terms_sha):
            logger.info("%s: the search terms changed since the last run; searching everything", self.name)
            return None
        return parse_datetime(self._mark["last_success"])

    def saved(self, source_id: str) -> dict[str, Any] | None:
        return self.index.get(safe_id(source_id))

    def is_unchanged(self, source_id: str, source_modified: Any) -> bool:
        """True when the record is on disk with this very modified date."""
        entry = self.saved(source_id)
        if not entry or not source_modified:
            return False
        return entry.get("source_modified") == iso(source_modified)

    def record_failure(self, request: Request, reason: str) -> None:
        self.new_failures += 1
        self.crawler.stats.inc_value("envision/failures")
        try:
            append_jsonl(self.failures_path, request_to_record(request, reason))
        except (OSError, TypeError, ValueError) as exc:
            logger.error("%s: cannot keep failed request %s in %s: %s", self.name, request.url, self.failures_path, exc)
        logger.error("%s: request failed for good: %s %s (%s); it will be retried next run", self.name, request.method, request.url, reason)
