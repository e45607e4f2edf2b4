"""Helpers shared by the infra detectors: roll-up keys, pod/label indexes, endpoint health,
pod templates and resource quantities.

Everything here works on plain dicts and tuples: these run once per pod, and building a
pydantic model per pod would cost more than the analysis itself.
"""

from __future__ import annotations

import datetime as dt
import re
import weakref
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from infragenius.detectors.base import map_selector_matches, parse_time, selector_matches
from infragenius.models.findings import ResourceRef
from infragenius.snapshot import WORKLOAD_KINDS, Obj, Snapshot

T = TypeVar("T")

# Per-snapshot memo of derived indexes, so the infra detectors build each index once per run
# instead of once per detector. Entries go away with their snapshot (weakref callback).
_MEMO: dict[int, tuple["weakref.ref[Snapshot]", dict[str, Any]]] = {}


def memo(snapshot: Snapshot, name: str, build: Callable[[Snapshot], T]) -> T:
    """``build(snapshot)``, computed once per snapshot; the snapshot is immutable, so this stays pure."""
    key = id(snapshot)
    entry = _MEMO.get(key)
    if entry is None or entry[0]() is not snapshot:

        def forget(_ref: "weakref.ref[Snapshot]", key: int = key) -> None:
            _MEMO.pop(key, None)

        entry = (weakref.ref(snapshot, forget), {})
        _MEMO[key] = entry
    store = entry[1]
    if name not in store:
        store[name] = build(snapshot)
    result: T = store[name]
    return result


# (kind, namespace, name): a hashable, allocation-cheap stand-in for ResourceRef.
Key = tuple[str, str | None, str]

# Pods younger than this are still starting; not being ready yet is not a problem.
STARTING_GRACE_SECONDS = 180.0

EXAMPLES = 5


# --- small formatting / time helpers -------------------------------------------------------


def meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def name_of(obj: Obj) -> str:
    name: str = meta(obj).get("name", "")
    return name


def ns_of(obj: Obj) -> str | None:
    return meta(obj).get("namespace") or None


def ref(key: Key) -> ResourceRef:
    kind, namespace, name = key
    return ResourceRef(kind=kind, name=name, namespace=namespace)


def examples(names: Sequence[str], limit: int = EXAMPLES) -> str:
    """Up to ``limit`` names, saying how many more there are, so evidence stays short."""
    shown = ", ".join(names[:limit])
    return f"{shown} (+{len(names) - limit} more)" if len(names) > limit else shown


def age_seconds(snapshot: Snapshot, timestamp: str | None) -> float | None:
    """Seconds between ``timestamp`` and the snapshot; None when unknown."""
    when = parse_time(timestamp)
    if when is None:
        return None
    return (snapshot.taken_at - when).total_seconds()


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{int(seconds)}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m"
    if seconds < 172800:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def format_selector(selector: Mapping[str, Any] | None) -> str:
    """A map selector or a LabelSelector as kubectl -l syntax."""
    if not selector:
        return "<empty>"
    if "matchLabels" in selector or "matchExpressions" in selector:
        parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
        for expr in selector.get("matchExpressions") or []:
            values = ",".join(expr.get("values") or [])
            parts.append(f"{expr.get('key')} {expr.get('operator')} ({values})" if values else
                         f"{expr.get('key')} {expr.get('operator')}")
        return ",".join(parts) or "<empty>"
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def events_about(snapshot: Snapshot, kind: str, name: str, namespace: str | None) -> list[Obj]:
    """Events about one object; events_for keys by (kind, name) only, so filter the namespace."""
    out = []
    for event in snapshot.events_for(kind, name):
        involved = event.get("involvedObject") or event.get("regarding") or {}
        if (involved.get("namespace") or None) == namespace:
            out.append(event)
    return out


