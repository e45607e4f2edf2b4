"""Nodes that are NotReady, under pressure, cordoned or tainted for eviction.

A namespace analysis only cares about the nodes its pods run on; a cluster-wide analysis
(namespace "") looks at every node.
"""

from __future__ import annotations

from infragenius.detectors.base import finding
from infragenius.detectors.evidence import examples
from infragenius.kube.meta import meta, name_of, ref_of
from infragenius.kube.time import human_duration, seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

DOCS = "https://kubernetes.io/docs/concepts/architecture/nodes/#condition"
TAINT_DOCS = "https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/#taint-based-evictions"
# Condition -> (what it means, how to fix it).
PRESSURE = {
    "MemoryPressure": ("memory is low; the kubelet evicts pods",
                       "kubectl top pods -A --sort-by=memory; set memory limits on heavy pods or add capacity."),
    "DiskPressure": ("disk space or inodes are low; the kubelet evicts pods and garbage-collects images",
                     "free disk on the node (unused images: crictl rmi --prune; large logs or emptyDir volumes) or grow the disk."),
    "PIDPressure": ("too many processes; the kubelet evicts pods",
                    "find the pod forking processes (ps on the node) and set a pod PID limit (kubelet podPidsLimit)."),
    "NetworkUnavailable": ("the node's network is not configured; pods there have no connectivity",
                           "check the CNI plugin pods on the node (kubectl -n kube-system get pods -o wide)."),
}
# Taints that duplicate a NotReady finding on the same node.
READY_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})
# A node that joined moments ago reports NotReady until its CNI is up.
NEW_NODE_GRACE_SECONDS = 180.0


class NodeDetector:
    name: str = "node"
    kinds: frozenset[str] = frozenset({"Node", "Pod"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        pods_on: dict[str, list[str]] = {}
        for pods in snapshot.active_pods.by_ns.values():  # active pods only, index shared with other detectors
            for pod in pods:
                node = (pod.get("spec") or {}).get("nodeName")
                if node:
                    pods_on.setdefault(node, []).append(pod["metadata"].get("name", ""))
        findings: list[Finding] = []
        for node in snapshot.items("Node"):
            name = name_of(node)
            if snapshot.namespace and name not in pods_on:
                continue  # this namespace has nothing running there
            findings.extend(self._check(snapshot, node, pods_on.get(name, [])))
        return findings

    def _check(self, snapshot: Snapshot, node: Obj, pods: list[str]) -> list[Finding]:
        name = name_of(node)
        resource = ref_of(node, "Node")
        hosted = f"; {len(pods)} pods of {snapshot.namespace} run there" if snapshot.namespace and pods else ""
        pod_evidence = [("pods on node", examples(sorted(pods)))] if pods else []
        out: list[Finding] = []
        conditions = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}

        not_ready = False
        ready = conditions.get("Ready")
        node_age = seconds_since(snapshot.taken_at, meta(node).get("creationTimestamp"))
        if ready is not None and ready.get("status") != "True" and not (
            ready.get("status") == "False" and node_age is not None and node_age < NEW_NODE_GRACE_SECONDS
        ):
            not_ready = True
            heartbeat_age = seconds_since(snapshot.taken_at, ready.get("lastHeartbeatTime"))
            if ready.get("status") == "Unknown":
                why = f"kubelet stopped posting status {human_duration(heartbeat_age, coarse=True)} ago"
            else:
                why = ready.get("reason") or "NotReady"
            out.append(finding(
                detector=self.name, severity=Severity.critical, resource=resource, problem="NotReady",
                title=f"Node {name} is NotReady ({why}){hosted}",
                evidence=[
                    ("status.conditions[Ready].status", ready.get("status")),
                    ("status.conditions[Ready].reason", ready.get("reason") or ""),
                    ("status.conditions[Ready].message", ready.get("message") or ""),
                    ("status.conditions[Ready].lastHeartbeatTime", f"{ready.get('lastHeartbeatTime')} ({human_duration(heartbeat_age, coarse=True)} ago)"),
                    *pod_evidence,
                ],
                remediation=(
                    f"kubectl describe node {name}; check the kubelet and container runtime on the node "
                    "(journalctl -u kubelet). Pods there are evicted after the not-ready toleration (300s by default); "
                    f"drain it if it will not recover: kubectl drain {name} --ignore-daemonsets --delete-emptydir-data"
                ),
                docs=DOCS, affected=max(1, len(pods)),
            ))

        for type_, (meaning, fix) in PRESSURE.items():
            cond = conditions.get(type_)
            if cond is None or cond.get("status") != "True":
                continue
            out.append(finding(
                detector=self.name, severity=Severity.warning, resource=resource, problem=type_,
                title=f"Node {name} reports {type_}: {meaning}{hosted}",
                evidence=[
                    (f"status.conditions[{type_}].status", "True"),
                    (f"status.conditions[{type_}].reason", cond.get("reason") or ""),
                    (f"status.conditions[{type_}].message", cond.get("message") or ""),
                    (f"status.conditions[{type_}].lastTransitionTime", cond.get("lastTransitionTime") or ""),
                    *pod_evidence,
                ],
                remediation=f"kubectl describe node {name}; {fix}",
                docs="https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/",
                affected=max(1, len(pods)),
            ))

        spec = node.get("spec") or {}
        if spec.get("unschedulable"):
            out.append(finding(
                detector=self.name, severity=Severity.info, resource=resource, problem="Cordoned",
                title=f"Node {name} is cordoned (unschedulable): no new pods are placed there{hosted}",
                evidence=[("spec.unschedulable", "true"), *pod_evidence],
                remediation=f"If maintenance is over: kubectl uncordon {name}",
                docs="https://kubernetes.io/docs/tasks/administer-cluster/safely-drain-node/",
            ))

        for taint in spec.get("taints") or []:
            key = taint.get("key") or ""
            if taint.get("effect") != "NoExecute" or not key.startswith("node.kubernetes.io/"):
                continue
            if not_ready and key in READY_TAINTS:
                continue  # already explained by the NotReady finding
            out.append(finding(
                detector=self.name, severity=Severity.warning, resource=resource, problem=f"Taint:{key}",
                title=f"Node {name} has NoExecute taint {key}: pods without a toleration are evicted{hosted}",
                evidence=[("spec.taints[].key", key), ("spec.taints[].effect", "NoExecute"),
                          ("spec.taints[].timeAdded", taint.get("timeAdded") or ""), *pod_evidence],
                remediation=f"kubectl describe node {name}; fix the condition the node controller tainted it for, then the taint is removed automatically.",
                docs=TAINT_DOCS, affected=max(1, len(pods)),
            ))
        return out


DETECTOR = NodeDetector()
