"""The detector contract, the finding builder and problem templates.

A detector is a pure function of a :class:`~infragenius.snapshot.Snapshot`:
it never calls the API, reads the clock only through ``snapshot.taken_at``, and
returns the same findings for the same snapshot. Raw-object vocabulary (metadata,
owners, conditions, events, selectors, times) lives in :mod:`infragenius.kube`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from infragenius.models.findings import Evidence, Finding, ResourceRef, Severity, finding_id
from infragenius.snapshot import Snapshot


@runtime_checkable
class Detector(Protocol):
    """One family of problems (for example, everything wrong with Pods)."""

    name: str
    #: Kinds this detector reads; gathering skips kinds no selected detector needs.
    kinds: frozenset[str]

    def detect(self, snapshot: Snapshot) -> Iterable[Finding]: ...


def finding(
    *,
    detector: str,
    severity: Severity,
    resource: ResourceRef,
    problem: str,
    title: str,
    evidence: Sequence[tuple[str, Any]],
    remediation: str,
    docs: str | None = None,
    owners: Sequence[ResourceRef] = (),
    affected: int = 1,
) -> Finding:
    """Build a finding with a stable id from (detector, resource, problem)."""
    return Finding(
        id=finding_id(detector, resource, problem),
        detector=detector,
        severity=severity,
        resource=resource,
        owners=list(owners),
        title=title[:256],
        evidence=[Evidence(source=str(src)[:256], value=str(val)[:1024]) for src, val in evidence[:20]],
        remediation=remediation[:1024],
        docs=docs,
        affected=max(1, affected),
    )


@dataclass(frozen=True)
class Problem:
    """One kind of problem a detector reports: a row of its problem table.

    ``title`` and ``remediation`` are ``str.format`` templates filled from the check's fields, so the
    wording of every problem sits in one table and the check functions only decide and measure.
    """

    severity: Severity
    title: str
    remediation: str
    docs: str | None = None

    def finding(
        self,
        detector: str,
        problem: str,
        resource: ResourceRef,
        evidence: Sequence[tuple[str, Any]],
        owners: Sequence[ResourceRef] = (),
        *,
        severity: Severity | None = None,
        docs: str | None = None,
        affected: int = 1,
        **fields: Any,
    ) -> Finding:
        """The finding for this problem; ``fields`` fill the templates (``name`` is the resource's)."""
        values = {"name": resource.name, **fields}
        return finding(
            detector=detector,
            severity=severity or self.severity,
            resource=resource,
            problem=problem,
            title=self.title.format(**values),
            evidence=evidence,
            remediation=self.remediation.format(**values),
            docs=docs or self.docs,
            owners=owners,
            affected=affected,
        )
