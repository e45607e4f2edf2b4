"""The operator's side of one Analysis: the run lifecycle (``runs``) around the pipeline (``runner``)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from infragenius.analysis import engine, lifecycle
from infragenius.analysis.lifecycle import LifecycleResult
from infragenius.analysis.runner import AnalysisOutcome, analyze
from infragenius.history.store import RunRecord
from infragenius.kube.time import now_rfc3339
from infragenius.llm.anonymize import Anonymizer
from infragenius.llm.explain import ExplainOutcome
from infragenius.models.analysis import AnalysisSpec, AnalysisStatus, LifecycleCounts, LifecycleStatus
from infragenius.models.api import ANALYSIS, Phase, Reason
from infragenius.models.findings import Finding
from infragenius.observability import metrics
from infragenius.observability.logs import HandlerLogger
from infragenius.runs import lifecycle as runs
from infragenius.runs.handled import Carried
from infragenius.runs.lifecycle import Request, Runtime
from infragenius.snapshot import GatherStatus

KIND = ANALYSIS


async def explain(runtime: Runtime, outcome: AnalysisOutcome, spec: AnalysisSpec) -> ExplainOutcome:
    """The optional LLM stage; it cannot fail the analysis."""
    if runtime.explainer is None:
        return runs.NO_MODEL_SERVER
    missing = [r.source for r in outcome.missing]
    options = runtime.llm_options(spec.llm)
    return await runtime.explainer.explain(outcome.snapshot, outcome.findings, missing, options)


def lifecycle_summary(counts: LifecycleCounts) -> str:
    """', 2 new, 1 resolved' for the summary; nothing when nothing changed."""
    parts = [
        f"{value} {label}"
        for value, label in (
            (counts.new, "new"),
            (counts.reopened, "reopened"),
            (counts.flapping, "flapping"),
            (counts.resolved, "resolved"),
            (counts.silenced, "silenced"),
        )
        if value
    ]
    return f" ({', '.join(parts)})" if parts else ""


def completed_status(
    outcome: AnalysisOutcome,
    spec: AnalysisSpec,
    generation: int,
    run_id: str,
    started_at: str,
    previous: Mapping[str, Any],
    explained: ExplainOutcome | None = None,
    followed: LifecycleResult | None = None,
) -> dict[str, Any]:
    """``followed``: this run's lifecycle (None: the findings as they are, e.g. for the CLI)."""
    findings = followed.findings if followed is not None else outcome.findings
    kept = findings[: spec.max_findings]
    counted = [f for f in findings if f.lifecycle is None or not f.lifecycle.silenced]
    summary = engine.summarise(counted, outcome.target, outcome.missing)
    if followed is not None:
        summary += lifecycle_summary(followed.status.counts)
    status = AnalysisStatus(
        phase=Phase.completed,
        observed_generation=generation,
        run_id=run_id,
        started_at=started_at,
        completed_at=now_rfc3339(),
        duration_seconds=outcome.timings.total_seconds,
        summary=summary[:512],
        counts=engine.count(counted),
        total_findings=len(findings),
        truncated=len(findings) > len(kept),
        findings=kept,
        missing=outcome.source_reports(),
        timings=outcome.timings,
        explanation=explained.status if explained else None,
        rerun_token=previous.get("rerunToken"),
        lifecycle=_memory(followed, kept),
    ).model_dump(by_alias=True, mode="json", exclude_none=True)
    if followed is not None:
        _within_budget(status)
    if explained is None or explained.status is None:
        status["explanation"] = None  # merge patch: drop an explanation from an earlier run
    degraded = f"; degraded: {', '.join(r.source for r in outcome.missing)}" if outcome.missing else ""
    conditions = runs.ready(previous, True, Reason.analysis_completed, f"{summary}{degraded}", generation)
    status["conditions"] = runs.explained_conditions(conditions, explained, generation)
    return status


# Status stays well inside what the API server and etcd handle comfortably, however many findings are followed.
STATUS_BUDGET_BYTES = 240 * 1024


def _memory(followed: LifecycleResult | None, kept: list[Finding]) -> LifecycleStatus | None:
    """The lifecycle in status: findings kept in ``findings`` carry their own; ``tracked`` has the rest."""
    if followed is None:
        return None
    return followed.status.model_copy(update={"tracked": lifecycle.status_memory(followed.status.tracked, kept)})


def _within_budget(status: dict[str, Any]) -> None:
    """Drop the least important tracked entries (resolved, then least severe: they are last) until the
    status fits STATUS_BUDGET_BYTES; the count is reported in lifecycle.dropped."""
    memory = status.get("lifecycle") or {}
    tracked = memory.get("tracked") or []
    size = len(json.dumps(status, separators=(",", ":")))
    dropped = 0
    while tracked and size > STATUS_BUDGET_BYTES:
        size -= len(json.dumps(tracked.pop(), separators=(",", ":"))) + 1
        dropped += 1
    if dropped:
        memory["dropped"] = memory.get("dropped", 0) + dropped


def transition_rows(followed: LifecycleResult) -> list[dict[str, Any]]:
    """History's record of each state change (trends: mean time to resolve, recurring problems), and what
    notifications are made of. Names stay (they go to the team); whatever the anonymizer takes for a secret
    (tokens, passwords, keys in cluster text) is redacted, because notifications leave the cluster."""
    scrub = Anonymizer(keep_identifiers=True)
    return [
        {
            "finding_id": t.finding_id,
            "from_state": t.previous.value if t.previous else None,
            "to_state": t.state.value,
            "detector": t.tracked.detector,
            "severity": t.tracked.severity.value,
            "resource": t.tracked.resource,
            "title": scrub.mask(t.tracked.title),
            "first_seen": t.tracked.first_seen,
            "silenced": t.silenced,
            "notifiable": t.notifiable,
        }
        for t in followed.transitions
    ]


