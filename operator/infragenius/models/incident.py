"""The IncidentReport custom resource: spec and status."""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum

from pydantic import ConfigDict, Field, model_validator

from infragenius.models.api import RunStatus
from infragenius.models.common import (
    DNS_LABEL_PATTERN,
    CamelModel,
    Duration,
    LabelSelector,
    LLMSpec,
    SpecBool,
    SpecFloat,
    Timestamp,
    parse_duration,
)
from infragenius.models.findings import ResourceRef

MAX_TIMELINE = 200
MAX_CAUSES = 10
MAX_EVIDENCE = 10
# The status keeps this much of the postmortem; history keeps the whole.
MAX_POSTMORTEM_CHARS = 16000


class IncidentSeverity(str, Enum):
    sev1 = "SEV1"
    sev2 = "SEV2"
    sev3 = "SEV3"
    sev4 = "SEV4"


class TimelineKind(str, Enum):
    event = "Event"
    rollout = "Rollout"
    scaling = "Scaling"
    restart = "Restart"
    termination = "Termination"
    node_condition = "NodeCondition"
    metric_anomaly = "MetricAnomaly"
    change = "Change"  # a Service, ConfigMap or NetworkPolicy a failing workload depends on was written
    alert = "Alert"


class EntrySeverity(str, Enum):
    info = "info"
    warning = "warning"
    critical = "critical"


class MetricKind(str, Enum):
    error_rate = "errorRate"
    latency = "latency"
    other = "other"


class MetricQuery(CamelModel):
    """A PromQL expression yielding one series (e.g. an error ratio); a step in it becomes a MetricAnomaly."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    query: str = Field(min_length=1, max_length=2048, pattern=r"\S")
    kind: MetricKind = MetricKind.other
    min_change: SpecFloat = Field(default=0.0, ge=0, description="Smallest absolute change that counts as a step.")


class IncidentPrometheus(CamelModel):
    enabled: SpecBool = Field(default=True, description="Use Prometheus when the operator or this spec names one.")
    url: str | None = Field(default=None, max_length=512, pattern=r"^https?://[^\s]+$")
    queries: list[MetricQuery] = Field(default_factory=list, max_length=10)


class AlertRef(CamelModel):
    """The alert this incident is about (set by the Alertmanager webhook, or by hand)."""

    name: str = Field(min_length=1, max_length=253)
    fingerprint: str | None = Field(default=None, max_length=64)
    starts_at: Timestamp | None = None


class IncidentReportSpec(CamelModel):
    """Which namespace and time window to reconstruct."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.since) != (has(self.start) || has(self.end))",
                    "message": "give either since, or start and end, not both",
                },
                {"rule": "has(self.start) == has(self.end)", "message": "start and end go together"},
                {
                    "rule": "!has(self.start) || !has(self.end) || timestamp(self.start) < timestamp(self.end)",
                    "message": "start must be before end",
                },
                {
                    "rule": "!has(self.since) || duration(self.since) > duration('0s')",
                    "message": "since must be longer than 0s",
                },
            ]
        }
    )

    target_namespace: str | None = Field(
        default=None, max_length=63, pattern=DNS_LABEL_PATTERN, description="Default: the report's own namespace."
    )
    label_selector: LabelSelector | None = Field(default=None, description="e.g. app=checkout.")
    start: Timestamp | None = Field(default=None, description="RFC 3339 window start.")
    end: Timestamp | None = Field(default=None, description="RFC 3339 window end.")
    since: Duration | None = Field(default=None, description="Window ending now, e.g. 30m or 2h.")
    alert: AlertRef | None = None
    severity: IncidentSeverity = IncidentSeverity.sev3
    prometheus: IncidentPrometheus = Field(default_factory=IncidentPrometheus)
    llm: LLMSpec = Field(default_factory=LLMSpec)

    @model_validator(mode="after")
    def _one_window(self) -> IncidentReportSpec:
        explicit = self.start is not None or self.end is not None
        if (self.since is not None) == explicit:
            raise ValueError("give either since, or start and end, not both")
        if explicit and (self.start is None or self.end is None):
            raise ValueError("start and end go together")
        if self.start is not None and self.end is not None and _instant(self.start) >= _instant(self.end):
            raise ValueError("start must be before end")
        if self.since is not None and parse_duration(self.since).total_seconds() <= 0:
            raise ValueError("since must be longer than 0s")
        return self


def _instant(text: str) -> dt.datetime:
    """A validated Timestamp as an aware datetime (sub-microsecond digits dropped, as Python keeps none)."""
    return dt.datetime.fromisoformat(re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", text).replace("Z", "+00:00"))


class Window(CamelModel):
    start: str
    end: str


class TimelineEntry(CamelModel):
    time: str
    kind: TimelineKind
    severity: EntrySeverity = EntrySeverity.info
    resource: ResourceRef
    summary: str = Field(max_length=512)
    details: list[str] = Field(default_factory=list, max_length=20)


class Evidence(CamelModel):
    label: str = Field(max_length=128)
    value: str = Field(max_length=1024)


class SuspectedCause(CamelModel):
    rank: int = Field(ge=1)
    title: str = Field(max_length=256)
    resource: ResourceRef
    score: float = Field(ge=0, le=1)
    why: str = Field(max_length=1024, description="Why the cause is ranked where it is.")
    evidence: list[Evidence] = Field(default_factory=list, max_length=MAX_EVIDENCE)


class Impact(CamelModel):
    workloads: list[ResourceRef] = Field(default_factory=list, max_length=50)
    pods_affected: int = 0
    restarts: int = 0
    error_rate: float | None = Field(default=None, description="When metrics exist.")


class Postmortem(CamelModel):
    markdown: str = Field(default="", max_length=MAX_POSTMORTEM_CHARS + 200)
    truncated: bool = False
    total_chars: int = 0


class IncidentTimings(CamelModel):
    gather_seconds: float = 0.0
    analyse_seconds: float = 0.0
    total_seconds: float = 0.0


class IncidentReportStatus(RunStatus):
    run_id: str | None = Field(default=None, max_length=64)
    started_at: str | None = None
    completed_at: str | None = None
    top_cause: str | None = Field(default=None, max_length=256, description="Title of the top suspected cause.")
    window: Window | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list, max_length=MAX_TIMELINE)
    total_timeline_entries: int = 0
    timeline_truncated: bool = False
    suspected_causes: list[SuspectedCause] = Field(default_factory=list, max_length=MAX_CAUSES)
    impact: Impact = Field(default_factory=Impact)
    postmortem: Postmortem = Field(default_factory=Postmortem)
    missing: list[str] = Field(default_factory=list, max_length=64, description="Sources that failed.")
    timings: IncidentTimings = Field(default_factory=IncidentTimings)
