"""Operator-side handling of one Analysis: validate, mark Running, run, write status, post events."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping, NoReturn, Sequence

import kopf
from kubernetes import client
from pydantic import ValidationError

from infragenius.analysis.runner import AnalysisOutcome, ApiUnavailable, TargetNamespaceMissing, analyze
from infragenius import kubeapi
from infragenius.analysis import engine
from infragenius.conditions import now_rfc3339, set_condition
from infragenius.gather.kube import KubeGatherer
from infragenius.snapshot import GatherStatus
from infragenius.history.recorder import HistoryRecorder
from infragenius.history.store import RunRecord
from infragenius.llm.explain import ExplainOutcome, Explainer, LLMOptions
from infragenius.models.analysis import GROUP, PLURAL, VERSION, AnalysisSpec, AnalysisStatus, Phase
from infragenius.models.common import ConditionStatus, parse_duration
from infragenius.observability import metrics
from infragenius.observability.logs import with_run_id
from infragenius.settings import Settings


KIND = "Analysis"
HISTORY_WAIT_SECONDS = 5.0


@dataclass
class Runtime:
    """Clients and limits shared by all handlers; created at start-up and kept in Kopf's memo."""

    settings: Settings
    api: client.ApiClient
    slots: asyncio.Semaphore
    explainer: Explainer | None = None
    history: HistoryRecorder | None = None

    def gatherer(self, not_before: float | None = None) -> KubeGatherer:
        """``not_before``: when the request was seen; reads other runs started since then are shared."""
        return KubeGatherer(
            self.api,
            event_cap=self.settings.event_cap,
            concurrency=self.settings.list_concurrency,
            not_before=not_before,
        )


class StatusWriter:
    """Merge-patches the status subresource (lists such as findings are replaced whole).

    kubeapi retries conflicts, throttling, server errors and broken connections for a few
    seconds; what still fails becomes a TemporaryError, and Kopf runs the handler again in 5 s.
    """

    def __init__(self, api: client.ApiClient, namespace: str, name: str, plural: str = PLURAL) -> None:
        self.api, self.namespace, self.name, self.plural = api, namespace, name, plural

    def _patch_sync(self, status: Mapping[str, Any]) -> None:
        kubeapi.request(
            self.api,
            "PATCH",
            f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{self.plural}/{self.name}/status",
            headers={"Content-Type": "application/merge-patch+json"},
            body={"status": dict(status)},
            timeout=(5, 30),
        )

    async def patch(self, status: Mapping[str, Any]) -> None:
        try:
            await asyncio.to_thread(self._patch_sync, status)
        except client.ApiException as err:
            if err.status == 404:
                return  # deleted while running: nothing to report to
            raise kopf.TemporaryError(f"could not write status: {err.status} {err.reason}", delay=5) from err
        except kubeapi.TRANSPORT_ERRORS as err:
            raise kopf.TemporaryError(f"could not write status: {type(err).__name__}: {err}"[:300], delay=5) from err


_KINDS = {"analyses": "Analysis", "sloreviews": "SLOReview", "incidentreports": "IncidentReport"}


def _kind(writer: StatusWriter) -> str:
    return _KINDS.get(writer.plural, writer.plural)


def _ready(status: Mapping[str, Any], ok: ConditionStatus, reason: str, message: str, generation: int) -> list:
    return set_condition(status.get("conditions"), "Ready", ok, reason, message, generation)


async def mark_running(
    writer: StatusWriter,
    status: dict[str, Any],
    generation: int,
    run_id: str,
    started_at: str,
    rerun_token: str | None,
    message: str,
) -> None:
    """Phase Running with Ready=False; records the rerun token so the annotation is handled once."""
    await writer.patch(
        {
            "phase": Phase.running.value,
            "runId": run_id,
            "startedAt": started_at,
            "rerunToken": rerun_token,
            "conditions": _ready(status, ConditionStatus.false, "Running", message, generation),
        }
    )
    status["rerunToken"] = rerun_token


async def fail_target_missing(
    body: Mapping[str, Any], writer: StatusWriter, status: Mapping[str, Any], generation: int, err: Exception
) -> NoReturn:
    """Phase Failed, permanently: re-running cannot help until the namespace exists (a spec change or rerun will)."""
    metrics.RUNS.labels(kind=_kind(writer), outcome="target_missing").inc()
    await writer.patch(
        {
            "phase": Phase.failed.value,
            "observedGeneration": generation,
            "completedAt": now_rfc3339(),
            "summary": str(err),
            "conditions": _ready(status, ConditionStatus.false, "TargetNotFound", str(err), generation),
        }
    )
    kopf.warn(body, reason="TargetNotFound", message=str(err))
    raise kopf.PermanentError(str(err)) from err


