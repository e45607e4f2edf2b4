from infragenius.detectors.configmap import DETECTOR
from infragenius.models.findings import ResourceRef, Severity, finding_id
from tests.unit.factories import (
    NS,
    app_container,
    app_pod,
    configmap,
    deployment_with_pods,
    healthy_events,
    healthy_namespace,
    owner_ref,
    pod_spec,
    snap,
    workload,
)


def cm_id(kind: str, name: str, problem: str) -> str:
    return finding_id("configmap", ResourceRef(kind=kind, name=name, namespace=NS), problem)


def spec_with_volume(cm: str, optional: bool = False) -> dict:
    return pod_spec(app_container(), volumes=[{"name": "config", "configMap": {"name": cm, "optional": optional}}])


def test_contract() -> None:
    assert DETECTOR.name == "configmap"
    assert {"ConfigMap", "Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"} <= DETECTOR.kinds


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events())) == []


def test_missing_configmap_rolls_up_to_the_deployment() -> None:
    deploy, rs, pods = deployment_with_pods("web", 4, spec=spec_with_volume("web-config"))
    findings = DETECTOR.detect(snap(deploy, rs, *pods))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.critical
    assert f.id == cm_id("Deployment", "web", "ConfigMapMissing:web-config")
    assert f.resource == ResourceRef(kind="Deployment", name="web", namespace=NS)
    assert f.title == "Deployment web references ConfigMap web-config, which does not exist; its pods cannot start"
    assert f.affected == 4
    ev = {e.source: e.value for e in f.evidence}
    assert ev["spec.template.spec.volumes[config].configMap.name"] == "web-config"
    assert ev["ConfigMap"] == "shop/web-config not found"
    assert ev["pods referencing it"] == "web-7d9f8b-00000, web-7d9f8b-00001, web-7d9f8b-00002, web-7d9f8b-00003"


def test_every_reference_style_is_found() -> None:
    spec = pod_spec(
        app_container(
            envFrom=[{"configMapRef": {"name": "env-cm"}}],
            env=[{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "key-cm", "key": "mode"}}}],
        ),
        volumes=[{"name": "bundle", "projected": {"sources": [{"configMap": {"name": "projected-cm"}}]}}],
        initContainers=[app_container("init", envFrom=[{"configMapRef": {"name": "init-cm"}}])],
    )
    findings = DETECTOR.detect(snap(app_pod("solo", spec=spec)))
    paths = {f.evidence[0].source: f.evidence[0].value for f in findings}
    assert paths == {
        "spec.containers[app].envFrom[].configMapRef.name": "env-cm",
        "spec.containers[app].env[MODE].valueFrom.configMapKeyRef.name": "key-cm",
        "spec.volumes[bundle].projected.sources[0].configMap.name": "projected-cm",
        "spec.initContainers[init].envFrom[].configMapRef.name": "init-cm",
    }
    assert all(f.resource == ResourceRef(kind="Pod", name="solo", namespace=NS) for f in findings)


def test_optional_references_are_fine() -> None:
    deploy, rs, pods = deployment_with_pods("web", 2, spec=spec_with_volume("maybe", optional=True))
    env_opt = app_pod(
        "solo", spec=pod_spec(app_container(envFrom=[{"configMapRef": {"name": "maybe", "optional": True}}]))
    )
    assert DETECTOR.detect(snap(deploy, rs, *pods, env_opt)) == []


def test_cronjob_template_without_pods_is_checked() -> None:
    cron = workload("CronJob", "report", spec=spec_with_volume("report-config"))
    findings = DETECTOR.detect(snap(cron))
    assert [f.id for f in findings] == [cm_id("CronJob", "report", "ConfigMapMissing:report-config")]
    ev = {e.source: e.value for e in findings[0].evidence}
    assert ev["spec.jobTemplate.spec.template.spec.volumes[config].configMap.name"] == "report-config"
    assert ev["referenced by"] == "CronJob/report"


def test_job_pods_roll_up_to_the_cronjob() -> None:
    cron = workload("CronJob", "report", spec=spec_with_volume("report-config"))
    job = workload("Job", "report-28934", spec=spec_with_volume("report-config"))
    job["metadata"]["ownerReferences"] = [owner_ref("CronJob", "report")]
    p = app_pod(
        "report-28934-abcde",
        spec=spec_with_volume("report-config"),
        owner=owner_ref("Job", "report-28934"),
        phase="Pending",
    )
    findings = DETECTOR.detect(snap(cron, job, p))
    assert [(f.resource.kind, f.resource.name, f.affected) for f in findings] == [("CronJob", "report", 1)]


def test_unreferenced_configmap_is_info_with_sensible_skips() -> None:
    deploy, rs, pods = deployment_with_pods("web", 1, spec=spec_with_volume("web-config"))
    args_spec = pod_spec(app_container(args=["--config-map=shop/leader-config"]))
    reader = app_pod("reader", spec=args_spec)
    objs = [
        deploy,
        rs,
        *pods,
        reader,
        configmap("web-config"),
        configmap("orphan"),
        configmap("kube-root-ca.crt"),
        configmap("helm-owned", owner=owner_ref("Deployment", "web")),
        configmap("lock", annotations={"control-plane.alpha.kubernetes.io/leader": "{}"}),
        configmap("leader-config"),
    ]
    release = configmap("sh.helm.release.v1.web.v3")
    release["metadata"]["labels"] = {"owner": "helm", "name": "web", "status": "deployed"}
    objs.append(release)
    findings = DETECTOR.detect(snap(*objs))
    assert [(f.severity, f.id) for f in findings] == [(Severity.info, cm_id("ConfigMap", "orphan", "Unreferenced"))]
    assert findings[0].title == "ConfigMap orphan is not used by any pod or workload template in shop"


def test_unreferenced_needs_every_referrer_kind() -> None:
    # A CronJob could be using it between runs: without CronJobs we cannot say it is unused.
    assert DETECTOR.detect(snap(configmap("orphan"), without=["CronJob"])) == []


def test_missing_configmap_kind_draws_no_conclusions() -> None:
    deploy, rs, pods = deployment_with_pods("web", 2, spec=spec_with_volume("web-config"))
    assert DETECTOR.detect(snap(deploy, rs, *pods, without=["ConfigMap"])) == []


def test_pods_without_gathered_workload_still_roll_up() -> None:
    _deploy, _rs, pods = deployment_with_pods("web", 3, spec=spec_with_volume("web-config"))
    findings = DETECTOR.detect(snap(*pods, without=["Deployment", "ReplicaSet"]))
    assert [(f.resource.kind, f.resource.name, f.affected) for f in findings] == [("ReplicaSet", "web-7d9f8b", 3)]
    assert findings[0].evidence[0].source == "spec.volumes[config].configMap.name"


def test_id_stable_across_runs_and_replica_counts() -> None:
    d1, r1, p1 = deployment_with_pods("web", 2, spec=spec_with_volume("web-config"))
    d2, r2, p2 = deployment_with_pods("web", 5, spec=spec_with_volume("web-config"))
    s1 = snap(d1, r1, *p1)
    assert DETECTOR.detect(s1) == DETECTOR.detect(s1)
    assert DETECTOR.detect(s1)[0].id == DETECTOR.detect(snap(d2, r2, *p2))[0].id