def event_count(event: Obj) -> int:
    """Occurrences of an event: series.count (events.k8s.io style) or the legacy count."""
    series = event.get("series") or {}
    return int(series.get("count") or event.get("count") or event.get("deprecatedCount") or 1)


def event_time(event: Obj) -> dt.datetime | None:
    """When an event was last seen, whichever of the API's time fields is filled."""
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("deprecatedLastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ):
        when = parse_time(value)
        if when is not None:
            return when
    return None


# --- roll-up ---------------------------------------------------------------------------------


class Rollup:
    """``Snapshot.rollup_target`` semantics with tuples and a per-controller cache.

    Thousands of pods share a handful of controllers, so the owner chain is walked once per
    controller uid rather than once per pod.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self._by_uid: dict[str, Obj] = {}
        for kind in WORKLOAD_KINDS:
            for obj in snapshot.items(kind):
                uid = meta(obj).get("uid")
                if uid:
                    self._by_uid[uid] = obj
        self._cache: dict[tuple[str, str | None], Key] = {}

    @staticmethod
    def _controller(obj: Obj | None) -> Mapping[str, Any] | None:
        """The controlling owner reference, else the first one (as Snapshot.owner_chain picks)."""
        owners: list[Mapping[str, Any]] | None = ((obj or {}).get("metadata") or {}).get("ownerReferences")
        if not owners:
            return None
        for owner in owners:
            if owner.get("controller"):
                return owner
        return owners[0]

    @classmethod
    def of(cls, snapshot: Snapshot) -> "Rollup":
        return memo(snapshot, "rollup", cls)

    def key(self, obj: Obj, kind: str) -> Key:
        obj_meta = obj.get("metadata") or {}
        namespace = obj_meta.get("namespace") or None
        controller = self._controller(obj)
        if controller is None:
            return (kind, namespace, obj_meta.get("name", ""))
        cache_key = (controller.get("uid") or f"{controller.get('kind')}/{controller.get('name')}", namespace)
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        last: Key = (controller["kind"], namespace, controller["name"])
        current = self._by_uid.get(controller.get("uid", ""))
        for _ in range(4):  # same bound as Snapshot.owner_chain (5 hops in total)
            if current is None:
                break
            nxt = self._controller(current)
            if nxt is None:
                break
            last = (nxt["kind"], namespace, nxt["name"])
            current = self._by_uid.get(nxt.get("uid", ""))
        self._cache[cache_key] = last
        return last


def owners_of(snapshot: Snapshot, key: Key) -> list[ResourceRef]:
    """Owner chain of a roll-up target (usually empty: targets are outermost controllers)."""
    obj = snapshot.get(key[0], key[2], key[1])
    return snapshot.owner_chain(obj) if obj is not None else []


# --- pods ------------------------------------------------------------------------------------


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


# Waiting reasons that mean a container has failed, not that it is still starting.
FAILED_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def has_failed_container(pod: Obj) -> bool:
    status = pod.get("status") or {}
    for container in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILED_WAITING_REASONS:
            return True
    return False


def is_starting(snapshot: Snapshot, pod: Obj | None) -> bool:
    """Created within the grace period and not already failing (a rollout's new pod, not a broken one)."""
    if pod is None or has_failed_container(pod):
        return False
    age = age_seconds(snapshot, meta(pod).get("creationTimestamp"))
    return age is not None and age < STARTING_GRACE_SECONDS


class PodIndex:
    """Active pods (neither finished nor being deleted: the ones a Service routes to), by
    namespace and by (namespace, label, value) for fast selector lookups."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.by_ns: dict[str | None, list[Obj]] = {}
        self._by_label: dict[tuple[str | None, str, str], list[Obj]] = {}
        self._selected: dict[tuple[Any, ...], list[Obj]] = {}
        by_label = self._by_label
        for pod in snapshot.items("Pod"):  # hot loop: plain dict access only
            pod_meta = pod.get("metadata") or {}
            if pod_meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            namespace = pod_meta.get("namespace") or None
            self.by_ns.setdefault(namespace, []).append(pod)
            for label, value in (pod_meta.get("labels") or {}).items():
                bucket = by_label.get((namespace, label, value))
                if bucket is None:
                    by_label[(namespace, label, value)] = [pod]
                else:
                    bucket.append(pod)

    @classmethod
    def of(cls, snapshot: Snapshot) -> "PodIndex":
        return memo(snapshot, "pods", cls)

    def _candidates(self, namespace: str | None, pairs: Mapping[str, str]) -> list[Obj]:
        if not pairs:
            return self.by_ns.get(namespace, [])
        return min((self._by_label.get((namespace, k, v), []) for k, v in pairs.items()), key=len)

    def select_map(self, namespace: str | None, selector: Mapping[str, str] | None) -> list[Obj]:
        """Pods a Service selector picks; an empty selector picks none (Service semantics)."""
        if not selector:
            return []
        key = (namespace, "map", *sorted(selector.items()))
        hit = self._selected.get(key)
        if hit is None:
            hit = [p for p in self._candidates(namespace, selector) if map_selector_matches(selector, p["metadata"].get("labels"))]
            self._selected[key] = hit
        return hit

    def select(self, namespace: str | None, selector: Mapping[str, Any] | None) -> list[Obj]:
        """Pods a LabelSelector picks; an empty selector picks all, a missing one none."""
        if selector is None:
            return []
        candidates = self._candidates(namespace, selector.get("matchLabels") or {})
        return [p for p in candidates if selector_matches(selector, meta(p).get("labels"))]


# --- endpoints -------------------------------------------------------------------------------


class SliceIndex:
    """EndpointSlices by (namespace, owning Service name)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.gathered = snapshot.has("EndpointSlice")
        self._by_service: dict[tuple[str | None, str], list[Obj]] = {}
        for eps in snapshot.items("EndpointSlice"):
            service = (meta(eps).get("labels") or {}).get("kubernetes.io/service-name")
            if service:
                self._by_service.setdefault((ns_of(eps), service), []).append(eps)

    @classmethod
    def of(cls, snapshot: Snapshot) -> "SliceIndex":
        return memo(snapshot, "slices", cls)

    def for_service(self, namespace: str | None, name: str) -> list[Obj]:
        return self._by_service.get((namespace, name), [])


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


def endpoint_health(
    snapshot: Snapshot, namespace: str | None, service: str, pods: Sequence[Obj], slices: SliceIndex
) -> EndpointHealth:
    """Count ready and not-ready backends, from EndpointSlices when gathered, else pod readiness."""
    if slices.gathered:
        ready, starting = 0, 0
        not_ready: list[str] = []
        seen: set[Any] = set()
        for eps in slices.for_service(namespace, service):
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
                pod = snapshot.get("Pod", target["name"], namespace) if target.get("kind") == "Pod" and target.get("name") else None
                if is_starting(snapshot, pod):
                    starting += 1
                else:
                    not_ready.append(target.get("name") or ",".join(endpoint.get("addresses") or ()) or "?")
        if ready or not_ready or starting:
            return EndpointHealth("EndpointSlice", ready, tuple(not_ready), starting)
        # No endpoints listed yet (controller lag, or pods without IPs): judge the pods instead.
    ready, starting = 0, 0
    not_ready = []
    for pod in pods:
        if pod_ready(pod):
            ready += 1
        elif is_starting(snapshot, pod):
            starting += 1
        else:
            not_ready.append(name_of(pod))
    return EndpointHealth("Pod", ready, tuple(not_ready), starting)


# --- pod templates ---------------------------------------------------------------------------

# Where each kind keeps its pod spec, and the same as a field path for evidence.
SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
TEMPLATE_KINDS = ("CronJob", "Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")
RUN_TO_COMPLETION_KINDS = frozenset({"Job", "CronJob"})


def pod_spec(obj: Obj, kind: str) -> Mapping[str, Any]:
    current: Mapping[str, Any] = obj
    for part in SPEC_PATHS[kind]:
        current = current.get(part) or {}
    return current


def spec_path(kind: str) -> str:
    return ".".join(SPEC_PATHS[kind])


def template_labels(obj: Obj, kind: str) -> Mapping[str, str]:
    """Labels the pods of a workload get (from the pod template's metadata)."""
    if kind == "Pod":
        return meta(obj).get("labels") or {}
    path = SPEC_PATHS[kind][:-1] + ("metadata",)
    current: Any = obj
    for part in path:
        current = (current or {}).get(part) or {}
    return current.get("labels") or {}


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
            yield SpecSource("Pod", name_of(pod), "spec", pod.get("spec") or {}, meta(pod).get("labels") or {})


def collect_targets(snapshot: Snapshot, rollup: Rollup) -> dict[Key, Target]:
    """Group pod templates and pods by roll-up target.

    A ReplicaSet owned by a gathered Deployment (or a Job of a gathered CronJob) is skipped:
    its parent's template is the one to judge, and old ReplicaSets carry stale templates.
    """
    targets: dict[Key, Target] = {}
    for kind in TEMPLATE_KINDS:
        for obj in snapshot.items(kind):
            controller = Rollup._controller(obj)
            if controller and controller.get("kind") in WORKLOAD_KINDS and snapshot.get(
                controller["kind"], controller.get("name", ""), ns_of(obj)
            ) is not None:
                continue
            key = rollup.key(obj, kind)
            target = targets.setdefault(key, Target(key))
            if target.template is None:
                target.template = SpecSource(kind, name_of(obj), spec_path(kind), pod_spec(obj, kind), template_labels(obj, kind))
            if kind in RUN_TO_COMPLETION_KINDS:
                target.runs_to_completion = True
    for pod in snapshot.items("Pod"):
        key = rollup.key(pod, "Pod")
        pod_target = targets.get(key)
        if pod_target is None:
            pod_target = targets[key] = Target(key)
        pod_target.pods.append(pod)
        controller = Rollup._controller(pod)
        owner = controller if controller else pod.get("metadata") or {}
        group_id = str(owner.get("uid") or owner.get("name"))
        group = pod_target.groups.get(group_id)
        if group is None:
            pod_target.groups[group_id] = [pod]
        else:
            group.append(pod)
        if key[0] in RUN_TO_COMPLETION_KINDS or (controller and controller.get("kind") in RUN_TO_COMPLETION_KINDS):
            pod_target.runs_to_completion = True
        elif key[0] == "Pod" and (pod.get("spec") or {}).get("restartPolicy") in ("Never", "OnFailure"):
            pod_target.runs_to_completion = True  # a bare pod meant to finish
    return targets


def targets_of(snapshot: Snapshot) -> dict[Key, Target]:
    """collect_targets, once per snapshot. Callers must not modify the result."""
    def build(s: Snapshot) -> dict[Key, Target]:
        return collect_targets(s, Rollup.of(s))

    return memo(snapshot, "targets", build)


def containers(spec: Mapping[str, Any], init: bool = True) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(field name, container) for regular, and optionally init and ephemeral, containers."""
    fields = ("containers", "initContainers", "ephemeralContainers") if init else ("containers",)
    for field_name in fields:
        for container in spec.get(field_name) or []:
            yield field_name, container


# --- quantities ------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_SUFFIX = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
    "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
}


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource.Quantity ("250m", "1Gi", "1e3", "12") as a Decimal; None if malformed."""
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    number, exponent, suffix = match.groups()
    try:
        result = Decimal(number)
        if exponent:
            result *= Decimal(10) ** int(exponent[1:])
        elif suffix:
            result *= _SUFFIX[suffix]
    except (InvalidOperation, ValueError):
        return None
    return result
