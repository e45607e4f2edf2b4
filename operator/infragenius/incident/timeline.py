"""Build an incident timeline from a Snapshot (pure: no I/O, no clock).

Sources: rollouts (ReplicaSet revisions of Deployments, ControllerRevisions of StatefulSets and
DaemonSets, each diffed against the previous revision), changes of what workloads depend on (Services,
ConfigMaps, NetworkPolicies; see :mod:`.dependencies`), scaling (HPA and scaling events), pod restarts
and terminations, warning events, condition changes of nodes hosting target pods, and the alert. The
timeline also carries the dependency links, so ranking can tell a dependency from a bystander.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infragenius.incident import dependencies
from infragenius.kube.events import event_count, event_first_seen, event_last_seen, event_message, involved_ref
from infragenius.kube.meta import annotations_of, meta, name_of, ref_of
from infragenius.kube.owners import controller_ref
from infragenius.kube.time import parse_time, rfc3339
from infragenius.models.findings import ResourceRef
from infragenius.snapshot import Obj, Snapshot

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")
SCALING_REASONS = ("ScalingReplicaSet", "SuccessfulRescale")
#: Kinds the timeline reads for dependency links and changes, besides workloads and pods.
DEPENDENCY_KINDS = dependencies.DEPENDENCY_KINDS
# Rollouts sort before symptoms recorded in the same second: a change precedes what it causes.
_KIND_ORDER = {
    "Rollout": 0,
    "Change": 0,
    "Scaling": 1,
    "Alert": 2,
    "NodeCondition": 3,
    "Event": 4,
    "Termination": 5,
    "Restart": 6,
    "MetricAnomaly": 7,
}


@dataclass(frozen=True)
class Entry:
    """One timeline entry, with what ranking needs (the workload it belongs to, the change it made)."""

    time: dt.datetime
    kind: str
    severity: str  # info, warning, critical
    resource: ResourceRef
    summary: str
    details: tuple[str, ...] = ()
    workload: ResourceRef | None = None
    changes: tuple[str, ...] = ()  # rollouts: "image a -> b", ...
    revision: int | None = None
    previous_revision: int | None = None
    node: str | None = None
    reason: str = ""

    @property
    def symptom(self) -> bool:
        return self.severity != "info" and self.kind not in ("Rollout", "Change", "Scaling")

    def sort_key(self) -> tuple:
        return (
            self.time,
            _KIND_ORDER.get(self.kind, 9),
            self.revision or 0,
            self.resource.kind,
            self.resource.name,
            self.summary,
        )

    def to_status(self) -> dict[str, Any]:
        return {
            "time": rfc3339(self.time),
            "kind": self.kind,
            "severity": self.severity,
            "resource": self.resource.model_dump(exclude_none=True),
            "summary": self.summary[:512],
            "details": [d[:1024] for d in self.details[:20]],
        }


@dataclass(frozen=True)
class AlertInfo:
    name: str
    starts_at: dt.datetime | None
    fingerprint: str | None = None


@dataclass
class Timeline:
    start: dt.datetime
    end: dt.datetime
    entries: list[Entry] = field(default_factory=list)
    links: dependencies.Links = field(default_factory=dependencies.Links)

    @property
    def symptoms(self) -> list[Entry]:
        return [e for e in self.entries if e.symptom]

    @property
    def first_symptom(self) -> Entry | None:
        return next(iter(self.symptoms), None)


# --- template diffs -------------------------------------------------------------------------------


def _env_map(container: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            out[item.get("name", "")] = str(item.get("value"))
        else:
            ref = item.get("valueFrom") or {}
            source = next(iter(ref), "valueFrom")
            out[item.get("name", "")] = f"<{source}>"
    for item in container.get("envFrom") or []:
        for key in ("configMapRef", "secretRef"):
            if key in item:
                out[f"envFrom:{key}"] = (item[key] or {}).get("name", "")
    return out


def _resources(container: Mapping[str, Any]) -> dict[str, str]:
    res = container.get("resources") or {}
    return {
        f"{kind}.{name}": str(value) for kind in ("requests", "limits") for name, value in (res.get(kind) or {}).items()
    }


def _containers(template: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    spec = (template or {}).get("spec") or {}
    found = {}
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            found[c.get("name", "")] = c
    return found


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in ("password", "secret", "token", "key", "credential"))


def diff_templates(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """What changed between two pod templates: images, env and resources, per container."""
    if old is None:
        return []
    before, after = _containers(old), _containers(new)
    changes: list[str] = []
    for name in sorted(set(before) | set(after)):
        if name not in before:
            changes.append(f"container {name} added (image {after[name].get('image')})")
            continue
        if name not in after:
            changes.append(f"container {name} removed")
            continue
        a, b = before[name], after[name]
        if a.get("image") != b.get("image"):
            changes.append(f"image {a.get('image')} -> {b.get('image')} (container {name})")
        env_a, env_b = _env_map(a), _env_map(b)
        for key in sorted(set(env_a) | set(env_b)):
            if env_a.get(key) != env_b.get(key):
                secret = _looks_secret(key)
                old_value, new_value = (
                    ("[REDACTED]" if v is not None and secret else v) for v in (env_a.get(key), env_b.get(key))
                )
                changes.append(f"env {key}: {old_value} -> {new_value} (container {name})")
        res_a, res_b = _resources(a), _resources(b)
        for key in sorted(set(res_a) | set(res_b)):
            if res_a.get(key) != res_b.get(key):
                changes.append(f"resources {key}: {res_a.get(key)} -> {res_b.get(key)} (container {name})")
    return changes


# --- sources ----------------------------------------------------------------------------------------


Revision = tuple[int, Obj, Mapping[str, Any]]  # (revision number, ReplicaSet or ControllerRevision, pod template)


def _revisions(snapshot: Snapshot) -> dict[tuple[str, str], list[Revision]]:
    """Pod-template revisions per workload: a Deployment's ReplicaSets, a StatefulSet's or DaemonSet's
    ControllerRevisions."""
    by_owner: dict[tuple[str, str], list[Revision]] = {}
    for rs in snapshot.items("ReplicaSet"):
        owner = controller_ref(rs)
        if not owner or owner.get("kind") != "Deployment":
            continue
        try:
            revision = int(annotations_of(rs).get(REVISION_ANNOTATION, ""))
        except ValueError:
            continue
        template = (rs.get("spec") or {}).get("template") or {}
        by_owner.setdefault(("Deployment", owner["name"]), []).append((revision, rs, template))
    for cr in snapshot.items("ControllerRevision"):
        owner = controller_ref(cr)
        if not owner or owner.get("kind") not in ("StatefulSet", "DaemonSet"):
            continue
        template = (((cr.get("data") or {}).get("spec") or {}).get("template")) or {}
        by_owner.setdefault((owner["kind"], owner["name"]), []).append((int(cr.get("revision") or 0), cr, template))
    return by_owner


def rollouts(snapshot: Snapshot) -> list[Entry]:
    entries: list[Entry] = []
    for (kind, name), revisions in _revisions(snapshot).items():
        revisions.sort(key=lambda r: r[0])
        workload = ResourceRef(kind=kind, name=name, namespace=snapshot.namespace)
        for i, (revision, obj, template) in enumerate(revisions):
            created = parse_time(meta(obj).get("creationTimestamp"))
            if created is None:
                continue
            previous = revisions[i - 1] if i > 0 else None
            changes = diff_templates(previous[2] if previous else None, template)
            obj_kind = "ReplicaSet" if kind == "Deployment" else "ControllerRevision"
            if previous is None:
                summary = f"{kind} {name} created at revision {revision} ({obj_kind} {name_of(obj)})"
            else:
                what = "; ".join(changes) if changes else "pod template changed (no image, env or resource change)"
                summary = f"{kind} {name} rolled out revision {revision} (from {previous[0]}): {what}"
            entries.append(
                Entry(
                    time=created,
                    kind="Rollout",
                    severity="info",
                    resource=ref_of(obj, obj_kind),
                    summary=summary,
                    details=tuple(changes),
                    workload=workload,
                    changes=tuple(changes),
                    revision=revision,
                    previous_revision=previous[0] if previous else None,
                )
            )
    return entries


def dependency_changes(snapshot: Snapshot) -> list[Entry]:
    """Services, ConfigMaps and NetworkPolicies that changed or were created (kind "Change")."""
    return [
        Entry(
            time=change.time,
            kind="Change",
            severity="info",
            resource=ref_of(change.obj, change.kind),
            summary=change.summary,
            details=change.details,
            reason=change.kind,
        )
        for change in dependencies.changes(snapshot)
    ]


def scaling(snapshot: Snapshot, events: Iterable[Obj] = ()) -> list[Entry]:
    entries: list[Entry] = []
    for hpa in snapshot.items("HorizontalPodAutoscaler"):
        when = parse_time((hpa.get("status") or {}).get("lastScaleTime"))
        if when is None:
            continue
        status = hpa.get("status") or {}
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        entries.append(
            Entry(
                time=when,
                kind="Scaling",
                severity="info",
                resource=ref_of(hpa, "HorizontalPodAutoscaler"),
                summary=(
                    f"HPA scaled {target.get('kind')} {target.get('name')} to {status.get('desiredReplicas')} replicas"
                ),
                workload=ResourceRef(
                    kind=target.get("kind", ""), name=target.get("name", ""), namespace=snapshot.namespace
                )
                if target
                else None,
            )
        )
    for event in events:
        if event.get("reason") not in SCALING_REASONS:
            continue
        when = event_first_seen(event)
        if when is None:
            continue
        entries.append(
            Entry(
                time=when,
                kind="Scaling",
                severity="info",
                resource=involved_ref(event),
                summary=f"{event.get('reason')}: {event_message(event)}"[:512],
                workload=involved_ref(event),
                reason=event.get("reason", ""),
            )
        )
    return entries


def _pod_workload(snapshot: Snapshot, pod: Obj) -> ResourceRef:
    return snapshot.rollup_target(pod, "Pod")


def pod_restarts(snapshot: Snapshot) -> list[Entry]:
    entries: list[Entry] = []
    for pod in snapshot.items("Pod"):
        status = pod.get("status") or {}
        workload = _pod_workload(snapshot, pod)
        node = (pod.get("spec") or {}).get("nodeName")
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            restarts = int(cs.get("restartCount") or 0)
            for state_key, kind in (("lastState", "Restart" if restarts else "Termination"), ("state", "Termination")):
                terminated = (cs.get(state_key) or {}).get("terminated")
                if not terminated:
                    continue
                when = parse_time(terminated.get("finishedAt"))
                if when is None:
                    continue
                reason = terminated.get("reason") or "Unknown"
                code = terminated.get("exitCode")
                if reason == "Completed" and code == 0:
                    severity = "info"
                else:
                    severity = "critical" if reason == "OOMKilled" or kind == "Restart" else "warning"
                waiting = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
                summary = (
                    f"container {cs.get('name')} of pod {name_of(pod)} terminated: {reason} (exit code {code})"
                    + (f", restart #{restarts}" if kind == "Restart" else "")
                    + (f", now {waiting}" if waiting and state_key == "lastState" else "")
                )
                details = [f"image {cs.get('image')}", f"restartCount {restarts}"]
                if terminated.get("message"):
                    details.append(f"message: {terminated['message']}")
                entries.append(
                    Entry(
                        time=when,
                        kind=kind,
                        severity=severity,
                        resource=ref_of(pod, "Pod"),
                        summary=summary,
                        details=tuple(details),
                        workload=workload,
                        node=node,
                        reason=reason,
                    )
                )
    return entries


def warning_events(snapshot: Snapshot, start: dt.datetime, end: dt.datetime) -> list[Entry]:
    entries: list[Entry] = []
    pods = {name_of(p): p for p in snapshot.items("Pod")}
    for event in snapshot.events:
        if event.get("type", "Warning") != "Warning":
            continue
        first, last = event_first_seen(event), event_last_seen(event)
        if first is None:
            continue
        details = [f"count {event_count(event)}"]
        when = first
        if first < start and last is not None and start <= last:
            when = last  # ongoing since before the window: shown when last seen
            details.append(f"first seen {rfc3339(first)}, before the window")
        if last is not None and last != first:
            details.append(f"last seen {rfc3339(last)}")
        resource = involved_ref(event)
        workload = None
        node = None
        obj = snapshot.get(resource.kind, resource.name, resource.namespace) if resource.kind else None
        if resource.kind == "Pod" and resource.name in pods:
            workload = _pod_workload(snapshot, pods[resource.name])
            node = (pods[resource.name].get("spec") or {}).get("nodeName")
        elif obj is not None:
            workload = snapshot.rollup_target(obj, resource.kind)
        reason = event.get("reason", "")
        severity = (
            "critical" if reason in ("BackOff", "OOMKilling", "Evicted", "NodeNotReady", "FailedMount") else "warning"
        )
        entries.append(
            Entry(
                time=when,
                kind="Event",
                severity=severity,
                resource=resource,
                summary=f"{reason}: {event_message(event)}"[:512],
                details=tuple(details),
                workload=workload,
                node=node,
                reason=reason,
            )
        )
    return entries


def node_conditions(snapshot: Snapshot) -> list[Entry]:
    hosting: dict[str, list[str]] = {}
    for pod in snapshot.items("Pod"):
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            hosting.setdefault(node, []).append(name_of(pod))
    entries: list[Entry] = []
    for node in snapshot.items("Node"):
        name = name_of(node)
        if name not in hosting:
            continue
        for cond in (node.get("status") or {}).get("conditions") or []:
            ctype, status = cond.get("type"), cond.get("status")
            if ctype not in NODE_CONDITIONS:
                continue
            when = parse_time(cond.get("lastTransitionTime"))
            if when is None:
                continue
            if ctype == "Ready":
                bad = status != "True"
                severity = "critical" if bad else "info"
                summary = f"node {name} became NotReady ({status})" if bad else f"node {name} became Ready"
            else:
                if status != "True":
                    continue  # a pressure condition that is off says nothing about this window
                bad, severity = True, "warning"
                summary = f"node {name}: {ctype}={status}"
            details = [
                f"{ctype}={status}",
                f"reason {cond.get('reason', '')}",
                f"hosts pods: {', '.join(sorted(hosting[name])[:10])}",
            ]
            if cond.get("message"):
                details.append(f"message: {cond['message']}")
            entries.append(
                Entry(
                    time=when,
                    kind="NodeCondition",
                    severity=severity,
                    resource=ResourceRef(kind="Node", name=name),
                    summary=summary,
                    details=tuple(details),
                    node=name,
                    reason=f"{ctype}={status}",
                )
            )
    return entries


def alert_entry(alert: AlertInfo | None, namespace: str) -> list[Entry]:
    if alert is None or alert.starts_at is None:
        return []
    details = (f"fingerprint {alert.fingerprint}",) if alert.fingerprint else ()
    return [
        Entry(
            time=alert.starts_at,
            kind="Alert",
            severity="critical",
            resource=ResourceRef(kind="Alert", name=alert.name, namespace=namespace),
            summary=f"alert {alert.name} started firing",
            details=details,
            reason="Alert",
        )
    ]


def build(
    snapshot: Snapshot,
    start: dt.datetime,
    end: dt.datetime,
    *,
    alert: AlertInfo | None = None,
    extra_events: Iterable[Obj] = (),
    extra_entries: Iterable[Entry] = (),
) -> Timeline:
    """Every entry inside [start, end], sorted by time (rollouts first within the same second)."""
    candidates = [
        *rollouts(snapshot),
        *dependency_changes(snapshot),
        *scaling(snapshot, extra_events),
        *pod_restarts(snapshot),
        *warning_events(snapshot, start, end),
        *node_conditions(snapshot),
        *alert_entry(alert, snapshot.namespace),
        *extra_entries,
    ]
    kept = sorted((e for e in candidates if start <= e.time <= end), key=Entry.sort_key)
    return Timeline(start=start, end=end, entries=kept, links=dependencies.links(snapshot))
