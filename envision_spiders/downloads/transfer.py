"""One file, streamed to disk, resumed, verified, and renamed into place only when it verifies.

Scrapy buffers whole response bodies (``DOWNLOAD_MAXSIZE``), so files go through
aiohttp's client, chunk by chunk (1 MiB), into ``<name>.part``; the hash is updated
as the bytes arrive, so a 50 GB file costs a few megabytes of memory and one pass.
Writing and hashing run in a worker thread (``asyncio.to_thread``) so the event loop,
which may be a crawl's reactor, never waits for the disk.

* resume: a ``.part`` left by an interrupted run (its ``.part.json`` says which URL
  and which expected checksum it belongs to) is re-hashed and continued with
  ``Range: bytes=N-`` (and ``If-Range`` when the server gave a validator); a ``206``
  whose ``Content-Range`` does not start at N, or a ``200`` (the server ignored the
  range, or the file changed), restarts the file cleanly from byte 0;
* the disk: before a file, its size (the record's) plus ``DOWNLOAD_MIN_FREE_BYTES`` must
  be free; when the answer comes, the size the server declares (``Content-Length``)
  is checked the same way before a byte is written; while writing, the free space may
  not fall below ``DOWNLOAD_MIN_FREE_BYTES`` (another process may fill the disk). A
  file stopped for space keeps its ``.part`` only when the next run can resume it (the
  server takes ranges), and its reason says which. A body of unknown length (neither
  the record nor the server says) is cut at ``DOWNLOAD_MAX_UNKNOWN_BYTES``;
* a total deadline: after ``DOWNLOAD_TIMEOUT`` seconds an attempt must keep an average
  of ``DOWNLOAD_MIN_SPEED`` bytes a second, so a file of N bytes has
  ``DOWNLOAD_TIMEOUT + N / DOWNLOAD_MIN_SPEED`` seconds in all: a sender that trickles a
  byte per read, which no read timeout catches, is stopped (and retried from its part);
* verification: against the record's checksum (``md5:``/``sha256:``/... hex) and size;
  a mismatch deletes the ``.part`` (a resumed transfer gets one clean retry from
  scratch first), so nothing corrupt ever sits under the final name;
* politeness: each attempt takes a slot of its host (``HostGates``: concurrency and a
  sliding-window pace from ``politeness.WindowBudget``); ``429``/``503`` waits what the
  server names (``server_wait``: ``Retry-After``, ``RateLimit-Reset``,
  ``X-RateLimit-Reset``) and pauses the whole host; an answer saying
  ``RateLimit-Remaining: 0`` pauses it until the reset (``exhausted_wait``); other
  failures are retried with ``politeness.Backoff``;
* credentials go to the source's own site only; redirects are followed by hand so
  every target is checked (``safety.check_url``) and ``Authorization`` never leaves
  the site, while ``Range`` is kept.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import aiohttp

from envision_spiders.credentials import Credentials
from envision_spiders.politeness import Backoff, Pace, WindowBudget, exhausted_wait, server_wait
from envision_spiders.storage import atomic_write_json, read_json

from .safety import PART_SUFFIX, UnsafeURL, check_url, redact_url

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
RETRYABLE_STATUS = {408, 425, 500, 502, 503, 504, 520, 521, 522, 523, 524}
ALGORITHMS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha-256": "sha256", "sha512": "sha512", "sha-512": "sha512"}
_HEX = re.compile(r"^[0-9a-f]+$")
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)

# what a curator sets for a source's files (environment or .env)
CREDENTIAL_HINTS = {
    "kaggle": "set KAGGLE_API_TOKEN (or KAGGLE_USERNAME and KAGGLE_KEY)",
    "dryad": "set DRYAD_CLIENT_ID and DRYAD_CLIENT_SECRET (Dryad refuses anonymous file downloads)",
    "zenodo": "set ZENODO_TOKEN",
    "figshare": "set FIGSHARE_ACCESS_TOKEN",
    "osf": "set OSF_TOKEN",
}

# statuses of a file in a manifest
DOWNLOADED = "downloaded"
VERIFIED_EXISTING = "verified-existing"
FAILED = "failed"
SKIPPED = "skipped"
PENDING = "pending"


def parse_checksum(value: Any) -> tuple[str | None, str | None]:
    """``"md5:ABC..."`` -> ``("md5", "abc...")``; a bare 32/64-hex value is taken as
    md5/sha256; anything else -> ``(None, None)`` (no verification possible)."""
    if not isinstance(value, str) or not value.strip():
        return None, None
    text = value.strip().lower()
    if ":" in text:
        algo, _, digest = text.partition(":")
        algo = ALGORITHMS.get(algo.strip())
        digest = digest.strip()
    else:
        digest = text
        algo = {32: "md5", 64: "sha256", 40: "sha1", 128: "sha512"}.get(len(digest))
    if not algo or not _HEX.match(digest or "") or len(digest) != hashlib.new(algo).digest_size * 2:
        return None, None
    return algo, digest


@dataclass
class FileJob:
    """One file of one record, as planned."""

    source: str
    source_id: str
    name: str  # safe relative path under the record's folder
    original_name: str
    url: str
    folder: Path  # the record's folder
    expected_size: int | None = None
    algorithm: str | None = None  # of the expected checksum
    expected_digest: str | None = None
    file_id: Any = None

    @property
    def path(self) -> Path:
        return self.folder / self.name

    @property
    def part(self) -> Path:
        return self.folder / (self.name + PART_SUFFIX)

    @property
    def part_meta(self) -> Path:
        return self.folder / (self.name + PART_SUFFIX + ".json")

    @property
    def key(self) -> str:
        return f"{self.source}/{self.source_id}/{self.name}"

    @property
    def hash_algorithm(self) -> str:
        # without an expected checksum we still record one of what we wrote
        return self.algorithm or "sha256"


@dataclass
class FileOutcome:
    status: str
    reason: str | None = None
    size_on_disk: int | None = None
    computed: str | None = None  # "algo:hex" of the bytes on disk
    attempts: int = 0
    resumed_from: int = 0
    restarts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    counted: int = 0  # bytes of the current .part taken from the record's budget


class Progress(Protocol):
    def file_started(self, key: str, total: int | None, done: int) -> None: ...
    def file_advanced(self, key: str, n: int) -> None: ...
    def file_restarted(self, key: str) -> None: ...
    def file_finished(self, key: str, ok: bool) -> None: ...


class NoProgress:
    def file_started(self, key: str, total: int | None, done: int) -> None:
        pass

    def file_advanced(self, key: str, n: int) -> None:
        pass

    def file_restarted(self, key: str) -> None:
        pass

    def file_finished(self, key: str, ok: bool) -> None:
        pass


class RecordBudget:
    """Bytes a record may take (``DOWNLOAD_MAX_BYTES``), shared by its files: a file
    whose size the record did not say, or lied about, is stopped when the record goes
    over (sizes the record states are checked before anything starts)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap  # 0 = no cap
        self.used = 0

    def take(self, n: int) -> bool:
        self.used += n
        return not self.cap or self.used <= self.cap

    def release(self, n: int) -> None:
        self.used = max(0, self.used - n)


