"""HorizontalPodAutoscaler problems: a missing scale target, pinned at maxReplicas, unable to scale,
utilization metrics on containers without requests.

An HPA at minReplicas reports ScalingLimited=True reason TooFewReplicas: that is its
resting state, not a problem. Empty status (no HPA controller, or not synced yet) says nothing.
"""

from __future__ import annotations

from typing import Any

from infragenius.detectors._controllers import GRACE_SECONDS, int_or
from infragenius.detectors.base import Problem
from infragenius.detectors.evidence import DOCS, event_evidence, shorten
from infragenius.kube.conditions import conditions_by_type, is_false, is_true
from infragenius.kube.meta import ref_of
from infragenius.kube.pods import template_containers
from infragenius.kube.time import seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS = f"{DOCS}/tasks/run-application/horizontal-pod-autoscale/"
#: Kinds whose existence and pod template this detector can check.
TARGET_KINDS = ("Deployment", "StatefulSet", "ReplicaSet")
#: Condition reasons that are normal states rather than failures.
_BENIGN_REASONS = frozenset({"ScalingDisabled", "BackoffBoth", "BackoffDownscale", "BackoffUpscale"})


def utilization_resources(hpa: Obj) -> list[tuple[str, str | None, str]]:
    """(resource, container or None, spec path) for every Utilization target; those need requests."""
    spec = hpa.get("spec") or {}
    found: list[tuple[str, str | None, str]] = []
    if spec.get("targetCPUUtilizationPercentage") is not None:  # autoscaling/v1
        found.append(("cpu", None, "spec.targetCPUUtilizationPercentage"))
    for i, metric in enumerate(spec.get("metrics") or ()):
        mtype = metric.get("type")
        if mtype == "Resource":
            source, container = metric.get("resource") or {}, None
        elif mtype == "ContainerResource":
            source = metric.get("containerResource") or {}
            container = source.get("container")
        else:
            continue
        target = source.get("target") or {}
        # v2 uses target.type=Utilization; v2beta1 used targetAverageUtilization.
        if target.get("type") == "Utilization" or source.get("targetAverageUtilization") is not None:
            field = "resource" if container is None else "containerResource"
            found.append((source.get("name", ""), container, f"spec.metrics[{i}].{field}"))
    return found


_PROBLEMS: dict[str, Problem] = {
    "TargetMissing": Problem(
        Severity.critical,
        "HPA {name} scales {target}, which does not exist",
        "Point spec.scaleTargetRef at the workload to autoscale, or delete the HPA: kubectl delete hpa -n {ns} {name}",
        _DOCS,
    ),
    "MissingRequests": Problem(
        Severity.warning,
        "HPA {name} scales on {resources} utilization but {target} containers {containers} set no {resources} request",
        "Utilization is measured as a percentage of the request, so without one the HPA cannot compute it and does "
        "not scale. Set resources.requests for every container of {target} (unless a LimitRange in the namespace "
        "fills them in).",
        f"{_DOCS}#support-for-resource-metrics",
    ),
    "CannotScale": Problem(
        Severity.warning,
        "HPA {name} cannot scale {target}: {reason}{message}",
        "Metric failures usually mean the metrics API is missing or has no data for the pods "
        "(kubectl get apiservice v1beta1.metrics.k8s.io; kubectl top pods -n {ns}); scale failures mean the HPA "
        "cannot read or update {target}'s scale subresource. kubectl describe hpa -n {ns} {name}",
        _DOCS,
    ),
    "AtMaxReplicas": Problem(
        Severity.warning,
        "HPA {name} is pinned at maxReplicas={maximum}: {target} wants more replicas",
        "Load exceeds what maxReplicas allows, so the pods run hotter than the target. Raise maxReplicas "
        '(kubectl patch hpa -n {ns} {name} --type=merge -p \'{{"spec":{{"maxReplicas":<n>}}}}\') if the '
        "cluster has room, or make each pod handle more.",
        _DOCS,
    ),
}


class _Hpa:
    """One HPA, its scale target and the evidence its findings share."""

    def __init__(self, snapshot: Snapshot, hpa: Obj) -> None:
        spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
        self.hpa = hpa
        self.ref = ref_of(hpa, "HorizontalPodAutoscaler")
        self.ns = self.ref.namespace or snapshot.namespace
        self.owners = snapshot.owner_chain(hpa)
        self.now = snapshot.taken_at
        self.target_ref = spec.get("scaleTargetRef") or {}
        self.tkind, self.tname = self.target_ref.get("kind", ""), self.target_ref.get("name", "")
        self.label = f"{self.tkind}/{self.tname}"
        self.conds = conditions_by_type(hpa)
        self.maximum = int_or(spec.get("maxReplicas"))
        self.current = int_or(status.get("currentReplicas"))
        self.desired = int_or(status.get("desiredReplicas"))
        self.counts: list[tuple[str, object]] = [
            ("spec.minReplicas", int_or(spec.get("minReplicas"), 1)),
            ("spec.maxReplicas", self.maximum),
            ("status.currentReplicas", self.current),
            ("status.desiredReplicas", self.desired),
        ]
        self._snapshot = snapshot

    def events(self) -> list[tuple[str, str]]:
        return event_evidence(self._snapshot.events_for("HorizontalPodAutoscaler", self.ref.name))

    def finding(self, problem: str, evidence: list[tuple[str, object]], **fields: Any) -> Finding:
        return _PROBLEMS[problem].finding(
            HpaDetector.name, problem, self.ref, evidence, self.owners, ns=self.ns, target=self.label, **fields
        )


