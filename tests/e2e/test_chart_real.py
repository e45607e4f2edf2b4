"""The chart as users run it: the locally built operator image on the real node, its real probes, the
Postgres, Redis and Ollama it deploys as real pods on real volumes, an explained Analysis with its
history row in the in-cluster Postgres, a hand-over between two replicas, and an uninstall that
leaves nothing behind.

The tests run in order on one release (module fixture); the last one uninstalls it.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from infragenius_devtools.devcluster.build import ensure_helm
from infragenius_devtools.devcluster.node import NODE_LABEL
from infragenius_devtools.devcluster.tinymodel import MODELFILE, write_tiny_llama
from tests.e2e.conftest import ROOT, E2ECluster
from tests.e2e.real_node_support import deployment, shell
from tests.e2e.support import wait_for

RELEASE = "igreal"
NAMESPACE = "infragenius-real"
TOLERATION = {"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}
VALUES = {
    "nodeSelector": {NODE_LABEL: "true"},
    "tolerations": [TOLERATION],
    # Fail-over within the test's patience: a silent replica is presumed gone after 10 s.
    "peering": {"lifetimeSeconds": 10},
    "stack": {
        "nodeSelector": {NODE_LABEL: "true"},
        "tolerations": [TOLERATION],
        "postgres": {"storage": "1Gi"},
        # The CPU-only profile: no GPU, a tiny model.
        "ollama": {"gpus": 0, "storage": "1Gi", "resources": {"cpu": "100m", "memory": "256Mi", "memoryLimit": "2Gi"}},
    },
    "llm": {"model": "tiny", "pull": False},
}
STACK = ("infragenius-postgres", "infragenius-redis", "infragenius-ollama")


class Release:
    def __init__(self, cluster: E2ECluster) -> None:
        self.cluster = cluster
        self.core = client.CoreV1Api(cluster.api)
        self.helm_path = str(ensure_helm(echo=False))

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.helm_path, f"--kubeconfig={self.cluster.kubeconfig}", "-n", NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    def pods(self, selector: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items)

    def ready(self, pod: Any) -> bool:
        conditions = (pod.status.conditions or []) if pod.status else []
        return pod.metadata.deletion_timestamp is None and any(
            c.type == "Ready" and c.status == "True" for c in conditions
        )

    def operator_pods(self) -> list[Any]:
        return self.pods("app.kubernetes.io/name=infragenius-operator")

    def stack_pod(self, name: str) -> Any:
        pods = [p for p in self.core.list_namespaced_pod(NAMESPACE).items if p.metadata.name.startswith(name)]
        return pods[0] if pods else None

    def psql(self, query: str) -> str:
        return self.cluster.kubectl(
            "exec", "-n", NAMESPACE, "infragenius-postgres-0", "--",
            "psql", "-U", "infragenius", "-d", "infragenius", "-At", "-c", query,
        ).stdout.strip()  # fmt: skip


def _load_tiny_model(release: Release) -> None:
    """What an admin of an air-gapped cluster does: copy the model in and `ollama create` it."""
    pod = release.stack_pod("infragenius-ollama")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        model.mkdir()
        write_tiny_llama(model / "tiny.gguf")
        (model / "Modelfile").write_text(MODELFILE.format(gguf="/tmp/model/tiny.gguf"))
        release.cluster.kubectl("cp", str(model), f"{NAMESPACE}/{pod.metadata.name}:/tmp/model")
    release.cluster.kubectl(
        "exec", "-n", NAMESPACE, pod.metadata.name, "--", "ollama", "create", "tiny", "-f", "/tmp/model/Modelfile"
    )


@pytest.fixture(scope="module")
def release(cluster: E2ECluster) -> Iterator[Release]:
    if cluster.local is None or cluster.real_node is None:
        pytest.fail("the chart tests need the devcluster's real node", pytrace=False)
    # The image of the code under test (rebuilt when the operator's sources changed).
    cluster.local.load_images(["operator"], echo=lambda _m: None)
    rel = Release(cluster)
    if rel.helm("list", "-q").stdout.split().count(RELEASE):
        rel.helm("uninstall", RELEASE, "--wait")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
        json.dump(VALUES, values)
        values.flush()
        rel.helm(
            "install", RELEASE, str(ROOT / "charts" / "infragenius-operator"),
            "--create-namespace", "-f", values.name, "--wait", "--timeout", "5m",
        )  # fmt: skip
    yield rel
    if RELEASE in rel.helm("list", "-q").stdout.split():
        rel.helm("uninstall", RELEASE, "--wait")
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def test_the_operator_pod_is_ready_through_its_real_probes_and_deploys_its_stack(release: Release) -> None:
    (pod,) = release.operator_pods()
    assert release.ready(pod)
    assert pod.spec.node_name == release.cluster.real_node["name"]  # type: ignore[index]
    (container,) = pod.spec.containers
    assert container.image == "ghcr.io/infragenius/infragenius-operator:0.1.0"
    assert container.readiness_probe.http_get and container.liveness_probe.http_get
    assert pod.status.container_statuses[0].image_id  # containerd ran the imported image
    for name in STACK:
        wait_for(
            lambda n=name: (p := release.stack_pod(n)) is not None and release.ready(p),
            timeout=300,
            interval=2,
            what=f"{name} to be Ready on the real node",
        )
    claims = release.core.list_namespaced_persistent_volume_claim(NAMESPACE).items
    assert {c.status.phase for c in claims} == {"Bound"} and len(claims) == 2


def test_an_analysis_completes_explained_by_the_in_cluster_ollama_with_history_in_the_in_cluster_postgres(
    release: Release, namespace: str
) -> None:
    _load_tiny_model(release)
    cluster = release.cluster
    broken = deployment("checkout", shell("echo 'INFO boot'; echo 'FATAL: PAYMENT_GATEWAY_URL is not set' >&2; exit 1"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(broken))
    wait_for(
        lambda: any(
            (cs.restart_count or 0) >= 2
            for p in release.core.list_namespaced_pod(namespace).items
            for cs in (p.status.container_statuses or [])
        ),
        timeout=300,
        interval=2,
        what="checkout to crash for real",
    )
    analysis = {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": "Analysis",
        "metadata": {"name": "health"},
        "spec": {"llm": {"enabled": True}, "prometheus": {"enabled": False}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(analysis))
    status = wait_for(
        lambda: (s := _status(cluster, namespace)).get("phase") in ("Completed", "Failed") and s,
        timeout=300,
        interval=2,
        what="the Analysis to finish in the operator pod",
    )
    assert status["phase"] == "Completed", status
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Explained"]["status"], conditions["Explained"]["reason"]) == ("True", "Explained"), conditions
    assert status["explanation"]["model"] == "tiny"
    crash = next(f for f in status["findings"] if f["resource"]["name"] == "checkout")
    logs = [e["value"] for e in crash["evidence"] if e["source"].startswith("log:")]
    assert logs and "PAYMENT_GATEWAY_URL is not set" in logs[0], crash["evidence"]
    # History reaches the Postgres pod (it may buffer while Postgres was still starting).
    row = wait_for(
        lambda: release.psql(f"select phase, critical from analyses where target_namespace = '{namespace}'"),
        timeout=120,
        interval=2,
        what="the run's history row in the in-cluster Postgres",
    )
    assert row.splitlines()[0].startswith("Completed|") and int(row.splitlines()[0].split("|")[1]) >= 1, row


def test_deleting_the_postgres_pod_mid_batch_loses_and_doubles_no_run(release: Release, namespace: str) -> None:
    """Runs completed while Postgres restarts are buffered and written once when it is back."""
    cluster = release.cluster
    names = [f"batch-{i}" for i in range(6)]

    def create(name: str) -> None:
        body = {"apiVersion": "infragenius.io/v1alpha1", "kind": "Analysis", "metadata": {"name": name}, "spec": {}}
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))

    for name in names[:3]:
        create(name)
    release.core.delete_namespaced_pod("infragenius-postgres-0", NAMESPACE, grace_period_seconds=0)
    deleted_at = time.monotonic()
    for name in names[3:]:
        create(name)
    wait_for(
        lambda: all(_status(cluster, namespace, n).get("phase") == "Completed" for n in names),
        timeout=180,
        interval=2,
        what="every run of the batch to complete while Postgres restarts",
    )
    # One run each: a row per Analysis, none twice (a restart must not record a run again).
    query = (
        "select count(*), count(distinct r.name) from requests r join analyses a on a.request_id = r.id "
        f"where r.namespace = '{namespace}' and r.name like 'batch-%'"
    )
    seen: list[str | None] = []

    def rows() -> str | None:
        seen.append(_psql_or_none(release, query))
        return seen[-1] if seen[-1] == f"{len(names)}|{len(names)}" else None

    try:
        counts = wait_for(rows, timeout=300, interval=3, what="one history row per run once Postgres is back")
    except AssertionError:
        pod = release.stack_pod("infragenius-postgres")
        state = pod.status.container_statuses if pod is not None and pod.status else None
        raise AssertionError(f"rows never reached {len(names)}: psql said {seen[-3:]}; postgres pod: {state}") from None
    print(f"postgres deleted mid-batch: all {len(names)} rows written {time.monotonic() - deleted_at:.0f}s later")
    assert counts == f"{len(names)}|{len(names)}"


def _psql_or_none(release: Release, query: str) -> str | None:
    pod = release.stack_pod("infragenius-postgres")
    if pod is None or not release.ready(pod):
        return None
    try:
        return release.psql(query)
    except subprocess.CalledProcessError:
        return None


def _status(cluster: E2ECluster, namespace: str, name: str = "health") -> dict[str, Any]:
    got = cluster.kubectl("get", "analysis", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(got.stdout).get("status", {}) if got.returncode == 0 else {}


def test_with_two_replicas_deleting_the_active_one_hands_over_to_the_standby(release: Release, namespace: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
        json.dump({**VALUES, "replicaCount": 2}, values)
        values.flush()
        release.helm(
            "upgrade", RELEASE, str(ROOT / "charts" / "infragenius-operator"), "-f", values.name, "--wait",
            "--timeout", "5m",
        )  # fmt: skip
    wait_for(
        lambda: len([p for p in release.operator_pods() if release.ready(p)]) == 2,
        timeout=180,
        interval=1,
        what="two ready operator replicas",
    )
    cluster = release.cluster
    first = {"apiVersion": "infragenius.io/v1alpha1", "kind": "Analysis", "metadata": {"name": "before"}, "spec": {}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(first))
    wait_for(lambda: _status(cluster, namespace, "before").get("phase") == "Completed", timeout=120, what="a run")
    active = _active_replica(release)
    release.core.delete_namespaced_pod(active, NAMESPACE, grace_period_seconds=0)
    started = time.monotonic()
    after = {**first, "metadata": {"name": "after"}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(after))
    wait_for(
        lambda: _status(cluster, namespace, "after").get("phase") == "Completed",
        timeout=180,
        interval=1,
        what="the standby to take over and run the Analysis",
    )
    handover = time.monotonic() - started
    print(f"hand-over: the Analysis created after deleting the active replica completed in {handover:.1f}s")
    assert _active_replica(release) != active


def _active_replica(release: Release) -> str:
    """The operator pod whose log says it runs the handlers (Kopf pauses the others)."""

    def active() -> str | None:
        for pod in release.operator_pods():
            if not release.ready(pod):
                continue
            log = release.cluster.kubectl("logs", "-n", NAMESPACE, pod.metadata.name, check=False).stdout
            paused, resumed = log.rfind("Pausing operations"), log.rfind("Resuming operations")
            if resumed > paused or (paused == -1 and "Handler" in log):
                return str(pod.metadata.name)
        return None

    return str(wait_for(active, timeout=120, interval=1, what="an active replica"))


def test_uninstall_leaves_nothing_behind(release: Release) -> None:
    volumes_before = {
        pv.metadata.name
        for pv in release.core.list_persistent_volume().items
        if pv.spec.claim_ref and pv.spec.claim_ref.namespace == NAMESPACE
    }
    assert volumes_before, "the stack's volumes"
    release.helm("uninstall", RELEASE, "--wait", "--timeout", "5m")
    apps = client.AppsV1Api(release.cluster.api)

    def leftovers() -> list[str]:
        found = [f"pod/{p.metadata.name}" for p in release.core.list_namespaced_pod(NAMESPACE).items]
        found += [f"service/{s.metadata.name}" for s in release.core.list_namespaced_service(NAMESPACE).items]
        found += [f"secret/{s.metadata.name}" for s in release.core.list_namespaced_secret(NAMESPACE).items]
        found += [
            f"pvc/{c.metadata.name}" for c in release.core.list_namespaced_persistent_volume_claim(NAMESPACE).items
        ]
        found += [f"deployment/{d.metadata.name}" for d in apps.list_namespaced_deployment(NAMESPACE).items]
        found += [f"statefulset/{s.metadata.name}" for s in apps.list_namespaced_stateful_set(NAMESPACE).items]
        found += [
            f"pv/{pv.metadata.name}"
            for pv in release.core.list_persistent_volume().items
            if pv.metadata.name in volumes_before
        ]
        return found

    try:
        wait_for(lambda: not leftovers(), timeout=180, interval=2, what="everything the release made to be gone")
    except AssertionError:
        raise AssertionError(f"left behind after helm uninstall: {leftovers()}") from None
    rbac = client.RbacAuthorizationV1Api(release.cluster.api)
    assert not [r.metadata.name for r in rbac.list_cluster_role().items if RELEASE in r.metadata.name]
    assert not [b.metadata.name for b in rbac.list_cluster_role_binding().items if RELEASE in b.metadata.name]
