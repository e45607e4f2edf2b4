"""The frozen snapshot detectors read: raw API objects, events, metrics and what gathering missed.

Objects stay as the API's JSON dicts (camelCase keys): converting thousands of
pods into client models costs more than the whole analysis. Detectors must
treat them as read-only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from infragenius.models.findings import ResourceRef

Obj = Mapping[str, Any]

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
class Snapshot:
    """Everything one analysis run knows about its target, taken once."""

    namespace: str
    taken_at: dt.datetime
    objects: Mapping[str, tuple[Obj, ...]]
    events: tuple[Obj, ...] = ()
    metrics: Mapping[MetricsKey, ContainerMetrics] = field(default_factory=dict)
    results: tuple[GatherResult, ...] = ()
    metrics_window: str = "1h"

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
    ) -> "Snapshot":
        return cls(
            namespace=namespace,
            taken_at=taken_at or dt.datetime.now(dt.timezone.utc),
            objects=MappingProxyType({kind: tuple(items) for kind, items in objects.items()}),
            events=tuple(events),
            metrics=MappingProxyType(dict(metrics or {})),
            results=tuple(results),
            metrics_window=metrics_window,
        )

    # --- lookups ------------------------------------------------------------------------------

    def items(self, kind: str) -> tuple[Obj, ...]:
        """All gathered objects of a kind (empty when the kind was not gathered)."""
        return self.objects.get(kind, ())

    def has(self, kind: str) -> bool:
        """True when the kind was gathered successfully (an empty list is still knowledge)."""
        return kind in self.objects

    @cached_property
    def _by_name(self) -> dict[tuple[str, str, str], Obj]:
        index: dict[tuple[str, str, str], Obj] = {}
        for kind, items in self.objects.items():
            for obj in items:
                meta = obj.get("metadata", {})
                index[(kind, meta.get("namespace") or "", meta.get("name", ""))] = obj
        return index

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return self._by_name.get((kind, namespace or "", name))

    @cached_property
    def _by_uid(self) -> dict[str, tuple[str, Obj]]:
        return {
            obj["metadata"]["uid"]: (kind, obj)
            for kind in WORKLOAD_KINDS
            for obj in self.items(kind)
            if obj.get("metadata", {}).get("uid")
        }

    def owner_chain(self, obj: Obj) -> list[ResourceRef]:
        """Controllers of ``obj``, nearest first (Pod -> ReplicaSet -> Deployment)."""
        chain: list[ResourceRef] = []
        namespace = obj.get("metadata", {}).get("namespace")
        current: Obj | None = obj
        for _ in range(5):  # owner chains are short; the bound guards against cycles
            owners = (current or {}).get("metadata", {}).get("ownerReferences") or []
            controller = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
            if controller is None:
                break
            chain.append(ResourceRef(kind=controller["kind"], name=controller["name"], namespace=namespace))
            found = self._by_uid.get(controller.get("uid", ""))
            current = found[1] if found else None
            if current is None:
                break
        return chain

    def rollup_target(self, obj: Obj, kind: str) -> ResourceRef:
        """The resource a problem rolls up to: the outermost controller, or the object itself."""
        chain = self.owner_chain(obj)
        if chain:
            return chain[-1]
        meta = obj.get("metadata", {})
        return ResourceRef(kind=kind, name=meta.get("name", ""), namespace=meta.get("namespace"))

    @cached_property
    def _events_by_object(self) -> dict[tuple[str, str], list[Obj]]:
        index: dict[tuple[str, str], list[Obj]] = {}
        for event in self.events:
            involved = event.get("involvedObject") or event.get("regarding") or {}
            index.setdefault((involved.get("kind", ""), involved.get("name", "")), []).append(event)
        return index

    def events_for(self, kind: str, name: str) -> list[Obj]:
        """Warning events about one object, newest first (as gathered)."""
        return self._events_by_object.get((kind, name), [])

    def result(self, source: str) -> GatherResult | None:
        return next((r for r in self.results if r.source == source), None)

    @property
    def missing(self) -> list[GatherResult]:
        """Sources that could not be gathered; the analysis reports them."""
        return [r for r in self.results if r.status is GatherStatus.error]
