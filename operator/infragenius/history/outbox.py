"""The notification outbox: which messages a run owes each sink (pure), and the queue's SQL.

A run's messages are inserted in the transaction that records the run (``HistoryStore.write_run``), keyed
by (run, sink, message): a retried or repeated run adds nothing. The dispatcher claims due rows with a
lease (``FOR UPDATE SKIP LOCKED``), so two operator replicas never send the same row, and a row whose
sender died (SIGKILL) is claimed again once its lease ends. Messages name findings, never Secret values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
OPENING = {"New": "new", "Reopened": "reopened", "Flapping": "flapping"}
DIGEST_LISTED = 20  # findings listed in a digest; the total is given


@dataclass(frozen=True)
class Planned:
    sink: str
    sink_config: dict[str, Any]
    message_key: str
    message: dict[str, Any]


def _entry(change: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": change["finding_id"],
        "state": change["to_state"],
        "detector": change.get("detector", ""),
        "severity": change.get("severity", "info"),
        "resource": change.get("resource", ""),
        "title": change.get("title", ""),
        "firstSeen": change.get("first_seen"),
    }


def _grouped(
    event: str, entries: list[dict[str, Any]], digest_over: int, base: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """One message per finding, or one digest when there are more than ``digest_over``."""
    if len(entries) > digest_over:
        listed = sorted(entries, key=lambda e: (-SEVERITY_RANK.get(e["severity"], 0), e["id"]))[:DIGEST_LISTED]
        return [
            (f"digest:{event}", {**base, "event": "digest", "of": event, "total": len(entries), "findings": listed})
        ]
    return [
        (f"{e['state'].lower()}:{e['id']}", {**base, "event": OPENING.get(e["state"], "resolved"), "findings": [e]})
        for e in entries
    ]


def plan(
    spec: Mapping[str, Any], transitions: Sequence[Mapping[str, Any]], analysis: Mapping[str, str], run_id: str, at: str
) -> list[Planned]:
    """The messages one run owes each sink of ``spec.notify`` (the Analysis spec as recorded)."""
    notify = spec.get("notify") or {}
    sinks = notify.get("sinks") or []
    if not sinks:
        return []
    digest_over = int(notify.get("digestOver", 10))
    base = {"analysis": dict(analysis), "runId": run_id, "at": at}
    out: list[Planned] = []
    for sink in sinks:
        floor = SEVERITY_RANK.get(str(sink.get("minSeverity", "warning")), 1)
        if sink.get("type") == "PagerDuty":
            floor = SEVERITY_RANK["critical"]  # a page: critical findings only, triggered and resolved
        wanted = [
            _entry(t)
            for t in transitions
            if t.get("notifiable", True) and SEVERITY_RANK.get(str(t.get("severity")), 0) >= floor
        ]
        opening = [e for e in wanted if e["state"] in OPENING]
        resolved = [e for e in wanted if e["state"] == "Resolved"]
        limit = 10**9 if sink.get("type") == "PagerDuty" else digest_over  # each page has its own dedup key
        messages = _grouped("opened", opening, limit, base) + _grouped("resolved", resolved, limit, base)
        config = {k: v for k, v in sink.items() if k != "name"}
        out += [Planned(str(sink["name"]), config, key, message) for key, message in messages]
    return out


INSERT = (
    "INSERT INTO notification_outbox (request_id, resource_uid, namespace, analysis, sink, sink_config,"
    " message_key, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def insert_rows(request_id: int, resource_uid: str, namespace: str, name: str, planned: Sequence[Planned]) -> list[Any]:
    return [
        (request_id, resource_uid, namespace, name, p.sink, Jsonb(p.sink_config), p.message_key, Jsonb(p.message))
        for p in planned
    ]


@dataclass(frozen=True)
class Settlement:
    """What happened to one claimed row: ``state`` pending means due again after ``delay`` seconds."""

    row_id: int
    state: str  # sent, failed, suppressed, pending
    status: int | None = None
    error: str | None = None
    delay: float = 0.0
    counted: bool = True  # an attempt was made (a rate-limit deferral is not one)


@dataclass(frozen=True)
class Claimed:
    id: int
    resource_uid: str
    namespace: str
    analysis: str
    sink: str
    sink_config: dict[str, Any]
    message_key: str
    message: dict[str, Any]
    attempts: int
    created_at: dt.datetime


class Outbox:
    """The queue's SQL over the history pool."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def claim(self, limit: int, lease_seconds: float) -> list[Claimed]:
        """Due rows, leased to this caller; oldest first."""
        sql = (
            "UPDATE notification_outbox SET lease_until = now() + make_interval(secs => %(lease)s)"
            " WHERE id IN (SELECT id FROM notification_outbox WHERE state = 'pending' AND next_attempt_at <= now()"
            " AND (lease_until IS NULL OR lease_until < now()) ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " RETURNING id, resource_uid, namespace, analysis, sink, sink_config, message_key, message, attempts,"
            " created_at"
        )
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, {"lease": lease_seconds, "limit": limit})
            rows = await cur.fetchall()
            await conn.commit()
        return sorted((Claimed(**row) for row in rows), key=lambda c: c.id)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """A batch's outcomes in one transaction (pipelined): sent, failed, suppressed, or pending again."""
        if not settlements:
            return
        sql = (
            "UPDATE notification_outbox SET state = %(state)s, attempts = attempts + %(counted)s,"
            " last_status = coalesce(%(status)s, last_status), last_error = coalesce(%(error)s, last_error),"
            " lease_until = NULL, sent_at = CASE WHEN %(state)s = 'sent' THEN now() ELSE sent_at END,"
            " next_attempt_at = CASE WHEN %(state)s = 'pending' THEN now() + make_interval(secs => %(delay)s)"
            " ELSE next_attempt_at END WHERE id = %(id)s"
        )
        params = [
            {
                "id": s.row_id,
                "state": s.state,
                "counted": 1 if s.counted else 0,
                "status": s.status,
                "error": s.error,
                "delay": s.delay,
            }
            for s in settlements
        ]
        async with self.pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.executemany(sql, params)
            await conn.commit()

    async def sent_within(self, resource_uid: str, sink: str, finding_id: str, seconds: float) -> bool:
        """A message about this finding went to this sink in the last ``seconds`` (its cooldown)."""
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT 1 FROM notification_outbox WHERE resource_uid = %s AND sink = %s AND state = 'sent'"
                    " AND message->'findings'->0->>'id' = %s AND message->>'event' <> 'digest'"
                    " AND sent_at > now() - make_interval(secs => %s) LIMIT 1",
                    (resource_uid, sink, finding_id, seconds),
                )
            ).fetchone()
        return row is not None

    async def delivery(self, resource_uid: str) -> list[dict[str, Any]]:
        """Per sink: sent, pending, failed, the last send and the last error."""
        sql = (
            "SELECT sink, count(*) FILTER (WHERE state = 'sent') AS sent,"
            " count(*) FILTER (WHERE state = 'pending') AS pending,"
            " count(*) FILTER (WHERE state = 'failed') AS failed, max(sent_at) AS last_sent_at,"
            " (array_agg(last_error ORDER BY id DESC) FILTER (WHERE last_error IS NOT NULL))[1] AS last_error"
            " FROM notification_outbox WHERE resource_uid = %s GROUP BY sink ORDER BY sink"
        )
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, (resource_uid,))
            return list(await cur.fetchall())

    async def pending(self) -> int:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT count(*) FROM notification_outbox WHERE state = 'pending'")
            ).fetchone()
        return int(row[0]) if row else 0
