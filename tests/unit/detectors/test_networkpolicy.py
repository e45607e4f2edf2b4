from infragenius.detectors.networkpolicy import DETECTOR
from infragenius.models.findings import ResourceRef, Severity, finding_id
from tests.unit.factories import (
    NS,
    deployment_with_pods,
    healthy_events,
    healthy_namespace,
    network_policy,
    service,
    snap,
)


def np_id(name: str, problem: str) -> str:
    return finding_id("networkpolicy", ResourceRef(kind="NetworkPolicy", name=name, namespace=NS), problem)


def web() -> list[dict]:
    deploy, rs, pods = deployment_with_pods("web", 2)
    return [deploy, rs, *pods, service("web", {"app": "web"})]


def test_contract() -> None:
    assert DETECTOR.name == "networkpolicy"
    assert DETECTOR.kinds == {"NetworkPolicy", "Pod", "Service"}


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events())) == []


def test_selector_matching_no_pods_is_a_warning() -> None:
    typo = network_policy("allow-web", {"matchLabels": {"app": "wbe"}}, types=["Ingress"], ingress_rules=[{}])
    findings = DETECTOR.detect(snap(*web(), typo))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.warning and f.id == np_id("allow-web", "SelectsNoPods")
    assert f.title == "NetworkPolicy allow-web podSelector app=wbe matches no pods; it protects nothing"
    assert ("pods matching selector", "0 of 2 active pods in shop") in [(e.source, e.value) for e in f.evidence]


def test_match_expressions_are_evaluated() -> None:
    ok = network_policy("np", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]})
    bad = network_policy("np2", {"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]})
    assert [f.resource.name for f in DETECTOR.detect(snap(*web(), ok, bad))] == ["np2"]


def test_deny_all_ingress_blocking_services_is_info() -> None:
    deny = network_policy("default-deny", {}, types=["Ingress"])
    findings = DETECTOR.detect(snap(*web(), deny))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.info and f.id == np_id("default-deny", "DenyAllIngress")
    assert f.title == "NetworkPolicy default-deny denies all ingress in shop; 1 Services receive no traffic (web)"
    assert ("Services with no allowing policy", "web") in [(e.source, e.value) for e in f.evidence]


def test_policy_types_default_to_ingress() -> None:
    deny = network_policy("default-deny", {}, types=None)
    assert [f.id for f in DETECTOR.detect(snap(*web(), deny))] == [np_id("default-deny", "DenyAllIngress")]
    egress_only = network_policy("deny-egress", {}, types=["Egress"])
    assert DETECTOR.detect(snap(*web(), egress_only)) == []


def test_deny_all_plus_allow_rules_is_the_recommended_pattern() -> None:
    deny = network_policy("default-deny", {}, types=["Ingress"])
    allow = network_policy(
        "allow-web",
        {"matchLabels": {"app": "web"}},
        types=["Ingress"],
        ingress_rules=[{"from": [{"namespaceSelector": {}}]}],
    )
    assert DETECTOR.detect(snap(*web(), deny, allow)) == []


def test_deny_all_without_services_is_silent() -> None:
    deploy, rs, pods = deployment_with_pods("worker", 2)
    assert DETECTOR.detect(snap(deploy, rs, *pods, network_policy("default-deny", {}, types=["Ingress"]))) == []


def test_missing_kinds_draw_no_conclusions() -> None:
    typo = network_policy("allow-web", {"matchLabels": {"app": "wbe"}}, types=["Ingress"], ingress_rules=[{}])
    deny = network_policy("default-deny", {}, types=["Ingress"])
    assert DETECTOR.detect(snap(*web(), typo, deny, without=["Pod", "Service"])) == []
    # Without pods an allowing policy might cover the services: stay silent.
    assert DETECTOR.detect(snap(*web(), typo, deny, without=["Pod"])) == []


def test_id_stable_across_runs_and_service_counts() -> None:
    deny = network_policy("default-deny", {}, types=["Ingress"])
    one = snap(*web(), deny)
    deploy, rs, pods = deployment_with_pods("api", 1)
    two = snap(*web(), deploy, rs, *pods, service("api", {"app": "api"}), deny)
    assert DETECTOR.detect(one) == DETECTOR.detect(one)
    assert DETECTOR.detect(one)[0].id == DETECTOR.detect(two)[0].id
    assert DETECTOR.detect(two)[0].affected == 2
