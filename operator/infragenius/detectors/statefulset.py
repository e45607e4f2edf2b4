"""StatefulSet problems: pods not ready, a missing governing Service, volume templates naming an
absent StorageClass, and updates that do not finish."""

from __future__ import annotations

from infragenius.detectors._controllers import int_or, shortfall_persists
from infragenius.detectors.base import finding
from infragenius.detectors.evidence import DOCS, event_evidence, image_evidence
from infragenius.kube.meta import meta, name_of, namespace_of, ref_of
from infragenius.kube.time import seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS = f"{DOCS}/concepts/workloads/controllers/statefulset/"
_ORDERED_READY = (
    "With podManagementPolicy OrderedReady, later pods are not created until earlier ones are Ready, so fix the "
    "lowest ordinal first."
)
#: How long an update may sit half done, with no pod created, before we call it stuck.
_UPDATE_STUCK_SECONDS = 600.0


class StatefulSetDetector:
    name = "statefulset"
    kinds = frozenset({"StatefulSet", "Pod", "Service", "StorageClass"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        classes = {name_of(sc) for sc in snapshot.items("StorageClass")}
        findings: list[Finding] = []
        for sts in snapshot.items("StatefulSet"):
            findings.extend(self._not_ready(snapshot, sts))
            findings.extend(self._service(snapshot, sts))
            findings.extend(self._storage_classes(snapshot, sts, classes))
            findings.extend(self._stuck_update(snapshot, sts))
        return findings

    def _not_ready(self, snapshot: Snapshot, sts: Obj) -> list[Finding]:
        status = sts.get("status")
        if not status or "observedGeneration" not in status and "replicas" not in status:
            return []
        replicas = int_or((sts.get("spec") or {}).get("replicas"), 1)
        ready = int_or(status.get("readyReplicas"))
        if replicas == 0 or ready >= replicas:
            return []
        pods = snapshot.owned_pods(sts)
        persists, stale = shortfall_persists(snapshot, sts, pods, replicas)
        if not persists:
            return []  # pods being created or replaced right now
        ref = ref_of(sts, "StatefulSet")
        ns = ref.namespace or snapshot.namespace
        evidence: list[tuple[str, object]] = [
            ("spec.replicas", replicas),
            ("status.readyReplicas", ready),
            ("status.currentReplicas", int_or(status.get("currentReplicas"))),
            ("status.updatedReplicas", int_or(status.get("updatedReplicas"))),
        ]
        if stale:
            evidence.append(("pods not ready", ", ".join(stale[:5])))
        if pods is not None and len(pods) < replicas:
            evidence.append(("pods present", f"{len(pods)} of {replicas}"))
        evidence.extend(image_evidence(sts, "StatefulSet"))
        evidence.extend(event_evidence(snapshot.events_for("StatefulSet", ref.name)))
        ordered = (sts.get("spec") or {}).get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        remediation = (
            f"Find the first unready pod (kubectl get pods -n {ns} -l <selector>) and its cause in the pod findings. "
            + (_ORDERED_READY if ordered else "")
        ).strip()
        return [
            finding(
                detector=self.name,
                severity=Severity.critical if ready == 0 else Severity.warning,
                resource=ref,
                problem="NotReady",
                title=f"StatefulSet {ref.name} has {ready}/{replicas} replicas ready",
                evidence=evidence,
                remediation=remediation,
                docs=_DOCS,
                owners=snapshot.owner_chain(sts),
            )
        ]

    def _service(self, snapshot: Snapshot, sts: Obj) -> list[Finding]:
        service = (sts.get("spec") or {}).get("serviceName")
        if not service or not snapshot.has("Service"):
            return []
        if snapshot.get("Service", service, namespace_of(sts)) is not None:
            return []
        ref = ref_of(sts, "StatefulSet")
        return [
            finding(
                detector=self.name,
                severity=Severity.warning,
                resource=ref,
                problem="ServiceMissing",
                title=f"StatefulSet {ref.name} names governing Service {service}, which does not exist",
                evidence=[("spec.serviceName", service), ("Service", f"{ref.namespace}/{service} not found")],
                remediation=f"Create a headless Service {service} (clusterIP: None) selecting the StatefulSet's pods, "
                "so each pod gets its stable DNS name <pod>.<service>.",
                docs=f"{DOCS}/concepts/workloads/controllers/statefulset/#stable-network-id",
                owners=snapshot.owner_chain(sts),
            )
        ]

    def _storage_classes(self, snapshot: Snapshot, sts: Obj, classes: set) -> list[Finding]:
        if not snapshot.has("StorageClass"):
            return []
        missing: list[tuple[str, str]] = []
        for template in (sts.get("spec") or {}).get("volumeClaimTemplates") or ():
            cls = (template.get("spec") or {}).get("storageClassName")
            # None means "the default class", "" means "no class" (static binding): neither names a class.
            if cls and cls not in classes:
                missing.append(((template.get("metadata") or {}).get("name", "?"), cls))
        if not missing:
            return []
        ref = ref_of(sts, "StatefulSet")
        names = ", ".join(sorted({cls for _, cls in missing}))
        return [
            finding(
                detector=self.name,
                severity=Severity.critical,
                resource=ref,
                problem="StorageClassMissing",
                title=f"StatefulSet {ref.name} volumeClaimTemplates use StorageClass {names}, which does not exist",
                evidence=[
                    *((f"spec.volumeClaimTemplates[{tpl}].spec.storageClassName", cls) for tpl, cls in missing),
                    ("StorageClasses present", ", ".join(sorted(c for c in classes if c)) or "none"),
                    *event_evidence(snapshot.events_for("StatefulSet", ref.name), limit=2),
                ],
                remediation="New PersistentVolumeClaims stay Pending, so pods that need them never start. Create "
                "the StorageClass or point storageClassName at an existing one (volumeClaimTemplates cannot be "
                "edited in place: recreate the StatefulSet with kubectl delete sts --cascade=orphan, then apply).",
                docs=f"{DOCS}/concepts/storage/storage-classes/",
                owners=snapshot.owner_chain(sts),
            )
        ]

    def _stuck_update(self, snapshot: Snapshot, sts: Obj) -> list[Finding]:
        status = sts.get("status") or {}
        current, update = status.get("currentRevision"), status.get("updateRevision")
        if not current or not update or current == update or _updating_now(snapshot, sts):
            return []
        spec = sts.get("spec") or {}
        strategy = spec.get("updateStrategy") or {}
        kind = strategy.get("type", "RollingUpdate")
        partition = int_or((strategy.get("rollingUpdate") or {}).get("partition"))
        held = "OnDelete" if kind == "OnDelete" else "Partition" if partition else "Stalled"
        why, remediation, anchor = _UPDATE_HELD[held]
        ref = ref_of(sts, "StatefulSet")
        updated = int_or(status.get("updatedReplicas"))
        evidence: list[tuple[str, object]] = [
            ("status.currentRevision", current),
            ("status.updateRevision", update),
            ("status.updatedReplicas", updated),
            ("spec.updateStrategy.type", kind),
            *([("spec.updateStrategy.rollingUpdate.partition", partition)] if partition else []),
        ]
        return [
            finding(
                detector=self.name,
                severity=Severity.info,
                resource=ref,
                problem="UpdateStuck",
                title=f"StatefulSet {ref.name} update incomplete: {updated}/{int_or(spec.get('replicas'), 1)} pods on "
                f"revision {update} ({why.format(partition=partition)})",
                evidence=evidence,
                remediation=remediation.format(update=update)
                + f" (kubectl rollout status -n {ref.namespace} statefulset/{ref.name}).",
                docs=f"{DOCS}/concepts/workloads/controllers/statefulset/{anchor}",
                owners=snapshot.owner_chain(sts),
            )
        ]


#: Why a StatefulSet's update is held back -> (title reason, remediation, docs anchor).
_UPDATE_HELD = {
    "OnDelete": (
        "updateStrategy OnDelete: pods change only when deleted",
        "Delete the old pods one by one to move them to {update}",
        "#update-strategies",
    ),
    "Partition": (
        "rollingUpdate.partition={partition} holds back ordinals below it",
        "Lower the partition to continue",
        "#update-strategies",
    ),
    "Stalled": (
        "the rolling update is not progressing",
        "A pod of the new revision is probably not becoming Ready (see the NotReady finding); fix it, or roll back "
        "the template. A broken revision can need its pod deleted by hand (forced rollback)",
        "#forced-rollback",
    ),
}


def _updating_now(snapshot: Snapshot, sts: Obj) -> bool:
    """A pod created (or the StatefulSet itself) within the settle time: a rolling update at work, not stuck."""
    pods = snapshot.owned_pods(sts)
    if pods is not None:
        ages = [seconds_since(snapshot.taken_at, meta(p).get("creationTimestamp")) for p in pods]
        if any(a is not None and a < _UPDATE_STUCK_SECONDS for a in ages):
            return True
    age = seconds_since(snapshot.taken_at, meta(sts).get("creationTimestamp"))
    return age is not None and age < _UPDATE_STUCK_SECONDS


DETECTOR = StatefulSetDetector()
