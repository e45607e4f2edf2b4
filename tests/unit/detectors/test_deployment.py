"""Deployment detector: failed and stalled rollouts, ReplicaFailure, lost availability, paused; silence while a
rollout is within its deadline.
"""

from __future__ import annotations

from typing import Any

from infragenius.detectors.deployment import DETECTOR
from infragenius.models.findings import Severity
from infragenius.snapshot import Snapshot
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
    ts,
)

QUOTA_MSG = (
    'pods "web-def-x7k2p" is forbidden: exceeded quota: compute, requested: limits.cpu=500m, '
    "used: limits.cpu=2, limited: limits.cpu=2"
)


def rollout(conditions: list[dict], available: int = 1, **kw: Any) -> Snapshot:
    """Deployment web mid-rollout from web-abc (revision 1) to web-def (revision 2, image 2.0)."""
    return snap(
        deployment("web", 3, available=available, updated=1, conditions=conditions, **kw),
        replicaset("web-abc", "web", replicas=2, revision=1),
        replicaset("web-def", "web", replicas=1, ready=0, revision=2, image="shop/web:2.0"),
        events=[event("ReplicaSet", "web-def", "FailedCreate", f"Error creating: {QUOTA_MSG}", count=14)],
    )


def test_contract() -> None:
    assert DETECTOR.name == "deployment"
    assert DETECTOR.kinds == frozenset({"Deployment", "ReplicaSet"})


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(healthy_objects())) == []


def test_progress_deadline_exceeded_is_critical_with_new_images() -> None:
    conditions = [
        cond("Available", "True", "MinimumReplicasAvailable", ago=3 * 3600),
        cond(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            'ReplicaSet "web-def" has timed out progressing.',
            ago=60,
        ),
    ]
    f = only(DETECTOR.detect(rollout(conditions, available=2)))
    assert f.severity is Severity.critical
    assert (f.resource.kind, f.resource.name) == ("Deployment", "web")
    assert f.title == "Deployment web rollout failed: no progress within 600s (2/3 available)"
    e = ev(f)
    assert e["status.conditions[Progressing].message"] == 'ReplicaSet "web-def" has timed out progressing.'
    assert e["ReplicaSet/web-def.spec.template.spec.containers[app].image"] == "shop/web:2.0"
    assert e["status.availableReplicas"] == "2"
    assert e["status.updatedReplicas"] == "1"
    assert "kubectl rollout undo -n shop deployment/web" in f.remediation


def test_rollout_within_deadline_is_fine() -> None:
    conditions = [
        cond("Available", "False", "MinimumReplicasUnavailable", ago=120),
        cond(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            'ReplicaSet "web-def" is progressing.',
            ago=120,
            lastUpdateTime=ts(30),
        ),
    ]
    s = rollout(conditions, available=0)
    # The FailedCreate event alone is not a ReplicaFailure condition.
    assert DETECTOR.detect(s) == []


def test_replica_failure_shows_the_quota_message() -> None:
    conditions = [
        cond("Available", "True", "MinimumReplicasAvailable"),
        cond("Progressing", "True", "ReplicaSetUpdated", ago=60, lastUpdateTime=ts(60)),
        cond("ReplicaFailure", "True", "FailedCreate", QUOTA_MSG, ago=60),
    ]
    f = only(DETECTOR.detect(rollout(conditions, available=2)))
    assert f.severity is Severity.critical
    assert f.title.startswith(
        'Deployment web cannot create pods (FailedCreate): pods "web-def-x7k2p" is forbidden: exceeded quota'
    )
    e = ev(f)
    assert e["status.conditions[ReplicaFailure].message"] == QUOTA_MSG
    assert e["event:FailedCreate"] == f"count=14: Error creating: {QUOTA_MSG}"
    assert "kubectl describe rs -n shop web-def" in f.remediation


def test_lost_availability_after_a_completed_rollout() -> None:
    conditions = [
        cond(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            ago=1200,
        ),
        cond("Progressing", "True", "NewReplicaSetAvailable", ago=2 * 86400, lastUpdateTime=ts(2 * 86400)),
    ]
    d = deployment("web", 3, available=0, conditions=conditions)
    f = only(DETECTOR.detect(snap(d, replicaset("web-abc", "web", ready=0))))
    assert f.severity is Severity.warning
    assert f.title == "Deployment web lacks minimum availability for 20m: 0/3 replicas available"
    assert ev(f)["status.conditions[Available].reason"] == "MinimumReplicasUnavailable"
    assert ev(f)["ReplicaSet/web-abc.spec.template.spec.containers[app].image"] == "shop/web:1.0"
    # Just lost (a pod restarting): not yet.
    conditions[0] = cond("Available", "False", "MinimumReplicasUnavailable", ago=90)
    assert DETECTOR.detect(snap(deployment("web", 3, available=0, conditions=conditions))) == []


