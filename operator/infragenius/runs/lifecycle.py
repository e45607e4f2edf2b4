"""One run of any kind: request → validate → work slot → Running → work → history → Degraded → Completed.

Each kind's module supplies the work and its status; the steps around it, and the decisions Kopf needs
(retry soon, retry never, skip a repeat), are here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar, cast

import kopf
from kubernetes import client
from pydantic import BaseModel, ValidationError

from infragenius.gather.kube import ApiUnavailable, KubeGatherer, TargetNamespaceMissing
from infragenius.gather.logs import LogOptions
from infragenius.gather.prometheus import PrometheusTarget
from infragenius.history.recorder import HistoryRecorder
from infragenius.history.store import RunRecord
from infragenius.kube.time import now_rfc3339, parse_time
from infragenius.llm.explain import Explainer, ExplainOutcome, LLMOptions
from infragenius.models.api import (
    MODEL_SERVER_REASONS,
    RERUN_ANNOTATION,
    ConditionType,
    CustomResourceKind,
    Phase,
    Reason,
)
from infragenius.models.common import ConditionStatus, LLMSpec, parse_duration
from infragenius.observability import metrics
from infragenius.observability.logs import HandlerLogger, with_run_id
from infragenius.runs.conditions import ready, set_condition, without_condition
from infragenius.runs.handled import Carried
from infragenius.runs.resources import StatusWriter, post_run_event
from infragenius.settings import Settings

HISTORY_WAIT_SECONDS = 5.0
SpecT = TypeVar("SpecT", bound=BaseModel)
T = TypeVar("T")


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

    def log_options(self) -> LogOptions | None:
        """The bounds of a run's container log reads; None when the operator reads no logs."""
        settings = self.settings
        if not settings.gather_container_logs:
            return None
        return LogOptions(
            max_containers=settings.container_logs_max,
            tail_lines=settings.container_log_tail_lines,
            limit_bytes=settings.container_log_limit_bytes,
            concurrency=settings.container_log_concurrency,
            timeout=settings.container_log_timeout_seconds,
        )

    def prometheus_for(self, requested: str | None) -> PrometheusTarget | None:
        """The Prometheus a run may query: ``requested`` (a spec's URL) only when the operator allows it,
        else the operator's own; None when neither is set. Raises PrometheusNotAllowed."""
        settings = self.settings
        if requested and _normal(requested) not in self.allowed_prometheus:
            raise PrometheusNotAllowed(
                f"spec.prometheus.url {requested[:200]!r} is not a Prometheus this operator may query "
                "(INFRAGENIUS_PROMETHEUS_ALLOWED_URLS); remove it to use the operator's Prometheus"
            )
        url = requested or settings.prometheus_url
        if not url:
            return None
        return PrometheusTarget(url, settings.prometheus_ca_file or settings.prometheus_tls_verify)

    @functools.cached_property
    def allowed_prometheus(self) -> frozenset[str]:
        urls = [*self.settings.prometheus_allowed_urls, self.settings.prometheus_url or ""]
        return frozenset(_normal(u) for u in urls if u)

    def llm_options(self, spec: LLMSpec) -> LLMOptions:
        settings = self.settings
        return LLMOptions(
            model=spec.model or settings.llm_model,
            num_ctx=settings.llm_num_ctx,
            max_reply_tokens=settings.llm_max_reply_tokens,
            timeout=settings.llm_timeout_seconds,
            # The operator-level switch wins: a resource may not send unmasked names if the platform says no.
            anonymize=spec.anonymize or settings.llm_force_anonymize,
        )


class PrometheusNotAllowed(ValueError):
    """A spec names a Prometheus the operator's allowlist does not hold."""


def _normal(url: str) -> str:
    return url.strip().rstrip("/")


NO_MODEL_SERVER = ExplainOutcome(False, Reason.model_unavailable, "no model server configured (INFRAGENIUS_OLLAMA_URL)")


