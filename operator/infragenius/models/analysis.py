"""The Analysis custom resource: spec and status."""

from __future__ import annotations

from enum import Enum

from pydantic import ConfigDict, Field, model_validator

from infragenius.models.api import RunStatus
from infragenius.models.common import (
    DNS_LABEL_PATTERN,
    CamelModel,
    Duration,
    LabelSelector,
    LLMSpec,
    PromRange,
    SpecBool,
    SpecInt,
    Timestamp,
    parse_duration,
)
from infragenius.models.explanation import ExplainedStatus
from infragenius.models.findings import Finding, FindingState, Severity

MIN_INTERVAL_SECONDS = 60
#: Findings kept in status stop at this many bytes of JSON (most severe first, so the tail goes); the rest
#: still count in totalFindings and set truncated. 500 findings of a noisy namespace would otherwise make a
#: status of about 1 MiB, close to etcd's 1.5 MiB limit on a whole object and slow for every reader.
STATUS_FINDINGS_BUDGET = 192 * 1024


class ResourceKind(str, Enum):
    """Kinds a user may restrict an analysis to."""

    Pod = "Pod"
    Deployment = "Deployment"
    ReplicaSet = "ReplicaSet"
    StatefulSet = "StatefulSet"
    DaemonSet = "DaemonSet"
    Job = "Job"
    CronJob = "CronJob"
    Service = "Service"
    Ingress = "Ingress"
    PersistentVolumeClaim = "PersistentVolumeClaim"
    HorizontalPodAutoscaler = "HorizontalPodAutoscaler"
    PodDisruptionBudget = "PodDisruptionBudget"
    Node = "Node"
    NetworkPolicy = "NetworkPolicy"
    ResourceQuota = "ResourceQuota"
    ConfigMap = "ConfigMap"
    ValidatingWebhookConfiguration = "ValidatingWebhookConfiguration"
    MutatingWebhookConfiguration = "MutatingWebhookConfiguration"


class DetectorName(str, Enum):
    """Every registered detector; the registry test keeps this in sync."""

    pod = "pod"
    deployment = "deployment"
    replicaset = "replicaset"
    statefulset = "statefulset"
    daemonset = "daemonset"
    job = "job"
    cronjob = "cronjob"
    hpa = "hpa"
    pdb = "pdb"
    service = "service"
    ingress = "ingress"
    pvc = "pvc"
    node = "node"
    configmap = "configmap"
    webhook = "webhook"
    networkpolicy = "networkpolicy"
    resourcequota = "resourcequota"
    events = "events"
    bestpractice = "bestpractice"
    metrics = "metrics"


class DetectorSelection(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.include) || !has(self.exclude) || self.include.all(d, !(d in self.exclude))",
                    "message": "a detector cannot be both included and excluded",
                }
            ]
        }
    )

    include: list[DetectorName] = Field(default_factory=list, max_length=64, description="Only these (empty: all).")
    exclude: list[DetectorName] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _disjoint(self) -> DetectorSelection:
        overlap = set(self.include) & set(self.exclude)
        if overlap:
            raise ValueError(f"detectors both included and excluded: {', '.join(sorted(d.value for d in overlap))}")
        return self


class PrometheusSpec(CamelModel):
    enabled: SpecBool = Field(default=True, description="Use Prometheus when the operator or this spec names one.")
    url: str | None = Field(default=None, max_length=512, pattern=r"^https?://[^\s]+$")
    lookback: PromRange = "1h"


FINDING_ID_PATTERN = r"^[a-f0-9]{16}$"
MAX_SILENCES = 50
MAX_TRACKED = 1000


class LifecycleSpec(CamelModel):
    """How findings are followed from run to run."""

    quiet_period: Duration = Field(
        default="24h", description="A finding back within this after it was resolved is Reopened, later New."
    )
    flap_threshold: SpecInt = Field(
        default=3, ge=2, le=20, description="Reopened this many times within the quiet period: Flapping."
    )