def test_stalled_rollout_the_controller_has_not_flagged_yet() -> None:
    conditions = [
        cond("Available", "True", "MinimumReplicasAvailable"),
        cond("Progressing", "True", "ReplicaSetUpdated", ago=1500, lastUpdateTime=ts(1500)),
    ]
    f = only(DETECTOR.detect(rollout(conditions, available=2)))
    assert f.severity is Severity.warning
    assert f.title == "Deployment web rollout stalled for 25m: 2/3 replicas available"
    assert ev(f)["spec.progressDeadlineSeconds"] == "600"


def test_paused_is_info_and_shows_even_before_status() -> None:
    f = only(DETECTOR.detect(snap(deployment("web", paused=True))))
    assert f.severity is Severity.info
    assert f.title == "Deployment web is paused: spec changes are not rolled out"
    assert "kubectl rollout resume -n shop deployment/web" in f.remediation
    g = only(DETECTOR.detect(snap(deployment("web", paused=True, with_status=False))))
    assert g.id == f.id


def test_missing_status_or_zero_replicas_say_nothing() -> None:
    assert DETECTOR.detect(snap(deployment("web", with_status=False))) == []
    conditions = [cond("Available", "False", "MinimumReplicasUnavailable", ago=3600)]
    assert DETECTOR.detect(snap(deployment("web", 0, available=0, conditions=conditions))) == []


def test_id_is_stable_when_counts_change() -> None:
    conditions = [cond("Progressing", "False", "ProgressDeadlineExceeded", ago=60)]
    a = only(DETECTOR.detect(rollout(conditions, available=1)))
    b = only(DETECTOR.detect(rollout(conditions, available=1)))
    c = only(DETECTOR.detect(rollout(conditions, available=0)))
    assert a.id == b.id == c.id
    assert a.title != c.title


def test_without_replicasets_images_come_from_the_deployment() -> None:
    conditions = [cond("Progressing", "False", "ProgressDeadlineExceeded", ago=60)]
    s = snap(deployment("web", 3, available=1, conditions=conditions), without=("ReplicaSet",))
    f = only(DETECTOR.detect(s))
    assert ev(f)["Deployment/web.spec.template.spec.containers[app].image"] == "shop/web:1.0"


def test_same_snapshot_twice_gives_identical_findings() -> None:
    conditions = [
        cond("Progressing", "False", "ProgressDeadlineExceeded", ago=60),
        cond("ReplicaFailure", "True", "FailedCreate", QUOTA_MSG),
    ]
    s = rollout(conditions, paused=True)
    first, second = DETECTOR.detect(s), DETECTOR.detect(s)
    assert [f.severity for f in first] == [Severity.info, Severity.critical, Severity.critical]
    assert first == second and len({f.id for f in first}) == 3


def test_a_stalled_rollout_carries_the_kubelets_reasons_from_its_new_pods() -> None:
    """The readiness probe's failure is reported on the pod, not on the Deployment or ReplicaSet."""
    conditions = [cond("Progressing", "False", "ProgressDeadlineExceeded", ago=60)]
    probe = "Readiness probe failed: cat: /tmp/ready: No such file or directory"
    s = snap(
        deployment("web", 3, available=2, updated=1, conditions=conditions),
        replicaset("web-abc", "web", replicas=2, revision=1),
        replicaset("web-def", "web", replicas=1, ready=0, revision=2, image="shop/web:2.0"),
        pod("web-def-1", ("ReplicaSet", "web-def"), ready=False),
        pod("web-abc-1", ("ReplicaSet", "web-abc"), ready=False),
        events=[
            event("Pod", "web-def-1", "Unhealthy", probe, count=30),
            event("Pod", "web-def-1", "Pulled", "Container image already present", type_="Normal"),
            # The old ReplicaSet's pods are not why the new one stalls.
            event("Pod", "web-abc-1", "FailedMount", 'secret "old" not found'),
        ],
    )
    e = ev(only(DETECTOR.detect(s)))
    assert e["event:Unhealthy"] == f"count=30: {probe}"
    assert "event:FailedMount" not in e and "event:Pulled" not in e
