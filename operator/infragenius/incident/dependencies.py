"""What each workload depends on, and when those things changed (pure: no I/O, no clock).

A failing workload with no change of its own may fail because something it depends on changed: a
ConfigMap it mounts or reads, a Service it calls (its selector or ports), a NetworkPolicy that selects
its pods, or a workload behind a Service it calls. Ranking needs both sides: the links, to tell a
dependency from a healthy decoy, and the changes, as timeline entries.

Links from the pod templates: ConfigMaps by reference (volumes, projected volumes, env, envFrom);
Services by name in env values, args or command (``db``, ``db.shop.svc``, ``http://db:5432``) and the
Services whose selector picks the workload's pods; NetworkPolicies whose podSelector picks them.

Change times come from ``metadata.managedFields`` (the newest write touching the fields that matter:
a Service's or NetworkPolicy's ``spec``, a ConfigMap's ``data``), else from ``creationTimestamp``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infragenius.kube.meta import meta, name_of
from infragenius.kube.pods import containers, pod_spec, template_labels
from infragenius.kube.selectors import map_selector_matches, selector_matches, selector_text
from infragenius.kube.time import parse_time
from infragenius.snapshot import Obj, Snapshot

#: Kinds the links and changes are read from; without them a rollout elsewhere cannot be judged unrelated.
DEPENDENCY_KINDS = ("Service", "ConfigMap", "NetworkPolicy")
_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
#: managedFields keys whose write counts as a change of the object.
_WATCHED = {"Service": ("f:spec",), "ConfigMap": ("f:data", "f:binaryData"), "NetworkPolicy": ("f:spec",)}
_TOKENS = re.compile(r"[^a-z0-9.-]+")

Ref = tuple[str, str]  # (kind, name)


@dataclass
class Links:
    """Who depends on what: ``dependents[(kind, name)]`` lists (dependent workload, how)."""

    known: bool = False  # the dependency kinds were gathered, so "nothing depends on it" means something
    dependents: dict[Ref, list[tuple[Ref, str]]] = field(default_factory=dict)

    def add(self, target: Ref, workload: Ref, how: str) -> None:
        if target != workload and (workload, how) not in self.dependents.setdefault(target, []):
            self.dependents[target].append((workload, how))

    def of(self, target: Ref, among: Iterable[Ref]) -> list[tuple[Ref, str]]:
        wanted = set(among)
        return [(w, how) for w, how in self.dependents.get(target, []) if w in wanted]


def _templates(snapshot: Snapshot) -> list[tuple[Ref, Mapping[str, Any], Mapping[str, str]]]:
    found = []
    for kind in _TEMPLATE_KINDS:
        for obj in snapshot.items(kind):
            found.append(((kind, name_of(obj)), pod_spec(obj, kind), template_labels(obj, kind)))
    return found


def _config_maps(spec: Mapping[str, Any]) -> set[str]:
    names = set()
    for volume in spec.get("volumes") or []:
        names.add(((volume.get("configMap") or {}).get("name")) or "")
        for source in (volume.get("projected") or {}).get("sources") or []:
            names.add(((source.get("configMap") or {}).get("name")) or "")
    for _field, c in containers(spec):
        names |= {((e.get("configMapRef") or {}).get("name")) or "" for e in c.get("envFrom") or []}
        names |= {
            (((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name")) or "" for e in c.get("env") or []
        }
    return names - {""}


def _host_tokens(spec: Mapping[str, Any]) -> set[str]:
    """Words of env values, args and commands that could name a Service (``db`` in ``http://db:5432``)."""
    words: set[str] = set()
    for _field, c in containers(spec):
        texts = [str(e.get("value") or "") for e in c.get("env") or []]
        texts += [str(a) for a in (*(c.get("args") or []), *(c.get("command") or []))]
        for text in texts:
            for token in _TOKENS.split(text.lower()):
                words.add(token)
                words.add(token.split(".", 1)[0])  # db.shop.svc.cluster.local -> db
    return words


def links(snapshot: Snapshot) -> Links:
    out = Links(known=all(snapshot.has(kind) for kind in DEPENDENCY_KINDS))
    workloads = _templates(snapshot)
    services = [(name_of(s), (s.get("spec") or {}).get("selector")) for s in snapshot.items("Service")]
    for ref, spec, labels in workloads:
        for cm in _config_maps(spec):
            out.add(("ConfigMap", cm), ref, f"mounts or reads ConfigMap {cm}")
        words = _host_tokens(spec)
        for svc, selector in services:
            if map_selector_matches(selector, labels):
                out.add(("Service", svc), ref, f"is behind Service {svc}")
            if svc in words:
                out.add(("Service", svc), ref, f"calls Service {svc}")
                for other, _spec, other_labels in workloads:
                    if map_selector_matches(selector, other_labels):
                        out.add(other, ref, f"calls Service {svc}, which selects the pods of {other[0]} {other[1]}")
        for policy in snapshot.items("NetworkPolicy"):
            if selector_matches((policy.get("spec") or {}).get("podSelector"), labels):
                out.add(("NetworkPolicy", name_of(policy)), ref, f"is selected by NetworkPolicy {name_of(policy)}")
    return out


@dataclass(frozen=True)
class Change:
    """A dependency object changed (or was created) at ``time``."""

    time: dt.datetime
    obj: Obj
    kind: str
    summary: str
    details: tuple[str, ...]


def _newest_write(obj: Obj, kind: str) -> tuple[dt.datetime, str, list[str]] | None:
    newest: tuple[dt.datetime, str, list[str]] | None = None
    for entry in meta(obj).get("managedFields") or []:
        fields = entry.get("fieldsV1") or {}
        touched = [k for k in _WATCHED[kind] if k in fields]
        when = parse_time(entry.get("time"))
        if touched and when is not None and (newest is None or when > newest[0]):
            inner = sorted(k.removeprefix("f:") for t in touched for k in (fields.get(t) or {}) if k.startswith("f:"))
            newest = (when, str(entry.get("manager") or "unknown"), inner or [t.removeprefix("f:") for t in touched])
    return newest


def _state(obj: Obj, kind: str) -> tuple[str, ...]:
    spec = obj.get("spec") or {}
    if kind == "Service":
        return (f"selector {selector_text({'matchLabels': spec.get('selector') or {}}) or '<none>'}",)
    if kind == "NetworkPolicy":
        types = ", ".join(spec.get("policyTypes") or ["Ingress"])
        return (f"podSelector {selector_text(spec.get('podSelector')) or '<all pods>'}", f"policyTypes {types}")
    return ()


def changes(snapshot: Snapshot) -> list[Change]:
    found = []
    for kind in DEPENDENCY_KINDS:
        for obj in snapshot.items(kind):
            created = parse_time(meta(obj).get("creationTimestamp"))
            write = _newest_write(obj, kind)
            name = name_of(obj)
            if write is not None and (created is None or write[0] > created):
                when, manager, what = write
                summary = f"{kind} {name} changed ({', '.join(what)}) by {manager}"
            elif created is not None:
                when, summary = created, f"{kind} {name} created"
            else:
                continue
            found.append(Change(when, obj, kind, summary, _state(obj, kind)))
    return found
