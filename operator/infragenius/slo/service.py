"""Operator-side handling of one SLOReview: validate, query Prometheus, compute, write status, post events.

Also the Kubernetes side of the Alertmanager webhook: recording an alert in status and asking for a review.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any, Mapping, Sequence

import kopf
from kubernetes import client
from pydantic import ValidationError

from infragenius import kubeapi
from infragenius.analysis.service import Runtime, StatusWriter, reject_invalid_spec
from infragenius.conditions import now_rfc3339, set_condition
from infragenius.detectors.base import finding
from infragenius.llm.explain import ExplainOutcome, LLMOptions
from infragenius.models.analysis import GROUP, VERSION
from infragenius.models.common import ConditionStatus, parse_duration
from infragenius.models.findings import Finding, ResourceRef, Severity
from infragenius.models.slo import (
    MAX_TRIGGERS,
    PLURAL,
    RERUN_ANNOTATION,
    TRIGGER_ANNOTATION,
    AlertCondition,
    AlertSeverity,
    AlertStatus,
    BurnRates,
    ErrorBudget,
    LastReview,
    SLOPhase,
    SLOReviewSpec,
    TriggerRecord,
    Verdict,
)
from infragenius.slo import math as slo_math
from infragenius.slo.review import collect
from infragenius.snapshot import Snapshot
from infragenius.observability import metrics

KIND = "SLOReview"

# Cleared in a merge patch when a review cannot compute them (a stale verdict would mislead).
_COMPUTED = ("verdict", "sli", "errorBudget", "burnRates", "alerts", "timeToExhaustion", "timeToExhaustionSeconds")


def _ready(status: Mapping[str, Any], ok: ConditionStatus, reason: str, message: str, generation: int) -> list:
    return set_condition(status.get("conditions"), "Ready", ok, reason, message, generation)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def summarise(report: slo_math.BudgetReport, slo_window: str) -> str:
    """One line for status, events and the log, e.g. 'Breaching: 47.3% of the 30d budget left, ...'."""
    burn = report.burn_rates.get(slo_math.CURRENT_BURN_WINDOW)
    firing = [a.policy.name for a in report.alerts if a.firing]
    parts = [
        f"{report.verdict.value}: {_pct(max(report.remaining, 0.0))} of the {slo_window} budget left",
        f"SLI {report.sli * 100:.4f}%",
        f"burn {burn:.2f}x over 1h" if burn is not None else "no events in the last 1h",
    ]
    if firing:
        parts.append(f"firing: {', '.join(firing)}")
    return "; ".join(parts)[:512]


def computed_status(report: slo_math.BudgetReport) -> dict[str, Any]:
    """The values a successful review writes (None values become nulls, clearing older values)."""
    return {
        "verdict": report.verdict.value,
        "sli": report.sli,
        "errorBudget": ErrorBudget(
            total=report.budget,
            consumed=report.consumed,
            remaining=report.remaining,
            remaining_percent=round(report.remaining * 100, 2),
        ).model_dump(by_alias=True, mode="json"),
        # Every key present: a lookback without events must overwrite the previous review's number.
        "burnRates": BurnRates.model_validate(report.burn_rates).model_dump(by_alias=True, mode="json"),
        "alerts": [
            AlertCondition(
                name=a.policy.name,
                severity=a.policy.severity,
                long_window=a.policy.long_window,
                short_window=a.policy.short_window,
                budget_fraction=a.policy.budget_fraction,
                factor=a.factor,
                threshold=a.threshold,
                long_burn_rate=a.long_burn,
                short_burn_rate=a.short_burn,
                firing=a.firing,
            ).model_dump(by_alias=True, mode="json", exclude_none=True)
            for a in report.alerts
        ],
        "timeToExhaustion": None
        if report.time_to_exhaustion_s is None
        else slo_math.format_seconds(report.time_to_exhaustion_s),
        "timeToExhaustionSeconds": report.time_to_exhaustion_s,
    }


def review_findings(report: slo_math.BudgetReport, namespace: str, name: str, service: str) -> list[Finding]:
    """The review as findings, so the LLM stage can explain it exactly as it explains an Analysis."""
    resource = ResourceRef(kind="SLOReview", name=name, namespace=namespace)
    owners = [ResourceRef(kind="Service", name=service, namespace=namespace)]
    burns = [(f"burnRate:{w}", "no events" if v is None else f"{v:.4g}") for w, v in report.burn_rates.items()]
    found = []
    if report.verdict is Verdict.exhausted:
        found.append(
            finding(
                detector="slo",
                severity=Severity.critical,
                resource=resource,
                owners=owners,
                problem="exhausted",
                title=f"Error budget exhausted: {_pct(report.consumed)} spent (objective {report.objective}%)",
                evidence=[("errorBudget.consumed", f"{report.consumed:.6g}"), ("sli", f"{report.sli:.6g}"), *burns],
                remediation="Freeze risky changes and spend effort on reliability until the budget recovers.",
            )
        )
    for alert in report.alerts:
        if not alert.firing:
            continue
        policy = alert.policy
        found.append(
            finding(
                detector="slo",
                severity=Severity.critical if policy.severity is AlertSeverity.page else Severity.warning,
                resource=resource,
                owners=owners,
                problem=policy.name,
                title=(
                    f"Burning {alert.long_burn:.2f}x over {policy.long_window} and {alert.short_burn:.2f}x over "
                    f"{policy.short_window} (threshold {alert.factor:g}x, {policy.severity.value})"
                ),
                evidence=[
                    (f"burnRate:{policy.long_window}", f"{alert.long_burn:.6g}"),
                    (f"burnRate:{policy.short_window}", f"{alert.short_burn:.6g}"),
                    ("factor", f"{alert.factor:g}"),
                    ("errorBudget.remaining", f"{report.remaining:.6g}"),
                ],
                remediation="Find what changed when the burn started (deploys, dependencies, traffic) and roll it back.",
            )
        )
    return found


async def explain(
    runtime: Runtime, report: slo_math.BudgetReport, spec: SLOReviewSpec, namespace: str, name: str
) -> ExplainOutcome:
    """The optional LLM narrative, through the Analysis machinery; it cannot fail the review."""
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
    findings = review_findings(report, namespace, name, spec.service)
    return await runtime.explainer.explain(Snapshot.build(namespace=namespace, objects={}), findings, [], options)


def trigger_record(status: Mapping[str, Any], token: str | None) -> TriggerRecord | None:
    """The recorded alert behind a trigger annotation value."""
    if not token:
        return None
    for raw in reversed(status.get("triggers") or []):
        try:
            record = TriggerRecord.model_validate(raw)
        except ValidationError:
            continue
        if record.token == token and record.status is AlertStatus.firing:
            return record
    return None


async def review(
    body: Mapping[str, Any], runtime: Runtime, logger: logging.Logger, *, reason: str, triggered: bool = False
) -> None:
    """Review one SLO and write its status; failures become conditions, never crashes."""
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], int(meta.get("generation") or 1)
    annotations = meta.get("annotations") or {}
    status: dict[str, Any] = dict(body.get("status") or {})
    writer = StatusWriter(runtime.api, namespace, name, plural=PLURAL)

    try:
        spec = SLOReviewSpec.model_validate(body.get("spec") or {})
    except ValidationError as err:
        await reject_invalid_spec(body, writer, status, generation, err)

    trigger = trigger_record(status, annotations.get(TRIGGER_ANNOTATION)) if triggered else None
    if trigger is not None:
        reason = f"alert {trigger.alertname or '?'} ({trigger.fingerprint})"
    last = LastReview(run_id=uuid.uuid4().hex[:12], reason=reason[:256], trigger=trigger, started_at=now_rfc3339())
    await writer.patch(
        {
            "phase": SLOPhase.running.value,
            "lastReview": last.model_dump(by_alias=True, mode="json", exclude_none=True),
            "rerunToken": annotations.get(RERUN_ANNOTATION),
            "triggerToken": annotations.get(TRIGGER_ANNOTATION),
            "conditions": _ready(status, ConditionStatus.false, "Running", f"reviewing ({reason})", generation),
        }
    )
    url = spec.prometheus.url or runtime.settings.prometheus_url

    def finish(phase: SLOPhase, ok: ConditionStatus, why: str, message: str, seconds: float) -> dict[str, Any]:
        done = last.model_copy(update={"completed_at": now_rfc3339(), "duration_seconds": round(seconds, 4)})
        return {
            "phase": phase.value,
            "observedGeneration": generation,
            "summary": message[:512],
            "lastReview": done.model_dump(by_alias=True, mode="json", exclude_none=True),
            "conditions": _ready(status, ok, why, message, generation),
        }

    if not url:
        message = "no Prometheus: set spec.prometheus.url or INFRAGENIUS_PROMETHEUS_URL"
        await writer.patch(finish(SLOPhase.failed, ConditionStatus.false, "PrometheusNotConfigured", message, 0.0))
        kopf.warn(body, reason="PrometheusNotConfigured", message=message)
        return

    data = await collect(
        url, spec.sli, spec.window, at=spec.evaluation_time, timeout=runtime.settings.prometheus_timeout_seconds
    )
    metrics.dependency("prometheus", not data.failed)
    if data.failed:
        metrics.RUNS.labels(kind=KIND, outcome="query_failed").inc()
        detail = "; ".join(f"{window}: {error}" for window, error in data.errors.items())
        message = f"Prometheus {url} could not answer: {detail}"
        # Keep the last good values: Ready=False says they are stale; lastReview says since when.
        await writer.patch(finish(SLOPhase.failed, ConditionStatus.false, "QueryFailed", message, data.seconds))
        kopf.warn(body, reason="QueryFailed", message=message[:1024])
        logger.info("slo review %s/%s failed: %s (reason: %s)", namespace, name, message, reason)
        return
    if data.no_data:
        metrics.RUNS.labels(kind=KIND, outcome="no_data").inc()
        message = f"no events over {spec.window} at {_rfc3339(data.evaluated_at)}: {data.queries[spec.window]}"
        final = finish(SLOPhase.completed, ConditionStatus.false, "NoData", message, data.seconds)
        final.update({key: None for key in (*_COMPUTED, "explanation")})
        final["conditions"] = [c for c in final["conditions"] if c.get("type") != "Explained"]
        final["evaluatedAt"] = _rfc3339(data.evaluated_at)
        await writer.patch(final)
        kopf.warn(body, reason="NoData", message=message[:1024])
        logger.info("slo review %s/%s: no data (reason: %s)", namespace, name, reason)
        return

    assert data.window_error_ratio is not None
    report = slo_math.evaluate(spec.objective, spec.window, data.window_error_ratio, data.error_ratios)
    summary = summarise(report, spec.window)
    final = finish(SLOPhase.completed, ConditionStatus.true, "Reviewed", summary, data.seconds)
    final.update(computed_status(report))
    final["evaluatedAt"] = _rfc3339(data.evaluated_at)
    conditions = final["conditions"]
    if spec.llm.enabled:
        explained = await explain(runtime, report, spec, namespace, name)
        final["explanation"] = (
            explained.status.model_dump(by_alias=True, mode="json", exclude_none=True) if explained.status else None
        )
        ok = ConditionStatus.true if explained.ok else ConditionStatus.false
        conditions = set_condition(conditions, "Explained", ok, explained.reason, explained.message, generation)
    else:
        final["explanation"] = None
        conditions = [c for c in conditions if c.get("type") != "Explained"]
    final["conditions"] = conditions
    await writer.patch(final)
    metrics.RUNS.labels(kind=KIND, outcome="completed").inc()
    metrics.observe_stage(KIND, "query", data.seconds)
    logger.info("slo review %s/%s: %s (reason: %s)", namespace, name, summary, reason)
    kopf.event(body, type="Normal", reason="SLOReviewed", message=summary[:1024])  # kopf.info is filtered by posting.level


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def needs_review_on_resume(body: Mapping[str, Any]) -> bool:
    """After an operator restart: review what never finished, is behind its spec, or has an unhandled request."""
    status = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    if status.get("phase") in (None, SLOPhase.pending.value, SLOPhase.running.value):
        return True
    if rerun_requested(body) or trigger_pending(body):
        return True
    return status.get("observedGeneration") != generation


def review_due(body: Mapping[str, Any], now: dt.datetime | None = None) -> bool:
    """``spec.interval`` has passed since the last review finished (failed ones too: that is their retry)."""
    interval = (body.get("spec") or {}).get("interval")
    status = body.get("status") or {}
    completed = (status.get("lastReview") or {}).get("completedAt")
    if not interval or not completed or status.get("phase") == SLOPhase.running.value:
        return False
    try:
        every = parse_duration(interval)
        last = dt.datetime.fromisoformat(completed.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (now or dt.datetime.now(dt.timezone.utc)) - last >= every


def _annotation_pending(body: Mapping[str, Any], annotation: str, handled_key: str) -> bool:
    token = ((body.get("metadata") or {}).get("annotations") or {}).get(annotation)
    return bool(token) and token != (body.get("status") or {}).get(handled_key)


def rerun_requested(body: Mapping[str, Any]) -> bool:
    return _annotation_pending(body, RERUN_ANNOTATION, "rerunToken")


def trigger_pending(body: Mapping[str, Any]) -> bool:
    return _annotation_pending(body, TRIGGER_ANNOTATION, "triggerToken")


# --- the webhook's side: record alerts and ask for reviews -----------------------------------------------


class UnknownSLO(Exception):
    """The alert names an SLOReview that does not exist."""


class TriggerUnavailable(Exception):
    """The Kubernetes API could not record the alert; Alertmanager should retry (the webhook answers 503)."""


class KubeTriggerSink:
    """Records alerts in ``status.triggers`` and sets the trigger annotation the review handler watches."""

    def __init__(self, api: client.ApiClient, history: int = MAX_TRIGGERS) -> None:
        self.api, self.history = api, history
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _path(self, namespace: str, name: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else None
        try:
            return await asyncio.to_thread(
                kubeapi.request, self.api, method, path, headers=headers, body=body, timeout=(5, 15)
            )
        except client.ApiException as err:
            if err.status == 404:
                raise UnknownSLO(path.rsplit("/", 1)[-1]) from err
            raise TriggerUnavailable(f"Kubernetes API: {err.status} {err.reason}") from err
        except Exception as err:  # connection errors from urllib3
            raise TriggerUnavailable(f"Kubernetes API: {type(err).__name__}: {err}"[:300]) from err

    async def deliver(self, namespace: str, name: str, record: TriggerRecord) -> str:
        """Record the alert; a firing one also asks for a review. Returns triggered, recorded or duplicate."""
        # One writer per SLO: status.triggers is replaced whole, so concurrent appends would lose records.
        lock = self._locks.setdefault((namespace, name), asyncio.Lock())
        async with lock:
            obj = await self._call("GET", self._path(namespace, name))
            triggers: list[dict[str, Any]] = list((obj.get("status") or {}).get("triggers") or [])
            annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(TRIGGER_ANNOTATION)
            if any(_key(t) == record.key for t in triggers):
                if record.status is AlertStatus.firing and annotation != record.token and _newest_firing(triggers) == record.key:
                    # Recorded earlier but the annotation patch failed: finish the job.
                    await self._annotate(namespace, name, record.token)
                    return "triggered"
                return "duplicate"
            triggers = [*triggers, record.model_dump(by_alias=True, mode="json")][-self.history :]
            # Status first: when the review starts, it finds the alert it was triggered by.
            await self._call("PATCH", self._path(namespace, name) + "/status", {"status": {"triggers": triggers}})
            if record.status is not AlertStatus.firing:
                return "recorded"
            await self._annotate(namespace, name, record.token)
            return "triggered"

    async def _annotate(self, namespace: str, name: str, token: str) -> None:
        await self._call("PATCH", self._path(namespace, name), {"metadata": {"annotations": {TRIGGER_ANNOTATION: token}}})


def _key(raw: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(raw.get("fingerprint")), str(raw.get("startsAt")), str(raw.get("status")))


def _newest_firing(triggers: Sequence[Mapping[str, Any]]) -> tuple[str, str, str] | None:
    firing = [t for t in triggers if t.get("status") == AlertStatus.firing.value]
    return _key(firing[-1]) if firing else None
