"""Writing an SLOReview's rules into the cluster (``slo.publish``) and the rollout gate (``slo.gate``), without a
cluster: the objects built, the outcomes of API failures, status and conditions, the gate's answers.

The same paths against a real API server (ownership, garbage collection, idempotence) are in
tests/e2e/test_slo_rules_live.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from kubernetes import client

from infragenius.models.api import ROLLOUT_GATE_ANNOTATION, ConditionType, Reason
from infragenius.models.slo import RulesKind, RulesStatus, SLOReviewSpec, SLOReviewStatus
from infragenius.observability.server import HealthServer, HealthState
from infragenius.settings import Settings
from infragenius.slo import gate, publish, rules
from infragenius.slo.reconcile import with_rules

UID = "0b6e1a2c-0000-4000-8000-000000000001"
SPEC = {
    "service": "checkout",
    "objective": 99.9,
    "sli": {"ratio": {"errorQuery": 'http_errors{job="co"}', "totalQuery": 'http_requests{job="co"}'}},
}


def review(name: str = "checkout", generation: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": "SLOReview",
        "metadata": {"name": name, "namespace": "shop", "uid": UID, "generation": generation},
        "spec": {**SPEC, **spec},
    }


def spec_of(body: dict[str, Any]) -> SLOReviewSpec:
    return SLOReviewSpec.model_validate(body["spec"])


# --- the objects -------------------------------------------------------------------------------------


def test_prometheus_rule_holds_the_rule_files_groups_and_is_owned_by_the_review() -> None:
    body = review()
    want = publish.desired(RulesKind.prometheus_rule, body, spec_of(body), {"release": "prometheus"})
    obj = want.body
    assert (obj["apiVersion"], obj["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert (obj["metadata"]["namespace"], obj["metadata"]["name"]) == ("shop", "checkout-slo-rules")
    expected = rules.rule_file([rules.SLOSource("shop", "checkout", spec_of(body))])
    assert obj["spec"] == {"groups": expected["groups"]}
    assert obj["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "infragenius.io/v1alpha1",
            "kind": "SLOReview",
            "name": "checkout",
            "uid": UID,
            "controller": True,
        }
    ]
    assert obj["metadata"]["labels"] == {
        "release": "prometheus",
        "app.kubernetes.io/managed-by": "infragenius-operator",
    }
    assert want.hash == hashlib.sha256(rules.render(expected).encode()).hexdigest()
    assert obj["metadata"]["annotations"] == {publish.HASH_ANNOTATION: want.hash}
    assert want.key is None


def test_config_map_holds_the_rendered_rule_file_under_the_reviews_key() -> None:
    body = review()
    want = publish.desired(RulesKind.config_map, body, spec_of(body))
    obj = want.body
    assert (obj["apiVersion"], obj["kind"], want.key) == ("v1", "ConfigMap", "checkout.rules.yaml")
    text = obj["data"]["checkout.rules.yaml"]
    assert yaml.safe_load(text) == rules.rule_file([rules.SLOSource("shop", "checkout", spec_of(body))])
    assert want.hash == hashlib.sha256(text.encode()).hexdigest()
    # A user's label may not hide that the operator manages the object.
    labelled = publish.desired(RulesKind.config_map, body, spec_of(body), {"app.kubernetes.io/managed-by": "me"})
    assert labelled.body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "infragenius-operator"


def test_rendering_is_stable_and_follows_the_spec() -> None:
    body = review()
    first = publish.desired(RulesKind.config_map, body, spec_of(body))
    assert publish.desired(RulesKind.config_map, body, spec_of(body)) == first
    changed = review(objective=99.5)
    assert publish.desired(RulesKind.config_map, changed, spec_of(changed)).hash != first.hash
    # The runbook annotation is part of the rules; one that is not an http(s) URL is ignored.
    body["metadata"]["annotations"] = {rules.RUNBOOK_ANNOTATION: "https://runbooks/checkout"}
    assert (
        "https://runbooks/checkout"
        in publish.desired(RulesKind.config_map, body, spec_of(body)).body["data"]["checkout.rules.yaml"]
    )
    body["metadata"]["annotations"] = {rules.RUNBOOK_ANNOTATION: "javascript:alert(1)"}
    assert publish.desired(RulesKind.config_map, body, spec_of(body)).hash == first.hash


def test_disabled_rules_are_an_empty_object() -> None:
    body = review(rules={"enabled": False})
    assert spec_of(body).rules.enabled is False and spec_of(review()).rules.enabled is True
    pr = publish.desired(RulesKind.prometheus_rule, body, spec_of(body), enabled=False)
    assert pr.body["spec"] == {"groups": []}
    cm = publish.desired(RulesKind.config_map, body, spec_of(body), enabled=False)
    assert cm.body["data"] == {"checkout.rules.yaml": "groups: []\n"}


def test_long_names_stay_valid_and_distinct() -> None:
    long_a, long_b = "a" * 250, "a" * 249 + "b"
    for name in (long_a, long_b):
        assert len(publish.object_name(name)) <= 253 and publish.object_name(name).endswith("-slo-rules")
        assert len(publish.config_map_key(name)) <= 253
    assert publish.object_name(long_a) != publish.object_name(long_b)
    assert publish.object_name("checkout") == "checkout-slo-rules"


# --- writing, against a fake API ----------------------------------------------------------------------


class FakeAPI:
    """Answers kubeapi.request by path and method; records every call."""

    def __init__(self, served: bool = False) -> None:
        self.served = served
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[str, client.ApiException] = {}  # method -> error

    def __call__(self, api: Any, method: str, path: str, **kwargs: Any) -> Any:
        self.calls.append((method, path))
        if method in self.fail:
            raise self.fail[method]
        if path == "/apis/monitoring.coreos.com/v1":
            if not self.served:
                raise client.ApiException(status=404, reason="Not Found")
            return {"resources": [{"name": "prometheusrules"}, {"name": "prometheusrules/status"}]}
        if method == "GET":
            if path not in self.objects:
                raise client.ApiException(status=404, reason="Not Found")
            return self.objects[path]
        assert method == "PATCH"
        assert ("fieldManager", "infragenius-operator") in kwargs["query"]
        assert kwargs["headers"]["Content-Type"] == "application/apply-patch+yaml"
        self.objects[path] = kwargs["body"]
        return kwargs["body"]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    api = FakeAPI()
    monkeypatch.setattr(publish.kubeapi, "request", api)
    yield api


async def test_writes_a_config_map_without_the_crd_and_reports_it(fake: FakeAPI) -> None:
    body = review()
    outcome = await publish.RulesPublisher(object()).publish(body, spec_of(body), None)  # type: ignore[arg-type]
    assert (outcome.ok, outcome.reason) == (True, Reason.rules_written)
    assert outcome.status == RulesStatus(
        kind=RulesKind.config_map,
        name="checkout-slo-rules",
        key="checkout.rules.yaml",
        generation=3,
        hash=outcome.status.hash if outcome.status else "",
        current=True,
    )
    path = "/api/v1/namespaces/shop/configmaps/checkout-slo-rules"
    assert fake.objects[path]["metadata"]["annotations"][publish.HASH_ANNOTATION] == outcome.status.hash
    # Every write stays in the review's namespace.
    assert [p for m, p in fake.calls if m == "PATCH"] == [path]


async def test_prefers_a_prometheus_rule_and_discovers_once(fake: FakeAPI) -> None:
    fake.served = True
    publisher = publish.RulesPublisher(object())  # type: ignore[arg-type]
    body = review()
    for _ in range(3):
        outcome = await publisher.publish(body, spec_of(body), None)
        assert outcome.ok and outcome.status and outcome.status.kind is RulesKind.prometheus_rule
    assert [p for _, p in fake.calls].count("/apis/monitoring.coreos.com/v1") == 1


async def test_an_object_the_review_does_not_control_is_not_taken_over(fake: FakeAPI) -> None:
    path = "/api/v1/namespaces/shop/configmaps/checkout-slo-rules"
    fake.objects[path] = {"metadata": {"name": "checkout-slo-rules", "ownerReferences": []}, "data": {"x": "y"}}
    body = review()
    outcome = await publish.RulesPublisher(object()).publish(body, spec_of(body), None)  # type: ignore[arg-type]
    assert (outcome.ok, outcome.reason, outcome.status) == (False, Reason.rules_conflict, None)
    assert fake.objects[path]["data"] == {"x": "y"} and ("PATCH", path) not in fake.calls
    # Owned by the review (a previous write): applied again.
    fake.objects[path]["metadata"]["ownerReferences"] = [{"uid": UID, "controller": True}]
    assert (await publish.RulesPublisher(object()).publish(body, spec_of(body), None)).ok  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "reason"),
    [(403, Reason.rules_forbidden), (500, Reason.rules_write_failed), (422, Reason.rules_write_failed)],
)
async def test_api_errors_become_a_stale_status_not_an_exception(fake: FakeAPI, status: int, reason: Reason) -> None:
    body = review()
    previous = {"kind": "ConfigMap", "name": "checkout-slo-rules", "generation": 2, "hash": "ab" * 32, "current": True}
    fake.fail["PATCH"] = client.ApiException(status=status, reason="Nope")
    outcome = await publish.RulesPublisher(object()).publish(body, spec_of(body), previous)  # type: ignore[arg-type]
    assert (outcome.ok, outcome.reason) == (False, reason)
    assert f"{status} Nope" in outcome.message
    # Where the older rules still are, no longer current.
    assert outcome.status_value() == {**previous, "key": None, "current": False, "enabled": True}


async def test_failing_discovery_and_broken_connections_are_reported_and_retried(fake: FakeAPI) -> None:
    fake.fail["GET"] = client.ApiException(status=503, reason="Unavailable")  # discovery itself fails
    publisher = publish.RulesPublisher(object())  # type: ignore[arg-type]
    body = review()
    outcome = await publisher.publish(body, spec_of(body), None)
    assert (outcome.ok, outcome.reason, outcome.status) == (False, Reason.rules_write_failed, None)
    fake.fail["GET"] = ConnectionResetError("reset")  # type: ignore[assignment]
    outcome = await publisher.publish(body, spec_of(body), None)
    assert (outcome.ok, outcome.reason) == (False, Reason.rules_write_failed) and "reset" in outcome.message
    del fake.fail["GET"]
    assert (await publisher.publish(body, spec_of(body), None)).ok  # a failed discovery was not cached


async def test_disabling_empties_the_written_object_and_writes_nothing_new(fake: FakeAPI) -> None:
    disabled = review(rules={"enabled": False})
    publisher = publish.RulesPublisher(object())  # type: ignore[arg-type]
    never = await publisher.publish(disabled, spec_of(disabled), None)
    assert (never.ok, never.reason, never.status) == (False, Reason.rules_disabled, None) and fake.calls == []
    fake.served = True
    written = await publisher.publish(review(), spec_of(review()), None)
    assert written.status is not None
    emptied = await publisher.publish(disabled, spec_of(disabled), written.status_value())
    assert (emptied.ok, emptied.reason) == (False, Reason.rules_disabled)
    assert emptied.status and emptied.status.enabled is False and emptied.status.current
    path = "/apis/monitoring.coreos.com/v1/namespaces/shop/prometheusrules/checkout-slo-rules"
    assert fake.objects[path]["spec"] == {"groups": []}


READY = {"type": "Ready", "status": "True", "reason": "Reviewed", "lastTransitionTime": "2025-01-01T00:00:00Z"}


def test_status_and_condition_of_an_outcome() -> None:
    rules_status = RulesStatus(
        kind=RulesKind.prometheus_rule, name="c-slo-rules", generation=3, hash="f" * 64, current=True
    )
    outcome = publish.Outcome(True, Reason.rules_written, "written", rules_status)
    final = with_rules({"conditions": [READY]}, outcome, 3)
    parsed = SLOReviewStatus.model_validate(final)
    assert parsed.rules == rules_status
    ready = next(c for c in final["conditions"] if c["type"] == ConditionType.rules_ready)
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "RulesWritten", 3)
    assert [c["type"] for c in final["conditions"]] == ["Ready", "RulesReady"]
    failed = with_rules(
        {"conditions": final["conditions"]}, publish.Outcome(False, Reason.rules_forbidden, "403", None), 4
    )
    assert failed["rules"] is None
    assert next(c for c in failed["conditions"] if c["type"] == "RulesReady")["status"] == "False"
    assert with_rules({"x": 1}, None, 1) == {"x": 1}  # operator-level off: status untouched


# --- the rollout gate ---------------------------------------------------------------------------------


NOW = dt.datetime(2025, 1, 1, 1, 0, tzinfo=dt.UTC)


def reviewed(verdict: str = "Healthy", **status: Any) -> dict[str, Any]:
    body = review(generation=2)
    body["metadata"]["annotations"] = {ROLLOUT_GATE_ANNOTATION: "true"}
    body["status"] = {
        "phase": "Completed",
        "observedGeneration": 2,
        "verdict": verdict,
        "evaluatedAt": "2025-01-01T00:59:00Z",
        "errorBudget": {"total": 0.001, "consumed": 0.5, "remaining": 0.5, "remainingPercent": 50.0},
        "burnRates": {"1h": 0.5, "5m": None},
        "alerts": [{"name": "page-1h-5m", "firing": verdict == "Breaching"}],
        "lastReview": {"completedAt": "2025-01-01T00:59:30Z"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Reviewed"}],
        **status,
    }
    return body


def test_gate_verdicts_fail_closed() -> None:
    healthy = gate.verdict(reviewed(), now=NOW)
    assert healthy["pass"] is True and healthy["reasons"] == []
    assert (healthy["budgetRemainingPercent"], healthy["observedAt"], healthy["ageSeconds"]) == (
        50.0,
        "2025-01-01T00:59:00Z",
        30.0,
    )
    assert gate.verdict(reviewed("AtRisk"), now=NOW)["pass"] is True
    breaching = gate.verdict(reviewed("Breaching"), now=NOW)
    assert breaching["pass"] is False and breaching["firing"] == ["page-1h-5m"]
    assert gate.verdict(reviewed("Exhausted"), now=NOW)["pass"] is False
    assert gate.verdict(reviewed(observedGeneration=1), now=NOW)["pass"] is False  # spec changed since
    assert gate.verdict(reviewed(phase="Failed"), now=NOW)["pass"] is False
    no_data = reviewed(verdict=None, conditions=[{"type": "Ready", "status": "False", "reason": "NoData"}])
    assert gate.verdict(no_data, now=NOW)["reasons"] == ["last review: NoData", "verdict unknown"]
    assert gate.verdict({"metadata": {"generation": 1}}, now=NOW)["pass"] is False  # never reviewed
    assert gate.verdict(reviewed(), dt.timedelta(seconds=29), now=NOW)["pass"] is False
    assert gate.verdict(reviewed(), dt.timedelta(minutes=1), now=NOW)["pass"] is True


def test_gate_answers_only_opted_in_reviews_by_default() -> None:
    body = reviewed()
    assert gate.gate_open(body, "annotated") and gate.gate_open(body, "all")
    body["metadata"]["annotations"] = {ROLLOUT_GATE_ANNOTATION: "yes"}
    assert not gate.gate_open(body, "annotated") and gate.gate_open(body, "all") and not gate.gate_open(body, "off")


@pytest.mark.parametrize(
    ("namespace", "name", "ok"),
    [
        ("shop", "checkout", True),
        ("shop", "checkout.v2", True),
        ("Shop", "checkout", False),
        ("shop", "Check_out", False),
        ("-shop", "checkout", False),
        ("s" * 64, "checkout", False),
        ("shop", "c" * 254, False),
        ("shop", "checkout-", False),
    ],
)
def test_gate_names_are_dns_1123(namespace: str, name: str, ok: bool) -> None:
    assert gate.valid_names(namespace, name) is ok


async def test_gate_over_http_on_the_health_server(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = {"/apis/infragenius.io/v1alpha1/namespaces/shop/sloreviews/checkout": reviewed("Breaching")}
    private = reviewed()
    private["metadata"]["annotations"] = {}
    objects["/apis/infragenius.io/v1alpha1/namespaces/shop/sloreviews/private"] = private
    reads: list[str] = []

    def fake(api: Any, method: str, path: str, **kwargs: Any) -> Any:
        reads.append(path)
        if path.endswith("/broken"):
            raise client.ApiException(status=500, reason="boom")
        if path not in objects:
            raise client.ApiException(status=404, reason="Not Found")
        return objects[path]

    monkeypatch.setattr(gate.kubeapi, "request", fake)
    slo_gate = gate.SLOGate(Settings(slo_rollout_gate="annotated"))
    server = HealthServer(HealthState(), [(gate.ROUTE, slo_gate.handle)])
    async with TestClient(TestServer(server._app())) as http:
        starting = await http.get("/v1/slo/shop/checkout/gate")
        assert starting.status == 503  # no API client yet
        slo_gate.api = object()  # type: ignore[assignment]
        answer = await http.get("/v1/slo/shop/checkout/gate")
        assert answer.status == 200
        body = await answer.json()
        assert (body["verdict"], body["pass"], body["name"]) == ("Breaching", False, "checkout")
        for path, status in [
            ("/v1/slo/shop/private/gate", 404),  # exists, not opted in: indistinguishable from absent
            ("/v1/slo/shop/absent/gate", 404),
            ("/v1/slo/shop/broken/gate", 503),
            ("/v1/slo/shop/Bad_Name/gate", 400),
            ("/v1/slo/SHOP/checkout/gate", 400),
            ("/v1/slo/shop/checkout/gate?maxAge=later", 400),
        ]:
            reply = await http.get(path)
            assert reply.status == status, (path, await reply.text())
            assert (await reply.json())["error"]
        assert not any("Bad_Name" in p or "SHOP" in p for p in reads)  # refused before any API request
        assert (await http.get("/healthz")).status == 200
    off = HealthServer(HealthState(), [])
    async with TestClient(TestServer(off._app())) as http:
        assert (await http.get("/v1/slo/shop/checkout/gate")).status == 404
    restricted = gate.SLOGate(Settings(namespaces=["other"]), api=object())  # type: ignore[arg-type]
    reads.clear()
    async with TestClient(TestServer(HealthServer(HealthState(), [(gate.ROUTE, restricted.handle)])._app())) as http:
        assert (await http.get("/v1/slo/shop/checkout/gate")).status == 404 and reads == []


def test_the_argo_rollouts_example_calls_the_gate() -> None:
    import re
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "rollout-gate-analysis-template.yaml"
    template = yaml.safe_load(path.read_text())
    assert (template["apiVersion"], template["kind"]) == ("argoproj.io/v1alpha1", "AnalysisTemplate")
    (metric,) = template["spec"]["metrics"]
    web = metric["provider"]["web"]
    assert web["jsonPath"] == "{$.pass}" and metric["successCondition"] == "result == true"
    match = re.fullmatch(
        r"http://infragenius-operator\.infragenius-system\.svc:(\d+)(/v1/slo/[^?]+)\?maxAge=(\w+)", web["url"]
    )
    assert match, web["url"]
    assert int(match[1]) == Settings.model_fields["health_port"].default
    assert match[2] == gate.ROUTE.format(namespace="{{args.namespace}}", name="{{args.slo}}")
    assert {a["name"] for a in template["spec"]["args"]} == {"slo", "namespace"}


async def test_an_unexpected_error_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch, fake: FakeAPI) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(publish, "desired", broken)
    body = review()
    outcome = await publish.RulesPublisher(object()).publish(body, spec_of(body), None)  # type: ignore[arg-type]
    assert (outcome.ok, outcome.reason) == (False, Reason.rules_write_failed) and "RuntimeError" in outcome.message


def test_rule_labels_must_be_kubernetes_labels() -> None:
    good = {"release": "prometheus", "prometheus.io/rules": "", "team": "a.b-c_d"}
    assert Settings(slo_rule_labels=good).slo_rule_labels == good
    for bad in ({"bad key": "x"}, {"release": "not ok"}, {"x" * 64: "y"}, {"release": "y" * 64}, {"/x": "y"}):
        with pytest.raises(ValueError):
            Settings(slo_rule_labels=bad)


async def test_gate_answers_are_counted() -> None:
    from infragenius.observability import metrics

    before = metrics.REGISTRY.get_sample_value("infragenius_slo_gate_requests_total", {"code": "400"}) or 0.0
    slo_gate = gate.SLOGate(Settings(), api=object())  # type: ignore[arg-type]
    async with TestClient(TestServer(HealthServer(HealthState(), [(gate.ROUTE, slo_gate.handle)])._app())) as http:
        assert (await http.get("/v1/slo/shop/Bad_Name/gate")).status == 400
    after = metrics.REGISTRY.get_sample_value("infragenius_slo_gate_requests_total", {"code": "400"})
    assert after == before + 1


async def test_a_prometheus_rule_crd_that_went_away_is_looked_up_again(fake: FakeAPI) -> None:
    fake.served = True
    publisher = publish.RulesPublisher(object())  # type: ignore[arg-type]
    body = review()
    assert (await publisher.publish(body, spec_of(body), None)).ok
    fake.served = False
    fake.fail["PATCH"] = client.ApiException(status=404, reason="Not Found")  # the kind is no longer served
    gone = await publisher.publish(body, spec_of(body), None)
    assert (gone.ok, gone.reason) == (False, Reason.rules_write_failed)
    del fake.fail["PATCH"]
    again = await publisher.publish(body, spec_of(body), None)
    assert again.ok and again.status and again.status.kind is RulesKind.config_map