@dataclass
class Request:
    """One object asking for a run, as the handler saw it."""

    body: Mapping[str, Any]
    kind: CustomResourceKind
    writer: StatusWriter
    namespace: str
    name: str
    generation: int
    status: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls, body: Mapping[str, Any], kind: CustomResourceKind, api: client.ApiClient, handled: Carried | None = None
    ) -> Request:
        """``handled``: Kopf's record of the change this run answers, written with the run's final status."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        return cls(
            body=body,
            kind=kind,
            writer=StatusWriter(api, kind, namespace, name, handled),
            namespace=namespace,
            name=name,
            generation=int(meta.get("generation") or 1),
            status=dict(body.get("status") or {}),
        )

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.body["metadata"].get("annotations") or {}

    @property
    def uid(self) -> str:
        return str(self.body["metadata"].get("uid"))

    def ready(self, ok: bool, reason: Reason, message: str) -> list[dict[str, Any]]:
        return ready(self.status, ok, reason, message, self.generation)

    async def allowed_prometheus(self, runtime: Runtime, requested: str | None) -> PrometheusTarget | None:
        """The run's Prometheus; one the operator does not allow fails the run permanently (a spec change may
        fix it), without a single request to it."""
        try:
            return runtime.prometheus_for(requested)
        except PrometheusNotAllowed as err:
            await refuse(self, Reason.prometheus_not_allowed, str(err))

    async def allowed_target(self, runtime: Runtime, target: str | None) -> None:
        """Refuse (permanently) a target outside the operator's allowlist, when one is configured: None is
        every namespace, allowed only by "*"; the object's own namespace is always allowed."""
        allowed = runtime.settings.target_namespaces_allowed
        if not allowed or target == self.namespace or "*" in allowed or (target is not None and target in allowed):
            return
        what = "every namespace (allNamespaces)" if target is None else f"namespace {target!r}"
        message = f"this operator does not analyse {what} for {self.namespace} (INFRAGENIUS_TARGET_NAMESPACES_ALLOWED)"
        await refuse(self, Reason.target_not_allowed, message)

    async def validated(self, model: type[SpecT]) -> SpecT:
        """The spec as ``model``; an invalid one fails the run permanently (see ``reject_invalid_spec``)."""
        try:
            return model.model_validate(self.body.get("spec") or {})
        except ValidationError as err:
            await reject_invalid_spec(self, err)


def run_id_for(body: Mapping[str, Any], cause: str) -> str:
    """The same request (resource, generation, cause) always gets the same run id, so a run repeated
    after a crash is written to history once."""
    meta = body["metadata"]
    key = f"{meta.get('uid')}|{meta.get('generation')}|{cause}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def already_done(status: Mapping[str, Any], run_id: str, generation: int) -> bool:
    """This exact run (same resource, generation and cause) already ended and wrote its status."""
    return (
        status.get("runId") == run_id
        and status.get("phase") in (Phase.completed.value, Phase.failed.value)
        and status.get("observedGeneration") == generation
    )


def finished_before(request: Request, run_id: str, logger: HandlerLogger) -> bool:
    """A replica that took over, or a restart after the final patch: this run ended; do not repeat it."""
    if not already_done(request.status, run_id, request.generation):
        return False
    metrics.RUNS.labels(kind=request.kind.kind, outcome="already_done").inc()
    logger.info("run %s already completed; nothing to do", run_id)
    return True


@dataclass(frozen=True)
class Begun:
    """A run that is going ahead: its id, when it started, and a logger that names it."""

    run_id: str
    started_at: str
    log: HandlerLogger


def begin(request: Request, cause: str, logger: HandlerLogger) -> Begun | None:
    """The run for (object, generation, cause); None when exactly that run already ended."""
    run_id = run_id_for(request.body, cause)
    if finished_before(request, run_id, logger):
        return None
    return Begun(run_id, now_rfc3339(), with_run_id(logger, run_id))


async def gather_in_slot(
    runtime: Runtime,
    request: Request,
    begun: Begun,
    *,
    observed: float,
    retry: int,
    activity: str,
    work: Callable[[KubeGatherer], Awaitable[T]],
) -> T:
    """In one of the work slots: Running, then ``work`` with a gatherer that shares reads started since
    ``observed``. A missing target fails the run permanently; an API that cannot answer retries it."""
    async with work_slot(runtime, request.kind):
        await mark_running(
            request, begun.run_id, begun.started_at, activity, runtime.settings.running_status_after_seconds
        )
        try:
            return await work(runtime.gatherer(observed))
        except TargetNamespaceMissing as err:
            await fail_target_missing(request, err)
        except ApiUnavailable as err:
            await retry_later(request, retry, err)


@contextlib.asynccontextmanager
async def work_slot(runtime: Runtime, kind: CustomResourceKind) -> AsyncIterator[None]:
    """One of ``max_concurrent_analyses`` slots, with the wait and the work visible in metrics."""
    with metrics.queued(kind.kind):
        await runtime.slots.acquire()
    try:
        with metrics.in_flight(kind.kind):
            yield
    finally:
        runtime.slots.release()


