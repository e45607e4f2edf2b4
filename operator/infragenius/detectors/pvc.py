"""PersistentVolumeClaims that are not bound (Pending, Lost) or stuck resizing."""

from __future__ import annotations

from infragenius.detectors.base import finding
from infragenius.kube.events import event_count
from infragenius.kube.meta import annotations_of, meta, name_of, namespace_of, ref_of
from infragenius.kube.time import human_duration, seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

DOCS = "https://kubernetes.io/docs/concepts/storage/persistent-volumes/"
DEFAULT_SC_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
# Dynamic provisioning normally finishes within seconds; give it this long before calling it stuck.
PENDING_GRACE_SECONDS = 120.0
RESIZE_GRACE_SECONDS = 600.0


class PvcDetector:
    name: str = "pvc"
    kinds: frozenset[str] = frozenset({"PersistentVolumeClaim", "StorageClass"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        default_sc = next(
            (
                name_of(sc)
                for sc in snapshot.items("StorageClass")
                if any((meta(sc).get("annotations") or {}).get(a) == "true" for a in DEFAULT_SC_ANNOTATIONS)
            ),
            None,
        )
        findings: list[Finding] = []
        for pvc in snapshot.items("PersistentVolumeClaim"):
            phase = (pvc.get("status") or {}).get("phase")
            if phase == "Pending":
                findings.extend(self._pending(snapshot, pvc, default_sc))
            elif phase == "Lost":
                findings.append(self._lost(snapshot, pvc))
            findings.extend(self._resizing(snapshot, pvc))
        return findings

    def _pending(self, snapshot: Snapshot, pvc: Obj, default_sc: str | None) -> list[Finding]:
        namespace, name = namespace_of(pvc), name_of(pvc)
        spec = pvc.get("spec") or {}
        sc_name = spec.get("storageClassName")
        effective_sc = sc_name if sc_name is not None else default_sc
        failed = [
            e
            for e in snapshot.events_about("PersistentVolumeClaim", name, namespace)
            if e.get("reason") == "ProvisioningFailed"
        ]
        sc = snapshot.get("StorageClass", effective_sc) if effective_sc else None
        sc_missing = bool(effective_sc) and snapshot.has("StorageClass") and sc is None
        age = seconds_since(snapshot.taken_at, meta(pvc).get("creationTimestamp"))

        evidence: list[tuple[str, str]] = [
            ("status.phase", "Pending"),
            ("spec.storageClassName", sc_name if sc_name is not None else f"<unset; default: {default_sc or 'none'}>"),
        ]
        if failed:
            total = sum(event_count(e) for e in failed)
            evidence.append(("event:ProvisioningFailed", f"x{total}: {failed[0].get('message', '')}"))
        if sc_missing:
            evidence.append(("StorageClass", f"{effective_sc} not found"))
            severity, detail = Severity.critical, f"its StorageClass {effective_sc} does not exist"
        elif failed:
            severity, detail = Severity.critical, "volume provisioning failed"
        else:
            if _waiting_by_design(snapshot, pvc, sc, age):
                return []
            severity = Severity.warning
            if sc_name == "" or (sc_name is None and snapshot.has("StorageClass") and default_sc is None):
                detail = "it has no StorageClass and waits for a matching pre-provisioned PersistentVolume"
            else:
                detail = "no volume has been provisioned or bound"
            evidence.append(("metadata.creationTimestamp", f"{human_duration(age, coarse=True)} ago"))
        return [
            finding(
                detector=self.name,
                severity=severity,
                resource=ref_of(pvc, "PersistentVolumeClaim"),
                owners=snapshot.owner_chain(pvc),
                problem="Pending",
                title=f"PersistentVolumeClaim {name} is Pending: {detail}; pods using it cannot start",
                evidence=evidence,
                remediation=(
                    f"kubectl -n {namespace} describe pvc {name}; kubectl get storageclass. "
                    "Use an existing StorageClass "
                    "(storageClassName cannot be changed in place: recreate the claim) "
                    "or fix the provisioner named in the events."
                ),
                docs="https://kubernetes.io/docs/concepts/storage/dynamic-provisioning/",
            )
        ]

    def _lost(self, snapshot: Snapshot, pvc: Obj) -> Finding:
        namespace, name = namespace_of(pvc), name_of(pvc)
        volume = (pvc.get("spec") or {}).get("volumeName") or "<unset>"
        return finding(
            detector=self.name,
            severity=Severity.critical,
            resource=ref_of(pvc, "PersistentVolumeClaim"),
            owners=snapshot.owner_chain(pvc),
            problem="Lost",
            title=f"PersistentVolumeClaim {name} is Lost: its PersistentVolume {volume} no longer exists",
            evidence=[("status.phase", "Lost"), ("spec.volumeName", volume)],
            remediation=(
                f"The bound volume was deleted. Restore the PersistentVolume {volume} from backup, or delete and "
                f"recreate the claim (data is gone): kubectl -n {namespace} describe pvc {name}"
            ),
            docs="https://kubernetes.io/docs/concepts/storage/persistent-volumes/#binding",
        )

    def _resizing(self, snapshot: Snapshot, pvc: Obj) -> list[Finding]:
        namespace, name = namespace_of(pvc), name_of(pvc)
        out = []
        for cond in (pvc.get("status") or {}).get("conditions") or []:
            if cond.get("type") not in ("Resizing", "FileSystemResizePending") or cond.get("status") != "True":
                continue
            age = seconds_since(snapshot.taken_at, cond.get("lastTransitionTime"))
            if age is None or age < RESIZE_GRACE_SECONDS:
                continue
            hint = (
                "restart the pod using it so the kubelet can grow the filesystem"
                if cond["type"] == "FileSystemResizePending"
                else "check the CSI driver's resizer logs"
            )
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.info,
                    resource=ref_of(pvc, "PersistentVolumeClaim"),
                    owners=snapshot.owner_chain(pvc),
                    problem=f"{cond['type']}",
                    title=f"PersistentVolumeClaim {name} has been {cond['type']} "
                    f"for {human_duration(age, coarse=True)}",
                    evidence=[
                        (f"status.conditions[{cond['type']}].status", "True"),
                        (f"status.conditions[{cond['type']}].lastTransitionTime", cond.get("lastTransitionTime")),
                        (f"status.conditions[{cond['type']}].message", cond.get("message") or ""),
                    ],
                    remediation=f"kubectl -n {namespace} describe pvc {name}; {hint}.",
                    docs="https://kubernetes.io/docs/concepts/storage/persistent-volumes/#expanding-persistent-volumes-claims",
                )
            )
        return out


def _waiting_by_design(snapshot: Snapshot, pvc: Obj, sc: Obj | None, age: float | None) -> bool:
    """Pending for a reason that is not a fault (or that the snapshot cannot tell from one)."""
    if age is not None and age < PENDING_GRACE_SECONDS:
        return True  # provisioning still in progress
    node_selected = bool(annotations_of(pvc).get(SELECTED_NODE_ANNOTATION))
    if sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer" and not node_selected:
        return True  # by design: binds once a pod using it is scheduled
    # StorageClass not gathered: cannot tell "waiting for a consumer" from stuck.
    return not snapshot.has("StorageClass") and not node_selected


DETECTOR = PvcDetector()
