"""SLOReview end to end: real Prometheus (backfilled by promtool), the operator, the Alertmanager webhook."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from typing import Any, Iterator

import aiohttp
import httpx
import pytest
import yaml
from kopf.testing import KopfRunner

from infragenius.models.slo import BURN_WINDOWS, LatencySLI, RatioSLI, RawSLI, SLISpec
from infragenius.slo import math as slo_math
from infragenius.slo.review import collect
from infragenius.devcluster import scenarios as workloads
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
from tests.e2e.support import wait_for

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
    data = await collect(prometheus.url, ratio_sli(name), "30d", at=T_END)
    assert not data.failed, data.errors
    assert data.window_error_ratio is not None
    report = slo_math.evaluate(scenario.objective, "30d", data.window_error_ratio, data.error_ratios)
    assert_matches_hand_computed(report, scenario)
    burns = ", ".join(f"{w}={'-' if v is None else f'{v:.6f}'}" for w, v in report.burn_rates.items())
    show(f"\n{name}: verdict={report.verdict.value} consumed={report.consumed:.9f} "
          f"remaining={report.remaining:.9f} burn[{burns}] queries {data.seconds:.3f}s")


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
        data = await collect(prometheus.url, sli, "30d", at=T_END)
        assert not data.failed, data.errors
        assert data.window_error_ratio is not None
        report = slo_math.evaluate(scenario.objective, "30d", data.window_error_ratio, data.error_ratios)
        assert_matches_hand_computed(report, scenario)
    # The latency set: 2 of 1000 slower than 1s (5 in the last 2h); budget 0.005.
    assert report.burn_rates["1h"] == pytest.approx(1.0, abs=1e-6)
    assert report.burn_rates["3d"] == pytest.approx((120 * 5 + 4200 * 2) / 4_320_000 / 0.005, abs=1e-6)


async def test_no_data_and_failing_queries_are_reported(prometheus: LocalPrometheus) -> None:
    show(f"\nprometheus: backfill {prometheus.backfill_seconds:.1f}s, start {prometheus.start_seconds:.1f}s")
    missing = await collect(prometheus.url, ratio_sli("no-such-scenario"), "30d", at=T_END)
    assert missing.no_data and not missing.failed
    assert all(v is None for v in missing.error_ratios.values())

    bad = SLISpec(ratio=RatioSLI(error_query="slo_requests_errors{", total_query="slo_requests_total"))
    broken = await collect(prometheus.url, bad, "30d", at=T_END)
    assert broken.failed and "parse error" in broken.errors["30d"]

    several = SLISpec(raw=RawSLI(error_ratio_query="rate(slo_requests_errors[$window])"))
    ambiguous = await collect(prometheus.url, several, "30d", at=T_END)
    assert ambiguous.failed and "series" in ambiguous.errors["30d"]

    started = time.perf_counter()
    down = await collect(f"http://127.0.0.1:{free_port()}", ratio_sli("healthy"), "30d", at=T_END, timeout=2)
    assert down.failed and "ConnectionError" in next(iter(down.errors.values()))
    assert list(down.errors) == ["30d"]  # stops at the first failure
    assert time.perf_counter() - started < 2


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
        lambda: (s := get_slo(cluster, namespace, name).get("status", {})).get("phase") in ("Completed", "Failed")
        and (s.get("lastReview") or {}).get("completedAt")
        and s,
        timeout=timeout,
        what=f"sloreview {name} to be reviewed",
    )


def condition(status: dict[str, Any], type_: str = "Ready") -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


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
        "ticket-1d-2h", "ticket-3d-6h"
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
        "version": "4", "groupKey": "{}:{alertname=\"SLOErrorBudgetBurn\"}", "truncatedAlerts": 0, "status": status,
        "receiver": "infragenius", "groupLabels": {}, "commonLabels": alert["labels"], "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "alerts": [alert],
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
        lambda: (s := get_slo(cluster, namespace, "checkout")["status"]).get("phase") == "Completed"
        and ((s.get("lastReview") or {}).get("trigger") or {}).get("fingerprint") == "d1e2a3d4b5e6e7f8"
        and s,
        timeout=60,
        what="the alert-triggered review",
    )
    show(f"\n5 identical posts -> alert-triggered review done in {time.perf_counter() - posted:.2f}s")
    time.sleep(3)  # room for any extra review to show up
    assert review_log.alert_reviews(namespace, "checkout") == 1
    status = get_slo(cluster, namespace, "checkout")["status"]
    trigger = status["lastReview"]["trigger"]
    assert (trigger["alertname"], trigger["startsAt"], trigger["labels"]["severity"]) == (
        "SLOErrorBudgetBurn", "2025-01-01T00:00:00.000000001Z", "page"
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
        lambda: ((get_slo(cluster, namespace, "after-flood")["status"].get("lastReview") or {}).get("trigger") or {})
        .get("fingerprint") == "f100d000000000aa",
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
            **good, "sli": {"ratio": {"errorQuery": "", "totalQuery": "t"}}
        },
        "set exactly one SLI type: ratio, latency or raw": {
            **good, "sli": {**good["sli"], "raw": {"errorRatioQuery": "x[$window]"}}
        },
        "errorRatioQuery must use $window": {**good, "sli": {"raw": {"errorRatioQuery": "x"}}},
        "interval must be at least 1m": {**good, "interval": "30s"},
    }
    for message, spec in cases.items():
        obj = {**slo_review("bad", ratio_sli("healthy")), "spec": spec}
        reply = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=False)
        assert reply.returncode != 0, spec
        assert message in reply.stderr, (message, reply.stderr)
