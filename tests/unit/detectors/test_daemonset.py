"""DaemonSet detector: nodes without a ready daemon pod (only when it lasts) and misscheduled pods."""

from __future__ import annotations

from infragenius.detectors.daemonset import DETECTOR
from infragenius.models.findings import Severity
from tests.unit.factories import cond, daemonset, ev, event, healthy_objects, only, pod, snap


def agent_pods(ready: int, count: int = 3, unready_age: float = 900) -> list[dict]:
    pods = []
    for i in range(count):
        ok = i < ready
        age = 86400 if ok else unready_age
        conditions = [cond("PodScheduled", ago=age), cond("Ready", "True" if ok else "False", ago=age)]
        pods.append(
            pod(f"agent-{i}", ("DaemonSet", "agent"), ready=ok, conditions=conditions, age=age, labels={"app": "agent"})
        )
    return pods


def test_contract() -> None:
    assert DETECTOR.name == "daemonset"
    assert DETECTOR.kinds == frozenset({"DaemonSet", "Pod"})


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(healthy_objects())) == []


def test_unready_nodes_are_a_warning() -> None:
    events = [
        event("DaemonSet", "agent", "FailedDaemonPod", "Found failed daemon pod shop/agent-2 on node node-3", count=4)
    ]
    f = only(DETECTOR.detect(snap(daemonset("agent", 3, ready=1), agent_pods(1), events=events)))
    assert f.severity is Severity.warning
    assert (f.resource.kind, f.resource.name) == ("DaemonSet", "agent")
    assert f.title == "DaemonSet agent is not ready on 2 of 3 nodes (1 ready, 2 unavailable)"
    e = ev(f)
    assert e["status.numberUnavailable"] == "2"
    assert e["pods not ready"] == "agent-1, agent-2"
    assert e["event:FailedDaemonPod"].startswith("count=4: Found failed daemon pod")
    assert e["DaemonSet/agent.spec.template.spec.containers[app].image"] == "shop/agent:2"
    # Stable id as the count changes.
    assert only(DETECTOR.detect(snap(daemonset("agent", 3, ready=2), agent_pods(2)))).id == f.id


def test_rolling_update_in_progress_is_fine() -> None:
    assert DETECTOR.detect(snap(daemonset("agent", 3, ready=2), agent_pods(2, unready_age=45))) == []


def test_without_pods_the_daemonset_age_decides() -> None:
    assert only(DETECTOR.detect(snap(daemonset("agent", 3, ready=2), without=("Pod",)))).severity is Severity.warning
    assert DETECTOR.detect(snap(daemonset("agent", 3, ready=0, age=30), without=("Pod",))) == []


def test_misscheduled_pods() -> None:
    f = only(DETECTOR.detect(snap(daemonset("agent", 3, misscheduled=1), agent_pods(3))))
    assert f.severity is Severity.warning
    assert f.title == "DaemonSet agent runs 1 pod(s) on nodes it should not run on"
    assert ev(f)["status.numberMisscheduled"] == "1"


def test_unobserved_daemonset_is_skipped() -> None:
    ds = daemonset("agent", 3, ready=0)
    ds["status"] = {}
    assert DETECTOR.detect(snap(ds)) == []


def test_same_snapshot_twice_gives_identical_findings() -> None:
    s = snap(daemonset("agent", 3, ready=1, misscheduled=2), agent_pods(1))
    first, second = DETECTOR.detect(s), DETECTOR.detect(s)
    assert len(first) == 2 and first == second
