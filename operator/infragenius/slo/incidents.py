"""Link a burning SLOReview to the IncidentReports of its namespace that cover the burning lookback.

One namespaced LIST per review that is not Healthy; the links are a convenience, so a failed LIST leaves
them out (logged) and never fails the review. Only reports in the review's own namespace are read: a
tenant's review never learns about another namespace.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from infragenius import kubeapi
from infragenius.models.api import INCIDENT_REPORT
from infragenius.models.slo import MAX_INCIDENT_LINKS, IncidentLink

RETRY = kubeapi.RetryPolicy(attempts=2, deadline=10.0)


def _instant(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def overlapping(items: list[Mapping[str, Any]], start: dt.datetime, end: dt.datetime) -> list[IncidentLink]:
    """Reports whose computed window (status.window) overlaps [start, end], latest window end first."""
    found: list[tuple[dt.datetime, IncidentLink]] = []
    for item in items:
        window = (item.get("status") or {}).get("window") or {}
        w_start, w_end = _instant(window.get("start")), _instant(window.get("end"))
        if w_start is None or w_end is None or w_start > end or w_end < start:
            continue
        name = str((item.get("metadata") or {}).get("name", ""))[:253]
        found.append((w_end, IncidentLink(name=name, start=window["start"], end=window["end"])))
    found.sort(key=lambda pair: (pair[0], pair[1].name), reverse=True)
    return [link for _, link in found[:MAX_INCIDENT_LINKS]]


async def covering_incidents(
    api: client.ApiClient, namespace: str, start: dt.datetime, end: dt.datetime, timeout: float = 10.0
) -> list[IncidentLink]:
    """The links, or raises ``kubeapi.TRANSPORT_ERRORS`` / ``ApiException`` for the caller to report."""
    path = INCIDENT_REPORT.collection_path(namespace)
    body = await asyncio.to_thread(kubeapi.request, api, "GET", path, timeout=(5.0, timeout), policy=RETRY)
    return overlapping(list(body.get("items") or []), start, end)
