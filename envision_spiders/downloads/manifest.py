"""``manifest.json`` of a record's download folder, and the download log of a source.

The manifest is what the conversion tool (envision-eye-actionable) reads beside the
files; it is rewritten atomically (``storage.atomic_write_json``) after every file, so
a kill leaves the previous complete manifest. Fields::

    manifest_version, source, source_id, doi, url, title, label, prob_eye_imaging,
    threshold, record_path, status (complete | incomplete | skipped), reason,
    created_at, updated_at, totals {files, downloaded, verified_existing, failed,
    skipped, pending, expected_bytes, bytes_on_disk},
    files: [{name (relative path), original_name, url, file_id, expected_size,
             size_on_disk, checksum_expected, checksum_computed, algorithm,
             status (downloaded | verified-existing | failed | skipped | pending),
             reason, attempts, resumed_from, restarts, started_at, finished_at,
             mtime_ns}]

URLs are written through ``safety.redact_url``; credentials never reach it.

The log, ``data/downloads/{source}/download-log.jsonl``, gets one line per event
(queued, started, resumed, restart, retry, rate_limited, downloaded,
verified-existing, failed, skipped, record_done), appended and fsynced.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from envision_spiders.storage import append_jsonl, atomic_write_json, read_json
from envision_spiders.textutil import utcnow_iso

from .safety import MANIFEST_NAME, redact_url
from .transfer import DOWNLOADED, FAILED, PENDING, SKIPPED, VERIFIED_EXISTING, FileJob, FileOutcome

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1
LOG_NAME = "download-log.jsonl"


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _unchanged_on_disk(job: FileJob, prev: dict[str, Any]) -> bool:
    try:
        st = job.path.stat()
    except OSError:
        return False
    return st.st_size == prev.get("size_on_disk") and st.st_mtime_ns == prev.get("mtime_ns")


class RecordManifest:
    def __init__(self, folder: Path, header: dict[str, Any]) -> None:
        self.folder = folder
        self.path = folder / MANIFEST_NAME
        previous = read_json(self.path) if self.path.exists() else None
        self.previous: dict[str, dict[str, Any]] = {}
        created = utcnow_iso()
        if isinstance(previous, dict):
            created = previous.get("created_at") or created
            for f in previous.get("files") or []:
                if isinstance(f, dict) and isinstance(f.get("name"), str):
                    self.previous[f["name"]] = f
        self.data: dict[str, Any] = {"manifest_version": MANIFEST_VERSION, **header, "created_at": created}
        self.files: list[dict[str, Any]] = []
        self._index: dict[str, dict[str, Any]] = {}

    def previous_entry(self, name: str) -> dict[str, Any] | None:
        return self.previous.get(name)

    def add_file(self, job: FileJob | None, *, name: str, original_name: Any, url: Any, file_id: Any,
                 expected_size: int | None, checksum_expected: str | None, algorithm: str | None,
                 status: str = PENDING, reason: str | None = None) -> dict[str, Any]:
        entry = {
            "name": name,
            "original_name": original_name if isinstance(original_name, str) else None,
            "url": redact_url(url) if isinstance(url, str) else None,
            "file_id": file_id,
            "expected_size": expected_size,
            "size_on_disk": None,
            "checksum_expected": checksum_expected,
            "checksum_computed": None,
            "algorithm": algorithm,
            "status": status,
            "reason": reason,
            "attempts": 0,
            "resumed_from": 0,
            "restarts": 0,
            "started_at": None,
            "finished_at": None,
            "mtime_ns": None,
        }
        prev = self.previous.get(name)
        if status == PENDING and prev and prev.get("status") in (DOWNLOADED, VERIFIED_EXISTING):
            # until this run looks at it again, what the last run knew stands: a file
            # verified then and untouched since (size and time) is reported verified,
            # never pending
            for key in ("size_on_disk", "checksum_computed", "mtime_ns", "finished_at"):
                entry[key] = prev.get(key)
            if job is not None and _unchanged_on_disk(job, prev):
                entry["status"] = VERIFIED_EXISTING
        self.files.append(entry)
        self._index[name] = entry
        return entry

    def record_outcome(self, job: FileJob, outcome: FileOutcome) -> dict[str, Any]:
        entry = self._index[job.name]
        entry.update(
            {
                "status": outcome.status,
                "reason": outcome.reason,
                "size_on_disk": outcome.size_on_disk,
                "checksum_computed": outcome.computed,
                "algorithm": job.hash_algorithm if outcome.computed else job.algorithm,
                "attempts": outcome.attempts,
                "resumed_from": outcome.resumed_from,
                "restarts": outcome.restarts,
                "started_at": _iso(outcome.started_at),
                "finished_at": _iso(outcome.finished_at),
                "mtime_ns": None,
            }
        )
        if outcome.status in (DOWNLOADED, VERIFIED_EXISTING):
            try:
                entry["mtime_ns"] = job.path.stat().st_mtime_ns
            except OSError:
                pass
        return entry

    def totals(self) -> dict[str, Any]:
        counts = Counter(f["status"] for f in self.files)
        expected = [f["expected_size"] for f in self.files if isinstance(f.get("expected_size"), int)]
        return {
            "files": len(self.files),
            "downloaded": counts[DOWNLOADED],
            "verified_existing": counts[VERIFIED_EXISTING],
            "failed": counts[FAILED],
            "skipped": counts[SKIPPED],
            "pending": counts[PENDING],
            "expected_bytes": sum(expected) if expected else None,
            "bytes_on_disk": sum(f["size_on_disk"] or 0 for f in self.files if f["status"] in (DOWNLOADED, VERIFIED_EXISTING)),
        }

    def status(self) -> str:
        t = self.totals()
        if t["failed"] or t["pending"]:
            return "incomplete"
        if t["skipped"] == t["files"]:  # every file skipped, or none listed
            return "skipped"
        return "complete"

    def save(self, reason: str | None = None) -> None:
        self.data["status"] = self.status()
        self.data["reason"] = reason
        self.data["updated_at"] = utcnow_iso()
        self.data["totals"] = self.totals()
        self.data["files"] = self.files
        try:
            atomic_write_json(self.path, self.data)
        except OSError as exc:
            logger.error("Cannot write %s: %s", self.path, exc)


class EventLog:
    def __init__(self, downloads_dir: Path) -> None:
        self.root = downloads_dir

    def path(self, source: str) -> Path:
        return self.root / source / LOG_NAME

    def append(self, source: str, source_id: str, event: str, name: str | None = None, **detail: Any) -> None:
        line = {"time": utcnow_iso(), "source_id": source_id, "event": event}
        if name is not None:
            line["name"] = name
        line.update({k: v for k, v in detail.items() if v is not None})
        try:
            append_jsonl(self.path(source), line)
        except OSError as exc:
            logger.error("Cannot append to %s: %s", self.path(source), exc)
