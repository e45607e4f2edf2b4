"""SLOReview end to end: real Prometheus (backfilled by promtool), the operator, the Alertmanager webhook."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from kopf.testing import KopfRunner
from kubernetes import client, config
from pydantic import SecretStr

from infragenius import kubeapi
from infragenius.alerts.receiver import PATH, AlertWebhook, WebhookOptions
from infragenius.alerts.slo_triggers import KubeTriggerSink, TriggerUnavailable, UnknownSLO
from infragenius.gather.prometheus import PrometheusTarget
from infragenius.models.api import TRIGGER_ANNOTATION
from infragenius.models.explanation import ExplainedStatus
from infragenius.models.slo import (
    BURN_WINDOWS,
    LatencySLI,
    RatioSLI,
    RawSLI,
    SLISpec,
    TriggerRecord,
)
from infragenius.slo import math as slo_math
from infragenius.slo.review import attribute, collect
from infragenius_devtools.devcluster import scenarios as workloads
from tests.e2e.analysis_support import running_operator
from tests.e2e.conftest import E2ECluster
from tests.e2e.prometheus_support import (
    LATENCY,
    LATENCY_METRIC,
    SCENARIOS,
    T_END,
    LocalPrometheus,
    Scenario,
    expected_ratio,
    free_port,
    ratio_queries,
)
from tests.e2e.support import service_account_kubeconfig, wait_for
from tests.e2e.test_llm import CaptureProxy, llm_env

pytestmark = pytest.mark.e2e

TOKEN = "e2e-webhook-token"
EVALUATE_AT = T_END.isoformat().replace("+00:00", "Z")


def show(line: str) -> None:
    """Measured figures, shown with -s (KopfRunner swaps sys.stdout while the operator runs)."""
    print(line, file=sys.__stdout__, flush=True)


def ratio_sli(name: str, template: bool = False) -> SLISpec:
    errors, total = ratio_queries(name)
    if template:
        errors, total = f"sum(rate({errors}[$window]))", f"sum(rate({total}[$window]))"
    return SLISpec(ratio=RatioSLI(error_query=errors, total_query=total))


def latency_sli() -> SLISpec:
    return SLISpec(latency=LatencySLI(metric=LATENCY_METRIC, threshold_seconds=1.0, selector='scenario="latency"'))


def assert_matches_hand_computed(report: slo_math.BudgetReport, scenario: Scenario) -> None:
    budget = (100 - scenario.objective) / 100
    for window in BURN_WINDOWS:
        ratio = expected_ratio(scenario, window)
        if ratio is None:
            assert report.burn_rates[window] is None, window
        else:
            assert report.burn_rates[window] == pytest.approx(ratio / budget, abs=1e-6), window
    window_ratio = expected_ratio(scenario, "30d")
    assert window_ratio is not None
    assert report.budget == pytest.approx(budget, abs=1e-12)
    assert report.consumed == pytest.approx(window_ratio / budget, abs=1e-6)
    assert report.remaining == pytest.approx(1 - window_ratio / budget, abs=1e-6)
    assert report.sli == pytest.approx(1 - window_ratio, abs=1e-9)
    assert report.verdict.value == scenario.verdict


# --- the review against real Prometheus (no cluster needed) --------------------------------------


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_review_matches_hand_computed_values(prometheus: LocalPrometheus, name: str) -> None:
    scenario = SCENARIOS[name]
    data = await collect(PrometheusTarget(prometheus.url), ratio_sli(name), "30d", at=T_END)
    assert not data.failed, data.errors
    assert data.window_error_ratio is not None
    report = slo_math.evaluate(scenario.objective, "30d", data.window_error_ratio, data.error_ratios)
    assert_matches_hand_computed(report, scenario)
    burns = ", ".join(f"{w}={'-' if v is None else f'{v:.6f}'}" for w, v in report.burn_rates.items())
    show(
        f"\n{name}: verdict={report.verdict.value} consumed={report.consumed:.9f} "
        f"remaining={report.remaining:.9f} burn[{burns}] queries {data.seconds:.3f}s"
    )


async def test_breaching_values_written_out() -> None:
    """The breaching data set by hand: 1000 req/min, 0.5 errors/min, 20 errors/min in the last hour."""
    breaching = SCENARIOS["breaching"]
    assert expected_ratio(breaching, "1h") == 0.02  # burn 20
    assert expected_ratio(breaching, "2h") == (60 * 20 + 60 * 0.5) / 120_000 == 0.01025  # burn 10.25
    assert expected_ratio(breaching, "6h") == (60 * 20 + 300 * 0.5) / 360_000  # burn 3.75
    assert expected_ratio(breaching, "30d") == (60 * 20 + 43_140 * 0.5) / 43_200_000  # 52.708333% spent


async def test_template_raw_and_latency_slis(prometheus: LocalPrometheus) -> None:
    errors, total = ratio_queries("breaching")
    raw = SLISpec(raw=RawSLI(error_ratio_query=f"sum(increase({errors}[$window])) / sum(increase({total}[$window]))"))
    for sli, scenario in (
        (ratio_sli("breaching", template=True), SCENARIOS["breaching"]),
        (raw, SCENARIOS["breaching"]),
        (latency_sli(), LATENCY),
    ):
        data = await collect(PrometheusTarget(prometheus.url), sli, "30d", at=T_END)
        assert not data.failed, data.errors
        assert data.window_error_ratio is not None
        report = slo_math.evaluate(scenario.objective, "30d", data.window_error_ratio, data.error_ratios)
        assert_matches_hand_computed(report, scenario)
    # The latency set: 2 of 1000 slower than 1s (5 in the last 2h); budget 0.005.
    assert report.burn_rates["1h"] == pytest.approx(1.0, abs=1e-6)
    assert report.burn_rates["3d"] == pytest.approx((120 * 5 + 4200 * 2) / 4_320_000 / 0.005, abs=1e-6)


async def test_no_data_and_failing_queries_are_reported(prometheus: LocalPrometheus) -> None:
    show(f"\nprometheus: backfill {prometheus.backfill_seconds:.1f}s, start {prometheus.start_seconds:.1f}s")
    missing = await collect(PrometheusTarget(prometheus.url), ratio_sli("no-such-scenario"), "30d", at=T_END)
    assert missing.no_data and not missing.failed
    assert all(v is None for v in missing.error_ratios.values())

    bad = SLISpec(ratio=RatioSLI(error_query="slo_requests_errors{", total_query="slo_requests_total"))
    broken = await collect(PrometheusTarget(prometheus.url), bad, "30d", at=T_END)
    assert broken.failed and "parse error" in broken.errors["30d"]

    several = SLISpec(raw=RawSLI(error_ratio_query="rate(slo_requests_errors[$window])"))
    ambiguous = await collect(PrometheusTarget(prometheus.url), several, "30d", at=T_END)
    assert ambiguous.failed and "series" in ambiguous.errors["30d"]

    started = time.perf_counter()
    down = await collect(
        PrometheusTarget(f"http://127.0.0.1:{free_port()}"), ratio_sli("healthy"), "30d", at=T_END, timeout=2
    )
    assert down.failed and "ConnectionError" in next(iter(down.errors.values()))
    assert list(down.errors) == ["30d"]  # stops at the first failure
    assert time.perf_counter() - started < 2


async def test_burn_attribution_against_real_prometheus(prometheus: LocalPrometheus) -> None:
    target = PrometheusTarget(prometheus.url)
    data = await collect(target, ratio_sli("attribution"), "30d", at=T_END)
    assert data.window_error_ratio is not None
    report = slo_math.evaluate(99.9, "30d", data.window_error_ratio, data.error_ratios)
    assert report.verdict.value == "Breaching"
    window = slo_math.attribution_window(report.burn_rates, "30d")
    assert window == "5m"  # the shortest lookback burning faster than 1
    found = await attribute(target, ratio_sli("attribution"), ["route", "code"], window, at=T_END)
    assert found.available, found.note
    assert [(e.labels, e.share) for e in found.top] == [
        ({"route": "/checkout", "code": "503"}, 0.8),
        ({"route": "/cart", "code": "500"}, 0.15),
        ({"route": "/search", "code": "500"}, 0.05),
    ]
    assert found.total_errors == pytest.approx(100.0) and found.top[0].errors == pytest.approx(80.0)
    # Over 30 days the /search background errors outweigh the last hour's /checkout ones.
    month = await attribute(target, ratio_sli("attribution"), ["route"], "30d", at=T_END)
    search = 60 * 1 + (43_200 - 60) * 0.5
    assert month.top[0].labels == {"route": "/search"}
    assert month.top[0].share == pytest.approx(round(search / (search + 60 * 19), 4))
    # The latency histogram has no route label: said so, not a fake breakdown.
    unlabelled = await attribute(target, latency_sli(), ["route"], "1h", at=T_END)
    assert not unlabelled.available and "sum them away" in (unlabelled.note or "")
    bad = SLISpec(ratio=RatioSLI(error_query="slo_requests_errors{", total_query="slo_requests_total"))
    failed = await attribute(target, bad, ["route"], "1h", at=T_END)
    assert failed.reason is not None and failed.reason.value == "error" and "parse error" in (failed.note or "")
    show(f"\nattribution: {found.note} (total {found.total_errors:g}); 30d: {month.note}")


# --- the operator --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def webhook_port() -> int:
    return free_port()


class ReviewLog(logging.Handler):
    """The operator's per-object log lines, readable while it runs (KopfRunner.output waits for its end)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def alert_reviews(self, namespace: str, name: str) -> int:
        pattern = re.compile(rf"^slo review {re.escape(namespace)}/{re.escape(name)}: .*\(reason: alert ")
        return sum(1 for line in list(self.lines) if pattern.match(line))


