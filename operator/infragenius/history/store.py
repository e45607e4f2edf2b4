"""Postgres history through psycopg 3's async pool: migrations, idempotent run writes, queries."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from infragenius.history import outbox

#: A Postgres pod deleted or a node lost leaves no one to answer: without these a write on an open
#: connection waits for TCP's retransmissions (about 15 minutes) before it fails and is retried.
#: libpq parameters: unacknowledged data fails the connection after 15 s, an idle one is probed.
DEAD_PEER_DETECTION = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}

# Any constant works; every replica uses the same one, so migrations run one replica at a time.
MIGRATION_LOCK = 0x1A7E_C0DE
log = logging.getLogger(__name__)
_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class RunRecord:
    """Everything one run writes; (resource_uid, generation, run_id) identifies it."""

    kind: str
    namespace: str
    name: str
    resource_uid: str
    generation: int
    run_id: str
    trigger: str
    requested_at: dt.datetime
    target_namespace: str
    phase: str
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    duration_seconds: float | None
    gather_seconds: float | None
    detect_seconds: float | None
    counts: dict[str, int]
    summary: str
    missing: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    # Lifecycle changes of this run (an Analysis's New, Reopened, Flapping, Resolved findings).
    transitions: list[dict[str, Any]] = field(default_factory=list)
    explanation: dict[str, Any] | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.resource_uid, self.generation, self.run_id)


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every shipped migration, in order."""
    found = []
    for entry in resources.files("infragenius.history").joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


