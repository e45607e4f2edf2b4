from infragenius.detectors.admission_webhook import DETECTOR
from infragenius.models.findings import ResourceRef, Severity, finding_id
from tests.unit.factories import (
    app_pod,
    deployment_with_pods,
    healthy_events,
    healthy_namespace,
    service,
    slice_for,
    snap,
    webhook,
    webhook_config,
)

HOOK = "validate.shop.example.com"
SVC = service("policy-server", {"app": "policy-server"}, ports=[{"name": "https", "port": 443, "targetPort": "http"}])


def hook_id(config: str, problem: str, kind: str = "ValidatingWebhookConfiguration") -> str:
    return finding_id("webhook", ResourceRef(kind=kind, name=config), problem)


def test_contract() -> None:
    assert DETECTOR.name == "webhook"
    assert {
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "Service",
        "EndpointSlice",
    } <= DETECTOR.kinds


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events())) == []


def test_missing_service_with_fail_policy_is_critical() -> None:
    cfg = webhook_config("shop-policy", [webhook(HOOK, "policy-server")])
    findings = DETECTOR.detect(snap(cfg))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.critical and f.id == hook_id("shop-policy", f"ServiceMissing:{HOOK}")
    assert f.resource == ResourceRef(kind="ValidatingWebhookConfiguration", name="shop-policy")
    assert f.title == (
        f"Validating webhook {HOOK} calls Service shop/policy-server, which does not exist; "
        "the API server rejects every request it matches (failurePolicy Fail)"
    )
    ev = {e.source: e.value for e in f.evidence}
    assert ev[f"webhooks[{HOOK}].clientConfig.service"] == "shop/policy-server:443"
    assert ev[f"webhooks[{HOOK}].failurePolicy"] == "Fail"


def test_default_failure_policy_is_fail_and_ignore_is_a_warning() -> None:
    implicit = webhook_config("a", [webhook("a.example.com", "gone", failure_policy=None)])
    ignore = webhook_config(
        "b", [webhook("b.example.com", "gone", failure_policy="Ignore")], kind="MutatingWebhookConfiguration"
    )
    findings = {f.resource.name: f for f in DETECTOR.detect(snap(implicit, ignore))}
    assert findings["a"].severity is Severity.critical
    assert findings["b"].severity is Severity.warning
    assert findings["b"].id == hook_id("b", "ServiceMissing:b.example.com", "MutatingWebhookConfiguration")
    assert findings["b"].title.startswith("Mutating webhook b.example.com")
    assert "silently skipped" in findings["b"].title


def test_no_ready_endpoints() -> None:
    deploy, rs, pods = deployment_with_pods("policy-server", 2, ready=False)
    cfg = webhook_config("shop-policy", [webhook(HOOK, "policy-server")])
    findings = DETECTOR.detect(snap(deploy, rs, *pods, SVC, slice_for("policy-server", pods), cfg))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.critical and f.id == hook_id("shop-policy", f"NoReadyEndpoints:{HOOK}")
    assert "Service shop/policy-server has no ready endpoints" in f.title
    ev = {e.source: e.value for e in f.evidence}
    assert ev["not ready backends"] == "policy-server-7d9f8b-00000, policy-server-7d9f8b-00001"
    assert ev["ready endpoints"] == "0 of 2 (EndpointSlice)"


def test_service_selecting_no_pods_has_no_endpoints() -> None:
    cfg = webhook_config("shop-policy", [webhook(HOOK, "policy-server", failure_policy="Ignore")])
    findings = DETECTOR.detect(snap(SVC, cfg))
    assert [(f.severity, f.id) for f in findings] == [
        (Severity.warning, hook_id("shop-policy", f"NoReadyEndpoints:{HOOK}"))
    ]
    assert ("not ready backends", "no pods match app=policy-server") in [
        (e.source, e.value) for e in findings[0].evidence
    ]


def test_some_ready_or_starting_backends_are_enough() -> None:
    deploy, rs, pods = deployment_with_pods("policy-server", 2, ready=[True, False])
    cfg = webhook_config("shop-policy", [webhook(HOOK, "policy-server")])
    assert DETECTOR.detect(snap(deploy, rs, *pods, SVC, slice_for("policy-server", pods), cfg)) == []
    starting = app_pod("policy-server-new", {"app": "policy-server"}, ready=False, age=20)
    assert DETECTOR.detect(snap(starting, SVC, slice_for("policy-server", [starting]), cfg)) == []


def test_wrong_service_port() -> None:
    deploy, rs, pods = deployment_with_pods("policy-server", 1)
    cfg = webhook_config("shop-policy", [webhook(HOOK, "policy-server", port=8443)])
    findings = DETECTOR.detect(snap(deploy, rs, *pods, SVC, slice_for("policy-server", pods), cfg))
    assert [f.id for f in findings] == [hook_id("shop-policy", f"ServicePortMissing:{HOOK}")]
    assert "calls port 8443 of Service shop/policy-server, which only exposes [443]" in findings[0].title


def test_long_timeout_on_fail_webhook_is_info() -> None:
    deploy, rs, pods = deployment_with_pods("policy-server", 1)
    slow = webhook_config("shop-policy", [webhook(HOOK, "policy-server", timeout=30)])
    findings = DETECTOR.detect(snap(deploy, rs, *pods, SVC, slice_for("policy-server", pods), slow))
    assert [(f.severity, f.id) for f in findings] == [(Severity.info, hook_id("shop-policy", f"SlowTimeout:{HOOK}"))]
    assert (f"webhooks[{HOOK}].timeoutSeconds", "30") in [(e.source, e.value) for e in findings[0].evidence]
    ignore = webhook_config("shop-policy", [webhook(HOOK, "policy-server", timeout=30, failure_policy="Ignore")])
    assert DETECTOR.detect(snap(deploy, rs, *pods, SVC, slice_for("policy-server", pods), ignore)) == []


def test_webhooks_of_other_namespaces_and_urls_are_skipped() -> None:
    other = webhook_config(
        "cert-manager", [webhook("cm.example.com", "cert-manager-webhook", namespace="cert-manager")]
    )
    url = webhook_config(
        "external",
        [{"name": "ext.example.com", "clientConfig": {"url": "https://hooks.example.com"}, "failurePolicy": "Fail"}],
    )
    assert DETECTOR.detect(snap(other, url)) == []
    # A cluster-wide analysis covers every namespace.
    assert [f.resource.name for f in DETECTOR.detect(snap(other, url, namespace=""))] == ["cert-manager"]


def test_missing_kinds_draw_no_conclusions() -> None:
    cfg = webhook_config("shop-policy", [webhook(HOOK, "policy-server")])
    assert DETECTOR.detect(snap(cfg, without=["Service"])) == []
    # Service known but neither pods nor endpoint slices: cannot judge its backends.
    assert DETECTOR.detect(snap(cfg, SVC, without=["Pod", "EndpointSlice"])) == []


def test_id_stable_across_runs_and_pod_counts() -> None:
    cfg = webhook_config("shop-policy", [webhook(HOOK, "policy-server")])
    d1, r1, p1 = deployment_with_pods("policy-server", 1, ready=False)
    d2, r2, p2 = deployment_with_pods("policy-server", 3, ready=False)
    s1 = snap(d1, r1, *p1, SVC, slice_for("policy-server", p1), cfg)
    assert DETECTOR.detect(s1) == DETECTOR.detect(s1)
    assert (
        DETECTOR.detect(s1)[0].id == DETECTOR.detect(snap(d2, r2, *p2, SVC, slice_for("policy-server", p2), cfg))[0].id
    )
