from infragenius.detectors.node import DETECTOR
from infragenius.models.findings import ResourceRef, Severity, finding_id
from tests.unit.factories import app_pod, deployment_with_pods, healthy_events, healthy_namespace, node, snap


def node_id(name: str, problem: str) -> str:
    return finding_id("node", ResourceRef(kind="Node", name=name), problem)


def test_contract() -> None:
    assert DETECTOR.name == "node"
    assert DETECTOR.kinds == {"Node", "Pod"}


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events())) == []
    # Healthy conditions are never reported, cluster-wide either.
    assert DETECTOR.detect(snap(node("node-1"), node("node-2"), namespace="")) == []


def test_unknown_ready_means_kubelet_stopped_posting() -> None:
    deploy, rs, pods = deployment_with_pods("web", 3, node="node-1")
    sick = node(
        "node-1",
        ready="Unknown",
        reason="NodeStatusUnknown",
        message="Kubelet stopped posting node status.",
        heartbeat_ago=720,
    )
    findings = DETECTOR.detect(snap(deploy, rs, *pods, sick))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.critical and f.id == node_id("node-1", "NotReady")
    assert f.resource == ResourceRef(kind="Node", name="node-1")
    assert f.title == "Node node-1 is NotReady (kubelet stopped posting status 12m ago); 3 pods of shop run there"
    assert f.affected == 3
    ev = {e.source: e.value for e in f.evidence}
    assert ev["status.conditions[Ready].status"] == "Unknown"
    assert ev["status.conditions[Ready].message"] == "Kubelet stopped posting node status."
    assert ev["status.conditions[Ready].lastHeartbeatTime"].endswith("(12m ago)")
    assert ev["pods on node"] == "web-7d9f8b-00000, web-7d9f8b-00001, web-7d9f8b-00002"


def test_ready_false_uses_reason() -> None:
    p = app_pod("api-0", node="node-2")
    findings = DETECTOR.detect(
        snap(p, node("node-2", ready="False", reason="KubeletNotReady", message="container runtime is down"))
    )
    assert [f.severity for f in findings] == [Severity.critical]
    assert findings[0].title.startswith("Node node-2 is NotReady (KubeletNotReady)")


def test_only_nodes_hosting_snapshot_pods_are_reported_in_a_namespace() -> None:
    p = app_pod("api-0", node="node-1")
    sick = node("node-9", ready="Unknown")
    assert DETECTOR.detect(snap(p, node("node-1"), sick)) == []
    # Cluster-wide analysis looks at every node.
    assert [f.resource.name for f in DETECTOR.detect(snap(p, node("node-1"), sick, namespace=""))] == ["node-9"]


def test_finished_pods_do_not_tie_a_namespace_to_a_node() -> None:
    done = app_pod("job-1", node="node-9", phase="Succeeded")
    assert DETECTOR.detect(snap(done, node("node-9", ready="Unknown"))) == []


def test_pressure_conditions_are_warnings() -> None:
    p = app_pod("api-0", node="node-1")
    findings = DETECTOR.detect(
        snap(
            p,
            node("node-1", pressure={"MemoryPressure": "True", "DiskPressure": "True", "NetworkUnavailable": "False"}),
        )
    )
    assert sorted(f.id for f in findings) == sorted(
        [node_id("node-1", "MemoryPressure"), node_id("node-1", "DiskPressure")]
    )
    assert all(f.severity is Severity.warning for f in findings)
    mem = next(f for f in findings if f.id == node_id("node-1", "MemoryPressure"))
    assert (
        mem.title
        == "Node node-1 reports MemoryPressure: memory is low; the kubelet evicts pods; 1 pods of shop run there"
    )
    assert ("status.conditions[MemoryPressure].status", "True") in [(e.source, e.value) for e in mem.evidence]


def test_network_unavailable_is_a_warning() -> None:
    findings = DETECTOR.detect(
        snap(app_pod("api-0", node="node-1"), node("node-1", pressure={"NetworkUnavailable": "True"}))
    )
    assert [(f.severity, f.id) for f in findings] == [(Severity.warning, node_id("node-1", "NetworkUnavailable"))]
    assert "pods there have no connectivity" in findings[0].title


def test_cordoned_node_is_info() -> None:
    findings = DETECTOR.detect(snap(app_pod("api-0", node="node-1"), node("node-1", unschedulable=True)))
    assert [(f.severity, f.id) for f in findings] == [(Severity.info, node_id("node-1", "Cordoned"))]
    assert "kubectl uncordon node-1" in findings[0].remediation


def test_noexecute_node_taints_are_warnings_but_not_duplicates_of_notready() -> None:
    taint = {"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute", "timeAdded": "2025-01-15T11:00:00Z"}
    unreachable = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    custom = {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}
    soft = {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}
    p = app_pod("api-0", node="node-1")
    findings = DETECTOR.detect(snap(p, node("node-1", taints=[taint, custom, soft])))
    assert [(f.severity, f.id) for f in findings] == [
        (Severity.warning, node_id("node-1", "Taint:node.kubernetes.io/out-of-service"))
    ]
    down = DETECTOR.detect(snap(p, node("node-1", ready="Unknown", taints=[unreachable])))
    assert [f.id for f in down] == [node_id("node-1", "NotReady")]


def test_new_node_booting_is_not_reported() -> None:
    booting = node("node-1", ready="False", reason="KubeletNotReady", age=60)
    assert DETECTOR.detect(snap(booting, namespace="")) == []


def test_missing_ready_condition_is_not_observed_yet() -> None:
    bare = node("node-1")
    bare["status"]["conditions"] = [c for c in bare["status"]["conditions"] if c["type"] != "Ready"]
    assert DETECTOR.detect(snap(bare, namespace="")) == []


def test_missing_pod_kind_reports_nothing_in_a_namespace() -> None:
    assert DETECTOR.detect(snap(node("node-1", ready="Unknown"), without=["Pod"])) == []


def test_id_stable_across_heartbeat_ages_and_pod_counts() -> None:
    a = DETECTOR.detect(snap(app_pod("a", node="node-1"), node("node-1", ready="Unknown", heartbeat_ago=120)))
    b = DETECTOR.detect(
        snap(
            app_pod("a", node="node-1"),
            app_pod("b", node="node-1"),
            node("node-1", ready="Unknown", heartbeat_ago=3000),
        )
    )
    assert a[0].id == b[0].id and a[0].title != b[0].title
