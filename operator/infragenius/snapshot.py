"""The frozen snapshot detectors read: raw API objects, events, metrics and what gathering missed.

Objects stay as the API's JSON dicts (camelCase keys): converting thousands of
pods into client models costs more than the whole analysis. Detectors must
treat them as read-only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from types import MappingProxyType
from typing import Any, TypeVar

from infragenius.kube.events import involved_object
from infragenius.kube.meta import Key, Obj, key_of, labels_of, name_of, namespace_of, ref_from_key, uid_of
from infragenius.kube.owners import controller_among, controller_ref
from infragenius.kube.selectors import map_selector_matches, selector_matches
from infragenius.models.findings import ResourceRef

T = TypeVar("T")

# Kinds whose objects own pods, in the order owner chains are followed.
WORKLOAD_KINDS = ("ReplicaSet", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


class GatherStatus(str, Enum):
    ok = "ok"
    error = "error"
    no_data = "no_data"


@dataclass(frozen=True)
class GatherResult:
    """How gathering one source went; errors are data, not exceptions."""

    source: str
    status: GatherStatus
    count: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class ContainerMetrics:
    """Prometheus figures for one container over the lookback window; None when not measured."""

    restarts: float | None = None
    cpu_throttled_ratio: float | None = None
    memory_working_set_bytes: float | None = None
    memory_limit_bytes: float | None = None


MetricsKey = tuple[str, str, str]  # (namespace, pod, container)


@dataclass(frozen=True)
class ContainerLog:
    """What one container's log showed: a few cleaned lines (untrusted text), or why it could not be read."""

    lines: tuple[str, ...] = ()
    #: The log of the run before the current one (the one that crashed), not of the current run.
    previous: bool = False
    #: False: no line looked like an error, so ``lines`` are the log's last lines.
    errors_found: bool = False
    #: Set when the log could not be read (forbidden, the node's kubelet unreachable, the container gone).
    error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything one analysis run knows about its target, taken once."""

    namespace: str
    taken_at: dt.datetime
    objects: Mapping[str, tuple[Obj, ...]]
    events: tuple[Obj, ...] = ()
    metrics: Mapping[MetricsKey, ContainerMetrics] = field(default_factory=dict)
    results: tuple[GatherResult, ...] = ()
    metrics_window: str = "1h"
    #: Logs of a few failing containers, by (namespace, pod, container).
    logs: Mapping[MetricsKey, ContainerLog] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        namespace: str,
        objects: Mapping[str, Iterable[Obj]],
        events: Iterable[Obj] = (),
        metrics: Mapping[MetricsKey, ContainerMetrics] | None = None,
        results: Iterable[GatherResult] = (),
        taken_at: dt.datetime | None = None,
        metrics_window: str = "1h",
        logs: Mapping[MetricsKey, ContainerLog] | None = None,
    ) -> Snapshot:
        return cls(
            namespace=namespace,
            taken_at=taken_at or dt.datetime.now(dt.UTC),
            objects=MappingProxyType({kind: tuple(items) for kind, items in objects.items()}),
            events=tuple(events),
            metrics=MappingProxyType(dict(metrics or {})),
            results=tuple(results),
            metrics_window=metrics_window,
            logs=MappingProxyType(dict(logs or {})),
        )

    # --- lookups ------------------------------------------------------------------------------

    def items(self, kind: str) -> tuple[Obj, ...]:
        """All gathered objects of a kind (empty when the kind was not gathered)."""
        return self.objects.get(kind, ())

    def has(self, kind: str) -> bool:
        """True when the kind was gathered successfully (an empty list is still knowledge)."""
        return kind in self.objects

    @cached_property
    def _by_name(self) -> dict[str, dict[tuple[str, str], Obj]]:
        return {}

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        # Indexed per kind on first use: looking up a Deployment need not index thousands of pods.
        if kind == "Pod":  # indexed with everything else about pods, in the pod table's one walk
            return self.pods.by_name.get(namespace or "", _NO_PODS).get(name)
        index = self._by_name.get(kind)
        if index is None:
            index = self._by_name[kind] = {(namespace_of(obj) or "", name_of(obj)): obj for obj in self.items(kind)}
        return index.get((namespace or "", name))

    @cached_property
    def _by_uid(self) -> dict[str, Obj]:
        """Workload objects by uid, to follow owner references."""
        return {uid_of(obj): obj for kind in WORKLOAD_KINDS for obj in self.items(kind) if uid_of(obj)}

    # --- owners ---------------------------------------------------------------------------------

    def owner_chain(self, obj: Obj) -> list[ResourceRef]:
        """Controllers of ``obj``, nearest first (Pod -> ReplicaSet -> Deployment)."""
        return [ref_from_key(key) for key in self._owner_keys(obj)]

    def _owner_keys(self, obj: Obj) -> list[Key]:
        chain: list[Key] = []
        namespace = namespace_of(obj)
        current: Obj | None = obj
        for _ in range(5):  # owner chains are short; the bound guards against cycles
            controller = controller_ref(current)
            if controller is None:
                break
            chain.append((controller["kind"], namespace, controller["name"]))
            current = self._by_uid.get(controller.get("uid", ""))
            if current is None:
                break
        return chain

    def owners_of(self, key: Key) -> list[ResourceRef]:
        """Owner chain of a roll-up target (usually empty: targets are outermost controllers)."""
        obj = self.get(key[0], key[2], key[1])
        return self.owner_chain(obj) if obj is not None else []

    @cached_property
    def _rollup_cache(self) -> dict[tuple[str, str | None], Key]:
        return {}

    def rollup_key(self, obj: Obj, kind: str) -> Key:
        """The (kind, namespace, name) a problem rolls up to: the outermost controller, or the object.

        Thousands of pods share a handful of controllers, so the chain is walked once per controller.
        """
        controller = controller_ref(obj)
        if controller is None:
            return key_of(obj, kind)
        namespace = namespace_of(obj)
        cache_key = (controller.get("uid") or f"{controller.get('kind')}/{controller.get('name')}", namespace)
        cached = self._rollup_cache.get(cache_key)
        if cached is None:
            cached = self._rollup_cache[cache_key] = self._owner_keys(obj)[-1]
        return cached

    def rollup_target(self, obj: Obj, kind: str) -> ResourceRef:
        """The resource a problem rolls up to: the outermost controller, or the object itself."""
        return ref_from_key(self.rollup_key(obj, kind))

    @cached_property
    def _by_controller(self) -> dict[str, dict[str, list[Obj]]]:
        return {}

    def by_controller(self, kind: str) -> dict[str, list[Obj]]:
        """Objects of a kind grouped by their controller's uid (e.g. pods by ReplicaSet)."""
        index = self._by_controller.get(kind)
        if index is None and kind == "Pod":
            index = self._by_controller[kind] = self.pods.by_controller
        if index is None:
            index = self._by_controller[kind] = {}
            for obj in self.items(kind):
                ref = controller_ref(obj)
                if ref and ref.get("uid"):
                    index.setdefault(ref["uid"], []).append(obj)
        return index

    def owned_pods(self, owner: Obj) -> list[Obj] | None:
        """Pods an object controls; None when Pods were not gathered (nothing can be said about them)."""
        if not self.has("Pod"):
            return None
        return self.by_controller("Pod").get(uid_of(owner), [])

    # --- pods, endpoints, events ----------------------------------------------------------------

    @cached_property
    def pods(self) -> PodTable:
        """Every pod indexed once, in one walk: by name, by controller, and the active ones by label and node."""
        return PodTable(self.items("Pod"))

    @property
    def active_pods(self) -> PodIndex:
        """Pods neither finished nor being deleted (the ones a Service routes to), indexed by label."""
        return self.pods.active

    @cached_property
    def _slices_by_service(self) -> dict[tuple[str | None, str], list[Obj]]:
        index: dict[tuple[str | None, str], list[Obj]] = {}
        for eps in self.items("EndpointSlice"):
            service = labels_of(eps).get("kubernetes.io/service-name")
            if service:
                index.setdefault((namespace_of(eps), service), []).append(eps)
        return index

    def endpoint_slices(self, namespace: str | None, service: str) -> list[Obj]:
        """EndpointSlices of one Service (by their kubernetes.io/service-name label)."""
        return self._slices_by_service.get((namespace, service), [])

    @cached_property
    def _events_by_object(self) -> dict[tuple[str, str], list[Obj]]:
        index: dict[tuple[str, str], list[Obj]] = {}
        for event in self.events:
            involved = involved_object(event)
            index.setdefault((involved.get("kind", ""), involved.get("name", "")), []).append(event)
        return index

    def events_for(self, kind: str, name: str) -> list[Obj]:
        """Warning events about one object, newest first (as gathered)."""
        return self._events_by_object.get((kind, name), [])

    def events_about(self, kind: str, name: str, namespace: str | None) -> list[Obj]:
        """Events about one object; events_for keys by (kind, name) only, so filter the namespace."""
        return [e for e in self.events_for(kind, name) if (involved_object(e).get("namespace") or None) == namespace]

    @cached_property
    def _derived(self) -> dict[str, Any]:
        return {}

    def derived(self, name: str, build: Callable[[Snapshot], T]) -> T:
        """``build(self)`` computed once: for indexes only one family of consumers needs.

        Stored on the snapshot itself, so it lives exactly as long as the snapshot (which is immutable).
        """
        if name not in self._derived:
            self._derived[name] = build(self)
        result: T = self._derived[name]
        return result

    def result(self, source: str) -> GatherResult | None:
        return next((r for r in self.results if r.source == source), None)

    @property
    def missing(self) -> list[GatherResult]:
        """Sources that could not be gathered; the analysis reports them."""
        return [r for r in self.results if r.status is GatherStatus.error]


