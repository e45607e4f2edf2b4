"""PodDisruptionBudget problems: budgets that block every eviction, select no pods, or cannot be computed.

A PDB with disruptionsAllowed >= 1 is healthy. Status is trusted only once the
disruption controller has observed the PDB (status.observedGeneration set): the API
serves zeros for every counter before that.
"""

from __future__ import annotations

from infragenius.detectors._controllers import int_or
from infragenius.detectors.base import Problem
from infragenius.detectors.evidence import DOCS, event_evidence, shorten
from infragenius.kube.conditions import condition, is_false
from infragenius.kube.meta import ref_of
from infragenius.kube.selectors import selector_text
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS = f"{DOCS}/tasks/run-application/configure-pdb/"


_PROBLEMS: dict[str, Problem] = {
    "SyncFailed": Problem(
        Severity.warning,
        "PDB {name} cannot be evaluated: {message}",
        "Evictions of the selected pods are refused while the budget cannot be computed. Percentages and "
        "maxUnavailable need pods owned by a scalable controller (Deployment, StatefulSet, ReplicaSet); use an "
        "integer minAvailable for other pods.",
        _DOCS,
    ),
    "NoPods": Problem(
        Severity.warning,
        "PDB {name} selects no pods (selector {selector})",
        "The budget protects nothing. Fix spec.selector to match the workload's pod labels (kubectl get pods -n {ns} "
        "-l '{selector}' returns nothing), or delete the PDB.",
        _DOCS,
    ),
    "BlocksEvictions": Problem(
        Severity.warning,
        "PDB {name} allows no voluntary disruptions ({budget} with {expected} pods): node drains and evictions "
        "of these pods will block",
        "Even with every pod healthy the budget leaves no room, so kubectl drain and cluster upgrades hang on these "
        "pods. Allow at least one disruption: lower minAvailable below the replica count (or use maxUnavailable: 1), "
        "or run more replicas.",
        _DOCS,
    ),
    "InsufficientHealthy": Problem(
        Severity.info,
        "PDB {name} has {healthy} healthy pods, fewer than the {desired} it requires: evictions are blocked until "
        "the workload recovers",
        "The workload's own findings say why its pods are unhealthy (kubectl get pods -n {ns} -l '{selector}'); "
        "evictions resume once {desired} pods are healthy.",
        _DOCS,
    ),
}


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
        allowed_cond = condition(pdb, "DisruptionAllowed")
        sync_failed = is_false(allowed_cond) and (allowed_cond or {}).get("reason") == "SyncFailed"
        if allowed >= 1 and expected > 0 and healthy >= desired and not sync_failed:
            return None  # the common, healthy case, before building anything
        if sync_failed:
            problem = "SyncFailed"
        elif expected == 0:
            problem = "NoPods"
        elif allowed == 0 and healthy >= desired:
            problem = "BlocksEvictions"
        elif healthy < desired:
            problem = "InsufficientHealthy"
        else:
            return None
        return _finding(snapshot, pdb, problem, allowed_cond or {})


def _finding(snapshot: Snapshot, pdb: Obj, problem: str, allowed_cond: Obj) -> Finding:
    spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
    ref = ref_of(pdb, "PodDisruptionBudget")
    selector = selector_text(spec.get("selector"))
    budget: list[tuple[str, object]] = [
        (f"spec.{key}", spec[key]) for key in ("minAvailable", "maxUnavailable") if key in spec
    ]
    healthy, desired = int_or(status.get("currentHealthy")), int_or(status.get("desiredHealthy"))
    expected = int_or(status.get("expectedPods"))
    counts: list[tuple[str, object]] = [
        ("status.disruptionsAllowed", int_or(status.get("disruptionsAllowed"))),
        ("status.currentHealthy", healthy),
        ("status.desiredHealthy", desired),
        ("status.expectedPods", expected),
    ]
    events = event_evidence(snapshot.events_for("PodDisruptionBudget", ref.name), limit=2)
    message = allowed_cond.get("message") or ""
    evidence: list[tuple[str, object]] = {
        "SyncFailed": [
            ("status.conditions[DisruptionAllowed].reason", "SyncFailed"),
            ("status.conditions[DisruptionAllowed].message", message),
            ("spec.selector", selector),
            *budget,
            *events,
        ],
        "NoPods": [("spec.selector", selector), *budget, *counts],
        "BlocksEvictions": [*budget, *counts, ("spec.selector", selector), *events],
        "InsufficientHealthy": [*counts, *budget, ("spec.selector", selector)],
    }[problem]
    return _PROBLEMS[problem].finding(
        PdbDetector.name, problem, ref, evidence, snapshot.owner_chain(pdb),
        ns=ref.namespace or snapshot.namespace, selector=selector, message=shorten(message, 160),
        budget=", ".join(f"{k.removeprefix('spec.')}={v}" for k, v in budget) or "no budget set",
        expected=expected, healthy=healthy, desired=desired,
    )  # fmt: skip


DETECTOR = PdbDetector()