async def mark_running(request: Request, run_id: str, started_at: str, message: str, after: float) -> None:
    """Phase Running with Ready=False, written once the run has worked ``after`` seconds (0: now). The rerun
    token being answered is recorded by the final write, so a run retried after a failure stays that rerun."""
    request.status["rerunToken"] = request.annotations.get(RERUN_ANNOTATION)
    await request.writer.progress(
        {
            "phase": Phase.running.value,
            "runId": run_id,
            "startedAt": started_at,
            "conditions": request.ready(False, Reason.running, message),
        },
        after,
    )


async def refuse(request: Request, reason: Reason, message: str, outcome: str = "refused", **fields: Any) -> NoReturn:
    """Phase Failed, permanently: re-running cannot help until the spec (or the cluster) changes, and a spec
    change or a rerun starts again. ``outcome`` labels the runs metric; ``fields`` go into the status too."""
    metrics.RUNS.labels(kind=request.kind.kind, outcome=outcome).inc()
    await request.writer.finish(
        {
            "phase": Phase.failed.value,
            "observedGeneration": request.generation,
            "summary": message[:512],
            "conditions": request.ready(False, reason, message),
            "rerunToken": request.annotations.get(RERUN_ANNOTATION),
            **fields,
        }
    )
    announce(request.body, reason, message, warning=True)
    raise kopf.PermanentError(message)


async def fail_target_missing(request: Request, err: Exception) -> NoReturn:
    """The namespace to look at does not exist (yet)."""
    await refuse(request, Reason.target_not_found, str(err), outcome="target_missing", completedAt=now_rfc3339())


async def retry_later(request: Request, retry: int, err: Exception) -> NoReturn:
    """The API could not answer: Pending, and Kopf retries with exponential backoff (5 s to 5 min)."""
    metrics.RUNS.labels(kind=request.kind.kind, outcome="retrying").inc()
    delay = min(300, 5 * 2 ** min(retry, 6))
    await request.writer.patch(
        {
            "phase": Phase.pending.value,
            "conditions": request.ready(False, Reason.retrying, f"{err}; retrying in {delay}s"),
        }
    )
    raise kopf.TemporaryError(str(err), delay=delay) from err


async def reject_invalid_spec(request: Request, err: ValidationError) -> NoReturn:
    """Every validation error in one message."""
    message = "invalid spec: " + "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in err.errors()
    )
    await refuse(request, Reason.invalid_spec, message, outcome="invalid")


