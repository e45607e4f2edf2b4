"""The run lifecycle shared by every kind: Degraded reasons, run ids, when a run is due."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from kubernetes import client

from infragenius.gather.prometheus import PrometheusTarget
from infragenius.llm.base import InvalidModelOutput, ModelTimeout, ModelUnavailable
from infragenius.llm.explain import ExplainOutcome
from infragenius.models.api import MODEL_SERVER_REASONS, ConditionType, Reason
from infragenius.runs import lifecycle as runs
from infragenius.settings import Settings


@pytest.fixture
def runtime() -> runs.Runtime:
    return runs.Runtime(settings=Settings(), api=client.ApiClient(), slots=asyncio.Semaphore(1))


def _degraded(conditions: list[dict]) -> dict:
    return next(c for c in conditions if c["type"] == ConditionType.degraded)


def test_a_model_timeout_degrades_the_run(runtime: runs.Runtime) -> None:
    # The reason the LLM stage produces is the one the Degraded check reads: before the shared Enum, a
    # timeout said "Timeout" while the check looked for "ModelTimeout", so a timeout never degraded a run.
    timed_out = ExplainOutcome(False, ModelTimeout.reason, "no reply from tiny within 0.001s")
    problems = runs.dependency_problems(runtime, [], timed_out)
    assert problems == [(Reason.model_timeout, "model server: no reply from tiny within 0.001s")]
    degraded = _degraded(runs.set_degraded([], problems, 3))
    assert (degraded["status"], degraded["reason"], degraded["observedGeneration"]) == ("True", "ModelTimeout", 3)


def test_only_model_server_failures_degrade(runtime: runs.Runtime) -> None:
    unavailable = ExplainOutcome(False, ModelUnavailable.reason, "connection refused")
    assert runs.dependency_problems(runtime, [], unavailable)[0][0] is Reason.model_unavailable
    # A bad reply is the model's answer, not a dependency outage.
    invalid = ExplainOutcome(False, InvalidModelOutput.reason, "not JSON")
    assert runs.dependency_problems(runtime, [], invalid) == []
    assert {ModelTimeout.reason, ModelUnavailable.reason} == MODEL_SERVER_REASONS


def test_degraded_names_every_failed_dependency(runtime: runs.Runtime) -> None:
    failed = [("prometheus", "connection refused"), ("Pod", "500 Internal Server Error")]
    timed_out = ExplainOutcome(False, ModelTimeout.reason, "slow")
    problems = runs.dependency_problems(runtime, failed, timed_out)
    assert [reason for reason, _ in problems] == [
        Reason.prometheus_unavailable,
        Reason.source_unavailable,
        Reason.model_timeout,
    ]
    degraded = _degraded(runs.set_degraded([], problems, 1))
    assert degraded["reason"] == "MultipleDependencies"
    assert "Prometheus: connection refused" in degraded["message"] and "model server: slow" in degraded["message"]
    recovered = _degraded(runs.set_degraded([degraded], [], 2))
    assert (recovered["status"], recovered["reason"]) == ("False", "AllDependenciesAvailable")


def test_explained_condition_follows_the_llm_outcome() -> None:
    timed_out = ExplainOutcome(False, ModelTimeout.reason, "slow")
    conditions = runs.explained_conditions([], timed_out, 4)
    assert [(c["type"], c["status"], c["reason"]) for c in conditions] == [("Explained", "False", "ModelTimeout")]
    assert runs.explained_conditions(conditions, None, 5) == []  # the run did not ask for one


def test_run_ids_are_stable_per_request() -> None:
    body = {"metadata": {"uid": "u1", "generation": 2}}
    assert runs.run_id_for(body, "spec") == runs.run_id_for(body, "spec")
    assert runs.run_id_for(body, "spec") != runs.run_id_for(body, "rerun:1")
    assert runs.run_id_for(body, "spec") != runs.run_id_for({"metadata": {"uid": "u1", "generation": 3}}, "spec")


def test_interval_elapsed() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert runs.interval_elapsed("5m", "2026-01-01T11:55:00Z", now)
    assert not runs.interval_elapsed("5m", "2026-01-01T11:56:00Z", now)
    assert not runs.interval_elapsed(None, "2026-01-01T11:00:00Z", now)
    assert not runs.interval_elapsed("5m", None, now)
    assert not runs.interval_elapsed("5m", "not a time", now)
    assert not runs.interval_elapsed("five minutes", "2026-01-01T11:00:00Z", now)


def test_resume_decisions() -> None:
    done = {"phase": "Completed", "observedGeneration": 1}
    assert runs.never_finished({"metadata": {"generation": 1}, "status": {"phase": "Running"}})
    assert not runs.needs_run_on_resume({"metadata": {"generation": 1}, "status": done})
    assert runs.needs_run_on_resume({"metadata": {"generation": 2}, "status": done})
    failed = {"phase": "Failed", "observedGeneration": 1}
    assert not runs.needs_run_on_resume({"metadata": {"generation": 2}, "status": failed})


def _runtime(**settings: object) -> runs.Runtime:
    return runs.Runtime(settings=Settings(**settings), api=client.ApiClient(), slots=asyncio.Semaphore(1))


def test_a_spec_may_name_only_an_allowed_prometheus() -> None:
    runtime = _runtime(prometheus_url="http://prom.monitoring:9090", prometheus_allowed_urls=["https://thanos:10902/"])
    assert runtime.prometheus_for(None) == PrometheusTarget("http://prom.monitoring:9090", True)
    assert runtime.prometheus_for("http://prom.monitoring:9090/").url == "http://prom.monitoring:9090/"
    assert runtime.prometheus_for("https://thanos:10902").url == "https://thanos:10902"
    for hostile in (
        "http://169.254.169.254/latest/meta-data/",
        "http://prom.monitoring:9090/api/v1/admin/tsdb/snapshot#",
        "http://prom.monitoring:9090.evil.example",
        "http://kubernetes.default.svc/api/v1/secrets",
    ):
        with pytest.raises(runs.PrometheusNotAllowed, match="INFRAGENIUS_PROMETHEUS_ALLOWED_URLS"):
            runtime.prometheus_for(hostile)


def test_without_any_configured_prometheus_every_spec_url_is_refused() -> None:
    runtime = _runtime()
    assert runtime.prometheus_for(None) is None
    with pytest.raises(runs.PrometheusNotAllowed):
        runtime.prometheus_for("http://prometheus:9090")


def test_prometheus_tls_is_verified_unless_configured_otherwise() -> None:
    assert _runtime(prometheus_url="https://p").prometheus_for(None) == PrometheusTarget("https://p", True)
    with_ca = _runtime(prometheus_url="https://p", prometheus_ca_file="/etc/ca.pem").prometheus_for(None)
    assert with_ca == PrometheusTarget("https://p", "/etc/ca.pem")
    insecure = _runtime(prometheus_url="https://p", prometheus_tls_verify=False).prometheus_for(None)
    assert insecure == PrometheusTarget("https://p", False)


def test_the_operator_can_force_masking_whatever_a_resource_asks() -> None:
    from infragenius.models.common import LLMSpec

    unmasked = LLMSpec(enabled=True, anonymize=False)
    assert _runtime().llm_options(unmasked).anonymize is True  # forced by default
    assert _runtime(llm_force_anonymize=False).llm_options(unmasked).anonymize is False
    assert _runtime(llm_force_anonymize=False).llm_options(LLMSpec(enabled=True)).anonymize is True