def run_record(
    request: Request,
    spec: AnalysisSpec,
    outcome: AnalysisOutcome,
    final: Mapping[str, Any],
    trigger: str,
    followed: LifecycleResult | None = None,
    default_sinks: list[dict[str, Any]] | None = None,
) -> RunRecord:
    """History keeps every finding, not only the ones that fit in status, with its lifecycle."""
    findings = followed.findings if followed is not None else outcome.findings
    return runs.run_record(
        request,
        final,
        trigger,
        outcome.target,
        duration_seconds=outcome.timings.total_seconds,
        gather_seconds=outcome.timings.gather_seconds,
        detect_seconds=outcome.timings.detect_seconds,
        counts=dict(final.get("counts") or {}),
        missing=list(final.get("missing") or []),
        findings=[f.model_dump(mode="json", by_alias=True, exclude_none=True) for f in findings],
        transitions=transition_rows(followed) if followed is not None else [],
        explanation=final.get("explanation"),
        spec=recorded_spec(spec, default_sinks or []),
    )


def recorded_spec(spec: AnalysisSpec, default_sinks: list[dict[str, Any]]) -> dict[str, Any]:
    """The spec as history keeps it; an Analysis naming no sinks gets the operator's default ones
    (INFRAGENIUS_NOTIFY_DEFAULT_SINKS), so its notifications follow the same outbox path."""
    recorded = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not spec.notify.sinks and default_sinks:
        recorded["notify"] = {**recorded.get("notify", {}), "sinks": list(default_sinks)}
    return recorded


async def run(
    body: Mapping[str, Any],
    runtime: Runtime,
    logger: HandlerLogger,
    *,
    retry: int = 0,
    reason: str = "changed",
    cause: str = "spec",
    handled: Carried | None = None,
) -> None:
    """Run one analysis for ``body`` and write its status; raise Kopf errors for retry decisions."""
    # Taken before waiting for a slot: runs queued behind this one may share its reads, and it theirs.
    observed = time.monotonic()
    request = Request.of(body, KIND, runtime.api, handled)
    spec = await request.validated(AnalysisSpec)
    prometheus = await request.allowed_prometheus(runtime, spec.prometheus.url)
    target = None if spec.all_namespaces else spec.target_namespace or request.namespace
    await request.allowed_target(runtime, target)
    begun = runs.begin(request, cause, logger)
    if begun is None:
        return
    settings = runtime.settings
    outcome = await runs.gather_in_slot(
        runtime,
        request,
        begun,
        observed=observed,
        retry=retry,
        activity=f"analysing {target or 'all namespaces'} ({reason})",
        work=lambda gatherer: analyze(
            gatherer,
            spec,
            target,
            prometheus=prometheus,
            prometheus_timeout=settings.prometheus_timeout_seconds,
            logs=runtime.log_options(),
        ),
    )
    metrics.observe_stage(KIND.kind, "gather", outcome.timings.gather_seconds)
    metrics.observe_stage(KIND.kind, "detect", outcome.timings.detect_seconds)
    _record_sources(runtime, outcome)

    explained = None
    if spec.llm.enabled:
        with metrics.timed_stage(KIND.kind, "llm"):
            explained = await explain(runtime, outcome, spec)
    followed = lifecycle.advance(
        lifecycle.previous_tracked(request.status),
        outcome.findings,
        dt.datetime.now(dt.UTC),
        spec.lifecycle,
        spec.silences,
    )
    final = completed_status(
        outcome, spec, request.generation, begun.run_id, begun.started_at, request.status, explained, followed
    )
    failed = [(r.source, r.error or r.status.value) for r in outcome.missing if r.status is GatherStatus.error]
    record = run_record(request, spec, outcome, final, reason, followed, settings.notify_default_sinks)
    # Normal even with critical findings: the analysis itself worked.
    await runs.write_completed(runtime, request, final, record, failed, explained, Reason.analysis_completed)
    metrics.count_findings(outcome.findings)
    metrics.follow_findings(
        request.namespace, request.name, lifecycle.open_by_severity(followed), lifecycle.metric_changes(followed)
    )
    metrics.observe_stage(KIND.kind, "total", outcome.timings.total_seconds)
    timings = outcome.timings
    begun.log.info(
        "analysis %s/%s of %s: %s (gather %.3fs, detect %.3fs)",
        request.namespace,
        request.name,
        outcome.target,
        final["summary"],
        timings.gather_seconds,
        timings.detect_seconds,
    )


def forget(body: Mapping[str, Any]) -> None:
    """A deleted Analysis: its open-findings gauges go."""
    metadata = body.get("metadata") or {}
    metrics.forget_analysis(str(metadata.get("namespace", "")), str(metadata.get("name", "")))


def _record_sources(runtime: Runtime, outcome: AnalysisOutcome) -> None:
    """Prometheus is the one optional source whose outage should show on the dependency gauge."""
    if not runtime.settings.prometheus_url:
        return
    down = any(r.source.startswith("prometheus") and r.status is GatherStatus.error for r in outcome.missing)
    metrics.dependency("prometheus", not down)


def rerun_due(body: Mapping[str, Any], now: dt.datetime | None = None) -> bool:
    """True when ``spec.interval`` has passed since the last completed run."""
    status = body.get("status") or {}
    if status.get("phase") != Phase.completed.value:
        return False
    return runs.interval_elapsed((body.get("spec") or {}).get("interval"), status.get("completedAt"), now)