# ------------------------------------------------------------------ hosts
class HostGate:
    """Concurrency and pace of one host: a semaphore and a sliding-window budget."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        windows = list(pace.windows)
        if pace.interval > 0:
            windows.append((1, pace.interval))
        self.budget = WindowBudget(tuple(windows))
        self.slots = asyncio.Semaphore(max(1, pace.concurrency))

    async def acquire(self) -> None:
        await self.slots.acquire()
        try:
            while True:
                now = time.monotonic()
                wait = self.budget.wait(now)
                if wait <= 0:
                    self.budget.take(now)
                    return
                await asyncio.sleep(wait)
        except BaseException:
            self.slots.release()
            raise

    def release(self) -> None:
        self.slots.release()

    def block(self, seconds: float) -> None:
        self.budget.block(time.monotonic() + seconds)


class HostGates:
    """One gate per host, created with the pace of the source that first uses it, and
    a process-wide cap on transfers at once (``DOWNLOAD_CONCURRENCY``)."""

    def __init__(self, paces: dict[str, Pace], default: Pace, scale: float, total: int) -> None:
        self.paces = paces
        self.default = default
        self.scale = scale
        self.total = asyncio.Semaphore(max(1, total))
        self.gates: dict[str, HostGate] = {}

    def gate(self, url: str, source: str) -> HostGate:
        host = (urlsplit(url).hostname or "").lower()
        gate = self.gates.get(host)
        if gate is None:
            pace = self.paces.get(source, self.default).scaled(self.scale)
            gate = self.gates[host] = HostGate(pace)
        return gate


# ------------------------------------------------------------------ the part file
class PartWriter:
    """Appends to a ``.part`` and hashes what it writes (called from a worker thread)."""

    def __init__(self, path: Path, algorithm: str, resume_from: int) -> None:
        self.path = path
        self.hasher = hashlib.new(algorithm)
        self.size = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_from > 0:
            self._rehash(resume_from)
            self.fh = open(path, "r+b")
            self.fh.seek(resume_from)
            self.fh.truncate()
        else:
            self.fh = open(path, "wb")

    def _rehash(self, upto: int) -> None:
        with open(self.path, "rb") as fh:
            left = upto
            while left > 0:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    break
                self.hasher.update(chunk)
                left -= len(chunk)
        self.size = upto - left

    def restart(self) -> None:
        self.fh.seek(0)
        self.fh.truncate()
        self.hasher = hashlib.new(self.hasher.name)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)
        self.hasher.update(chunk)
        self.size += len(chunk)

    def finish(self) -> str:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        return self.hasher.hexdigest()

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.flush()
            self.fh.close()


def hash_file(path: Path, algorithm: str) -> tuple[str, int]:
    """(hex digest, size) of a file, read in chunks (run in a thread)."""
    h = hashlib.new(algorithm)
    size = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def inside(folder: Path, path: Path) -> bool:
    """True when ``path``'s deepest existing ancestor (symlinks followed) is under
    ``folder``: folders created below it can then only be real folders inside."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        probe.resolve().relative_to(folder.resolve())
        return True
    except (ValueError, OSError):
        return False


