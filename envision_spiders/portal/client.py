"""``POST {PORTAL_URL}/api/discover/dataset/external``, with retries (aiohttp).

What an answer means:

* 200 / 201: posted. The portal (Nuxt/h3) answers HTTP 200 with the handler's object,
  ``{"statusCode": 201, "statusMessage": "Request submitted"}`` for a new dataset and
  ``{"statusCode": 200, "statusMessage": "Dataset updated"}`` for an update; the body's
  ``statusCode`` decides (an HTTP 201 counts as created too). A 2xx without it is not
  the portal (a wrong address, a proxy's page): the run stops, nothing is marked.
* 5xx, 408, timeouts, refused or dropped connections: retried ``retries`` times with the
  shared :class:`~envision_spiders.politeness.Backoff` (exponential, jittered), waiting
  at least what ``Retry-After`` asks; 429 waits ``Retry-After`` (or a minute) up to
  ``ratelimit_retries`` times. Then :class:`PostFailed`.
* 401 / 403 (the key), 400 (the body: the zod issues come back as ``statusMessage``),
  404 / 405 (no such endpoint: a wrong ``PORTAL_URL``) and redirects: :class:`PortalStop`
  with the portal's message. Redirects are never followed: the key must not travel to
  another address, and a POST turned into a GET would post nothing.
* any other 4xx (413 a body too large, ...): :class:`PostFailed` for that record.

The key goes only into the ``x-api-key`` header of requests to ``PORTAL_URL``; every
message this module produces has it replaced by ``***`` in case a server echoes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from envision_spiders.downloads.safety import redact_url
from envision_spiders.politeness import Backoff, server_wait

from .body import ENDPOINT_PATH

logger = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 1024 * 1024
RETRY_STATUSES = frozenset({408, 500, 502, 503, 504, 520, 521, 522, 523, 524})
STOP_STATUSES = frozenset({400, 401, 403, 404, 405})
CREATED, UPDATED = "created", "updated"


class PortalStop(Exception):
    """The run must stop: every further post would fail the same way."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PostFailed(Exception):
    """This record could not be posted (retries spent, or refused on its own)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Answer:
    status: int  # HTTP status
    result: str  # created | updated
    message: str
    attempts: int = 1


@dataclass
class ClientPolicy:
    retries: int = 5
    ratelimit_retries: int = 8
    max_wait: float = 3600.0  # cap on one server-named wait
    default_429_wait: float = 60.0
    timeout: float = 60.0
    backoff: Backoff = field(default_factory=Backoff)
    user_agent: str = "envision-spiders"


def endpoint(portal_url: str) -> str:
    return portal_url.strip().rstrip("/") + ENDPOINT_PATH


def describe_issues(text: str) -> str:
    """zod issues (a JSON list in ``statusMessage``) as ``path: message`` lines."""
    try:
        issues = json.loads(text)
    except ValueError:
        return text
    if not isinstance(issues, list) or not all(isinstance(i, dict) for i in issues):
        return text
    out = []
    for issue in issues[:20]:
        path = ".".join(str(p) for p in issue.get("path") or []) or "(body)"
        out.append(f"{path}: {issue.get('message') or issue.get('code')}")
    if len(issues) > 20:
        out.append(f"... {len(issues) - 20} more issues")
    return "; ".join(out)


class PortalClient:
    def __init__(self, portal_url: str, api_key: str, policy: ClientPolicy | None = None) -> None:
        if not api_key:
            raise ValueError("an API key is needed")
        self.url = endpoint(portal_url)
        self.shown_url = redact_url(self.url)
        self._key = api_key
        self.policy = policy or ClientPolicy()
        self.session: aiohttp.ClientSession | None = None
        self.retries = 0  # retried attempts over the whole run

    def __repr__(self) -> str:
        return f"<PortalClient {self.shown_url}>"

    async def __aenter__(self) -> PortalClient:
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
        self.session = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=2))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def _clean(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    async def post(self, payload: dict[str, Any], what: str = "") -> Answer:
        assert self.session is not None, "use `async with PortalClient(...)`"
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"x-api-key": self._key, "Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": self.policy.user_agent}
        failures = limited = attempts = 0
        while True:
            attempts += 1
            wait: float | None = None
            try:
                async with self.session.post(self.url, data=data, headers=headers, allow_redirects=False) as response:
                    raw = await response.content.read(MAX_ANSWER_BYTES)
                    status, reason, answer_headers = response.status, response.reason or "", response.headers
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                problem = f"no answer ({type(exc).__name__}: {self._clean(str(exc))[:200] or 'connection lost'})"
                status = None
            else:
                message = self._message(raw, reason)
                if 200 <= status < 300:
                    result = self._result(status, raw)
                    if result is None:
                        raise PortalStop(f"{self.shown_url} answered HTTP {status} with {message[:200]!r}, not the portal's "
                                         "{statusCode, statusMessage}: is PORTAL_URL the envision portal? (the record is "
                                         "not marked as posted)", status)
                    return Answer(status, result, message, attempts)
                if 300 <= status < 400:
                    target = redact_url(answer_headers.get("Location") or "?")
                    raise PortalStop(f"{self.shown_url} redirects (HTTP {status} to {target}); set PORTAL_URL to the "
                                     "portal's final address (the key is never sent to a redirect target)", status)
                if status in (401, 403):
                    raise PortalStop(f"the portal refused the API key (HTTP {status}: {message}); check PORTAL_API_KEY", status)
                if status == 400:
                    raise PortalStop(f"the portal rejected the body of {what or 'a record'} (HTTP 400): "
                                     f"{describe_issues(message)}", status)
                if status in (404, 405):
                    raise PortalStop(f"no dataset endpoint at {self.shown_url} (HTTP {status}: {message}); check PORTAL_URL", status)
                wait = server_wait(answer_headers, time.time())
                problem = f"HTTP {status} ({message[:200]})"
                if status == 429:
                    limited += 1
                    if limited > self.policy.ratelimit_retries:
                        raise PostFailed(f"{problem}; still rate-limited after {limited - 1} waits", status)
                    pause = min(wait if wait is not None else self.policy.default_429_wait, self.policy.max_wait)
                    logger.warning("portal: rate-limited posting %s; waiting %.1f s as the portal asks", what, pause)
                    self.retries += 1
                    await asyncio.sleep(pause)
                    continue
                if status not in RETRY_STATUSES and status < 500:
                    raise PostFailed(problem, status)
            failures += 1
            if failures > self.policy.retries:
                raise PostFailed(f"{problem}; gave up after {attempts} attempts", status)
            delay = self.policy.backoff.delay(failures)
            if wait is not None:
                delay = max(delay, min(wait, self.policy.max_wait))
            logger.warning("portal: %s posting %s; retry %d of %d in %.1f s", problem, what, failures, self.policy.retries, delay)
            self.retries += 1
            await asyncio.sleep(delay)

    def _message(self, raw: bytes, reason: str) -> str:
        text = raw.decode("utf-8", "replace")
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            for key in ("statusMessage", "message"):
                if isinstance(body.get(key), str) and body[key].strip():
                    return self._clean(body[key].strip())[:4000]
        return self._clean(" ".join(text.split()) or reason)[:4000]

    @staticmethod
    def _result(status: int, raw: bytes) -> str | None:
        """created / updated from the answer's ``statusCode`` (or an HTTP 201); None
        when the answer is not the portal's."""
        try:
            body = json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            body = None
        code = body.get("statusCode") if isinstance(body, dict) else None
        if code == 201 or (status == 201 and code is None):
            return CREATED
        if code == 200:
            return UPDATED
        return None