def announce(body: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
    """A Kubernetes Event on the object (Normal, or Warning), bounded as the API wants it."""
    kopf.event(cast(kopf.Body, body), type="Warning" if warning else "Normal", reason=reason, message=message[:1024])


def explained_conditions(
    conditions: Sequence[Mapping[str, Any]], explained: ExplainOutcome | None, generation: int
) -> list[dict[str, Any]]:
    """``Explained`` from the LLM stage's outcome; removed when the run did not ask for one."""
    if explained is None:
        return without_condition(conditions, ConditionType.explained)
    ok = ConditionStatus.true if explained.ok else ConditionStatus.false
    return set_condition(conditions, ConditionType.explained, ok, explained.reason, explained.message, generation)


Problem = tuple[Reason, str]


def dependency_problems(
    runtime: Runtime, failed_sources: Sequence[tuple[str, str]], explained: ExplainOutcome | None
) -> list[Problem]:
    """(reason, message) for each dependency that let this run down; empty when all worked."""
    problems: list[Problem] = []
    for source, error in failed_sources:
        if source.startswith("prometheus"):  # "prometheus", or "prometheus <query>" for named queries
            problems.append((Reason.prometheus_unavailable, f"Prometheus{source[len('prometheus') :]}: {error}"))
        else:
            problems.append((Reason.source_unavailable, f"{source}: {error}"))
    if explained is not None and not explained.ok and explained.reason in MODEL_SERVER_REASONS:
        problems.append((explained.reason, f"model server: {explained.message}"))
    explainer = runtime.explainer
    if explained is not None and explainer is not None and explainer.cache is not None and explainer.cache.bypassed:
        problems.append((Reason.cache_unavailable, "Redis: explanation cache bypassed after an error"))
    history = runtime.history
    if history is not None and not history.available:
        buffered = len(history.pending)
        message = f"Postgres: unavailable; {buffered} run(s) buffered, written when it returns"
        problems.append((Reason.history_buffered, message))
    return problems


def set_degraded(
    conditions: Sequence[Mapping[str, Any]], problems: Sequence[Problem], generation: int
) -> list[dict[str, Any]]:
    """``Degraded`` is True while any dependency fails, and turns False on the first run after recovery."""
    if not problems:
        message = "every configured dependency answered"
        reason = Reason.all_dependencies_available
        return set_condition(conditions, ConditionType.degraded, ConditionStatus.false, reason, message, generation)
    reasons = {reason for reason, _ in problems}
    reason = problems[0][0] if len(reasons) == 1 else Reason.multiple_dependencies
    message = "; ".join(m for _, m in problems)
    return set_condition(conditions, ConditionType.degraded, ConditionStatus.true, reason, message, generation)


async def write_completed(
    runtime: Runtime,
    request: Request,
    final: dict[str, Any],
    record: RunRecord,
    failed_sources: Sequence[tuple[str, str]],
    explained: ExplainOutcome | None,
    event_reason: str,
) -> None:
    """History first (waiting briefly; buffered while Postgres is away), so a crash once status says
    Completed loses no run and a repeat writes the same run id; then the run's event (``event_reason``,
    one per run id), then Degraded, then the status."""
    if runtime.history is not None:
        await runtime.history.record_and_wait(record, timeout=HISTORY_WAIT_SECONDS)
    await post_run_event(runtime.api, request.kind, request.body, final["runId"], event_reason, final["summary"])
    # After the history write: whether Postgres took this run is part of what Degraded reports.
    problems = dependency_problems(runtime, failed_sources, explained)
    final["conditions"] = set_degraded(final["conditions"], problems, request.generation)
    with metrics.timed_stage(request.kind.kind, "status"):
        await request.writer.finish(final)
    metrics.RUNS.labels(kind=request.kind.kind, outcome="completed").inc()


def run_record(request: Request, final: Mapping[str, Any], trigger: str, target: str, **fields: Any) -> RunRecord:
    """The history row of a run that wrote ``final`` as its status; ``fields`` are the kind's own."""
    started = parse_time(final.get("startedAt"))
    return RunRecord(
        kind=request.kind.kind,
        namespace=request.namespace,
        name=request.name,
        resource_uid=request.uid,
        generation=request.generation,
        run_id=final["runId"],
        trigger=trigger,
        requested_at=started or dt.datetime.now(dt.UTC),
        target_namespace=target,
        phase=final["phase"],
        started_at=started,
        completed_at=parse_time(final.get("completedAt")),
        summary=final.get("summary", ""),
        **fields,
    )


# --- when a run is due ------------------------------------------------------------------------------------


def token_pending(body: Mapping[str, Any], annotation: str, handled_key: str) -> bool:
    """The annotation holds a value this resource's status has not recorded as handled yet."""
    token = ((body.get("metadata") or {}).get("annotations") or {}).get(annotation)
    return bool(token) and token != (body.get("status") or {}).get(handled_key)


def rerun_requested(body: Mapping[str, Any]) -> bool:
    """The rerun annotation holds a value this resource has not handled yet."""
    return token_pending(body, RERUN_ANNOTATION, "rerunToken")


def change_request(body: Mapping[str, Any], reason: str) -> tuple[str, str] | None:
    """What a change of the object (created, updated, or found at start-up) asks for: a run as (cause, reason),
    or None (labels or other annotations changed). A new spec comes first (its final write records the rerun
    token too), then a rerun annotation not answered yet (also when that rerun is being retried), then a run
    that never ended. One handler per kind decides this, so that handler's final write may carry Kopf's record
    of the change (``runs.handled``)."""
    if behind_spec(body):
        return "spec", reason
    if rerun_requested(body):
        token = body["metadata"]["annotations"][RERUN_ANNOTATION]
        return f"rerun:{token}", "rerun annotation"
    if never_finished(body):
        return "spec", reason
    return None


def never_finished(body: Mapping[str, Any]) -> bool:
    """No run of this object ever ended (an operator stopped in the middle of one, or never started it)."""
    return (body.get("status") or {}).get("phase") in (None, Phase.pending.value, Phase.running.value)


def behind_spec(body: Mapping[str, Any]) -> bool:
    """The last run ended for an older generation of the spec."""
    status = body.get("status") or {}
    return status.get("observedGeneration") != (body.get("metadata") or {}).get("generation")


def needs_run_on_resume(body: Mapping[str, Any]) -> bool:
    """After an operator restart: re-run what never finished or is behind its spec (a failed run waits for
    a spec change or a rerun)."""
    failed = (body.get("status") or {}).get("phase") == Phase.failed.value
    return never_finished(body) or (behind_spec(body) and not failed)


def interval_elapsed(interval: str | None, last: str | None, now: dt.datetime | None = None) -> bool:
    """``interval`` (a duration) has passed since ``last`` (RFC 3339); False when either is missing or odd."""
    if not interval or not last:
        return False
    try:
        every = parse_duration(interval)
        previous = parse_time(last)
    except ValueError:
        return False
    return previous is not None and (now or dt.datetime.now(dt.UTC)) - previous >= every
