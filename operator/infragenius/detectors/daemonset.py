"""DaemonSet problems: nodes without a ready daemon pod, and daemon pods on nodes that should not run them."""

from __future__ import annotations

from typing import Any

from infragenius.detectors._controllers import int_or, shortfall_persists
from infragenius.detectors.base import Problem
from infragenius.detectors.evidence import DOCS, event_evidence, image_evidence
from infragenius.kube.meta import ref_of
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS = f"{DOCS}/concepts/workloads/controllers/daemonset/"


_PROBLEMS: dict[str, Problem] = {
    "NotReady": Problem(
        Severity.warning,
        "DaemonSet {name} is not ready on {missing} of {desired} nodes ({ready} ready, {unavailable} unavailable)",
        "Nodes without a ready daemon pod miss what it provides (logs, metrics, networking). Find the unready pods: "
        "kubectl get pods -n {ns} -o wide -l <selector>, and their cause in the pod findings; pods that cannot be "
        "placed usually need resources or tolerations for the node's taints.",
        _DOCS,
    ),
    "Misscheduled": Problem(
        Severity.warning,
        "DaemonSet {name} runs {misscheduled} pod(s) on nodes it should not run on",
        "The node's labels or taints no longer match the DaemonSet's nodeSelector, affinity or tolerations. Fix the "
        "node labels/taints or the DaemonSet's placement rules, then delete the stray pods (kubectl get pods -n {ns} "
        "-o wide -l <selector>).",
        f"{DOCS}/concepts/workloads/controllers/daemonset/#how-daemon-pods-are-scheduled",
    ),
}


class DaemonSetDetector:
    name = "daemonset"
    # Pods tell a stuck DaemonSet from one rolling a pod or starting on a new node right now.
    kinds = frozenset({"DaemonSet", "Pod"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        findings: list[Finding] = []
        for ds in snapshot.items("DaemonSet"):
            status = ds.get("status")
            if not status or "desiredNumberScheduled" not in status:
                continue  # not observed by the controller yet
            findings.extend(self._check(snapshot, ds, status))
        return findings

    def _check(self, snapshot: Snapshot, ds: Obj, status: Obj) -> list[Finding]:
        desired = int_or(status.get("desiredNumberScheduled"))
        ready = int_or(status.get("numberReady"))
        unavailable = int_or(status.get("numberUnavailable"))
        misscheduled = int_or(status.get("numberMisscheduled"))
        if unavailable == 0 and ready >= desired and misscheduled == 0:
            return []  # the common case, before building anything
        ref = ref_of(ds, "DaemonSet")
        counts: list[tuple[str, object]] = [
            ("status.desiredNumberScheduled", desired),
            ("status.currentNumberScheduled", int_or(status.get("currentNumberScheduled"))),
            ("status.numberReady", ready),
            ("status.numberAvailable", int_or(status.get("numberAvailable"))),
            ("status.numberUnavailable", unavailable),
            ("status.updatedNumberScheduled", int_or(status.get("updatedNumberScheduled"))),
        ]
        events = event_evidence(snapshot.events_for("DaemonSet", ref.name))
        fields: dict[str, Any] = {"ns": ref.namespace or snapshot.namespace, "desired": desired, "ready": ready}
        out: list[Finding] = []
        if unavailable > 0 or ready < desired:
            persists, stale = shortfall_persists(snapshot, ds, snapshot.owned_pods(ds), desired)
            if persists:
                evidence: list[tuple[str, object]] = [
                    *counts,
                    *([("pods not ready", ", ".join(stale[:5]))] if stale else []),
                    *image_evidence(ds, "DaemonSet"),
                    *events,
                ]
                missing = max(desired - ready, unavailable)
                out.append(
                    _PROBLEMS["NotReady"].finding(
                        self.name, "NotReady", ref, evidence, snapshot.owner_chain(ds),
                        missing=missing, unavailable=unavailable, **fields,
                    )
                )  # fmt: skip
        if misscheduled > 0:
            evidence = [("status.numberMisscheduled", misscheduled), *counts[:3], *events]
            out.append(
                _PROBLEMS["Misscheduled"].finding(
                    self.name, "Misscheduled", ref, evidence, snapshot.owner_chain(ds), misscheduled=misscheduled,
                    **fields,
                )
            )  # fmt: skip
        return out


DETECTOR = DaemonSetDetector()
