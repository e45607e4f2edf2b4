import copy

from infragenius.detectors.bestpractice import DETECTOR, image_tag
from infragenius.models.findings import Finding, ResourceRef, Severity, finding_id
from tests.unit.factories import (
    NS,
    app_container,
    app_pod,
    deployment_with_pods,
    healthy_events,
    healthy_namespace,
    pod_spec,
    service,
    snap,
    workload,
)


def bp_id(kind: str, name: str, problem: str) -> str:
    return finding_id("bestpractice", ResourceRef(kind=kind, name=name, namespace=NS), problem)


def problems(findings: list[Finding]) -> dict[str, Finding]:
    return {f.id: f for f in findings}


def test_contract() -> None:
    assert DETECTOR.name == "bestpractice"
    assert {"Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"} <= DETECTOR.kinds


def test_healthy_namespace_gives_nothing_at_all() -> None:
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events())) == []


def test_image_tag() -> None:
    assert image_tag("nginx") is None
    assert image_tag("nginx:latest") == "latest"
    assert image_tag("registry:5000/team/app") is None
    assert image_tag("registry:5000/team/app:1.2") == "1.2"
    assert image_tag("app@sha256:abc") == "@digest"


def test_missing_resources_one_finding_per_workload_naming_containers() -> None:
    spec = pod_spec(
        app_container("app", resources={}),
        app_container("sidecar", resources={"limits": {"cpu": "1", "memory": "64Mi"}}),
        app_container("proxy", resources={"requests": {"cpu": "10m"}}),
    )
    deploy, rs, pods = deployment_with_pods("web", 20, spec=spec)
    findings = DETECTOR.detect(snap(deploy, rs, *pods))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.info and f.id == bp_id("Deployment", "web", "MissingResources")
    assert f.title == "Deployment web: 2 container(s) without cpu/memory requests or a memory limit"
    assert f.affected == 20
    ev = {e.source: e.value for e in f.evidence}
    assert ev == {
        "spec.template.spec.containers[app].resources": "no cpu request, no memory request, no memory limit",
        "spec.template.spec.containers[proxy].resources": "no memory request, no memory limit",
    }


def test_limitrange_defaults_in_running_pods_suppress_resource_findings() -> None:
    deploy, rs, pods = deployment_with_pods("web", 2, spec=pod_spec(app_container("app", resources={})))
    for p in pods:  # what a LimitRange admission plugin writes into the pods
        p["spec"]["containers"][0]["resources"] = {
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"memory": "128Mi"},
        }
    assert DETECTOR.detect(snap(deploy, rs, *pods)) == []


def test_readiness_probe_only_for_serving_long_running_workloads() -> None:
    no_probe = pod_spec(app_container("app", readiness=False))
    deploy, rs, pods = deployment_with_pods("web", 2, spec=no_probe)
    findings = DETECTOR.detect(snap(deploy, rs, *pods))
    assert [(f.severity, f.id) for f in findings] == [(Severity.info, bp_id("Deployment", "web", "NoReadinessProbe"))]
    assert ("spec.template.spec.containers[app].readinessProbe", "<unset>") in [
        (e.source, e.value) for e in findings[0].evidence
    ]
    # A worker without ports and without a Service is not expected to have one...
    worker = pod_spec(app_container("app", readiness=False, ports=[]))
    wd, wrs, wpods = deployment_with_pods("worker", 1, spec=worker)
    assert DETECTOR.detect(snap(wd, wrs, *wpods)) == []
    # ...unless a Service sends it traffic.
    assert [f.id for f in DETECTOR.detect(snap(wd, wrs, *wpods, service("worker", {"app": "worker"})))] == [
        bp_id("Deployment", "worker", "NoReadinessProbe")
    ]
    # Jobs and CronJobs run to completion.
    assert (
        DETECTOR.detect(snap(workload("Job", "migrate", spec=no_probe), workload("CronJob", "report", spec=no_probe)))
        == []
    )


def test_latest_or_missing_tags_are_info() -> None:
    spec = pod_spec(
        app_container("app", image="nginx"),
        app_container("side", image="ghcr.io/x/side:latest"),
        app_container("pinned", image="ghcr.io/x/p@sha256:0123"),
    )
    findings = DETECTOR.detect(snap(workload("StatefulSet", "db", spec=spec)))
    assert [f.id for f in findings] == [bp_id("StatefulSet", "db", "LatestTag")]
    ev = {e.source: e.value for e in findings[0].evidence}
    assert ev == {
        "spec.template.spec.containers[app].image": "nginx",
        "spec.template.spec.containers[side].image": "ghcr.io/x/side:latest",
    }


