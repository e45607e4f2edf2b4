"""What `infragenius serve` reads and writes in Postgres: finding history searches, API keys, the audit trail.

Functions over the store's pool, so the server shares the history's connection settings (keepalives,
reconnection) without adding methods to HistoryStore.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

SEVERITY_ORDER_SQL = "CASE f.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"


@dataclass(frozen=True)
class FindingHistoryQuery:
    """A search of past findings in one namespace; None means "any"."""

    namespace: str
    workload: str | None = None  # a resource name, or the name of the workload that owns it
    detector: str | None = None
    severity: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    offset: int = 0
    limit: int = 20


async def search_finding_history(pool: AsyncConnectionPool, query: FindingHistoryQuery) -> list[dict[str, Any]]:
    """One row per problem (stable finding id): first seen, last seen and in how many runs, most severe first.

    Fetches one row more than ``limit`` so the caller knows whether another page exists.
    """
    clauses = ["f.namespace = %(namespace)s"]
    if query.workload:
        clauses.append("(f.name = %(workload)s OR f.owner_name = %(workload)s)")
    if query.detector:
        clauses.append("f.detector = %(detector)s")
    if query.severity:
        clauses.append("f.severity = %(severity)s")
    if query.since:
        clauses.append("f.observed_at >= %(since)s")
    if query.until:
        clauses.append("f.observed_at <= %(until)s")
    sql = (
        "SELECT f.finding_id, min(f.detector) AS detector, min(f.severity) AS severity,"
        " min(f.kind) AS kind, min(f.name) AS name, min(f.owner_kind) AS owner_kind, min(f.owner_name) AS owner_name,"
        " (array_agg(f.title ORDER BY f.observed_at DESC))[1] AS title,"
        " min(f.observed_at) AS first_seen, max(f.observed_at) AS last_seen, count(*) AS occurrences,"
        f" min({SEVERITY_ORDER_SQL}) AS severity_rank"
        " FROM findings f WHERE " + " AND ".join(clauses) + " GROUP BY f.finding_id"
        " ORDER BY severity_rank, last_seen DESC, f.finding_id LIMIT %(limit)s OFFSET %(offset)s"
    )
    params = {
        "namespace": query.namespace,
        "workload": query.workload,
        "detector": query.detector,
        "severity": query.severity,
        "since": query.since,
        "until": query.until,
        "limit": query.limit + 1,
        "offset": query.offset,
    }
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(sql, params)
        return list(await cursor.fetchall())


# --- API keys ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    owner: str
    tier: str
    hash: bytes
    scopes: tuple[str, ...]
    namespaces: tuple[str, ...]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


_KEY_COLUMNS = (
    "k.key_id, k.owner, u.tier, k.hash, k.scopes, k.namespaces, k.created_at, k.expires_at, k.revoked_at"
    " FROM api_keys k JOIN users u ON u.owner = k.owner"
)


def _stored_key(row: Sequence[Any]) -> StoredKey:
    return StoredKey(
        key_id=row[0],
        owner=row[1],
        tier=row[2],
        hash=bytes(row[3]),
        scopes=tuple(row[4]),
        namespaces=tuple(row[5]),
        created_at=row[6],
        expires_at=row[7],
        revoked_at=row[8],
    )


async def insert_api_key(
    pool: AsyncConnectionPool,
    *,
    key_id: str,
    owner: str,
    tier: str,
    key_hash: bytes,
    scopes: Sequence[str],
    namespaces: Sequence[str],
    expires_at: dt.datetime | None,
) -> None:
    """Add a key; the owner is created with ``tier`` when new, and keeps its tier otherwise."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO users (owner, tier) VALUES (%s, %s) ON CONFLICT (owner) DO NOTHING", (owner, tier)
        )
        await conn.execute(
            "INSERT INTO api_keys (key_id, owner, hash, scopes, namespaces, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (key_id, owner, key_hash, list(scopes), list(namespaces), expires_at),
        )


async def owner_tier(pool: AsyncConnectionPool, owner: str) -> str | None:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT tier FROM users WHERE owner = %s", (owner,))).fetchone()
    return str(row[0]) if row else None


async def find_api_key(pool: AsyncConnectionPool, key_id: str) -> StoredKey | None:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT " + _KEY_COLUMNS + " WHERE k.key_id = %s", (key_id,))).fetchone()
    return _stored_key(row) if row else None


async def list_api_keys(pool: AsyncConnectionPool, owner: str | None = None) -> list[StoredKey]:
    where = " WHERE k.owner = %s" if owner else ""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT " + _KEY_COLUMNS + where + " ORDER BY k.created_at", (owner,) if owner else ()
        )
        return [_stored_key(row) for row in await cursor.fetchall()]


async def revoke_api_key(pool: AsyncConnectionPool, key_id: str) -> bool:
    """True when the key existed and was not revoked before."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL", (key_id,)
        )
        return cursor.rowcount == 1


# --- the audit trail ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRow:
    at: dt.datetime
    principal: str
    auth: str
    face: str
    operation: str
    namespace: str | None
    outcome: str
    latency_ms: float
    bytes: int


async def insert_audit_rows(pool: AsyncConnectionPool, rows: Sequence[AuditRow]) -> None:
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO api_requests (at, principal, auth, face, operation, namespace, outcome, latency_ms, bytes)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (r.at, r.principal, r.auth, r.face, r.operation, r.namespace, r.outcome, r.latency_ms, r.bytes)
                for r in rows
            ],
        )


async def prune_audit_rows(pool: AsyncConnectionPool, older_than_days: int) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "DELETE FROM api_requests WHERE at < now() - make_interval(days => %s)", (older_than_days,)
        )
        return cursor.rowcount
