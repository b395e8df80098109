"""Narrower windows for a query that has more results than its API pages to.

Zenodo (10,000 results), RePORTER (10,000 to 15,000) and Figshare (about 1,000) stop
paging a query early. A query with more results is searched again over narrower
windows of a date its records carry, until each window fits:

* :func:`halve`: a window ``[lo, hi)`` in two halves, for APIs that filter a range
  (Zenodo ``created:[lo TO hi}``, RePORTER ``fiscal_years``); an open end (None) is
  taken as ``floor`` / ``ceiling`` to compute the middle and stays open;
* :func:`next_window`: the start of the next window of a query sorted by date
  ascending, for APIs that filter only "since" (Figshare ``published_since``).

When a window cannot narrow any further, the spider says so and its run does not move
the incremental mark (``SourceSpider.window_overflow``). Pure functions, no I/O.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from envision_spiders.textutil import parse_datetime

T = TypeVar("T", int, date)


def halve(lo: T | None, hi: T | None, *, floor: T, ceiling: T, unit: Any) -> list[tuple[T | None, T | None]] | None:
    """``[lo, hi)`` as ``[(lo, mid), (mid, hi)]`` (the earlier half holds the extra unit of
    an odd span), or None when it spans a single ``unit`` and cannot be split.

    >>> halve(2025, 2028, floor=1985, ceiling=2028, unit=1)
    [(2025, 2027), (2027, 2028)]
    >>> halve(None, None, floor=date(2020, 1, 1), ceiling=date(2020, 1, 5), unit=timedelta(days=1))
    [(None, datetime.date(2020, 1, 3)), (datetime.date(2020, 1, 3), None)]
    """
    start = floor if lo is None else lo
    end = ceiling if hi is None else hi
    steps = (end - start) // unit
    if steps <= 1:
        return None
    mid = end - (steps // 2) * unit
    return [(lo, mid), (mid, hi)]


def next_window(latest: Any, current: str | None, overlap: timedelta = timedelta(days=1)) -> str | None:
    """The start (``YYYY-MM-DD``) of the window that continues a capped query sorted by
    date ascending: ``overlap`` before the latest date seen (an API that takes a bare day
    may or may not include it; records seen twice are fetched once). None when the
    window would not move forward (more than a window of results in ``overlap``)."""
    last = parse_datetime(latest)
    if last is None:
        return None
    start = last.date() - overlap
    if current and start <= date.fromisoformat(current):
        return None
    return start.isoformat()


def as_date(value: str | date | datetime | None) -> date | None:
    """A window end kept as ISO text in a request's ``cb_kwargs`` (JSON) back as a date."""
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(value)
