"""Nodes that are NotReady, under pressure, cordoned or tainted for eviction.

A namespace analysis only cares about the nodes its pods run on; a cluster-wide analysis
(namespace "") looks at every node.
"""

from __future__ import annotations

from typing import Any

from infragenius.detectors.base import Problem
from infragenius.detectors.evidence import examples
from infragenius.kube.conditions import conditions_by_type
from infragenius.kube.meta import meta, name_of, ref_of
from infragenius.kube.time import human_duration, seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

DOCS = "https://kubernetes.io/docs/concepts/architecture/nodes/#condition"
TAINT_DOCS = "https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/#taint-based-evictions"
# Condition -> (what it means, how to fix it).
PRESSURE = {
    "MemoryPressure": (
        "memory is low; the kubelet evicts pods",
        "kubectl top pods -A --sort-by=memory; set memory limits on heavy pods or add capacity.",
    ),
    "DiskPressure": (
        "disk space or inodes are low; the kubelet evicts pods and garbage-collects images",
        "free disk on the node (unused images: crictl rmi --prune; large logs or emptyDir volumes) or grow the disk.",
    ),
    "PIDPressure": (
        "too many processes; the kubelet evicts pods",
        "find the pod forking processes (ps on the node) and set a pod PID limit (kubelet podPidsLimit).",
    ),
    "NetworkUnavailable": (
        "the node's network is not configured; pods there have no connectivity",
        "check the CNI plugin pods on the node (kubectl -n kube-system get pods -o wide).",
    ),
}
# Taints that duplicate a NotReady finding on the same node.
READY_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})
# A node that joined moments ago reports NotReady until its CNI is up.
NEW_NODE_GRACE_SECONDS = 180.0


_NOT_READY = Problem(
    Severity.critical,
    "Node {name} is NotReady ({why}){hosted}",
    "kubectl describe node {name}; check the kubelet and container runtime on the node (journalctl -u kubelet). "
    "Pods there are evicted after the not-ready toleration (300s by default); drain it if it will not recover: "
    "kubectl drain {name} --ignore-daemonsets --delete-emptydir-data",
    DOCS,
)
_PRESSURE = Problem(
    Severity.warning,
    "Node {name} reports {type}: {meaning}{hosted}",
    "kubectl describe node {name}; {fix}",
    "https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/",
)
_CORDONED = Problem(
    Severity.info,
    "Node {name} is cordoned (unschedulable): no new pods are placed there{hosted}",
    "If maintenance is over: kubectl uncordon {name}",
    "https://kubernetes.io/docs/tasks/administer-cluster/safely-drain-node/",
)
_TAINT = Problem(
    Severity.warning,
    "Node {name} has NoExecute taint {key}: pods without a toleration are evicted{hosted}",
    "kubectl describe node {name}; fix the condition the node controller tainted it for, then the taint is removed "
    "automatically.",
    TAINT_DOCS,
)


class _Node:
    """One node, the pods of the analysed namespace on it, and what its findings share."""

    def __init__(self, snapshot: Snapshot, node: Obj, pods: list[str]) -> None:
        self.node = node
        self.ref = ref_of(node, "Node")
        self.now = snapshot.taken_at
        self.pods = pods
        self.hosted = f"; {len(pods)} pods of {snapshot.namespace} run there" if snapshot.namespace and pods else ""
        self.pod_evidence: list[tuple[str, object]] = [("pods on node", examples(sorted(pods)))] if pods else []
        self.conditions = conditions_by_type(node)

    def finding(self, rule: Problem, problem: str, evidence: list[tuple[str, object]], **fields: Any) -> Finding:
        return rule.finding(
            NodeDetector.name, problem, self.ref, [*evidence, *self.pod_evidence], hosted=self.hosted, **fields
        )


class NodeDetector:
    name: str = "node"
    kinds: frozenset[str] = frozenset({"Node", "Pod"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        pods_on = snapshot.pods.active_on_node  # active pods only, from the walk shared with other detectors
        findings: list[Finding] = []
        for node in snapshot.items("Node"):
            name = name_of(node)
            if snapshot.namespace and name not in pods_on:
                continue  # this namespace has nothing running there
            findings.extend(self._check(_Node(snapshot, node, pods_on.get(name, []))))
        return findings

    def _check(self, n: _Node) -> list[Finding]:
        out = _not_ready(n)
        out.extend(_pressure(n))
        spec = n.node.get("spec") or {}
        if spec.get("unschedulable"):
            out.append(n.finding(_CORDONED, "Cordoned", [("spec.unschedulable", "true")]))
        out.extend(_taints(n, skip_ready_taints=_is_not_ready(n)))
        return out


def _is_not_ready(n: _Node) -> bool:
    """Ready is not True, except a node that joined moments ago (NotReady until its CNI is up)."""
    ready = n.conditions.get("Ready")
    if ready is None or ready.get("status") == "True":
        return False
    node_age = seconds_since(n.now, meta(n.node).get("creationTimestamp"))
    return not (ready.get("status") == "False" and node_age is not None and node_age < NEW_NODE_GRACE_SECONDS)


def _not_ready(n: _Node) -> list[Finding]:
    if not _is_not_ready(n):
        return []
    ready = n.conditions["Ready"]
    heartbeat_age = human_duration(seconds_since(n.now, ready.get("lastHeartbeatTime")), coarse=True)
    if ready.get("status") == "Unknown":
        why = f"kubelet stopped posting status {heartbeat_age} ago"
    else:
        why = ready.get("reason") or "NotReady"
    evidence: list[tuple[str, object]] = [
        ("status.conditions[Ready].status", ready.get("status")),
        ("status.conditions[Ready].reason", ready.get("reason") or ""),
        ("status.conditions[Ready].message", ready.get("message") or ""),
        ("status.conditions[Ready].lastHeartbeatTime", f"{ready.get('lastHeartbeatTime')} ({heartbeat_age} ago)"),
    ]
    return [n.finding(_NOT_READY, "NotReady", evidence, why=why, affected=max(1, len(n.pods)))]


def _pressure(n: _Node) -> list[Finding]:
    out: list[Finding] = []
    for type_, (meaning, fix) in PRESSURE.items():
        cond = n.conditions.get(type_)
        if cond is None or cond.get("status") != "True":
            continue
        evidence: list[tuple[str, object]] = [
            (f"status.conditions[{type_}].status", "True"),
            (f"status.conditions[{type_}].reason", cond.get("reason") or ""),
            (f"status.conditions[{type_}].message", cond.get("message") or ""),
            (f"status.conditions[{type_}].lastTransitionTime", cond.get("lastTransitionTime") or ""),
        ]
        affected = max(1, len(n.pods))
        out.append(n.finding(_PRESSURE, type_, evidence, type=type_, meaning=meaning, fix=fix, affected=affected))
    return out


def _taints(n: _Node, skip_ready_taints: bool) -> list[Finding]:
    out: list[Finding] = []
    for taint in (n.node.get("spec") or {}).get("taints") or []:
        key = taint.get("key") or ""
        if taint.get("effect") != "NoExecute" or not key.startswith("node.kubernetes.io/"):
            continue
        if skip_ready_taints and key in READY_TAINTS:
            continue  # already explained by the NotReady finding
        evidence: list[tuple[str, object]] = [
            ("spec.taints[].key", key),
            ("spec.taints[].effect", "NoExecute"),
            ("spec.taints[].timeAdded", taint.get("timeAdded") or ""),
        ]
        out.append(n.finding(_TAINT, f"Taint:{key}", evidence, key=key, affected=max(1, len(n.pods))))
    return out


DETECTOR = NodeDetector()
