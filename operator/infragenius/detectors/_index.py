"""Snapshot-derived views some detectors share: workloads with their pod templates and pods, and the
health of what backs a Service. Cached on the snapshot itself (``Snapshot.derived``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infragenius.kube.meta import Key, Obj, labels_of, meta, name_of, namespace_of
from infragenius.kube.owners import controller_ref
from infragenius.kube.pods import is_starting, pod_ready, pod_spec, spec_path, template_labels
from infragenius.snapshot import WORKLOAD_KINDS, Snapshot

TEMPLATE_KINDS = ("CronJob", "Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
RUN_TO_COMPLETION_KINDS = frozenset({"Job", "CronJob"})


# --- workloads with their templates and pods ----------------------------------------------------


@dataclass(frozen=True)
class SpecSource:
    """One pod spec, where it came from and its field path prefix for evidence."""

    kind: str
    name: str
    path: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str]


@dataclass
class Target:
    """A roll-up target with its template (when its workload was gathered) and its pods."""

    key: Key
    template: SpecSource | None = None
    pods: list[Obj] = field(default_factory=list)
    runs_to_completion: bool = False
    # Pods by their direct controller's uid (a bare pod by its own): pods of one ReplicaSet, Job,
    # StatefulSet or DaemonSet share one spec, so a spec check needs only one of each group.
    groups: dict[str, list[Obj]] = field(default_factory=dict)

    def sources(self) -> Iterator[SpecSource]:
        """The template, else one pod per controller (bare pods, or workloads not gathered)."""
        if self.template is not None:
            yield self.template
            return
        for pods in self.groups.values():
            pod = pods[0]
            yield SpecSource("Pod", name_of(pod), "spec", pod.get("spec") or {}, labels_of(pod))


def workload_targets(snapshot: Snapshot) -> dict[Key, Target]:
    """Pod templates and pods grouped by roll-up target, once per snapshot. Callers must not modify it."""
    return snapshot.derived("workload_targets", _collect_targets)


def _collect_targets(snapshot: Snapshot) -> dict[Key, Target]:
    targets: dict[Key, Target] = {}
    for kind in TEMPLATE_KINDS:
        for obj in snapshot.items(kind):
            _add_template(snapshot, targets, obj, kind)
    # Pods of one controller share their roll-up target, so they are added a controller at a time. Groups
    # come in the order of their first pod: each target's first pod, and the order of its groups, are the
    # same as when adding pod by pod.
    for pods in snapshot.pods.by_owner.values():
        _add_pods(snapshot, targets, pods)
    return targets


def _add_template(snapshot: Snapshot, targets: dict[Key, Target], obj: Obj, kind: str) -> None:
    # A ReplicaSet of a gathered Deployment (or a Job of a gathered CronJob) is judged through its
    # parent's template: old ReplicaSets carry stale templates.
    controller = controller_ref(obj)
    if (
        controller
        and controller.get("kind") in WORKLOAD_KINDS
        and snapshot.get(controller["kind"], controller.get("name", ""), namespace_of(obj)) is not None
    ):
        return
    key = snapshot.rollup_key(obj, kind)
    target = targets.setdefault(key, Target(key))
    if target.template is None:
        labels = template_labels(obj, kind)
        target.template = SpecSource(kind, name_of(obj), spec_path(kind), pod_spec(obj, kind), labels)
    if kind in RUN_TO_COMPLETION_KINDS:
        target.runs_to_completion = True


def _add_pods(snapshot: Snapshot, targets: dict[Key, Target], pods: list[Obj]) -> None:
    """Pods with the same controlling ownerReference (or one bare pod): one roll-up target, one group."""
    first = pods[0]
    key = snapshot.rollup_key(first, "Pod")
    target = targets.get(key)
    if target is None:
        target = targets[key] = Target(key)
    target.pods.extend(pods)
    controller = controller_ref(first)
    owner = controller if controller else meta(first)
    group_key = str(owner.get("uid") or owner.get("name"))
    if group_key in target.groups:
        target.groups[group_key].extend(pods)
    else:
        target.groups[group_key] = list(pods)
    if key[0] in RUN_TO_COMPLETION_KINDS or (controller and controller.get("kind") in RUN_TO_COMPLETION_KINDS):
        target.runs_to_completion = True
    elif key[0] == "Pod" and any((p.get("spec") or {}).get("restartPolicy") in ("Never", "OnFailure") for p in pods):
        target.runs_to_completion = True  # a bare pod meant to finish


# --- endpoints ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointHealth:
    """Readiness of what backs a Service; ``not_ready`` excludes pods that are still starting."""

    source: str  # "EndpointSlice" or "Pod"
    ready: int
    not_ready: tuple[str, ...]
    starting: int

    @property
    def total(self) -> int:
        return self.ready + len(self.not_ready) + self.starting


def endpoint_health(snapshot: Snapshot, namespace: str | None, service: str, pods: Sequence[Obj]) -> EndpointHealth:
    """Count ready and not-ready backends, from EndpointSlices when gathered, else pod readiness."""
    if snapshot.has("EndpointSlice"):
        health = _slice_health(snapshot, namespace, service)
        if health is not None:
            return health
        # No endpoints listed yet (controller lag, or pods without IPs): judge the pods instead.
    ready, starting = 0, 0
    not_ready: list[str] = []
    for pod in pods:
        if pod_ready(pod):
            ready += 1
        elif is_starting(pod, snapshot.taken_at):
            starting += 1
        else:
            not_ready.append(name_of(pod))
    return EndpointHealth("Pod", ready, tuple(not_ready), starting)


def _slice_health(snapshot: Snapshot, namespace: str | None, service: str) -> EndpointHealth | None:
    ready, starting = 0, 0
    not_ready: list[str] = []
    seen: set[Any] = set()
    for eps in snapshot.endpoint_slices(namespace, service):
        for endpoint in eps.get("endpoints") or []:
            target = endpoint.get("targetRef") or {}
            ident = target.get("uid") or target.get("name") or tuple(endpoint.get("addresses") or ())
            if ident in seen:  # dual-stack services list each pod in two slices
                continue
            seen.add(ident)
            conditions = endpoint.get("conditions") or {}
            if conditions.get("terminating"):
                continue  # on its way out during a rollout; not a current backend
            # A missing ready condition means "unknown", which the API says to treat as ready.
            if conditions.get("ready") is not False:
                ready += 1
                continue
            is_pod = target.get("kind") == "Pod" and target.get("name")
            pod = snapshot.get("Pod", target["name"], namespace) if is_pod else None
            if is_starting(pod, snapshot.taken_at):
                starting += 1
            else:
                not_ready.append(target.get("name") or ",".join(endpoint.get("addresses") or ()) or "?")
    if ready or not_ready or starting:
        return EndpointHealth("EndpointSlice", ready, tuple(not_ready), starting)
    return None