async def retry_later(
    writer: StatusWriter, status: Mapping[str, Any], generation: int, retry: int, err: Exception
) -> NoReturn:
    """The API could not answer: Pending, and Kopf retries with exponential backoff (5 s to 5 min)."""
    metrics.RUNS.labels(kind=_kind(writer), outcome="retrying").inc()
    delay = min(300, 5 * 2 ** min(retry, 6))
    await writer.patch(
        {
            "phase": Phase.pending.value,
            "conditions": _ready(status, ConditionStatus.false, "Retrying", f"{err}; retrying in {delay}s", generation),
        }
    )
    raise kopf.TemporaryError(str(err), delay=delay) from err


async def reject_invalid_spec(
    body: Mapping[str, Any], writer: StatusWriter, status: Mapping[str, Any], generation: int, err: ValidationError
) -> NoReturn:
    """Phase Failed with every validation error in one message; permanent, so Kopf does not retry."""
    metrics.RUNS.labels(kind=_kind(writer), outcome="invalid").inc()
    message = "invalid spec: " + "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in err.errors()
    )
    await writer.patch(
        {
            "phase": Phase.failed.value,
            "observedGeneration": generation,
            "summary": message[:512],
            "conditions": _ready(status, ConditionStatus.false, "InvalidSpec", message, generation),
        }
    )
    kopf.warn(body, reason="InvalidSpec", message=message[:1024])
    raise kopf.PermanentError(message)


async def explain(runtime: Runtime, outcome: AnalysisOutcome, spec: AnalysisSpec) -> ExplainOutcome:
    """The optional LLM stage; it cannot fail the analysis."""
    if runtime.explainer is None:
        return ExplainOutcome(False, "ModelUnavailable", "no model server configured (INFRAGENIUS_OLLAMA_URL)")
    settings = runtime.settings
    options = LLMOptions(
        model=spec.llm.model or settings.llm_model,
        num_ctx=settings.llm_num_ctx,
        max_reply_tokens=settings.llm_max_reply_tokens,
        timeout=settings.llm_timeout_seconds,
        anonymize=spec.llm.anonymize,
    )
    return await runtime.explainer.explain(
        outcome.snapshot, outcome.findings, [r.source for r in outcome.missing], options
    )


def completed_status(
    outcome: AnalysisOutcome,
    spec: AnalysisSpec,
    generation: int,
    run_id: str,
    started_at: str,
    previous: Mapping[str, Any],
    explained: ExplainOutcome | None = None,
) -> dict[str, Any]:
    kept = outcome.findings[: spec.max_findings]
    counts = engine.count(outcome.findings)
    summary = engine.summarise(outcome.findings, outcome.target, outcome.missing)
    degraded = f"; degraded: {', '.join(r.source for r in outcome.missing)}" if outcome.missing else ""
    status = AnalysisStatus(
        phase=Phase.completed,
        observed_generation=generation,
        run_id=run_id,
        started_at=started_at,
        completed_at=now_rfc3339(),
        duration_seconds=outcome.timings.total_seconds,
        summary=summary,
        counts=counts,
        total_findings=len(outcome.findings),
        truncated=len(outcome.findings) > len(kept),
        findings=kept,
        missing=outcome.source_reports(),
        timings=outcome.timings,
        explanation=explained.status if explained else None,
        rerun_token=previous.get("rerunToken"),
    ).model_dump(by_alias=True, mode="json", exclude_none=True)
    if explained is None or explained.status is None:
        status["explanation"] = None  # merge patch: drop an explanation from an earlier run
    conditions = _ready(previous, ConditionStatus.true, "AnalysisCompleted", f"{summary}{degraded}", generation)
    if explained is not None:
        ok = ConditionStatus.true if explained.ok else ConditionStatus.false
        conditions = set_condition(conditions, "Explained", ok, explained.reason, explained.message, generation)
    else:
        conditions = [c for c in conditions if c.get("type") != "Explained"]
    status["conditions"] = conditions
    return status


def run_id_for(body: Mapping[str, Any], cause: str) -> str:
    """The same request (resource, generation, cause) always gets the same run id, so a run repeated
    after a crash is written to history once."""
    meta = body["metadata"]
    key = f"{meta.get('uid')}|{meta.get('generation')}|{cause}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