@pytest.fixture(scope="module")
def review_log() -> Iterator[ReviewLog]:
    handler = ReviewLog()
    objects = logging.getLogger("kopf.objects")
    objects.addHandler(handler)
    try:
        yield handler
    finally:
        objects.removeHandler(handler)


@pytest.fixture(scope="module")
def slo_operator(
    cluster: E2ECluster, operator_kubeconfig: str, prometheus: LocalPrometheus, webhook_port: int, review_log: ReviewLog
) -> Iterator[KopfRunner]:
    cluster.kubectl("wait", "--for=condition=Established", "crd/sloreviews.infragenius.io", "--timeout=30s")
    env = {
        "INFRAGENIUS_PROMETHEUS_URL": prometheus.url,
        "INFRAGENIUS_WEBHOOK_TOKEN": TOKEN,
        "INFRAGENIUS_WEBHOOK_PORT": str(webhook_port),
        "INFRAGENIUS_WEBHOOK_HOST": "127.0.0.1",
    }
    with running_operator(operator_kubeconfig, **env) as runner:
        wait_for(lambda: _healthy(webhook_port), timeout=30, what="the webhook to listen")
        yield runner


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def slo_review(name: str, sli: SLISpec, objective: float = 99.9, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": "SLOReview",
        "metadata": {"name": name},
        "spec": {
            "service": name,
            "objective": objective,
            "window": "30d",
            "sli": sli.model_dump(by_alias=True, exclude_none=True),
            "evaluationTime": EVALUATE_AT,
            **spec,
        },
    }


def get_slo(cluster: E2ECluster, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "sloreview", name, "-n", namespace, "-o", "json").stdout)


