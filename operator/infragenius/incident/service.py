"""Operator-side handling of one IncidentReport: validate, gather, build the report, write status."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

import kopf
from pydantic import ValidationError

from infragenius.analysis.runner import ApiUnavailable, TargetNamespaceMissing, _events_in_scope, require_namespace
from infragenius.analysis.service import (
    finished_before,
    write_completed,
    work_slot,
    Runtime,
    StatusWriter,
    _time,
    fail_target_missing,
    mark_running,
    reject_invalid_spec,
    retry_later,
    run_id_for,
)
from infragenius.conditions import now_rfc3339, set_condition
from infragenius.gather.kube import ENDPOINTS, KubeGatherer
from infragenius.history.store import RunRecord
from infragenius.incident import causes as causes_mod
from infragenius.incident import metrics as metrics_mod
from infragenius.incident import postmortem, timeline as timeline_mod
from infragenius.incident.timeline import AlertInfo, Entry, parse_time, rfc3339
from infragenius.models.common import ConditionStatus, parse_duration
from infragenius.observability.logs import with_run_id
from infragenius.models.incident import (
    MAX_CAUSES,
    MAX_POSTMORTEM_CHARS,
    MAX_TIMELINE,
    PLURAL,
    RERUN_ANNOTATION,
    IncidentPhase,
    IncidentReportSpec,
    IncidentReportStatus,
)
from infragenius.snapshot import GatherStatus, Snapshot

KIND = "IncidentReport"

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
)
SCALING_EVENTS = "reason=ScalingReplicaSet"
# Importance when the timeline must be cut: changes and node conditions are kept first.
_KEEP_ORDER = {"Rollout": 0, "Alert": 0, "NodeCondition": 1, "Scaling": 2}


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
    return AlertInfo(name=spec.alert.name, starts_at=parse_time(spec.alert.starts_at), fingerprint=spec.alert.fingerprint)


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
    spec: IncidentReportSpec, window: tuple[dt.datetime, dt.datetime], target: str, default_url: str | None, timeout: float
) -> metrics_mod.MetricsOutcome:
    url = spec.prometheus.url or default_url
    if not spec.prometheus.enabled or not spec.prometheus.queries:
        return metrics_mod.MetricsOutcome([], None, [], 0.0)
    if not url:
        return metrics_mod.MetricsOutcome([], None, ["prometheus: not configured (spec.prometheus.url, INFRAGENIUS_PROMETHEUS_URL)"], 0.0)
    return await asyncio.to_thread(metrics_mod.gather, url, spec.prometheus.queries, window[0], window[1], target, timeout)


async def investigate(
    gatherer: KubeGatherer,
    spec: IncidentReportSpec,
    target: str,
    title: str,
    *,
    prometheus_url: str | None = None,
    prometheus_timeout: float = 10.0,
) -> IncidentOutcome:
    started = time.perf_counter()
    await require_namespace(gatherer, target)
    window = window_for(spec, dt.datetime.now(dt.timezone.utc))
    (objects, events, reports), (scaling_events, scaling_report), measured = await asyncio.gather(
        gatherer.gather([k for k in KINDS if k in ENDPOINTS], target, spec.label_selector),
        gatherer.events(target, SCALING_EVENTS, "scaling-events"),
        _metrics(spec, window, target, prometheus_url, prometheus_timeout),
    )
    if reports and all(r.status is GatherStatus.error for r in reports):
        raise ApiUnavailable(f"every LIST call failed, e.g. {reports[0].error}")
    reports.append(scaling_report)
    if spec.label_selector:
        events = _events_in_scope(events, objects)
        scaling_events = _events_in_scope(scaling_events, objects)
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
    order = sorted(range(len(entries)), key=lambda i: (_KEEP_ORDER.get(entries[i].kind, 3), entries[i].severity == "info", i))
    kept = sorted(order[:limit])
    return [entries[i] for i in kept]


def _ready(status: Mapping[str, Any], ok: ConditionStatus, reason: str, message: str, generation: int) -> list:
    return set_condition(status.get("conditions"), "Ready", ok, reason, message, generation)


def completed_status(
    outcome: IncidentOutcome, generation: int, run_id: str, started_at: str, previous: Mapping[str, Any]
) -> dict[str, Any]:
    entries = bounded_timeline(outcome.timeline.entries)
    status = IncidentReportStatus.model_validate(
        {
            "phase": IncidentPhase.completed.value,
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
    status["conditions"] = _ready(previous, ConditionStatus.true, "ReportCompleted", f"{outcome.summary}{degraded}", generation)
    return status


def run_record(body: Mapping[str, Any], spec: IncidentReportSpec, outcome: IncidentOutcome, final: Mapping[str, Any], trigger: str) -> RunRecord:
    """History keeps the whole report: every timeline entry and the full postmortem."""
    meta = body["metadata"]
    started = _time(final.get("startedAt"))
    return RunRecord(
        kind="IncidentReport",
        namespace=meta["namespace"],
        name=meta["name"],
        resource_uid=meta["uid"],
        generation=int(meta.get("generation") or 1),
        run_id=final["runId"],
        trigger=trigger,
        requested_at=started or dt.datetime.now(dt.timezone.utc),
        target_namespace=outcome.target,
        phase=final["phase"],
        started_at=started,
        completed_at=_time(final.get("completedAt")),
        duration_seconds=outcome.total_seconds,
        gather_seconds=outcome.gather_seconds,
        detect_seconds=outcome.analyse_seconds,
        counts={"timeline": len(outcome.timeline.entries), "causes": len(outcome.causes)},
        summary=final.get("summary", ""),
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
    body: Mapping[str, Any], runtime: Runtime, logger: logging.Logger, *, retry: int = 0, reason: str = "changed", cause: str = "spec"
) -> None:
    observed = time.monotonic()  # before the slot wait, so queued runs share reads (see analysis.service)
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], int(meta.get("generation") or 1)
    status: dict[str, Any] = dict(body.get("status") or {})
    writer = StatusWriter(runtime.api, namespace, name, plural=PLURAL)
    rerun_token = (meta.get("annotations") or {}).get(RERUN_ANNOTATION)
    try:
        spec = IncidentReportSpec.model_validate(body.get("spec") or {})
    except ValidationError as err:
        await reject_invalid_spec(body, writer, status, generation, err)

    target = spec.target_namespace or namespace
    run_id = run_id_for(body, cause)
    if finished_before(status, run_id, generation, KIND, logger):
        return
    logger = with_run_id(logger, run_id)
    started_at = now_rfc3339()
    async with work_slot(runtime, KIND):
        await mark_running(writer, status, generation, run_id, started_at, rerun_token, f"investigating {target} ({reason})")
        try:
            outcome = await investigate(
                runtime.gatherer(observed),
                spec,
                target,
                title=f"{name} in {target}",
                prometheus_url=runtime.settings.prometheus_url,
                prometheus_timeout=runtime.settings.prometheus_timeout_seconds,
            )
        except TargetNamespaceMissing as err:
            await fail_target_missing(body, writer, status, generation, err)
        except ApiUnavailable as err:
            await retry_later(writer, status, generation, retry, err)

    final = completed_status(outcome, generation, run_id, started_at, status)
    if spec.llm.enabled:
        # Not built yet: say so rather than ignore the request. The rule-based draft is complete without it.
        final["conditions"] = set_condition(
            final["conditions"], "Explained", ConditionStatus.false, "NotSupported",
            "LLM polishing of IncidentReports is not implemented yet; the postmortem is the rule-based draft", generation,
        )
    # Entries of `missing` read "<source>: <error>" (kinds and "prometheus <query>").
    failed = [tuple(m.split(": ", 1)) if ": " in m else (m, "unavailable") for m in outcome.missing]
    await write_completed(runtime, writer, KIND, final, run_record(body, spec, outcome, final, reason), failed, None, generation)
    logger.info("incident report %s/%s of %s: %s", namespace, name, target, final["summary"])
    kopf.event(body, type="Normal", reason="IncidentReported", message=final["summary"][:1024])


def needs_run_on_resume(body: Mapping[str, Any]) -> bool:
    status = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    if status.get("phase") in (None, IncidentPhase.pending.value, IncidentPhase.running.value):
        return True
    return status.get("observedGeneration") != generation and status.get("phase") != IncidentPhase.failed.value


def rerun_requested(body: Mapping[str, Any]) -> bool:
    token = ((body.get("metadata") or {}).get("annotations") or {}).get(RERUN_ANNOTATION)
    return bool(token) and token != (body.get("status") or {}).get("rerunToken")
