"""The operator's side of one IncidentReport: the run lifecycle (``runs``) around gather and report."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infragenius.gather.kube import (
    ENDPOINTS,
    KubeGatherer,
    events_in_scope,
    require_some_answer,
)
from infragenius.gather.prometheus import PrometheusTarget
from infragenius.history.store import RunRecord
from infragenius.incident import anomalies, postmortem
from infragenius.incident import causes as causes_mod
from infragenius.incident import timeline as timeline_mod
from infragenius.incident.timeline import AlertInfo, Entry
from infragenius.kube.time import now_rfc3339, parse_time, rfc3339
from infragenius.models.api import INCIDENT_REPORT, ConditionType, Phase, Reason
from infragenius.models.common import ConditionStatus, parse_duration
from infragenius.models.incident import (
    MAX_CAUSES,
    MAX_POSTMORTEM_CHARS,
    MAX_TIMELINE,
    IncidentReportSpec,
    IncidentReportStatus,
)
from infragenius.observability.logs import HandlerLogger
from infragenius.runs import lifecycle as runs
from infragenius.runs.conditions import ready, set_condition
from infragenius.runs.handled import Carried
from infragenius.runs.lifecycle import Request, Runtime
from infragenius.snapshot import GatherStatus, Snapshot

KIND = INCIDENT_REPORT
# What a timeline reads; ControllerRevisions give StatefulSet and DaemonSet revisions.
KINDS = (
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "ControllerRevision",
    "Node",
    "HorizontalPodAutoscaler",
    "ResourceQuota",
    *timeline_mod.DEPENDENCY_KINDS,  # dependency links and changes (incident/dependencies.py)
)
SCALING_EVENTS = "reason=ScalingReplicaSet"
# Importance when the timeline must be cut: changes and node conditions are kept first.
_KEEP_ORDER = {"Rollout": 0, "Change": 0, "Alert": 0, "NodeCondition": 1, "Scaling": 2}


@dataclass(frozen=True)
class IncidentOutcome:
    target: str
    window: tuple[dt.datetime, dt.datetime]
    timeline: timeline_mod.Timeline
    causes: list[causes_mod.Cause]
    impact: postmortem.ImpactFigures
    postmortem: str
    summary: str
    missing: list[str]
    gather_seconds: float
    analyse_seconds: float
    total_seconds: float


def window_for(spec: IncidentReportSpec, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    if spec.since:
        return now - parse_duration(spec.since), now
    start, end = parse_time(spec.start), parse_time(spec.end)
    assert start is not None and end is not None  # the spec validator guarantees both
    return start, end


def alert_info(spec: IncidentReportSpec) -> AlertInfo | None:
    if spec.alert is None:
        return None
    return AlertInfo(
        name=spec.alert.name, starts_at=parse_time(spec.alert.starts_at), fingerprint=spec.alert.fingerprint
    )


def report(
    snapshot: Snapshot,
    spec: IncidentReportSpec,
    window: tuple[dt.datetime, dt.datetime],
    *,
    title: str,
    extra_events: list = (),  # type: ignore[assignment]
    metric_entries: list[Entry] = (),  # type: ignore[assignment]
    error_rate: float | None = None,
) -> tuple[timeline_mod.Timeline, list[causes_mod.Cause], postmortem.ImpactFigures, str, str]:
    """The pure part: timeline, causes, impact, summary and the full postmortem."""
    built = timeline_mod.build(
        snapshot, window[0], window[1], alert=alert_info(spec), extra_events=extra_events, extra_entries=metric_entries
    )
    ranked = causes_mod.rank(built, limit=MAX_CAUSES)
    figures = postmortem.impact(snapshot, built, error_rate)
    summary = postmortem.summarise(built, ranked, figures)
    markdown = postmortem.render(
        title=title,
        severity=spec.severity.value,
        namespace=snapshot.namespace,
        timeline=built,
        causes=ranked,
        figures=figures,
        summary=summary,
        alert=spec.alert.name if spec.alert else None,
    )
    return built, ranked, figures, summary, markdown


async def _metrics(
    spec: IncidentReportSpec,
    window: tuple[dt.datetime, dt.datetime],
    target: str,
    prometheus: PrometheusTarget | None,
    timeout: float,
) -> anomalies.MetricsOutcome:
    if not spec.prometheus.enabled or not spec.prometheus.queries:
        return anomalies.MetricsOutcome([], None, [], 0.0)
    if prometheus is None:
        return anomalies.MetricsOutcome(
            [], None, ["prometheus: not configured (spec.prometheus.url, INFRAGENIUS_PROMETHEUS_URL)"], 0.0
        )
    return await asyncio.to_thread(
        anomalies.gather, prometheus, spec.prometheus.queries, window[0], window[1], target, timeout
    )


async def investigate(
    gatherer: KubeGatherer,
    spec: IncidentReportSpec,
    target: str,
    title: str,
    *,
    prometheus: PrometheusTarget | None = None,
    prometheus_timeout: float = 10.0,
) -> IncidentOutcome:
    started = time.perf_counter()
    await gatherer.require_namespace(target)
    window = window_for(spec, dt.datetime.now(dt.UTC))
    (objects, events, reports), (scaling_events, scaling_report), measured = await asyncio.gather(
        gatherer.gather([k for k in KINDS if k in ENDPOINTS], target, spec.label_selector),
        gatherer.events(target, SCALING_EVENTS, "scaling-events"),
        _metrics(spec, window, target, prometheus, prometheus_timeout),
    )
    require_some_answer(reports)
    reports.append(scaling_report)
    if spec.label_selector:
        events = events_in_scope(events, objects)
        scaling_events = events_in_scope(scaling_events, objects)
    snapshot = Snapshot.build(namespace=target, objects=objects, events=events, results=reports)
    gathered = time.perf_counter()
    built, ranked, figures, summary, markdown = await asyncio.to_thread(
        report,
        snapshot,
        spec,
        window,
        title=title,
        extra_events=scaling_events,
        metric_entries=measured.entries,
        error_rate=measured.error_rate,
    )
    finished = time.perf_counter()
    return IncidentOutcome(
        target=target,
        window=window,
        timeline=built,
        causes=ranked,
        impact=figures,
        postmortem=markdown,
        summary=summary,
        missing=[f"{r.source}: {r.error}"[:256] for r in reports if r.status is GatherStatus.error] + measured.errors,
        gather_seconds=round(gathered - started, 4),
        analyse_seconds=round(finished - gathered, 4),
        total_seconds=round(finished - started, 4),
    )


def bounded_timeline(entries: list[Entry], limit: int = MAX_TIMELINE) -> list[Entry]:
    """At most ``limit`` entries, still sorted by time; changes and node conditions are kept first."""
    if len(entries) <= limit:
        return entries
    order = sorted(
        range(len(entries)), key=lambda i: (_KEEP_ORDER.get(entries[i].kind, 3), entries[i].severity == "info", i)
    )
    kept = sorted(order[:limit])
    return [entries[i] for i in kept]


def completed_status(
    outcome: IncidentOutcome, generation: int, run_id: str, started_at: str, previous: Mapping[str, Any]
) -> dict[str, Any]:
    entries = bounded_timeline(outcome.timeline.entries)
    status = IncidentReportStatus.model_validate(
        {
            "phase": Phase.completed.value,
            "observedGeneration": generation,
            "runId": run_id,
            "startedAt": started_at,
            "completedAt": now_rfc3339(),
            "summary": outcome.summary,
            "topCause": outcome.causes[0].title[:256] if outcome.causes else None,
            "window": {"start": rfc3339(outcome.window[0]), "end": rfc3339(outcome.window[1])},
            "timeline": [e.to_status() for e in entries],
            "totalTimelineEntries": len(outcome.timeline.entries),
            "timelineTruncated": len(entries) < len(outcome.timeline.entries),
            "suspectedCauses": [c.to_status() for c in outcome.causes],
            "impact": outcome.impact.to_status(),
            "postmortem": postmortem.bounded(outcome.postmortem, MAX_POSTMORTEM_CHARS),
            "missing": outcome.missing,
            "timings": {
                "gatherSeconds": outcome.gather_seconds,
                "analyseSeconds": outcome.analyse_seconds,
                "totalSeconds": outcome.total_seconds,
            },
            "rerunToken": previous.get("rerunToken"),
        }
    ).model_dump(by_alias=True, mode="json", exclude_none=True)
    status.setdefault("topCause", None)  # merge patch: clear a cause from an earlier run
    degraded = f"; degraded: {', '.join(outcome.missing)}" if outcome.missing else ""
    message = f"{outcome.summary}{degraded}"
    status["conditions"] = ready(previous, True, Reason.report_completed, message, generation)
    return status


def run_record(
    request: Request, spec: IncidentReportSpec, outcome: IncidentOutcome, final: Mapping[str, Any], trigger: str
) -> RunRecord:
    """History keeps the whole report: every timeline entry and the full postmortem."""
    return runs.run_record(
        request,
        final,
        trigger,
        outcome.target,
        duration_seconds=outcome.total_seconds,
        gather_seconds=outcome.gather_seconds,
        detect_seconds=outcome.analyse_seconds,
        counts={"timeline": len(outcome.timeline.entries), "causes": len(outcome.causes)},
        missing=[{"source": m} for m in outcome.missing],
        findings=[],
        spec=spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        metadata={
            "window": final.get("window"),
            "timeline": [e.to_status() for e in outcome.timeline.entries],
            "suspectedCauses": [c.to_status() for c in outcome.causes],
            "impact": outcome.impact.to_status(),
            "postmortem": outcome.postmortem,
        },
    )


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
    """Build one incident report for ``body`` and write its status; raise Kopf errors for retry decisions."""
    observed = time.monotonic()  # before the slot wait, so queued runs share reads (as analyses do)
    request = Request.of(body, KIND, runtime.api, handled)
    spec = await request.validated(IncidentReportSpec)
    prometheus = await request.allowed_prometheus(runtime, spec.prometheus.url)
    target = spec.target_namespace or request.namespace
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
        activity=f"investigating {target} ({reason})",
        work=lambda gatherer: investigate(
            gatherer,
            spec,
            target,
            title=f"{request.name} in {target}",
            prometheus=prometheus,
            prometheus_timeout=settings.prometheus_timeout_seconds,
        ),
    )

    final = completed_status(outcome, request.generation, begun.run_id, begun.started_at, request.status)
    if spec.llm.enabled:
        # Not built yet: say so rather than ignore the request. The rule-based draft is complete without it.
        final["conditions"] = set_condition(
            final["conditions"],
            ConditionType.explained,
            ConditionStatus.false,
            Reason.not_supported,
            "LLM polishing of IncidentReports is not implemented yet; the postmortem is the rule-based draft",
            request.generation,
        )
    # Entries of `missing` read "<source>: <error>" (kinds and "prometheus <query>").
    failed = [(m.split(": ", 1)[0], m.split(": ", 1)[1] if ": " in m else "unavailable") for m in outcome.missing]
    record = run_record(request, spec, outcome, final, reason)
    await runs.write_completed(runtime, request, final, record, failed, None, "IncidentReported")
    begun.log.info("incident report %s/%s of %s: %s", request.namespace, request.name, target, final["summary"])
