"""Load on `infragenius serve` (issue 16): authenticated reads per second, history search over 1,000,000 rows,
and what authentication + rate limit + audit cost per request.

Method
------
Everything is local: its own ``LocalCluster("chart")`` (kube-apiserver, etcd, kwok; no operator), its own
Postgres and Redis (``LocalPostgres``, ``LocalRedis``), and ``infragenius serve`` as real subprocesses reading
the cluster with the admin kubeconfig. Figures are printed, never asserted.

1. **Setup** - applies ``crds/``, creates one Analysis (``shop`` in ``bench-server``) and writes its status as
   the operator would (12 findings, through ``AnalysisStatus``), so the servers' watch caches serve it. Applies
   the real migrations, seeds ``findings`` with ``--rows`` rows by one ``INSERT ... SELECT generate_series``
   (``--runs`` request rows, 20 namespaces, 50 workloads each, 2 stable findings per workload and run,
   observed over the last 45 days), then ``ANALYZE``. Creates an API key with the real CLI
   (``infragenius keys create``) in a tier ``bench`` of 10,000,000 calls a minute, so the rate limit is
   checked on every call (a Redis round trip) but never refuses one.
2. **Reads** - for 1 and then 2 server processes, vegeta (v12.13.0, built once from Go modules into
   ``~/.cache/infragenius/bin/vegeta-12.13.0``) sends ``GET /v1/namespaces/bench-server/analyses/shop`` with
   the key at constant rates (``--rates``, ``--duration`` s each, round-robin over the processes). Each step
   reports the achieved rate (successful responses/s), p50/p95/p99, errors and 429s. Stepping stops after the
   first step with p95 >= 1 s or under 99% success; the highest step below that is "sustained".
3. **History search** - ``GET /v1/namespaces/<ns>/history?workload=<w>`` (default window: 30 days) with the
   key, ``--searches`` times in turn over random namespaces and workloads, against one process: p50/p95/p99.
   The same SQL (captured from ``server_tables.search_finding_history``) under ``EXPLAIN (ANALYZE, BUFFERS)``
   shows which indexes serve it.
   With ``--what-if-indexes`` (default), two more indexes led by ``(namespace, name)`` and
   ``(namespace, owner_name)`` are then created in the benchmark's database only, and the search is measured
   again: what a migration adding them would buy.
4. **Overhead** - in this process, the same read through four ASGI apps on one watch cache, called through
   ``httpx.ASGITransport`` (no sockets, no vegeta): ``with`` is ``app.build(...)``, exactly what ``serve`` runs
   (the Gatekeeper authenticating the key, the Redis rate limit, the key's scope check, the audit trail writing
   batches to Postgres); ``without`` is built here only from the same service class, routes and MCP/Starlette
   app, with ``limiter=None``, ``audit=None`` and a fixed local identity put in the request scope instead of
   the Gatekeeper; ``auth`` and ``auth+limit`` add the Gatekeeper (API key) and then the Redis limiter back, to
   split the cost. Blocks of ``--overhead-requests`` calls rotate over the four, sequentially (latency) and
   16 at a time (throughput); the ratio is with / without.

Run: ``python benchmarks/server_load.py [--rates 100,200,300,400,500,600,800,1000,1500] [--duration 20] [--keep]``.
Results: stdout and ``benchmarks/results/server_load.json``; server logs ``benchmarks/results/server-*.log``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Works from a checkout whether or not the packages are installed (also for the server subprocesses).
_SOURCES = [str(ROOT / "operator"), str(ROOT / "devtools")]
sys.path[:0] = _SOURCES
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [*_SOURCES, os.environ.get("PYTHONPATH")]))

import httpx  # noqa: E402

from infragenius_devtools import bench  # noqa: E402
from infragenius_devtools.devcluster import LocalCluster  # noqa: E402
from infragenius_devtools.devcluster.build import ensure_binaries, ensure_vegeta  # noqa: E402
from infragenius_devtools.devcluster.services import LocalPostgres, LocalRedis  # noqa: E402
from infragenius_devtools.server_process import ServerProcess as Server  # noqa: E402
from infragenius_devtools.server_process import launch  # noqa: E402

CLUSTER_NAME = "chart"
NAMESPACE = "bench-server"
RESULTS_DIR = ROOT / "benchmarks" / "results"
TIER_LIMITS = {"free": 60, "team": 600, "bench": 10_000_000}
HISTORY_NAMESPACES = 20
HISTORY_WORKLOADS = 50
TARGET_P95_READ = 1.0
TARGET_P95_SEARCH = 0.100


def log(message: str) -> None:
    bench.log(message)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- setup -----------------------------------------------------------------------------------------------


def analysis_status() -> dict[str, Any]:
    """A Completed Analysis's status as the operator writes it, built through the operator's models."""
    from infragenius.models.analysis import AnalysisStatus
    from infragenius.models.api import Phase
    from infragenius.models.findings import Evidence, Finding, ResourceRef, Severity, finding_id

    findings = []
    for n in range(12):
        resource = ResourceRef(kind="Pod", name=f"checkout-{n:02d}-7d9f", namespace=NAMESPACE)
        findings.append(
            Finding(
                id=finding_id("pod", resource, f"crashloop-{n}"),
                detector="pod",
                severity=[Severity.critical, Severity.warning, Severity.info][n % 3],
                resource=resource,
                owners=[ResourceRef(kind="Deployment", name="checkout", namespace=NAMESPACE)],
                title=f"Container app of pod checkout-{n:02d} restarts in a loop (CrashLoopBackOff)",
                evidence=[
                    Evidence(source="status.containerStatuses[0].restartCount", value=str(10 + n)),
                    Evidence(source="event:BackOff", value="Back-off restarting failed container app"),
                ],
                remediation="Read the container's previous logs (kubectl logs --previous) and fix the crash.",
            )
        )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = AnalysisStatus(
        phase=Phase.completed,
        summary="12 findings",
        run_id="bench-run",
        started_at=now,
        completed_at=now,
        total_findings=len(findings),
        findings=findings,
    )
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def seed_history(postgres: LocalPostgres, rows: int, runs: int) -> dict[str, Any]:
    """``rows`` findings through the real schema: one INSERT ... SELECT over generate_series (fast, no Python)."""
    per_run = max(1, rows // runs)
    started = time.monotonic()
    postgres.psql(
        "INSERT INTO requests (kind, namespace, name, resource_uid, generation, run_id, requested_at) "
        f"SELECT 'Analysis', 'ns-' || (r % {HISTORY_NAMESPACES}), 'shop', 'uid-' || (r % {HISTORY_NAMESPACES}), 1, "
        f"'run-' || r, now() - (r * interval '45 days' / {runs}) FROM generate_series(1, {runs}) AS r"
    )
    # Each run: every workload of its namespace has its Pod with 2 stable findings (crash loop, probe).
    postgres.psql(
        "INSERT INTO findings (request_id, finding_id, detector, severity, kind, namespace, name, owner_kind,"
        " owner_name, title, observed_at) "
        "SELECT q.id, substr(md5(q.namespace || '/w-' || (i % 50) || '/' || (i / 50 % 2)), 1, 16),"
        " (ARRAY['pod', 'probe'])[1 + i / 50 % 2], (ARRAY['critical', 'warning', 'info'])[1 + (i + q.id) % 3],"
        " 'Pod', q.namespace, 'w-' || (i % 50) || '-pod', 'Deployment', 'w-' || (i % 50),"
        " 'Container app of w-' || (i % 50) || ' restarts in a loop', q.requested_at "
        f"FROM requests q, generate_series(0, {per_run - 1}) AS i"
    )
    postgres.psql("ANALYZE")
    count = int(postgres.psql("SELECT count(*) FROM findings"))
    return {"rows": count, "runs": runs, "seconds": round(time.monotonic() - started, 1)}


def server_env(kubeconfig: str, postgres: LocalPostgres, redis: LocalRedis, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAGENIUS_")}
    env.update(
        KUBECONFIG=kubeconfig,
        INFRAGENIUS_POSTGRES_URL=postgres.url,
        INFRAGENIUS_REDIS_URL=redis.url,
        INFRAGENIUS_STACK_MANAGE="false",
        INFRAGENIUS_SERVER_TIER_LIMITS=json.dumps(TIER_LIMITS),
        **extra,
    )
    return env


def start_server(kubeconfig: str, postgres: LocalPostgres, redis: LocalRedis, log_file: Path) -> Server:
    server = launch(server_env(kubeconfig, postgres, redis), log_file)
    process = server.process
    bench.wait_until(lambda: server.ready() or process.poll() is not None, timeout=90, what="the server's /readyz")
    if process.poll() is not None:
        raise bench.BenchError(f"the server exited ({process.returncode}):\n{bench.log_tail(log_file)}")
    return server


def serves_the_analysis(server: Server, key: str) -> bool:
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{server.url}/v1/namespaces/{NAMESPACE}/analyses/shop"
    return httpx.get(url, headers=headers, timeout=10).status_code == 200


def create_key(kubeconfig: str, postgres: LocalPostgres, redis: LocalRedis) -> str:
    """Through the real CLI, as an administrator would."""
    reply = subprocess.run(
        [sys.executable, "-m", "infragenius.cli", "keys", "create", "--owner", "bench", "--tier", "bench"]
        + ["--scope", "read", "--namespace", "*", "--expires-in-days", "1"],
        env=server_env(kubeconfig, postgres, redis),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if reply.returncode != 0:
        raise bench.BenchError(f"infragenius keys create failed: {reply.stderr}")
    return reply.stdout.strip()


# --- reads under vegeta ------------------------------------------------------------------------------------


def attack(vegeta: Path, servers: list[Server], key: str, rate: int, duration: int, work: Path) -> dict[str, Any]:
    targets = work / "targets.txt"
    path = f"/v1/namespaces/{NAMESPACE}/analyses/shop"
    targets.write_text("".join(f"GET {s.url}{path}\nAuthorization: Bearer {key}\n\n" for s in servers))
    results = work / f"results-{len(servers)}-{rate}.bin"
    with results.open("wb") as out:
        subprocess.run(
            [str(vegeta), "attack", f"-targets={targets}", f"-rate={rate}/1s", f"-duration={duration}s"]
            + ["-timeout=10s", "-max-workers=2000"],
            stdout=out,
            check=True,
            timeout=duration + 120,
        )
    report = json.loads(
        subprocess.run(
            [str(vegeta), "report", "-type=json", str(results)], capture_output=True, check=True, timeout=120
        ).stdout
    )
    results.unlink()
    latencies = report["latencies"]
    codes = {str(k): int(v) for k, v in (report.get("status_codes") or {}).items()}
    return {
        "rate": rate,
        "requests": report["requests"],
        "achieved_per_s": round(report["throughput"], 1),
        "sent_per_s": round(report["rate"], 1),
        "p50_ms": round(latencies["50th"] / 1e6, 1),
        "p95_ms": round(latencies["95th"] / 1e6, 1),
        "p99_ms": round(latencies["99th"] / 1e6, 1),
        "success": round(report["success"], 4),
        "status_codes": codes,
        "http_429": codes.get("429", 0),
        # vegeta counts a transport failure (timeout, refused connection) as status 0.
        "errors": sum(v for k, v in codes.items() if k not in ("200", "429")),
        "error_kinds": (report.get("errors") or [])[:3],
    }


def read_steps(
    vegeta: Path, servers: list[Server], key: str, rates: list[int], duration: int, work: Path
) -> dict[str, Any]:
    steps = []
    for rate in rates:
        before = sum(s.metric("infragenius_server_audit_dropped_total") for s in servers)
        step = attack(vegeta, servers, key, rate, duration, work)
        step["audit_dropped"] = sum(s.metric("infragenius_server_audit_dropped_total") for s in servers) - before
        steps.append(step)
        log(
            f"  {len(servers)} process(es) at {rate}/s: achieved {step['achieved_per_s']}/s, p50/p95/p99 "
            f"{step['p50_ms']}/{step['p95_ms']}/{step['p99_ms']} ms, success {step['success']:.2%}, "
            f"429s {step['http_429']}"
        )
        if step["p95_ms"] >= TARGET_P95_READ * 1000 or step["success"] < 0.99:
            break
        time.sleep(3)  # let queues (audit batches, sockets in TIME_WAIT) settle between steps
    good = [s for s in steps if s["p95_ms"] < TARGET_P95_READ * 1000 and s["success"] >= 0.99]
    return {"steps": steps, "sustained_rate": max((s["rate"] for s in good), default=0)}


# --- history search ----------------------------------------------------------------------------------------


def search_latencies(server: Server, key: str, count: int) -> dict[str, Any]:
    rng = random.Random(16)
    latencies, sizes = [], []
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for n in range(count + 10):
            ns, workload = f"ns-{rng.randrange(HISTORY_NAMESPACES)}", f"w-{rng.randrange(HISTORY_WORKLOADS)}"
            started = time.perf_counter()
            reply = http.get(f"/v1/namespaces/{ns}/history", params={"workload": workload})
            elapsed = time.perf_counter() - started
            if reply.status_code != 200:
                raise bench.BenchError(f"history search answered {reply.status_code}: {reply.text[:300]}")
            if n >= 10:  # the first few warm the connection and Postgres's buffers
                latencies.append(elapsed)
                sizes.append(len(reply.json()["items"]))
    return {
        "searches": count,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "items_per_answer": statistics.median(sizes),
    }


def explain_search(postgres_url: str) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of exactly the SQL the server sends (captured from server_tables)."""
    import psycopg

    from infragenius.history import server_tables

    captured: dict[str, Any] = {}

    class _Cursor:
        async def __aenter__(self) -> _Cursor:
            return self

        async def __aexit__(self, *_: object) -> None:
            return None

        async def execute(self, sql: str, params: dict[str, Any]) -> None:
            captured.update(sql=sql, params=params)

        async def fetchall(self) -> list[Any]:
            return []

    class _Connection(_Cursor):
        def cursor(self, **_: Any) -> _Cursor:
            return _Cursor()

    class _Pool:
        def connection(self) -> _Connection:
            return _Connection()

    until = dt.datetime.now(dt.UTC)
    query = server_tables.FindingHistoryQuery(
        namespace="ns-3",
        workload="w-7",
        detector=None,
        severity=None,
        since=until - dt.timedelta(days=30),
        until=until,
        offset=0,
        limit=20,
    )
    asyncio.run(server_tables.search_finding_history(_Pool(), query))  # type: ignore[arg-type]
    with psycopg.connect(postgres_url) as conn:
        plan = [row[0] for row in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + captured["sql"], captured["params"])]
    indexes = sorted(
        {word for line in plan for word in line.replace(",", " ").split() if word.startswith(("findings_", "bench_"))}
    )
    summary = [
        line.strip() for line in plan if any(k in line for k in ("Scan", "Index Cond", "Execution Time", "Rows"))
    ]
    return {"indexes": indexes, "plan": plan, "summary": summary[:14]}


