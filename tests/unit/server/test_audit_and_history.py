"""The audit trail and the finding-history search against a real Postgres."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid

from infragenius.history import server_tables
from infragenius.history.store import HistoryStore, RunRecord
from infragenius.server.audit import AuditTrail, audit_row


async def _count(history: HistoryStore) -> int:
    async with history.pool.connection() as conn:
        row = await (await conn.execute("SELECT count(*) FROM api_requests")).fetchone()
    return int(row[0]) if row else 0


async def test_every_recorded_call_is_written_once_in_batches(history: HistoryStore) -> None:
    trail = AuditTrail(history.pool, batch=7, queue_size=1000, retention_days=30, flush_seconds=0.1)
    trail.start()
    for n in range(50):
        trail.record(
            audit_row(
                principal="key:alice/abc",
                auth="api_key",
                face="http",
                operation="list_analyses",
                namespace=f"ns-{n % 3}",
                outcome="ok",
                started=time.monotonic(),
                size=10,
            )
        )
    deadline = time.monotonic() + 30
    while await _count(history) < 50 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await trail.stop()
    assert await _count(history) == 50


async def test_old_rows_are_pruned(history: HistoryStore) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    row = server_tables.AuditRow(old, "p", "api_key", "mcp", "get_analysis", "ns", "ok", 1.0, 1)
    await server_tables.insert_audit_rows(history.pool, [row, row])
    assert await server_tables.prune_audit_rows(history.pool, 30) == 2
    assert await _count(history) == 0


def _record(namespace: str, findings: list[dict[str, object]], at: dt.datetime) -> RunRecord:
    return RunRecord(
        kind="Analysis",
        namespace=namespace,
        name="a",
        resource_uid=str(uuid.uuid4()),
        generation=1,
        run_id=uuid.uuid4().hex[:8],
        trigger="create",
        requested_at=at,
        target_namespace=namespace,
        phase="Completed",
        started_at=at,
        completed_at=at,
        duration_seconds=1.0,
        gather_seconds=0.5,
        detect_seconds=0.1,
        counts={},
        summary="",
        findings=findings,
    )


def _finding(
    finding_id: str, severity: str, name: str, owner: str | None = None, namespace: str = "shop"
) -> dict[str, object]:
    return {
        "id": finding_id,
        "detector": "pods",
        "severity": severity,
        "resource": {"kind": "Pod", "namespace": namespace, "name": name},
        "owners": [{"kind": "Deployment", "name": owner}] if owner else [],
        "title": f"{name} is {severity}",
    }


async def test_history_groups_a_problem_with_first_seen_last_seen_and_occurrences(history: HistoryStore) -> None:
    now = dt.datetime.now(dt.UTC)
    for hours_ago in (5, 3, 1):
        await history.write_run(
            _record(
                "shop",
                [_finding("a" * 16, "critical", "web-1", "web"), _finding("b" * 16, "warning", "db-0")],
                now - dt.timedelta(hours=hours_ago),
            )
        )
    await history.write_run(_record("other", [_finding("c" * 16, "critical", "web-1", "web", "other")], now))

    rows = await server_tables.search_finding_history(
        history.pool, server_tables.FindingHistoryQuery(namespace="shop", limit=10)
    )
    assert [r["finding_id"] for r in rows] == ["a" * 16, "b" * 16]  # most severe first, no other namespace
    web = rows[0]
    assert web["occurrences"] == 3
    assert web["first_seen"] < web["last_seen"]
    assert abs((web["last_seen"] - (now - dt.timedelta(hours=1))).total_seconds()) < 1

    by_owner = await server_tables.search_finding_history(
        history.pool, server_tables.FindingHistoryQuery(namespace="shop", workload="web", severity="critical")
    )
    assert [r["finding_id"] for r in by_owner] == ["a" * 16]
    recent = await server_tables.search_finding_history(
        history.pool,
        server_tables.FindingHistoryQuery(namespace="shop", since=now - dt.timedelta(hours=2), limit=1),
    )
    # limit + 1 rows come back so the caller knows another page exists.
    assert len(recent) == 2 and all(r["occurrences"] == 1 for r in recent)


def _change(finding_id: str, state: str, namespace: str, first_seen: dt.datetime) -> dict[str, object]:
    return {
        "finding_id": finding_id,
        "to_state": state,
        "detector": "pod",
        "severity": "critical",
        "resource": f"Deployment/{namespace}/web",
        "title": "web is crash looping",
        "first_seen": first_seen.isoformat(),
    }


async def test_trends_stay_in_their_namespace(history: HistoryStore) -> None:
    """What the server's finding_trends tool answers: a namespace's recurring problems and time to
    resolve, never another namespace's."""
    from infragenius.history.trends import TrendFilter, finding_trends

    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(hours=3)
    for namespace, ident in (("trend-a", "d" * 16), ("trend-b", "e" * 16)):
        for hours_ago, state in ((3, "New"), (2, "Resolved"), (1, "Reopened")):
            record = _record(namespace, [], now - dt.timedelta(hours=hours_ago))
            changed = dataclasses.replace(record, transitions=[_change(ident, state, namespace, start)])
            await history.write_run(changed)
    async with history.pool.connection() as conn:
        found = await finding_trends(conn, TrendFilter(namespace="trend-a", days=1), 5)
    assert [(r.finding_id, r.episodes) for r in found.recurring] == [("d" * 16, 2)]
    (resolve,) = found.time_to_resolve
    assert resolve.resolved == 1 and 3599 < resolve.mean_seconds < 3601