async def run(
    body: Mapping[str, Any],
    runtime: Runtime,
    logger: logging.Logger,
    *,
    retry: int = 0,
    reason: str = "changed",
    cause: str = "spec",
) -> None:
    """Run one analysis for ``body`` and write its status; raise Kopf errors for retry decisions."""
    # Taken before waiting for a slot: runs queued behind this one may share its reads, and it theirs.
    observed = time.monotonic()
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], int(meta.get("generation") or 1)
    status: dict[str, Any] = dict(body.get("status") or {})
    writer = StatusWriter(runtime.api, namespace, name)
    rerun_token = (meta.get("annotations") or {}).get("infragenius.io/rerun")

    try:
        spec = AnalysisSpec.model_validate(body.get("spec") or {})
    except ValidationError as err:
        await reject_invalid_spec(body, writer, status, generation, err)

    target = None if spec.all_namespaces else spec.target_namespace or namespace
    run_id = run_id_for(body, cause)
    if finished_before(status, run_id, generation, KIND, logger):
        return
    log = with_run_id(logger, run_id)
    started_at = now_rfc3339()
    async with work_slot(runtime, KIND):
        await mark_running(writer, status, generation, run_id, started_at, rerun_token, f"analysing {target or 'all namespaces'} ({reason})")
        try:
            outcome = await analyze(
                runtime.gatherer(observed),
                spec,
                target,
                prometheus_url=runtime.settings.prometheus_url,
                prometheus_timeout=runtime.settings.prometheus_timeout_seconds,
            )
        except TargetNamespaceMissing as err:
            await fail_target_missing(body, writer, status, generation, err)
        except ApiUnavailable as err:
            await retry_later(writer, status, generation, retry, err)
    metrics.observe_stage(KIND, "gather", outcome.timings.gather_seconds)
    metrics.observe_stage(KIND, "detect", outcome.timings.detect_seconds)
    _record_sources(runtime, outcome)

    explained = None
    if spec.llm.enabled:
        with metrics.timed_stage(KIND, "llm"):
            explained = await explain(runtime, outcome, spec)
    final = completed_status(outcome, spec, generation, run_id, started_at, status, explained)
    failed_sources = [(r.source, r.error or r.status.value) for r in outcome.missing if r.status is GatherStatus.error]
    await write_completed(
        runtime, writer, KIND, final, run_record(body, spec, outcome, final, reason), failed_sources, explained, generation
    )
    metrics.count_findings(outcome.findings)
    metrics.observe_stage(KIND, "total", outcome.timings.total_seconds)
    log.info(
        "analysis %s/%s of %s: %s (gather %.3fs, detect %.3fs)",
        namespace,
        name,
        outcome.target,
        final["summary"],
        outcome.timings.gather_seconds,
        outcome.timings.detect_seconds,
    )
    # Normal even with critical findings: the analysis itself worked. kopf.info would be filtered by
    # settings.posting.level (WARNING, to keep Kopf's own logs out of events); kopf.event is not.
    kopf.event(body, type="Normal", reason="AnalysisCompleted", message=final["summary"][:1024])


@contextlib.asynccontextmanager
async def work_slot(runtime: Runtime, kind: str) -> AsyncIterator[None]:
    """One of ``max_concurrent_analyses`` slots, with the wait and the work visible in metrics."""
    with metrics.queued(kind):
        await runtime.slots.acquire()
    try:
        with metrics.in_flight(kind):
            yield
    finally:
        runtime.slots.release()


async def write_completed(
    runtime: Runtime,
    writer: StatusWriter,
    kind: str,
    final: dict[str, Any],
    record: RunRecord,
    failed_sources: Sequence[tuple[str, str]],
    explained: ExplainOutcome | None,
    generation: int,
) -> None:
    """History first (waiting briefly; buffered while Postgres is away), so a crash once status says
    Completed loses no run and a repeat writes the same run id; then Degraded, then the status."""
    if runtime.history is not None:
        await runtime.history.record_and_wait(record, timeout=HISTORY_WAIT_SECONDS)
    # After the history write: whether Postgres took this run is part of what Degraded reports.
    problems = dependency_problems(runtime, failed_sources, explained)
    final["conditions"] = set_degraded(final["conditions"], problems, generation)
    with metrics.timed_stage(kind, "status"):
        await writer.patch(final)
    metrics.RUNS.labels(kind=kind, outcome="completed").inc()


