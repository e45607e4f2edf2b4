"""ReplicaSet problems, for ReplicaSets no Deployment in the snapshot manages.

A Deployment's ReplicaSets are reported through the Deployment (the deployment detector
reads their failures); reporting them again here would double every finding.
"""

from __future__ import annotations

from infragenius.detectors._controllers import int_or, shortfall_persists
from infragenius.detectors.base import finding
from infragenius.detectors.evidence import DOCS, event_evidence, image_evidence, shorten
from infragenius.kube.conditions import conditions_by_type, is_true
from infragenius.kube.meta import ref_of
from infragenius.kube.time import seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS = f"{DOCS}/concepts/workloads/controllers/replicaset/"
#: A bare ReplicaSet has no progress deadline; give new ones the Deployment default before judging.
_SETTLE_SECONDS = 600.0


class ReplicaSetDetector:
    name = "replicaset"
    # Pods tell a stuck shortfall from a pod being replaced right now.
    kinds = frozenset({"ReplicaSet", "Deployment", "Pod"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        deployments = snapshot.items("Deployment")
        deploy_uids = {(d.get("metadata") or {}).get("uid") for d in deployments}
        deploy_names = {(d.get("metadata") or {}).get("name") for d in deployments}
        pods_by_owner: dict[str, list[Obj]] | None = None
        findings: list[Finding] = []
        for rs in snapshot.items("ReplicaSet"):
            owners = (rs.get("metadata") or {}).get("ownerReferences") or ()
            if any(
                o.get("kind") == "Deployment" and (o.get("uid") in deploy_uids or o.get("name") in deploy_names)
                for o in owners
            ):
                continue
            if pods_by_owner is None and snapshot.has("Pod"):
                pods_by_owner = snapshot.by_controller("Pod")
            findings.extend(self._check(snapshot, rs, bool(owners), pods_by_owner))
        return findings

    def _check(
        self, snapshot: Snapshot, rs: Obj, has_owner: bool, pods_by_owner: dict[str, list[Obj]] | None
    ) -> list[Finding]:
        status = rs.get("status")
        if not status:
            return []
        ref = ref_of(rs, "ReplicaSet")
        ns = ref.namespace or snapshot.namespace
        spec = rs.get("spec") or {}
        replicas = int_or(spec.get("replicas"), 1)
        ready = int_or(status.get("readyReplicas"))
        counts = [
            ("spec.replicas", replicas),
            ("status.replicas", int_or(status.get("replicas"))),
            ("status.readyReplicas", ready),
            ("status.availableReplicas", int_or(status.get("availableReplicas"))),
        ]
        events = event_evidence(snapshot.events_for("ReplicaSet", ref.name))
        out: list[Finding] = []
        failure = conditions_by_type(rs).get("ReplicaFailure")
        if is_true(failure):
            message = failure.get("message") or ""
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.critical,
                    resource=ref,
                    problem="ReplicaFailure",
                    title=f"ReplicaSet {ref.name} cannot create pods ({failure.get('reason', 'FailedCreate')}): "
                    f"{shorten(message, 160)}",
                    evidence=[
                        ("status.conditions[ReplicaFailure].reason", failure.get("reason", "")),
                        ("status.conditions[ReplicaFailure].message", message),
                        *counts,
                        *events,
                    ],
                    remediation="The API server rejects the pods this ReplicaSet creates. Fix the cause in the "
                    "message (ResourceQuota, LimitRange, admission policy or webhook), then check: "
                    f"kubectl describe rs -n {ns} {ref.name}",
                    docs=_DOCS,
                    owners=snapshot.owner_chain(rs),
                )
            )
        elif not has_owner and replicas > 0 and ready < replicas:
            age = seconds_since(snapshot.taken_at, (rs.get("metadata") or {}).get("creationTimestamp"))
            pods = None if pods_by_owner is None else pods_by_owner.get((rs.get("metadata") or {}).get("uid", ""), [])
            persists, stale = shortfall_persists(snapshot, rs, pods, replicas)
            if persists and (age is None or age > _SETTLE_SECONDS):
                out.append(
                    finding(
                        detector=self.name,
                        severity=Severity.warning,
                        resource=ref,
                        problem="ReplicaShortfall",
                        title=f"ReplicaSet {ref.name} has {ready}/{replicas} pods ready",
                        evidence=[
                            *counts,
                            *([("pods not ready", ", ".join(stale[:5]))] if stale else []),
                            *image_evidence(rs, "ReplicaSet"),
                            *events,
                        ],
                        remediation="See the pod findings for this ReplicaSet for the cause "
                        f"(kubectl describe rs -n {ns} {ref.name}). A bare ReplicaSet has no rollout history or "
                        "deadline; manage it with a Deployment instead.",
                        docs=_DOCS,
                    )
                )
        return out


DETECTOR = ReplicaSetDetector()
