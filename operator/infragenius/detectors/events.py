"""Warning events that no status-based detector explains (mount, sandbox, network failures...)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from infragenius.detectors.base import finding
from infragenius.detectors.evidence import examples
from infragenius.kube.events import event_count, event_last_seen, event_message, involved_object
from infragenius.kube.meta import Key, ref_from_key
from infragenius.kube.time import human_duration
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import WORKLOAD_KINDS, Obj, Snapshot

# Reasons the pod/workload/pvc/node detectors already report from object status; reporting the
# event as well would say the same thing twice.
EXPLAINED_REASONS = frozenset(
    {
        "BackOff",
        "Unhealthy",
        "FailedScheduling",
        "Failed",
        "ErrImagePull",
        "ImagePullBackOff",
        "FailedCreate",
        "ProgressDeadlineExceeded",
        "BackoffLimitExceeded",
        "ProvisioningFailed",
        "Evicted",
        "OOMKilling",
        "NodeNotReady",
    }
)
STALE_AFTER = dt.timedelta(hours=1)
OWN_GROUP = "infragenius.io"
ROLLUP_KINDS = frozenset({"Pod", *WORKLOAD_KINDS})
_CONFIGMAP_NOT_FOUND = re.compile(r'configmap "([^"]+)" not found', re.IGNORECASE)

# reason -> (what to do, docs page)
HINTS: dict[str, tuple[str, str]] = {
    "FailedMount": (
        "Check that every Secret, ConfigMap and PersistentVolumeClaim the pod mounts exists "
        "and that the CSI driver is healthy.",
        "https://kubernetes.io/docs/concepts/storage/volumes/",
    ),
    "FailedAttachVolume": (
        "The volume is still attached elsewhere or the CSI attacher failed: kubectl get volumeattachments; "
        "check the storage driver.",
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes/",
    ),
    "FailedMapVolume": (
        "Check the block volume and the CSI driver on the node.",
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes/",
    ),
    "FailedCreatePodSandBox": (
        "The container runtime or CNI plugin could not set up the pod network: "
        "check the CNI pods and the kubelet log on the node.",
        "https://kubernetes.io/docs/concepts/cluster-administration/networking/",
    ),
    "NetworkNotReady": (
        "The node's CNI plugin is not ready: check the CNI daemonset pods on that node.",
        "https://kubernetes.io/docs/concepts/cluster-administration/networking/",
    ),
    "FailedKillPod": (
        "The runtime could not stop the container: check the container runtime on the node (crictl ps, kubelet log).",
        "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination",
    ),
    "FailedSync": (
        "kubectl describe the object and check the kubelet log on its node.",
        "https://kubernetes.io/docs/tasks/debug/debug-application/debug-pods/",
    ),
}
DEFAULT_DOCS = "https://kubernetes.io/docs/tasks/debug/debug-application/debug-running-pod/"


@dataclass
class _Group:
    total: int = 0
    newest: Obj | None = None
    newest_at: dt.datetime | None = None
    # dicts as ordered sets: membership checks stay O(1) with thousands of pods
    objects: dict[str, None] = field(default_factory=dict)
    messages: dict[str, None] = field(default_factory=dict)


class EventsDetector:
    name: str = "events"
    kinds: frozenset[str] = frozenset(ROLLUP_KINDS)

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        groups: dict[tuple[Key, str], _Group] = {}
        for event in snapshot.events:
            reason = event.get("reason") or ""
            if event.get("type") != "Warning" or not reason or reason in EXPLAINED_REASONS:
                continue
            involved = involved_object(event)
            kind, name = involved.get("kind") or "", involved.get("name") or ""
            namespace = involved.get("namespace") or None
            if not kind or not name or (snapshot.namespace and namespace not in (None, snapshot.namespace)):
                continue
            if (involved.get("apiVersion") or "").startswith(OWN_GROUP + "/"):
                continue  # events about our own resources (a failed Analysis) are not the workload's problems
            count = event_count(event)
            when = event_last_seen(event)
            if when is not None and count <= 1 and snapshot.taken_at - when > STALE_AFTER:
                continue  # a one-off blip long ago
            if self._explained_by_configmap(snapshot, reason, event, namespace):
                continue
            obj = snapshot.get(kind, name, namespace) if kind in ROLLUP_KINDS else None
            # Objects that no longer exist are still reported under their own name.
            key = snapshot.rollup_key(obj, kind) if obj is not None else (kind, namespace, name)
            group = groups.get((key, reason))
            if group is None:
                group = groups[(key, reason)] = _Group()
            group.total += count
            group.objects[name] = None
            msg = event_message(event).strip()
            if msg and len(group.messages) < 10:  # a few distinct messages are enough evidence
                group.messages[msg] = None
            if group.newest is None or (when is not None and (group.newest_at is None or when > group.newest_at)):
                group.newest, group.newest_at = event, when
        return [self._finding(snapshot, key, reason, group) for (key, reason), group in groups.items()]

    @staticmethod
    def _explained_by_configmap(snapshot: Snapshot, reason: str, event: Obj, namespace: str | None) -> bool:
        """A mount failure for a missing ConfigMap is the configmap detector's finding already."""
        if reason != "FailedMount" or not snapshot.has("ConfigMap"):
            return False
        match = _CONFIGMAP_NOT_FOUND.search(event_message(event).strip())
        return match is not None and snapshot.get("ConfigMap", match.group(1), namespace) is None

    def _finding(self, snapshot: Snapshot, key: Key, reason: str, group: _Group) -> Finding:
        kind, namespace, name = key
        newest = event_message(group.newest or {}).strip()
        age = (snapshot.taken_at - group.newest_at).total_seconds() if group.newest_at else None
        hint, docs = HINTS.get(reason, ("", DEFAULT_DOCS))
        involved = involved_object(group.newest or {})
        first_kind, first_name = involved.get("kind", kind), involved.get("name", name)
        ns_flag = f"-n {namespace} " if namespace else ""
        evidence: list[tuple[str, str]] = [
            (f"event:{reason}", f"x{group.total}, last seen {human_duration(age, coarse=True)} ago: {newest}")
        ]
        evidence += [(f"event:{reason}", msg) for msg in group.messages if msg != newest][:3]
        objects = list(group.objects)
        if objects != [name] or first_kind != kind:
            evidence.append((f"involvedObject ({first_kind})", examples(objects)))
        return finding(
            detector=self.name,
            severity=Severity.warning,
            resource=ref_from_key(key),
            owners=snapshot.owners_of(key),
            problem=reason,
            title=f"{kind} {name}: {reason} x{group.total} - {newest[:160]}",
            evidence=evidence,
            remediation=(
                f"kubectl {ns_flag}describe {first_kind.lower()} {first_name}; "
                f"kubectl {ns_flag}get events --field-selector reason={reason}. {hint}"
            ).strip(),
            docs=docs,
            affected=len(group.objects),
        )


DETECTOR = EventsDetector()
