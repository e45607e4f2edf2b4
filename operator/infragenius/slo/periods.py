"""The SLO window a review measures: rolling (back from the instant) or a calendar period (pure, no clock).

A calendar period is counted in local wall-clock time of its zone, so a "day" across a DST change is 23 or
25 hours and a "month" is 28 to 31 days, as people read them. Periods repeat every unit from an anchor
(``startTime``, default the natural boundary: midnight, Monday, the 1st, the quarter's or the year's first day);
a month anchored on the 31st falls on the last day of shorter months.
"""

from __future__ import annotations

import calendar as cal
import datetime as dt
import zoneinfo
from dataclasses import dataclass

from infragenius.models.slo import CalendarUnit, SLOCalendarSpec, SLOPeriod, SLOReviewSpec
from infragenius.slo.math import format_seconds, window_seconds

_MONTHS = {CalendarUnit.month: 1, CalendarUnit.quarter: 3, CalendarUnit.year: 12}
_DAYS = {CalendarUnit.day: 1, CalendarUnit.week: 7}
# Fixed lengths for what cannot follow the calendar: static Prometheus rules (range selectors are constant).
NOMINAL_WINDOW = {
    CalendarUnit.day: "1d",
    CalendarUnit.week: "7d",
    CalendarUnit.month: "30d",
    CalendarUnit.quarter: "91d",
    CalendarUnit.year: "365d",
}

PERIOD_ADJECTIVE = {
    CalendarUnit.day: "daily",
    CalendarUnit.week: "weekly",
    CalendarUnit.month: "monthly",
    CalendarUnit.quarter: "quarterly",
    CalendarUnit.year: "yearly",
}


@dataclass(frozen=True)
class SLOWindow:
    """What the review queries (``lookback``) and what the budget arithmetic scales by (``seconds``)."""

    lookback: str  # a PromQL range: 30d, or the time since the calendar period began, e.g. 13d4h
    seconds: float  # the whole window's length: 30d, or this period's (31 days in January)
    label: str  # for summaries ("of the 30d budget", "of the monthly budget")
    start: dt.datetime
    end: dt.datetime
    calendar: bool

    def status(self) -> SLOPeriod:
        return SLOPeriod(start=_rfc3339(self.start), end=_rfc3339(self.end), calendar=self.calendar)


def _rfc3339(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# Midnight of a Monday that is also the first day of a month, a quarter and a year: every natural boundary.
DEFAULT_ANCHOR = dt.datetime(2024, 1, 1)


def _add_months(anchor: dt.datetime, months: int) -> dt.datetime:
    index = anchor.year * 12 + anchor.month - 1 + months
    year, month = divmod(index, 12)
    day = min(anchor.day, cal.monthrange(year, month + 1)[1])
    return anchor.replace(year=year, month=month + 1, day=day)


def _nth_start(anchor: dt.datetime, unit: CalendarUnit, n: int) -> dt.datetime:
    """The local (naive) start of period ``n`` counted from the anchor."""
    if unit in _DAYS:
        return anchor + dt.timedelta(days=_DAYS[unit] * n)
    return _add_months(anchor, _MONTHS[unit] * n)


def _estimate(anchor: dt.datetime, unit: CalendarUnit, local: dt.datetime) -> int:
    if unit in _DAYS:
        return (local - anchor).days // _DAYS[unit]
    return ((local.year - anchor.year) * 12 + local.month - anchor.month) // _MONTHS[unit]


def _aware(local: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """Local wall-clock time to a UTC instant (UTC: aware datetimes in one zone subtract as wall clocks).

    A time skipped by a DST change is read with the offset before it, so it lands just after the gap; a
    repeated time takes its first occurrence."""
    return local.replace(tzinfo=zone).astimezone(dt.UTC)


def calendar_period(spec: SLOCalendarSpec, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The [start, end) instants of the period containing ``at``."""
    zone = zoneinfo.ZoneInfo(spec.time_zone)
    anchor = dt.datetime.fromisoformat(spec.start_time.replace(" ", "T")) if spec.start_time else DEFAULT_ANCHOR
    local = at.astimezone(zone).replace(tzinfo=None)
    n = _estimate(anchor, spec.unit, local)
    # The estimate is off by at most one either way (month-end clamping, the time of day).
    while _aware(_nth_start(anchor, spec.unit, n), zone) > at:
        n -= 1
    while _aware(_nth_start(anchor, spec.unit, n + 1), zone) <= at:
        n += 1
    return _aware(_nth_start(anchor, spec.unit, n), zone), _aware(_nth_start(anchor, spec.unit, n + 1), zone)


def resolve(spec: SLOReviewSpec, at: dt.datetime) -> SLOWindow:
    """The window a review at ``at`` measures."""
    if spec.calendar is None:
        seconds = window_seconds(spec.window)
        return SLOWindow(spec.window, seconds, spec.window, at - dt.timedelta(seconds=seconds), at, calendar=False)
    start, end = calendar_period(spec.calendar, at)
    elapsed = max(int((at - start).total_seconds()), 1)  # a zero range is no PromQL; one second has no events
    return SLOWindow(
        lookback=format_seconds(elapsed),
        seconds=(end - start).total_seconds(),
        label=PERIOD_ADJECTIVE[spec.calendar.unit],
        start=start,
        end=end,
        calendar=True,
    )


def rule_window(spec: SLOReviewSpec) -> str:
    """The fixed window static rules use: the rolling window, or the calendar unit's nominal length."""
    return spec.window if spec.calendar is None else NOMINAL_WINDOW[spec.calendar.unit]
