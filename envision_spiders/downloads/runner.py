"""A download run: candidates -> plans -> verified files, manifests and a log.

Both consumers of the queue use this: ``scrapy download`` (``run()`` over the queue
and the results on disk) and a crawl with ``DOWNLOAD_ENABLED`` (the queue pipeline
``submit()``s each record it queues as a task on the crawl's event loop, and waits
for them when the spider closes, so the crawl itself never waits for a transfer).

Per record:

1. the plan: the saved record (``data/metadata/{source}/{safe id}.json``) gives the
   files; each gets a safe nested path (``safety.assign_paths``), its URL is checked
   (``safety.check_url``), its checksum parsed; a record whose known size is above
   ``DOWNLOAD_MAX_BYTES`` is skipped whole (sizes a record does not state are capped
   while streaming);
2. a lock (``flock`` on ``.envision-download.lock``) so a crawl and a ``scrapy
   download`` never write the same record at once (the second one skips it);
3. each file: already there and verified -> ``verified-existing``; else
   ``transfer.FileTransfer`` (resume, verify, rename); files run concurrently, limited
   per host (its pace) and overall (``DOWNLOAD_CONCURRENCY``);
4. the manifest is rewritten atomically as files finish; every event goes to the
   source's log; a record with no failed file leaves the queue.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from envision_spiders import paths
from envision_spiders.credentials import API_SETTINGS, FILES_NEED_CREDENTIALS, Credentials, credentials_for
from envision_spiders.politeness import Backoff, Pace
from envision_spiders.review import Review
from envision_spiders.selection import AWAITING_REVIEW, BELOW_THRESHOLD, DUPLICATE, reason_kind, select_records
from envision_spiders.storage import read_json, record_path, safe_id

from .manifest import EventLog, RecordManifest
from .progress import BaseProgress, human_bytes
from .queue import DownloadQueue, classification_of, read_results
from .safety import LOCK_NAME, UnsafeURL, assign_paths, check_url, redact_url
from .transfer import (
    CREDENTIAL_HINTS,
    DOWNLOADED,
    FAILED,
    SKIPPED,
    VERIFIED_EXISTING,
    FileJob,
    FileOutcome,
    FileTransfer,
    HostGates,
    RecordBudget,
    TransferPolicy,
    free_bytes,
    parse_checksum,
    verify_existing,
)

logger = logging.getLogger(__name__)

# The pace of file downloads per source (see docs/sources/): downloads share the
# API's documented limits where the files come from the API host.
DOWNLOAD_PACES: dict[str, Pace] = {
    # guests: 60 requests a minute, 2000 an hour, files served by the API host
    "zenodo": Pace(1.0, ((60, 60.0), (2000, 3600.0)), concurrency=2),
    # "no automatic rate limiting", at most a request a second recommended
    "figshare": Pace(1.0, (), concurrency=2),
    # about 100 downloads an hour (clock-hour window, RateLimit-* headers on 429)
    "dryad": Pace(2.0, ((100, 3600.0),), concurrency=2),
    # 100 requests an hour anonymous
    "osf": Pace(1.0, ((100, 3600.0),), concurrency=1),
    # unpublished limits, downloads throttled harder than the API
    "kaggle": Pace(2.0, (), concurrency=1),
}
DEFAULT_PACE = Pace(1.0, (), concurrency=2)


@dataclass
class DownloadConfig:
    data_dir: Path
    results_dir: Path
    threshold: float = 0.80
    max_bytes: int = 100 * 1024**3  # per record; 0 = no cap
    min_free_bytes: int = 1024**3
    concurrency: int = 8
    scale: float = 1.0
    retries: int = 5
    backoff_base: float = 2.0
    backoff_max: float = 300.0
    ratelimit_retries: int = 8
    ratelimit_max_wait: float = 3600.0
    timeout: float = 60.0  # seconds without a byte before an attempt is given up (and the grace of min_speed)
    max_unknown_bytes: int = 16 * 1024**3  # a body whose length neither the record nor the server states
    min_speed: float = 16384.0  # bytes a second an attempt must average after `timeout` (0: no deadline)
    requires_review: bool = False  # only records a curator accepted (DOWNLOAD_REQUIRES_REVIEW)
    user_agent: str = "envision-spiders"
    api_roots: dict[str, str] = field(default_factory=dict)
    free_space: Callable[[Path], int] = free_bytes  # bytes free on the disk of a folder (tests give their own)

    @property
    def downloads_dir(self) -> Path:
        return self.data_dir / "downloads"

    @classmethod
    def from_settings(cls, settings: Any, threshold: float | None = None) -> DownloadConfig:
        return cls(
            data_dir=paths.data_dir(settings),
            results_dir=paths.results_dir(settings),
            threshold=threshold if threshold is not None else settings.getfloat("DOWNLOAD_THRESHOLD", 0.80),
            max_bytes=settings.getint("DOWNLOAD_MAX_BYTES", 100 * 1024**3),
            min_free_bytes=settings.getint("DOWNLOAD_MIN_FREE_BYTES", 1024**3),
            concurrency=settings.getint("DOWNLOAD_CONCURRENCY", 8),
            scale=settings.getfloat("POLITENESS_SCALE", 1.0),
            retries=settings.getint("RETRY_TIMES", 5),
            backoff_base=settings.getfloat("RETRY_BACKOFF_BASE", 2.0),
            backoff_max=settings.getfloat("RETRY_BACKOFF_MAX", 300.0),
            ratelimit_retries=settings.getint("RATELIMIT_MAX_RETRIES", 8),
            ratelimit_max_wait=settings.getfloat("RATELIMIT_MAX_WAIT", 3600.0),
            timeout=settings.getfloat("DOWNLOAD_TIMEOUT", 60.0),
            max_unknown_bytes=settings.getint("DOWNLOAD_MAX_UNKNOWN_BYTES", 16 * 1024**3),
            min_speed=settings.getfloat("DOWNLOAD_MIN_SPEED", 16384.0),
            requires_review=settings.getbool("DOWNLOAD_REQUIRES_REVIEW", False),
            user_agent=settings.get("USER_AGENT") or "envision-spiders",
            api_roots={s: settings.get(name) for s, name in API_SETTINGS.items() if settings.get(name)},
        )


@dataclass
class PlannedFile:
    entry: dict[str, Any]  # manifest fields known before any transfer
    job: FileJob | None  # None when the file is skipped at planning


@dataclass
class RecordPlan:
    source: str
    source_id: str
    folder: Path
    header: dict[str, Any]
    files: list[PlannedFile]
    problem: str | None = None  # the record cannot be downloaded at all (and why)
    skip_reason: str | None = None  # every file is skipped (and why)

    @property
    def expected_bytes(self) -> int:
        return sum(p.job.expected_size or 0 for p in self.files if p.job is not None)


@dataclass
class RecordReport:
    source: str
    source_id: str
    status: str  # complete | incomplete | skipped | busy | missing
    counts: Counter = field(default_factory=Counter)
    reason: str | None = None
    bytes: int = 0


def _as_size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def plan_record(config: DownloadConfig, candidate: Mapping[str, Any]) -> RecordPlan:
    """Everything decided before any byte moves (also what ``--dry-run`` shows)."""
    source = str(candidate["source"])
    sid = str(candidate["source_id"])
    folder = config.downloads_dir / safe_id(source) / safe_id(sid)
    rpath = record_path(config.data_dir, source, sid)
    record = read_json(rpath) if rpath.exists() else None
    header = {
        "source": source,
        "source_id": sid,
        "doi": None,
        "url": None,
        "title": None,
        "label": candidate.get("label"),
        "prob_eye_imaging": candidate.get("prob_eye_imaging"),
        "threshold": config.threshold,
        "record_path": str(rpath),
    }
    if not isinstance(record, dict):
        return RecordPlan(source, sid, folder, header, [], problem=f"no saved record at {rpath}")
    header.update({"doi": record.get("doi"), "url": redact_url(record.get("url")), "title": record.get("title")})
    raw_files = [f for f in (record.get("files") or []) if isinstance(f, dict)]
    names = assign_paths((f.get("name"), f"file_{f.get('file_id') or i + 1}") for i, f in enumerate(raw_files))
    planned: list[PlannedFile] = []
    for f, name in zip(raw_files, names):
        algo, digest = parse_checksum(f.get("checksum"))
        size = _as_size(f.get("size_bytes"))
        entry = {
            "name": name,
            "original_name": f.get("name"),
            "url": f.get("url"),
            "file_id": f.get("file_id"),
            "expected_size": size,
            "checksum_expected": f"{algo}:{digest}" if digest else None,
            "algorithm": algo,
        }
        try:
            url = check_url(f.get("url"))
        except UnsafeURL as exc:
            planned.append(PlannedFile({**entry, "status": SKIPPED, "reason": f"refused URL: {exc}"}, None))
            continue
        job = FileJob(source, sid, name, str(f.get("name")), url, folder, size, algo, digest, f.get("file_id"))
        planned.append(PlannedFile(entry, job))
    plan = RecordPlan(source, sid, folder, header, planned)
    if not raw_files:
        plan.skip_reason = "the record lists no downloadable files"
    elif config.max_bytes and plan.expected_bytes > config.max_bytes:
        plan.skip_reason = (
            f"the record holds {plan.expected_bytes} bytes ({human_bytes(plan.expected_bytes)}), above "
            f"DOWNLOAD_MAX_BYTES ({config.max_bytes} bytes, {human_bytes(config.max_bytes)})"
        )
        for p in plan.files:
            if p.job is not None:
                p.entry = {**p.entry, "status": SKIPPED, "reason": plan.skip_reason}
                p.job = None
    return plan


def collect_candidates(config: DownloadConfig, sources: Iterable[str], queue: DownloadQueue,
                      review: Review | None = None, counts: Counter | None = None) -> list[dict[str, Any]]:
    """Records to download: those :func:`envision_spiders.selection.select_records`
    selects with the curators' decisions (``review``, default: the ledger under
    ``config.data_dir``; ``DOWNLOAD_REQUIRES_REVIEW``), queued ones first (a failure of an
    earlier run is retried first), each queued too so that a failure is retried next run.

    A queued record is judged by its results row as it is now, not by what the crawl
    that queued it knew: a record its results now mark as a duplicate, or as no longer
    EYE_IMAGING, or that a curator rejected, leaves the queue; one below this run's
    threshold or waiting for a curator stays queued; one without a results row yet (a
    crawl queued it and nothing classified since) waits. ``counts`` (when given) gets
    ``rejected`` (records of these sources a curator rejected) and ``awaiting_review``
    (records held back for a curator)."""
    sources = list(sources)
    review = review if review is not None else Review.load(config.data_dir, config.results_dir)
    counts = counts if counts is not None else Counter()
    selection = select_records(config.results_dir, sources, config.threshold, review, config.requires_review)
    counts["rejected"] += len(review.rejected(sources))
    counts["awaiting_review"] += selection.counts[AWAITING_REVIEW]
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    listed: dict[str, set[str]] = {}
    left: Counter = Counter()  # queued records not taken this run, by what happens to them
    for entry in queue.entries(sources):
        key = (str(entry["source"]), str(entry["source_id"]))
        if key in seen:
            continue
        seen.add(key)
        why = selection.why_not(key)
        if why is None:
            out.append(_candidate(key, selection.rows[key]))
            continue
        decision = review.standing(f"{key[0]}:{key[1]}")
        kind = reason_kind(why) if key in selection.refused else None
        if decision is not None and decision.decision == "reject":
            what = "leave the queue: a curator rejected them"
            queue.remove(*key)
        elif kind in (BELOW_THRESHOLD, AWAITING_REVIEW):
            what = ("stay queued: below this run's threshold" if kind == BELOW_THRESHOLD
                    else "stay queued: waiting for a curator")
        elif key in selection.refused or key[1] in listed.setdefault(key[0], _all_results_ids(config, key[0])):
            what = ("leave the queue: their results mark them as duplicates" if kind == DUPLICATE
                    else "leave the queue: their results no longer say EYE_IMAGING")
            queue.remove(*key)
        else:
            what = "stay queued: no results row yet (`scrapy classify` writes it, with the duplicates marked)"
        left[what] += 1
        logger.debug("download queue: %s %s: %s (%s)", key[0], key[1], what, why)
    for what, n in sorted(left.items()):
        logger.info("download: %d queued records %s", n, what)
    for key, row in selection.rows.items():
        if key in seen:
            continue
        seen.add(key)
        label, prob = classification_of(row)
        queue.add(key[0], key[1], label=label, prob=prob, threshold=config.threshold, origin="results")
        out.append(_candidate(key, row))
    if counts["rejected"] or counts["awaiting_review"]:
        logger.info("download: %d records rejected by curators are not downloaded; %d wait for a curator%s",
                    counts["rejected"], counts["awaiting_review"],
                    " (DOWNLOAD_REQUIRES_REVIEW is on)" if config.requires_review else "")
    return out


def _candidate(key: tuple[str, str], row: Mapping[str, Any]) -> dict[str, Any]:
    label, prob = classification_of(row)
    return {"source": key[0], "source_id": key[1], "label": label, "prob_eye_imaging": prob}


def _all_results_ids(config: DownloadConfig, source: str) -> set[str]:
    """Ids of every classified record of a source (``{source}_all_results.json``)."""
    return {str(r["source_id"]) for r in read_results(config.results_dir / f"{source}_all_results.json")}


class RecordLock:
    """A non-blocking ``flock`` on the record's lock file (or on ``name`` in ``folder``:
    ``scrapy post`` locks its state folder with it)."""

    def __init__(self, folder: Path, name: str = LOCK_NAME) -> None:
        self.path = folder / name
        self.fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class DownloadRunner:
    def __init__(
        self,
        config: DownloadConfig,
        *,
        progress: BaseProgress | None = None,
        stats: Callable[[str, int], None] | None = None,
        credentials: Mapping[str, Credentials] | None = None,
    ) -> None:
        self.config = config
        self.progress = progress or BaseProgress()
        self._stats = stats
        self.counts: Counter = Counter()
        self.queue = DownloadQueue(config.data_dir)
        self.log = EventLog(config.downloads_dir)
        self._credentials: dict[str, Credentials] = dict(credentials or {})
        self._told_no_credentials: set[str] = set()
        self.session: aiohttp.ClientSession | None = None
        self.gates: HostGates | None = None
        self.policy = TransferPolicy(
            retries=config.retries,
            ratelimit_retries=config.ratelimit_retries,
            max_wait=config.ratelimit_max_wait,
            backoff=Backoff(base=config.backoff_base * config.scale, cap=config.backoff_max * max(config.scale, 0.0)),
            default_429_wait=max(1.0, 60.0 * config.scale),
            min_free_bytes=config.min_free_bytes,
            max_unknown_bytes=config.max_unknown_bytes,
            grace=config.timeout,
            min_speed=config.min_speed,
            free_space=config.free_space,
            user_agent=config.user_agent,
        )
        self._tasks: set[asyncio.Task] = set()
        self._active: set[tuple[str, str]] = set()
        self._records: asyncio.Semaphore | None = None

    # ---------------------------------------------------------------- lifecycle
    async def open(self) -> None:
        if self.session is not None:
            return
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(60.0, self.config.timeout), sock_read=self.config.timeout)
        connector = aiohttp.TCPConnector(limit=max(1, self.config.concurrency) * 2)
        # auto_decompress off: the bytes on disk are the bytes the checksum describes
        self.session = aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False)
        self.gates = HostGates(DOWNLOAD_PACES, DEFAULT_PACE, self.config.scale, self.config.concurrency)
        self._records = asyncio.Semaphore(max(2, self.config.concurrency * 2))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
        self.progress.close()

    async def __aenter__(self) -> DownloadRunner:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def stat(self, key: str, n: int = 1) -> None:
        self.counts[key] += n
        if self._stats is not None:
            self._stats(f"envision/download/{key}", n)

    def credentials_wait(self, source: str) -> str | None:
        """Why the files of ``source`` wait for credentials (not a failure), or None."""
        if source in FILES_NEED_CREDENTIALS and not self.credentials(source).configured:
            return (f"{source} serves files only to authenticated clients and no credentials are set "
                    f"({CREDENTIAL_HINTS[source]})")
        return None

    def credentials(self, source: str) -> Credentials:
        creds = self._credentials.get(source)
        if creds is None:
            creds = self._credentials[source] = credentials_for(source, self.config.api_roots.get(source))
        return creds

    # ---------------------------------------------------------------- runs
    async def run(self, candidates: Iterable[Mapping[str, Any]]) -> list[RecordReport]:
        await self.open()
        plans = [plan_record(self.config, c) for c in candidates]
        for plan in plans:
            self._plan_progress(plan)
        return list(await asyncio.gather(*(self._guarded(plan) for plan in plans)))

    def _plan_progress(self, plan: RecordPlan, planned: bool = True) -> None:
        """The record's files join the progress total (``planned``), or leave it."""
        for p in plan.files:
            if p.job is not None:
                if planned:
                    self.progress.plan_file(p.job.key, p.job.expected_size)
                else:
                    self.progress.unplan_file(p.job.key)

    def submit(self, candidate: Mapping[str, Any]) -> bool:
        """Start a record's download as a task on the running loop (crawl use);
        False when it is already being downloaded by this runner."""
        key = (str(candidate["source"]), str(candidate["source_id"]))
        if key in self._active:
            return False
        self._active.add(key)
        plan = plan_record(self.config, candidate)
        self._plan_progress(plan)
        task = asyncio.ensure_future(self._guarded(plan))
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            self._active.discard(key)
            if not t.cancelled() and t.exception() is not None:
                logger.error("download of %s %s failed: %r", key[0], key[1], t.exception())

        task.add_done_callback(done)
        return True

    @property
    def running(self) -> int:
        """Record downloads submitted and not finished."""
        return len(self._tasks)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _guarded(self, plan: RecordPlan) -> RecordReport:
        await self.open()
        assert self._records is not None
        async with self._records:
            try:
                return await self.download_record(plan)
            except Exception as exc:  # one broken record never stops the others
                logger.exception("download of %s %s stopped: %s", plan.source, plan.source_id, exc)
                self.stat("record_errors")
                return RecordReport(plan.source, plan.source_id, "incomplete", reason=f"{type(exc).__name__}: {exc}")
            finally:
                self._plan_progress(plan, planned=False)  # whatever this record did not transfer

    async def download_record(self, plan: RecordPlan) -> RecordReport:
        source, sid = plan.source, plan.source_id
        if plan.problem:
            logger.error("%s %s: not downloaded: %s", source, sid, plan.problem)
            self.log.append(source, sid, "skipped", reason=plan.problem)
            self.stat("records_missing")
            return RecordReport(source, sid, "missing", reason=plan.problem)
        why = self.credentials_wait(source)
        if why:
            # not a failure: the record stays queued until the curator sets credentials
            if source not in self._told_no_credentials:
                self._told_no_credentials.add(source)
                logger.warning("%s: %s (see .env.example); its records stay queued", source, why)
            self.stat("records_need_credentials")
            return RecordReport(source, sid, "skipped", reason=why)
        lock = RecordLock(plan.folder)
        if not lock.acquire():
            logger.warning("%s %s: another process is downloading this record; skipped this time", source, sid)
            self.stat("records_busy")
            return RecordReport(source, sid, "busy", reason="locked by another process")
        try:
            return await self._download_locked(plan)
        finally:
            lock.release()

    async def _download_locked(self, plan: RecordPlan) -> RecordReport:
        source, sid = plan.source, plan.source_id
        manifest = RecordManifest(plan.folder, plan.header)
        jobs: list[FileJob] = []
        for p in plan.files:
            fields = {k: p.entry.get(k) for k in ("expected_size", "checksum_expected", "algorithm")}
            manifest.add_file(
                p.job, name=p.entry["name"], original_name=p.entry.get("original_name"), url=p.entry.get("url"),
                file_id=p.entry.get("file_id"), status=p.entry.get("status", "pending"), reason=p.entry.get("reason"),
                **fields,
            )
            if p.job is None:
                self.log.append(source, sid, "skipped", p.entry["name"], reason=p.entry.get("reason"))
                self.stat("files_skipped")
            else:
                jobs.append(p.job)
        manifest.save(plan.skip_reason)
        self.log.append(source, sid, "started", files=len(jobs), expected_bytes=plan.expected_bytes)
        budget = RecordBudget(self.config.max_bytes)
        saver = _ThrottledSave(manifest, plan.skip_reason)
        try:
            outcomes = await asyncio.gather(*(self._one_file(job, manifest, budget, saver) for job in jobs))
        finally:
            manifest.save(plan.skip_reason)  # what is known, even when the run is cancelled
        report = RecordReport(source, sid, manifest.status(), reason=plan.skip_reason)
        report.counts.update(f["status"] for f in manifest.files)
        report.bytes = sum(o.size_on_disk or 0 for o in outcomes if o.status == DOWNLOADED)
        if not report.counts[FAILED]:
            self.queue.remove(source, sid)
        self.log.append(source, sid, "record_done", status=report.status, **{k.replace("-", "_"): v for k, v in report.counts.items()})
        self.stat(f"records_{report.status}")
        level = logging.WARNING if report.counts[FAILED] else logging.INFO
        logger.log(
            level, "%s %s: %s (%s)", source, sid, report.status,
            ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())) or "no files",
        )
        return report

    async def _one_file(self, job: FileJob, manifest: RecordManifest, budget: RecordBudget, saver: _ThrottledSave) -> FileOutcome:
        try:
            existing = await verify_existing(job, manifest.previous_entry(job.name))
            if existing is not None:
                outcome = existing
                budget.take(outcome.size_on_disk or 0)
                self.progress.file_finished(job.key, True)
            else:
                transfer = FileTransfer(
                    self.session, self.gates, self.credentials(job.source), self.policy, budget,
                    progress=self.progress, on_event=self._event,
                )
                outcome = await transfer.run(job)
        except Exception as exc:  # an error of one file ends that file, never its record or the run
            outcome = self._unexpected(job, exc)
        manifest.record_outcome(job, outcome)
        saver.touch()
        detail = {"bytes": outcome.size_on_disk, "checksum": outcome.computed, "reason": outcome.reason}
        self.log.append(job.source, job.source_id, outcome.status, job.name, **detail)
        self.stat(f"files_{outcome.status.replace('-', '_')}")
        if outcome.status == DOWNLOADED:
            self.stat("bytes", outcome.size_on_disk or 0)
        if outcome.status in (FAILED, SKIPPED):
            logger.warning("%s %s: %s %s: %s", job.source, job.source_id, job.name, outcome.status, outcome.reason)
        return outcome

    def _unexpected(self, job: FileJob, exc: Exception) -> FileOutcome:
        """The outcome of a file whose handling raised. A name the file system refuses
        (too long, invalid there) is skipped, not failed: it would fail every run and
        keep every run unhealthy; anything else fails (and is retried next run)."""
        self.progress.file_finished(job.key, False)
        self.stat("file_errors")
        if isinstance(exc, OSError) and exc.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ):
            return FileOutcome(SKIPPED, reason=f"the file system refuses the name {job.name!r}: {exc.strerror or exc}",
                               finished_at=time.time())
        logger.exception("%s %s: %s: unexpected error", job.source, job.source_id, job.name)
        return FileOutcome(FAILED, reason=f"unexpected error: {type(exc).__name__}: {exc}", finished_at=time.time())

    def _event(self, event: str, job: FileJob, detail: dict[str, Any]) -> None:
        self.log.append(job.source, job.source_id, event, job.name, **detail)
        self.stat(f"events_{event}")
        if event in ("rate_limited", "budget_exhausted"):
            logger.info("%s: %s for %s; pausing that host %.0f s", job.source, event.replace("_", " "), job.name, detail.get("wait_seconds") or 0)
        elif event in ("retry", "restart"):
            logger.info("%s %s: %s %s (%s)", job.source, job.source_id, event, job.name, detail.get("reason"))