def wait_reviewed(cluster: E2ECluster, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    """The status once a review has finished (Completed or Failed)."""
    return wait_for(
        lambda: (
            (s := get_slo(cluster, namespace, name).get("status", {})).get("phase") in ("Completed", "Failed")
            and (s.get("lastReview") or {}).get("completedAt")
            and s
        ),
        timeout=timeout,
        what=f"sloreview {name} to be reviewed",
    )


def condition(status: dict[str, Any], type_: str = "Ready") -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


# --- tests that run their own operator: they come before the module's `slo_operator` starts, so that no
# --- second operator reviews the same objects


def test_status_dedupes_an_alert_across_an_operator_restart(
    cluster: E2ECluster, namespace: str, operator_kubeconfig: str, prometheus: LocalPrometheus, review_log: ReviewLog
) -> None:
    """A new operator process (empty memory) gets the same alert again: the record in status stops it."""
    port = free_port()
    env = {
        "INFRAGENIUS_PROMETHEUS_URL": prometheus.url,
        "INFRAGENIUS_WEBHOOK_TOKEN": TOKEN,
        "INFRAGENIUS_WEBHOOK_PORT": str(port),
        "INFRAGENIUS_WEBHOOK_HOST": "127.0.0.1",
    }
    url = f"http://127.0.0.1:{port}{PATH}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = alert_payload("5e5e5e5e00000001", namespace, "restart")
    with running_operator(operator_kubeconfig, **env):
        wait_for(lambda: _healthy(port), timeout=30, what="the first operator's webhook")
        workloads.apply(cluster.kubectl, namespace, slo_review("restart", ratio_sli("breaching")))
        wait_reviewed(cluster, namespace, "restart")
        reply = httpx.post(url, json=body, headers=auth, timeout=10)
        assert reply.status_code == 200 and reply.json()["results"][0]["action"] == "triggered", reply.text
        wait_for(
            lambda: (
                ((get_slo(cluster, namespace, "restart")["status"].get("lastReview") or {}).get("completedAt"))
                and review_log.alert_reviews(namespace, "restart") == 1
            ),
            timeout=60,
            what="the alert-triggered review",
        )
    with running_operator(operator_kubeconfig, **env):
        wait_for(lambda: _healthy(port), timeout=30, what="the restarted operator's webhook")
        reply = httpx.post(url, json=body, headers=auth, timeout=10)
        assert reply.status_code == 200 and reply.json()["results"][0]["action"] == "duplicate", reply.text
        time.sleep(3)  # room for any extra review (from the post or the resume) to show up
    assert review_log.alert_reviews(namespace, "restart") == 1
    obj = get_slo(cluster, namespace, "restart")
    assert [t["fingerprint"] for t in obj["status"]["triggers"]] == ["5e5e5e5e00000001"]
    assert obj["metadata"]["annotations"][TRIGGER_ANNOTATION] == "5e5e5e5e00000001@2025-01-01T00:00:00.000000001Z"


def test_slo_narrative_from_a_real_model_with_names_masked(
    cluster: E2ECluster, namespace: str, operator_kubeconfig: str, prometheus: LocalPrometheus, ollama: Any
) -> None:
    """The SLO findings go through the Analysis explainer (prompt, schema, anonymizer) to a real Ollama."""
    name, service = "flamingo-availability", "pelican-checkout"
    env = {"INFRAGENIUS_PROMETHEUS_URL": prometheus.url}
    with CaptureProxy(ollama.url) as proxy, running_operator(operator_kubeconfig, **llm_env(proxy.url), **env):
        workloads.apply(
            cluster.kubectl,
            namespace,
            slo_review(
                name,
                ratio_sli("attribution"),
                service=service,
                llm={"enabled": True},
                attribution={"labels": ["route", "code"]},
            ),
        )
        status = wait_reviewed(cluster, namespace, name, timeout=240)
    assert status["phase"] == "Completed" and status["verdict"] == "Breaching", status
    explained = condition(status, "Explained")
    assert (explained["status"], explained["reason"]) == ("True", "Explained"), explained
    explanation = ExplainedStatus.model_validate(status["explanation"])
    assert explanation.prompt_tokens and explanation.prompt_tokens > 50
    assert explanation.completion_tokens and explanation.completion_tokens > 0
    assert explanation.findings_sent == explanation.findings_total >= 1
    chats = [b for b in proxy.bodies if '"messages"' in b]
    assert chats, "the model was never asked"
    prompts = [json.loads(b)["messages"][1]["content"] for b in chats]
    assert all("Burning " in p for p in prompts)
    # Grounded in the review's numbers: the top contributors go to the model as evidence.
    assert all("errorsBy:" in p and "80.0% of" in p for p in prompts), prompts[0][:2000]
    sent = "\n".join(chats)
    leaked = [word for word in (name, service, "flamingo", "pelican", namespace) if word in sent]
    assert leaked == [], leaked
    show(
        f"\nslo narrative: {explanation.prompt_tokens}+{explanation.completion_tokens} tokens, "
        f"{explanation.model_seconds}s: {explanation.summary}"
    )


# --- the webhook in-process, over the real KubeTriggerSink and the real API (as the operator's account) ----


@pytest.fixture
def operator_api(operator_kubeconfig: str) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=operator_kubeconfig)
    try:
        yield api
    finally:
        api.close()


@contextlib.asynccontextmanager
async def webhook_client(sink: KubeTriggerSink, **options: Any) -> AsyncIterator[TestClient]:
    webhook = AlertWebhook(WebhookOptions(token=SecretStr(TOKEN), **options), sink)
    async with TestClient(TestServer(webhook.app())) as http:
        http.webhook = webhook  # type: ignore[attr-defined]
        yield http


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_slos(cluster: E2ECluster, namespace: str, *names: str) -> None:
    cluster.kubectl("wait", "--for=condition=Established", "crd/sloreviews.infragenius.io", "--timeout=30s")
    workloads.apply(cluster.kubectl, namespace, *(slo_review(n, ratio_sli("healthy")) for n in names))


