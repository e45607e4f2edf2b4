"""PodDisruptionBudget problems: budgets that block every eviction, select no pods, or cannot be computed.

A PDB with disruptionsAllowed >= 1 is healthy. Status is trusted only once the
disruption controller has observed the PDB (status.observedGeneration set): the API
serves zeros for every counter before that.
"""

from __future__ import annotations

from infragenius.detectors._controllers import int_or
from infragenius.detectors.base import finding
from infragenius.detectors.evidence import DOCS, event_evidence, shorten
from infragenius.kube.conditions import conditions_by_type, is_false
from infragenius.kube.meta import ref_of
from infragenius.kube.selectors import selector_text
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS = f"{DOCS}/tasks/run-application/configure-pdb/"


class PdbDetector:
    name = "pdb"
    kinds = frozenset({"PodDisruptionBudget"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        findings: list[Finding] = []
        for pdb in snapshot.items("PodDisruptionBudget"):
            finding_ = self._check(snapshot, pdb)
            if finding_ is not None:
                findings.append(finding_)
        return findings

    def _check(self, snapshot: Snapshot, pdb: Obj) -> Finding | None:
        status = pdb.get("status") or {}
        if "observedGeneration" not in status:
            return None
        allowed = int_or(status.get("disruptionsAllowed"))
        healthy = int_or(status.get("currentHealthy"))
        desired = int_or(status.get("desiredHealthy"))
        expected = int_or(status.get("expectedPods"))
        allowed_cond = conditions_by_type(pdb).get("DisruptionAllowed")
        sync_failed = is_false(allowed_cond) and allowed_cond.get("reason") == "SyncFailed"  # type: ignore[union-attr]
        if allowed >= 1 and expected > 0 and healthy >= desired and not sync_failed:
            return None  # the common, healthy case, before building anything
        spec = pdb.get("spec") or {}
        ref = ref_of(pdb, "PodDisruptionBudget")
        ns = ref.namespace or snapshot.namespace
        selector = selector_text(spec.get("selector"))
        budget: list[tuple[str, object]] = [
            (f"spec.{key}", spec[key]) for key in ("minAvailable", "maxUnavailable") if key in spec
        ]
        counts: list[tuple[str, object]] = [
            ("status.disruptionsAllowed", allowed),
            ("status.currentHealthy", healthy),
            ("status.desiredHealthy", desired),
            ("status.expectedPods", expected),
        ]
        budget_text = ", ".join(f"{k.removeprefix('spec.')}={v}" for k, v in budget) or "no budget set"
        events = event_evidence(snapshot.events_for("PodDisruptionBudget", ref.name), limit=2)

        def make(severity: Severity, problem: str, title: str, evidence: list, remediation: str) -> Finding:
            return finding(
                detector=self.name,
                severity=severity,
                resource=ref,
                problem=problem,
                title=title,
                evidence=evidence,
                remediation=remediation,
                docs=_DOCS,
                owners=snapshot.owner_chain(pdb),
            )

        if sync_failed:
            message = allowed_cond.get("message") or ""  # type: ignore[union-attr]
            return make(
                Severity.warning,
                "SyncFailed",
                f"PDB {ref.name} cannot be evaluated: {shorten(message, 160)}",
                [
                    ("status.conditions[DisruptionAllowed].reason", "SyncFailed"),
                    ("status.conditions[DisruptionAllowed].message", message),
                    ("spec.selector", selector),
                    *budget,
                    *events,
                ],
                "Evictions of the selected pods are refused while the budget cannot be computed. Percentages and "
                "maxUnavailable need pods owned by a scalable controller (Deployment, StatefulSet, ReplicaSet); "
                "use an integer minAvailable for other pods.",
            )
        if expected == 0:
            return make(
                Severity.warning,
                "NoPods",
                f"PDB {ref.name} selects no pods (selector {selector})",
                [("spec.selector", selector), *budget, *counts],
                f"The budget protects nothing. Fix spec.selector to match the workload's pod labels "
                f"(kubectl get pods -n {ns} -l '{selector}' returns nothing), or delete the PDB.",
            )
        if allowed == 0 and healthy >= desired:
            return make(
                Severity.warning,
                "BlocksEvictions",
                f"PDB {ref.name} allows no voluntary disruptions ({budget_text} with {expected} pods): "
                "node drains and evictions of these pods will block",
                [*budget, *counts, ("spec.selector", selector), *events],
                "Even with every pod healthy the budget leaves no room, so kubectl drain and cluster upgrades "
                "hang on these pods. Allow at least one disruption: lower minAvailable below the replica count "
                "(or use maxUnavailable: 1), or run more replicas.",
            )
        if healthy < desired:
            return make(
                Severity.info,
                "InsufficientHealthy",
                f"PDB {ref.name} has {healthy} healthy pods, fewer than the {desired} it requires: evictions are "
                "blocked until the workload recovers",
                [*counts, *budget, ("spec.selector", selector)],
                f"The workload's own findings say why its pods are unhealthy (kubectl get pods -n {ns} -l "
                f"'{selector}'); evictions resume once {desired} pods are healthy.",
            )
        return None


DETECTOR = PdbDetector()
