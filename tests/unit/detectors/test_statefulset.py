"""StatefulSet detector: readiness shortfall, missing governing Service, missing StorageClass, stuck updates."""

from __future__ import annotations

from infragenius.detectors.statefulset import DETECTOR
from infragenius.models.findings import Severity
from tests.unit.factories import (
    cond,
    ev,
    event,
    healthy_objects,
    only,
    pod,
    service,
    snap,
    statefulset,
    storage_class,
)


def db_pods(ready: int, count: int = 3, age: float = 86400, unready_for: float = 900) -> list[dict]:
    pods = []
    for i in range(count):
        ok = i < ready
        conditions = [
            cond("PodScheduled", ago=age),
            cond("Ready", "True" if ok else "False", ago=age if ok else unready_for),
        ]
        pods.append(
            pod(f"db-{i}", ("StatefulSet", "db"), ready=ok, conditions=conditions, age=age, labels={"app": "db"})
        )
    return pods


def test_contract() -> None:
    assert DETECTOR.name == "statefulset"
    assert DETECTOR.kinds == frozenset({"StatefulSet", "Pod", "Service", "StorageClass"})


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(healthy_objects())) == []


def test_partial_readiness_is_a_warning_and_none_ready_is_critical() -> None:
    events = [event("StatefulSet", "db", "FailedCreate", "create Pod db-2 failed: exceeded quota", count=3)]
    f = only(DETECTOR.detect(snap(statefulset("db", 3, ready=1), service("db"), db_pods(ready=1), events=events)))
    assert f.severity is Severity.warning
    assert (f.resource.kind, f.resource.name) == ("StatefulSet", "db")
    assert f.title == "StatefulSet db has 1/3 replicas ready"
    assert ev(f)["pods not ready"] == "db-1, db-2"
    assert ev(f)["event:FailedCreate"] == "count=3: create Pod db-2 failed: exceeded quota"
    assert "lowest ordinal first" in f.remediation

    # OrderedReady: db-0 is stuck, so db-1 and db-2 do not even exist.
    g = only(DETECTOR.detect(snap(statefulset("db", 3, ready=0), service("db"), db_pods(ready=0, count=1))))
    assert g.severity is Severity.critical
    assert ev(g)["pods present"] == "1 of 3"
    assert g.id == f.id


def test_pods_being_replaced_are_not_a_shortfall() -> None:
    # db-2 was just recreated by a rolling update and is starting.
    pods = db_pods(ready=2, count=2) + db_pods(ready=0, count=3, age=30, unready_for=30)[2:]
    assert DETECTOR.detect(snap(statefulset("db", 3, ready=2), service("db"), pods)) == []


def test_without_pods_only_the_statefulset_age_counts() -> None:
    assert (
        only(DETECTOR.detect(snap(statefulset("db", 3, ready=2), service("db"), without=("Pod",)))).severity
        is Severity.warning
    )
    assert DETECTOR.detect(snap(statefulset("db", 3, ready=0, age=60), service("db"), without=("Pod",))) == []


def test_missing_governing_service() -> None:
    f = only(DETECTOR.detect(snap(statefulset("db", service="db-headless"), db_pods(3))))
    assert f.severity is Severity.warning
    assert f.title == "StatefulSet db names governing Service db-headless, which does not exist"
    assert ev(f)["spec.serviceName"] == "db-headless"
    # Not gathered: no conclusion. Not set (optional field): nothing to check.
    assert DETECTOR.detect(snap(statefulset("db", service="db-headless"), db_pods(3), without=("Service",))) == []
    assert DETECTOR.detect(snap(statefulset("db", service=None), db_pods(3))) == []


def test_missing_storage_class_is_critical() -> None:
    f = only(
        DETECTOR.detect(
            snap(statefulset("db", storage_class="fast-ssd"), service("db"), db_pods(3), storage_class("standard"))
        )
    )
    assert f.severity is Severity.critical
    assert f.title == "StatefulSet db volumeClaimTemplates use StorageClass fast-ssd, which does not exist"
    assert ev(f)["spec.volumeClaimTemplates[data].spec.storageClassName"] == "fast-ssd"
    assert ev(f)["StorageClasses present"] == "standard"
    present = snap(statefulset("db", storage_class="standard"), service("db"), db_pods(3), storage_class("standard"))
    assert DETECTOR.detect(present) == []
    not_gathered = snap(
        statefulset("db", storage_class="fast-ssd"), service("db"), db_pods(3), without=("StorageClass",)
    )
    assert DETECTOR.detect(not_gathered) == []
    # "" asks for no class (static binding), not for a class named "".
    assert DETECTOR.detect(snap(statefulset("db", storage_class=""), service("db"), db_pods(3))) == []


def test_update_stuck_is_info() -> None:
    on_delete = statefulset("db", current_rev="db-1", update_rev="db-2", updated=0, strategy={"type": "OnDelete"})
    f = only(DETECTOR.detect(snap(on_delete, service("db"), db_pods(3))))
    assert f.severity is Severity.info
    assert f.title == (
        "StatefulSet db update incomplete: 0/3 pods on revision db-2 "
        "(updateStrategy OnDelete: pods change only when deleted)"
    )
    assert ev(f)["status.currentRevision"] == "db-1"
    # A rolling update that just created a pod is progressing.
    rolling = statefulset("db", current_rev="db-1", update_rev="db-2", updated=1)
    recent = db_pods(3)[:2] + [pod("db-2", ("StatefulSet", "db"), age=60, labels={"app": "db"})]
    assert DETECTOR.detect(snap(rolling, service("db"), recent)) == []
    assert only(DETECTOR.detect(snap(rolling, service("db"), db_pods(3)))).id == f.id


def test_same_snapshot_twice_gives_identical_findings() -> None:
    s = snap(statefulset("db", ready=1, service="gone", storage_class="fast"), db_pods(1), storage_class("standard"))
    first, second = DETECTOR.detect(s), DETECTOR.detect(s)
    assert {f.title.split(" ", 2)[2][:12] for f in first} == {"has 1/3 repl", "names govern", "volumeClaimT"}
    assert first == second
