"""RFC 3339 times as the API server writes them, and human durations."""

from __future__ import annotations

import datetime as dt
import re

# Python keeps microseconds; the API may send nanoseconds (e.g. an Event's eventTime).
_EXTRA_DIGITS = re.compile(r"(\.[0-9]{6})[0-9]+")


def parse_time(value: str | None) -> dt.datetime | None:
    """An RFC 3339 time ('Z' or an offset, optional fractional seconds) as an aware datetime.

    None for a missing, empty, non-string or malformed value: callers read optional API fields.
    A time without an offset is taken as UTC, the only zone the API server writes.
    """
    if not value or not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(_EXTRA_DIGITS.sub(r"\1", value.strip()).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def rfc3339(moment: dt.datetime) -> str:
    """A datetime as the API writes metav1.Time: UTC, whole seconds, 'Z' (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def now_rfc3339() -> str:
    """The current time in the form of :func:`rfc3339`."""
    return rfc3339(dt.datetime.now(dt.UTC))


def seconds_since(now: dt.datetime, value: str | None) -> float | None:
    """Age of an API timestamp at ``now`` (negative when it lies ahead); None when missing or malformed."""
    when = parse_time(value)
    return None if when is None else (now - when).total_seconds()


def human_duration(seconds: float | None, *, coarse: bool = False) -> str:
    """A duration for titles and evidence: "45s", "12m", "3h5m", "2d4h"; "unknown" for None.

    ``coarse`` gives one unit, kept in the smaller unit up to twice the larger (kubectl's AGE style:
    "90s", "60m", "47h", "3d"): for ages, where the exact remainder is noise.
    """
    if seconds is None:
        return "unknown"
    if coarse:
        return _coarse(seconds)
    total = int(max(0.0, seconds))
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _coarse(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{int(seconds)}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m"
    if seconds < 172800:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"
