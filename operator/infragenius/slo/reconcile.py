"""The operator's side of one SLOReview: query Prometheus, compute the budget, write status, post events."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from infragenius import kubeapi
from infragenius.detectors.base import finding
from infragenius.gather.prometheus import PrometheusTarget
from infragenius.kube.time import now_rfc3339, rfc3339
from infragenius.llm.explain import ExplainOutcome
from infragenius.models.api import RERUN_ANNOTATION, SLO_REVIEW, TRIGGER_ANNOTATION, ConditionType, Phase, Reason
from infragenius.models.common import ConditionStatus
from infragenius.models.findings import Finding, ResourceRef, Severity
from infragenius.models.slo import (
    AlertCondition,
    AlertSeverity,
    AlertStatus,
    AttributionStatus,
    BurnRates,
    ErrorBudget,
    IncidentLink,
    LastReview,
    SLOReviewSpec,
    TriggerRecord,
    Verdict,
)
from infragenius.observability import metrics
from infragenius.observability.logs import HandlerLogger
from infragenius.runs import lifecycle as runs
from infragenius.runs.conditions import set_condition, without_condition
from infragenius.runs.handled import Carried
from infragenius.runs.lifecycle import Request, Runtime
from infragenius.slo import math as slo_math
from infragenius.slo.incidents import covering_incidents
from infragenius.slo.periods import SLOWindow, resolve
from infragenius.slo.publish import Outcome, RulesPublisher
from infragenius.slo.review import attribute, collect, review_instant
from infragenius.snapshot import Snapshot

KIND = SLO_REVIEW


# Cleared in a merge patch when a review cannot compute them (a stale verdict would mislead).
_COMPUTED = (
    "verdict",
    "sli",
    "errorBudget",
    "burnRates",
    "alerts",
    "timeToExhaustion",
    "timeToExhaustionSeconds",
    "attribution",
    "period",
    "incidents",
)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def summarise(report: slo_math.BudgetReport, slo_window: str, attribution: AttributionStatus | None = None) -> str:
    """One line for status, events and the log, e.g. 'Breaching: 47.3% of the 30d budget left, ...'.

    ``slo_window``: 30d, or the calendar period's name (Month)."""
    burn = report.burn_rates.get(slo_math.CURRENT_BURN_WINDOW)
    firing = [a.policy.name for a in report.alerts if a.firing]
    parts = [
        f"{report.verdict.value}: {_pct(max(report.remaining, 0.0))} of the {slo_window} budget left",
        f"SLI {report.sli * 100:.4f}%",
        f"burn {burn:.2f}x over 1h" if burn is not None else "no events in the last 1h",
    ]
    if firing:
        parts.append(f"firing: {', '.join(firing)}")
    if attribution is not None and attribution.available and attribution.note:
        parts.append(attribution.note)
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


def attribution_evidence(attribution: AttributionStatus | None) -> list[tuple[str, str]]:
    """The top contributors as evidence, so an explanation can name them (and nothing else) as the cause."""
    if attribution is None or not attribution.available:
        return []
    return [
        (
            "errorsBy:" + ",".join(f"{k}={v[:64]}" for k, v in entry.labels.items()),
            f"{entry.share * 100:.1f}% of {attribution.total_errors or 0:.6g} errors over {attribution.window}",
        )
        for entry in attribution.top
    ]


def review_findings(
    report: slo_math.BudgetReport,
    namespace: str,
    name: str,
    service: str,
    attribution: AttributionStatus | None = None,
) -> list[Finding]:
    """The review as findings, so the LLM stage can explain it exactly as it explains an Analysis."""
    resource = ResourceRef(kind="SLOReview", name=name, namespace=namespace)
    owners = [ResourceRef(kind="Service", name=service, namespace=namespace)]
    burns = [(f"burnRate:{w}", "no events" if v is None else f"{v:.4g}") for w, v in report.burn_rates.items()]
    causes = attribution_evidence(attribution)
    burns += causes
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
                    *causes,
                ],
                remediation="Find what changed when the burn started (deploys, dependencies, traffic); roll it back.",
            )
        )
    return found


