"""The audit trail: one row per call, queued in memory and written to Postgres in batches by one task,
so a call never waits on the database. Only who, what, where and how it ended are kept: never arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time

from psycopg_pool import AsyncConnectionPool

from infragenius.history import server_tables
from infragenius.history.server_tables import AuditRow
from infragenius.server import metrics

log = logging.getLogger(__name__)


class AuditTrail:
    def __init__(
        self,
        pool: AsyncConnectionPool | None,
        *,
        batch: int,
        queue_size: int,
        retention_days: int,
        flush_seconds: float = 1.0,
        prune_seconds: float = 3600.0,
    ) -> None:
        self._pool = pool
        self._batch = batch
        self._queue: asyncio.Queue[AuditRow] = asyncio.Queue(maxsize=queue_size)
        self._retention_days = retention_days
        self._flush_seconds = flush_seconds
        self._prune_seconds = prune_seconds
        self._task: asyncio.Task[None] | None = None

    def record(self, row: AuditRow) -> None:
        """Never blocks: a full queue (Postgres away for long) drops the row and counts it."""
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            metrics.AUDIT_DROPPED.inc()
        metrics.AUDIT_QUEUED.set(self._queue.qsize())

    def start(self) -> None:
        if self._pool is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self) -> None:
        """Write what is queued (bounded by a few seconds), then stop."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        try:
            await asyncio.wait_for(self._drain_all(), timeout=5)
        except (TimeoutError, Exception):  # shutting down: a lost batch is logged, not raised
            log.warning("audit: %d rows not written at shutdown", self._queue.qsize())

    async def _drain_all(self) -> None:
        while not self._queue.empty():
            await self._write(self._take_batch(self._batch))

    def _take_batch(self, limit: int) -> list[AuditRow]:
        rows: list[AuditRow] = []
        while len(rows) < limit and not self._queue.empty():
            rows.append(self._queue.get_nowait())
        metrics.AUDIT_QUEUED.set(self._queue.qsize())
        return rows

    async def _write(self, rows: list[AuditRow]) -> None:
        if rows and self._pool is not None:
            await server_tables.insert_audit_rows(self._pool, rows)
            metrics.AUDIT_WRITTEN.inc(len(rows))

    async def _run(self) -> None:
        last_prune = 0.0
        pending: list[AuditRow] = []
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout=self._flush_seconds)
                pending.append(first)
            except TimeoutError:
                pass
            pending.extend(self._take_batch(self._batch - len(pending)))
            if pending:
                try:
                    await self._write(pending)
                    pending = []
                except Exception as err:  # Postgres away: keep the batch, try again after a pause
                    log.warning("audit: writing %d rows failed (%s); retrying", len(pending), type(err).__name__)
                    await asyncio.sleep(self._flush_seconds)
            if time.monotonic() - last_prune > self._prune_seconds and self._pool is not None:
                last_prune = time.monotonic()
                try:
                    await server_tables.prune_audit_rows(self._pool, self._retention_days)
                except Exception as err:
                    log.warning("audit: pruning failed (%s)", type(err).__name__)


def audit_row(
    *,
    principal: str,
    auth: str,
    face: str,
    operation: str,
    namespace: str | None,
    outcome: str,
    started: float,
    size: int,
) -> AuditRow:
    return AuditRow(
        at=dt.datetime.now(dt.UTC),
        principal=principal,
        auth=auth,
        face=face,
        operation=operation,
        namespace=namespace,
        outcome=outcome,
        latency_ms=(time.monotonic() - started) * 1000.0,
        bytes=size,
    )