# ------------------------------------------------------------------ errors of one attempt
class Retry(Exception):
    """The attempt failed in a way worth another try; ``wait`` is what the server asked."""

    def __init__(self, reason: str, *, wait: float | None = None, rate_limited: bool = False, from_scratch: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait
        self.rate_limited = rate_limited
        self.from_scratch = from_scratch


class Fatal(Exception):
    """The file cannot be had this run (wrong URL, refused, corrupt, too big)."""

    def __init__(self, reason: str, status: str = FAILED, *, drop_part: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.drop_part = drop_part


class Renew(Exception):
    """401 with credentials that may be renewed."""

    def __init__(self, sent: dict[str, str]) -> None:
        super().__init__("HTTP 401")
        self.sent = sent


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


@dataclass
class TransferPolicy:
    retries: int = 5  # failed attempts (network, 5xx) before giving up
    ratelimit_retries: int = 8  # 429s in a row before giving up
    max_wait: float = 3600.0  # cap on one server-named wait
    backoff: Backoff = field(default_factory=Backoff)
    default_429_wait: float = 60.0
    min_free_bytes: int = 1 << 30
    max_unknown_bytes: int = 16 << 30  # a body whose length nobody states is cut here
    grace: float = 60.0  # seconds an attempt may take before its pace is judged
    min_speed: float = 16384.0  # bytes a second an attempt must average after the grace (0: no deadline)
    free_space: Callable[[Path], int] = free_bytes  # bytes free on the disk of a folder
    user_agent: str = "envision-spiders"


class FileTransfer:
    """Downloads one ``FileJob``; everything it needs is given, nothing is global."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        gates: HostGates,
        credentials: Credentials,
        policy: TransferPolicy,
        budget: RecordBudget,
        progress: Progress | None = None,
        on_event: Callable[[str, FileJob, dict[str, Any]], None] | None = None,
    ) -> None:
        self.session = session
        self.gates = gates
        self.credentials = credentials
        self.policy = policy
        self.budget = budget
        self.progress = progress or NoProgress()
        self.on_event = on_event or (lambda event, job, detail: None)

    # ---------------------------------------------------------------- public
    async def run(self, job: FileJob) -> FileOutcome:
        outcome = FileOutcome(status=FAILED, started_at=time.time())
        job.folder.mkdir(parents=True, exist_ok=True)
        if not inside(job.folder, job.path.parent):
            return self._done(job, outcome, Fatal("the target folder leaves the record's folder (a symlink?)"))
        try:
            check_url(job.url)
        except UnsafeURL as exc:
            return self._done(job, outcome, Fatal(f"refused URL: {exc}", SKIPPED))
        renewed = False
        failures = 0
        limited = 0
        scratch_retry_left = 1
        while True:
            outcome.attempts += 1
            try:
                await self._attempt(job, outcome)
                return self._done(job, outcome, None)
            except Renew as exc:
                if renewed or not await self.credentials.renew(exc.sent):
                    return self._done(job, outcome, Fatal(self._auth_reason(401)))
                renewed = True
                self.on_event("auth_renewed", job, {})
            except Retry as exc:
                if exc.from_scratch:
                    if scratch_retry_left <= 0:
                        return self._done(job, outcome, Fatal(exc.reason, drop_part=True))
                    scratch_retry_left -= 1
                    self._drop_part(job, outcome)
                    self.progress.file_restarted(job.key)
                    outcome.restarts += 1
                    self.on_event("restart", job, {"reason": exc.reason})
                    continue
                if exc.rate_limited:
                    limited += 1
                    if limited > self.policy.ratelimit_retries:
                        return self._done(job, outcome, Fatal(f"{exc.reason}; still rate-limited after {limited - 1} waits"))
                    wait = min(exc.wait if exc.wait is not None else self.policy.default_429_wait, self.policy.max_wait)
                    self.gates.gate(job.url, job.source).block(wait)
                    self.on_event("rate_limited", job, {"reason": exc.reason, "wait_seconds": round(wait, 1)})
                    continue  # the gate makes the next attempt wait
                failures += 1
                if failures > self.policy.retries:
                    return self._done(job, outcome, Fatal(f"{exc.reason} (gave up after {failures} attempts)"))
                delay = self.policy.backoff.delay(failures)
                if exc.wait is not None:
                    delay = max(delay, min(exc.wait, self.policy.max_wait))
                self.on_event("retry", job, {"reason": exc.reason, "attempt": failures, "wait_seconds": round(delay, 1)})
                await asyncio.sleep(delay)
            except Fatal as exc:
                return self._done(job, outcome, exc)

    # ---------------------------------------------------------------- one attempt
    async def _attempt(self, job: FileJob, outcome: FileOutcome) -> None:
        start = self._resume_point(job, outcome)
        self._check_disk(job, start)
        gate = self.gates.gate(job.url, job.source)
        await gate.acquire()
        async with self.gates.total:
            try:
                await self._fetch(job, outcome, start, gate)
            finally:
                gate.release()

    def _resume_point(self, job: FileJob, outcome: FileOutcome) -> int:
        """Bytes of a ``.part`` that belongs to this very file, else 0 (and it goes)."""
        if not job.part.exists():
            return 0
        meta = read_json(job.part_meta) if job.part_meta.exists() else None
        same = (
            isinstance(meta, dict)
            and meta.get("url") == job.url
            and meta.get("digest") == job.expected_digest
            and meta.get("size") == job.expected_size
        )
        size = job.part.stat().st_size
        if not same or (job.expected_size is not None and size > job.expected_size):
            self._drop_part(job, outcome)
            return 0
        return size

    def _check_disk(self, job: FileJob, start: int, declared: int | None = None) -> None:
        """Room for the rest of the file (the record's size, or what the server
        declares) with the DOWNLOAD_MIN_FREE_BYTES reserve, before a byte is written."""
        job.path.parent.mkdir(parents=True, exist_ok=True)
        size = declared if declared is not None else max(0, (job.expected_size or 0) - start)
        free = self.policy.free_space(job.path.parent)
        need = size + self.policy.min_free_bytes
        if free < need:
            said = f"the server declares {size} bytes; " if declared is not None else ""
            kept = "; its partial file is kept for the next run" if start and job.part.exists() else ""
            raise Fatal(
                f"not enough free disk space in {job.folder}: {said}{free / 1e9:.2f} GB free, "
                f"{need / 1e9:.2f} GB needed with the DOWNLOAD_MIN_FREE_BYTES reserve{kept}"
            )

    @staticmethod
    def _declared(response: aiohttp.ClientResponse) -> int | None:
        """The bytes the answer says it carries (``Content-Length``), if it says."""
        value = response.headers.get("Content-Length", "")
        return int(value) if value.strip().isdigit() else None

    def _out_of_space(self, job: FileJob, writer: PartWriter, resumable: bool, why: str) -> Fatal:
        """Stop a file for lack of space: its part stays only when the next run can
        resume it (the server takes ranges); the reason says which."""
        if resumable:
            return Fatal(f"{why}; the partial file ({writer.size} bytes) is kept: the next run resumes it")
        return Fatal(f"{why}; the partial file is deleted: the server cannot resume it", drop_part=True)

    async def _request(self, url: str, headers: dict[str, str], gate: HostGate, job: FileJob) -> tuple[aiohttp.ClientResponse, str, dict[str, str]]:
        """GET with redirects followed by hand: every target is checked, credentials
        only where they apply. Returns the final response (open), its URL and the
        credential headers sent with it. A redirect saying the budget is spent
        (``RateLimit-Remaining: 0``, as an API answering for its storage does) pauses
        the host like a final answer would."""
        for _ in range(MAX_REDIRECTS + 1):
            auth = await self.credentials.headers() if self.credentials.applies_to(url) else {}
            response = await self.session.get(url, headers={**headers, **auth}, allow_redirects=False)
            if response.status not in REDIRECTS:
                return response, url, auth
            self._note_budget(response, gate, job)
            location = response.headers.get("Location")
            response.release()
            if not location:
                raise Fatal(f"HTTP {response.status} without a Location header")
            target = urljoin(url, location)
            try:
                check_url(target)
            except UnsafeURL as exc:
                raise Fatal(f"refused redirect to {redact_url(target)}: {exc}") from None
            url = target
        raise Fatal(f"more than {MAX_REDIRECTS} redirects")

    async def _fetch(self, job: FileJob, outcome: FileOutcome, start: int, gate: HostGate) -> None:
        headers = {"Accept-Encoding": "identity", "User-Agent": self.policy.user_agent}
        meta = read_json(job.part_meta) if start and job.part_meta.exists() else None
        if start:
            headers["Range"] = f"bytes={start}-"
            validator = (meta or {}).get("etag") or (meta or {}).get("last_modified")
            if validator and not str(validator).startswith("W/"):
                headers["If-Range"] = str(validator)
        try:
            response, final_url, auth = await self._request(job.url, headers, gate, job)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise Retry(f"connection failed: {type(exc).__name__}: {str(exc)[:150]}") from None
        async with response:
            self._check_status(response, auth, gate, start, job)
            begin = start
            if response.status == 206 and start:
                begin = self._range_start(response, start)
            elif response.status == 416 and start:
                # nothing left to send: the .part may already be whole
                total = self._range_total(response)
                if total is not None and total == start:
                    await self._complete(job, outcome, await asyncio.to_thread(self._open_writer, job, start), start, resumed=True)
                    return
                raise Retry("HTTP 416 for the rest of a partial file", from_scratch=True)
            else:
                begin = 0
            declared = self._declared(response)
            if declared is not None:
                self._check_disk(job, begin, declared)
                if job.expected_size is None and self.budget.cap and self.budget.used + declared > self.budget.cap:
                    raise Fatal(f"the server declares {declared} bytes: the record would exceed DOWNLOAD_MAX_BYTES "
                                f"({self.budget.cap} bytes)", SKIPPED)
            if start and not begin:
                self.budget.release(outcome.counted)
                outcome.counted = 0
                outcome.restarts += 1
                self.on_event("restart", job, {"reason": "the server ignored the Range request (HTTP 200); starting over"})
                self.progress.file_restarted(job.key)
            resumable = response.status == 206 or response.headers.get("Accept-Ranges", "").strip().lower() == "bytes"
            await asyncio.to_thread(
                atomic_write_json,
                job.part_meta,
                {
                    "url": job.url,
                    "digest": job.expected_digest,
                    "size": job.expected_size,
                    "etag": response.headers.get("ETag"),
                    "last_modified": response.headers.get("Last-Modified"),
                },
            )
            writer = await asyncio.to_thread(self._open_writer, job, begin)
            if begin:
                outcome.resumed_from = begin
                self.on_event("resumed", job, {"from_byte": begin})
            self.progress.file_started(job.key, job.expected_size, begin)
            try:
                await self._stream(job, outcome, response, writer, declared, resumable)
            except BaseException:
                await asyncio.to_thread(writer.close)
                raise
            await self._complete(job, outcome, writer, writer.size, resumed=begin > 0)

    def _check_status(self, response: aiohttp.ClientResponse, auth: dict[str, str], gate: HostGate, start: int, job: FileJob) -> None:
        status = response.status
        now = time.time()
        if status in (200, 206) or (status == 416 and start):
            self._note_budget(response, gate, job)
            return
        if status == 429 or (status == 503 and server_wait(response.headers, now) is not None):
            raise Retry(f"HTTP {status}", wait=server_wait(response.headers, now), rate_limited=True)
        if status in (401, 403) and auth:
            if status == 401:
                raise Renew(auth)
            raise Fatal(self._auth_reason(status))
        if status in (401, 403):
            raise Fatal(self._auth_reason(status))
        if status in RETRYABLE_STATUS:
            raise Retry(f"HTTP {status}", wait=server_wait(response.headers, now))
        raise Fatal(f"HTTP {status}")

    def _note_budget(self, response: aiohttp.ClientResponse, gate: HostGate, job: FileJob) -> None:
        exhausted = exhausted_wait(response.headers, time.time())
        if exhausted:
            gate.block(min(exhausted, self.policy.max_wait))
            self.on_event("budget_exhausted", job, {"wait_seconds": round(exhausted, 1)})

    def _auth_reason(self, status: int) -> str:
        if self.credentials.configured:
            return f"HTTP {status}: the server refused {self.credentials.describe()}"
        hint = CREDENTIAL_HINTS.get(self.credentials.source, "this file needs credentials")
        return f"HTTP {status}: authentication required; {hint}"

    @staticmethod
    def _range_total(response: aiohttp.ClientResponse) -> int | None:
        value = response.headers.get("Content-Range", "")
        m = re.match(r"^\s*bytes\s+\*/(\d+)\s*$", value, re.IGNORECASE)
        return int(m.group(1)) if m else None

    def _range_start(self, response: aiohttp.ClientResponse, start: int) -> int:
        m = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != start:
            raise Retry(f"the server answered the range request with {response.headers.get('Content-Range')!r}", from_scratch=True)
        return start

    @staticmethod
    def _open_writer(job: FileJob, begin: int) -> PartWriter:
        return PartWriter(job.part, job.hash_algorithm, begin)

    async def _stream(self, job: FileJob, outcome: FileOutcome, response: aiohttp.ClientResponse, writer: PartWriter,
                      declared: int | None = None, resumable: bool = False) -> None:
        policy = self.policy
        started = time.monotonic()
        received = 0  # this attempt
        unknown = job.expected_size is None and declared is None
        while True:
            # the deadline moves with what arrived: DOWNLOAD_MIN_SPEED on average after the grace
            left = started + policy.grace + received / policy.min_speed - time.monotonic() if policy.min_speed else None
            try:
                if left is not None and left <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(response.content.read(CHUNK), left)
            except (TimeoutError, asyncio.TimeoutError):
                elapsed = time.monotonic() - started
                if policy.min_speed and elapsed >= policy.grace + received / policy.min_speed - 0.001:
                    raise Retry(f"too slow: {received} bytes in {elapsed:.0f} s, below DOWNLOAD_MIN_SPEED "
                                f"({policy.min_speed:.0f} bytes a second)") from None
                raise Retry(f"transfer interrupted after {writer.size} bytes: TimeoutError") from None
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                raise Retry(f"transfer interrupted after {writer.size} bytes: {type(exc).__name__}") from None
            if not chunk:
                return
            received += len(chunk)
            outcome.counted += len(chunk)
            if not self.budget.take(len(chunk)):
                raise Fatal(
                    f"the record exceeds DOWNLOAD_MAX_BYTES ({self.budget.cap} bytes) while downloading",
                    SKIPPED, drop_part=True,
                )
            if job.expected_size is not None and writer.size + len(chunk) > job.expected_size:
                raise Fatal(f"the server sent more than the expected {job.expected_size} bytes", drop_part=True)
            if unknown and writer.size + len(chunk) > policy.max_unknown_bytes:
                raise Fatal(f"neither the record nor the server states the size, and the body passed "
                            f"DOWNLOAD_MAX_UNKNOWN_BYTES ({policy.max_unknown_bytes} bytes)", SKIPPED, drop_part=True)
            free = await asyncio.to_thread(policy.free_space, job.folder)
            if free - len(chunk) < policy.min_free_bytes:
                raise self._out_of_space(job, writer, resumable, (
                    f"stopped: the free disk space in {job.folder} fell to {free / 1e9:.2f} GB, below "
                    f"DOWNLOAD_MIN_FREE_BYTES ({policy.min_free_bytes / 1e9:.2f} GB)"))
            try:
                await asyncio.to_thread(writer.write, chunk)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise self._out_of_space(job, writer, resumable, f"the disk is full ({job.folder})") from None
                raise Fatal(f"cannot write {job.part}: {exc.strerror or exc}") from None
            self.progress.file_advanced(job.key, len(chunk))

    async def _complete(self, job: FileJob, outcome: FileOutcome, writer: PartWriter, size: int, *, resumed: bool) -> None:
        """Verify a finished ``.part`` and rename it into place. A mismatch after a
        resumed transfer earns one clean retry from byte 0 (the old part may be what
        is wrong); a mismatch of a whole transfer is final and the part goes."""
        digest = await asyncio.to_thread(writer.finish)
        outcome.size_on_disk = size
        outcome.computed = f"{job.hash_algorithm}:{digest}"
        if job.expected_size is not None and size < job.expected_size:
            raise Retry(f"the transfer ended after {size} of {job.expected_size} bytes")
        problem = None
        if job.expected_size is not None and size != job.expected_size:
            problem = f"size mismatch: {size} bytes on disk, {job.expected_size} expected"
        elif job.expected_digest and digest != job.expected_digest:
            problem = f"checksum mismatch: expected {job.algorithm}:{job.expected_digest}, got {job.algorithm}:{digest}"
        if problem:
            outcome.size_on_disk = None
            if resumed:
                raise Retry(problem, from_scratch=True)
            raise Fatal(problem, drop_part=True)
        await asyncio.to_thread(self._promote, job)
        outcome.status = DOWNLOADED

    @staticmethod
    def _promote(job: FileJob) -> None:
        """The verified (and fsynced) part takes the final name, durably."""
        os.replace(job.part, job.path)
        job.part_meta.unlink(missing_ok=True)
        fsync_dir(job.path.parent)

    # ---------------------------------------------------------------- endings
    def _drop_part(self, job: FileJob, outcome: FileOutcome | None = None) -> None:
        job.part.unlink(missing_ok=True)
        job.part_meta.unlink(missing_ok=True)
        if outcome is not None:
            self.budget.release(outcome.counted)
            outcome.counted = 0

    def _done(self, job: FileJob, outcome: FileOutcome, error: Fatal | None) -> FileOutcome:
        outcome.finished_at = time.time()
        if error is not None:
            outcome.status = error.status
            outcome.reason = error.reason
            if error.drop_part:
                self._drop_part(job, outcome)
                outcome.size_on_disk = None
        self.progress.file_finished(job.key, outcome.status == DOWNLOADED)
        return outcome


async def verify_existing(job: FileJob, previous: dict[str, Any] | None) -> FileOutcome | None:
    """A verified-existing outcome when the final file is there and matches, else None.

    A file the last run verified (same expected checksum and size, same size and
    modification time on disk) is not hashed again; any other existing file is. A file
    that does not match is removed: it is not what the record describes.
    """
    path = job.path
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if not path.is_file():
        return None
    if job.expected_size is not None and st.st_size != job.expected_size:
        logger.warning("%s: %s has %d bytes, the record says %d; downloading it again", job.source, path, st.st_size, job.expected_size)
        path.unlink(missing_ok=True)
        return None
    prev = previous or {}
    if (
        prev.get("status") in (DOWNLOADED, VERIFIED_EXISTING)
        and prev.get("checksum_expected") == (f"{job.algorithm}:{job.expected_digest}" if job.expected_digest else None)
        and prev.get("size_on_disk") == st.st_size
        and prev.get("mtime_ns") == st.st_mtime_ns
        and prev.get("checksum_computed")
    ):
        return FileOutcome(VERIFIED_EXISTING, size_on_disk=st.st_size, computed=prev["checksum_computed"])
    digest, size = await asyncio.to_thread(hash_file, path, job.hash_algorithm)
    if job.expected_digest and digest != job.expected_digest:
        logger.warning("%s: %s does not match its checksum; downloading it again", job.source, path)
        path.unlink(missing_ok=True)
        return None
    return FileOutcome(VERIFIED_EXISTING, size_on_disk=size, computed=f"{job.hash_algorithm}:{digest}")
