"""Findings: what a detector reports about one resource."""

from __future__ import annotations

import hashlib
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class Severity(str, Enum):
    critical = "critical"
    warning = "warning"
    info = "info"

    @property
    def rank(self) -> int:
        """Lower is more severe; used for sorting and thresholds."""
        return _RANK[self]

    def at_least(self, minimum: Severity) -> bool:
        return self.rank <= minimum.rank


_RANK = {Severity.critical: 0, Severity.warning: 1, Severity.info: 2}


class ResourceRef(BaseModel):
    """A Kubernetes object by kind, namespace and name."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(max_length=63)
    name: str = Field(max_length=253)
    namespace: str | None = Field(default=None, max_length=63)

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


class Evidence(BaseModel):
    """One observed fact: where it was read (a status field, an event, a metric) and its value."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(max_length=256, description="Status field path, 'event:<reason>' or 'metric:<name>'.")
    value: str = Field(max_length=1024)


class FindingState(str, Enum):
    """Where a finding is in its life across the runs of one Analysis."""

    new = "New"  # first seen this run (or back after the quiet period)
    open = "Open"  # seen in the previous run too
    reopened = "Reopened"  # back within the quiet period after it was resolved
    flapping = "Flapping"  # reopened again and again: reported once as flapping, not as new each time
    resolved = "Resolved"  # seen before, gone this run


class FindingLifecycle(BaseModel):
    """A finding's history in one Analysis (status and Postgres)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    state: FindingState
    first_seen: str = Field(alias="firstSeen", description="When this episode of the problem was first seen.")
    last_seen: str = Field(alias="lastSeen")
    occurrences: int = Field(ge=1, description="Runs that saw it since firstSeen.")
    silenced: bool | None = Field(
        default=None, description="true: a spec.silences entry hides it from counts and notifications."
    )
    reopens: list[str] | None = Field(default=None, max_length=20, description="Recent reopen times (flapping).")


class Finding(BaseModel):
    """One problem in the target, with the evidence that shows it and how to fix it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[a-f0-9]{16}$", description="Stable across runs for the same problem.")
    detector: str = Field(max_length=63)
    severity: Severity
    resource: ResourceRef
    owners: list[ResourceRef] = Field(default_factory=list, description="Owner chain, nearest first.")
    title: str = Field(max_length=256)
    evidence: list[Evidence] = Field(default_factory=list, max_length=20)
    remediation: str = Field(max_length=1024)
    docs: str | None = Field(default=None, max_length=512)
    affected: int = Field(default=1, ge=1, description="Objects rolled up into this finding (e.g. pods).")
    lifecycle: FindingLifecycle | None = Field(default=None, description="Set on an Analysis's findings.")


def finding_id(detector: str, resource: ResourceRef, problem: str) -> str:
    """Same detector, resource and problem key give the same id in every run."""
    raw = f"{detector}|{resource.kind}|{resource.namespace or ''}|{resource.name}|{problem}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