def test_privileged_hostpath_and_host_namespaces_are_warnings() -> None:
    spec = pod_spec(
        app_container("agent", securityContext={"privileged": True, "runAsNonRoot": True}),
        volumes=[{"name": "root", "hostPath": {"path": "/", "type": "Directory"}}],
        hostNetwork=True,
        hostPID=True,
    )
    findings = problems(DETECTOR.detect(snap(workload("DaemonSet", "agent", spec=spec))))
    assert set(findings) == {bp_id("DaemonSet", "agent", p) for p in ("Privileged", "HostPath", "HostNamespaces")}
    assert all(f.severity is Severity.warning for f in findings.values())
    host = findings[bp_id("DaemonSet", "agent", "HostNamespaces")]
    assert host.title == "DaemonSet agent shares the node's namespaces (hostNetwork, hostPID)"
    hp = findings[bp_id("DaemonSet", "agent", "HostPath")]
    assert ("spec.template.spec.volumes[root].hostPath.path", "/") in [(e.source, e.value) for e in hp.evidence]
    priv = findings[bp_id("DaemonSet", "agent", "Privileged")]
    assert ("spec.template.spec.containers[agent].securityContext.privileged", "true") in [
        (e.source, e.value) for e in priv.evidence
    ]


def test_kube_system_security_settings_are_expected() -> None:
    spec = pod_spec(app_container("proxy", securityContext={"privileged": True}), hostNetwork=True)
    ds = workload("DaemonSet", "kube-proxy", spec=spec, namespace="kube-system")
    assert DETECTOR.detect(snap(ds, namespace="kube-system")) == []


def test_may_run_as_root() -> None:
    root = app_container("app", securityContext={})
    explicit_zero = app_container("side", securityContext={"runAsUser": 0})
    pod_level = app_container("ok", securityContext={})
    spec = pod_spec(root, explicit_zero)
    findings = DETECTOR.detect(snap(app_pod("solo", spec=spec)))
    assert [f.id for f in findings] == [bp_id("Pod", "solo", "MayRunAsRoot")]
    ev = {e.source: e.value for e in findings[0].evidence}
    assert ev == {
        "spec.containers[app].securityContext.runAsNonRoot": "unset, runAsUser unset",
        "spec.containers[side].securityContext.runAsNonRoot": "unset, runAsUser 0",
    }
    # Pod-level settings count for every container.
    assert DETECTOR.detect(snap(app_pod("solo", spec=pod_spec(pod_level, securityContext={"runAsUser": 1000})))) == []
    assert (
        DETECTOR.detect(snap(app_pod("solo", spec=pod_spec(pod_level, securityContext={"runAsNonRoot": True})))) == []
    )


def test_template_is_judged_once_not_per_pod_and_stale_replicasets_are_ignored() -> None:
    deploy, rs, pods = deployment_with_pods("web", 5)
    old_rs = copy.deepcopy(rs)
    old_rs["metadata"]["name"], old_rs["metadata"]["uid"] = "web-old", "old-uid"
    old_rs["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:latest"
    assert DETECTOR.detect(snap(deploy, rs, old_rs, *pods)) == []


def test_bare_pods_and_pods_of_ungathered_workloads() -> None:
    spec = pod_spec(app_container("app", image="nginx"))
    _deploy, _rs, pods = deployment_with_pods("web", 3, spec=spec)
    findings = DETECTOR.detect(snap(*pods, without=["Deployment", "ReplicaSet"]))
    assert [(f.resource.kind, f.resource.name, f.affected) for f in findings] == [("ReplicaSet", "web-7d9f8b", 3)]
    assert findings[0].evidence[0].source == "spec.containers[app].image"
    bare = DETECTOR.detect(snap(app_pod("debug", spec=spec)))
    assert [(f.resource.kind, f.resource.name) for f in bare] == [("Pod", "debug")]


def test_id_stable_across_runs_and_replica_counts() -> None:
    spec = pod_spec(app_container("app", image="nginx"))
    d1, r1, p1 = deployment_with_pods("web", 2, spec=spec)
    d2, r2, p2 = deployment_with_pods("web", 7, spec=spec)
    s1 = snap(d1, r1, *p1)
    assert DETECTOR.detect(s1) == DETECTOR.detect(s1)
    assert DETECTOR.detect(s1)[0].id == DETECTOR.detect(snap(d2, r2, *p2))[0].id
