"""Every detector over one large, mixed namespace: the pod table's indexes against straightforward per-pod
passes, and the findings against a golden recorded with the code before the pod walk was fused (and the
same with the objects compacted as the gatherer hands them over, which shares equal status lists).

Regenerate the golden only on purpose (a finding's wording changed), with the code whose findings are the
reference: ``python tests/unit/detectors/test_large_namespace.py > tests/unit/detectors/golden_large_namespace.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from infragenius.analysis import engine
from infragenius.detectors import registry
from infragenius.gather.compact import Compactor
from infragenius.kube.meta import labels_of, name_of, namespace_of
from infragenius.kube.owners import controller_ref
from infragenius.models.findings import Finding
from infragenius.snapshot import Snapshot
from tests.unit import factories as f

GOLDEN = Path(__file__).with_name("golden_large_namespace.json")
CRASH_REASONS = ("FailedMount", "FailedCreatePodSandBox", "ProbeWarning", "BackOff", "Unhealthy", "FailedSync")


def crashing_pod(name: str, rs: str, app: str, index: int) -> f.Obj:
    last = f.terminated(exit_code=1, ago=60 + index)
    pod = f.pod(
        name,
        ("ReplicaSet", rs),
        statuses=[f.cstatus(waiting="CrashLoopBackOff", message="back-off", last=last, restarts=7, ready=False)],
        ready=False,
        labels={"app": app, "pod-template-hash": "c4a5h"},
        node=f"node-{index % 3 + 1}",
        age=1800,
    )
    return pod


def large_namespace() -> tuple[list[f.Obj], list[f.Obj]]:
    """~1,100 pods: healthy Deployments (one mid-rollout, its two ReplicaSets' pods interleaved), crash loops,
    a Job with failed pods, bare pods pending, terminating and failed, Services, nodes, Warning events."""
    objects: list[f.Obj] = [f.node(f"node-{i}") for i in (1, 2, 3)]
    objects.append(f.node("node-4", ready="False", reason="KubeletNotReady", ready_changed_ago=900))
    pods: list[f.Obj] = []
    for d in range(20):
        deploy, rs, members = f.deployment_with_pods(f"web-{d:02d}", 50, node=f"node-{d % 4 + 1}", age=3600 + d)
        objects += [deploy, rs, f.service_for(f"web-{d:02d}", {"app": f"web-{d:02d}"})]
        pods += members
    # A rollout: the new ReplicaSet's pods sorted between the old one's, as the API lists pods by name.
    deploy, old_rs, old_pods = f.deployment_with_pods("shop", 30, age=7200)
    new_rs = f.app_replicaset("shop-5c6d7e", deploy)
    new_pods = [
        f.app_pod(f"shop-7d9f8b-{i:05d}x", {"app": "shop", "pod-template-hash": "5c6d7e"},
                  owner=f.owner_ref("ReplicaSet", "shop-5c6d7e"), ready=i % 4 != 0, age=120)
        for i in range(10)
    ]  # fmt: skip
    objects += [deploy, old_rs, new_rs, f.service_for("shop", {"app": "shop"})]
    pods += sorted(old_pods + new_pods, key=name_of)
    for c in range(3):
        app = f"crash-{c}"
        deploy = f.app_deployment(app, replicas=10)
        rs = f.app_replicaset(f"{app}-c4a5h", deploy)
        objects += [deploy, rs, f.service_for(app, {"app": app})]
        pods += [crashing_pod(f"{app}-c4a5h-{i:05d}", rs["metadata"]["name"], app, i) for i in range(10)]
    job = f.job("nightly", failed=3, conditions=[f.cond("Failed", reason="BackoffLimitExceeded")])
    objects.append(job)
    pods += [
        f.pod(f"nightly-{i}", ("Job", "nightly"), phase="Failed", statuses=[f.cstatus(terminated=f.terminated())])
        for i in range(3)
    ]
    pods.append(f.pod("stuck", phase="Pending", age=3600, conditions=[f.cond("PodScheduled", "False", "Unschedulable",
                      "0/4 nodes are available: 4 Insufficient cpu.")]))  # fmt: skip
    pods.append(f.pod("leaving", deletionTimestamp=f.ts(1200), age=7200))
    pods.append(f.pod("evicted", phase="Failed", reason="Evicted", message="The node was low on resource: memory."))
    events = [
        f.event(
            "Pod", name_of(pods[(i * 37) % len(pods)]), CRASH_REASONS[i % len(CRASH_REASONS)], f"m{i % 7}", i % 5 + 1
        )
        for i in range(220)
    ]
    return objects + pods, events


def snapshot(compacted: bool) -> Snapshot:
    objects, events = large_namespace()
    grouped = f.group(objects)
    if compacted:  # what the gatherer hands over: equal values (status lists among them) shared
        grouped = {kind: Compactor().objects(items, kind) for kind, items in grouped.items()}
        events = Compactor().objects(events, "Event")
    return f.snap(*grouped.values(), events=events)


def findings_doc(findings: list[Finding]) -> dict[str, Any]:
    digest = hashlib.sha256()
    for finding in findings:
        digest.update(finding.model_dump_json().encode())
    return {
        "count": len(findings),
        "sha256": digest.hexdigest(),
        "findings": [[x.detector, x.id, x.severity.value, x.affected, x.title] for x in findings],
    }


def run_all(compacted: bool) -> dict[str, Any]:
    result = engine.run_detectors(snapshot(compacted), registry.select())
    assert not result.failures
    return findings_doc(result.findings)


@pytest.mark.parametrize("compacted", [False, True], ids=["plain", "compacted"])
def test_findings_match_the_golden(compacted: bool) -> None:
    golden = json.loads(GOLDEN.read_text())
    found = run_all(compacted)
    assert found["findings"] == golden["findings"]
    assert found == golden  # every field of every finding, in order


def test_the_golden_holds_problems_of_several_families() -> None:
    detectors = {row[0] for row in json.loads(GOLDEN.read_text())["findings"]}
    assert {"pod", "service", "events", "job", "node", "bestpractice"} <= detectors  # not a golden of nothing


@pytest.mark.parametrize("compacted", [False, True], ids=["plain", "compacted"])
def test_pod_table_matches_straightforward_passes(compacted: bool) -> None:
    snap = snapshot(compacted)
    pods = snap.items("Pod")
    table = snap.pods

    assert {(ns, name): pod for ns, named in table.by_name.items() for name, pod in named.items()} == {
        (namespace_of(p) or "", name_of(p)): p for p in pods
    }
    assert all(snap.get("Pod", name_of(p), namespace_of(p)) is p for p in pods)

    by_controller: dict[str, list[f.Obj]] = {}
    for p in pods:
        ref = controller_ref(p)
        if ref and ref.get("uid"):
            by_controller.setdefault(ref["uid"], []).append(p)
    assert table.by_controller == by_controller
    assert [p for group in table.by_owner.values() for p in group] != []
    assert sorted(id(p) for group in table.by_owner.values() for p in group) == sorted(id(p) for p in pods)

    def active(p: f.Obj) -> bool:
        phase = (p.get("status") or {}).get("phase")
        return not p["metadata"].get("deletionTimestamp") and phase not in ("Succeeded", "Failed")

    assert table.active.by_ns == {f.NS: [p for p in pods if active(p)]}
    for app in ("web-00", "shop", "crash-1"):
        expected = [p for p in pods if active(p) and labels_of(p).get("app") == app]
        assert table.active.select_map(f.NS, {"app": app}) == expected
        assert table.active.select(f.NS, {"matchLabels": {"app": app}}) == expected
    on_node: dict[str, list[str]] = {}
    for p in pods:
        if active(p):
            on_node.setdefault(p["spec"]["nodeName"], []).append(name_of(p))
    assert table.active_on_node == on_node

    running = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    running_ids = {id(p) for p in running}
    assert table.not_running == [p for p in pods if id(p) not in running_ids]
    grouped = [p for group in table.running_by_status.values() for p in group]
    assert sorted(map(id, grouped)) == sorted(map(id, running))
    for group in table.running_by_status.values():
        for field in ("containerStatuses", "initContainerStatuses", "conditions"):
            assert len({id(p["status"].get(field)) for p in group}) == 1
    if compacted:  # shared lists: far fewer groups than pods
        assert len(table.running_by_status) < len(running) / 5


def test_ownerless_references_in_two_namespaces_name_two_controllers() -> None:
    # Compaction shares the equal reference lists; without a uid they still name two different controllers.
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "controller": True}
    pods = [f.pod(f"web-1-{ns}", namespace=ns, ownerReferences=[dict(ref)]) for ns in ("a", "b")]
    table = f.snap(Compactor().objects(pods, "Pod"), namespace="").pods
    assert {key: [name_of(p) for p in group] for key, group in table.by_owner.items()} == {
        ("a", "ReplicaSet", "web-1"): ["web-1-a"],
        ("b", "ReplicaSet", "web-1"): ["web-1-b"],
    }


if __name__ == "__main__":
    print(json.dumps(run_all(compacted=False), indent=1))
