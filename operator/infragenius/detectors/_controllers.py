"""What the workload-controller detectors (Deployment, ReplicaSet, StatefulSet, DaemonSet) share:
status counters, when a shortfall of pods is stuck rather than in progress, and the ReplicaFailure finding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from infragenius.detectors.base import finding
from infragenius.detectors.evidence import shorten
from infragenius.kube.conditions import condition
from infragenius.kube.meta import Obj, meta
from infragenius.kube.pods import pod_ready
from infragenius.kube.time import seconds_since
from infragenius.models.findings import Finding, ResourceRef, Severity
from infragenius.snapshot import Snapshot

#: How long a pod may be unready/missing before a controller shortfall counts as stuck;
#: a rolling replacement normally finishes well inside it.
GRACE_SECONDS = 300.0


def int_or(value: object, default: int = 0) -> int:
    """Status counters are omitted when zero; treat missing as ``default``."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


def shortfall_persists(
    snapshot: Snapshot,
    owner: Obj,
    pods: Sequence[Obj] | None,
    expected: int,
    grace: float = GRACE_SECONDS,
) -> tuple[bool, list[str]]:
    """Whether a controller's missing or unready pods have stayed so for longer than ``grace``.

    StatefulSets, DaemonSets and bare ReplicaSets have no progress deadline, so their
    counters alone cannot tell a pod being replaced right now from one that is stuck.
    The pods' own timestamps can. ``pods`` is None when Pods were not gathered: then
    only the controller's age is known. Returns (persists, pods unready longer than grace).
    """
    now = snapshot.taken_at
    owner_age = seconds_since(now, meta(owner).get("creationTimestamp"))
    if owner_age is not None and owner_age < grace:
        return False, []
    if pods is None:
        return True, []
    stale: list[str] = []
    live = 0
    recent_activity = False  # a pod created or deleted within grace: the controller is at work
    for pod in pods:
        pod_meta = meta(pod)
        if pod_meta.get("deletionTimestamp"):
            deleting_for = seconds_since(now, pod_meta["deletionTimestamp"])
            # deletionTimestamp is the end of the grace period, so it may lie in the future.
            if deleting_for is None or deleting_for < grace:
                recent_activity = True
            continue
        live += 1
        created_age = seconds_since(now, pod_meta.get("creationTimestamp"))
        if created_age is not None and created_age < grace:
            recent_activity = True
        if not pod_ready(pod) and _unready_for(pod, now, created_age) > grace:
            stale.append(pod_meta.get("name", ""))
    missing_stuck = expected > live and not recent_activity
    return bool(stale) or missing_stuck, sorted(stale)


def _unready_for(pod: Obj, now: dt.datetime, created_age: float | None) -> float:
    """Seconds since the pod's Ready condition last changed, else its age; -1 when neither is known."""
    ready = condition(pod, "Ready")
    since = seconds_since(now, ready.get("lastTransitionTime")) if ready else None
    if since is None:
        since = created_age
    return -1.0 if since is None else since


def replica_failure(
    *,
    detector: str,
    resource: ResourceRef,
    failure: Obj,
    default_reason: str,
    evidence: Sequence[tuple[str, object]],
    replicaset: str,
    namespace: str,
    docs: str,
    owners: Sequence[ResourceRef],
) -> Finding:
    """The ReplicaSet controller cannot create pods (ReplicaFailure=True): quota, LimitRange, admission.

    Reported on the Deployment for its ReplicaSets and on bare ReplicaSets; ``evidence`` follows the
    condition's reason and message.
    """
    message = failure.get("message") or ""
    return finding(
        detector=detector,
        severity=Severity.critical,
        resource=resource,
        problem="ReplicaFailure",
        title=f"{resource.kind} {resource.name} cannot create pods ({failure.get('reason', default_reason)}): "
        f"{shorten(message, 160)}",
        evidence=[
            ("status.conditions[ReplicaFailure].reason", failure.get("reason", "")),
            ("status.conditions[ReplicaFailure].message", message),
            *evidence,
        ],
        remediation="The API server rejects the pods the ReplicaSet tries to create. Fix the cause in the message "
        "(ResourceQuota: raise the quota or lower requests; LimitRange; admission webhook or policy: adjust the "
        f"pod template), then check: kubectl describe rs -n {namespace} {replicaset}",
        docs=docs,
        owners=owners,
    )
