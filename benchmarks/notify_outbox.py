"""Outbox throughput: notifications per second from Postgres to a local receiver, exactly once. Target ≥ 500/s.

Method:
- A Postgres from Debian's package (fsync off, as in the tests) with the history schema; 10 Analyses each
  record one run with 500 new findings (digests off), all to one CloudEvents sink each at the highest rate
  a sink allows (6,000/min): 5,000 messages written through ``HistoryStore.write_run``.
- The operator's ``Dispatcher`` drains them (claim with leases, build the CloudEvent, POST, settle) to an
  aiohttp receiver in its own process, which counts every delivery id: each must arrive exactly once.
- Floor: the same number of bare POSTs of the same bodies to the same receiver with the same concurrency
  (``notify_concurrency``, 16) and the same HTTP client (aiohttp), no database.

Run: ``.venv/bin/python benchmarks/notify_outbox.py [--analyses 10 --findings 500]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import subprocess
import sys
import time
from typing import Any

import aiohttp
import httpx
from kubernetes import client

from infragenius.history.outbox import Outbox
from infragenius.history.store import HistoryStore, RunRecord
from infragenius.runs.notifications import Dispatcher
from infragenius.settings import Settings
from infragenius_devtools.devcluster.services import LocalPostgres
from infragenius_devtools.support import free_port


def run_record(index: int, findings: int, url: str) -> RunRecord:
    now = dt.datetime.now(dt.UTC)
    transitions = [
        {
            "finding_id": f"{index:04x}{i:012x}",
            "to_state": "New",
            "detector": "pod",
            "severity": "critical",
            "resource": f"Pod/shop-{index}/web-{i}",
            "title": f"web-{i} is crash looping",
            "first_seen": "2026-12-02T10:00:00Z",
            "notifiable": True,
        }
        for i in range(findings)
    ]
    sink = {"name": "ce", "type": "CloudEvents", "url": url, "minSeverity": "info", "ratePerMinute": 6000}
    return RunRecord(
        kind="Analysis",
        namespace=f"shop-{index}",
        name="bench",
        resource_uid=f"bench-{index}",
        generation=1,
        run_id="r1",
        trigger="bench",
        requested_at=now,
        target_namespace=f"shop-{index}",
        phase="Completed",
        started_at=now,
        completed_at=now,
        duration_seconds=0.0,
        gather_seconds=0.0,
        detect_seconds=0.0,
        counts={},
        summary="",
        transitions=transitions,
        spec={"notify": {"sinks": [sink], "digestOver": 1000}},
    )


RECEIVER = """
import collections, json, sys
from aiohttp import web
seen = collections.Counter()
async def receive(request):
    await request.read()
    seen[request.headers.get("ce-id", "floor")] += 1
    return web.Response(status=202)
async def stats(request):
    return web.json_response(dict(seen))
app = web.Application()
app.router.add_post("/ce", receive)
app.router.add_get("/stats", stats)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--analyses", type=int, default=10)
    parser.add_argument("--findings", type=int, default=500)
    args = parser.parse_args()
    total = args.analyses * args.findings
    port = free_port()
    # Its own process: a receiver on the dispatcher's event loop would halve what is measured.
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    url = f"http://127.0.0.1:{port}/ce"
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    postgres = LocalPostgres().init().start()
    store = HistoryStore(postgres.url, max_size=8)
    try:
        await store.open()
        await store.migrate()
        started = time.perf_counter()
        for index in range(args.analyses):
            await store.write_run(run_record(index, args.findings, url))
        written = time.perf_counter() - started
        settings = Settings(notify_timeout_seconds=10, notify_poll_seconds=0.05)  # type: ignore[call-arg]
        connector = aiohttp.TCPConnector(limit=settings.notify_concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            api = client.ApiClient(
                client.Configuration(host="http://127.0.0.1:9")
            )  # no cluster: status writes fail fast
            outbox = Outbox(store.pool)
            dispatcher = Dispatcher(outbox, api, settings, http)
            started = time.perf_counter()
            while await outbox.pending():
                if not await dispatcher.drain_once():
                    await asyncio.sleep(0.05)
            drained = time.perf_counter() - started
            body = b'{"event":"new"}' * 20
            gate = asyncio.Semaphore(settings.notify_concurrency)

            async def post() -> None:
                async with gate, http.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
                    await answer.read()

            started = time.perf_counter()
            await asyncio.gather(*(post() for _ in range(total)))
            floor = time.perf_counter() - started
        seen = httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()
        ids = {k: v for k, v in seen.items() if k != "floor"}
        once = len(ids) == total and set(ids.values()) == {1}
        print(f"{total} notifications written with their runs in {written:.2f}s ({total / written:.0f}/s)")
        print(
            f"outbox drained in {drained:.2f}s: {total / drained:.0f} notifications/s (target >= 500/s); "
            f"exactly once: {'yes' if once else 'NO'} ({len(ids)} distinct, max {max(ids.values(), default=0)} each)"
        )
        print(f"floor, bare POSTs: {floor:.2f}s, {total / floor:.0f}/s; outbox/floor time ratio {drained / floor:.1f}x")
        rows: Any = postgres.psql("SELECT state || '=' || count(*) FROM notification_outbox GROUP BY state")
        print(f"outbox rows: {rows.replace(chr(10), ', ')}")
    finally:
        await store.close()
        receiver.terminate()
        postgres.stop()
        shutil.rmtree(postgres.directory, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
