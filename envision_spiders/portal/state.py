"""``data/portal/posted.json``: what each portal already has, and the run lock.

::

    {"version": 1,
     "portals": {"https://portal.example.org": {"datasets": {
         "https://doi.org/10.5281/zenodo.123": {
             "source": "zenodo", "source_id": "124", "digest": "sha256:...",
             "result": "updated", "status": 200, "message": "Dataset updated",
             "created": 1700000000, "datasetId": "...", "canonicalId": "...",
             "first_posted_at": "...", "posted_at": "..."}}}}}

One entry per portal dataset, keyed by the lower-case ``externalUrl`` the portal matches
on, under the portal's address (a staging portal and the production one each get every
record). A record whose body digest equals its entry's is not posted again. The file is
written atomically (``storage.atomic_write_json``) every few successful posts and at the
end of a run; a kill in between loses at most those few marks, and those records are
then sent again next run, which the portal takes as updates of the same datasets. An
unreadable file is moved aside (``posted.json.unreadable-<time>``), never overwritten.

The API key is never part of this file: portals are keyed by their address, with any
user name, password or credential-like query value removed.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from envision_spiders.downloads.runner import RecordLock
from envision_spiders.downloads.safety import redact_url
from envision_spiders.storage import atomic_write_json, read_json
from envision_spiders.textutil import utcnow_iso

from .body import PortalBody

logger = logging.getLogger(__name__)

STATE_VERSION = 1
STATE_NAME = "posted.json"
LOCK_NAME = ".post.lock"
SAVE_EVERY = 20  # successful posts between two saves
SAVE_INTERVAL = 5.0  # seconds between two saves at most


def portal_key(url: str) -> str:
    """A portal's address as ``posted.json`` names it (no credentials, no trailing /)."""
    return (redact_url(url.strip()) or "").rstrip("/")


class PostedState:
    def __init__(self, data_dir: str | Path, portal: str, *, read_only: bool = False) -> None:
        self.read_only = read_only  # a dry run: never moves, never writes
        self.folder = Path(data_dir) / "portal"
        self.path = self.folder / STATE_NAME
        self.portal = portal_key(portal)
        self.data = self._load()
        portals = self.data.setdefault("portals", {})
        self.datasets: dict[str, dict[str, Any]] = portals.setdefault(self.portal, {}).setdefault("datasets", {})
        self.by_record = {(e.get("source"), str(e.get("source_id"))): url for url, e in self.datasets.items() if isinstance(e, dict)}
        self._unsaved = 0
        self._saved_at = time.monotonic()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": STATE_VERSION, "portals": {}}
        data = read_json(self.path)
        if isinstance(data, dict) and isinstance(data.get("portals"), dict):
            return data
        if self.read_only:
            logger.error("%s is unreadable; this dry run treats every record as never posted", self.path)
            return {"version": STATE_VERSION, "portals": {}}
        aside = self.path.with_name(f"{STATE_NAME}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            raise RuntimeError(f"{self.path} is unreadable and cannot be moved aside ({exc}); fix or remove it") from exc
        logger.error("%s was unreadable; moved to %s. Every record is sent again (the portal updates the datasets it "
                     "has), and `created` dates kept from earlier posts are lost.", self.path, aside)
        return {"version": STATE_VERSION, "portals": {}}

    def get(self, url: str) -> dict[str, Any] | None:
        entry = self.datasets.get(url.lower())
        return entry if isinstance(entry, dict) else None

    def url_for(self, source: str, source_id: str) -> str | None:
        """The ``externalUrl`` a record was last posted under."""
        return self.by_record.get((source, str(source_id)))

    def unchanged(self, body: PortalBody) -> bool:
        entry = self.get(body.external_url)
        return entry is not None and entry.get("digest") == body.digest

    def mark(self, body: PortalBody, result: str, status: int, message: str) -> None:
        previous = self.get(body.external_url) or {}
        if previous.get("source") and (previous.get("source"), str(previous.get("source_id"))) != (body.source, body.source_id):
            self.by_record.pop((previous.get("source"), str(previous.get("source_id"))), None)
        now = utcnow_iso()
        self.datasets[body.external_url] = {
            "source": body.source,
            "source_id": body.source_id,
            "digest": body.digest,
            "result": result,
            "status": status,
            "message": message[:500],
            "created": body.created,
            "datasetId": body.payload.get("datasetId"),
            "canonicalId": body.payload.get("canonicalId"),
            "first_posted_at": previous.get("first_posted_at") or now,
            "posted_at": now,
        }
        self.by_record[(body.source, body.source_id)] = body.external_url
        self._unsaved += 1
        if self._unsaved >= SAVE_EVERY or time.monotonic() - self._saved_at >= SAVE_INTERVAL:
            self.save()

    def save(self) -> None:
        if self.read_only or (not self._unsaved and self.path.exists()):
            return
        self.data["version"] = STATE_VERSION
        atomic_write_json(self.path, self.data)
        self._unsaved = 0
        self._saved_at = time.monotonic()


def run_lock(data_dir: str | Path) -> RecordLock:
    """One ``scrapy post`` at a time per data folder (a non-blocking ``flock``)."""
    return RecordLock(Path(data_dir) / "portal", LOCK_NAME)
