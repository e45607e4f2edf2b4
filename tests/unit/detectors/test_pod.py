"""Pod detector: each problem, roll-up to the workload, stable ids, and silence on healthy or transient states."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from infragenius.detectors.pod import DETECTOR
from infragenius.models.findings import Severity
from infragenius.snapshot import Snapshot
from tests.unit.factories import (
    DAY,
    complete_job,
    cond,
    container,
    cstatus,
    deployment,
    ev,
    event,
    healthy_objects,
    job,
    metrics_for,
    only,
    pod,
    replicaset,
    snap,
    terminated,
    ts,
    web_pods,
)


def web(*pods: Any, events: Iterable[dict] = (), missing: Iterable[str] = (), metrics: dict | None = None) -> Snapshot:
    """Deployment web -> ReplicaSet web-abc -> the given pods."""
    return snap(deployment("web"), replicaset("web-abc", "web"), *pods, events=events, without=missing, metrics=metrics)


def crashing(count: int = 3, restarts: int = 12) -> list[dict]:
    return web_pods(
        count,
        phase="Running",
        ready=False,
        statuses=[
            cstatus(
                waiting="CrashLoopBackOff",
                message="back-off 5m0s restarting failed container=app pod=web",
                restarts=restarts,
                last=terminated("Error", 1),
            )
        ],
    )


def test_contract() -> None:
    assert DETECTOR.name == "pod"
    assert {"Pod", "ReplicaSet", "Deployment"} <= DETECTOR.kinds


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(healthy_objects())) == []


def test_crashloop_rolls_up_to_the_deployment() -> None:
    events = [
        event("Pod", f"web-abc-{i}", "BackOff", "Back-off restarting failed container app", count=10) for i in range(3)
    ]
    f = only(DETECTOR.detect(web(crashing(3), events=events)))
    assert f.severity is Severity.critical
    assert (f.resource.kind, f.resource.name, f.resource.namespace) == ("Deployment", "web", "shop")
    assert f.affected == 3
    assert f.title.startswith("3 pods of Deployment web: container app is in CrashLoopBackOff")
    assert "12 restarts, last exit Error code 1" in f.title
    e = ev(f)
    assert e["status.containerStatuses[app].state.waiting.reason"] == "web-abc-0: CrashLoopBackOff"
    assert "back-off 5m0s" in e["status.containerStatuses[app].state.waiting.message"]
    assert e["status.containerStatuses[app].restartCount"] == "web-abc-0: 12"
    assert e["status.containerStatuses[app].lastState.terminated.reason"] == "web-abc-0: Error"
    assert e["status.containerStatuses[app].lastState.terminated.exitCode"] == "web-abc-0: 1"
    assert e["event:BackOff"] == "count=30 across 3 objects: Back-off restarting failed container app"
    assert e["pods"] == "web-abc-0, web-abc-1, web-abc-2"
    assert "kubectl logs -n shop web-abc-0 -c app --previous" in f.remediation
    assert f.docs and f.docs.startswith("https://kubernetes.io/docs/")


def test_rollup_lists_at_most_five_example_pods() -> None:
    f = only(DETECTOR.detect(web(crashing(8))))
    assert f.affected == 8
    assert ev(f)["pods"] == "web-abc-0, web-abc-1, web-abc-2, web-abc-3, web-abc-4 (+3 more)"


def test_id_is_stable_across_runs_and_changing_counts() -> None:
    first = only(DETECTOR.detect(web(crashing(3, restarts=12))))
    again = only(DETECTOR.detect(web(crashing(3, restarts=12))))
    later = only(DETECTOR.detect(web(crashing(5, restarts=40))))
    assert first.id == again.id == later.id
    assert later.affected == 5


def test_image_pull_states_share_one_problem() -> None:
    pods = [
        pod("web-abc-0", ("ReplicaSet", "web-abc"), ready=False,
            statuses=[cstatus(waiting="ErrImagePull", image="shop/web:nope",
                              message='rpc error: manifest for shop/web:nope not found')]),
        pod("web-abc-1", ("ReplicaSet", "web-abc"), ready=False,
            statuses=[cstatus(waiting="ImagePullBackOff", image="shop/web:nope",
                              message='Back-off pulling image "shop/web:nope"')]),
    ]  # fmt: skip
    events = [event("Pod", "web-abc-0", "Failed", 'Failed to pull image "shop/web:nope": not found', count=4)]
    f = only(DETECTOR.detect(web(pods, events=events)))
    assert f.severity is Severity.critical
    assert f.affected == 2
    assert "cannot pull image shop/web:nope (ErrImagePull)" in f.title
    assert ev(f)["spec.containers[app].image"] == "web-abc-0: shop/web:nope"
    assert ev(f)["event:Failed"].startswith("count=4: Failed to pull image")
    # A pod flipping between the two reasons keeps its finding id.
    flipped = [
        pod(
            "web-abc-0",
            ("ReplicaSet", "web-abc"),
            ready=False,
            statuses=[cstatus(waiting="ImagePullBackOff", image="shop/web:nope")],
        ),
    ]
    assert only(DETECTOR.detect(web(flipped))).id == f.id


def test_config_error_shows_the_message() -> None:
    p = pod("worker", phase="Pending", conditions=[cond("PodScheduled")],
            statuses=[cstatus(waiting="CreateContainerConfigError",
                              message='secret "db-creds" not found')])  # fmt: skip
    f = only(DETECTOR.detect(snap(p)))
    assert f.severity is Severity.critical
    assert (f.resource.kind, f.resource.name) == ("Pod", "worker")
    assert f.affected == 1
    assert f.title == 'Pod worker: container app cannot start: CreateContainerConfigError: secret "db-creds" not found'
    # Not rolled up, so values are not prefixed with the pod name and there is no pod list.
    assert ev(f)["status.containerStatuses[app].state.waiting.message"] == 'secret "db-creds" not found'
    assert "pods" not in ev(f)


def test_oomkilled_reports_the_memory_limit_and_metrics() -> None:
    pods = web_pods(1, statuses=[cstatus(restarts=3, last=terminated("OOMKilled", 137, ago=300))],
                    containers=[container(resources={"limits": {"memory": "256Mi"}})])  # fmt: skip
    metrics = metrics_for("web-abc-0", memory_working_set_bytes=250 * 2**20, memory_limit_bytes=256 * 2**20)
    f = only(DETECTOR.detect(web(pods, metrics=metrics)))
    assert f.severity is Severity.critical
    assert f.title == "Pod web-abc-0 of Deployment web: container app was OOMKilled (memory limit 256Mi, 5m ago)"
    e = ev(f)
    assert e["status.containerStatuses[app].lastState.terminated.reason"] == "web-abc-0: OOMKilled"
    assert e["status.containerStatuses[app].lastState.terminated.exitCode"] == "web-abc-0: 137"
    assert e["spec.containers[app].resources.limits.memory"] == "web-abc-0: 256Mi"
    assert e["metric:container_memory_working_set_bytes"] == "web-abc-0: 250Mi"


def test_older_oom_on_a_running_container_is_a_warning_then_info() -> None:
    pods = web_pods(1, statuses=[cstatus(restarts=1, last=terminated("OOMKilled", 137, ago=5 * 3600))])
    f = only(DETECTOR.detect(web(pods)))
    assert f.severity is Severity.warning
    assert "5h ago" in f.title
    old = web_pods(1, statuses=[cstatus(restarts=1, last=terminated("OOMKilled", 137, ago=2 * DAY))])
    g = only(DETECTOR.detect(web(old)))
    assert g.severity is Severity.info and "2d ago" in g.title and g.id == f.id


def test_crashloop_caused_by_oom_is_reported_once_as_oom() -> None:
    pods = web_pods(
        2, ready=False, statuses=[cstatus(waiting="CrashLoopBackOff", restarts=9, last=terminated("OOMKilled", 137))]
    )
    f = only(DETECTOR.detect(web(pods)))
    assert "OOMKilled" in f.title and f.severity is Severity.critical and f.affected == 2
    # Same id when the container is briefly running between kills.
    running = web_pods(2, statuses=[cstatus(restarts=10, last=terminated("OOMKilled", 137))])
    assert only(DETECTOR.detect(web(running))).id == f.id


def test_unschedulable_is_warning_then_critical_after_ten_minutes() -> None:
    msg = "0/3 nodes are available: 3 Insufficient cpu."
    sched = [cond("PodScheduled", "False", "Unschedulable", msg, ago=120)]
    young = web_pods(2, phase="Pending", conditions=sched, age=120)
    events = [event("Pod", "web-abc-0", "FailedScheduling", msg, count=5)]
    f = only(DETECTOR.detect(web(young, events=events)))
    assert f.severity is Severity.warning
    assert f.title == f"2 pods of Deployment web: unschedulable for 2m: {msg}"
    assert ev(f)["status.conditions[PodScheduled].message"] == f"web-abc-0: {msg}"
    assert ev(f)["event:FailedScheduling"] == f"count=5: {msg}"

    old = web_pods(1, phase="Pending", conditions=sched, age=1200)
    mixed = [*young, pod("web-abc-9", ("ReplicaSet", "web-abc"), phase="Pending", conditions=sched, age=1200)]
    assert only(DETECTOR.detect(web(old))).severity is Severity.critical
    worst = only(DETECTOR.detect(web(mixed)))
    assert worst.severity is Severity.critical and worst.affected == 3 and worst.id == f.id


def test_scheduling_gated_pods_are_not_unschedulable() -> None:
    gated = web_pods(
        1, phase="Pending", conditions=[cond("PodScheduled", "False", "SchedulingGated", ago=3600)], age=3600
    )
    assert DETECTOR.detect(web(gated)) == []


def test_running_but_not_ready_after_five_minutes() -> None:
    probe = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5, "failureThreshold": 3}
    unready = web_pods(1, ready=False, statuses=[cstatus(ready=False)], containers=[container(readinessProbe=probe)])
    events = [
        event(
            "Pod", "web-abc-0", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", count=40
        )
    ]
    f = only(DETECTOR.detect(web(unready, events=events)))
    assert f.severity is Severity.warning
    assert f.title == "Pod web-abc-0 of Deployment web: running but not Ready for 10m (unready: app)"
    e = ev(f)
    assert (
        e["spec.containers[app].readinessProbe"]
        == "web-abc-0: httpGet HTTP :8080/healthz period=5s timeout=1s failureThreshold=3"
    )
    assert e["event:Unhealthy"] == "count=40: Readiness probe failed: HTTP probe failed with statuscode: 503"


def test_briefly_unready_pod_is_not_reported() -> None:
    conditions = [cond("PodScheduled"), cond("Ready", "False", "ContainersNotReady", ago=60)]
    assert DETECTOR.detect(web(web_pods(1, statuses=[cstatus(ready=False)], conditions=conditions))) == []


def test_evicted_pods_are_a_warning_but_not_for_jobs() -> None:
    msg = "The node was low on resource: memory. Container app was using 900Mi, request is 128Mi."
    evicted = web_pods(2, phase="Failed", reason="Evicted", message=msg, statuses=[])
    f = only(DETECTOR.detect(web(evicted)))
    assert f.severity is Severity.warning and f.affected == 2
    assert f.title == f"2 pods of Deployment web: evicted: {msg}"
    assert ev(f)["status.reason"] == "web-abc-0: Evicted"
    job_pod = pod("etl-1-x", ("Job", "etl-1"), phase="Failed", reason="Evicted", message=msg, statuses=[])
    assert DETECTOR.detect(snap(job("etl-1", active=1), job_pod)) == []


def test_failed_pods_of_a_completed_job_are_history() -> None:
    failed = pod(
        "etl-1-x", ("Job", "etl-1"), phase="Failed", statuses=[cstatus(terminated=terminated("OOMKilled", 137))]
    )
    assert DETECTOR.detect(snap(complete_job("etl-1"), failed)) == []
    # While the Job still runs, the OOM kill is the root cause worth reporting (on the Job).
    f = only(DETECTOR.detect(snap(job("etl-1", active=1, failed=1), failed)))
    assert (f.resource.kind, f.resource.name) == ("Job", "etl-1") and "OOMKilled" in f.title


def test_failed_standalone_pod_shows_exit_code() -> None:
    p = pod("migrate", phase="Failed", statuses=[cstatus(terminated=terminated("Error", 2))])
    f = only(DETECTOR.detect(snap(p)))
    assert f.severity is Severity.warning
    assert f.title == "Pod migrate: failed: container app exited with an error"
    assert ev(f)["status.containerStatuses[app].state.terminated.exitCode"] == "2"


def test_high_restarts_while_running() -> None:
    recent = web_pods(1, statuses=[cstatus(restarts=7, last=terminated("Error", 137, ago=600))])
    f = only(DETECTOR.detect(web(recent)))
    assert f.severity is Severity.warning
    assert "container app has restarted 7 times; last exit Error code 137" in f.title
    # Restarts that stopped days ago are hygiene only.
    old = web_pods(1, statuses=[cstatus(restarts=7, last=terminated("Error", 137, ago=3 * DAY))])
    assert only(DETECTOR.detect(web(old))).severity is Severity.info
    # The metrics window decides when available.
    quiet = metrics_for("web-abc-0", restarts=0.0)
    g = only(DETECTOR.detect(web(recent, metrics=quiet)))
    assert g.severity is Severity.info and g.id == f.id
    assert ev(g)["metric:kube_pod_container_status_restarts_total"] == "web-abc-0: +0 in 1h"
    # Four restarts is below the threshold.
    assert DETECTOR.detect(web(web_pods(1, statuses=[cstatus(restarts=4, last=terminated())]))) == []


def test_init_container_failures() -> None:
    looping = pod("api", phase="Pending", conditions=[cond("PodScheduled")],
                  statuses=[cstatus(waiting="PodInitializing")],
                  init_statuses=[cstatus("migrate", waiting="CrashLoopBackOff", restarts=4,
                                         last=terminated("Error", 3))])  # fmt: skip
    f = only(DETECTOR.detect(snap(looping)))
    assert f.severity is Severity.critical
    assert f.title == "Pod api: init container migrate is in CrashLoopBackOff (4 restarts, last exit Error code 3)"
    assert ev(f)["status.initContainerStatuses[migrate].state.waiting.reason"] == "CrashLoopBackOff"

    failed = pod("api", phase="Failed", statuses=[cstatus(waiting="PodInitializing")],
                 init_statuses=[cstatus("migrate", terminated=terminated("Error", 3))])  # fmt: skip
    g = only(DETECTOR.detect(snap(failed)))
    assert g.severity is Severity.critical
    assert g.title == "Pod api: init container migrate failed (Error, exit code 3)"


def test_stuck_terminating() -> None:
    stuck = pod("web-abc-0", ("ReplicaSet", "web-abc"), deletionTimestamp=ts(900), deletionGracePeriodSeconds=30,
                finalizers=["example.com/cleanup"])  # fmt: skip
    f = only(DETECTOR.detect(web(stuck)))
    assert f.severity is Severity.warning
    assert "stuck Terminating 15m past its grace period (finalizers: example.com/cleanup)" in f.title
    assert ev(f)["metadata.finalizers"] == "web-abc-0: example.com/cleanup"
    # Within the grace period, or just past it, a deleting pod is normal; its other problems are moot.
    leaving = pod("web-abc-1", ("ReplicaSet", "web-abc"), deletionTimestamp=ts(-20), ready=False,
                  statuses=[cstatus(waiting="CrashLoopBackOff", restarts=9)])  # fmt: skip
    assert DETECTOR.detect(web(leaving)) == []


def test_stuck_container_creating_needs_a_warning_event() -> None:
    creating = pod("web-abc-0", ("ReplicaSet", "web-abc"), phase="Pending", conditions=[cond("PodScheduled", ago=900)],
                   statuses=[cstatus(waiting="ContainerCreating")], age=900)  # fmt: skip
    assert DETECTOR.detect(web(creating)) == []  # a slow image pull looks the same without events
    events = [
        event(
            "Pod", "web-abc-0", "FailedMount", 'MountVolume.SetUp failed for volume "cfg": configmap "cfg" not found', 8
        )
    ]
    f = only(DETECTOR.detect(web(creating, events=events)))
    assert f.severity is Severity.warning
    assert 'stuck in ContainerCreating for 15m: MountVolume.SetUp failed for volume "cfg"' in f.title
    assert ev(f)["event:FailedMount"].startswith("count=8: MountVolume.SetUp failed")


def test_different_problems_of_one_workload_are_separate_findings() -> None:
    pods = [
        *crashing(2),
        pod("web-abc-7", ("ReplicaSet", "web-abc"), statuses=[cstatus(restarts=6, last=terminated(ago=60))]),
    ]
    findings = DETECTOR.detect(web(pods))
    assert len(findings) == 2
    assert {f.resource.name for f in findings} == {"web"}
    assert len({f.id for f in findings}) == 2
    assert findings[0].severity is Severity.critical  # sorted most severe first


def test_without_workload_kinds_pods_roll_up_to_the_nearest_known_owner() -> None:
    s = web(crashing(2), missing=("Deployment", "ReplicaSet"))
    f = only(DETECTOR.detect(s))
    assert (f.resource.kind, f.resource.name) == ("ReplicaSet", "web-abc") and f.affected == 2


def test_without_pods_nothing_is_reported() -> None:
    assert DETECTOR.detect(web(crashing(3), missing=("Pod",))) == []


def test_pod_without_status_is_not_judged() -> None:
    p = pod("new", phase="Pending")
    p.pop("status")
    assert DETECTOR.detect(snap(p)) == []


def test_detector_does_not_mutate_the_snapshot() -> None:
    import copy

    pods = crashing(2)
    before = copy.deepcopy(pods)
    DETECTOR.detect(web(pods))
    assert pods == before


def test_linear_on_five_thousand_pods() -> None:
    many = [pod(f"web-abc-{i}", ("ReplicaSet", "web-abc")) for i in range(5000)]
    many[10:20] = crashing(10)
    s = web(many)
    start = time.perf_counter()
    f = only(DETECTOR.detect(s))
    elapsed = time.perf_counter() - start
    assert f.affected == 10
    # Generous bound (shared CI machines); a per-pod scan of all pods would take seconds.
    assert elapsed < 1.0, elapsed


def test_same_snapshot_twice_gives_identical_findings() -> None:
    s = web([*crashing(2), pod("solo", phase="Failed", reason="Evicted", message="low on memory", statuses=[])])
    first, second = DETECTOR.detect(s), DETECTOR.detect(s)
    assert len(first) == 2
    assert first == second


def test_unschedulable_for_seconds_is_routine() -> None:
    sched = [cond("PodScheduled", "False", "Unschedulable", "0/3 nodes are available: 3 Insufficient cpu.", ago=20)]
    assert DETECTOR.detect(web(web_pods(1, phase="Pending", conditions=sched, age=20))) == []


def test_static_pods_are_reported_as_themselves_not_as_their_node() -> None:
    mirror = [
        pod(f"etcd-node-{i}", ready=False, statuses=[cstatus(waiting="CrashLoopBackOff", restarts=6)]) for i in (1, 2)
    ]
    for i, p in enumerate(mirror, start=1):
        p["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": f"node-{i}", "uid": "uid-node", "controller": True}
        ]
    findings = DETECTOR.detect(snap(mirror))
    assert sorted((f.resource.kind, f.resource.name) for f in findings) == [
        ("Pod", "etcd-node-1"),
        ("Pod", "etcd-node-2"),
    ]


def test_request_larger_than_every_node_is_critical_at_once() -> None:
    sched = [cond("PodScheduled", "False", "Unschedulable", "0/3 nodes are available: 3 Insufficient cpu.", ago=5)]
    huge = container(resources={"requests": {"cpu": "1000", "memory": "1Gi"}})
    nodes = [
        {"kind": "Node", "metadata": {"name": f"node-{i}"}, "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}}}
        for i in range(3)
    ]
    finding = only(
        DETECTOR.detect(web(*web_pods(1, phase="Pending", conditions=sched, age=5, containers=[huge]), *nodes))
    )
    assert finding.severity is Severity.critical
    assert ev(finding)["spec.containers[*].resources.requests.cpu"] == "web-abc-0: 1000 > largest node allocatable 8"
    # The same pod within the grace period but small enough to fit somewhere later is routine.
    small = container(resources={"requests": {"cpu": "2"}})
    assert (
        DETECTOR.detect(web(*web_pods(1, phase="Pending", conditions=sched, age=5, containers=[small]), *nodes)) == []
    )


# --- crashes as a real kubelet reports them before (and between) CrashLoopBackOff -------------------------


def test_crash_from_a_terminated_error_and_restarts_alone_is_critical() -> None:
    """For the first minute or two the kubelet shows terminated: Error and a rising restartCount."""
    down = web_pods(2, ready=False, statuses=[cstatus(terminated=terminated("Error", 1, ago=5), restarts=2)])
    f = only(DETECTOR.detect(web(down)))
    assert f.severity is Severity.critical
    assert f.title == (
        "2 pods of Deployment web: container app keeps crashing "
        "(2 restarts, down after exit Error code 1; not yet reported as CrashLoopBackOff)"
    )
    e = ev(f)
    assert e["status.containerStatuses[app].state.terminated.reason"] == "web-abc-0: Error"
    assert e["status.containerStatuses[app].state.terminated.exitCode"] == "web-abc-0: 1"
    assert e["status.containerStatuses[app].restartCount"] == "web-abc-0: 2"
    assert "kubectl logs -n shop web-abc-0 -c app --previous" in f.remediation
    # Same severity and the same finding id as the CrashLoopBackOff it turns into.
    looping = only(DETECTOR.detect(web(crashing(2, restarts=5))))
    assert looping.severity is f.severity and looping.id == f.id


def test_crash_from_last_termination_while_running_again_but_not_ready() -> None:
    again = web_pods(1, ready=False, statuses=[cstatus(restarts=3, ready=False, started_ago=4,
                                                       last=terminated("Error", 2, ago=14))])  # fmt: skip
    f = only(DETECTOR.detect(web(again)))
    assert f.severity is Severity.critical
    assert "container app keeps crashing (3 restarts, running again after exit Error code 2" in f.title
    assert ev(f)["status.containerStatuses[app].lastState.terminated.reason"] == "web-abc-0: Error"
    assert ev(f)["status.containerStatuses[app].ready"] == "web-abc-0: False"


def test_oom_kill_seen_from_the_termination_alone_is_critical() -> None:
    down = web_pods(1, ready=False, statuses=[cstatus(terminated=terminated("OOMKilled", 137, ago=3), restarts=1)])
    f = only(DETECTOR.detect(web(down)))
    assert f.severity is Severity.critical and "was OOMKilled" in f.title


def test_what_is_not_a_crash_loop() -> None:
    # One error exit, not restarted yet.
    first = web_pods(1, ready=False, statuses=[cstatus(terminated=terminated("Error", 1, ago=5), restarts=0)])
    assert [f.title for f in DETECTOR.detect(web(first)) if "crashing" in f.title] == []
    # Running and Ready again after a few restarts: recovered (high counts are the Restarts rule's).
    recovered = web_pods(1, statuses=[cstatus(restarts=3, last=terminated("Error", 1, ago=30))])
    assert DETECTOR.detect(web(recovered)) == []
    # Not Ready, but the last error exit is long past.
    old = web_pods(1, ready=False, statuses=[cstatus(restarts=3, ready=False, last=terminated("Error", 1, ago=3600))])
    assert [f.title for f in DETECTOR.detect(web(old)) if "crashing" in f.title] == []
    # A clean exit is no crash; a pod that is never restarted is no loop.
    clean = web_pods(1, ready=False, statuses=[cstatus(terminated=terminated("Completed", 0), restarts=2)])
    assert [f.title for f in DETECTOR.detect(web(clean)) if "crashing" in f.title] == []
    never = pod("once", ready=False, statuses=[cstatus(terminated=terminated("Error", 1), restarts=1)])
    never["spec"]["restartPolicy"] = "Never"
    assert [f.title for f in DETECTOR.detect(snap(never)) if "crashing" in f.title] == []


def test_a_container_without_probes_running_seconds_after_its_latest_crash_is_crash_looping() -> None:
    """The real kubelet reports it Ready the moment it runs; between two crashes it is not recovered."""
    between = web_pods(1, statuses=[cstatus(restarts=2, ready=True, started_ago=2,
                                            last=terminated("Error", 1, ago=3))])  # fmt: skip
    f = only(DETECTOR.detect(web(between)))
    assert f.severity is Severity.critical and "keeps crashing (2 restarts" in f.title
    # Up for five minutes since the last crash: recovered, nothing to report.
    settled = web_pods(1, statuses=[cstatus(restarts=2, ready=True, started_ago=300,
                                            last=terminated("Error", 1, ago=301))])  # fmt: skip
    assert DETECTOR.detect(web(settled)) == []
