"""Health endpoints, /metrics, the Grafana dashboard's queries and JSON logs."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from kopf import LogFormat
from kopf._core.actions.loggers import make_formatter

from infragenius.observability import metrics
from infragenius.observability.logs import with_run_id
from infragenius.observability.server import HealthServer, HealthState
from infragenius.runs.lifecycle import already_done

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "infragenius-operator" / "files" / "grafana-dashboard.json"


@pytest.mark.asyncio
async def test_probes_and_metrics_over_http() -> None:
    state = HealthState()
    server = HealthServer(state)
    port = await server.start("127.0.0.1", 0)
    metrics.RUNS.labels(kind="Analysis", outcome="completed").inc()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with http.get("/healthz") as r:
                assert r.status == 200 and (await r.json()) == {"status": "ok"}
            async with http.get("/readyz") as r:
                assert r.status == 503
                assert (await r.json())["waitingFor"] == ["start-up"]
            state.mark_ready()
            async with http.get("/readyz") as r:
                assert r.status == 200
            async with http.get("/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
    finally:
        await server.stop()
    assert re.search(r'^infragenius_runs_total\{kind="Analysis",outcome="completed"\} [1-9]', text, re.M)
    assert "process_resident_memory_bytes" in text
    assert "# TYPE infragenius_stage_duration_seconds histogram" in text


def test_stage_timer_in_flight_and_queue_gauges() -> None:
    before = metrics.sample("infragenius_stage_duration_seconds_count", {"kind": "Test", "stage": "gather"})
    with metrics.timed_stage("Test", "gather"):
        pass
    assert metrics.sample("infragenius_stage_duration_seconds_count", {"kind": "Test", "stage": "gather"}) == before + 1
    with metrics.in_flight("Test"), metrics.queued("Test"):
        assert metrics.sample("infragenius_runs_in_flight", {"kind": "Test"}) == 1
        assert metrics.sample("infragenius_runs_queued", {"kind": "Test"}) == 1
    assert metrics.sample("infragenius_runs_in_flight", {"kind": "Test"}) == 0
    assert metrics.sample("infragenius_runs_queued", {"kind": "Test"}) == 0


def test_dashboard_is_current_and_queries_only_exported_metrics() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "grafana_dashboard.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    exposed = set()
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            exposed.add(sample.name)
        # Families with no samples yet (labelled, never used) still have known sample names.
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
        exposed.update(family.name + s for s in suffixes.get(family.type, [""]))
    board = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in board["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b((?:infragenius|process)_[a-z_]+)\b", target["expr"])
    }
    assert queried, "the dashboard queries nothing"
    assert queried <= exposed, f"the dashboard queries metrics the operator does not export: {queried - exposed}"


def test_json_logs_carry_the_resource_and_the_run_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter(log_format=LogFormat.JSON, log_refkey="object"))
    base = logging.getLogger("test.json.logs")
    base.handlers[:] = [handler]
    base.propagate = False
    base.setLevel(logging.INFO)
    # Kopf's per-object logger is a LoggerAdapter carrying k8s_ref; ours wraps it.
    kopf_like = logging.LoggerAdapter(base, {"k8s_ref": {"kind": "Analysis", "namespace": "shop", "name": "a1"}})
    kopf_like.process = lambda msg, kw: (msg, {**kw, "extra": {**kopf_like.extra, **(kw.get("extra") or {})}})  # type: ignore[method-assign]
    with_run_id(kopf_like, "abc123").info("analysis done: %d findings", 3)
    line = json.loads(stream.getvalue().strip())
    assert line["message"] == "analysis done: 3 findings"
    assert line["run_id"] == "abc123"
    assert line["object"] == {"kind": "Analysis", "namespace": "shop", "name": "a1"}
    assert line["severity"] == "info"


def test_a_finished_run_is_not_repeated() -> None:
    done = {"runId": "r1", "phase": "Completed", "observedGeneration": 2}
    assert already_done(done, "r1", 2)
    assert not already_done(done, "r2", 2)  # another cause (rerun, interval)
    assert not already_done(done, "r1", 3)  # the spec changed since
    assert not already_done({**done, "phase": "Running"}, "r1", 2)  # killed mid-run: run again