def triggers(cluster: E2ECluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return (get_slo(cluster, namespace, name).get("status") or {}).get("triggers") or []


def trigger_annotation(cluster: E2ECluster, namespace: str, name: str) -> str | None:
    return (get_slo(cluster, namespace, name)["metadata"].get("annotations") or {}).get(TRIGGER_ANNOTATION)


def record(fp: str, status: str = "firing") -> TriggerRecord:
    return TriggerRecord.model_validate(
        {
            "alertname": "A",
            "fingerprint": fp,
            "startsAt": "2025-01-01T00:00:00Z",
            "status": status,
            "labels": {},
            "receivedAt": "2025-01-01T00:00:00Z",
        }
    )


async def test_webhook_rejects_bad_requests_before_the_api(
    cluster: E2ECluster, namespace: str, operator_api: client.ApiClient
) -> None:
    make_slos(cluster, namespace, "checkout")
    good = alert_payload("4a3b2c1d00000001", namespace, "checkout")
    first = good["alerts"][0]
    bad_bodies = [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00garbage", "malformed_json"),
        (b"[" * 50000, "malformed_json"),  # deep nesting must not become a 5xx
        (b"[]", "invalid_payload"),
        (b'"text"', "invalid_payload"),
        (json.dumps({**good, "version": "3"}).encode(), "unsupported_version"),
        (json.dumps({"version": "4"}).encode(), "invalid_payload"),
        (json.dumps({**good, "alerts": [{"status": "firing"}]}).encode(), "invalid_payload"),
        (json.dumps({**good, "alerts": [{**first, "labels": {"slo": 5}}]}).encode(), "invalid_payload"),
        (json.dumps({**good, "alerts": [{**first, "status": "pending"}]}).encode(), "invalid_payload"),
    ]
    async with webhook_client(KubeTriggerSink(operator_api), max_body_bytes=64 * 1024) as http:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": TOKEN},
            {"Authorization": "Basic " + TOKEN},
        ):
            reply = await http.post(PATH, json=good, headers=headers)
            assert reply.status == 401, headers
            assert (await reply.json())["error"] == "unauthorized"
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        for body, error in bad_bodies:
            reply = await http.post(PATH, data=body, headers={**AUTH, "Content-Type": "application/json"})
            assert reply.status == 400, (body[:40], await reply.text())
            answer = await reply.json()
            assert answer["error"] == error and answer["reason"], (body[:40], answer)

        big = alert_payload("4a3b2c1d00000001", namespace, "checkout")
        big["alerts"][0]["labels"]["padding"] = "x" * 70 * 1024
        reply = await http.post(PATH, json=big, headers=AUTH)
        assert reply.status == 413 and (await reply.json())["error"] == "too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
            for _ in range(100):
                yield b" " * 1024

        reply = await http.post(PATH, data=chunks(), headers=AUTH)
        assert reply.status == 413

        reply = await http.get(PATH)
        assert reply.status == 405 and (await reply.json())["error"]
        reply = await http.post("/elsewhere", json={})
        assert reply.status == 404 and (await reply.json())["error"]
    assert triggers(cluster, namespace, "checkout") == [] and trigger_annotation(cluster, namespace, "checkout") is None


async def test_webhook_records_each_alert_once(
    cluster: E2ECluster, namespace: str, operator_api: client.ApiClient
) -> None:
    make_slos(cluster, namespace, "checkout")
    body = alert_payload("4a3b2c1d00000001", namespace, "checkout")
    sink = KubeTriggerSink(operator_api)
    async with webhook_client(sink) as http:
        replies = [await http.post(PATH, json=body, headers=AUTH) for _ in range(5)]
        assert [r.status for r in replies] == [200] * 5
        assert [(await r.json())["results"][0]["action"] for r in replies] == ["triggered"] + ["duplicate"] * 4
        recorded = triggers(cluster, namespace, "checkout")
        assert [(t["alertname"], t["fingerprint"], t["startsAt"], t["labels"]["severity"]) for t in recorded] == [
            ("SLOErrorBudgetBurn", "4a3b2c1d00000001", "2025-01-01T00:00:00.000000001Z", "page")
        ]
        assert trigger_annotation(cluster, namespace, "checkout") == "4a3b2c1d00000001@2025-01-01T00:00:00.000000001Z"

        # Concurrent deliveries of one new alert: one record.
        concurrent = alert_payload("4a3b2c1d00000002", namespace, "checkout")
        replies = await asyncio.gather(*(http.post(PATH, json=concurrent, headers=AUTH) for _ in range(5)))
        assert {r.status for r in replies} == {200}
        assert sink.locks_held == 0  # the per-SLO locks are gone once no delivery needs them
        assert sorted([(await r.json())["results"][0]["action"] for r in replies]) == ["duplicate"] * 4 + ["triggered"]

        # The same alert firing again later (new startsAt) is a new trigger; its resolution is recorded.
        again = alert_payload("4a3b2c1d00000001", namespace, "checkout")
        again["alerts"][0]["startsAt"] = "2025-01-02T00:00:00Z"
        reply = await http.post(PATH, json=again, headers=AUTH)
        assert (await reply.json())["results"][0]["action"] == "triggered"
        reply = await http.post(
            PATH, json=alert_payload("4a3b2c1d00000001", namespace, "checkout", "resolved"), headers=AUTH
        )
        assert (await reply.json())["results"][0]["action"] == "recorded"
    assert [(t["fingerprint"][-1], t["status"]) for t in triggers(cluster, namespace, "checkout")] == [
        ("1", "firing"),
        ("2", "firing"),
        ("1", "firing"),
        ("1", "resolved"),
    ]
    assert trigger_annotation(cluster, namespace, "checkout") == "4a3b2c1d00000001@2025-01-02T00:00:00Z"


