"""Prometheus metrics of the operator, served on ``/metrics`` by :mod:`infragenius.observability.server`.

All metrics live in one registry so tests can read them and several operators in one test
process do not collide with the client library's global registry.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from infragenius.models.findings import Finding

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_resident_memory_bytes, process_cpu_seconds_total, ...

# Stages run from milliseconds (detect) to a minute (a slow model), so the buckets span both.
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

RUNS = Counter(
    "infragenius_runs",
    "Runs of Analysis, SLOReview and IncidentReport resources, by kind and outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "infragenius_stage_duration_seconds",
    "Time spent per stage of a run (gather, detect, llm, persist, status, total).",
    ["kind", "stage"],
    buckets=STAGE_BUCKETS,
    registry=REGISTRY,
)
IN_FLIGHT = Gauge("infragenius_runs_in_flight", "Runs holding a work slot now.", ["kind"], registry=REGISTRY)
QUEUED = Gauge("infragenius_runs_queued", "Runs waiting for a free work slot.", ["kind"], registry=REGISTRY)
FINDINGS = Counter(
    "infragenius_findings",
    "Findings reported by completed analyses, by severity and detector.",
    ["severity", "detector"],
    registry=REGISTRY,
)
OPEN_FINDINGS = Gauge(
    "infragenius_findings_open",
    "Findings open (not resolved, not silenced) after an Analysis's last run, by severity.",
    ["namespace", "analysis", "severity"],
    registry=REGISTRY,
)
FINDING_TRANSITIONS = Counter(
    "infragenius_finding_transitions",
    "Findings becoming New, Reopened, Flapping or Resolved.",
    ["state", "severity"],
    registry=REGISTRY,
)
# From first seen to resolved: minutes to weeks.
RESOLVE_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 259200, 604800, 2592000)
TIME_TO_RESOLVE = Histogram(
    "infragenius_finding_time_to_resolve_seconds",
    "From a finding's first run to the run that no longer saw it.",
    ["severity"],
    buckets=RESOLVE_BUCKETS,
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "infragenius_notifications",
    "Notification attempts by sink type and outcome (sent, retry, failed, suppressed).",
    ["sink_type", "outcome"],
    registry=REGISTRY,
)
NOTIFY_PENDING = Gauge("infragenius_notifications_pending", "Notifications waiting in the outbox.", registry=REGISTRY)
LLM_CALLS = Counter(
    "infragenius_llm_calls",
    "Explanation requests, by outcome (ok, cached, or the failure reason).",
    ["outcome"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "infragenius_llm_tokens", "Tokens sent to and received from the model.", ["direction"], registry=REGISTRY
)
LLM_CACHE = Counter(
    "infragenius_llm_cache_lookups",
    "Explanation cache lookups, by result (hit, miss, error, rejected: not sealed by us or malformed).",
    ["result"],
    registry=REGISTRY,
)
SLO_RULES = Counter(
    "infragenius_slo_rules_writes",
    "Writes of SLOReviews' Prometheus rules, by object kind (PrometheusRule, ConfigMap, none) and RulesReady reason.",
    ["kind", "reason"],
    registry=REGISTRY,
)
GATE_REQUESTS = Counter(
    "infragenius_slo_gate_requests",
    "Rollout gate requests, by HTTP status.",
    ["code"],
    registry=REGISTRY,
)
WEBHOOK_REQUESTS = Counter(
    "infragenius_webhook_requests",
    "Alertmanager webhook requests, by HTTP status code.",
    ["code"],
    registry=REGISTRY,
)
HISTORY_PENDING = Gauge(
    "infragenius_history_pending_runs", "Runs buffered in memory until Postgres accepts them.", registry=REGISTRY
)
DEPENDENCY_UP = Gauge(
    "infragenius_dependency_up",
    "1 when the last call to a dependency (postgres, redis, ollama, prometheus) worked, 0 when it failed.",
    ["dependency"],
    registry=REGISTRY,
)
STARTED = Gauge("infragenius_start_time_seconds", "When this operator process started.", registry=REGISTRY)


def observe_stage(kind: str, stage: str, seconds: float) -> None:
    STAGE_SECONDS.labels(kind=kind, stage=stage).observe(max(0.0, seconds))


@contextmanager
def timed_stage(kind: str, stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        observe_stage(kind, stage, time.perf_counter() - started)


@contextmanager
def in_flight(kind: str) -> Iterator[None]:
    IN_FLIGHT.labels(kind=kind).inc()
    try:
        yield
    finally:
        IN_FLIGHT.labels(kind=kind).dec()


@contextmanager
def queued(kind: str) -> Iterator[None]:
    QUEUED.labels(kind=kind).inc()
    try:
        yield
    finally:
        QUEUED.labels(kind=kind).dec()


def count_findings(findings: Iterable[Finding]) -> None:
    for finding in findings:
        FINDINGS.labels(severity=finding.severity.value, detector=finding.detector).inc()


def follow_findings(
    namespace: str,
    analysis: str,
    open_by_severity: dict[str, int],
    changes: Iterable[tuple[str, str, float | None]],
) -> None:
    """One run's lifecycle: open findings now, and each (state, severity, seconds to resolve) change."""
    for severity in ("critical", "warning", "info"):
        OPEN_FINDINGS.labels(namespace=namespace, analysis=analysis, severity=severity).set(
            open_by_severity.get(severity, 0)
        )
    for state, severity, resolve_seconds in changes:
        FINDING_TRANSITIONS.labels(state=state, severity=severity).inc()
        if resolve_seconds is not None:
            TIME_TO_RESOLVE.labels(severity=severity).observe(resolve_seconds)


def forget_analysis(namespace: str, analysis: str) -> None:
    """A deleted Analysis's gauges go with it."""
    for severity in ("critical", "warning", "info"):
        with contextlib.suppress(KeyError):
            OPEN_FINDINGS.remove(namespace, analysis, severity)


def dependency(name: str, up: bool) -> None:
    DEPENDENCY_UP.labels(dependency=name).set(1 if up else 0)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """The current value of one sample (0 when absent); for tests and benchmarks."""
    value = REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if value is None else value
