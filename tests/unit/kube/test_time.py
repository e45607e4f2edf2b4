"""RFC 3339 parsing and formatting as the API server reads and writes times."""

from __future__ import annotations

import datetime as dt

import pytest

from infragenius.kube.time import human_duration, now_rfc3339, parse_time, rfc3339, seconds_since

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02:00", dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)),
        ("2024-05-01T05:30:00-04:30", dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)),
        ("2024-05-01T10:00:00.5Z", dt.datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        # MicroTime (Event.eventTime) has microseconds; some clients send nanoseconds: drop the rest.
        ("2024-05-01T10:00:00.123456Z", dt.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T10:00:00.123456789Z", dt.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        # No offset: the API server only writes UTC, so read it as UTC rather than as a naive time.
        ("2024-05-01T10:00:00", dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: dt.datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is not None


@pytest.mark.parametrize("value", [None, "", "not a time", "2024-02-30T00:00:00Z", "2024-05-01T25:00:00Z"])
def test_parse_time_missing_or_malformed_is_none(value: str | None) -> None:
    assert parse_time(value) is None


def test_parse_time_non_string_is_none() -> None:
    assert parse_time(12345) is None  # type: ignore[arg-type]


def test_rfc3339_is_utc_whole_seconds_with_z() -> None:
    moment = dt.datetime(2024, 5, 1, 12, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert rfc3339(moment) == "2024-05-01T10:00:00Z"
    assert rfc3339(dt.datetime(2024, 5, 1, 10, 0, 0)) == "2024-05-01T10:00:00Z"


def test_rfc3339_round_trips_through_parse_time() -> None:
    text = "2024-05-01T10:00:00Z"
    moment = parse_time(text)
    assert moment is not None and rfc3339(moment) == text


def test_now_rfc3339_is_now() -> None:
    before = dt.datetime.now(UTC).replace(microsecond=0)
    text = now_rfc3339()
    after = dt.datetime.now(UTC)
    assert text.endswith("Z") and "." not in text
    moment = parse_time(text)
    assert moment is not None and before <= moment <= after


def test_seconds_since() -> None:
    now = dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    assert seconds_since(now, "2024-05-01T09:58:30Z") == 90.0
    assert seconds_since(now, "2024-05-01T10:01:00Z") == -60.0  # ahead (e.g. a deletionTimestamp)
    assert seconds_since(now, None) is None
    assert seconds_since(now, "garbage") is None


@pytest.mark.parametrize(
    ("seconds", "fine", "coarse"),
    [
        (None, "unknown", "unknown"),
        (-5, "0s", "0s"),
        (45, "45s", "45s"),
        (90, "1m", "90s"),
        (720, "12m", "12m"),
        (3600, "1h", "60m"),
        (3600 + 300, "1h5m", "65m"),
        (3 * 3600 + 300, "3h5m", "3h"),
        (86400, "1d", "24h"),
        (2 * 86400 + 4 * 3600, "2d4h", "2d"),
    ],
)
def test_human_duration(seconds: float | None, fine: str, coarse: str) -> None:
    assert human_duration(seconds) == fine
    assert human_duration(seconds, coarse=True) == coarse
