"""The detector contract and the helpers every detector shares.

A detector is a pure function of a :class:`~infragenius.snapshot.Snapshot`:
it never calls the API, reads the clock only through ``snapshot.taken_at``, and
returns the same findings for the same snapshot.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

from infragenius.models.findings import Evidence, Finding, ResourceRef, Severity, finding_id
from infragenius.snapshot import Obj, Snapshot


@runtime_checkable
class Detector(Protocol):
    """One family of problems (for example, everything wrong with Pods)."""

    name: str
    #: Kinds this detector reads; gathering skips kinds no selected detector needs.
    kinds: frozenset[str]

    def detect(self, snapshot: Snapshot) -> Iterable[Finding]: ...


def ref_of(obj: Obj, kind: str) -> ResourceRef:
    meta = obj.get("metadata", {})
    return ResourceRef(kind=kind, name=meta.get("name", ""), namespace=meta.get("namespace"))


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


def parse_time(value: str | None) -> dt.datetime | None:
    """Parse an RFC 3339 timestamp from the API; None for missing or malformed values."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def condition(obj: Obj, type_: str) -> Obj | None:
    """The status condition of a type, if present."""
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def selector_matches(selector: Obj | None, labels: Obj | None) -> bool:
    """Evaluate a LabelSelector (matchLabels and matchExpressions) against labels.

    An empty selector matches everything; a missing (None) selector matches nothing.
    """
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def map_selector_matches(selector: Obj | None, labels: Obj | None) -> bool:
    """A Service-style plain map selector; an empty or missing one selects nothing."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())