async def explain(
    runtime: Runtime,
    report: slo_math.BudgetReport,
    spec: SLOReviewSpec,
    namespace: str,
    name: str,
    attribution: AttributionStatus | None = None,
) -> ExplainOutcome:
    """The optional LLM narrative, through the Analysis machinery; it cannot fail the review. Its only
    evidence is the review's numbers (burn rates, budget, the top error contributors)."""
    if runtime.explainer is None:
        return runs.NO_MODEL_SERVER
    options = runtime.llm_options(spec.llm)
    findings = review_findings(report, namespace, name, spec.service, attribution)
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


class _Review:
    """One review in progress: what it writes when it ends, whichever way it ends."""

    def __init__(self, request: Request, last: LastReview) -> None:
        self.request, self.last = request, last

    def finish(self, phase: Phase, ok: bool, why: Reason, message: str, seconds: float) -> dict[str, Any]:
        done = self.last.model_copy(update={"completed_at": now_rfc3339(), "duration_seconds": round(seconds, 4)})
        return {
            "phase": phase.value,
            "observedGeneration": self.request.generation,
            "summary": message[:512],
            "lastReview": done.model_dump(by_alias=True, mode="json", exclude_none=True),
            "conditions": self.request.ready(ok, why, message),
        }


async def _start(request: Request, reason: str, triggered: bool) -> _Review:
    """Phase Running, with the alert that asked for the review (if any) and the tokens handled."""
    annotations = request.annotations
    trigger = trigger_record(request.status, annotations.get(TRIGGER_ANNOTATION)) if triggered else None
    if trigger is not None:
        reason = f"alert {trigger.alertname or '?'} ({trigger.fingerprint})"
    last = LastReview(run_id=uuid.uuid4().hex[:12], reason=reason[:256], trigger=trigger, started_at=now_rfc3339())
    await request.writer.patch(
        {
            "phase": Phase.running.value,
            "lastReview": last.model_dump(by_alias=True, mode="json", exclude_none=True),
            "rerunToken": annotations.get(RERUN_ANNOTATION),
            "triggerToken": annotations.get(TRIGGER_ANNOTATION),
            "conditions": request.ready(False, Reason.running, f"reviewing ({reason})"),
        }
    )
    return _Review(request, last)


async def _explained(
    runtime: Runtime,
    review: _Review,
    report: slo_math.BudgetReport,
    spec: SLOReviewSpec,
    final: dict[str, Any],
    attribution: AttributionStatus | None,
) -> None:
    """Adds the LLM narrative (or clears an earlier one) and the Explained condition to ``final``."""
    request = review.request
    explained = None
    if spec.llm.enabled:
        explained = await explain(runtime, report, spec, request.namespace, request.name, attribution)
    status = explained.status if explained is not None else None
    final["explanation"] = status.model_dump(by_alias=True, mode="json", exclude_none=True) if status else None
    final["conditions"] = runs.explained_conditions(final["conditions"], explained, request.generation)


def with_rules(final: dict[str, Any], outcome: Outcome | None, generation: int) -> dict[str, Any]:
    """``final`` with status.rules and the RulesReady condition of this review's write (None: none made)."""
    if outcome is None:
        return final
    final["rules"] = outcome.status_value()
    value = ConditionStatus.true if outcome.ok else ConditionStatus.false
    conditions = final.get("conditions")
    final["conditions"] = set_condition(
        conditions, ConditionType.rules_ready, value, outcome.reason, outcome.message, generation
    )
    return final