class _ThrottledSave:
    """Rewrite a manifest at most once a second while files finish (a record of
    10,000 small files must not cost 10,000 fsyncs); the final save always happens."""

    def __init__(self, manifest: RecordManifest, reason: str | None, every: float = 1.0) -> None:
        self.manifest = manifest
        self.reason = reason
        self.every = every
        self.last = 0.0

    def touch(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.manifest.save(self.reason)


def dry_run_lines(plans: list[RecordPlan], waiting: Mapping[str, str] | None = None) -> list[str]:
    """What a download run would do, one line per file and per record, with totals.
    ``waiting``: source -> why its files wait for credentials (they are not fetched,
    and not counted as to download)."""
    waiting = waiting or {}
    lines: list[str] = []
    total_files = total_bytes = unknown = skipped = present = waits = 0
    for plan in plans:
        if plan.problem:
            lines.append(f"{plan.source} {plan.source_id}: NOT DOWNLOADABLE: {plan.problem}")
            continue
        lines.append(f"{plan.source} {plan.source_id}: {plan.header.get('title') or ''}".rstrip())
        for p in plan.files:
            size = p.entry.get("expected_size")
            if p.job is None:
                skipped += 1
                lines.append(f"    skip  {p.entry['name']}  ({p.entry.get('reason')})")
                continue
            if p.job.path.is_file() and (size is None or p.job.path.stat().st_size == size):
                present += 1
                lines.append(f"    have  {p.entry['name']}  {human_bytes(size)} (checked, not fetched, when run)")
                continue
            if plan.source in waiting:
                waits += 1
                lines.append(f"    wait  {p.entry['name']}  {human_bytes(size)}  (needs credentials)")
                continue
            total_files += 1
            if size is None:
                unknown += 1
            else:
                total_bytes += size
            lines.append(f"    get   {p.entry['name']}  {human_bytes(size)}  {redact_url(p.job.url)}")
        if plan.skip_reason:
            lines.append(f"    (record skipped: {plan.skip_reason})")
    lines.append(
        f"total: {total_files} files to download, {total_bytes} bytes ({human_bytes(total_bytes)})"
        + (f" + {unknown} of unknown size" if unknown else "")
        + f"; {present} already on disk; {skipped} skipped"
        + (f"; {waits} wait for credentials" if waits else "")
        + f"; {len(plans)} records"
    )
    for source in sorted({p.source for p in plans} & set(waiting)):
        lines.append(f"wait: {waiting[source]}")
    return lines


__all__ = [
    "DOWNLOAD_PACES", "DownloadConfig", "DownloadRunner", "RecordPlan", "RecordReport",
    "collect_candidates", "dry_run_lines", "plan_record", "VERIFIED_EXISTING",
]