#: Who controls a pod: (namespace, controller uid); (namespace, kind, name) for a controller without a
#: uid; (namespace, name, uid, "") for a pod without a controller, which is its own group.
OwnerKey = tuple[str | None, ...]

#: The identities of a pod's containerStatuses, initContainerStatuses and conditions. The gatherer's
#: compaction hands out one shared list for equal values, so the pods of a workload that started in the
#: same second carry the same lists: thousands of healthy pods hold a few hundred distinct ones, and a
#: verdict on one pod's lists holds for every pod with the same key. The snapshot keeps every list alive,
#: so an identity is never reused for another list while it exists.
StatusKey = tuple[int, int, int]

_NO_OWNERS: tuple[Mapping[str, Any], ...] = ()
_NO_STATUS: Mapping[str, Any] = MappingProxyType({})
_NO_PODS: Mapping[str, Obj] = MappingProxyType({})
_NO_LABELS: Mapping[str, Mapping[str, list[Obj]]] = MappingProxyType({})
_NO_VALUES: Mapping[str, list[Obj]] = MappingProxyType({})


class PodTable:
    """Everything detectors look pods up by, built in one walk over the pods.

    Several detectors each need the pods by name, by controller, by label or by node. Built one index at
    a time, each was a pass over thousands of pods reading the same metadata again (about 1 us a pod a
    pass): one walk reads each pod's metadata once and fills every index.
    """

    def __init__(self, pods: Iterable[Obj]) -> None:
        #: Every pod by namespace (or "") and name, as ``Snapshot.get`` finds them.
        self.by_name: dict[str, dict[str, Obj]] = {}
        #: Every pod grouped by its controller (see ``OwnerKey``), groups in the order of their first pod.
        self.by_owner: dict[OwnerKey, list[Obj]] = {}
        #: Names of the active pods (see ``PodIndex``) by ``spec.nodeName``.
        self.active_on_node: dict[str, list[str]] = {}
        #: Running pods not being deleted, grouped by the identity of their status lists (see ``StatusKey``).
        self.running_by_status: dict[StatusKey, list[Obj]] = {}
        #: Every other pod (not Running, or being deleted), in snapshot order.
        self.not_running: list[Obj] = []
        self._by_ns: dict[str | None, list[Obj]] = {}
        self._by_label: dict[str | None, dict[str, dict[str, list[Obj]]]] = {}
        by_owners_list: dict[int, list[Obj]] = {}
        by_name, running = self.by_name, self.running_by_status
        for pod in pods:  # hot loop: plain dict access, buckets appended inline, one tuple a pod (its status key)
            pod_meta = pod.get("metadata") or {}
            namespace = pod_meta.get("namespace") or None
            named = by_name.get(namespace or "")
            if named is None:
                named = by_name[namespace or ""] = {}
            named[pod_meta.get("name", "")] = pod
            owners = pod_meta.get("ownerReferences")
            if owners:  # shared between the pods of a controller (compaction): one group per list
                bucket = by_owners_list.get(id(owners))
                if bucket is None:
                    by_owners_list[id(owners)] = [pod]
                else:
                    bucket.append(pod)
            else:
                by_owners_list[id(pod)] = [pod]  # a bare pod is its own group
            status = pod.get("status") or _NO_STATUS
            phase = status.get("phase")
            if phase != "Running" or pod_meta.get("deletionTimestamp"):
                self.not_running.append(pod)
                if phase in ("Succeeded", "Failed") or pod_meta.get("deletionTimestamp"):
                    continue
            else:
                key = (id(status.get("containerStatuses")), id(status.get("initContainerStatuses")),
                       id(status.get("conditions")))  # fmt: skip
                bucket = running.get(key)
                if bucket is None:
                    running[key] = [pod]
                else:
                    bucket.append(pod)
            self._add_active(pod, pod_meta, namespace)
        self.active = PodIndex(self._by_ns, self._by_label)
        for group in by_owners_list.values():
            self._add_group(group)

    def _add_active(self, pod: Obj, pod_meta: Mapping[str, Any], namespace: str | None) -> None:
        """Index a pod neither finished nor being deleted by namespace, label and node."""
        bucket = self._by_ns.get(namespace)
        if bucket is None:
            self._by_ns[namespace] = [pod]
            labelled = self._by_label[namespace] = {}
        else:
            bucket.append(pod)
            labelled = self._by_label[namespace]
        for label, value in (pod_meta.get("labels") or {}).items():
            values = labelled.get(label)
            if values is None:
                labelled[label] = {value: [pod]}
                continue
            bucket = values.get(value)
            if bucket is None:
                values[value] = [pod]
            else:
                bucket.append(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            names = self.active_on_node.get(node)
            if names is None:
                self.active_on_node[node] = [pod_meta.get("name", "")]
            else:
                names.append(pod_meta.get("name", ""))

    def _add_group(self, pods: list[Obj]) -> None:
        """File pods that share one ownerReferences list (or one bare pod) under their owner key."""
        pod_meta = pods[0].get("metadata") or {}
        controller = controller_among(pod_meta.get("ownerReferences") or _NO_OWNERS)
        if controller is not None and not controller.get("uid"):
            # Without a uid, equal references in two namespaces name two controllers: key pod by pod.
            for pod in pods:
                namespace = namespace_of(pod)
                self._file((namespace, controller.get("kind"), controller.get("name")), [pod])
            return
        namespace = pod_meta.get("namespace") or None
        if controller is None:
            self._file((namespace, pod_meta.get("name", ""), pod_meta.get("uid", ""), ""), pods)
        else:  # a uid is unique cluster-wide: every pod of the group is in its controller's namespace
            self._file((namespace, controller["uid"]), pods)

    def _file(self, owner_key: OwnerKey, pods: list[Obj]) -> None:
        bucket = self.by_owner.get(owner_key)
        if bucket is None:
            self.by_owner[owner_key] = pods
        else:
            bucket.extend(pods)

    @cached_property
    def by_controller(self) -> dict[str, list[Obj]]:
        """Pods by their controller's uid (controllers without a uid are left out), in snapshot order when the
        pods of a controller share their ownerReferences list (compacted) or each hold their own."""
        index: dict[str, list[Obj]] = {}
        for owner_key, pods in self.by_owner.items():
            if len(owner_key) == 2:  # uids are unique cluster-wide: one group per uid
                index.setdefault(str(owner_key[1]), []).extend(pods)
        return index


class PodIndex:
    """Active pods (neither finished nor being deleted) by namespace, and by namespace, label and value
    for fast selector lookups; built by :class:`PodTable`."""

    def __init__(
        self, by_ns: dict[str | None, list[Obj]], by_label: dict[str | None, dict[str, dict[str, list[Obj]]]]
    ) -> None:
        self.by_ns = by_ns
        self._by_label = by_label
        self._selected: dict[tuple[Any, ...], list[Obj]] = {}

    def _candidates(self, namespace: str | None, pairs: Mapping[str, str]) -> list[Obj]:
        if not pairs:
            return self.by_ns.get(namespace, [])
        labelled = self._by_label.get(namespace, _NO_LABELS)
        return min((labelled.get(k, _NO_VALUES).get(v, []) for k, v in pairs.items()), key=len)

    def select_map(self, namespace: str | None, selector: Mapping[str, str] | None) -> list[Obj]:
        """Pods a Service selector picks; an empty selector picks none (Service semantics)."""
        if not selector:
            return []
        key = (namespace, "map", *sorted(selector.items()))
        hit = self._selected.get(key)
        if hit is None:
            candidates = self._candidates(namespace, selector)
            if len(selector) == 1:  # the label's bucket holds exactly the pods it selects
                hit = self._selected[key] = list(candidates)
            else:
                hit = self._selected[key] = [p for p in candidates if map_selector_matches(selector, labels_of(p))]
        return hit

    def select(self, namespace: str | None, selector: Mapping[str, Any] | None) -> list[Obj]:
        """Pods a LabelSelector picks; an empty selector picks all, a missing one none."""
        if selector is None:
            return []
        candidates = self._candidates(namespace, selector.get("matchLabels") or {})
        return [p for p in candidates if selector_matches(selector, labels_of(p))]