# --- overhead, in process ------------------------------------------------------------------------------------


async def overhead(key: str, requests: int, rounds: int) -> dict[str, Any]:
    """The same read with and without the Gatekeeper, the rate limit and the audit trail (see the module doc)."""
    from infragenius.server import app as server_app
    from infragenius.server import http_face, mcp_face
    from infragenius.server.apikeys import ApiKeyAuthenticator
    from infragenius.server.identity import AuthMethod, Identity
    from infragenius.server.ratelimit import RateLimiter
    from infragenius.server.readers import WatchCache
    from infragenius.server.service import Authorizer, InfraGeniusService
    from infragenius.settings import Settings

    settings = Settings()
    async with AsyncExitStack() as stack:
        api, history, redis_client = await server_app.connect(settings, stack)
        cache = WatchCache(api)
        cache.start()
        stack.callback(cache.stop)
        if not await cache.wait_ready(60):
            raise bench.BenchError("the watch cache did not load")
        built = server_app.build(settings, api=api, history=history, redis_client=redis_client, cache=cache)
        built.audit.start()
        stack.push_async_callback(built.audit.stop)
        # The other apps: same service class, routes and MCP/Starlette app as build(), with fewer layers: no
        # Gatekeeper (a fixed identity in the scope instead), no limiter, no audit. Here only: the product has no
        # unauthenticated mode.
        keys = ApiKeyAuthenticator(history.pool, cache_seconds=settings.server_auth_cache_seconds) if history else None
        local = Identity(principal="bench", method=AuthMethod.local, tier="local")

        def layered(*, gate: bool, limit: bool) -> Any:
            service = InfraGeniusService(
                reader=cache,
                api=api,
                history=history.pool if history else None,
                authorizer=Authorizer(None),
                limiter=RateLimiter(redis_client, settings.server_tier_limits) if limit else None,
                audit=None,
                trigger_max_wait_seconds=settings.server_trigger_max_wait_seconds,
            )
            mcp_server = mcp_face.build_mcp_server(service, face="mcp")
            for route in http_face.starlette_routes(service):
                mcp_server.custom_route(route.path, methods=sorted(route.methods or ["GET"]))(route.endpoint)
            inner = mcp_server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True)
            if gate and keys is not None:
                return server_app.Gatekeeper(
                    inner,
                    authenticate=keys.authenticate,
                    max_body_bytes=settings.server_max_body_bytes,
                    on_refusal=lambda *_: None,
                )

            async def bare(scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] == "http":
                    scope[server_app.IDENTITY_SCOPE_KEY] = local
                await inner(scope, receive, send)

            return bare

        apps = {
            "without": layered(gate=False, limit=False),
            "auth": layered(gate=True, limit=False),
            "auth+limit": layered(gate=True, limit=True),
            "with": built.app,  # auth + limit + audit: exactly what serve runs
        }
        path = f"/v1/namespaces/{NAMESPACE}/analyses/shop"
        headers = {"Authorization": f"Bearer {key}"}
        clients = {
            name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
            for name, app in apps.items()
        }
        for http in clients.values():
            stack.push_async_callback(http.aclose)
            for _ in range(50):  # warm-up: imports, caches, the key lookup
                reply = await http.get(path, headers=headers)
                if reply.status_code != 200:
                    raise bench.BenchError(f"the in-process read answered {reply.status_code}: {reply.text[:300]}")

        latencies: dict[str, list[float]] = {name: [] for name in apps}
        throughput: dict[str, list[float]] = {name: [] for name in apps}

        async def one(http: httpx.AsyncClient, sink: list[float] | None) -> None:
            started = time.perf_counter()
            reply = await http.get(path, headers=headers)
            if sink is not None:
                sink.append(time.perf_counter() - started)
            if reply.status_code != 200:
                raise bench.BenchError(f"the in-process read answered {reply.status_code}")

        async def concurrent(http: httpx.AsyncClient, count: int, width: int) -> float:
            gate = asyncio.Semaphore(width)

            async def bounded() -> None:
                async with gate:
                    await one(http, None)

            started = time.perf_counter()
            await asyncio.gather(*(bounded() for _ in range(count)))
            return count / (time.perf_counter() - started)

        for n in range(rounds):
            # Alternate which goes first so drift (the machine's other work) hits both alike.
            for variant in list(apps) if n % 2 == 0 else list(reversed(apps)):
                for _ in range(requests):
                    await one(clients[variant], latencies[variant])
                throughput[variant].append(await concurrent(clients[variant], requests, 16))

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "mean_ms": round(statistics.fmean(values) * 1000, 3),
            "p50_ms": round(percentile(values, 50) * 1000, 3),
            "p95_ms": round(percentile(values, 95) * 1000, 3),
            "p99_ms": round(percentile(values, 99) * 1000, 3),
        }

    with_, without = stats(latencies["with"]), stats(latencies["without"])
    rps_with, rps_without = statistics.median(throughput["with"]), statistics.median(throughput["without"])
    return {
        "requests_per_variant": requests * rounds,
        **{
            name: {**stats(latencies[name]), "per_s_16_concurrent": round(statistics.median(throughput[name]), 1)}
            for name in apps
        },
        "latency_ratio_mean": round(with_["mean_ms"] / without["mean_ms"], 2),
        "latency_ratio_p50": round(with_["p50_ms"] / without["p50_ms"], 2),
        "added_ms_per_request_mean": round(with_["mean_ms"] - without["mean_ms"], 3),
        "throughput_ratio": round(rps_with / rps_without, 2),
    }


