"""What the three custom resources share on the wire: group, version, annotations, phase, conditions, status base.

Condition reasons are one Enum used by the code that sets them and the code that reads them back, so a
reason cannot drift into a string that one side spells differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from pydantic import Field

from infragenius.models.common import CamelModel, Condition

GROUP = "infragenius.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
#: A new value asks for a new run of any of our resources.
RERUN_ANNOTATION = f"{GROUP}/rerun"
#: "true" on an SLOReview lets the unauthenticated health port answer its rollout gate.
ROLLOUT_GATE_ANNOTATION = f"{GROUP}/rollout-gate"
#: Set by the Alertmanager receiver to "<fingerprint>@<startsAt>" of the alert that asks for an SLO review.
TRIGGER_ANNOTATION = f"{GROUP}/trigger"


@dataclass(frozen=True)
class CustomResourceKind:
    """One of our custom resource kinds, as the API server names it."""

    kind: str
    plural: str

    def collection_path(self, namespace: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{self.plural}"

    def path(self, namespace: str, name: str) -> str:
        return f"{self.collection_path(namespace)}/{name}"


ANALYSIS = CustomResourceKind("Analysis", "analyses")
SLO_REVIEW = CustomResourceKind("SLOReview", "sloreviews")
INCIDENT_REPORT = CustomResourceKind("IncidentReport", "incidentreports")


class Phase(str, Enum):
    pending = "Pending"
    running = "Running"
    completed = "Completed"
    failed = "Failed"


class ConditionType(StrEnum):
    ready = "Ready"
    explained = "Explained"
    degraded = "Degraded"
    #: The SLOReview's Prometheus rules are in the cluster and match its current spec.
    rules_ready = "RulesReady"


class Reason(StrEnum):
    """Every condition reason the operator writes."""

    # Ready, while and after a run.
    running = "Running"
    retrying = "Retrying"
    invalid_spec = "InvalidSpec"
    target_not_found = "TargetNotFound"
    target_not_allowed = "TargetNotAllowed"
    analysis_completed = "AnalysisCompleted"
    report_completed = "ReportCompleted"
    reviewed = "Reviewed"
    query_failed = "QueryFailed"
    no_data = "NoData"
    prometheus_not_configured = "PrometheusNotConfigured"
    prometheus_not_allowed = "PrometheusNotAllowed"
    # Explained: the LLM stage's outcome.
    explained = "Explained"
    model_unavailable = "ModelUnavailable"
    model_timeout = "ModelTimeout"
    invalid_model_output = "InvalidModelOutput"
    no_findings = "NoFindings"
    context_too_small = "ContextTooSmall"
    not_supported = "NotSupported"
    # Degraded: which dependency let a run down.
    all_dependencies_available = "AllDependenciesAvailable"
    prometheus_unavailable = "PrometheusUnavailable"
    source_unavailable = "SourceUnavailable"
    cache_unavailable = "CacheUnavailable"
    history_buffered = "HistoryBuffered"
    multiple_dependencies = "MultipleDependencies"
    # RulesReady: where an SLOReview's Prometheus rules stand.
    rules_written = "RulesWritten"
    rules_disabled = "RulesDisabled"
    rules_forbidden = "RulesForbidden"
    rules_conflict = "RulesConflict"
    rules_write_failed = "RulesWriteFailed"


#: LLM outcomes that mean the model server let the run down (Degraded), not that the model answered badly.
MODEL_SERVER_REASONS = frozenset({Reason.model_unavailable, Reason.model_timeout})


class RunStatus(CamelModel):
    """The status fields every kind writes: the three kinds' status models extend it."""

    phase: Phase = Phase.pending
    observed_generation: int | None = None
    summary: str = Field(default="", max_length=512)
    rerun_token: str | None = Field(default=None, max_length=253, description="Last handled rerun annotation.")
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    # Kopf's bookkeeping (runs.handled), written with a run's final status.
    last_handled_configuration: str | None = Field(
        default=None,
        description="The operator's record of the last spec, labels and annotations it handled (JSON); bookkeeping.",
    )
