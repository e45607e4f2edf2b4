"""Trends over the findings history: open findings over time, mean time to resolve, top recurring problems.

Read-only queries over ``findings`` and ``finding_transitions`` (migration 0003); each is one statement,
parameterised, bounded by a time range and a row limit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

MAX_ROWS = 500


@dataclass(frozen=True)
class TrendFilter:
    """Which findings: of a namespace, a workload (Kind/name, its pods included), a detector; over ``days``."""

    namespace: str | None = None
    workload: str | None = None  # Kind/name, e.g. Deployment/checkout
    detector: str | None = None
    days: int = 30
    bucket_hours: int = 24

    def where(self, alias: str) -> tuple[str, dict[str, Any]]:
        """SQL conditions on a ``findings`` row (alias ``alias``) and their parameters."""
        parts: list[str] = []
        params: dict[str, Any] = {"days": self.days}
        if self.namespace:
            parts.append(f"{alias}.namespace = %(namespace)s")
            params["namespace"] = self.namespace
        if self.detector:
            parts.append(f"{alias}.detector = %(detector)s")
            params["detector"] = self.detector
        if self.workload:
            kind, _, name = self.workload.partition("/")
            parts.append(
                f"(({alias}.kind = %(wkind)s AND {alias}.name = %(wname)s)"
                f" OR ({alias}.owner_kind = %(wkind)s AND {alias}.owner_name = %(wname)s))"
            )
            params.update(wkind=kind, wname=name)
        return "".join(f" AND {p}" for p in parts), params


def _transition_where(query: TrendFilter) -> tuple[str, dict[str, Any]]:
    """The same filter on ``finding_transitions`` (resource is Kind/namespace/name)."""
    parts: list[str] = []
    params: dict[str, Any] = {"days": query.days}
    if query.namespace:
        parts.append("split_part(t.resource, '/', 2) = %(namespace)s")
        params["namespace"] = query.namespace
    if query.detector:
        parts.append("t.detector = %(detector)s")
        params["detector"] = query.detector
    if query.workload:
        kind, _, name = query.workload.partition("/")
        parts.append("split_part(t.resource, '/', 1) = %(wkind)s AND split_part(t.resource, '/', 3) = %(wname)s")
        params.update(wkind=kind, wname=name)
    return "".join(f" AND {p}" for p in parts), params


@dataclass(frozen=True)
class OpenPoint:
    bucket: str
    critical: int
    warning: int
    info: int


@dataclass(frozen=True)
class ResolveTime:
    detector: str
    severity: str
    resolved: int
    mean_seconds: float
    max_seconds: float


@dataclass(frozen=True)
class Recurring:
    finding_id: str
    detector: str
    resource: str
    title: str
    episodes: int
    last: str


@dataclass(frozen=True)
class Trends:
    open_over_time: list[OpenPoint]
    time_to_resolve: list[ResolveTime]
    recurring: list[Recurring]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def open_over_time(conn: psycopg.AsyncConnection[Any], query: TrendFilter) -> list[OpenPoint]:
    """Per time bucket, the open (not silenced) findings of each Analysis's last run in it, summed; a bucket
    whose runs found nothing open shows zeros."""
    where, params = query.where("f")
    params["hours"] = query.bucket_hours
    scope = " AND (r.namespace = %(namespace)s OR a.target_namespace = %(namespace)s)" if query.namespace else ""
    sql = (
        "WITH runs AS (SELECT r.id, row_number() OVER (PARTITION BY r.resource_uid, b.bucket"
        " ORDER BY r.requested_at DESC, r.id DESC) AS rn, b.bucket"
        " FROM requests r JOIN analyses a ON a.request_id = r.id"
        " CROSS JOIN LATERAL (SELECT date_bin(make_interval(hours => %(hours)s), r.requested_at,"
        " TIMESTAMPTZ '2000-01-01') AS bucket) b"
        f" WHERE r.kind = 'Analysis' AND r.requested_at > now() - make_interval(days => %(days)s){scope})"
        " SELECT runs.bucket, count(f.id) FILTER (WHERE f.severity = 'critical') AS critical,"
        " count(f.id) FILTER (WHERE f.severity = 'warning') AS warning,"
        " count(f.id) FILTER (WHERE f.severity = 'info') AS info"
        f" FROM runs LEFT JOIN findings f ON f.request_id = runs.id AND NOT f.silenced{where}"
        f" WHERE runs.rn = 1 GROUP BY runs.bucket ORDER BY runs.bucket LIMIT {MAX_ROWS}"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    return [OpenPoint(_iso(r["bucket"]), int(r["critical"]), int(r["warning"]), int(r["info"])) for r in rows]


async def time_to_resolve(conn: psycopg.AsyncConnection[Any], query: TrendFilter) -> list[ResolveTime]:
    """Mean and longest time from first seen to resolved, by detector and severity."""
    where, params = _transition_where(query)
    sql = (
        "SELECT t.detector, t.severity, count(*) AS resolved,"
        " avg(extract(epoch FROM t.at - t.first_seen)) AS mean_s, max(extract(epoch FROM t.at - t.first_seen)) AS max_s"
        " FROM finding_transitions t"
        " WHERE t.to_state = 'Resolved' AND t.first_seen IS NOT NULL"
        f" AND t.at > now() - make_interval(days => %(days)s){where}"
        f" GROUP BY t.detector, t.severity ORDER BY mean_s DESC LIMIT {MAX_ROWS}"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    return [
        ResolveTime(r["detector"], r["severity"], int(r["resolved"]), float(r["mean_s"]), float(r["max_s"]))
        for r in rows
    ]


async def recurring(conn: psycopg.AsyncConnection[Any], query: TrendFilter, limit: int = 10) -> list[Recurring]:
    """The problems that came back most often: episodes are New and Reopened transitions."""
    where, params = _transition_where(query)
    params["limit"] = min(max(limit, 1), MAX_ROWS)
    sql = (
        "SELECT t.finding_id, min(t.detector) AS detector, min(t.resource) AS resource, max(t.title) AS title,"
        " count(*) AS episodes, max(t.at) AS last FROM finding_transitions t"
        " WHERE t.to_state IN ('New', 'Reopened', 'Flapping')"
        f" AND t.at > now() - make_interval(days => %(days)s){where}"
        " GROUP BY t.finding_id ORDER BY episodes DESC, last DESC LIMIT %(limit)s"
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    return [
        Recurring(r["finding_id"], r["detector"], r["resource"], r["title"], int(r["episodes"]), _iso(r["last"]))
        for r in rows
    ]


async def finding_trends(conn: psycopg.AsyncConnection[Any], query: TrendFilter, limit: int = 10) -> Trends:
    return Trends(
        await open_over_time(conn, query), await time_to_resolve(conn, query), await recurring(conn, query, limit)
    )


async def trends(dsn: str, query: TrendFilter, limit: int = 10) -> Trends:
    async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=10) as conn:
        return await finding_trends(conn, query, limit)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
