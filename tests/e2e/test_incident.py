"""IncidentReport end to end: a real rollout by the controller-manager, then failures; a node going NotReady."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from infragenius_devtools.devcluster import scenarios
from infragenius_devtools.devcluster.cluster import CUSTOM_STATUS_ANNOTATION
from tests.e2e.conftest import E2ECluster
from tests.e2e.support import wait_for

pytestmark = pytest.mark.e2e

REVISION = "deployment.kubernetes.io/revision"
OLD_IMAGE = scenarios.IMAGE
NEW_IMAGE = "registry.example/shop/web:2.0"
SECTIONS = ("## Summary", "## Impact", "## Timeline", "## Suspected root cause", "## Action items")


def incident_report(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "infragenius.io/v1alpha1", "kind": "IncidentReport", "metadata": {"name": name}, "spec": spec}


def wait_report(cluster: E2ECluster, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> Any:
        body = json.loads(cluster.kubectl("get", "incidentreport", name, "-n", namespace, "-o", "json").stdout)
        return body.get("status", {}).get("phase") in ("Completed", "Failed") and body

    return wait_for(done, timeout=timeout, what=f"incident report {name} finished")


@pytest.fixture(scope="module", autouse=True)
def _crd_established(cluster: E2ECluster, crds: None) -> None:
    cluster.kubectl("wait", "--for=condition=Established", "crd/incidentreports.infragenius.io", "--timeout=30s")


def test_rollout_before_failures_is_the_top_cause(
    cluster: E2ECluster, core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str, operator: KopfRunner
) -> None:
    scenarios.apply(cluster.kubectl, namespace, scenarios.deployment("checkout", 2, custom_status=True))
    scenarios.wait_pods(core, namespace, "app=checkout", 2)
    wait_for(
        lambda: any(
            (rs.metadata.annotations or {}).get(REVISION) == "1"
            for rs in apps.list_namespaced_replica_set(namespace).items
        ),
        what="revision 1",
    )

    # A real rollout: the controller-manager creates the new ReplicaSet and its pods.
    cluster.kubectl("set", "image", "deployment/checkout", f"app={NEW_IMAGE}", "-n", namespace)
    new_rs = wait_for(
        lambda: next(
            (
                rs
                for rs in apps.list_namespaced_replica_set(namespace).items
                if (rs.metadata.annotations or {}).get(REVISION) == "2"
            ),
            None,
        ),
        what="the ReplicaSet of revision 2",
    )
    assert new_rs.spec.template.spec.containers[0].image == NEW_IMAGE
    new_hash = new_rs.metadata.labels["pod-template-hash"]
    new_pods = scenarios.wait_pods(core, namespace, f"app=checkout,pod-template-hash={new_hash}", 1)
    time.sleep(1.1)  # API timestamps have second resolution: the failures come strictly after the rollout

    for pod in new_pods:
        scenarios.patch_failure(core, pod, "CrashLoopBackOff", started_minutes_ago=0, exited_minutes_ago=0)
        scenarios.post_warning_event(
            core,
            namespace,
            "Pod",
            pod.metadata.name,
            "BackOff",
            "Back-off restarting failed container app",
            5,
            uid=pod.metadata.uid,
            first_seen_minutes_ago=0,
        )

    scenarios.apply(cluster.kubectl, namespace, incident_report("checkout-down", {"since": "30m", "severity": "SEV2"}))
    body = wait_report(cluster, namespace, "checkout-down")
    status = body["status"]
    assert status["phase"] == "Completed", status
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == body["metadata"]["generation"]

    timeline = status["timeline"]
    assert [e["time"] for e in timeline] == sorted(e["time"] for e in timeline)
    rollout_at = next(
        i for i, e in enumerate(timeline) if e["kind"] == "Rollout" and e["resource"]["name"] == new_rs.metadata.name
    )
    first_failure = next(
        i
        for i, e in enumerate(timeline)
        if e["kind"] in ("Event", "Restart", "Termination") and e["severity"] != "info"
    )
    assert rollout_at < first_failure, timeline
    assert timeline[rollout_at]["time"] <= timeline[first_failure]["time"]
    image_change = f"image {OLD_IMAGE} -> {NEW_IMAGE} (container app)"
    assert image_change in timeline[rollout_at]["details"]
    assert {e["kind"] for e in timeline} >= {"Rollout", "Event", "Restart"}

    top = status["suspectedCauses"][0]
    assert top["rank"] == 1
    assert top["resource"] == {"kind": "Deployment", "name": "checkout", "namespace": namespace}
    assert {"label": "change", "value": image_change} in top["evidence"]
    assert "before the first symptom" in top["why"]
    assert all(top["score"] > c["score"] for c in status["suspectedCauses"][1:])

    impact = status["impact"]
    assert impact["podsAffected"] == len(new_pods) and impact["restarts"] == 7 * len(new_pods)
    assert impact["workloads"] == [{"kind": "Deployment", "name": "checkout", "namespace": namespace}]
    markdown = status["postmortem"]["markdown"]
    assert status["postmortem"]["truncated"] is False
    for section in SECTIONS:
        assert section in markdown
    assert image_change in markdown
    window = status["window"]
    assert dt.datetime.fromisoformat(window["end"].replace("Z", "+00:00")) - dt.datetime.fromisoformat(
        window["start"].replace("Z", "+00:00")
    ) == dt.timedelta(minutes=30)

    table = cluster.kubectl("get", "incidentreports", "-n", namespace).stdout
    header = table.splitlines()[0]
    for column in ("PHASE", "SEVERITY", "SUSPECTED CAUSE", "AGE"):
        assert column in header
    assert "Completed" in table and "SEV2" in table and "Rollout of Deployment checkout" in table


def _ready(node: client.V1Node) -> str | None:
    return next((c.status for c in node.status.conditions or [] if c.type == "Ready"), None)


def test_node_not_ready_is_the_top_cause(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator: KopfRunner
) -> None:
    scenarios.apply(cluster.kubectl, namespace, scenarios.deployment("checkout", 2))
    pods = scenarios.wait_pods(core, namespace, "app=checkout", 2)
    node_name = pods[0].spec.node_name
    on_node = sorted(p.metadata.name for p in pods if p.spec.node_name == node_name)
    # kwok stops refreshing the node's status once annotated; then NotReady is written as a kubelet would.
    cluster.kubectl("annotate", "node", node_name, f"{CUSTOM_STATUS_ANNOTATION}=custom", "--overwrite")
    try:
        time.sleep(1.1)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        core.patch_node_status(
            node_name,
            {
                "status": {
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "False",
                            "reason": "KubeletNotReady",
                            "message": "container runtime network not ready",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                    ]
                }
            },
        )
        wait_for(lambda: _ready(core.read_node(node_name)) in ("False", "Unknown"), what=f"{node_name} NotReady")

        scenarios.apply(cluster.kubectl, namespace, incident_report("node-down", {"since": "30m"}))
        status = wait_report(cluster, namespace, "node-down")["status"]
        assert status["phase"] == "Completed", status
        node_entries = [
            e for e in status["timeline"] if e["kind"] == "NodeCondition" and e["resource"]["name"] == node_name
        ]
        assert any("NotReady" in e["summary"] and e["severity"] == "critical" for e in node_entries), status["timeline"]
        top = status["suspectedCauses"][0]
        assert top["title"] == f"Node {node_name} NotReady" and top["resource"]["name"] == node_name
        assert top["resource"]["kind"] == "Node"
        assert any(e["label"] == "detail" and all(p in e["value"] for p in on_node) for e in top["evidence"]), top
        assert status["impact"]["podsAffected"] >= len(on_node)
        assert status["impact"]["workloads"] == [{"kind": "Deployment", "name": "checkout", "namespace": namespace}]
        assert "## Suspected root cause" in status["postmortem"]["markdown"]
        assert f"Node {node_name} NotReady" in status["postmortem"]["markdown"]
    finally:
        cluster.kubectl("annotate", "node", node_name, f"{CUSTOM_STATUS_ANNOTATION}-")
        try:
            wait_for(lambda: _ready(core.read_node(node_name)) == "True", timeout=30, what=f"{node_name} Ready again")
        except AssertionError:
            # kwok did not pick the node up again in time: mark it Ready as kwok would.
            now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
            core.patch_node_status(
                node_name,
                {
                    "status": {
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "KubeletReady",
                                "lastHeartbeatTime": now,
                                "lastTransitionTime": now,
                            }
                        ]
                    }
                },
            )
            raise


def test_api_server_rejects_impossible_windows(cluster: E2ECluster, namespace: str) -> None:
    import yaml

    def apply(spec: dict[str, Any]) -> str:
        done = cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", check=False, input=yaml.safe_dump(incident_report("bad", spec))
        )
        return done.stderr if done.returncode else ""

    assert "give either since, or start and end, not both" in apply(
        {"since": "1h", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"}
    )
    assert "give either since, or start and end, not both" in apply({})
    assert "start and end go together" in apply({"start": "2026-01-01T00:00:00Z"})
    assert "start must be before end" in apply({"start": "2026-01-01T02:00:00Z", "end": "2026-01-01T01:00:00Z"})
    assert "Unsupported value" in apply({"since": "1h", "severity": "SEV9"})