class Silence(CamelModel):
    """Hide matching findings from the counts and from notifications until ``expires``."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.findingId) || has(self.detector)", "message": "set findingId or detector"}
            ]
        }
    )

    finding_id: str | None = Field(default=None, pattern=FINDING_ID_PATTERN, max_length=16)
    detector: DetectorName | None = None
    resource: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[A-Za-z*?]+/[-a-z0-9.*?]+$",
        description="Kind/name of the finding's resource; * and ? match, e.g. Pod/checkout-*.",
    )
    expires: Timestamp
    reason: str = Field(min_length=1, max_length=256, pattern=r"\S")
    by: str | None = Field(default=None, max_length=128, description="Who silenced it (recorded in history).")

    @model_validator(mode="after")
    def _selects_something(self) -> Silence:
        if self.finding_id is None and self.detector is None:
            raise ValueError("set findingId or detector")
        return self


SINK_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
# Sink credentials are Secrets in the operator's namespace, registered by the platform team: labelled, and
# annotated with the namespaces whose Analyses may use them ("shop,payments" or "*").
NOTIFICATION_SECRET_LABEL = "infragenius.io/notification-secret"
NOTIFICATION_NAMESPACES_ANNOTATION = "infragenius.io/notification-namespaces"


class SinkType(str, Enum):
    slack = "Slack"  # incoming webhook, Block Kit
    teams = "Teams"  # workflow webhook, Adaptive Card
    pagerduty = "PagerDuty"  # Events API v2
    webhook = "Webhook"  # JSON, HMAC-SHA256 signed with a timestamp
    cloudevents = "CloudEvents"  # CloudEvents 1.0 over HTTP


class CloudEventsMode(str, Enum):
    binary = "binary"
    structured = "structured"


class SecretKeySelector(CamelModel):
    """A key of a Secret in the operator's namespace, labelled infragenius.io/notification-secret=true and
    annotated infragenius.io/notification-namespaces with this Analysis's namespace (or *)."""

    name: str = Field(pattern=SECRET_NAME_PATTERN, max_length=253)
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)


class NotificationSink(CamelModel):
    """Where to tell people about New, Reopened, Flapping and Resolved findings."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type in ['Slack', 'Teams', 'PagerDuty'] || has(self.url)",
                    "message": "Webhook and CloudEvents sinks need url",
                }
            ]
        }
    )

    name: str = Field(pattern=SINK_NAME_PATTERN, max_length=63)
    type: SinkType
    url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="Webhook and CloudEvents: the receiver; PagerDuty: overrides the Events API URL.",
    )
    secret_ref: SecretKeySelector | None = Field(
        default=None,
        description="Slack, Teams: the webhook URL; PagerDuty: the routing key; Webhook: the HMAC key.",
    )
    mode: CloudEventsMode = Field(default=CloudEventsMode.binary, description="CloudEvents content mode.")
    min_severity: Severity = Severity.warning
    rate_per_minute: SpecInt = Field(default=30, ge=1, le=6000, description="Messages per minute to this sink.")
    cooldown: Duration = Field(default="0s", description="At most one message per finding within this.")

    @model_validator(mode="after")
    def _has_what_its_type_needs(self) -> NotificationSink:
        if self.type in (SinkType.webhook, SinkType.cloudevents) and self.url is None:
            raise ValueError(f"a {self.type.value} sink needs url")
        if self.type in (SinkType.slack, SinkType.teams, SinkType.pagerduty) and self.secret_ref is None:
            raise ValueError(f"a {self.type.value} sink needs secretRef (its URL or routing key is a secret)")
        return self


class NotifySpec(CamelModel):
    sinks: list[NotificationSink] = Field(default_factory=list, max_length=10)
    digest_over: SpecInt = Field(
        default=10, ge=1, le=1000, description="More new or reopened findings than this in one run: one digest."
    )

    @model_validator(mode="after")
    def _distinct_names(self) -> NotifySpec:
        names = [sink.name for sink in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError("sink names must be distinct")
        return self


class AnalysisSpec(CamelModel):
    """What to analyse and how."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.interval) || duration(self.interval) >= duration('60s')",
                    "message": "interval must be at least 1m",
                },
                {
                    "rule": "!(has(self.allNamespaces) && self.allNamespaces && has(self.targetNamespace))",
                    "message": "allNamespaces and targetNamespace are exclusive",
                },
            ]
        }
    )

    target_namespace: str | None = Field(
        default=None, max_length=63, pattern=DNS_LABEL_PATTERN, description="Default: the Analysis's own namespace."
    )
    all_namespaces: bool = Field(
        default=False, description="Analyse the whole cluster (every namespace); Prometheus metrics are skipped."
    )
    label_selector: LabelSelector | None = Field(
        default=None, description="Label selector for workloads and pods, e.g. app=web."
    )
    kinds: list[ResourceKind] = Field(default_factory=list, max_length=32, description="Report only these kinds.")
    detectors: DetectorSelection = Field(default_factory=DetectorSelection)
    min_severity: Severity = Severity.info
    prometheus: PrometheusSpec = Field(default_factory=PrometheusSpec)
    interval: Duration | None = Field(default=None, description="Re-run periodically, at least every 1m.")
    max_findings: SpecInt = Field(default=50, ge=1, le=500, description="Findings kept in status (most severe first).")
    llm: LLMSpec = Field(default_factory=LLMSpec)
    lifecycle: LifecycleSpec = Field(default_factory=LifecycleSpec)
    silences: list[Silence] = Field(default_factory=list, max_length=MAX_SILENCES)
    notify: NotifySpec = Field(default_factory=NotifySpec)

    @model_validator(mode="after")
    def _one_target(self) -> AnalysisSpec:
        if self.all_namespaces and self.target_namespace:
            raise ValueError("allNamespaces and targetNamespace are exclusive")
        return self

    @model_validator(mode="after")
    def _interval_floor(self) -> AnalysisSpec:
        if self.interval is not None and parse_duration(self.interval).total_seconds() < MIN_INTERVAL_SECONDS:
            raise ValueError(f"interval must be at least {MIN_INTERVAL_SECONDS}s")
        return self