async def write_rules(
    publisher: RulesPublisher | None, request: Request, spec: SLOReviewSpec, logger: HandlerLogger
) -> Outcome | None:
    """The rules depend on the spec alone, so they are written whatever Prometheus answers; a failure is
    reported in status (RulesReady=False), never fails the review."""
    if publisher is None:
        return None
    outcome = await publisher.publish(request.body, spec, request.status.get("rules"))
    kind = outcome.status.kind.value if outcome.status is not None else "none"
    metrics.SLO_RULES.labels(kind=kind, reason=outcome.reason.value).inc()
    if not outcome.ok and outcome.reason is not Reason.rules_disabled:
        logger.warning("slo rules %s/%s: %s", request.namespace, request.name, outcome.message)
        runs.announce(request.body, outcome.reason, outcome.message, warning=True)
    return outcome


async def _burn_context(
    runtime: Runtime,
    request: Request,
    prometheus: PrometheusTarget,
    spec: SLOReviewSpec,
    report: slo_math.BudgetReport,
    window: SLOWindow,
    at: dt.datetime,
    logger: HandlerLogger,
) -> tuple[AttributionStatus | None, list[IncidentLink]]:
    """For a review that is not Healthy: who caused the burn (one query) and which IncidentReports cover it
    (one namespaced LIST). Either may fail; the review still completes."""
    if report.verdict is Verdict.healthy:
        return None, []
    burning = slo_math.attribution_window(report.burn_rates, window.lookback)
    attribution = None
    if spec.attribution.labels:
        timeout = runtime.settings.prometheus_timeout_seconds
        labels = list(spec.attribution.labels)
        attribution = await attribute(prometheus, spec.sli, labels, burning, at=at, timeout=timeout)
    since = at - dt.timedelta(seconds=slo_math.window_seconds(burning))
    try:
        incidents = await covering_incidents(runtime.api, request.namespace, since, at)
    except kubeapi.RETRIED_ERRORS as err:
        logger.warning("slo review %s/%s: incident reports unreadable: %s", request.namespace, request.name, err)
        incidents = []
    return attribution, incidents


