"""ReplicaSet problems, for ReplicaSets no Deployment in the snapshot manages.

A Deployment's ReplicaSets are reported through the Deployment (the deployment detector
reads their failures); reporting them again here would double every finding.
"""

from __future__ import annotations

from infragenius.detectors._controllers import int_or, replica_failure, shortfall_persists
from infragenius.detectors.base import Problem
from infragenius.detectors.evidence import DOCS, event_evidence, image_evidence
from infragenius.kube.conditions import condition, is_true
from infragenius.kube.meta import meta, name_of, ref_of, uid_of
from infragenius.kube.owners import owner_refs
from infragenius.kube.time import seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS = f"{DOCS}/concepts/workloads/controllers/replicaset/"
#: A bare ReplicaSet has no progress deadline; give new ones the Deployment default before judging.
_SETTLE_SECONDS = 600.0


_SHORTFALL = Problem(
    Severity.warning,
    "ReplicaSet {name} has {ready}/{replicas} pods ready",
    "See the pod findings for this ReplicaSet for the cause (kubectl describe rs -n {ns} {name}). A bare "
    "ReplicaSet has no rollout history or deadline; manage it with a Deployment instead.",
    _DOCS,
)


class ReplicaSetDetector:
    name = "replicaset"
    # Pods tell a stuck shortfall from a pod being replaced right now.
    kinds = frozenset({"ReplicaSet", "Deployment", "Pod"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        deployments = snapshot.items("Deployment")
        deploy_uids = {uid_of(d) for d in deployments}
        deploy_names = {name_of(d) for d in deployments}
        findings: list[Finding] = []
        for rs in snapshot.items("ReplicaSet"):
            owners = owner_refs(rs)
            if any(
                o.get("kind") == "Deployment" and (o.get("uid") in deploy_uids or o.get("name") in deploy_names)
                for o in owners
            ):
                continue  # reported through its Deployment
            findings.extend(self._check(snapshot, rs, bool(owners)))
        return findings

    def _check(self, snapshot: Snapshot, rs: Obj, has_owner: bool) -> list[Finding]:
        status = rs.get("status")
        if not status:
            return []
        ref = ref_of(rs, "ReplicaSet")
        ns = ref.namespace or snapshot.namespace
        replicas = int_or((rs.get("spec") or {}).get("replicas"), 1)
        ready = int_or(status.get("readyReplicas"))
        counts: list[tuple[str, object]] = [
            ("spec.replicas", replicas),
            ("status.replicas", int_or(status.get("replicas"))),
            ("status.readyReplicas", ready),
            ("status.availableReplicas", int_or(status.get("availableReplicas"))),
        ]
        events = event_evidence(snapshot.events_for("ReplicaSet", ref.name))
        failure = condition(rs, "ReplicaFailure")
        if is_true(failure):
            return [
                replica_failure(
                    detector=self.name, resource=ref, failure=failure or {}, default_reason="FailedCreate",
                    evidence=[*counts, *events], replicaset=ref.name, namespace=ns, docs=_DOCS,
                    owners=snapshot.owner_chain(rs),
                )
            ]  # fmt: skip
        if has_owner or replicas <= 0 or ready >= replicas:
            return []
        age = seconds_since(snapshot.taken_at, meta(rs).get("creationTimestamp"))
        persists, stale = shortfall_persists(snapshot, rs, snapshot.owned_pods(rs), replicas)
        if not persists or (age is not None and age <= _SETTLE_SECONDS):
            return []
        evidence: list[tuple[str, object]] = [
            *counts,
            *([("pods not ready", ", ".join(stale[:5]))] if stale else []),
            *image_evidence(rs, "ReplicaSet"),
            *events,
        ]
        return [_SHORTFALL.finding(self.name, "ReplicaShortfall", ref, evidence, ns=ns, ready=ready, replicas=replicas)]


DETECTOR = ReplicaSetDetector()
