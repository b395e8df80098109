"""The one date-window helper that Zenodo, RePORTER and Figshare use to get past the
depth an API pages to: halving a range, and moving a "since" window forward."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from envision_spiders.spiders.nei import split_years
from envision_spiders.spiders.zenodo import EPOCH, split_slice
from envision_spiders.windows import as_date, halve, next_window

DAY = timedelta(days=1)


def test_halve_splits_a_range_until_one_unit_is_left():
    assert halve(2025, 2028, floor=1985, ceiling=2028, unit=1) == [(2025, 2027), (2027, 2028)]
    assert halve(2027, 2028, floor=1985, ceiling=2028, unit=1) is None
    assert halve(date(2020, 1, 1), date(2020, 1, 5), floor=EPOCH, ceiling=date(2030, 1, 1), unit=DAY) == [
        (date(2020, 1, 1), date(2020, 1, 3)), (date(2020, 1, 3), date(2020, 1, 5))]
    assert halve(date(2020, 1, 1), date(2020, 1, 2), floor=EPOCH, ceiling=date(2030, 1, 1), unit=DAY) is None


def test_open_ends_stay_open_and_every_unit_lands_in_exactly_one_half():
    today = date(2026, 11, 25)
    pending, leaves = [(None, None)], []
    while pending:
        lo, hi = pending.pop()
        halves = halve(lo, hi, floor=date(2026, 1, 1), ceiling=today + DAY, unit=DAY)
        if halves is None:
            leaves.append((lo, hi))
        else:
            assert halves[0][0] == lo and halves[1][1] == hi and halves[0][1] == halves[1][0]
            pending += halves
    starts = sorted(lo or date(2026, 1, 1) for lo, _ in leaves)
    assert starts == [date(2026, 1, 1) + i * DAY for i in range((today - date(2026, 1, 1)).days + 1)]


def test_the_spiders_windows_come_from_it():
    assert split_years([2027, 2026, 2025]) == [[2027], [2026, 2025]]
    assert split_years([2027]) is None and split_years([]) is None
    assert split_slice((date(2020, 1, 1), date(2020, 1, 5)), date(2026, 1, 1))[0] == (date(2020, 1, 1), date(2020, 1, 3))


def test_next_window_moves_forward_with_a_day_of_overlap_or_not_at_all():
    assert next_window("2022-03-10T08:00:00Z", None) == "2022-03-09"
    assert next_window(datetime(2022, 3, 10, tzinfo=timezone.utc), "2022-03-01") == "2022-03-09"
    assert next_window("2022-03-10T08:00:00Z", "2022-03-09") is None, "more than a window in two days"
    assert next_window(None, None) is None and next_window("not a date", None) is None


def test_window_ends_round_trip_through_json():
    assert as_date("2020-01-03") == date(2020, 1, 3) and as_date(None) is None
    assert as_date(date(2020, 1, 3)) == date(2020, 1, 3) and as_date(datetime(2020, 1, 3, 5)) == date(2020, 1, 3)
