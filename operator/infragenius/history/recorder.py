"""Write runs to history in the background; buffer them (bounded) while Postgres is away.

Writes are idempotent (see HistoryStore.write_run), so retrying a run whose
commit reply was lost cannot double it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass

from infragenius.history.backoff import retry_delay
from infragenius.history.store import TRANSIENT_ERRORS, HistoryStore, RunRecord
from infragenius.observability import metrics

log = logging.getLogger(__name__)


@dataclass
class RecorderStats:
    written: int = 0
    duplicates: int = 0
    dropped: int = 0
    failed: int = 0
    retries: int = 0


class HistoryRecorder:
    def __init__(self, store: HistoryStore, capacity: int = 10000, max_backoff: float = 15.0) -> None:
        """``max_backoff``: the longest wait between two write attempts while Postgres is down."""
        self.store = store
        self.capacity = capacity
        self.max_backoff = max_backoff
        self.pending: deque[RunRecord] = deque()
        self.stats = RecorderStats()
        self.migrated = False
        self.available = True  # False from a failed write until the next one succeeds
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._done: dict[int, asyncio.Future[bool]] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="infragenius-history")

    def record(self, record: RunRecord) -> None:
        """Queue a run; never blocks the analysis. When full, the oldest run is dropped and counted."""
        if len(self.pending) >= self.capacity:
            lost = self.pending.popleft()
            self._settle(lost, False)
            self.stats.dropped += 1
            log.error(
                "history buffer full (%d): dropped run %s of %s/%s",
                self.capacity,
                lost.run_id,
                lost.namespace,
                lost.name,
            )
        self.pending.append(record)
        metrics.HISTORY_PENDING.set(len(self.pending))
        self._idle.clear()
        self._wake.set()

    async def record_and_wait(self, record: RunRecord, timeout: float) -> bool:
        """Queue a run and wait up to ``timeout`` for it to be written; False means it stays buffered.

        Writing before the status says Completed means a crash right after that status loses no run.
        """
        if not self.available:  # Postgres is known to be away: buffer without waiting
            self.record(record)
            return False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._done[id(record)] = future
        self.record(record)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False

    def _settle(self, record: RunRecord, written: bool) -> None:
        future = self._done.pop(id(record), None)
        if future is not None and not future.done():
            future.set_result(written)

    async def flush(self, timeout: float) -> bool:
        """Wait until everything queued is written; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, flush_timeout: float = 5.0) -> None:
        if self.pending:
            await self.flush(flush_timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.pending:
            log.error("history: %d run(s) not written at shutdown (Postgres unavailable)", len(self.pending))
        await self.store.close()

    async def _run(self) -> None:
        failures = 0  # consecutive transient failures; the wait grows with them up to max_backoff
        while True:
            if not self.pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            record = self.pending[0]
            try:
                if not self.migrated:
                    await self.store.migrate()
                    self.migrated = True
                with metrics.timed_stage(record.kind, "persist"):
                    written = await self.store.write_run(record)
                metrics.dependency("postgres", True)
                self.available = True
            except TRANSIENT_ERRORS as err:
                metrics.dependency("postgres", False)
                self.available = False
                for waiting in list(self.pending):  # nobody waits out an outage
                    self._settle(waiting, False)
                self.stats.retries += 1
                failures += 1
                delay = retry_delay(failures, self.max_backoff)
                log.warning(
                    "history unavailable (%s); %d run(s) buffered, retrying in %.1fs", err, len(self.pending), delay
                )
                # Wait out the delay, or less when the pool connects meanwhile (Postgres is back).
                self.store.connected.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.store.connected.wait(), delay)
                continue
            except Exception:  # a record the database rejects will never succeed; do not block the others
                self.stats.failed += 1
                log.exception(
                    "history: run %s of %s/%s could not be written", record.run_id, record.namespace, record.name
                )
                written = None
            failures = 0
            if self.pending and self.pending[0] is record:
                self.pending.popleft()
            self._settle(record, written is not None)
            metrics.HISTORY_PENDING.set(len(self.pending))
            if written:
                self.stats.written += 1
            elif written is False:
                self.stats.duplicates += 1
