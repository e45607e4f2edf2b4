"""Operating the operator: HA fail-over, SIGKILL mid-batch, an API server restart, and
dependencies that go away during a batch. Everything here is real: operator processes, the
control plane, Postgres, Redis, Ollama and Prometheus.

"Exactly once" is checked three ways: every Analysis ends Completed with Ready=True, history holds
one row per Analysis, and no Analysis has more than one AnalysisCompleted event.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from infragenius_devtools.devcluster import scenarios as workloads
from infragenius_devtools.devcluster.services import LocalOllama, LocalPostgres, LocalRedis
from tests.e2e.analysis_support import analysis, get_analysis, running_operator, wait_phase
from tests.e2e.conftest import IN_CI, TINY_MODEL, E2ECluster
from tests.e2e.operator_process import OperatorProcess, completed_events, start_operator
from tests.e2e.support import SETUP_TIMEOUT, wait_for

pytestmark = pytest.mark.e2e

BATCH = 40


def _create_batch(
    cluster: E2ECluster, namespace: str, prefix: str, count: int, spec: dict[str, Any] | None = None
) -> list[str]:
    names = [f"{prefix}-{i:02d}" for i in range(count)]
    docs = "\n---\n".join(yaml.safe_dump(analysis(n, spec)) for n in names)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=docs)
    return names


def _phases(cluster: E2ECluster, namespace: str) -> dict[str, str]:
    listed = client.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
        "infragenius.io", "v1alpha1", namespace, "analyses"
    )
    return {item["metadata"]["name"]: (item.get("status") or {}).get("phase", "") for item in listed["items"]}


def _wait_completed(cluster: E2ECluster, namespace: str, names: list[str], timeout: float) -> None:
    wait_for(
        lambda: all(_phases(cluster, namespace).get(n) == "Completed" for n in names),
        timeout=timeout,
        interval=0.5,
        what=f"all {len(names)} analyses to complete (phases now: {sorted(set(_phases(cluster, namespace).values()))})",
    )


def _history_rows(postgres: LocalPostgres, namespace: str) -> dict[str, int]:
    rows = postgres.psql(f"SELECT name || '=' || count(*) FROM requests WHERE namespace = '{namespace}' GROUP BY name")
    return {line.split("=")[0]: int(line.split("=")[1]) for line in rows.splitlines() if line}


def _assert_exactly_once(
    cluster: E2ECluster, core: client.CoreV1Api, postgres: LocalPostgres, namespace: str, names: list[str]
) -> None:
    for name in names:
        status = get_analysis(cluster, namespace, name)["status"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert status["phase"] == "Completed" and ready["status"] == "True", (name, status)
        assert ready["observedGeneration"] == status["observedGeneration"] == 1
    wait_for(
        lambda: len(_history_rows(postgres, namespace)) == len(names), timeout=30, what="one history row per analysis"
    )
    rows = _history_rows(postgres, namespace)
    assert rows == dict.fromkeys(names, 1), rows
    # The event is named after the run and posted before the final status write: a run killed or cut off
    # from the API at any point has exactly one when it is Completed, never two and never none.
    events = completed_events(core.list_namespaced_event(namespace).items)
    assert events == dict.fromkeys(names, 1), {n: events.get(n) for n in names if events.get(n) != 1}


def test_standby_takes_over_when_the_active_replica_is_killed(
    cluster: E2ECluster,
    core: client.CoreV1Api,
    namespace: str,
    operator_kubeconfig: str,
    postgres: LocalPostgres,
    tmp_path: Path,
) -> None:
    peering = f"e2e-{uuid.uuid4().hex[:6]}"
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering}}
        ),
    )
    workloads.break_namespace(cluster.kubectl, core, namespace)
    env = {
        "INFRAGENIUS_PEERING_NAME": peering,
        "INFRAGENIUS_PEERING_LIFETIME_SECONDS": "6",
        "INFRAGENIUS_POSTGRES_URL": postgres.url,
    }
    active = start_operator(operator_kubeconfig, tmp_path / "active.log", INFRAGENIUS_PEERING_PRIORITY="200", **env)
    standby: OperatorProcess | None = None
    try:
        standby = start_operator(
            operator_kubeconfig, tmp_path / "standby.log", INFRAGENIUS_PEERING_PRIORITY="100", **env
        )
        peers = lambda: cluster.kubectl("get", "clusterkopfpeering", peering, "-o", "yaml").stdout  # noqa: E731
        wait_for(
            lambda: len(yaml.safe_load(peers()).get("status") or {}) == 2,
            timeout=30,
            what="both replicas in the peering",
        )

        names = _create_batch(cluster, namespace, "ha", BATCH)
        wait_for(
            lambda: list(_phases(cluster, namespace).values()).count("Completed") >= 5,
            timeout=60,
            what="5 analyses done",
        )
        assert standby.metric("infragenius_runs_total") == 0, "the standby worked while the active replica was alive"
        done_before = list(_phases(cluster, namespace).values()).count("Completed")
        active.kill()
        killed = time.monotonic()

        _wait_completed(cluster, namespace, names, timeout=120)
        takeover = time.monotonic() - killed
        by_standby = standby.metric("infragenius_runs_total", outcome="completed")
        print(
            f"\nHA: {done_before}/{BATCH} done when the active replica was killed; "
            f"the standby completed {by_standby:.0f} and finished the batch {takeover:.1f}s after the kill"
        )
        assert by_standby >= 1 and done_before < BATCH
        assert "Resuming operations" in standby.output() or "resum" in standby.output().lower()
        _assert_exactly_once(cluster, core, postgres, namespace, names)
    finally:
        active.stop()
        if standby is not None:
            standby.stop()
        cluster.kubectl("delete", "clusterkopfpeering", peering, "--ignore-not-found", check=False)


def test_sigkill_mid_batch_then_restart_finishes_everything_once(
    cluster: E2ECluster,
    core: client.CoreV1Api,
    namespace: str,
    operator_kubeconfig: str,
    postgres: LocalPostgres,
    tmp_path: Path,
) -> None:
    workloads.break_namespace(cluster.kubectl, core, namespace)
    env = {"INFRAGENIUS_POSTGRES_URL": postgres.url}
    first = start_operator(operator_kubeconfig, tmp_path / "first.log", **env)
    try:
        names = _create_batch(cluster, namespace, "kill", BATCH)
        wait_for(
            lambda: list(_phases(cluster, namespace).values()).count("Completed") >= 5,
            timeout=60,
            what="5 analyses done",
        )
        first.kill()
    finally:
        first.stop()
    left = _phases(cluster, namespace)
    unfinished = [n for n in names if left.get(n) != "Completed"]
    print(
        f"\nSIGKILL: {BATCH - len(unfinished)}/{BATCH} completed, "
        f"{sum(1 for n in unfinished if left.get(n) == 'Running')} "
        "left in Running, the rest not started"
    )
    assert unfinished, "the batch finished before the kill; nothing was tested"

    second = start_operator(operator_kubeconfig, tmp_path / "second.log", **env)
    try:
        _wait_completed(cluster, namespace, names, timeout=120)
        time.sleep(2)  # anything repeated after completion would show up by now
        assert "Running" not in _phases(cluster, namespace).values()
        _assert_exactly_once(cluster, core, postgres, namespace, names)
        assert second.metric("infragenius_runs_total", outcome="completed") <= len(unfinished)
    finally:
        second.stop()
    # Logs are JSON, one object per line; each run's lines name the resource and the run id.
    lines = [json.loads(line) for line in second.output().splitlines() if line.startswith("{")]
    done = [line for line in lines if line.get("message", "").startswith("analysis ")]
    assert done, second.output()[-2000:]
    for line in done:
        assert line["object"]["kind"] == "Analysis" and line["object"]["namespace"] == namespace
        assert line["run_id"] == get_analysis(cluster, namespace, line["object"]["name"])["status"]["runId"]


def test_api_server_restart_during_a_batch(
    cluster: E2ECluster,
    core: client.CoreV1Api,
    namespace: str,
    operator_kubeconfig: str,
    postgres: LocalPostgres,
    tmp_path: Path,
) -> None:
    if cluster.local is None:
        if IN_CI:
            pytest.fail("the API server restart test needs the local control plane in CI")
        pytest.skip("restarting the API server needs the local control plane (not kind or an existing cluster)")
    workloads.break_namespace(cluster.kubectl, core, namespace)
    operator = start_operator(operator_kubeconfig, tmp_path / "operator.log", INFRAGENIUS_POSTGRES_URL=postgres.url)
    try:
        names = _create_batch(cluster, namespace, "api", BATCH)
        wait_for(
            lambda: list(_phases(cluster, namespace).values()).count("Completed") >= 3,
            timeout=60,
            what="3 analyses done",
        )
        unreachable = cluster.local.restart_apiserver(down_seconds=3)
        _wait_completed(cluster, namespace, names, timeout=180)
        # The watch came back: work created after the restart is seen and done too.
        later = _create_batch(cluster, namespace, "after", 3)
        _wait_completed(cluster, namespace, later, timeout=60)
        print(f"\nAPI server down for {unreachable:.1f}s mid-batch; all {BATCH + 3} analyses completed")
        _assert_exactly_once(cluster, core, postgres, namespace, names + later)
        assert operator.process.poll() is None, "the operator died with the API server"
    finally:
        operator.stop()


def _degraded(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Degraded")


def test_dependencies_stopped_mid_batch_degrade_then_recover(
    cluster: E2ECluster,
    core: client.CoreV1Api,
    namespace: str,
    operator_kubeconfig: str,
    postgres: LocalPostgres,
    redis_server: LocalRedis,
    ollama: LocalOllama,
    prometheus: Any,
) -> None:
    workloads.break_namespace(cluster.kubectl, core, namespace)
    env = {
        "INFRAGENIUS_POSTGRES_URL": postgres.url,
        "INFRAGENIUS_REDIS_URL": redis_server.url,
        "INFRAGENIUS_OLLAMA_URL": ollama.url,
        "INFRAGENIUS_LLM_MODEL": TINY_MODEL,
        "INFRAGENIUS_LLM_TIMEOUT_SECONDS": "120",
        "INFRAGENIUS_LLM_BREAKER_COOLDOWN_SECONDS": "1",
        "INFRAGENIUS_PROMETHEUS_URL": prometheus.url,
        "INFRAGENIUS_PROMETHEUS_TIMEOUT_SECONDS": "3",
    }
    spec = {"llm": {"enabled": True}}
    with running_operator(operator_kubeconfig, **env):
        workloads.apply(cluster.kubectl, namespace, analysis("before", spec))
        before = wait_phase(cluster, namespace, "before", ("Completed",), timeout=180)["status"]
        assert _degraded(before)["status"] == "False", _degraded(before)

        postgres.stop()
        redis_server.stop()
        ollama.stop()
        prometheus.stop()
        try:
            during = []
            for i in range(3):  # one at a time: each sees what the previous ones ran into
                workloads.apply(cluster.kubectl, namespace, analysis(f"during-{i}", spec))
                during.append(
                    wait_phase(cluster, namespace, f"during-{i}", ("Completed", "Failed"), timeout=120)["status"]
                )
        finally:
            postgres.start()
            redis_server.start()
            ollama.start()
            prometheus.start()
        for status in during:
            assert status["phase"] == "Completed" and _degraded(status)["status"] == "True", status["conditions"]
        last = _degraded(during[-1])
        assert last["reason"] == "MultipleDependencies"
        for needle in ("Prometheus:", "model server:", "Redis:", "Postgres:"):
            assert needle in last["message"], (needle, last["message"])
        explained = next(c for c in during[-1]["conditions"] if c["type"] == "Explained")
        assert explained["status"] == "False" and explained["reason"] in ("ModelUnavailable", "ModelTimeout")

        # Recovery: the buffered runs reach Postgres, and a run after the return is not degraded.
        wait_for(
            lambda: sum(_history_rows(postgres, namespace).values()) == 4, timeout=90, what="buffered runs written"
        )
        time.sleep(11)  # the cache skips Redis for 10 s after an error
        workloads.apply(cluster.kubectl, namespace, analysis("after", spec))
        after = wait_phase(cluster, namespace, "after", ("Completed",), timeout=180)["status"]
        assert _degraded(after)["status"] == "False", _degraded(after)
        assert next(c for c in after["conditions"] if c["type"] == "Explained")["status"] == "True"
        assert _history_rows(postgres, namespace) == {
            "before": 1,
            "during-0": 1,
            "during-1": 1,
            "during-2": 1,
            "after": 1,
        }


def test_interval_reruns_only_the_periodic_analysis(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_kubeconfig: str
) -> None:
    """spec.interval (minimum 1m) re-runs an analysis; one without it runs once. Takes about 80 s."""
    workloads.break_namespace(cluster.kubectl, core, namespace)
    with running_operator(operator_kubeconfig):
        workloads.apply(cluster.kubectl, namespace, analysis("periodic", {"interval": "1m"}), analysis("once"))
        # Set-up: the first runs, bounded generously (a loaded machine); the timing checked is the re-run's.
        first = wait_phase(cluster, namespace, "periodic", ("Completed",), timeout=SETUP_TIMEOUT)["status"]
        once = wait_phase(cluster, namespace, "once", ("Completed",), timeout=SETUP_TIMEOUT)["status"]
        second = wait_for(
            lambda: (
                (s := get_analysis(cluster, namespace, "periodic")["status"]).get("runId") != first["runId"]
                and s.get("phase") == "Completed"
                and s
            ),
            timeout=120,
            interval=1,
            what="the periodic analysis to run again",
        )
        gap = (
            datetime.fromisoformat(second["completedAt"].replace("Z", "+00:00"))
            - datetime.fromisoformat(first["completedAt"].replace("Z", "+00:00"))
        ).total_seconds()
        assert 60 <= gap <= 100, gap  # due after 1m, checked every 15 s
        assert get_analysis(cluster, namespace, "once")["status"]["runId"] == once["runId"]
        events = completed_events(core.list_namespaced_event(namespace).items)
        assert events["periodic"] == 2 and events["once"] == 1