class HpaDetector:
    name = "hpa"
    kinds = frozenset({"HorizontalPodAutoscaler", *TARGET_KINDS})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        findings: list[Finding] = []
        for hpa in snapshot.items("HorizontalPodAutoscaler"):
            findings.extend(self._check(snapshot, _Hpa(snapshot, hpa)))
        return findings

    def _check(self, snapshot: Snapshot, h: _Hpa) -> list[Finding]:
        target: Obj | None = None
        if h.tkind in TARGET_KINDS and snapshot.has(h.tkind):
            target = snapshot.get(h.tkind, h.tname, h.ref.namespace)
            if target is None:
                # Everything else about this HPA follows from the missing target.
                where = f"{h.target_ref.get('apiVersion', '')} {h.label}".strip()
                return [h.finding("TargetMissing", [("spec.scaleTargetRef", where), *h.events()])]
        missing = _missing_requests(h.hpa, target, h.conds)
        out = [_missing_requests_finding(h, missing)] if missing else []
        out.extend(_cannot_scale(h, skip_scaling_active=bool(missing)))
        out.extend(_at_max(h))
        return out


def _missing_requests(hpa: Obj, target: Obj | None, conds: dict[str, Obj]) -> list[tuple[str, str, str]]:
    """(resource, container, metric spec path) for each request a Utilization metric needs but the template lacks."""
    if target is None or is_true(conds.get("ScalingActive")):
        return []  # an active HPA proves requests exist (perhaps filled in by a LimitRange)
    missing: list[tuple[str, str, str]] = []
    for resource, only, path in utilization_resources(hpa):
        for container in template_containers(target):
            cname = container.get("name", "?")
            if only is not None and cname != only:
                continue
            resources = container.get("resources") or {}
            # The API server defaults a missing request to the limit, so a limit is enough.
            if resource not in (resources.get("requests") or {}) and resource not in (resources.get("limits") or {}):
                missing.append((resource, cname, path))
    return missing


def _missing_requests_finding(h: _Hpa, missing: list[tuple[str, str, str]]) -> Finding:
    resources = "/".join(sorted({res for res, _, _ in missing}))
    evidence: list[tuple[str, object]] = [
        *((f"{h.label}.spec.template.spec.containers[{c}].resources.requests.{r}", "not set") for r, c, _ in missing),
        *sorted({(path, f"{res} Utilization target") for res, _, path in missing}),
    ]
    active = h.conds.get("ScalingActive")
    if is_false(active):
        evidence.append(("status.conditions[ScalingActive].message", (active or {}).get("message", "")))
    containers = ", ".join(sorted({c for _, c, _ in missing}))
    return h.finding("MissingRequests", evidence, resources=resources, containers=containers)


def _cannot_scale(h: _Hpa, skip_scaling_active: bool) -> list[Finding]:
    out: list[Finding] = []
    for ctype in ("AbleToScale", "ScalingActive"):
        cond = h.conds.get(ctype)
        if cond is None or not is_false(cond) or cond.get("reason") in _BENIGN_REASONS:
            continue
        if ctype == "ScalingActive" and skip_scaling_active:
            continue  # same root cause as MissingRequests, already reported with the fix
        since = seconds_since(h.now, cond.get("lastTransitionTime"))
        if since is not None and since <= GRACE_SECONDS:
            continue  # metrics are routinely missing for a minute after pods start
        message = cond.get("message") or ""
        evidence: list[tuple[str, object]] = [
            (f"status.conditions[{ctype}].reason", cond.get("reason", "")),
            (f"status.conditions[{ctype}].message", message),
            (f"status.conditions[{ctype}].lastTransitionTime", cond.get("lastTransitionTime", "")),
            *h.counts,
            *h.events(),
        ]
        out.append(
            _PROBLEMS["CannotScale"].finding(
                HpaDetector.name, f"{ctype}False", h.ref, evidence, h.owners, ns=h.ns, target=h.label,
                reason=cond.get("reason", ctype), message=f": {shorten(message, 150)}" if message else "",
            )
        )  # fmt: skip
    return out


def _at_max(h: _Hpa) -> list[Finding]:
    limited = h.conds.get("ScalingLimited")
    if not is_true(limited) or (limited or {}).get("reason") != "TooManyReplicas":
        return []
    if h.maximum <= 0 or max(h.current, h.desired) < h.maximum:
        return []
    evidence: list[tuple[str, object]] = [
        ("status.conditions[ScalingLimited].reason", "TooManyReplicas"),
        ("status.conditions[ScalingLimited].message", (limited or {}).get("message", "")),
        *h.counts,
        *_current_metrics(h.hpa.get("status") or {}),
        *h.events(),
    ]
    return [h.finding("AtMaxReplicas", evidence, maximum=h.maximum)]


def _current_metrics(status: Obj) -> list[tuple[str, str]]:
    """Observed utilization, e.g. ("status.currentMetrics[cpu]", "95% (target 70%)")."""
    out: list[tuple[str, str]] = []
    for metric in status.get("currentMetrics") or ():
        source = metric.get("resource") or metric.get("containerResource")
        if not source:
            continue
        current = source.get("current") or {}
        if current.get("averageUtilization") is not None:
            path = f"status.currentMetrics[{source.get('name')}].current.averageUtilization"
            out.append((path, f"{current['averageUtilization']}%"))
        elif current.get("averageValue") is not None:
            path = f"status.currentMetrics[{source.get('name')}].current.averageValue"
            out.append((path, str(current["averageValue"])))
    return out[:3]


DETECTOR = HpaDetector()
