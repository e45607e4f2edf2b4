from infragenius.detectors.resourcequota import DETECTOR
from infragenius.models.findings import ResourceRef, Severity, finding_id
from tests.unit.factories import NS, healthy_events, healthy_namespace, resource_quota, snap


def rq_id(name: str, resource: str) -> str:
    return finding_id("resourcequota", ResourceRef(kind="ResourceQuota", name=name, namespace=NS), f"Quota:{resource}")


def test_contract() -> None:
    assert DETECTOR.name == "resourcequota"
    assert DETECTOR.kinds == {"ResourceQuota"}


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events())) == []


def test_exhausted_quota_is_a_warning_across_units() -> None:
    quota = resource_quota(
        "compute",
        {"requests.memory": "1Gi", "requests.cpu": "2", "pods": "10"},
        {"requests.memory": "1024Mi", "requests.cpu": "1500m", "pods": "4"},
    )
    findings = DETECTOR.detect(snap(quota))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.warning and f.id == rq_id("compute", "requests.memory")
    assert (
        f.title
        == "ResourceQuota compute: requests.memory is exhausted (1024Mi of 1Gi); new objects that need it are rejected"
    )
    ev = {e.source: e.value for e in f.evidence}
    assert ev == {"status.used[requests.memory]": "1024Mi", "status.hard[requests.memory]": "1Gi", "usage": "100%"}


def test_pods_quota_wording() -> None:
    findings = DETECTOR.detect(snap(resource_quota("count", {"pods": "10"}, {"pods": "10"})))
    assert "new pods that need it are rejected" in findings[0].title


def test_near_limit_is_info() -> None:
    quota = resource_quota("compute", {"limits.cpu": "4"}, {"limits.cpu": "3700m"})
    findings = DETECTOR.detect(snap(quota))
    assert [(f.severity, f.id) for f in findings] == [(Severity.info, rq_id("compute", "limits.cpu"))]
    assert findings[0].title == "ResourceQuota compute: limits.cpu is at 92% (3700m of 4)"
    assert DETECTOR.detect(snap(resource_quota("compute", {"limits.cpu": "4"}, {"limits.cpu": "3500m"}))) == []


def test_zero_hard_limits_forbid_on_purpose() -> None:
    quota = resource_quota("no-lb", {"services.loadbalancers": "0"}, {"services.loadbalancers": "0"})
    assert DETECTOR.detect(snap(quota)) == []


def test_missing_status_is_not_observed_yet() -> None:
    quota = resource_quota("compute", {"pods": "1"}, {})
    quota["status"] = {}
    assert DETECTOR.detect(snap(quota)) == []
    assert DETECTOR.detect(snap(without=["ResourceQuota"])) == []


def test_id_stable_from_near_to_full() -> None:
    near = snap(resource_quota("compute", {"pods": "10"}, {"pods": "9"}))
    full = snap(resource_quota("compute", {"pods": "10"}, {"pods": "10"}))
    assert DETECTOR.detect(near) == DETECTOR.detect(near)
    assert DETECTOR.detect(near)[0].id == DETECTOR.detect(full)[0].id
    assert DETECTOR.detect(full)[0].severity is Severity.warning
