"""Events, core/v1 and events.k8s.io/v1 alike (the gatherer may hand over either)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from infragenius.kube.meta import Obj, meta
from infragenius.kube.time import parse_time
from infragenius.models.findings import ResourceRef


def involved_object(event: Obj) -> Mapping[str, Any]:
    """The object an event is about: core/v1 ``involvedObject`` or events.k8s.io ``regarding``."""
    involved: Mapping[str, Any] = event.get("involvedObject") or event.get("regarding") or {}
    return involved


def involved_ref(event: Obj) -> ResourceRef:
    involved = involved_object(event)
    kind, name = involved.get("kind", ""), involved.get("name", "")
    return ResourceRef(kind=kind, name=name, namespace=involved.get("namespace"))


def event_count(event: Obj) -> int:
    """Occurrences: series.count (events.k8s.io), else the legacy count; at least 1."""
    series = event.get("series") or {}
    return int(series.get("count") or event.get("count") or event.get("deprecatedCount") or 1)


def event_message(event: Obj) -> str:
    message: str = event.get("message") or event.get("note") or ""
    return message


def event_last_seen(event: Obj) -> dt.datetime | None:
    """When an event was last seen. The one precedence every reader uses, newest-first by API semantics:

    1. ``series.lastObservedTime``: set on an isolated event turned series, the latest occurrence;
    2. ``lastTimestamp`` (events.k8s.io: ``deprecatedLastTimestamp``): the legacy last occurrence,
       which the new API keeps only for old clients, so it can lag behind a series;
    3. ``eventTime``: when the first occurrence was observed (MicroTime, new-style events);
    4. ``metadata.creationTimestamp``: always set by the API server, the last resort.

    ``firstTimestamp`` is not a last-seen time, so it is not consulted.
    """
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("deprecatedLastTimestamp"),
        event.get("eventTime"),
        meta(event).get("creationTimestamp"),
    ):
        when = parse_time(value)
        if when is not None:
            return when
    return None


_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


def event_recency(event: Obj) -> dt.datetime:
    """A sort key by :func:`event_last_seen` (``sorted(..., reverse=True)``: newest first, timeless ones last)."""
    return event_last_seen(event) or _NEVER


def event_first_seen(event: Obj) -> dt.datetime | None:
    """When an event was first seen: firstTimestamp, eventTime, else its creation."""
    for value in (
        event.get("firstTimestamp"),
        event.get("deprecatedFirstTimestamp"),
        event.get("eventTime"),
        meta(event).get("creationTimestamp"),
    ):
        when = parse_time(value)
        if when is not None:
            return when
    return None
