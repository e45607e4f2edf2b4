"""The outbox and its dispatcher against a real Postgres and a real HTTP receiver (no cluster needed).

Runs are written through HistoryStore.write_run, as the operator writes them; the dispatcher drains
them to a CloudEvents receiver on loopback, which checks exactly-once by delivery id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from kubernetes import client

from infragenius.history.outbox import Outbox
from infragenius.history.store import HistoryStore, RunRecord
from infragenius.runs.notifications import Dispatcher
from infragenius.settings import Settings
from infragenius_devtools.devcluster.services import LocalPostgres

pytestmark = pytest.mark.e2e


class Receiver:
    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.fail_next = 0

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503)
        self.ids[request.headers["ce-id"]] += 1
        self.bodies.append(json.loads(await request.read()))
        return web.Response(status=202)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/ce", state.handle)
    async with TestServer(app) as server:
        yield state, str(server.make_url("/ce"))


def record(uid: str, run: str, transitions: list[dict[str, Any]], url: str, digest_over: int = 10) -> RunRecord:
    now = dt.datetime.now(dt.UTC)
    sink = {"name": "ce", "type": "CloudEvents", "url": url, "minSeverity": "warning", "ratePerMinute": 6000}
    return RunRecord(
        kind="Analysis",
        namespace="shop",
        name=f"a-{uid}",
        resource_uid=uid,
        generation=1,
        run_id=run,
        trigger="test",
        requested_at=now,
        target_namespace="shop",
        phase="Completed",
        started_at=now,
        completed_at=now,
        duration_seconds=0.1,
        gather_seconds=0.1,
        detect_seconds=0.0,
        counts={},
        summary="",
        transitions=transitions,
        spec={"notify": {"sinks": [sink], "digestOver": digest_over}},
    )


def opened(count: int, state: str = "New") -> list[dict[str, Any]]:
    return [
        {
            "finding_id": f"{i:016x}",
            "from_state": None,
            "to_state": state,
            "detector": "pod",
            "severity": "critical" if i % 4 == 0 else "warning",
            "resource": f"Pod/shop/web-{i}",
            "title": f"web-{i} is crash looping",
            "first_seen": "2026-12-02T10:00:00Z",
            "silenced": False,
            "notifiable": True,
        }
        for i in range(count)
    ]


async def drain(dispatcher: Dispatcher, outbox: Outbox, uid: str) -> None:
    """Until this test's rows are settled (the session's Postgres may hold other tests' rows, which the
    dispatcher also tries: one whose sink cannot be used now is simply retried later)."""
    for _ in range(600):
        await dispatcher.drain_once()
        async with outbox.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM notification_outbox WHERE resource_uid = %s AND state = 'pending'", (uid,)
                )
            ).fetchone()
        if row is not None and row[0] == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the outbox did not drain")


@pytest.fixture
async def store(postgres: LocalPostgres) -> AsyncIterator[HistoryStore]:
    history = HistoryStore(postgres.url)
    await history.open()
    await history.migrate()
    try:
        yield history
    finally:
        await history.close()


def dispatcher_for(store: HistoryStore, http: aiohttp.ClientSession) -> tuple[Dispatcher, Outbox]:
    outbox = Outbox(store.pool)
    settings = Settings(notify_timeout_seconds=5, notify_poll_seconds=0.1)  # type: ignore[call-arg]
    # No cluster here: the status write after each batch fails and is logged, never fatal.
    api = client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))
    return Dispatcher(outbox, api, settings, http), outbox


async def test_two_hundred_new_findings_at_once_make_one_digest(
    store: HistoryStore, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    async with aiohttp.ClientSession() as http:
        dispatcher, outbox = dispatcher_for(store, http)
        assert await store.write_run(record("digest-1", "r1", opened(200), url))
        assert not await store.write_run(record("digest-1", "r1", opened(200), url))  # a repeat adds nothing
        await drain(dispatcher, outbox, "digest-1")
    (digest,) = state.bodies
    assert (digest["event"], digest["of"], digest["total"]) == ("digest", "opened", 200)
    assert len(digest["findings"]) == 20 and all(f["severity"] == "critical" for f in digest["findings"])


async def test_every_message_arrives_once_through_503s(store: HistoryStore, receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.fail_next = 5
    async with aiohttp.ClientSession() as http:
        dispatcher, outbox = dispatcher_for(store, http)
        for run in range(5):
            await store.write_run(record("once-1", f"r{run}", opened(4, "Reopened" if run else "New"), url))
        await drain(dispatcher, outbox, "once-1")
    assert len(state.ids) == 20 and set(state.ids.values()) == {1}, state.ids
