"""Pod-level problems of one pod: unschedulable, not Ready, failed or evicted, stuck terminating or
creating."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from infragenius.detectors._controllers import GRACE_SECONDS
from infragenius.detectors.evidence import shorten
from infragenius.detectors.pod.containers import probe_summary, spec_containers
from infragenius.detectors.pod.problems import (
    SHUTDOWN_REASONS,
    UNSCHEDULABLE_CRITICAL_SECONDS,
    UNSCHEDULABLE_GRACE_SECONDS,
    VOLUME_EVENT_REASONS,
    Details,
    Hit,
    fixed,
)
from infragenius.kube.conditions import condition, conditions_by_type
from infragenius.kube.meta import meta, name_of
from infragenius.kube.quantity import quantity_or_none
from infragenius.kube.time import human_duration, seconds_since
from infragenius.models.findings import Severity
from infragenius.snapshot import Obj, Snapshot


def unschedulable(pod: Obj, now: dt.datetime, snapshot: Snapshot) -> Hit | None:
    cond = condition(pod, "PodScheduled")
    if not cond or cond.get("status") != "False" or cond.get("reason") != "Unschedulable":
        return None
    created = meta(pod).get("creationTimestamp")
    pending = seconds_since(now, created)
    if pending is None:
        pending = seconds_since(now, cond.get("lastTransitionTime")) or 0.0
    # A request larger than every node can ever offer will not be fixed by waiting: report it at once.
    oversized = _exceeds_every_node(pod, snapshot)
    if pending <= UNSCHEDULABLE_GRACE_SECONDS and not oversized:
        return None
    severity = Severity.critical if oversized or pending > UNSCHEDULABLE_CRITICAL_SECONDS else Severity.warning

    def render() -> Details:
        message = cond.get("message") or ""
        evidence: list[tuple[str, object]] = [
            ("status.phase", "Pending"),
            ("status.conditions[PodScheduled].reason", "Unschedulable"),
            ("status.conditions[PodScheduled].message", message),
            ("metadata.creationTimestamp", f"{created} (pending {human_duration(pending)})"),
        ]
        for resource, requested, largest in oversized:
            evidence.append(
                (
                    f"spec.containers[*].resources.requests.{resource}",
                    f"{requested} > largest node allocatable {largest}",
                )
            )
        if oversized:
            fact = "can never be scheduled: requests " + ", ".join(
                f"{res} {req} but the largest node has {largest}" for res, req, largest in oversized
            )
        else:
            fact = f"unschedulable for {human_duration(pending)}" + (f": {shorten(message, 150)}" if message else "")
        return fact, evidence

    return Hit("Unschedulable", severity, render)


def not_ready(pod: Obj, now: dt.datetime) -> Hit | None:
    status = pod["status"]
    conds = conditions_by_type(pod)
    ready = conds.get("Ready")
    if not ready or ready.get("status") != "False":
        return None
    since = seconds_since(now, ready.get("lastTransitionTime"))
    if since is None or since <= GRACE_SECONDS:
        return None
    unready = [cs for cs in status.get("containerStatuses") or () if not cs.get("ready")]
    return Hit(
        "NotReady",
        Severity.warning,
        lambda: _not_ready_details(pod, conds, ready, unready, since),
        unready[0].get("name", "") if unready else "",
    )


def _not_ready_details(pod: Obj, conds: dict, ready: Obj, unready: list[Obj], since: float) -> Details:
    evidence: list[tuple[str, object]] = [("status.conditions[Ready].status", "False")]
    if ready.get("reason"):
        evidence.append(("status.conditions[Ready].reason", ready["reason"]))
    if ready.get("message"):
        evidence.append(("status.conditions[Ready].message", ready["message"]))
    evidence.append(("status.conditions[Ready].lastTransitionTime", ready.get("lastTransitionTime", "")))
    specs = spec_containers(pod)
    for cs in unready[:3]:
        cname = cs.get("name", "?")
        evidence.append((f"status.containerStatuses[{cname}].ready", "False"))
        spec = specs.get(cname, {})
        evidence.append((f"spec.containers[{cname}].readinessProbe", probe_summary(spec.get("readinessProbe"))))
        if spec.get("startupProbe") and not cs.get("started", True):
            evidence.append((f"spec.containers[{cname}].startupProbe", probe_summary(spec["startupProbe"])))
    # Readiness gates (e.g. a load balancer's target health) can hold a pod unready on their own.
    for gate in (pod.get("spec") or {}).get("readinessGates") or ():
        gate_cond = conds.get(gate.get("conditionType"))
        if gate_cond is None or gate_cond.get("status") != "True":
            evidence.append(
                (f"status.conditions[{gate.get('conditionType')}].status", (gate_cond or {}).get("status", "missing"))
            )
    names = ", ".join(cs.get("name", "?") for cs in unready) or "readiness gates"
    return f"running but not Ready for {human_duration(since)} (unready: {names})", evidence


def failed(pod: Obj) -> Hit:
    status = pod["status"]
    reason = status.get("reason") or ""
    message = status.get("message") or ""
    evidence: list[tuple[str, object]] = [("status.phase", "Failed")]
    if reason:
        evidence.append(("status.reason", reason))
    if message:
        evidence.append(("status.message", message))
    if reason == "Evicted":
        return Hit("Evicted", Severity.warning, fixed(f"evicted: {shorten(message or reason, 150)}", evidence))
    if reason in SHUTDOWN_REASONS:
        fact = f"stopped by node shutdown: {shorten(message or reason, 150)}"
        return Hit("NodeShutdown", Severity.info, fixed(fact, evidence))
    container = ""
    for cs in status.get("containerStatuses") or ():
        term = (cs.get("state") or {}).get("terminated") or {}
        if term and term.get("exitCode", 0) != 0:
            path = f"status.containerStatuses[{cs.get('name', '?')}].state.terminated"
            evidence.append((f"{path}.reason", term.get("reason", "")))
            evidence.append((f"{path}.exitCode", term.get("exitCode")))
            container = container or cs.get("name", "")
    what = reason or (f"container {container} exited with an error" if container else "phase Failed")
    fact = f"failed: {shorten(what + (': ' + message if message else ''), 150)}"
    return Hit("Failed", Severity.warning, fixed(fact, evidence), container)


def stuck_terminating(pod: Obj, now: dt.datetime) -> Hit | None:
    meta = pod.get("metadata") or {}
    # deletionTimestamp is when the grace period ends, so "over" is time past the grace period.
    over = seconds_since(now, meta.get("deletionTimestamp"))
    if over is None or over <= GRACE_SECONDS:
        return None
    evidence: list[tuple[str, object]] = [
        ("metadata.deletionTimestamp", meta.get("deletionTimestamp")),
        ("metadata.deletionGracePeriodSeconds", meta.get("deletionGracePeriodSeconds", "")),
    ]
    if meta.get("finalizers"):
        evidence.append(("metadata.finalizers", ", ".join(meta["finalizers"])))
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        evidence.append(("spec.nodeName", node))
    evidence.append(("status.phase", (pod.get("status") or {}).get("phase", "")))
    fact = f"stuck Terminating {human_duration(over)} past its grace period"
    if meta.get("finalizers"):
        fact += f" (finalizers: {', '.join(meta['finalizers'])})"
    return Hit("StuckTerminating", Severity.warning, fixed(fact, evidence))


def stuck_creating(pod: Obj, snapshot: Snapshot, now: dt.datetime) -> Hit | None:
    status = pod["status"]
    scheduled = condition(pod, "PodScheduled")
    if not scheduled or scheduled.get("status") != "True":
        return None
    since = seconds_since(now, scheduled.get("lastTransitionTime"))
    if since is None or since <= GRACE_SECONDS:
        return None
    creating = [
        cs
        for cs in (*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ()))
        if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in ("ContainerCreating", "PodInitializing")
    ]
    events = [e for e in snapshot.events_for("Pod", name_of(pod)) if e.get("reason") in VOLUME_EVENT_REASONS]
    # Slow image pulls also sit in ContainerCreating; only a Warning event proves it is stuck.
    if not creating or not events:
        return None
    cs = creating[0]
    evidence: list[tuple[str, object]] = [
        (f"status.containerStatuses[{cs.get('name', '?')}].state.waiting.reason", cs["state"]["waiting"]["reason"]),
        ("status.conditions[PodScheduled].lastTransitionTime", scheduled.get("lastTransitionTime", "")),
    ]
    message = events[0].get("message") or events[0].get("reason", "")
    fact = f"stuck in ContainerCreating for {human_duration(since)}: {shorten(message, 140)}"
    return Hit("ContainerCreating", Severity.warning, fixed(fact, evidence), cs.get("name", ""))


def _exceeds_every_node(pod: Obj, snapshot: Snapshot) -> list[tuple[str, str, str]]:
    """(resource, requested, largest allocatable) for requests no gathered node could ever satisfy."""
    nodes = snapshot.items("Node")
    if not nodes:
        return []
    over: list[tuple[str, str, str]] = []
    for resource in ("cpu", "memory"):
        total = Decimal(0)
        for container in (pod.get("spec") or {}).get("containers") or ():
            value = quantity_or_none(((container.get("resources") or {}).get("requests") or {}).get(resource))
            total += value or 0
        if not total:
            continue
        allocatable = [
            quantity_or_none(((n.get("status") or {}).get("allocatable") or {}).get(resource)) for n in nodes
        ]
        largest = max((a for a in allocatable if a is not None), default=None)
        if largest is not None and total > largest:
            over.append((resource, f"{total.normalize():f}", f"{largest.normalize():f}"))
    return over
