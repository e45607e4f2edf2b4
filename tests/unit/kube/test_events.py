"""Events: the one last-seen precedence, counts and the involved object."""

from __future__ import annotations

import datetime as dt

from infragenius.detectors.evidence import event_evidence
from infragenius.kube.events import (
    event_count,
    event_first_seen,
    event_last_seen,
    event_message,
    involved_object,
    involved_ref,
)
from infragenius.kube.time import parse_time
from infragenius.models.findings import ResourceRef


def _at(text: str) -> dt.datetime:
    moment = parse_time(text)
    assert moment is not None
    return moment


def test_last_seen_precedence() -> None:
    full = {
        "series": {"lastObservedTime": "2025-01-15T11:59:00.000000Z"},
        "lastTimestamp": "2025-01-15T11:50:00Z",
        "eventTime": "2025-01-15T11:00:00.000000Z",
        "firstTimestamp": "2025-01-15T10:00:00Z",
        "metadata": {"creationTimestamp": "2025-01-15T10:00:00Z"},
    }
    assert event_last_seen(full) == _at("2025-01-15T11:59:00Z")
    without_series = {k: v for k, v in full.items() if k != "series"}
    assert event_last_seen(without_series) == _at("2025-01-15T11:50:00Z")
    new_style = {"deprecatedLastTimestamp": "2025-01-15T11:40:00Z", "eventTime": "2025-01-15T11:00:00Z"}
    assert event_last_seen(new_style) == _at("2025-01-15T11:40:00Z")
    only_event_time = {"eventTime": "2025-01-15T11:00:00.123456789Z", "firstTimestamp": "2025-01-15T10:00:00Z"}
    assert event_last_seen(only_event_time) == _at("2025-01-15T11:00:00.123456Z")
    assert event_last_seen({"metadata": {"creationTimestamp": "2025-01-15T10:00:00Z"}}) == _at("2025-01-15T10:00:00Z")
    assert event_last_seen({}) is None


def test_first_seen() -> None:
    assert event_first_seen({"firstTimestamp": "2025-01-15T10:00:00Z", "eventTime": "2025-01-15T11:00:00Z"}) == _at(
        "2025-01-15T10:00:00Z"
    )
    assert event_first_seen({"eventTime": "2025-01-15T11:00:00Z"}) == _at("2025-01-15T11:00:00Z")


def test_newest_event_is_the_same_for_every_reader() -> None:
    """Where the old readers disagreed: a series event whose stale lastTimestamp looks newer as a string.

    The workload detectors took lastTimestamp first, the infra detectors and the timeline
    series.lastObservedTime first; so "b" was newest to one detector and "a" to another.
    """
    a = {
        "reason": "BackOff",
        "message": "a",
        "lastTimestamp": "2025-01-15T11:00:00Z",
        "series": {"count": 3, "lastObservedTime": "2025-01-15T11:58:00.000000Z"},
        "involvedObject": {"kind": "Pod", "name": "p"},
    }
    b = {
        "reason": "BackOff",
        "message": "b",
        "lastTimestamp": "2025-01-15T11:30:00Z",
        "involvedObject": {"kind": "Pod", "name": "p"},
    }
    assert event_last_seen(a) > event_last_seen(b)  # type: ignore[operator]
    # The evidence shows the newest message, whichever order the events come in.
    assert event_evidence([a, b]) == [("event:BackOff", "count=4: a")]
    assert event_evidence([b, a]) == [("event:BackOff", "count=4: a")]


def test_count_message_and_involved_object() -> None:
    assert event_count({"series": {"count": 7}, "count": 2}) == 7
    assert event_count({"count": 2}) == 2
    assert event_count({"deprecatedCount": 3}) == 3
    assert event_count({}) == 1
    assert event_message({"note": "new style"}) == "new style"
    assert event_message({"message": "old style", "note": "x"}) == "old style"
    new_style = {"regarding": {"kind": "Pod", "name": "p", "namespace": "shop"}}
    assert involved_object(new_style)["name"] == "p"
    assert involved_ref(new_style) == ResourceRef(kind="Pod", name="p", namespace="shop")
    assert involved_ref({}) == ResourceRef(kind="", name="")
