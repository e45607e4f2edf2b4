"""History against a real Postgres that starts late or dies mid-batch: no run lost, none written twice.

Needs Debian's PostgreSQL (no Kubernetes). The reconnect cap is set low so the tests are quick; what they
show (the pool keeps trying, at most the cap apart) holds for the default cap of 15 s too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from infragenius.history.recorder import HistoryRecorder
from infragenius.history.store import RunRecord
from infragenius.models.api import Reason
from infragenius.runs import startup
from infragenius.runs.lifecycle import Runtime, dependency_problems
from infragenius.settings import Settings
from infragenius_devtools.devcluster import DevClusterError
from infragenius_devtools.devcluster.services import LocalPostgres
from tests.e2e.conftest import _unavailable

pytestmark = pytest.mark.e2e
CAP = 2.0  # INFRAGENIUS_HISTORY_RECONNECT_MAX_SECONDS for these tests
GENEROUS = 60.0  # bound for anything that should take a few seconds


@pytest.fixture
def server() -> Iterator[LocalPostgres]:
    """A Postgres cluster, initialised but not started: nothing listens on its port yet."""
    try:
        postgres = LocalPostgres().init()
    except DevClusterError as err:
        _unavailable(f"Postgres: {err}")
    try:
        yield postgres
    finally:
        postgres.stop(mode="immediate")
        shutil.rmtree(postgres.directory, ignore_errors=True)


@pytest.fixture
async def recorder(server: LocalPostgres) -> AsyncIterator[HistoryRecorder]:
    """The recorder as the operator's start-up makes it, from settings (which may find Postgres down)."""
    settings = Settings(history_reconnect_max_seconds=CAP)
    history = await startup._history(settings, server.url, logging.getLogger("test"))
    assert history is not None
    assert history.store.pool.reconnect_timeout == CAP and history.max_backoff == CAP
    try:
        yield history
    finally:
        await history.close(flush_timeout=1)


async def until(check: Callable[[], Any], what: str, timeout: float = GENEROUS) -> float:
    """Poll ``check`` until truthy; the monotonic time it first was. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def run(name: str, findings: int = 1) -> RunRecord:
    now = dt.datetime.now(dt.UTC)
    return RunRecord(
        kind="Analysis",
        namespace="reconnect",
        name=name,
        resource_uid=f"uid-{uuid.uuid4()}",
        generation=1,
        run_id=uuid.uuid4().hex[:12],
        trigger="spec",
        requested_at=now,
        target_namespace="reconnect",
        phase="Completed",
        started_at=now,
        completed_at=now,
        duration_seconds=0.1,
        gather_seconds=0.05,
        detect_seconds=0.01,
        counts={"warning": findings},
        summary=f"{findings} warning(s)",
        findings=[
            {
                "id": f"{i:016x}",
                "detector": "events",
                "severity": "warning",
                "resource": {"kind": "Pod", "namespace": "reconnect", "name": f"{name}-{i}"},
                "title": f"finding {i} " + "x" * 200,
            }
            for i in range(findings)
        ],
    )


def rows_per_run(server: LocalPostgres, records: list[RunRecord]) -> dict[str, int]:
    """How many requests rows each run has (0 when it is missing)."""
    if server.psql("SELECT to_regclass('public.requests') IS NOT NULL") != "t":
        return {r.run_id: 0 for r in records}
    found = server.psql("SELECT run_id || ' ' || count(*) FROM requests GROUP BY run_id").splitlines()
    counts = dict(line.split() for line in found if line)
    return {r.run_id: int(counts.get(r.run_id, 0)) for r in records}


def runtime(history: HistoryRecorder) -> Runtime:
    return Runtime(settings=Settings(), api=client.ApiClient(), slots=asyncio.Semaphore(1), history=history)


async def test_a_run_recorded_before_postgres_starts_is_written_once_soon_after(
    server: LocalPostgres, recorder: HistoryRecorder
) -> None:
    record = run("late")
    assert await recorder.record_and_wait(record, timeout=1) is False  # nothing listens: buffered
    await until(lambda: not recorder.available, "the recorder to notice Postgres is down")
    # Status says so while Postgres is down.
    problems = dependency_problems(runtime(recorder), [], None)
    assert [reason for reason, _ in problems] == [Reason.history_buffered]
    assert "1 run(s) buffered" in problems[0][1]
    # Long enough for psycopg_pool's default backoff to have grown (1, 2, 4, 8 s ...) and for several of
    # our capped rounds to have run out: the pool must still be trying.
    await until(lambda: recorder.store.reconnect_rounds >= 4, "four reconnection rounds to run out")
    assert record in recorder.pending and recorder.stats.dropped == 0

    starting = time.monotonic()
    await asyncio.to_thread(server.start)  # returns once Postgres accepts connections and the database exists
    ready = time.monotonic()
    written = await until(lambda: recorder.stats.written == 1, "the buffered run to be written")
    recovery = written - ready
    print(
        f"\nrecovery: first write {recovery:.2f}s after Postgres was ready ({written - starting:.2f}s after"
        f" pg_ctl start began; {recorder.store.reconnect_rounds} reconnection rounds ran out; cap {CAP}s)"
    )
    # The pool and the recorder each wait at most CAP between attempts; the rest is connecting and migrating.
    assert recovery < 2 * CAP + 10
    assert rows_per_run(server, [record]) == {record.run_id: 1}
    assert recorder.available and not recorder.pending
    assert dependency_problems(runtime(recorder), [], None) == []

    # A retry or a restart that records the same run again writes nothing more.
    assert await recorder.record_and_wait(record, timeout=GENEROUS) is True
    assert recorder.stats.duplicates == 1
    assert rows_per_run(server, [record]) == {record.run_id: 1}


async def test_postgres_killed_mid_batch_loses_and_doubles_no_run(
    server: LocalPostgres, recorder: HistoryRecorder
) -> None:
    await asyncio.to_thread(server.start)
    batch = [run(f"batch-{i}", findings=300) for i in range(20)]
    for record in batch:
        recorder.record(record)
    await until(lambda: recorder.stats.written >= 3, "the first runs of the batch to be written")
    await asyncio.to_thread(server.stop, "immediate")  # as a crash or an OOM kill: no clean shutdown
    print(f"\nkilled Postgres with {recorder.stats.written} of {len(batch)} runs written")
    # Runs that finish while Postgres is down are kept too.
    late = [run(f"during-{i}") for i in range(5)]
    for record in late:
        recorder.record(record)
    await until(lambda: not recorder.available, "the recorder to notice Postgres is gone")
    assert recorder.pending

    starting = time.monotonic()
    await asyncio.to_thread(server.start)
    ready = time.monotonic()
    everything = batch + late
    done = await until(lambda: not recorder.pending, "every buffered run to be written")
    print(
        f"recovery: buffer drained {done - starting:.2f}s after pg_ctl start began, {done - ready:.2f}s after it"
        f" returned (cap {CAP}s)"
    )
    assert rows_per_run(server, everything) == {r.run_id: 1 for r in everything}
    stats = recorder.stats
    assert stats.written + stats.duplicates == len(everything)
    assert stats.dropped == 0 and stats.failed == 0 and stats.retries >= 1
    assert server.psql("SELECT count(*) FROM requests") == str(len(everything))
    # Every run's findings came with it (one transaction per run: all rows or none).
    per_run = server.psql(
        "SELECT count(*) FROM (SELECT r.id FROM requests r JOIN findings f ON f.request_id = r.id"
        " WHERE r.name LIKE 'batch-%' GROUP BY r.id HAVING count(*) = 300) AS complete"
    )
    assert per_run == "20"
