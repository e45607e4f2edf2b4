"""ReplicaSet detector: only ReplicaSets no Deployment in the snapshot covers; bare ones with a lasting shortfall."""

from __future__ import annotations

from infragenius.detectors.replicaset import DETECTOR
from infragenius.models.findings import Severity
from tests.unit.factories import (
    cond,
    deployment,
    ev,
    event,
    healthy_objects,
    only,
    pod,
    replicaset,
    snap,
)

QUOTA_MSG = 'pods "web-abc-x" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10'


def failing(owner: str | None = "web") -> dict:
    return replicaset(
        "web-abc", owner, ready=2, conditions=[cond("ReplicaFailure", "True", "FailedCreate", QUOTA_MSG, ago=60)]
    )


def test_contract() -> None:
    assert DETECTOR.name == "replicaset"
    assert {"ReplicaSet", "Deployment"} <= DETECTOR.kinds


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(healthy_objects())) == []


def test_replica_failure_of_a_deployment_replicaset_is_left_to_the_deployment() -> None:
    assert DETECTOR.detect(snap(deployment("web"), failing("web"))) == []


def test_replica_failure_without_its_deployment_is_critical() -> None:
    events = [event("ReplicaSet", "web-abc", "FailedCreate", f"Error creating: {QUOTA_MSG}", count=6)]
    for s in (snap(failing(None), events=events), snap(failing("web"), events=events, without=("Deployment",))):
        f = only(DETECTOR.detect(s))
        assert f.severity is Severity.critical
        assert (f.resource.kind, f.resource.name) == ("ReplicaSet", "web-abc")
        assert f.title.startswith('ReplicaSet web-abc cannot create pods (FailedCreate): pods "web-abc-x" is forbidden')
        assert ev(f)["status.conditions[ReplicaFailure].message"] == QUOTA_MSG
        assert ev(f)["event:FailedCreate"] == f"count=6: Error creating: {QUOTA_MSG}"


def test_bare_replicaset_with_a_lasting_shortfall() -> None:
    rs = replicaset("cache", None, replicas=3, ready=1)
    pods = [pod(f"cache-{i}", ("ReplicaSet", "cache"), ready=i == 0) for i in range(3)]
    f = only(DETECTOR.detect(snap(rs, pods)))
    assert f.severity is Severity.warning
    assert f.title == "ReplicaSet cache has 1/3 pods ready"
    assert ev(f)["pods not ready"] == "cache-1, cache-2"
    assert ev(f)["status.readyReplicas"] == "1"
    # Same id when the shortfall changes.
    g = only(DETECTOR.detect(snap(replicaset("cache", None, replicas=3, ready=0), pods)))
    assert g.id == f.id
    # Without Pods gathered, the ReplicaSet's age is all there is: it is old, so it is reported.
    assert only(DETECTOR.detect(snap(rs, without=("Pod",)))).id == f.id


def test_shortfall_while_pods_are_replaced_or_for_a_young_replicaset_is_fine() -> None:
    rs = replicaset("cache", None, replicas=3, ready=2)
    replacing = [pod("cache-0", ("ReplicaSet", "cache")), pod("cache-1", ("ReplicaSet", "cache")),
                 pod("cache-2", ("ReplicaSet", "cache"), ready=False, age=40,
                     conditions=[cond("PodScheduled", ago=40), cond("Ready", "False", ago=40)])]  # fmt: skip
    assert DETECTOR.detect(snap(rs, replacing)) == []
    young = replicaset("cache", None, replicas=3, ready=0, age=120)
    assert DETECTOR.detect(snap(young, without=("Pod",))) == []


def test_owned_replicaset_shortfall_is_not_reported_here() -> None:
    # Owned by something (even a Deployment not in the snapshot): the owner's detector judges it.
    assert DETECTOR.detect(snap(replicaset("web-abc", "web", ready=0), without=("Deployment",))) == []


def test_replicaset_without_status_is_skipped() -> None:
    rs = failing(None)
    rs.pop("status")
    assert DETECTOR.detect(snap(rs)) == []


def test_same_snapshot_twice_gives_identical_findings() -> None:
    s = snap(failing(None), replicaset("cache", None, ready=0), without=("Pod",))
    first, second = DETECTOR.detect(s), DETECTOR.detect(s)
    assert len(first) == 2 and first == second