class SeverityCounts(CamelModel):
    critical: int = 0
    warning: int = 0
    info: int = 0


class SourceReport(CamelModel):
    """How gathering one source went (reported for failures and missing data)."""

    source: str = Field(max_length=128)
    status: str = Field(pattern=r"^(ok|error|no_data)$")
    count: int = 0
    seconds: float = 0.0
    error: str | None = Field(default=None, max_length=512)


class Timings(CamelModel):
    gather_seconds: float = 0.0
    detect_seconds: float = 0.0
    total_seconds: float = 0.0


class LifecycleCounts(CamelModel):
    """Findings of this run by state (silenced ones only under ``silenced``), and those resolved by it."""

    new: int = 0
    open: int = 0
    reopened: int = 0
    flapping: int = 0
    resolved: int = 0
    silenced: int = 0


class TrackedFinding(CamelModel):
    """What the next run needs to know about a finding: kept while open and for a quiet period once resolved."""

    id: str = Field(pattern=FINDING_ID_PATTERN)
    state: FindingState
    detector: str = Field(max_length=63)
    severity: Severity
    resource: str = Field(max_length=512, description="Kind/namespace/name.")
    title: str = Field(max_length=128, description="Cut to 128 characters: the status holds up to 1,000 of these.")
    first_seen: str
    last_seen: str
    occurrences: int = Field(ge=1)
    resolved_at: str | None = None
    reopens: list[str] = Field(default_factory=list, max_length=20, description="Recent reopen times.")


class LifecycleStatus(CamelModel):
    counts: LifecycleCounts = Field(default_factory=LifecycleCounts)
    tracked: list[TrackedFinding] = Field(default_factory=list, max_length=MAX_TRACKED)
    dropped: int = Field(default=0, description="Findings not tracked: over the bound, least severe first.")


class SinkDelivery(CamelModel):
    sink: str = Field(max_length=63)
    sent: int = 0
    pending: int = 0
    failed: int = 0
    last_sent_at: str | None = None
    last_error: str | None = Field(default=None, max_length=512)


class AnalysisStatus(RunStatus):
    """What the operator writes back."""

    run_id: str | None = Field(default=None, max_length=64)
    started_at: str | None = None
    completed_at: str | None = None
    duration_seconds: float | None = None
    counts: SeverityCounts = Field(default_factory=SeverityCounts)
    total_findings: int = 0
    truncated: bool = False
    findings: list[Finding] = Field(default_factory=list, max_length=500)
    missing: list[SourceReport] = Field(default_factory=list, max_length=64, description="Sources that failed.")
    timings: Timings = Field(default_factory=Timings)
    explanation: ExplainedStatus | None = Field(default=None, description="The LLM's root-cause explanation.")
    lifecycle: LifecycleStatus | None = Field(default=None, description="Findings followed across runs.")
    notifications: list[SinkDelivery] = Field(
        default_factory=list, max_length=10, description="Delivery per sink (updated as the outbox drains)."
    )

    @model_validator(mode="after")
    def _findings_within_budget(self) -> AnalysisStatus:
        used = 0
        for index, item in enumerate(self.findings):
            used += len(item.model_dump_json(exclude_none=True).encode())
            if used > STATUS_FINDINGS_BUDGET:
                self.findings = self.findings[:index]
                self.truncated = True
                break
        return self
