"""What the server's operations take and return: one set of pydantic models for the MCP tools' input and
output schemas and the JSON API's OpenAPI document.

Outputs are bounded (pages of at most MAX_PAGE items, long texts cut) and carry a cursor for the rest.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from infragenius.models.common import DNS_LABEL_PATTERN, DURATION_PATTERN, RFC3339_PATTERN

MAX_PAGE = 50
MAX_TEXT = 600
MAX_POSTMORTEM = 8000

Namespace = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="Kubernetes namespace (a DNS label: lowercase letters, digits and '-').",
    ),
]
ResourceName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="metadata.name of the resource (lowercase DNS subdomain).",
    ),
]
Cursor = Annotated[
    str | None,
    Field(default=None, max_length=64, description="next_cursor from the previous page; omit for the first page."),
]
PageSize = Annotated[int, Field(default=20, ge=1, le=MAX_PAGE, description=f"Items per page (1 to {MAX_PAGE}).")]


class RunKind(StrEnum):
    analysis = "Analysis"
    slo_review = "SLOReview"
    incident_report = "IncidentReport"


class SeverityFilter(StrEnum):
    critical = "critical"
    warning = "warning"
    info = "info"


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- inputs ------------------------------------------------------------------------------------------


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class ListRunsInput(Input):
    namespace: Namespace
    kind: RunKind = Field(description="Which custom resource to list.")
    severity: SeverityFilter | None = Field(
        default=None, description="Only Analyses with at least one finding this severe or worse."
    )
    detector: str | None = Field(default=None, max_length=63, description="Only Analyses with a finding of it.")
    cursor: Cursor = None
    limit: PageSize = 20


class GetAnalysisInput(Input):
    namespace: Namespace
    name: ResourceName
    severity: SeverityFilter | None = Field(default=None, description="Only findings this severe or worse.")
    detector: str | None = Field(default=None, max_length=63, description="Only findings of this detector.")
    resource_kind: str | None = Field(
        default=None, max_length=63, description="Only findings about this kind, e.g. Deployment or Pod."
    )
    cursor: Cursor = None
    limit: PageSize = 20


class GetResourceInput(Input):
    namespace: Namespace
    name: ResourceName


class SearchHistoryInput(Input):
    namespace: Namespace
    workload: str | None = Field(
        default=None, max_length=253, description="A resource name or the workload owning it, e.g. checkout."
    )
    detector: str | None = Field(default=None, max_length=63)
    severity: SeverityFilter | None = None
    since: dt.datetime | None = Field(default=None, description="RFC 3339; default: 30 days ago.")
    until: dt.datetime | None = Field(default=None, description="RFC 3339; default: now.")
    cursor: Cursor = None
    limit: PageSize = 20


class TrendsInput(Input):
    namespace: Namespace
    workload: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[A-Za-z]+/[-a-z0-9.]+$",
        description="Kind/name, e.g. Deployment/checkout.",
    )
    detector: str | None = Field(default=None, max_length=63)
    days: int = Field(default=30, ge=1, le=365, description="How far back.")
    bucket_hours: int = Field(default=24, ge=1, le=744, description="Open findings per bucket of this many hours.")
    top: int = Field(default=10, ge=1, le=50, description="Recurring problems listed.")


class TriggerAnalysisInput(Input):
    namespace: Namespace
    wait_seconds: float = Field(
        default=60, ge=0, le=600, description="How long to wait for the result (0: return at once)."
    )


class TriggerIncidentInput(Input):
    namespace: Namespace
    since: str | None = Field(
        default=None,
        max_length=20,
        pattern=DURATION_PATTERN,
        description="The window to reconstruct, ending now, e.g. 30m or 2h (default 30m when start/end are absent).",
    )
    start: str | None = Field(
        default=None, max_length=64, pattern=RFC3339_PATTERN, description="RFC 3339 window start; give end too."
    )
    end: str | None = Field(default=None, max_length=64, pattern=RFC3339_PATTERN, description="RFC 3339 window end.")
    wait_seconds: float = Field(default=60, ge=0, le=600, description="How long to wait for the result.")


# --- outputs -----------------------------------------------------------------------------------------


class Counts(Output):
    critical: int = 0
    warning: int = 0
    info: int = 0


class RunSummary(Output):
    kind: RunKind
    namespace: str
    name: str
    phase: str
    summary: str
    created: str | None = None
    completed_at: str | None = None
    counts: Counts | None = Field(default=None, description="Analyses: findings by severity.")
    verdict: str | None = Field(default=None, description="SLOReviews: Healthy, AtRisk, Breaching or Exhausted.")
    service: str | None = Field(default=None, description="SLOReviews: the service the SLO is about.")
    top_cause: str | None = Field(default=None, description="IncidentReports: the top suspected cause.")


class RunPage(Output):
    items: list[RunSummary]
    total: int
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")


class FindingOut(Output):
    id: str
    detector: str
    severity: str
    resource: str = Field(description="kind/namespace/name")
    title: str
    evidence: list[str]
    remediation: str


class ExplanationOut(Output):
    summary: str | None = None
    root_causes: list[str] = Field(default_factory=list)
    model: str | None = None


class AnalysisDetail(Output):
    run: RunSummary
    findings: list[FindingOut] = Field(description="Most severe first.")
    total_findings: int = Field(description="Findings matching the filters in status (before paging).")
    findings_in_run: int = Field(
        description="Every finding the run made; status keeps the most severe spec.maxFindings of them."
    )
    next_cursor: str | None
    explanation: ExplanationOut | None = None
    missing_sources: list[str] = Field(default_factory=list, description="Sources that could not be read.")


class CauseOut(Output):
    rank: int
    title: str
    resource: str
    score: float
    why: str


class IncidentDetail(Output):
    run: RunSummary
    window: dict[str, str] | None = None
    suspected_causes: list[CauseOut]
    timeline: list[str] = Field(description="Newest last, at most 30 entries.")
    timeline_truncated: bool
    pods_affected: int = 0
    restarts: int = 0
    postmortem_markdown: str = Field(default="", description=f"The draft postmortem, cut at {MAX_POSTMORTEM} chars.")


class SLOStatus(Output):
    run: RunSummary
    verdict: str | None
    sli: float | None
    budget_remaining_percent: float | None
    burn_rates: dict[str, float | None]
    time_to_exhaustion: str | None
    time_to_exhaustion_seconds: float | None
    alerts_firing: list[str]
    evaluated_at: str | None


class HistoryEntry(Output):
    finding_id: str
    detector: str
    severity: str
    resource: str
    owner: str | None
    title: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    occurrences: int = Field(description="Runs that reported this problem.")


class HistoryPage(Output):
    items: list[HistoryEntry] = Field(description="Most severe first, then most recently seen.")
    next_cursor: str | None


class OpenFindingsPoint(Output):
    bucket: str
    critical: int
    warning: int
    info: int


class ResolveTimes(Output):
    detector: str
    severity: str
    resolved: int
    mean_seconds: float
    max_seconds: float


class RecurringProblem(Output):
    finding_id: str
    detector: str
    resource: str
    title: str
    episodes: int = Field(description="Times it appeared or came back (New and Reopened).")
    last: str


class Trends(Output):
    open_over_time: list[OpenFindingsPoint] = Field(description="Oldest bucket first.")
    time_to_resolve: list[ResolveTimes] = Field(description="Slowest to resolve first.")
    recurring: list[RecurringProblem] = Field(description="Most episodes first.")


class TriggerResult(Output):
    kind: RunKind
    namespace: str
    name: str
    finished: bool = Field(description="false: still running after wait_seconds; fetch it later by name.")
    phase: str
    analysis: AnalysisDetail | None = None
    incident: IncidentDetail | None = None


class ErrorBody(Output):
    code: str
    message: str
    retryAfterSeconds: float | None = None


class ErrorEnvelope(Output):
    error: ErrorBody


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
