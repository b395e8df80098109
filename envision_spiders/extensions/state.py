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
  that found it), so a spider can skip records that did not change, and
  :meth:`CrawlState.saved`: the whole saved record, read from disk once per record
  however many components ask (archive peek, classification, persistence);
* the search terms that found each record this run (:meth:`CrawlState.found`) and
  their one merge rule (:func:`merged_terms`); likewise the *channels* that found it
  (``terms``, or another way of searching such as DataCite's ``funder`` search), kept
  as ``provenance.found_by`` by the rule of :func:`merged_channels`, and counted per
  run by :meth:`CrawlState.channel_counts`. A record being fetched gets them when
  the persistence pipeline writes it (:meth:`CrawlState.record_saved`); a saved record
  that stays as it is (unchanged, or already written this run) gets a new term
  written into its file at once. What a kill can lose is what was in flight: the
  terms of records still being fetched (the records themselves are not saved either);
  terms of a record whose fetch failed for good are merged into its saved copy when
  the spider closes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import weakref
from collections import OrderedDict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import signals

from envision_spiders import paths
from envision_spiders.storage import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    iter_records,
    read_json,
    read_jsonl,
    record_path,
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


# Saved records kept in memory after a read (components ask for the one in the pipelines).
SAVED_CACHE_SIZE = 1024
# An incremental run looks back this much further than the last successful run,
# for records indexed late and clocks that disagree.
SINCE_OVERLAP = timedelta(days=1)


def mark_text(mark: Any) -> str:
    """The incremental mark in the words the log uses at the end of the run that sets it
    and at the start of the next: ``incremental mark 2026-12-07T02:00:00Z (changes since
    2026-12-06)``."""
    dt = parse_datetime(mark)
    if dt is None:
        return "no incremental mark yet (a full run)"
    return f"incremental mark {iso(dt)} (changes since {dt - SINCE_OVERLAP:%Y-%m-%d})"
# A state for crawlers that run without the extension (components tested on their own).
_DETACHED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def terms_hash(terms: list[str]) -> str:
    return hashlib.sha256("\n".join(terms).encode("utf-8")).hexdigest()[:16]


def merged_terms(first: list[str], others: list[str] | None) -> list[str]:
    """``provenance.search_terms`` of a record written now: ``first`` (the terms its item
    was made with, in the order they found it), then every other term (found since, or
    in earlier runs), sorted. A term that finds a record already written is appended."""
    terms = list(first)
    return terms + sorted(t for t in set(others or []) if t not in terms)


# The ways a spider can find a record, in the order ``provenance.found_by`` lists them:
# the search terms, and DataCite's search by funding references (spider ``datacite``).
CHANNELS = ("terms", "funder")


def merged_channels(*lists: list[str] | None) -> list[str]:
    """``provenance.found_by``: every channel of ``lists`` (this run's and earlier
    runs'), once, in the order of CHANNELS (others after them, sorted)."""
    found = {c for lst in lists for c in (lst or []) if isinstance(c, str) and c}
    return [c for c in CHANNELS if c in found] + sorted(found - set(CHANNELS))


def saved_channels(provenance: Any) -> list[str]:
    """``found_by`` of a saved record's provenance; a record saved before channels were
    kept was found by its search terms."""
    prov = provenance if isinstance(provenance, dict) else {}
    found_by = prov.get("found_by")
    if isinstance(found_by, list):
        return merged_channels(found_by)
    return ["terms"] if prov.get("search_terms") else []


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
        self.data_dir = paths.data_dir(crawler.settings)
        self.started_at = utcnow_iso()
        self.index: dict[str, dict[str, Any]] = {}
        self.terms: dict[str, list[str]] = {}  # safe id -> terms that found it this run, in order
        self.channels: dict[str, list[str]] = {}  # safe id -> channels that found it this run
        self.settled: set[str] = set()  # safe ids whose saved copy stays this run (terms go into it)
        self._cache: OrderedDict[str, tuple[tuple[int, int], dict]] = OrderedDict()
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
        """The crawl's state (the extension); a crawler without it (a component used on
        its own) gets one of its own, made once."""
        state = crawler.get_extension(CrawlState)
        if state is None:
            state = _DETACHED.get(crawler)
            if state is None:
                state = _DETACHED[crawler] = CrawlState(crawler)
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
                "found_by": saved_channels(prov),
            }
        self.crawler.stats.set_value("envision/records/on_disk_at_start", len(self.index))

    def spider_closed(self, spider: Spider, reason: str) -> None:
        self.merge_unsaved_terms()
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
        # an unreachable source says why among the spider's problems
        reasons = [] if reason in ("finished", "unreachable") else [f"the crawl did not finish ({reason})"]
        if self.new_failures:
            reasons.append(f"{self.new_failures} requests failed")
        reasons += getattr(spider, "incomplete_reasons", lambda: ["it is not a source spider"])()
        if not reasons:
            atomic_write_json(
                self.state_path,
                {"last_success": self.started_at, "terms_sha": getattr(spider, "terms_sha", None)},
            )
            logger.info("%s: run complete; %s", self.name, mark_text(self.started_at))
        else:
            logger.warning("%s: this run did not move the incremental mark (%s); it stays: %s",
                           self.name, "; ".join(reasons), mark_text(self._mark.get("last_success")))

    # ---------------------------------------------------------------- API for spiders
    def last_success(self, terms_sha: str | None) -> datetime | None:
        """Start of the last successful run over the same terms, or None."""
        if not self._mark.get("last_success"):
            return None
        if terms_sha and self._mark.get("terms_sha") not in (None, terms_sha):
            logger.info("%s: the search terms changed since the last run; searching everything", self.name)
            return None
        return parse_datetime(self._mark["last_success"])

    def saved_modified(self, source_id: str) -> Any:
        """The source's modified date of the saved record (from the index), or None."""
        entry = self.index.get(safe_id(source_id))
        return entry.get("source_modified") if entry else None

    def is_unchanged(self, source_id: str, source_modified: Any) -> bool:
        """True when the record is on disk with this very modified date."""
        saved = self.saved_modified(source_id)
        return bool(saved and source_modified) and saved == iso(source_modified)

    # ---------------------------------------------------------------- saved records
    def saved(self, source_id: str) -> dict[str, Any] | None:
        """The saved record (None when there is none), parsed from disk once while its
        file stays as it was (a ``stat`` tells; another process may have written it)
        and it stays among the last SAVED_CACHE_SIZE records asked for. Read-only for
        callers."""
        key = safe_id(source_id)
        path = record_path(self.data_dir, self.name, source_id)
        try:
            stamp = _stamp(path)
        except OSError:
            self._cache.pop(key, None)
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] == stamp:
            self._cache.move_to_end(key)
            return cached[1]
        record = read_json(path)
        if not isinstance(record, dict):
            return None
        self._remember(key, path, record, stamp)
        return record

    def _remember(self, key: str, path: Path, record: dict, stamp: tuple[int, int] | None = None) -> None:
        try:
            stamp = stamp or _stamp(path)
        except OSError:
            return
        self._cache[key] = (stamp, record)
        self._cache.move_to_end(key)
        while len(self._cache) > SAVED_CACHE_SIZE:
            self._cache.popitem(last=False)

    def record_saved(self, source_id: str, record: dict[str, Any]) -> None:
        """The persistence pipeline wrote ``record``: later terms go straight into it."""
        key = safe_id(source_id)
        prov = record.get("provenance") or {}
        self.index[key] = {"source_modified": prov.get("source_modified"), "search_terms": list(prov.get("search_terms") or []),
                           "found_by": saved_channels(prov)}
        self._remember(key, record_path(self.data_dir, self.name, source_id), record)
        self.settled.add(key)

    # ---------------------------------------------------------------- search terms
    def found(self, source_id: str, term: str | None, channel: str = "terms") -> bool:
        """``term`` (of ``channel``: ``terms``, or ``funder`` with no term) found
        ``source_id``; True the first time this run. A record whose saved copy stays as
        it is gets a new term or channel written into it now."""
        key = safe_id(source_id)
        terms = self.terms.get(key)
        first = terms is None
        if first:
            terms = self.terms[key] = []
        channels = self.channels.setdefault(key, [])
        new = False
        if term and term not in terms:
            terms.append(term)
            new = True
        if channel not in channels:
            channels.append(channel)
            new = True
        if new and key in self.settled:
            self._merge_terms(source_id)
        return first

    def channels_found(self, source_id: str) -> list[str]:
        """The channels that found this record this run (CHANNELS order)."""
        return merged_channels(self.channels.get(safe_id(source_id)))

    def channel_counts(self) -> dict[str, int]:
        """Records found this run by each combination of channels: ``{"terms_only": n,
        "funder_only": n, "both": n}`` for the two channels of CHANNELS."""
        counts = {"terms_only": 0, "funder_only": 0, "both": 0}
        for channels in self.channels.values():
            terms, funder = "terms" in channels, "funder" in channels
            if terms and funder:
                counts["both"] += 1
            elif terms:
                counts["terms_only"] += 1
            elif funder:
                counts["funder_only"] += 1
        return counts

    def terms_found(self, source_id: str) -> list[str]:
        """The terms that found this record this run, in the order they did."""
        return list(self.terms.get(safe_id(source_id), []))

    def keep_saved(self, source_id: str) -> None:
        """The saved copy stays as it is this run (unchanged): this run's terms go into it
        now, and any later ones when they come."""
        self.settled.add(safe_id(source_id))
        self._merge_terms(source_id)

    def _merge_terms(self, source_id: str) -> None:
        key = safe_id(source_id)
        entry = self.index.get(key)
        if entry is None:
            return  # not on disk: its item (if any) takes the terms when it is written
        missing = [t for t in self.terms.get(key, []) if t not in entry["search_terms"]]
        channels = self.channels.get(key, [])
        new_channels = [c for c in channels if c not in entry.get("found_by", [])]
        if not missing and not new_channels:
            return
        record = self.saved(source_id)
        if record is None:
            return
        prov = record.setdefault("provenance", {})
        terms = list(prov.get("search_terms") or [])
        prov["search_terms"] = terms + [t for t in missing if t not in terms]
        if new_channels:
            prov["found_by"] = merged_channels(saved_channels(prov), channels)
        path = record_path(self.data_dir, self.name, source_id)
        try:
            atomic_write_json(path, record)
        except OSError as exc:
            self.crawler.stats.inc_value("envision/persist/errors")
            logger.error("%s: cannot add the terms %s to %s: %s", self.name, missing, path, exc)
            return
        entry["search_terms"] = list(prov["search_terms"])
        entry["found_by"] = saved_channels(prov)
        self._remember(key, path, record)
        if missing:
            self.crawler.stats.inc_value("envision/records/terms_merged", len(missing))

    def merge_unsaved_terms(self) -> None:
        """At the end: terms of saved records whose refresh never arrived (its fetch
        failed for good) go into their saved copies."""
        for key in list(self.terms):
            if key not in self.settled and key in self.index:
                self.settled.add(key)
                self._merge_terms(key)

    def record_failure(self, request: Request, reason: str) -> None:
        self.new_failures += 1
        self.crawler.stats.inc_value("envision/failures")
        try:
            append_jsonl(self.failures_path, request_to_record(request, reason))
        except (OSError, TypeError, ValueError) as exc:
            logger.error("%s: cannot keep failed request %s in %s: %s", self.name, request.url, self.failures_path, exc)
        logger.error("%s: request failed for good: %s %s (%s); it will be retried next run", self.name, request.method, request.url, reason)