class HistoryStore:
    def __init__(
        self, conninfo: str, *, max_size: int = 4, timeout: float = 5.0, reconnect_max_seconds: float = 15.0
    ) -> None:
        """``reconnect_max_seconds``: the longest wait between two attempts to connect while Postgres is down."""
        self.reconnect_rounds = 0  # reconnection rounds that ran out while Postgres stayed away
        # Set on every new connection, so a writer waiting out an outage retries as soon as Postgres is back.
        self.connected = asyncio.Event()
        # Short connect timeout so an outage is noticed quickly and the recorder can buffer.
        self.pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=timeout,
            kwargs={"connect_timeout": max(1, int(timeout)), "autocommit": False, **DEAD_PEER_DETECTION},
            # psycopg_pool doubles its delay between attempts and clamps it to what is left of
            # reconnect_timeout, so no wait exceeds it; when a round runs out we start the next at once.
            reconnect_timeout=reconnect_max_seconds,
            reconnect_failed=self._reconnect_failed,
            # A connection Postgres dropped while idle (a restart) is replaced, not handed to a write.
            check=AsyncConnectionPool.check_connection,
            configure=self._on_connect,
        )

    async def _on_connect(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.connected.set()

    async def _reconnect_failed(self, pool: AsyncConnectionPool) -> None:
        """Called by the pool when a round of attempts ran out: never give up while the operator runs."""
        self.reconnect_rounds += 1
        if pool.closed:
            return
        log.warning("history: Postgres still unreachable after %.0fs of attempts; trying again", pool.reconnect_timeout)
        # check() grows the pool when it has no connection, which schedules a fresh round of attempts now.
        await pool.check()

    async def open(self, wait: bool = True, timeout: float = 10.0) -> None:
        await self.pool.open(wait=wait, timeout=timeout)

    async def close(self) -> None:
        await self.pool.close()

    async def migrate(self) -> list[int]:
        """Apply pending migrations under an advisory lock; returns the versions applied now."""
        applied_now: list[int] = []
        async with self.pool.connection() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                done = {
                    row[0] for row in await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
                }
                for version, name, sql in migrations():
                    if version in done:
                        continue
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                    applied_now.append(version)
        return applied_now

    async def write_run(self, record: RunRecord) -> bool:
        """Write one run in one transaction; False when it was already written (a retry or restart)."""
        record = storable(record)
        async with self.pool.connection() as conn:
            async with conn.transaction():
                row = await (
                    await conn.execute(
                        "INSERT INTO requests (kind, namespace, name, resource_uid, generation, run_id, trigger, spec,"
                        " requested_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (resource_uid, generation, run_id) DO NOTHING RETURNING id",
                        (
                            record.kind,
                            record.namespace,
                            record.name,
                            record.resource_uid,
                            record.generation,
                            record.run_id,
                            record.trigger,
                            Jsonb(record.spec),
                            record.requested_at,
                        ),
                    )
                ).fetchone()
                if row is None:
                    return False
                request_id = row[0]
                await conn.execute(
                    "INSERT INTO analyses (request_id, target_namespace, phase, started_at, completed_at,"
                    " duration_seconds, gather_seconds, detect_seconds, critical, warning, info, summary, missing,"
                    " metadata) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        request_id,
                        record.target_namespace,
                        record.phase,
                        record.started_at,
                        record.completed_at,
                        record.duration_seconds,
                        record.gather_seconds,
                        record.detect_seconds,
                        record.counts.get("critical", 0),
                        record.counts.get("warning", 0),
                        record.counts.get("info", 0),
                        record.summary,
                        Jsonb(record.missing),
                        Jsonb(record.metadata),
                    ),
                )
                explanation = record.explanation or {}
                await conn.execute(
                    "INSERT INTO results (request_id, findings, explanation, recommendations, confidence, model,"
                    " prompt_version, cached) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        request_id,
                        Jsonb(record.findings),
                        Jsonb(record.explanation) if record.explanation else None,
                        Jsonb(explanation.get("remediation", [])),
                        explanation.get("confidence"),
                        explanation.get("model"),
                        explanation.get("promptVersion"),
                        bool(explanation.get("cached")),
                    ),
                )
                observed = record.completed_at or record.requested_at
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO findings (request_id, finding_id, detector, severity, kind, namespace, name,"
                        " owner_kind, owner_name, title, affected, evidence, observed_at, state, first_seen,"
                        " occurrences, silenced)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [_finding_row(request_id, f, observed) for f in record.findings],
                    )
                    if record.transitions:
                        await cur.executemany(
                            "INSERT INTO finding_transitions (request_id, resource_uid, finding_id, from_state,"
                            " to_state, detector, severity, resource, title, first_seen, silenced, at)"
                            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                            [_transition_row(request_id, record.resource_uid, t, observed) for t in record.transitions],
                        )
                    planned = outbox.plan(
                        record.spec,
                        record.transitions,
                        {"namespace": record.namespace, "name": record.name, "uid": record.resource_uid},
                        record.run_id,
                        observed.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                    )
                    if planned:
                        rows = outbox.insert_rows(
                            request_id, record.resource_uid, record.namespace, record.name, planned
                        )
                        await cur.executemany(outbox.INSERT, rows)
        return True

    async def count_runs(self, namespace: str | None = None) -> int:
        async with self.pool.connection() as conn:
            query = "SELECT count(*) FROM requests" + (" WHERE namespace = %s" if namespace else "")
            row = await (await conn.execute(query, (namespace,) if namespace else ())).fetchone()
        return int(row[0]) if row else 0

    async def findings_for_workload(
        self, namespace: str, kind: str, name: str, *, days: int = 30, severity: str | None = "critical"
    ) -> list[dict[str, Any]]:
        """Findings on a workload or on anything it owns (its pods roll up to it), newest first."""
        query = (
            "SELECT f.finding_id, f.detector, f.severity, f.kind, f.name, f.title, f.affected, f.evidence,"
            " f.observed_at, r.run_id FROM findings f JOIN requests r ON r.id = f.request_id"
            " WHERE f.namespace = %(ns)s AND ((f.kind = %(kind)s AND f.name = %(name)s)"
            " OR (f.owner_kind = %(kind)s AND f.owner_name = %(name)s))"
            " AND f.observed_at > now() - make_interval(days => %(days)s)"
            + (" AND f.severity = %(severity)s" if severity else "")
            + " ORDER BY f.observed_at DESC"
        )
        params = {"ns": namespace, "kind": kind, "name": name, "days": days, "severity": severity}
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(query, params)
            return list(await cursor.fetchall())


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def storable(record: RunRecord) -> RunRecord:
    """The record with every NUL character replaced by U+FFFD: Postgres refuses NUL in text and JSONB, and one
    tenant's event carrying one must not cost a cluster-wide run its history."""
    changes = {f.name: _without_nul(getattr(record, f.name)) for f in dataclasses.fields(record)}
    return dataclasses.replace(record, **changes)


def _finding_row(request_id: int, finding: dict[str, Any], observed: dt.datetime) -> Sequence[Any]:
    resource = finding.get("resource") or {}
    owners = finding.get("owners") or []
    top = owners[-1] if owners else {}
    lifecycle = finding.get("lifecycle") or {}
    return (
        request_id,
        finding["id"],
        finding.get("detector", ""),
        finding.get("severity", "info"),
        resource.get("kind", ""),
        resource.get("namespace"),
        resource.get("name", ""),
        top.get("kind"),
        top.get("name"),
        finding.get("title", ""),
        int(finding.get("affected") or 1),
        Jsonb(finding.get("evidence") or []),
        observed,
        lifecycle.get("state"),
        lifecycle.get("firstSeen"),
        lifecycle.get("occurrences"),
        bool(lifecycle.get("silenced")),
    )


# Connection-level failures (server down, pool timeout): worth retrying. Anything else is a bug in the record.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError)


def _transition_row(request_id: int, resource_uid: str, change: dict[str, Any], at: dt.datetime) -> Sequence[Any]:
    return (
        request_id,
        resource_uid,
        change["finding_id"],
        change.get("from_state"),
        change["to_state"],
        change.get("detector", ""),
        change.get("severity", "info"),
        change.get("resource", ""),
        change.get("title", ""),
        change.get("first_seen"),
        bool(change.get("silenced")),
        at,
    )