async def test_webhook_unknown_unmatched_and_relabelled_slos(
    cluster: E2ECluster, namespace: str, operator_api: client.ApiClient
) -> None:
    make_slos(cluster, namespace, "checkout")
    async with webhook_client(KubeTriggerSink(operator_api)) as http:
        reply = await http.post(PATH, json=alert_payload("0000000000000001", namespace, "nope"), headers=AUTH)
        assert reply.status == 404
        answer = await reply.json()
        assert answer["error"] == "unknown_slo" and answer["results"][0]["reason"] == f"no SLOReview {namespace}/nope"

        unlabeled = alert_payload("0000000000000002", namespace, "checkout")
        del unlabeled["alerts"][0]["labels"]["slo"]
        reply = await http.post(PATH, json=unlabeled, headers=AUTH)
        assert reply.status == 422 and (await reply.json())["error"] == "unmatched"
        reply = await http.post(PATH, json=alert_payload("0000000000000003", namespace, "Not_A_Name"), headers=AUTH)
        assert reply.status == 422

        # An SLO created after a 404 is triggered by the next delivery (unknown alerts are not remembered).
        make_slos(cluster, namespace, "nope")
        reply = await http.post(PATH, json=alert_payload("0000000000000001", namespace, "nope"), headers=AUTH)
        assert reply.status == 200 and (await reply.json())["results"][0]["action"] == "triggered"
        assert len(triggers(cluster, namespace, "nope")) == 1

        # Mixed: one known, one unknown -> 200 with per-alert results.
        mixed = alert_payload("00000000000000f2", namespace, "checkout")
        mixed["alerts"].append(alert_payload("00000000000000f3", namespace, "other")["alerts"][0])
        reply = await http.post(PATH, json=mixed, headers=AUTH)
        assert reply.status == 200
        assert [r["action"] for r in (await reply.json())["results"]] == ["triggered", "unknown"]

    async with webhook_client(
        KubeTriggerSink(operator_api), slo_label="slo_name", namespace_label="slo_namespace"
    ) as http:
        relabelled = alert_payload("00000000000000f4", namespace, "checkout")
        relabelled["alerts"][0]["labels"] = {"alertname": "X", "slo_name": "checkout", "slo_namespace": namespace}
        reply = await http.post(PATH, json=relabelled, headers=AUTH)
        assert reply.status == 200 and (await reply.json())["results"][0]["action"] == "triggered"
        reply = await http.post(PATH, json=alert_payload("00000000000000f5", namespace, "checkout"), headers=AUTH)
        assert reply.status == 422  # the default labels are ignored
    assert [t["fingerprint"] for t in triggers(cluster, namespace, "checkout")] == [
        "00000000000000f2",
        "00000000000000f4",
    ]


async def test_webhook_flood_of_bad_requests_leaves_the_server_healthy(
    cluster: E2ECluster, namespace: str, operator_api: client.ApiClient
) -> None:
    make_slos(cluster, namespace, "checkout")
    async with webhook_client(KubeTriggerSink(operator_api)) as http:

        async def bad(i: int) -> int:
            body = [b"{", b"[]", json.dumps({"version": "4", "alerts": "x"}).encode(), b"\x00" * 100][i % 4]
            return (await http.post(PATH, data=body, headers=AUTH if i % 5 else {})).status

        started = time.perf_counter()
        statuses: list[int] = []
        for start in range(0, 1000, 50):
            statuses += await asyncio.gather(*(bad(i) for i in range(start, start + 50)))
        elapsed = time.perf_counter() - started
        assert set(statuses) <= {400, 401} and len(statuses) == 1000
        assert (await http.get("/healthz")).status == 200
        reply = await http.post(PATH, json=alert_payload("f100d000000000ab", namespace, "checkout"), headers=AUTH)
        assert reply.status == 200 and (await reply.json())["results"][0]["action"] == "triggered"
        assert http.webhook.replies[400] + http.webhook.replies[401] == 1000  # type: ignore[attr-defined]
    assert len(triggers(cluster, namespace, "checkout")) == 1
    show(f"\n1000 bad requests in-process: {elapsed:.2f}s")


async def test_sink_history_is_bounded_and_unknown_slos_raise(
    cluster: E2ECluster, namespace: str, operator_api: client.ApiClient
) -> None:
    make_slos(cluster, namespace, "checkout")
    sink = KubeTriggerSink(operator_api, history=3)
    assert await sink.deliver(namespace, "checkout", record("f1")) == "triggered"
    assert trigger_annotation(cluster, namespace, "checkout") == "f1@2025-01-01T00:00:00Z"
    # Another sink (another process: nothing in memory) finds the alert in status.
    assert await KubeTriggerSink(operator_api, history=3).deliver(namespace, "checkout", record("f1")) == "duplicate"
    assert await sink.deliver(namespace, "checkout", record("f1", "resolved")) == "recorded"
    for fp in ("f2", "f3", "f4"):
        assert await sink.deliver(namespace, "checkout", record(fp)) == "triggered"
    assert [t["fingerprint"] for t in triggers(cluster, namespace, "checkout")] == ["f2", "f3", "f4"]
    assert trigger_annotation(cluster, namespace, "checkout") == "f4@2025-01-01T00:00:00Z"
    with pytest.raises(UnknownSLO):
        await sink.deliver(namespace, "gone", record("f1"))
    with pytest.raises(UnknownSLO):
        await sink.deliver(f"{namespace}-gone", "checkout", record("f1"))


