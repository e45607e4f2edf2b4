from infragenius.detectors.service import DETECTOR
from infragenius.models.findings import ResourceRef, Severity, finding_id
from tests.unit.factories import (
    NS,
    app_deployment,
    app_pod,
    deployment_with_pods,
    endpoint_slice,
    healthy_events,
    healthy_namespace,
    service,
    slice_for,
    snap,
)


def svc_id(name: str, problem: str) -> str:
    return finding_id("service", ResourceRef(kind="Service", name=name, namespace=NS), problem)


def test_contract() -> None:
    assert DETECTOR.name == "service"
    assert {"Service", "Pod", "EndpointSlice"} <= DETECTOR.kinds


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events())) == []


def test_selector_matching_no_pods_is_a_warning() -> None:
    deploy, rs, pods = deployment_with_pods("web")
    findings = DETECTOR.detect(snap(deploy, rs, *pods, service("web", {"app": "wbe"})))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.warning
    assert f.id == svc_id("web", "SelectorMatchesNoPods")
    assert "selector app=wbe matches no running pods" in f.title
    assert ("spec.selector", "app=wbe") in [(e.source, e.value) for e in f.evidence]
    assert any(e.value == "0 of 3 active pods in shop" for e in f.evidence)


def test_finished_pods_do_not_count_as_backends() -> None:
    done = app_pod("batch-1", {"app": "batch"}, phase="Succeeded", ready=False)
    findings = DETECTOR.detect(snap(done, service("batch", {"app": "batch"})))
    assert [f.id for f in findings] == [svc_id("batch", "SelectorMatchesNoPods")]


def test_workload_scaled_to_zero_is_only_info() -> None:
    findings = DETECTOR.detect(snap(app_deployment("web", replicas=0), service("web", {"app": "web"})))
    assert len(findings) == 1
    assert findings[0].severity is Severity.info
    assert "scaled to zero (Deployment/web)" in findings[0].title


def test_no_ready_endpoints_is_critical_and_names_pods() -> None:
    deploy, rs, pods = deployment_with_pods("web", 3, ready=False)
    findings = DETECTOR.detect(snap(deploy, rs, *pods, service("web", {"app": "web"}), slice_for("web", pods)))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.critical
    assert f.id == svc_id("web", "NoReadyEndpoints")
    assert f.title == "Service web has no ready endpoints: all 3 backing pods are not ready"
    assert f.affected == 3
    ev = {e.source: e.value for e in f.evidence}
    assert (
        ev["EndpointSlice[kubernetes.io/service-name=web].endpoints[].conditions.ready"]
        == "0 ready, 3 not ready, 0 starting"
    )
    assert ev["not ready backends"] == "web-7d9f8b-00000, web-7d9f8b-00001, web-7d9f8b-00002"


def test_some_endpoints_not_ready_is_a_warning_with_counts() -> None:
    deploy, rs, pods = deployment_with_pods("web", 3, ready=[True, False, True])
    findings = DETECTOR.detect(snap(deploy, rs, *pods, service("web", {"app": "web"}), slice_for("web", pods)))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.warning
    assert f.id == svc_id("web", "EndpointsNotReady")
    assert f.title == "Service web: 1 of 3 endpoints are not ready"
    assert any(e.value == "web-7d9f8b-00001" for e in f.evidence)


def test_id_is_stable_when_counts_change() -> None:
    def run(readiness: list[bool]) -> str:
        deploy, rs, pods = deployment_with_pods("web", len(readiness), ready=readiness)
        s = snap(deploy, rs, *pods, service("web", {"app": "web"}), slice_for("web", pods))
        first, second = DETECTOR.detect(s), DETECTOR.detect(s)
        assert first == second
        return first[0].id

    assert run([True, False, True]) == run([True, False, False, False])


def test_new_pods_still_starting_are_not_a_problem() -> None:
    deploy, rs, old = deployment_with_pods("web", 2)
    young = app_pod("web-new-00000", {"app": "web"}, ready=False, age=30)
    eps = endpoint_slice("web", [(p["metadata"]["name"], True, False) for p in old] + [("web-new-00000", False, False)])
    assert DETECTOR.detect(snap(deploy, rs, *old, young, service("web", {"app": "web"}), eps)) == []
    # A brand-new service whose only pods are starting is not broken yet either.
    eps2 = endpoint_slice("web", [("web-new-00000", False, False)])
    assert DETECTOR.detect(snap(young, service("web", {"app": "web"}), eps2)) == []


def test_terminating_endpoints_and_unknown_readiness_are_not_counted_as_broken() -> None:
    deploy, rs, pods = deployment_with_pods("web", 3)
    eps = endpoint_slice(
        "web",
        [
            (pods[0]["metadata"]["name"], None, False),  # nil ready means ready
            (pods[1]["metadata"]["name"], False, True),  # terminating during a rollout
            (pods[2]["metadata"]["name"], True, False),
        ],
    )
    assert DETECTOR.detect(snap(deploy, rs, *pods, service("web", {"app": "web"}), eps)) == []