async def review(
    body: Mapping[str, Any],
    runtime: Runtime,
    logger: HandlerLogger,
    *,
    reason: str,
    triggered: bool = False,
    rules: RulesPublisher | None = None,
    handled: Carried | None = None,
) -> None:
    """Review one SLO and write its status; failures become conditions, never crashes.

    ``rules``: where the review's Prometheus rules are written (None: the operator writes none); ``handled``:
    Kopf's record of the change being answered, written with the final status (``runs.handled``)."""
    request = Request.of(body, KIND, runtime.api, handled)
    spec = await request.validated(SLOReviewSpec)
    prometheus = await request.allowed_prometheus(runtime, spec.prometheus.url)
    current = await _start(request, reason, triggered)
    reason = current.last.reason  # names the alert when one asked for this review
    where = f"{request.namespace}/{request.name}"
    written = await write_rules(rules, request, spec, logger)
    generation = request.generation
    if prometheus is None:
        message = "no Prometheus: set spec.prometheus.url or INFRAGENIUS_PROMETHEUS_URL"
        final = current.finish(Phase.failed, False, Reason.prometheus_not_configured, message, 0.0)
        await request.writer.finish(with_rules(final, written, generation))
        runs.announce(body, Reason.prometheus_not_configured, message, warning=True)
        return

    timeout = runtime.settings.prometheus_timeout_seconds
    at = review_instant(spec.evaluation_time)
    window = resolve(spec, at)
    data = await collect(prometheus, spec.sli, window.lookback, at=at, timeout=timeout)
    metrics.dependency("prometheus", not data.failed)
    if data.failed:
        metrics.RUNS.labels(kind=KIND.kind, outcome="query_failed").inc()
        detail = "; ".join(f"{lookback}: {error}" for lookback, error in data.errors.items())
        message = f"Prometheus {prometheus.url} could not answer: {detail}"
        # Keep the last good values: Ready=False says they are stale; lastReview says since when.
        final = current.finish(Phase.failed, False, Reason.query_failed, message, data.seconds)
        await request.writer.finish(with_rules(final, written, generation))
        runs.announce(body, Reason.query_failed, message, warning=True)
        logger.info("slo review %s failed: %s (reason: %s)", where, message, reason)
        return
    if data.no_data:
        metrics.RUNS.labels(kind=KIND.kind, outcome="no_data").inc()
        message = f"no events over {window.lookback} at {rfc3339(at)}: {data.queries[window.lookback]}"
        final = current.finish(Phase.completed, False, Reason.no_data, message, data.seconds)
        final.update(dict.fromkeys((*_COMPUTED, "explanation")))
        final["conditions"] = without_condition(final["conditions"], ConditionType.explained)
        final["evaluatedAt"] = rfc3339(data.evaluated_at)
        final["period"] = window.status().model_dump(by_alias=True, mode="json")
        await request.writer.finish(with_rules(final, written, generation))
        runs.announce(body, Reason.no_data, message, warning=True)
        logger.info("slo review %s: no data (reason: %s)", where, reason)
        return

    assert data.window_error_ratio is not None
    report = slo_math.evaluate(
        spec.objective, window.lookback, data.window_error_ratio, data.error_ratios, slo_window_s=window.seconds
    )
    attribution, incidents = await _burn_context(runtime, request, prometheus, spec, report, window, at, logger)
    summary = summarise(report, window.label, attribution)
    final = current.finish(Phase.completed, True, Reason.reviewed, summary, data.seconds)
    final.update(computed_status(report))
    # Healthy or not configured: null, clearing an earlier review's contributors.
    final["attribution"] = None if attribution is None else attribution.model_dump(by_alias=True, mode="json")
    final["incidents"] = [link.model_dump(by_alias=True, mode="json", exclude_none=True) for link in incidents]
    final["period"] = window.status().model_dump(by_alias=True, mode="json")
    final["evaluatedAt"] = rfc3339(data.evaluated_at)
    await _explained(runtime, current, report, spec, final, attribution)
    await request.writer.finish(with_rules(final, written, generation))
    metrics.RUNS.labels(kind=KIND.kind, outcome="completed").inc()
    metrics.observe_stage(KIND.kind, "query", data.seconds)
    logger.info("slo review %s: %s (reason: %s)", where, summary, reason)
    runs.announce(body, "SLOReviewed", summary)


def needs_review_on_resume(body: Mapping[str, Any]) -> bool:
    """After an operator restart: review what never finished, is behind its spec (failed reviews too: a
    review's failure is Prometheus's, worth trying again), or has an unhandled request."""
    return runs.never_finished(body) or rerun_requested(body) or trigger_pending(body) or runs.behind_spec(body)


def review_due(body: Mapping[str, Any], now: dt.datetime | None = None) -> bool:
    """``spec.interval`` has passed since the last review finished (failed ones too: that is their retry)."""
    status = body.get("status") or {}
    if status.get("phase") == Phase.running.value:
        return False
    completed = (status.get("lastReview") or {}).get("completedAt")
    return runs.interval_elapsed((body.get("spec") or {}).get("interval"), completed, now)


rerun_requested = runs.rerun_requested


def review_request(body: Mapping[str, Any], reason: str) -> tuple[str, bool] | None:
    """What a change of an SLOReview asks for: a review as (reason, triggered by an alert), or None (labels or
    other annotations changed). A new spec or an unfinished review comes first (its Running write records
    both tokens), then an alert's trigger, then a rerun."""
    triggered = trigger_pending(body)
    if runs.behind_spec(body) or runs.never_finished(body):
        return reason, triggered
    if triggered:
        return "alert", True
    if rerun_requested(body):
        return "rerun annotation", False
    return None


def trigger_pending(body: Mapping[str, Any]) -> bool:
    return runs.token_pending(body, TRIGGER_ANNOTATION, "triggerToken")