async def test_refused_annotation_gets_a_503_and_the_retry_completes_it(
    cluster: E2ECluster, namespace: str, operator_api: client.ApiClient
) -> None:
    """A real 403: an account that may write SLOReview status but not the object (its annotation)."""
    make_slos(cluster, namespace, "checkout")
    rules = [
        {"apiGroups": ["infragenius.io"], "resources": ["sloreviews"], "verbs": ["get"]},
        {"apiGroups": ["infragenius.io"], "resources": ["sloreviews/status"], "verbs": ["get", "patch"]},
    ]
    kubeconfig = service_account_kubeconfig(cluster.api, cluster.kubeconfig, namespace, "status-only", rules)
    limited = config.new_client_from_config(config_file=kubeconfig)
    path = f"/apis/infragenius.io/v1alpha1/namespaces/{namespace}/sloreviews/checkout"
    try:
        wait_for(lambda: _can_get(limited, path), timeout=30, what="the status-only role to take effect")
        body = alert_payload("bad0a11a00000001", namespace, "checkout")
        async with webhook_client(KubeTriggerSink(limited)) as http:
            reply = await http.post(PATH, json=body, headers=AUTH)
            assert reply.status == 503, await reply.text()
            answer = await reply.json()
            assert answer["results"][0]["action"] == "unavailable" and "403" in answer["results"][0]["reason"]
            # The status record went in, the annotation did not: no review was asked for.
            assert len(triggers(cluster, namespace, "checkout")) == 1
            assert trigger_annotation(cluster, namespace, "checkout") is None

            # Alertmanager retries (to the same server, which forgot the failed key) once the API accepts it.
            http.webhook.sink = KubeTriggerSink(operator_api)  # type: ignore[attr-defined]
            reply = await http.post(PATH, json=body, headers=AUTH)
            assert reply.status == 200 and (await reply.json())["results"][0]["action"] == "triggered"
            reply = await http.post(PATH, json=body, headers=AUTH)
            assert (await reply.json())["results"][0]["action"] == "duplicate"
        assert len(triggers(cluster, namespace, "checkout")) == 1
        assert trigger_annotation(cluster, namespace, "checkout") == "bad0a11a00000001@2025-01-01T00:00:00.000000001Z"
        rec = TriggerRecord.model_validate(triggers(cluster, namespace, "checkout")[0])
        assert await KubeTriggerSink(operator_api).deliver(namespace, "checkout", rec) == "duplicate"

        # An API server that does not answer at all is unavailable too (503), never unknown.
        dead = client.Configuration()
        dead.host = f"https://127.0.0.1:{free_port()}"
        dead.verify_ssl = False
        with client.ApiClient(dead) as dead_api, pytest.raises(TriggerUnavailable):
            await KubeTriggerSink(dead_api).deliver(namespace, "checkout", record("f9"))
    finally:
        limited.close()
        rbac_api = client.RbacAuthorizationV1Api(cluster.api)
        rbac_api.delete_cluster_role_binding(f"{namespace}-status-only")
        rbac_api.delete_cluster_role(f"{namespace}-status-only")


def _can_get(api: client.ApiClient, path: str) -> bool:
    try:
        kubeapi.request(api, "GET", path, timeout=(5, 15))
        return True
    except client.ApiException:
        return False


def test_operator_reaches_every_verdict_from_prometheus(
    cluster: E2ECluster, namespace: str, slo_operator: KopfRunner
) -> None:
    names = ["healthy", "at-risk", "breaching", "exhausted"]
    workloads.apply(
        cluster.kubectl,
        namespace,
        *(slo_review(n, ratio_sli(n)) for n in names),
        slo_review("latency", latency_sli(), objective=LATENCY.objective),
        slo_review("no-data", ratio_sli("no-such-scenario")),
        slo_review("broken", SLISpec(raw=RawSLI(error_ratio_query="sum(rate(x[$window])"))),
    )
    for name, scenario in [*((n, SCENARIOS[n]) for n in names), ("latency", LATENCY)]:
        status = wait_reviewed(cluster, namespace, name)
        assert status["phase"] == "Completed", status
        assert status["verdict"] == scenario.verdict
        ready = condition(status)
        assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Reviewed", 1)
        budget = (100 - scenario.objective) / 100
        for window in BURN_WINDOWS:
            ratio = expected_ratio(scenario, window)
            assert status["burnRates"][window] == pytest.approx(ratio / budget, abs=1e-6), (name, window)  # type: ignore[operator]
        spent = expected_ratio(scenario, "30d") / budget  # type: ignore[operator]
        assert status["errorBudget"]["consumed"] == pytest.approx(spent, abs=1e-6)
        assert status["errorBudget"]["remaining"] == pytest.approx(1 - spent, abs=1e-6)
        assert status["evaluatedAt"] == EVALUATE_AT
        assert status["summary"].startswith(scenario.verdict)
    breaching = get_slo(cluster, namespace, "breaching")["status"]
    assert [a["name"] for a in breaching["alerts"] if a["firing"]] == ["page-1h-5m"]
    assert breaching["alerts"][0]["factor"] == 14.4 and breaching["timeToExhaustion"] == "17h1m30s"
    assert [a["name"] for a in get_slo(cluster, namespace, "at-risk")["status"]["alerts"] if a["firing"]] == [
        "ticket-1d-2h",
        "ticket-3d-6h",
    ]

    no_data = wait_reviewed(cluster, namespace, "no-data")
    assert no_data["phase"] == "Completed" and "verdict" not in no_data
    assert (condition(no_data)["status"], condition(no_data)["reason"]) == ("False", "NoData")
    broken = wait_reviewed(cluster, namespace, "broken")
    assert broken["phase"] == "Failed"
    assert condition(broken)["reason"] == "QueryFailed" and "parse error" in condition(broken)["message"]
    show(f"\nno-data: {condition(no_data)['message']}\nbroken: {condition(broken)['message']}")

    table = cluster.kubectl("get", "sloreviews", "-n", namespace).stdout
    header = table.splitlines()[0].split()
    assert header == ["NAME", "OBJECTIVE", "BUDGET", "LEFT", "BURN", "(1H)", "VERDICT", "AGE"], table
    row = next(line for line in table.splitlines() if line.startswith("breaching "))
    assert row.split()[1:5] == ["99.9", "47.29", "20", "Breaching"], table
    show("\n" + table)
    cluster.kubectl("wait", "--for=condition=Ready", "sloreview/exhausted", "-n", namespace, "--timeout=5s")