# --- main ------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rates", default="100,200,300,400,500,600,800,1000,1500", help="reads/s, stepped up in order")
    parser.add_argument("--duration", type=int, default=20, help="seconds per rate step")
    parser.add_argument("--processes", default="1,2", help="server process counts to measure")
    parser.add_argument("--rows", type=int, default=1_000_000, help="finding rows in the history")
    parser.add_argument("--runs", type=int, default=10_000, help="runs (request rows) the rows belong to")
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--overhead-requests", type=int, default=500, help="calls per block (x rounds, per app)")
    parser.add_argument("--overhead-rounds", type=int, default=6)
    parser.add_argument(
        "--what-if-indexes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the search on the real schema, add two indexes (benchmark only) and search again",
    )
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    work = RESULTS_DIR / "server-load"
    work.mkdir(exist_ok=True)
    doc: dict[str, Any] = {
        "benchmark": "server_load",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": vars(args),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        },
        "tier": {"name": "bench", "calls_per_minute": TIER_LIMITS["bench"]},
    }
    vegeta = ensure_vegeta()
    cluster = LocalCluster(CLUSTER_NAME)
    postgres = LocalPostgres().init().start()
    redis = LocalRedis().start()
    servers: list[Server] = []
    try:
        info = cluster.up(echo=log, timeout=180)
        kubectl = ensure_binaries(echo=False).kubectl
        bench.kubectl_run(kubectl, info.kubeconfig, "apply", "-f", str(ROOT / "crds"))
        bench.kubectl_run(
            kubectl, info.kubeconfig, "wait", "--for=condition=Established", "crd/analyses.infragenius.io"
        )
        call = bench.kubectl_caller(kubectl, info.kubeconfig)
        call("create", "namespace", NAMESPACE, check=False)  # a kept cluster has it already
        manifest = {
            "apiVersion": "infragenius.io/v1alpha1",
            "kind": "Analysis",
            "metadata": {"name": "shop"},
            "spec": {},
        }
        call("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(manifest))
        call(
            "patch", "analysis", "shop", "-n", NAMESPACE, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": analysis_status()}),
        )  # fmt: skip

        log("migrating and seeding the history ...")
        os.environ.update(server_env(info.kubeconfig, postgres, redis))

        async def migrate() -> None:
            from infragenius.history.store import HistoryStore

            store = HistoryStore(postgres.url)
            await store.open(wait=True, timeout=30)
            try:
                await store.migrate()
            finally:
                await store.close()

        asyncio.run(migrate())
        doc["history"] = {"seed": seed_history(postgres, args.rows, args.runs)}
        log(f"  {doc['history']['seed']}")
        key = create_key(info.kubeconfig, postgres, redis)

        doc["reads"] = {}
        rates = [int(r) for r in args.rates.split(",")]
        for count in [int(p) for p in args.processes.split(",")]:
            while len(servers) < count:
                servers.append(
                    start_server(info.kubeconfig, postgres, redis, RESULTS_DIR / f"server-{len(servers)}.log")
                )
            for server in servers:
                bench.wait_until(
                    functools.partial(serves_the_analysis, server, key),
                    timeout=60,
                    what="the Analysis in the server's cache",
                )
            log(f"reads, {count} process(es) ...")
            doc["reads"][str(count)] = read_steps(vegeta, servers[:count], key, rates, args.duration, work)

        log("history search ...")
        doc["history"]["search"] = search_latencies(servers[0], key, args.searches)
        doc["history"]["explain"] = explain_search(postgres.url)
        log(f"  {doc['history']['search']}; indexes {doc['history']['explain']['indexes']}")
        if args.what_if_indexes:
            # Not in the product: would indexes led by (namespace, name) and (namespace, owner_name) help?
            postgres.psql(
                "CREATE INDEX bench_findings_name ON findings (namespace, name, observed_at DESC);"
                " CREATE INDEX bench_findings_owner_name ON findings (namespace, owner_name, observed_at DESC);"
                " ANALYZE findings"
            )
            doc["history"]["what_if_search"] = search_latencies(servers[0], key, args.searches)
            doc["history"]["what_if_explain"] = explain_search(postgres.url)
            log(f"  what-if: {doc['history']['what_if_search']}; {doc['history']['what_if_explain']['indexes']}")
        for server in servers:
            doc.setdefault("server_exit_codes", []).append(server.stop())
        servers.clear()

        log("overhead of auth + rate limit + audit, in process ...")
        doc["overhead"] = asyncio.run(overhead(key, args.overhead_requests, args.overhead_rounds))
        log(f"  {doc['overhead']}")
    finally:
        for server in servers:
            server.stop()
        redis.stop()
        postgres.stop()
        shutil.rmtree(postgres.directory, ignore_errors=True)  # 1.4 GB with a million rows
        doc["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        if not args.keep:
            cluster.down(echo=log)
        (RESULTS_DIR / "server_load.json").write_text(json.dumps(doc, indent=2, default=str))
    print_report(doc)
    return 0


def print_report(doc: dict[str, Any]) -> None:
    print(f"\nserver_load on {doc['machine']['cpus']} cores, {doc['date']}, tier bench (10,000,000/min)")
    print(
        f"{'procs':>5} {'rate/s':>7} {'achieved':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'ok %':>7} {'429':>5}"
    )
    for count, reads in doc.get("reads", {}).items():
        for s in reads["steps"]:
            print(
                f"{count:>5} {s['rate']:>7} {s['achieved_per_s']:>9} {s['p50_ms']:>8} {s['p95_ms']:>8} "
                f"{s['p99_ms']:>8} {s['success'] * 100:>7.2f} {s['http_429']:>5}"
            )
        print(f"      sustained with p95 < 1 s: {reads['sustained_rate']}/s")
    search = doc.get("history", {}).get("search")
    if search:
        print(f"history search over {doc['history']['seed']['rows']} rows: {search} (target p95 < 100 ms)")
        print("  " + "\n  ".join(doc["history"]["explain"]["summary"]))
    what_if = doc.get("history", {}).get("what_if_search")
    if what_if:
        print(f"what-if, with (namespace, name) and (namespace, owner_name) indexes: {what_if}")
        print("  " + "\n  ".join(doc["history"]["what_if_explain"]["summary"]))
    if "overhead" in doc:
        print(f"overhead: {json.dumps(doc['overhead'])}")


if __name__ == "__main__":
    sys.exit(main())
