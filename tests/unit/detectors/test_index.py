"""Shared snapshot indexes: the cached roll-up must agree with the owner chain; the infra group must stay fast."""

import importlib
import time

from infragenius.detectors._index import endpoint_health
from infragenius.kube.meta import ref_from_key
from infragenius.snapshot import ContainerMetrics
from tests.unit.factories import (
    app_container,
    app_pod,
    deployment_with_pods,
    event,
    healthy_namespace,
    owner_ref,
    pod_spec,
    service,
    slice_for,
    snap,
    workload,
)

INFRA = (
    "service",
    "ingress",
    "pvc",
    "node",
    "configmap",
    "admission_webhook",
    "networkpolicy",
    "resourcequota",
    "events",
    "bestpractice",
    "metrics",
)


def test_rollup_matches_snapshot_rollup_target() -> None:
    deploy, rs, pods = deployment_with_pods("web", 2)
    cron = workload("CronJob", "report")
    job = workload("Job", "report-1")
    job["metadata"]["ownerReferences"] = [owner_ref("CronJob", "report")]
    job_pod = app_pod("report-1-x", owner=owner_ref("Job", "report-1"))
    orphan_rs_pod = app_pod("lost-abc", owner=owner_ref("ReplicaSet", "lost"))
    custom = app_pod("custom-0", owner={**owner_ref("StatefulSet", "custom"), "controller": False})
    bare = app_pod("bare")
    s = snap(deploy, rs, *pods, cron, job, job_pod, orphan_rs_pod, custom, bare)
    for obj in [*pods, job_pod, orphan_rs_pod, custom, bare]:
        expected = s.rollup_target(obj, "Pod")
        # The per-controller cache must give what the uncached owner walk gives.
        assert ref_from_key(s.rollup_key(obj, "Pod")) == expected
        assert expected == (s.owner_chain(obj) or [ref_from_key(("Pod", "shop", obj["metadata"]["name"]))])[-1]
    assert ref_from_key(s.rollup_key(job, "Job")) == s.rollup_target(job, "Job")


def test_endpoint_health_counts() -> None:
    deploy, rs, pods = deployment_with_pods("web", 3, ready=[True, False, True])
    s = snap(deploy, rs, *pods, service("web", {"app": "web"}), slice_for("web", pods))
    health = endpoint_health(s, "shop", "web", pods)
    assert (health.source, health.ready, health.not_ready, health.starting, health.total) == (
        "EndpointSlice",
        2,
        ("web-7d9f8b-00001",),
        0,
        3,
    )


def test_whole_infra_group_is_fast_on_5000_pods() -> None:
    detectors = [importlib.import_module(f"infragenius.detectors.{name}").DETECTOR for name in INFRA]
    objs = list(healthy_namespace())
    spec = pod_spec(
        app_container("app", image="nginx", resources={}), volumes=[{"name": "c", "configMap": {"name": "missing"}}]
    )
    metrics = {}
    events = []
    for d in range(50):
        deploy, rs, pods = deployment_with_pods(f"app{d}", 100, spec=spec, ready=[i % 10 != 0 for i in range(100)])
        objs += [deploy, rs, *pods, service(f"app{d}", {"app": f"app{d}"}), slice_for(f"app{d}", pods)]
        for p in pods:
            name = p["metadata"]["name"]
            metrics[("shop", name, "app")] = ContainerMetrics(
                restarts=1, cpu_throttled_ratio=0.3, memory_working_set_bytes=1.0, memory_limit_bytes=2.0
            )
            events.append(event("Pod", name, "FailedMount", "timeout", count=2))
    s = snap(*objs, events=events, metrics=metrics)
    for det in detectors:  # warm the snapshot's shared indexes, as the registry's first detector would
        det.detect(s)
    start = time.perf_counter()
    found = [f for det in detectors for f in det.detect(s)]
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, elapsed  # generous for a busy CI box; typically well under 200 ms
    per_deploy = [f for f in found if f.resource.name == "app7"]
    assert {f.detector for f in per_deploy} == {"service", "configmap", "events", "bestpractice", "metrics"}
