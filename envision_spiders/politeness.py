"""Pure helpers for pacing: rate windows, Retry-After parsing, backoff with jitter.

The middlewares in ``envision_spiders.middlewares`` use these; they hold no I/O and no
clock of their own (callers pass ``now``), so unit tests drive them directly.

Why hand-written: Scrapy has no Retry-After support (scrapy/scrapy#3849) and its
AutoThrottle only adapts to latency; the well-known rate-limit libraries (pyrate-limiter,
limits) block a thread or need a backend, while here a wait must be an ``asyncio.sleep``
on the reactor and the state is a few timestamps per API.
"""

from __future__ import annotations

import collections
import email.utils
import random
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pace:
    """An API's documented pace.

    ``interval``: the minimum time between two requests (the download slot's
    ``DOWNLOAD_DELAY``, AutoThrottle's floor). ``windows``: extra limits as
    (requests, seconds) sliding windows, e.g. OSF's 100 requests an hour.
    """

    interval: float
    windows: tuple[tuple[int, float], ...] = ()
    concurrency: int = 1

    def scaled(self, scale: float) -> Pace:
        if scale <= 0:
            return Pace(0.0, (), max(self.concurrency, 8))
        return Pace(self.interval * scale, tuple((n, s * scale) for n, s in self.windows), self.concurrency)


class WindowBudget:
    """Sliding-window request budget for one API (or one host), plus a 429 block.

    ``wait(now)`` is how long a request must wait before it may go; ``take(now)``
    spends one request and returns its stamp; ``done(stamp, now)`` says its answer
    arrived. ``block(until)`` stops everything until a time the server named
    (Retry-After, a reset header).

    The server counts a request when it *receives* it, which is some time after we
    decide to send it (the download slot's delay, the event loop, the network) and
    before its answer arrives; the gap varies from request to request. Counting every
    request at the moment we took its stamp lets a slow request and a fast one land in
    one server window although they were a full window apart here (the server then
    counted 101 of OSF's 100 an hour). So the margin is exactly that gap: once an
    answer arrives, the request's stamp moves to that instant, the latest the server
    can have received it, and a new request (received no earlier than it is stamped)
    waits a full window after it. Only a request still in flight keeps its sending
    time, which matters only for windows smaller than the requests in flight.
    """

    def __init__(self, windows: tuple[tuple[int, float], ...] = ()) -> None:
        self.windows = tuple((int(n), float(s)) for n, s in windows if n > 0 and s > 0)
        # one single-item list per request, [time]: the time moves when the answer arrives
        self._stamps: collections.deque[list[float]] = collections.deque()
        self._horizon = max((s for _, s in self.windows), default=0.0)
        self.blocked_until = 0.0

    def _trim(self, now: float) -> None:
        while self._stamps and now - self._stamps[0][0] >= self._horizon:
            self._stamps.popleft()

    def wait(self, now: float) -> float:
        w = max(0.0, self.blocked_until - now)
        if not self.windows:
            return w
        self._trim(now)
        for limit, period in self.windows:
            # the window is full when `limit` requests are younger than `period`; it
            # frees up when the oldest of the `limit` newest ones leaves it
            inside = sorted(t for (t,) in self._stamps if now - t < period)
            if len(inside) >= limit:
                w = max(w, period - (now - inside[len(inside) - limit]))
        return w

    def take(self, now: float) -> list[float] | None:
        if not self.windows:
            return None
        stamp = [now]
        self._stamps.append(stamp)
        return stamp

    @staticmethod
    def done(stamp: list[float] | None, now: float) -> None:
        """The answer to the request of ``stamp`` arrived at ``now``."""
        if stamp is not None:
            stamp[0] = max(stamp[0], now)

    def refund(self, stamp: list[float] | None) -> None:
        """The request of ``stamp`` never reached the server (DNS lookup failed,
        connection refused): it spent nothing."""
        if stamp is not None:
            try:
                self._stamps.remove(stamp)
            except ValueError:  # already trimmed
                pass

    def used(self, now: float, period: float) -> int:
        self._trim(now)
        return sum(1 for (t,) in self._stamps if now - t < period)

    def block(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)


def parse_retry_after(value: str | bytes | None, now_epoch: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta seconds or an HTTP date."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    return max(0.0, dt.timestamp() - now_epoch)


def parse_reset(value: str | bytes | None, now_epoch: float) -> float | None:
    """Seconds until a ``X-RateLimit-Reset`` / ``RateLimit-Reset`` time.

    Zenodo sends an epoch time, the IETF draft (Dryad) a delta; a value larger than
    a year of seconds can only be an epoch.
    """
    seconds = parse_retry_after(value, now_epoch)
    if seconds is None:
        return None
    if seconds > 365 * 24 * 3600:
        return max(0.0, seconds - now_epoch)
    return seconds


def _header(headers: Mapping, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    return value


def server_wait(headers: Mapping, now_epoch: float) -> float | None:
    """How long the server asks us to wait, from whichever header it sent."""
    for name in ("Retry-After",):
        w = parse_retry_after(_header(headers, name), now_epoch)
        if w is not None:
            return w
    for name in ("X-RateLimit-Reset", "RateLimit-Reset"):
        w = parse_reset(_header(headers, name), now_epoch)
        if w is not None:
            return w
    return None


def exhausted_wait(headers: Mapping, now_epoch: float) -> float | None:
    """On a successful answer: the wait until reset when the budget is spent
    (``X-RateLimit-Remaining: 0`` / ``RateLimit-Remaining: 0``), else None."""
    for remaining, reset in (("X-RateLimit-Remaining", "X-RateLimit-Reset"), ("RateLimit-Remaining", "RateLimit-Reset")):
        r = _header(headers, remaining)
        if r is None:
            continue
        try:
            left = int(float(r.strip()))
        except ValueError:
            continue
        if left <= 0:
            return parse_reset(_header(headers, reset), now_epoch)
    return None


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": attempt n waits between half and all of
    min(cap, base * 2**(n-1)), so retries both spread out and keep growing."""

    base: float = 2.0
    cap: float = 300.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
