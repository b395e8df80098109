"""Progress of long downloads: bytes, rate and ETA per file and overall.

On a terminal: tqdm bars (one overall, one per active file). Elsewhere (cron,
scrapyd, a crawl's log): one plain log line every ``DOWNLOAD_PROGRESS_INTERVAL``
seconds with the same numbers. tqdm does the rate smoothing and the formatting; the
log lines use its ``format_sizeof`` / ``format_interval`` so both read alike.

The overall total is what is really transferred, kept true as the run learns: it
starts as the planned files' known sizes; a file found verified on disk, a record that
waits (credentials, another process) or a file that stops early gives back what it
will not transfer, and a file of unknown size adds its bytes as they arrive. So the
line never shows more than 100 % and ends with its bytes equal to its total.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

from tqdm import tqdm

logger = logging.getLogger(__name__)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    return tqdm.format_sizeof(n, "B", 1024)


@dataclass
class _File:
    total: int | None
    done: int
    started: float = field(default_factory=time.monotonic)
    initial: int = 0
    bar: tqdm | None = None


class BaseProgress:
    """Counts bytes; subclasses show them."""

    def __init__(self) -> None:
        self.expected = 0  # bytes this run transfers (see the module doc)
        self.done = 0
        self.files_done = 0
        self.files_failed = 0
        self.started = time.monotonic()
        self.active: dict[str, _File] = {}
        self.planned: dict[str, int] = {}  # known size of each planned file not started yet

    def add_expected(self, n: int) -> None:
        self.expected += n

    def plan_file(self, key: str, size: int | None) -> None:
        """A file this run will look at; its known size joins the total."""
        if size and key not in self.planned and key not in self.active:
            self.planned[key] = size
            self.add_expected(size)

    def unplan_file(self, key: str) -> None:
        """A planned file this run will not transfer gives its size back."""
        self.add_expected(-self.planned.pop(key, 0))

    def file_started(self, key: str, total: int | None, done: int) -> None:
        self.planned.pop(key, None)  # in the total already, when its size is known
        self.active[key] = _File(total, done, initial=done)
        self.done += done

    def file_advanced(self, key: str, n: int) -> None:
        f = self.active.get(key)
        if f is not None:
            f.done += n
            if f.total is None:
                self.add_expected(n)
        self.done += n

    def file_restarted(self, key: str) -> None:
        f = self.active.get(key)
        if f is not None:
            self.done -= f.done
            if f.total is None:
                self.add_expected(-f.done)
            f.done = 0
            f.initial = 0

    def file_finished(self, key: str, ok: bool) -> None:
        f = self.active.pop(key, None)
        if f is None:
            self.unplan_file(key)  # never transferred: verified on disk, refused, or failed before a byte
        elif f.total is not None and f.done < f.total:
            self.add_expected(f.done - f.total)  # stopped early: the rest is not transferred this run
        if ok:
            self.files_done += 1
        else:
            self.files_failed += 1

    def rate(self) -> float:
        elapsed = max(1e-6, time.monotonic() - self.started)
        transferred = self.done - sum(f.initial for f in self.active.values())
        return max(0.0, transferred) / elapsed

    def close(self) -> None:
        pass


class LogProgress(BaseProgress):
    """A log line every ``interval`` seconds while something is transferring."""

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self.interval = interval
        self._last = time.monotonic()

    def file_advanced(self, key: str, n: int) -> None:
        super().file_advanced(key, n)
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            logger.info("%s", self.line())

    def line(self) -> str:
        rate = self.rate()
        left = max(0, self.expected - self.done)
        eta = tqdm.format_interval(left / rate) if rate > 0 and self.expected else "?"
        pct = f" ({100 * self.done / self.expected:.0f}%)" if self.expected else ""
        files = []
        for key, f in list(self.active.items())[:3]:
            name = key.rsplit("/", 1)[-1]
            share = f" {100 * f.done / f.total:.0f}%" if f.total else ""
            files.append(f"{name} {human_bytes(f.done)}{share}")
        more = f" (+{len(self.active) - 3} more)" if len(self.active) > 3 else ""
        return (
            f"downloads: {human_bytes(self.done)} of {human_bytes(self.expected)}{pct} at "
            f"{human_bytes(rate)}/s, ETA {eta}; {self.files_done} files done, {self.files_failed} failed; "
            f"active: {', '.join(files) or 'none'}{more}"
        )

    def close(self) -> None:
        if self.done:
            logger.info("%s", self.line())


class BarProgress(BaseProgress):
    """tqdm bars on stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.overall = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc="all files", position=0, dynamic_ncols=True)

    def add_expected(self, n: int) -> None:
        super().add_expected(n)
        self.overall.total = self.expected
        self.overall.refresh()

    def file_started(self, key: str, total: int | None, done: int) -> None:
        super().file_started(key, total, done)
        name = key.rsplit("/", 1)[-1]
        bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024, desc=name[:40], leave=False, dynamic_ncols=True)
        self.active[key].bar = bar
        self.overall.update(done)

    def file_advanced(self, key: str, n: int) -> None:
        super().file_advanced(key, n)
        f = self.active.get(key)
        if f is not None and f.bar is not None:
            f.bar.update(n)
        self.overall.update(n)

    def file_restarted(self, key: str) -> None:
        f = self.active.get(key)
        if f is not None:
            self.overall.update(-f.done)
            if f.bar is not None:
                f.bar.reset(total=f.total)
        super().file_restarted(key)

    def file_finished(self, key: str, ok: bool) -> None:
        f = self.active.get(key)
        if f is not None and f.bar is not None:
            f.bar.close()
        super().file_finished(key, ok)

    def close(self) -> None:
        for f in self.active.values():
            if f.bar is not None:
                f.bar.close()
        self.overall.close()


def make_progress(mode: str = "auto", interval: float = 30.0) -> BaseProgress:
    """``bar`` (tqdm), ``log`` (periodic lines), ``off``, or ``auto``: bars when stderr
    is a terminal, log lines otherwise."""
    mode = (mode or "auto").lower()
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "log"
    if mode == "bar":
        return BarProgress()
    if mode == "off":
        return BaseProgress()
    return LogProgress(interval)