def dependency_problems(
    runtime: Runtime, failed_sources: Sequence[tuple[str, str]], explained: ExplainOutcome | None
) -> list[tuple[str, str]]:
    """(reason, message) for each dependency that let this run down; empty when all worked."""
    problems = []
    for source, error in failed_sources:
        if source.startswith("prometheus"):  # "prometheus", or "prometheus <query>" for named queries
            problems.append(("PrometheusUnavailable", f"Prometheus{source[len('prometheus'):]}: {error}"))
        else:
            problems.append(("SourceUnavailable", f"{source}: {error}"))
    if explained is not None and not explained.ok and explained.reason in ("ModelUnavailable", "ModelTimeout"):
        problems.append((explained.reason, f"model server: {explained.message}"))
    explainer = runtime.explainer
    if explained is not None and explainer is not None and explainer.cache is not None and explainer.cache.bypassed:
        problems.append(("CacheUnavailable", "Redis: explanation cache bypassed after an error"))
    history = runtime.history
    if history is not None and not history.available:
        problems.append(
            ("HistoryBuffered", f"Postgres: unavailable; {len(history.pending)} run(s) buffered, written when it returns")
        )
    return problems


def set_degraded(
    conditions: Sequence[dict[str, Any]], problems: Sequence[tuple[str, str]], generation: int
) -> list[dict[str, Any]]:
    """``Degraded`` is True while any dependency fails, and turns False on the first run after recovery."""
    if not problems:
        return set_condition(
            conditions, "Degraded", ConditionStatus.false, "AllDependenciesAvailable", "every configured dependency answered", generation
        )
    reason = problems[0][0] if len({p[0] for p in problems}) == 1 else "MultipleDependencies"
    message = "; ".join(m for _, m in problems)
    return set_condition(conditions, "Degraded", ConditionStatus.true, reason, message, generation)


def finished_before(status: Mapping[str, Any], run_id: str, generation: int, kind: str, logger: Any) -> bool:
    """A replica that took over, or a restart after the final patch: this run ended; do not repeat it."""
    if not already_done(status, run_id, generation):
        return False
    metrics.RUNS.labels(kind=kind, outcome="already_done").inc()
    logger.info("run %s already completed; nothing to do", run_id)
    return True


def already_done(status: Mapping[str, Any], run_id: str, generation: int) -> bool:
    """This exact run (same resource, generation and cause) already ended and wrote its status."""
    return (
        status.get("runId") == run_id
        and status.get("phase") in (Phase.completed.value, Phase.failed.value)
        and status.get("observedGeneration") == generation
    )


def _record_sources(runtime: Runtime, outcome: AnalysisOutcome) -> None:
    """Prometheus is the one optional source whose outage should show on the dependency gauge."""
    if not runtime.settings.prometheus_url:
        return
    down = any(r.source.startswith("prometheus") and r.status is GatherStatus.error for r in outcome.missing)
    metrics.dependency("prometheus", not down)


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def run_record(
    body: Mapping[str, Any], spec: AnalysisSpec, outcome: AnalysisOutcome, final: Mapping[str, Any], trigger: str
) -> RunRecord:
    """History keeps every finding, not only the ones that fit in status."""
    meta = body["metadata"]
    started = _time(final.get("startedAt"))
    return RunRecord(
        kind="Analysis",
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
        duration_seconds=outcome.timings.total_seconds,
        gather_seconds=outcome.timings.gather_seconds,
        detect_seconds=outcome.timings.detect_seconds,
        counts=dict(final.get("counts") or {}),
        summary=final.get("summary", ""),
        missing=list(final.get("missing") or []),
        findings=[f.model_dump(mode="json", exclude_none=True) for f in outcome.findings],
        explanation=final.get("explanation"),
        spec=spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    )


def needs_run_on_resume(body: Mapping[str, Any]) -> bool:
    """After an operator restart: re-run what never finished or is behind its spec."""
    status = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    if status.get("phase") in (None, Phase.pending.value, Phase.running.value):
        return True
    return status.get("observedGeneration") != generation and status.get("phase") != Phase.failed.value


def rerun_due(body: Mapping[str, Any], now: dt.datetime | None = None) -> bool:
    """True when ``spec.interval`` has passed since the last completed run."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    interval = spec.get("interval")
    if not interval or status.get("phase") != Phase.completed.value or not status.get("completedAt"):
        return False
    try:
        every = parse_duration(interval)
        last = dt.datetime.fromisoformat(status["completedAt"].replace("Z", "+00:00"))
    except ValueError:
        return False
    return (now or dt.datetime.now(dt.timezone.utc)) - last >= every


def rerun_requested(body: Mapping[str, Any]) -> bool:
    """The rerun annotation holds a value this resource has not handled yet."""
    token = ((body.get("metadata") or {}).get("annotations") or {}).get("infragenius.io/rerun")
    return bool(token) and token != (body.get("status") or {}).get("rerunToken")
