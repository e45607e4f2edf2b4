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
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def rfc3339(moment: dt.datetime) -> str:
    """A datetime as the API writes metav1.Time: UTC, whole seconds, 'Z' (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def now_rfc3339() -> str:
    """The current time in the form of :func:`rfc3339`."""
    return rfc3339(dt.datetime.now(dt.timezone.utc))