def test_operator_writes_burn_attribution(cluster: E2ECluster, namespace: str, slo_operator: KopfRunner) -> None:
    labels = {"attribution": {"labels": ["route", "code"]}}
    workloads.apply(
        cluster.kubectl,
        namespace,
        slo_review("attributed", ratio_sli("attribution"), **labels),
        slo_review("calm", ratio_sli("healthy"), **labels),
        # sum(rate(...)) keeps no labels: the review completes and says why there is no breakdown.
        slo_review("summed", ratio_sli("attribution", template=True), **labels),
    )
    status = wait_reviewed(cluster, namespace, "attributed")
    assert status["verdict"] == "Breaching", status
    attribution = status["attribution"]
    assert (attribution["available"], attribution["window"], attribution["labels"]) == (True, "5m", ["route", "code"])
    assert attribution["top"][0]["labels"] == {"route": "/checkout", "code": "503"}
    assert attribution["top"][0]["share"] == pytest.approx(0.8, abs=1e-6)
    assert status["summary"].endswith("route=/checkout, code=503: 80% of errors over 5m"), status["summary"]
    calm = wait_reviewed(cluster, namespace, "calm")
    assert calm["verdict"] == "Healthy" and calm.get("attribution") is None  # no extra query when healthy
    summed = wait_reviewed(cluster, namespace, "summed")
    assert (summed["phase"], summed["verdict"]) == ("Completed", "Breaching")
    assert (summed["attribution"]["available"], summed["attribution"]["reason"]) == (False, "no_data")
    assert "sum them away" in summed["attribution"]["note"]
    show(f"\nattributed: {status['summary']}")


def test_calendar_month_review_counts_from_the_first_of_the_month(
    cluster: E2ECluster, namespace: str, slo_operator: KopfRunner
) -> None:
    """In Berlin, January starts at 23:00 UTC on New Year's Eve: at T_END one hour of the month has passed,
    so the budget spent is the last hour's errors, and the factors scale by January's 31 days."""
    calendar = {"unit": "Month", "timeZone": "Europe/Berlin"}
    workloads.apply(
        cluster.kubectl,
        namespace,
        slo_review("monthly", ratio_sli("breaching"), calendar=calendar),
        slo_review("monthly-calm", ratio_sli("healthy"), calendar=calendar),
    )
    status = wait_reviewed(cluster, namespace, "monthly")
    assert status["phase"] == "Completed", status
    assert status["period"] == {"start": "2024-12-31T23:00:00Z", "end": "2025-01-31T23:00:00Z", "calendar": True}
    spent = expected_ratio(SCENARIOS["breaching"], "1h") / 0.001  # type: ignore[operator]
    assert status["errorBudget"]["consumed"] == pytest.approx(spent, abs=1e-6)
    assert status["verdict"] == "Exhausted"
    page = next(a for a in status["alerts"] if a["name"] == "page-1h-5m")
    assert page["factor"] == pytest.approx(0.02 * 31 * 24)
    assert "of the monthly budget left" in status["summary"]
    calm = wait_reviewed(cluster, namespace, "monthly-calm")
    healthy_spent = expected_ratio(SCENARIOS["healthy"], "1h") / (1 - SCENARIOS["healthy"].objective / 100)  # type: ignore[operator]
    assert calm["errorBudget"]["consumed"] == pytest.approx(healthy_spent, abs=1e-6)
    show(f"\nmonthly: {status['summary']} period {status['period']}")


def incident_report(name: str, start: str, end: str) -> dict[str, Any]:
    return {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": "IncidentReport",
        "metadata": {"name": name},
        "spec": {"start": start, "end": end},
    }


def test_burning_review_links_the_incident_reports_covering_the_burn(
    cluster: E2ECluster, namespace: str, slo_operator: KopfRunner
) -> None:
    workloads.apply(
        cluster.kubectl,
        namespace,
        incident_report("new-year-outage", "2024-12-31T23:30:00Z", "2025-01-01T01:00:00Z"),
        incident_report("last-month", "2024-12-01T10:00:00Z", "2024-12-01T11:00:00Z"),
    )
    for name in ("new-year-outage", "last-month"):
        wait_for(
            lambda name=name: (
                json.loads(cluster.kubectl("get", "incidentreport", name, "-n", namespace, "-o", "json").stdout)
                .get("status", {})
                .get("window")
            ),
            timeout=120,
            what=f"incident report {name} to compute its window",
        )
    workloads.apply(
        cluster.kubectl,
        namespace,
        slo_review("linked", ratio_sli("breaching")),
        slo_review("linked-calm", ratio_sli("healthy")),
    )
    status = wait_reviewed(cluster, namespace, "linked")
    assert status["verdict"] == "Breaching"
    assert [link["name"] for link in status["incidents"]] == ["new-year-outage"], status["incidents"]
    assert wait_reviewed(cluster, namespace, "linked-calm").get("incidents") in (None, [])
    show(f"\nlinked: {status['incidents']}")


def alert_payload(fingerprint: str, namespace: str, slo: str, status: str = "firing") -> dict[str, Any]:
    alert = {
        "status": status,
        "labels": {"alertname": "SLOErrorBudgetBurn", "slo": slo, "namespace": namespace, "severity": "page"},
        "annotations": {"summary": "fast burn"},
        "startsAt": "2025-01-01T00:00:00.000000001Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2025-01-01T02:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="SLOErrorBudgetBurn"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "infragenius",
        "groupLabels": {},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }


