"""The server's operations, shared by the MCP face and the JSON API: every decision is made here.

Each operation runs through one gate: the caller's rate limit, then authorization (API key scope and
namespace, or a SubjectAccessReview), then the work, then one audit row, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ValidationError

from infragenius.history import server_tables
from infragenius.history.trends import TrendFilter, finding_trends
from infragenius.models.analysis import AnalysisStatus
from infragenius.models.api import ANALYSIS, API_VERSION, GROUP, INCIDENT_REPORT, SLO_REVIEW, VERSION
from infragenius.models.findings import Finding, Severity
from infragenius.models.incident import IncidentReportSpec, IncidentReportStatus
from infragenius.models.slo import SLOReviewStatus, Verdict
from infragenius.server import metrics, schemas
from infragenius.server.audit import AuditTrail, audit_row
from infragenius.server.errors import ErrorCode, ServiceError
from infragenius.server.identity import AuthMethod, Identity, Scope
from infragenius.server.kubeauth import KubernetesAuthenticator
from infragenius.server.ratelimit import RateLimiter
from infragenius.server.readers import RunReader

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)

PLURAL_OF = {
    schemas.RunKind.analysis: ANALYSIS.plural,
    schemas.RunKind.slo_review: SLO_REVIEW.plural,
    schemas.RunKind.incident_report: INCIDENT_REPORT.plural,
}
VERB_SCOPE = {"get": Scope.read, "list": Scope.read, "watch": Scope.read, "create": Scope.run}
VERDICT_RANK = {
    Verdict.exhausted.value: 0,
    Verdict.breaching.value: 1,
    Verdict.at_risk.value: 2,
    Verdict.healthy.value: 3,
}
FINISHED_PHASES = ("Completed", "Failed")
MAX_TIMELINE = 30
MAX_EVIDENCE = 5
HISTORY_DEFAULT_DAYS = 30
MAX_OFFSET = 100_000


@dataclass(frozen=True)
class Caller:
    identity: Identity
    face: str  # "mcp", "http" or "stdio": recorded in the audit trail


class Authorizer:
    """API keys: scope and namespace from the key. Kubernetes identities: a SubjectAccessReview. Local (stdio):
    nothing here, the API server checks the caller's own credentials on every request."""

    def __init__(self, kubernetes: KubernetesAuthenticator | None) -> None:
        self._kubernetes = kubernetes

    async def require(self, identity: Identity, verb: str, plural: str, namespace: str) -> None:
        if identity.method is AuthMethod.local:
            return
        if identity.method is AuthMethod.api_key:
            scope = VERB_SCOPE[verb]
            if scope not in identity.scopes:
                raise ServiceError(
                    ErrorCode.forbidden, f"this API key lacks the scope {scope.value!r} (needed to {verb} {plural})"
                )
            if "*" not in identity.namespaces and namespace not in identity.namespaces:
                raise ServiceError(ErrorCode.forbidden, f"this API key is not allowed in namespace {namespace!r}")
            return
        if self._kubernetes is None:
            raise ServiceError(ErrorCode.forbidden, "Kubernetes identities are not accepted by this server")
        allowed, _reason = await self._kubernetes.allowed(identity, verb, plural, namespace)
        if not allowed:
            raise ServiceError(
                ErrorCode.forbidden,
                f"{identity.username} may not {verb} {plural}.{GROUP} in namespace {namespace!r}",
            )


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = json.loads(raw)["o"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ServiceError(ErrorCode.invalid_argument, "cursor is not one this server returned") from None
    if not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise ServiceError(ErrorCode.invalid_argument, "cursor is not one this server returned")
    return offset


def _cut(text: str | None, limit: int = schemas.MAX_TEXT) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status_model(model: type[T], obj: dict[str, Any]) -> T:
    try:
        return model.model_validate(obj.get("status") or {})
    except ValidationError:
        # A status written by a newer operator: say so rather than guess at its fields.
        raise ServiceError(
            ErrorCode.unavailable, f"the status of {obj['metadata']['name']} does not match this server's version"
        ) from None


def run_summary(kind: schemas.RunKind, obj: dict[str, Any]) -> schemas.RunSummary:
    meta, status = obj["metadata"], obj.get("status") or {}
    counts = status.get("counts") if kind is schemas.RunKind.analysis else None
    return schemas.RunSummary(
        kind=kind,
        namespace=meta["namespace"],
        name=meta["name"],
        phase=str(status.get("phase") or "Pending"),
        summary=_cut(status.get("summary"), 512),
        created=meta.get("creationTimestamp"),
        completed_at=status.get("completedAt"),
        counts=schemas.Counts(
            critical=int(counts.get("critical", 0)),
            warning=int(counts.get("warning", 0)),
            info=int(counts.get("info", 0)),
        )
        if isinstance(counts, dict)
        else None,
        verdict=status.get("verdict") if kind is schemas.RunKind.slo_review else None,
        service=_cut(str((obj.get("spec") or {}).get("service") or ""), 253) or None
        if kind is schemas.RunKind.slo_review
        else None,
        top_cause=_cut(status.get("topCause"), 256) or None if kind is schemas.RunKind.incident_report else None,
    )


def _finding_out(finding: Finding) -> schemas.FindingOut:
    return schemas.FindingOut(
        id=finding.id,
        detector=finding.detector,
        severity=finding.severity.value,
        resource=str(finding.resource),
        title=finding.title,
        evidence=[_cut(f"{e.source}: {e.value}", 300) for e in finding.evidence[:MAX_EVIDENCE]],
        remediation=_cut(finding.remediation),
    )


def _severity_at_least(value: str, minimum: schemas.SeverityFilter | None) -> bool:
    return minimum is None or Severity(value).at_least(Severity(minimum.value))


def _most_severe_first(summary: schemas.RunSummary) -> tuple[Any, ...]:
    if summary.counts is not None:
        return (-summary.counts.critical, -summary.counts.warning, -summary.counts.info, summary.name)
    if summary.kind is schemas.RunKind.slo_review:
        return (VERDICT_RANK.get(summary.verdict or "", 9), summary.name)
    # Incident reports: newest first.
    return (-(dt.datetime.fromisoformat(summary.created.replace("Z", "+00:00")).timestamp() if summary.created else 0),)


class InfraGeniusService:
    def __init__(
        self,
        *,
        reader: RunReader,
        api: client.ApiClient,
        history: AsyncConnectionPool | None,
        authorizer: Authorizer,
        limiter: RateLimiter | None,
        audit: AuditTrail | None,
        trigger_max_wait_seconds: float,
    ) -> None:
        self._reader = reader
        self._custom = client.CustomObjectsApi(api)
        self._history = history
        self._authorizer = authorizer
        self._limiter = limiter
        self._audit = audit
        self._trigger_max_wait = trigger_max_wait_seconds

    # --- the gate every operation passes -------------------------------------------------------------

    async def _gated(
        self,
        caller: Caller,
        operation: str,
        namespace: str,
        checks: list[tuple[str, str]],
        work: Callable[[], Awaitable[T]],
    ) -> T:
        started = time.monotonic()
        outcome, size = "ok", 0
        try:
            if self._limiter is not None and caller.identity.method is not AuthMethod.local:
                await self._limiter.check(caller.identity.principal, caller.identity.tier)
            for verb, plural in checks:
                await self._authorizer.require(caller.identity, verb, plural, namespace)
            result = await work()
            size = len(result.model_dump_json())
            return result
        except ServiceError as err:
            outcome = err.code.value
            raise
        except Exception:
            outcome = "internal"
            log.exception("%s failed", operation)
            raise ServiceError(ErrorCode.unavailable, f"{operation} failed inside the server; see its log") from None
        finally:
            metrics.CALLS.labels(caller.face, operation, outcome).inc()
            metrics.CALL_SECONDS.labels(caller.face, operation).observe(time.monotonic() - started)
            if self._audit is not None:
                self._audit.record(
                    audit_row(
                        principal=caller.identity.principal,
                        auth=caller.identity.method.value,
                        face=caller.face,
                        operation=operation,
                        namespace=namespace,
                        outcome=outcome,
                        started=started,
                        size=size,
                    )
                )

    def record_refusal(self, *, face: str, operation: str, outcome: str, started: float) -> None:
        """Audit a call refused before it had an identity (no or a bad credential)."""
        metrics.CALLS.labels(face, operation, outcome).inc()
        if self._audit is not None:
            self._audit.record(
                audit_row(
                    principal="anonymous",
                    auth="none",
                    face=face,
                    operation=operation,
                    namespace=None,
                    outcome=outcome,
                    started=started,
                    size=0,
                )
            )

    # --- reads ---------------------------------------------------------------------------------------

    async def list_runs(self, caller: Caller, query: schemas.ListRunsInput) -> schemas.RunPage:
        plural = PLURAL_OF[query.kind]

        async def work() -> schemas.RunPage:
            if query.kind is not schemas.RunKind.analysis and (query.severity or query.detector):
                raise ServiceError(ErrorCode.invalid_argument, "severity and detector filter Analyses only")
            offset = decode_cursor(query.cursor)
            objects = await self._reader.list(plural, query.namespace)
            summaries = []
            for obj in objects:
                if query.kind is schemas.RunKind.analysis and (query.severity or query.detector):
                    findings = (obj.get("status") or {}).get("findings") or []
                    if not any(
                        _severity_at_least(str(f.get("severity", "info")), query.severity)
                        and (query.detector is None or f.get("detector") == query.detector)
                        for f in findings
                    ):
                        continue
                summaries.append(run_summary(query.kind, obj))
            summaries.sort(key=_most_severe_first)
            page = summaries[offset : offset + query.limit]
            more = offset + query.limit < len(summaries)
            return schemas.RunPage(
                items=page, total=len(summaries), next_cursor=encode_cursor(offset + query.limit) if more else None
            )

        return await self._gated(caller, f"list_{plural}", query.namespace, [("list", plural)], work)

    async def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        obj = await self._reader.get(plural, namespace, name)
        if obj is None:
            raise ServiceError(ErrorCode.not_found, f"no {plural} named {name!r} in namespace {namespace!r}")
        return obj

    def _analysis_detail(self, obj: dict[str, Any], query: schemas.GetAnalysisInput | None) -> schemas.AnalysisDetail:
        status = _status_model(AnalysisStatus, obj)
        findings = [
            f
            for f in status.findings
            if query is None
            or (
                _severity_at_least(f.severity.value, query.severity)
                and (query.detector is None or f.detector == query.detector)
                and (query.resource_kind is None or f.resource.kind == query.resource_kind)
            )
        ]
        findings.sort(key=lambda f: (f.severity.rank, f.detector, f.id))
        offset = decode_cursor(query.cursor) if query else 0
        limit = query.limit if query else schemas.MAX_PAGE
        explanation = None
        if status.explanation is not None:
            explanation = schemas.ExplanationOut(
                summary=_cut(status.explanation.summary),
                root_causes=[_cut(str(getattr(c, "title", c))) for c in status.explanation.root_causes],
                model=status.explanation.model,
            )
        return schemas.AnalysisDetail(
            run=run_summary(schemas.RunKind.analysis, obj),
            findings=[_finding_out(f) for f in findings[offset : offset + limit]],
            total_findings=len(findings),
            findings_in_run=max(status.total_findings, len(status.findings)),
            next_cursor=encode_cursor(offset + limit) if offset + limit < len(findings) else None,
            explanation=explanation,
            missing_sources=[_cut(f"{m.source}: {m.error or m.status}", 200) for m in status.missing],
        )

    async def get_analysis(self, caller: Caller, query: schemas.GetAnalysisInput) -> schemas.AnalysisDetail:
        async def work() -> schemas.AnalysisDetail:
            return self._analysis_detail(await self._get(ANALYSIS.plural, query.namespace, query.name), query)

        return await self._gated(caller, "get_analysis", query.namespace, [("get", ANALYSIS.plural)], work)

    def _incident_detail(self, obj: dict[str, Any]) -> schemas.IncidentDetail:
        status = _status_model(IncidentReportStatus, obj)
        timeline = [
            _cut(f"{e.time} [{e.kind.value}/{e.severity.value}] {e.resource}: {e.summary}", 300)
            for e in status.timeline[-MAX_TIMELINE:]
        ]
        return schemas.IncidentDetail(
            run=run_summary(schemas.RunKind.incident_report, obj),
            window={"start": status.window.start, "end": status.window.end} if status.window else None,
            suspected_causes=[
                schemas.CauseOut(rank=c.rank, title=c.title, resource=str(c.resource), score=c.score, why=_cut(c.why))
                for c in status.suspected_causes
            ],
            timeline=timeline,
            timeline_truncated=status.timeline_truncated or len(status.timeline) > MAX_TIMELINE,
            pods_affected=status.impact.pods_affected,
            restarts=status.impact.restarts,
            postmortem_markdown=_cut(status.postmortem.markdown, schemas.MAX_POSTMORTEM),
        )

    async def get_incident_report(self, caller: Caller, query: schemas.GetResourceInput) -> schemas.IncidentDetail:
        async def work() -> schemas.IncidentDetail:
            return self._incident_detail(await self._get(INCIDENT_REPORT.plural, query.namespace, query.name))

        return await self._gated(
            caller, "get_incident_report", query.namespace, [("get", INCIDENT_REPORT.plural)], work
        )

    async def slo_status(self, caller: Caller, query: schemas.GetResourceInput) -> schemas.SLOStatus:
        async def work() -> schemas.SLOStatus:
            obj = await self._get(SLO_REVIEW.plural, query.namespace, query.name)
            status = _status_model(SLOReviewStatus, obj)
            return schemas.SLOStatus(
                run=run_summary(schemas.RunKind.slo_review, obj),
                verdict=status.verdict.value if status.verdict else None,
                sli=status.sli,
                budget_remaining_percent=status.error_budget.remaining_percent if status.error_budget else None,
                burn_rates=status.burn_rates.model_dump(by_alias=True) if status.burn_rates else {},
                time_to_exhaustion=status.time_to_exhaustion,
                time_to_exhaustion_seconds=status.time_to_exhaustion_seconds,
                alerts_firing=[a.name for a in status.alerts if a.firing],
                evaluated_at=status.evaluated_at,
            )

        return await self._gated(caller, "slo_status", query.namespace, [("get", SLO_REVIEW.plural)], work)

    async def search_history(self, caller: Caller, query: schemas.SearchHistoryInput) -> schemas.HistoryPage:
        async def work() -> schemas.HistoryPage:
            if self._history is None:
                raise ServiceError(ErrorCode.unavailable, "finding history (Postgres) is not configured on this server")
            offset = decode_cursor(query.cursor)
            until = query.until or dt.datetime.now(dt.UTC)
            since = query.since or until - dt.timedelta(days=HISTORY_DEFAULT_DAYS)
            if since.tzinfo is None or until.tzinfo is None:
                raise ServiceError(ErrorCode.invalid_argument, "since and until need a zone, e.g. 2026-01-01T00:00:00Z")
            if since >= until:
                raise ServiceError(ErrorCode.invalid_argument, "since must be before until")
            try:
                rows = await server_tables.search_finding_history(
                    self._history,
                    server_tables.FindingHistoryQuery(
                        namespace=query.namespace,
                        workload=query.workload,
                        detector=query.detector,
                        severity=query.severity.value if query.severity else None,
                        since=since,
                        until=until,
                        offset=offset,
                        limit=query.limit,
                    ),
                )
            except ServiceError:
                raise
            except Exception as err:  # psycopg's many error types: the database is what failed
                log.warning("history search failed: %s", type(err).__name__)
                raise ServiceError(
                    ErrorCode.unavailable, "finding history (Postgres) is unreachable; try again"
                ) from None
            items = [
                schemas.HistoryEntry(
                    finding_id=row["finding_id"],
                    detector=row["detector"],
                    severity=row["severity"],
                    resource=f"{row['kind']}/{query.namespace}/{row['name']}",
                    owner=f"{row['owner_kind']}/{row['owner_name']}" if row["owner_name"] else None,
                    title=_cut(row["title"], 256),
                    first_seen=row["first_seen"],
                    last_seen=row["last_seen"],
                    occurrences=row["occurrences"],
                )
                for row in rows[: query.limit]
            ]
            more = len(rows) > query.limit
            return schemas.HistoryPage(items=items, next_cursor=encode_cursor(offset + query.limit) if more else None)

        return await self._gated(caller, "search_history", query.namespace, [("list", ANALYSIS.plural)], work)

    async def trends(self, caller: Caller, query: schemas.TrendsInput) -> schemas.Trends:
        async def work() -> schemas.Trends:
            if self._history is None:
                raise ServiceError(ErrorCode.unavailable, "finding history (Postgres) is not configured on this server")
            scope = TrendFilter(query.namespace, query.workload, query.detector, query.days, query.bucket_hours)
            try:
                async with self._history.connection() as conn:
                    found = await finding_trends(conn, scope, query.top)
            except Exception as err:  # psycopg's many error types: the database is what failed
                log.warning("trends failed: %s", type(err).__name__)
                raise ServiceError(
                    ErrorCode.unavailable, "finding history (Postgres) is unreachable; try again"
                ) from None
            return schemas.Trends.model_validate(
                {
                    **found.as_json(),
                    "recurring": [{**r, "title": _cut(r["title"], 256)} for r in found.as_json()["recurring"]],
                }
            )

        return await self._gated(caller, "trends", query.namespace, [("list", ANALYSIS.plural)], work)

    # --- triggers ------------------------------------------------------------------------------------

    async def _create(self, caller: Caller, plural: str, kind: str, namespace: str, spec: dict[str, Any]) -> str:
        body = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {
                "generateName": "ask-",
                "labels": {"app.kubernetes.io/created-by": "infragenius-server"},
                # Who asked, for the cluster's own audit log; the principal names a key or a user, no secret.
                "annotations": {f"{GROUP}/requested-by": caller.identity.principal[:253]},
            },
            "spec": spec,
        }
        try:
            created: Any = await asyncio.to_thread(
                self._custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                body,
                _request_timeout=30,
            )
        except client.ApiException as err:
            if err.status in (401, 403):
                raise ServiceError(
                    ErrorCode.forbidden, f"the API server refused to create {plural} in {namespace!r}"
                ) from None
            if err.status in (400, 422):
                raise ServiceError(
                    ErrorCode.invalid_argument, f"the API server refused the {kind}: {_cut(err.reason, 200)}"
                ) from None
            raise ServiceError(
                ErrorCode.unavailable, f"the API server could not create the {kind} ({err.status})"
            ) from None
        return str(created["metadata"]["name"])

    async def _wait_finished(
        self, plural: str, namespace: str, name: str, wait_seconds: float
    ) -> dict[str, Any] | None:
        """The object once its phase is final, or the latest seen when the wait runs out (None if never seen)."""
        deadline = time.monotonic() + min(wait_seconds, self._trigger_max_wait)
        latest = None
        while True:
            latest = await self._reader.get(plural, namespace, name) or latest
            if latest is not None and (latest.get("status") or {}).get("phase") in FINISHED_PHASES:
                return latest
            if time.monotonic() >= deadline:
                return latest
            await asyncio.sleep(0.25)

    async def trigger_analysis(self, caller: Caller, query: schemas.TriggerAnalysisInput) -> schemas.TriggerResult:
        async def work() -> schemas.TriggerResult:
            name = await self._create(caller, ANALYSIS.plural, ANALYSIS.kind, query.namespace, {})
            obj = await self._wait_finished(ANALYSIS.plural, query.namespace, name, query.wait_seconds)
            phase = str(((obj or {}).get("status") or {}).get("phase") or "Pending")
            finished = phase in FINISHED_PHASES
            return schemas.TriggerResult(
                kind=schemas.RunKind.analysis,
                namespace=query.namespace,
                name=name,
                finished=finished,
                phase=phase,
                analysis=self._analysis_detail(obj, None) if finished and obj else None,
            )

        return await self._gated(caller, "trigger_analysis", query.namespace, [("create", ANALYSIS.plural)], work)

    async def trigger_incident_report(
        self, caller: Caller, query: schemas.TriggerIncidentInput
    ) -> schemas.TriggerResult:
        async def work() -> schemas.TriggerResult:
            # The CRD's own model checks the window, so the server cannot ask for what the API server refuses.
            window = {k: v for k, v in (("since", query.since), ("start", query.start), ("end", query.end)) if v}
            try:
                spec = IncidentReportSpec.model_validate(window or {"since": "30m"}).model_dump(
                    by_alias=True, exclude_defaults=True
                )
            except ValidationError as err:
                problems = "; ".join(str(e["msg"]) for e in err.errors()[:3])
                raise ServiceError(ErrorCode.invalid_argument, f"window: {problems}") from None
            name = await self._create(caller, INCIDENT_REPORT.plural, INCIDENT_REPORT.kind, query.namespace, spec)
            obj = await self._wait_finished(INCIDENT_REPORT.plural, query.namespace, name, query.wait_seconds)
            phase = str(((obj or {}).get("status") or {}).get("phase") or "Pending")
            finished = phase in FINISHED_PHASES
            return schemas.TriggerResult(
                kind=schemas.RunKind.incident_report,
                namespace=query.namespace,
                name=name,
                finished=finished,
                phase=phase,
                incident=self._incident_detail(obj) if finished and obj else None,
            )

        return await self._gated(
            caller, "trigger_incident_report", query.namespace, [("create", INCIDENT_REPORT.plural)], work
        )