def test_dual_stack_slices_do_not_double_count() -> None:
    deploy, rs, pods = deployment_with_pods("web", 2, ready=[True, False])
    v4 = slice_for("web", pods)
    v6 = slice_for("web", pods)
    v6["metadata"]["name"] = "web-v6"
    findings = DETECTOR.detect(snap(deploy, rs, *pods, service("web", {"app": "web"}), v4, v6))
    assert findings[0].title == "Service web: 1 of 2 endpoints are not ready"


def test_falls_back_to_pod_readiness_without_endpointslices() -> None:
    deploy, rs, pods = deployment_with_pods("web", 2, ready=False)
    findings = DETECTOR.detect(snap(deploy, rs, *pods, service("web", {"app": "web"}), without=["EndpointSlice"]))
    assert [f.severity for f in findings] == [Severity.critical]
    assert any(
        e.source == "Pod.status.conditions[Ready].status" and e.value == "0 ready, 2 not ready, 0 starting"
        for e in findings[0].evidence
    )
    # Gathered but no slice for this service yet (controller lag): judge pods too.
    healthy_deploy, healthy_rs, healthy_pods = deployment_with_pods("web", 2)
    assert DETECTOR.detect(snap(healthy_deploy, healthy_rs, *healthy_pods, service("web", {"app": "web"}))) == []


def test_named_target_port_not_declared_by_pods() -> None:
    deploy, rs, pods = deployment_with_pods("web", 2)
    svc = service(
        "web",
        {"app": "web"},
        ports=[
            {"name": "metrics", "port": 9090, "targetPort": "metrics"},
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "raw", "port": 81, "targetPort": 8081},
        ],
    )
    findings = DETECTOR.detect(snap(deploy, rs, *pods, svc, slice_for("web", pods)))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.warning
    assert f.id == svc_id("web", "NamedTargetPortMissing:metrics")
    assert "targets port name 'metrics', which no selected pod declares" in f.title
    ev = {e.source: e.value for e in f.evidence}
    assert ev["spec.ports[metrics].targetPort"] == "metrics"
    assert ev["spec.containers[].ports[].name"] == "http"


def test_load_balancer_without_address_is_info() -> None:
    deploy, rs, pods = deployment_with_pods("web", 1)
    pending = service("web", {"app": "web"}, type_="LoadBalancer")
    findings = DETECTOR.detect(snap(deploy, rs, *pods, pending, slice_for("web", pods)))
    assert [(f.severity, f.id) for f in findings] == [(Severity.info, svc_id("web", "LoadBalancerPending"))]
    assigned = service(
        "web", {"app": "web"}, type_="LoadBalancer", status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    )
    assert DETECTOR.detect(snap(deploy, rs, *pods, assigned, slice_for("web", pods))) == []


def test_services_without_selector_are_skipped() -> None:
    manual = service("legacy-db", None)
    external = service("payments", {"app": "x"}, type_="ExternalName")
    assert DETECTOR.detect(snap(manual, external)) == []


def test_missing_kinds_draw_no_conclusions() -> None:
    svc = service("web", {"app": "wbe"})
    assert DETECTOR.detect(snap(svc, without=["Pod"])) == []
    assert DETECTOR.detect(snap(svc, without=["Service"])) == []


def test_many_pods_stay_fast() -> None:
    import time

    deploy, rs, pods = deployment_with_pods("web", 5000, ready=[i % 50 != 0 for i in range(5000)])
    s = snap(
        deploy,
        rs,
        *pods,
        *(service(f"s{i}", {"app": "web", "tier": str(i)}) for i in range(50)),
        service("web", {"app": "web"}),
        slice_for("web", pods),
    )
    start = time.perf_counter()
    findings = DETECTOR.detect(s)
    assert time.perf_counter() - start < 0.5
    web = [f for f in findings if f.resource.name == "web"]
    assert web[0].title == "Service web: 100 of 5000 endpoints are not ready"
    assert web[0].affected == 100


def test_young_pods_that_already_crash_are_not_just_starting() -> None:
    deploy, rs, pods = deployment_with_pods("web", 2, ready=False, age=30)
    for p in pods:
        p["status"]["containerStatuses"] = [
            {"name": "app", "ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
        ]
    findings = DETECTOR.detect(snap(deploy, rs, *pods, service("web", {"app": "web"}), slice_for("web", pods)))
    assert [(f.id, f.severity) for f in findings] == [(svc_id("web", "NoReadyEndpoints"), Severity.critical)]
    # Without the crash they are simply starting: nothing to report yet.
    for p in pods:
        p["status"]["containerStatuses"] = []
    assert DETECTOR.detect(snap(deploy, rs, *pods, service("web", {"app": "web"}), slice_for("web", pods))) == []