def test_webhook_triggers_one_review_per_alert(
    cluster: E2ECluster, namespace: str, slo_operator: KopfRunner, webhook_port: int, review_log: ReviewLog
) -> None:
    url = f"http://127.0.0.1:{webhook_port}/alertmanager"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    workloads.apply(cluster.kubectl, namespace, slo_review("checkout", ratio_sli("breaching")))
    first = wait_reviewed(cluster, namespace, "checkout")
    assert first["verdict"] == "Breaching"
    body = alert_payload("d1e2a3d4b5e6e7f8", namespace, "checkout")

    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}).status_code == 401

    posted = time.perf_counter()
    replies = [httpx.post(url, json=body, headers=auth, timeout=10) for _ in range(5)]
    assert [r.status_code for r in replies] == [200] * 5
    assert [r.json()["results"][0]["action"] for r in replies] == ["triggered"] + ["duplicate"] * 4
    status = wait_for(
        lambda: (
            (s := get_slo(cluster, namespace, "checkout")["status"]).get("phase") == "Completed"
            and ((s.get("lastReview") or {}).get("trigger") or {}).get("fingerprint") == "d1e2a3d4b5e6e7f8"
            and s
        ),
        timeout=60,
        what="the alert-triggered review",
    )
    show(f"\n5 identical posts -> alert-triggered review done in {time.perf_counter() - posted:.2f}s")
    time.sleep(3)  # room for any extra review to show up
    assert review_log.alert_reviews(namespace, "checkout") == 1
    status = get_slo(cluster, namespace, "checkout")["status"]
    trigger = status["lastReview"]["trigger"]
    assert (trigger["alertname"], trigger["startsAt"], trigger["labels"]["severity"]) == (
        "SLOErrorBudgetBurn",
        "2025-01-01T00:00:00.000000001Z",
        "page",
    )
    assert status["lastReview"]["reason"] == "alert SLOErrorBudgetBurn (d1e2a3d4b5e6e7f8)"
    assert [(t["fingerprint"], t["status"]) for t in status["triggers"]] == [("d1e2a3d4b5e6e7f8", "firing")]
    assert status["verdict"] == "Breaching"

    resolved = httpx.post(url, json=alert_payload("d1e2a3d4b5e6e7f8", namespace, "checkout", "resolved"), headers=auth)
    assert resolved.status_code == 200 and resolved.json()["results"][0]["action"] == "recorded"
    wait_for(lambda: len(get_slo(cluster, namespace, "checkout")["status"]["triggers"]) == 2, what="resolved record")
    assert review_log.alert_reviews(namespace, "checkout") == 1

    unknown = httpx.post(url, json=alert_payload("0000000000000001", namespace, "nope"), headers=auth)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_slo"


def test_webhook_keeps_serving_under_a_flood_of_bad_requests(
    cluster: E2ECluster, namespace: str, slo_operator: KopfRunner, webhook_port: int
) -> None:
    base = f"http://127.0.0.1:{webhook_port}"
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    bodies = [b"{", b"[]", b'{"version": "4", "alerts": "x"}', b'{"version": "3", "alerts": []}', b"\xff" * 64]

    async def flood() -> tuple[list[int], float, float]:
        # aiohttp, as Alertmanager would: 50 connections at a time (httpx's async pool is itself the bottleneck).
        connector = aiohttp.TCPConnector(limit=50)
        async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:

            async def one(i: int) -> int:
                async with http.post("/alertmanager", data=bodies[i % len(bodies)], headers=auth) as reply:
                    await reply.read()
                    return reply.status

            started = time.perf_counter()
            statuses = await asyncio.gather(*(one(i) for i in range(1000)))
            elapsed = time.perf_counter() - started
            probe = time.perf_counter()
            async with http.get("/healthz") as health:
                assert health.status == 200
            return list(statuses), elapsed, time.perf_counter() - probe

    statuses, elapsed, health = asyncio.run(flood())
    assert statuses == [400] * 1000
    assert elapsed < 30, elapsed  # generous: about 0.6s on a 2-core machine
    show(f"\n1000 malformed payloads: {elapsed:.2f}s ({1000 / elapsed:.0f}/s); /healthz after: {health * 1000:.1f} ms")

    # Still doing its job: a real alert right after the flood triggers a review.
    workloads.apply(cluster.kubectl, namespace, slo_review("after-flood", ratio_sli("healthy")))
    wait_reviewed(cluster, namespace, "after-flood")
    reply = httpx.post(
        f"{base}/alertmanager", json=alert_payload("f100d000000000aa", namespace, "after-flood"), headers=auth
    )
    assert reply.status_code == 200 and reply.json()["results"][0]["action"] == "triggered"
    wait_for(
        lambda: (
            ((get_slo(cluster, namespace, "after-flood")["status"].get("lastReview") or {}).get("trigger") or {}).get(
                "fingerprint"
            )
            == "f100d000000000aa"
        ),
        timeout=60,
        what="the review after the flood",
    )


def test_api_server_rejects_invalid_slo_specs(cluster: E2ECluster, namespace: str, crds: None) -> None:
    cluster.kubectl("wait", "--for=condition=Established", "crd/sloreviews.infragenius.io", "--timeout=30s")
    good = slo_review("bad", ratio_sli("healthy"))["spec"]
    cases = {
        "should be less than 100": {**good, "objective": 100},
        "should be greater than 0": {**good, "objective": 0},
        "spec.window in body should match": {**good, "window": "30days"},
        "spec.sli.ratio.errorQuery in body should be at least 1 chars long": {
            **good,
            "sli": {"ratio": {"errorQuery": "", "totalQuery": "t"}},
        },
        "set exactly one SLI type: ratio, latency or raw": {
            **good,
            "sli": {**good["sli"], "raw": {"errorRatioQuery": "x[$window]"}},
        },
        "errorRatioQuery must use $window": {**good, "sli": {"raw": {"errorRatioQuery": "x"}}},
        "interval must be at least 1m": {**good, "interval": "30s"},
        "spec.attribution.labels[0] in body should match": {**good, "attribution": {"labels": ["route) or (x"]}},
        "spec.attribution.labels: Too many": {**good, "attribution": {"labels": ["a", "b", "c", "d", "e"]}},
        "Duplicate value": {**good, "attribution": {"labels": ["code", "code"]}},
        "attribution labels starting with __ are reserved": {**good, "attribution": {"labels": ["__name__"]}},
    }
    for message, spec in cases.items():
        obj = {**slo_review("bad", ratio_sli("healthy")), "spec": spec}
        reply = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=False)
        assert reply.returncode != 0, spec
        assert message in reply.stderr, (message, reply.stderr)
