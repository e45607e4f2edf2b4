"""Calendar-aligned SLO windows, the incident links of a burning review, and the attribution as LLM evidence."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from infragenius.models.slo import AttributionEntry, AttributionStatus, SLOReviewSpec
from infragenius.slo import math as slo_math
from infragenius.slo.incidents import overlapping
from infragenius.slo.periods import resolve
from infragenius.slo.reconcile import review_findings

UTC = dt.UTC


def spec(**fields: Any) -> SLOReviewSpec:
    return SLOReviewSpec.model_validate(
        {"service": "checkout", "objective": 99.9, "sli": {"raw": {"errorRatioQuery": "x[$window]"}}, **fields}
    )


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


def test_rolling_window_is_the_spec_window_back_from_the_instant() -> None:
    window = resolve(spec(window="28d"), at(2026, 12, 2, 10))
    assert (window.lookback, window.seconds, window.calendar, window.label) == ("28d", 28 * 86400, False, "28d")
    assert window.status().model_dump() == {
        "start": "2026-11-04T10:00:00Z",
        "end": "2026-12-02T10:00:00Z",
        "calendar": False,
    }


@pytest.mark.parametrize(
    ("calendar", "instant", "start", "end", "lookback"),
    [
        # January in Berlin starts at 23:00 UTC on New Year's Eve: one hour of it at midnight UTC.
        (
            {"unit": "Month", "timeZone": "Europe/Berlin"},
            at(2025, 1, 1),
            "2024-12-31T23:00:00Z",
            "2025-01-31T23:00:00Z",
            "1h",
        ),
        ({"unit": "Week"}, at(2026, 12, 2, 10), "2026-11-30T00:00:00Z", "2026-12-07T00:00:00Z", "2d10h"),
        (
            {"unit": "Quarter", "timeZone": "Asia/Kolkata"},
            at(2026, 12, 2),
            "2026-09-30T18:30:00Z",
            "2026-12-31T18:30:00Z",
            "62d5h30m",
        ),
        ({"unit": "Year"}, at(2026, 12, 2), "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "335d"),
        # A month anchored on the 31st falls on the last day of February.
        (
            {"unit": "Month", "startTime": "2026-01-31T00:00:00"},
            at(2026, 3, 1),
            "2026-02-28T00:00:00Z",
            "2026-03-31T00:00:00Z",
            "1d",
        ),
        # An anchor in the future still defines the periods before it.
        (
            {"unit": "Day", "startTime": "2030-01-01 06:00:00"},
            at(2026, 12, 2, 5),
            "2026-12-01T06:00:00Z",
            "2026-12-02T06:00:00Z",
            "23h",
        ),
        # The instant a period starts belongs to it (a one-second lookback: a zero range is no PromQL).
        ({"unit": "Day"}, at(2026, 12, 2), "2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z", "1s"),
    ],
)
def test_calendar_period_containing_the_instant(
    calendar: dict[str, str], instant: dt.datetime, start: str, end: str, lookback: str
) -> None:
    window = resolve(spec(calendar=calendar), instant)
    status = window.status()
    assert (status.start, status.end, status.calendar, window.lookback) == (start, end, True, lookback)


@pytest.mark.parametrize(
    ("instant", "hours"),
    [(at(2025, 3, 9, 12), 23), (at(2025, 11, 2, 12), 25), (at(2025, 6, 1, 12), 24)],
    ids=["spring-forward", "fall-back", "summer"],
)
def test_a_local_day_across_dst_is_23_or_25_hours(instant: dt.datetime, hours: int) -> None:
    window = resolve(spec(calendar={"unit": "Day", "timeZone": "America/New_York"}), instant)
    assert window.seconds == hours * 3600


def test_budget_arithmetic_scales_by_the_whole_period() -> None:
    """January is 31 days: the page factor is 2% of 31d over 1h, and the budget is spent so far this month."""
    window = resolve(spec(calendar={"unit": "Month"}), at(2026, 1, 11))
    report = slo_math.evaluate(99.9, window.lookback, 0.0005, {"1h": 0.02, "5m": 0.02}, slo_window_s=window.seconds)
    assert report.alerts[0].factor == pytest.approx(0.02 * 31 * 24)
    assert report.consumed == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("calendar", "message"),
    [
        ({"unit": "Fortnight"}, "calendar.unit"),
        ({"unit": "Month", "timeZone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"unit": "Month", "timeZone": "/etc/passwd"}, "calendar.timeZone"),
        ({"unit": "Month", "timeZone": "Europe/../../etc"}, "calendar.timeZone"),
        ({"unit": "Month", "startTime": "2026-13-01T00:00:00"}, "is not a valid local time"),
        ({"unit": "Month", "startTime": "2026-01-01T00:00:00Z"}, "calendar.startTime"),
    ],
)
def test_invalid_calendars_are_refused(calendar: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        spec(calendar=calendar)


def report(name: str, start: str | None, end: str | None) -> dict[str, Any]:
    status = {} if start is None else {"window": {"start": start, "end": end}}
    return {"metadata": {"name": name}, "status": status}


def test_incident_links_are_the_reports_overlapping_the_burn() -> None:
    items = [
        report("before", "2026-12-02T08:00:00Z", "2026-12-02T08:59:00Z"),
        report("overlaps-start", "2026-12-02T08:30:00Z", "2026-12-02T09:10:00Z"),
        report("inside", "2026-12-02T09:20:00Z", "2026-12-02T09:40:00Z"),
        report("covers", "2026-12-02T00:00:00Z", "2026-12-02T12:00:00Z"),
        report("after", "2026-12-02T10:01:00Z", "2026-12-02T11:00:00Z"),
        report("not-run-yet", None, None),
        report("garbage", "yesterday", "today"),
    ]
    links = overlapping(items, at(2026, 12, 2, 9), at(2026, 12, 2, 10))
    assert [link.name for link in links] == ["covers", "inside", "overlaps-start"]
    assert links[1].model_dump(exclude_none=True) == {
        "name": "inside",
        "start": "2026-12-02T09:20:00Z",
        "end": "2026-12-02T09:40:00Z",
    }


def test_incident_links_are_bounded() -> None:
    items = [report(f"r{i}", "2026-12-02T09:00:00Z", f"2026-12-02T09:{i:02d}:00Z") for i in range(20)]
    links = overlapping(items, at(2026, 12, 2, 9), at(2026, 12, 2, 10))
    assert [link.name for link in links] == ["r19", "r18", "r17", "r16", "r15"]


def test_the_explanation_gets_the_top_contributors_as_evidence() -> None:
    budget_report = slo_math.evaluate(99.9, "30d", 0.0005, {"1h": 0.02, "5m": 0.02})
    attribution = AttributionStatus(
        available=True,
        window="5m",
        labels=["route", "code"],
        top=[
            AttributionEntry(labels={"route": "/checkout", "code": "503"}, share=0.8, errors=80),
            AttributionEntry(labels={"route": "/cart", "code": "500"}, share=0.15, errors=15),
        ],
        total_errors=100,
    )
    (burning,) = review_findings(budget_report, "shop", "checkout", "checkout", attribution)
    evidence = {e.source: e.value for e in burning.evidence}
    assert evidence["errorsBy:route=/checkout,code=503"] == "80.0% of 100 errors over 5m"
    assert evidence["errorsBy:route=/cart,code=500"] == "15.0% of 100 errors over 5m"
    without = review_findings(budget_report, "shop", "checkout", "checkout", None)[0]
    assert not any(e.source.startswith("errorsBy:") for e in without.evidence)
