"""Helpers shared by the workload detectors (pods and the controllers that own them).

Everything here reads the raw API dicts with plain dict access: these run once per
pod on namespaces with thousands of pods, so no models and no copies.
"""

from __future__ import annotations

import datetime as dt
from typing import Collection, Iterable, Sequence

from infragenius.detectors.base import parse_time
from infragenius.snapshot import Obj, Snapshot

#: How long a pod may be unready/missing before a controller shortfall counts as stuck;
#: a rolling replacement normally finishes well inside it.
GRACE_SECONDS = 300.0

#: Deployment's API default for spec.progressDeadlineSeconds.
DEFAULT_PROGRESS_DEADLINE = 600
#: spec.progressDeadlineSeconds at MaxInt32 means "no deadline" to the controller.
NO_DEADLINE = 2147483647

DOCS = "https://kubernetes.io/docs"


def conditions(obj: Obj) -> dict[str, Obj]:
    """Status conditions by type (one pass instead of a scan per lookup)."""
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or ()}


def is_true(cond: Obj | None) -> bool:
    return cond is not None and cond.get("status") == "True"


def is_false(cond: Obj | None) -> bool:
    return cond is not None and cond.get("status") == "False"


def seconds_since(now: dt.datetime, value: str | None) -> float | None:
    """Age of an API timestamp at snapshot time; None when missing or malformed."""
    when = parse_time(value)
    return None if when is None else (now - when).total_seconds()


def human_duration(seconds: float) -> str:
    """Compact duration for titles: 45s, 12m, 3h5m, 2d4h."""
    total = int(max(0.0, seconds))
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def shorten(text: str, limit: int = 140) -> str:
    """Keep titles one line and readable; the full text stays in the evidence."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def example_names(names: Sequence[str], limit: int = 5) -> str:
    """Up to ``limit`` names and how many more there are."""
    shown = ", ".join(names[:limit])
    extra = len(names) - limit
    return f"{shown} (+{extra} more)" if extra > 0 else shown


def event_count(event: Obj) -> int:
    """Occurrences of an event (core/v1 count, or events.k8s.io series)."""
    series = event.get("series") or {}
    return int(series.get("count") or event.get("count") or event.get("deprecatedCount") or 1)


def _event_time(event: Obj) -> str:
    series = event.get("series") or {}
    return str(
        event.get("lastTimestamp")
        or series.get("lastObservedTime")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or ""
    )


def event_evidence(
    events: Iterable[Obj], reasons: Collection[str] | None = None, limit: int = 4
) -> list[tuple[str, str]]:
    """Warning events summed per reason, most frequent first, with the newest message.

    ``reasons`` keeps the evidence on topic (an OOM finding should not carry an old
    FailedScheduling event); None takes every reason.
    """
    totals: dict[str, list] = {}  # reason -> [count, object names, newest time, newest message]
    for event in events:
        reason = event.get("reason") or ""
        if reasons is not None and reason not in reasons:
            continue
        involved = event.get("involvedObject") or event.get("regarding") or {}
        when = _event_time(event)
        message = event.get("message") or event.get("note") or ""
        entry = totals.get(reason)
        if entry is None:
            totals[reason] = [event_count(event), {involved.get("name", "")}, when, message]
            continue
        entry[0] += event_count(event)
        entry[1].add(involved.get("name", ""))
        if when > entry[2]:
            entry[2], entry[3] = when, message
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
    evidence: list[tuple[str, str]] = []
    for reason, (count, names, _when, message) in ordered:
        spread = f" across {len(names)} objects" if len(names) > 1 else ""
        evidence.append((f"event:{reason}", f"count={count}{spread}: {message}".rstrip(": ")))
    return evidence


def controller_ref(obj: Obj) -> Obj | None:
    """The controlling ownerReference (or the first one, as owner_chain does)."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return next((o for o in owners if o.get("controller")), owners[0] if owners else None)


def index_by_controller(items: Iterable[Obj]) -> dict[str, list[Obj]]:
    """Objects grouped by their controller's uid; built once per detect() call."""
    index: dict[str, list[Obj]] = {}
    for obj in items:
        ref = controller_ref(obj)
        if ref and ref.get("uid"):
            index.setdefault(ref["uid"], []).append(obj)
    return index


class PodsByController:
    """Pods grouped by controller uid, indexed on first use: most controllers are healthy and never ask."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._index: dict[str, list[Obj]] | None = None

    def __call__(self, owner: Obj) -> list[Obj] | None:
        """The owner's pods; None when Pods were not gathered (nothing can be said about them)."""
        if not self._snapshot.has("Pod"):
            return None
        if self._index is None:
            self._index = index_by_controller(self._snapshot.items("Pod"))
        return self._index.get((owner.get("metadata") or {}).get("uid", ""), [])


def name_of(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def template_containers(workload: Obj) -> list[Obj]:
    """Containers of a workload's pod template (Deployment, ReplicaSet, StatefulSet, ...)."""
    spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or ())


def image_evidence(workload: Obj, kind: str) -> list[tuple[str, str]]:
    """(field path, image) for each container of a workload's pod template."""
    prefix = f"{kind}/{name_of(workload)}.spec.template.spec.containers"
    return [(f"{prefix}[{c.get('name', '?')}].image", c.get("image", "")) for c in template_containers(workload)]


def pod_is_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


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
    owner_age = seconds_since(now, (owner.get("metadata") or {}).get("creationTimestamp"))
    if owner_age is not None and owner_age < grace:
        return False, []
    if pods is None:
        return True, []
    stale: list[str] = []
    live = 0
    recent_activity = False  # a pod created or deleted within grace: the controller is at work
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            deleting_for = seconds_since(now, meta["deletionTimestamp"])
            # deletionTimestamp is the end of the grace period, so it may lie in the future.
            if deleting_for is None or deleting_for < grace:
                recent_activity = True
            continue
        live += 1
        created_age = seconds_since(now, meta.get("creationTimestamp"))
        if created_age is not None and created_age < grace:
            recent_activity = True
        if pod_is_ready(pod):
            continue
        ready = next(
            (c for c in (pod.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"), None
        )
        since = seconds_since(now, ready.get("lastTransitionTime")) if ready else None
        if since is None:
            since = created_age
        if since is not None and since > grace:
            stale.append(meta.get("name", ""))
    missing_stuck = expected > live and not recent_activity
    return bool(stale) or missing_stuck, sorted(stale)


def int_or(value: object, default: int = 0) -> int:
    """Status counters are omitted when zero; treat missing as ``default``."""
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def kubectl_ref(kind: str, name: str) -> str:
    """`deployment/web` style argument for kubectl commands in remediations."""
    return f"{kind.lower()}/{name}"

