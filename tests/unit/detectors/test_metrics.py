from infragenius.detectors.metrics import DETECTOR
from infragenius.models.findings import ResourceRef, Severity, finding_id
from infragenius.snapshot import ContainerMetrics
from tests.unit.factories import NS, deployment_with_pods, healthy_events, healthy_namespace, snap

MIB = 1024 * 1024


def m_id(kind: str, name: str, problem: str) -> str:
    return finding_id("metrics", ResourceRef(kind=kind, name=name, namespace=NS), problem)


def web(n: int = 3) -> tuple[list[dict], list[str]]:
    deploy, rs, pods = deployment_with_pods("web", n)
    return [deploy, rs, *pods], [p["metadata"]["name"] for p in pods]


def test_contract() -> None:
    assert DETECTOR.name == "metrics"
    assert "Pod" in DETECTOR.kinds


def test_healthy_metrics_give_nothing() -> None:
    _objs, names = web()
    metrics = {
        (NS, n, "app"): ContainerMetrics(
            restarts=0, cpu_throttled_ratio=0.05, memory_working_set_bytes=100 * MIB, memory_limit_bytes=256 * MIB
        )
        for n in names
    }
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events(), metrics=metrics)) == []


def test_none_values_give_nothing() -> None:
    objs, names = web()
    metrics = {(NS, n, "app"): ContainerMetrics() for n in names}
    metrics[(NS, names[0], "side")] = ContainerMetrics(memory_working_set_bytes=300 * MIB, memory_limit_bytes=None)
    assert DETECTOR.detect(snap(*objs, metrics=metrics)) == []


def test_cpu_throttling_rolls_up_with_worst_severity() -> None:
    objs, names = web()
    metrics = {
        (NS, names[0], "app"): ContainerMetrics(cpu_throttled_ratio=0.30),
        (NS, names[1], "app"): ContainerMetrics(cpu_throttled_ratio=0.62),
        (NS, names[2], "app"): ContainerMetrics(cpu_throttled_ratio=0.10),
    }
    findings = DETECTOR.detect(snap(*objs, metrics=metrics))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.critical and f.id == m_id("Deployment", "web", "CPUThrottled")
    assert f.affected == 2
    assert f.title == "Deployment web: CPU throttled in 62% of periods (web-7d9f8b-00001/app, over 1h)"
    assert [(e.source, e.value) for e in f.evidence] == [
        ("metric:cpu_throttled_ratio", "web-7d9f8b-00001/app: 62% of CFS periods throttled"),
        ("metric:cpu_throttled_ratio", "web-7d9f8b-00000/app: 30% of CFS periods throttled"),
        ("pods affected", "2"),
    ]


def test_throttling_warning_band() -> None:
    objs, names = web(1)
    f = DETECTOR.detect(snap(*objs, metrics={(NS, names[0], "app"): ContainerMetrics(cpu_throttled_ratio=0.25)}))[0]
    assert f.severity is Severity.warning


def test_memory_near_limit() -> None:
    objs, names = web(2)
    warn = {(NS, names[0], "app"): ContainerMetrics(memory_working_set_bytes=235 * MIB, memory_limit_bytes=256 * MIB)}
    f = DETECTOR.detect(snap(*objs, metrics=warn))[0]
    assert f.severity is Severity.warning and f.id == m_id("Deployment", "web", "MemoryNearLimit")
    assert f.title == "Deployment web: memory at 92% of its limit (web-7d9f8b-00000/app); OOM kill is near"
    assert f.evidence[0].value == "web-7d9f8b-00000/app: 235MiB of 256MiB limit (92%)"
    crit = {(NS, names[1], "app"): ContainerMetrics(memory_working_set_bytes=250 * MIB, memory_limit_bytes=256 * MIB)}
    assert DETECTOR.detect(snap(*objs, metrics=crit))[0].severity is Severity.critical
    fine = {(NS, names[1], "app"): ContainerMetrics(memory_working_set_bytes=200 * MIB, memory_limit_bytes=256 * MIB)}
    assert DETECTOR.detect(snap(*objs, metrics=fine)) == []


def test_restarts_over_the_window() -> None:
    objs, names = web(1)
    metrics = {(NS, names[0], "app"): ContainerMetrics(restarts=4.0)}
    f = DETECTOR.detect(snap(*objs, metrics=metrics, window="6h"))[0]
    assert f.severity is Severity.warning and f.id == m_id("Deployment", "web", "Restarts")
    assert f.title == "Deployment web: 4 container restarts in 6h (web-7d9f8b-00000/app)"
    assert "logs web-7d9f8b-00000 -c app --previous" in f.remediation
    assert DETECTOR.detect(snap(*objs, metrics={(NS, names[0], "app"): ContainerMetrics(restarts=2.0)})) == []


def test_pods_missing_from_the_snapshot_are_reported_as_pods() -> None:
    metrics = {(NS, "gone-abc", "app"): ContainerMetrics(restarts=7)}
    findings = DETECTOR.detect(snap(metrics=metrics))
    assert [(f.resource.kind, f.resource.name) for f in findings] == [("Pod", "gone-abc")]
    assert DETECTOR.detect(snap(metrics={("other", "x", "app"): ContainerMetrics(restarts=7)})) == []


def test_id_stable_across_values() -> None:
    objs, names = web(1)
    a = snap(*objs, metrics={(NS, names[0], "app"): ContainerMetrics(cpu_throttled_ratio=0.3)})
    b = snap(*objs, metrics={(NS, names[0], "app"): ContainerMetrics(cpu_throttled_ratio=0.9)})
    assert DETECTOR.detect(a) == DETECTOR.detect(a)
    assert DETECTOR.detect(a)[0].id == DETECTOR.detect(b)[0].id


def test_without_pod_kind_findings_stay_on_the_pods() -> None:
    objs, names = web(2)
    metrics = {(NS, n, "app"): ContainerMetrics(restarts=5) for n in names}
    findings = DETECTOR.detect(snap(*objs, metrics=metrics, without=["Pod"]))
    assert sorted((f.resource.kind, f.resource.name) for f in findings) == [("Pod", names[0]), ("Pod", names[1])]
