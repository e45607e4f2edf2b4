"""HorizontalPodAutoscaler problems: a missing scale target, pinned at maxReplicas, unable to scale,
utilization metrics on containers without requests.

An HPA at minReplicas reports ScalingLimited=True reason TooFewReplicas: that is its
resting state, not a problem. Empty status (no HPA controller, or not synced yet) says nothing.
"""

from __future__ import annotations

from infragenius.detectors._controllers import GRACE_SECONDS, int_or
from infragenius.detectors.base import finding
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


class HpaDetector:
    name = "hpa"
    kinds = frozenset({"HorizontalPodAutoscaler", *TARGET_KINDS})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        findings: list[Finding] = []
        for hpa in snapshot.items("HorizontalPodAutoscaler"):
            findings.extend(self._check(snapshot, hpa))
        return findings

    def _check(self, snapshot: Snapshot, hpa: Obj) -> list[Finding]:
        spec = hpa.get("spec") or {}
        status = hpa.get("status") or {}
        meta = hpa.get("metadata") or {}
        hname, hns = meta.get("name", ""), meta.get("namespace")
        ns = hns or snapshot.namespace
        target_ref = spec.get("scaleTargetRef") or {}
        tkind, tname = target_ref.get("kind", ""), target_ref.get("name", "")
        target_label = f"{tkind}/{tname}"

        def events() -> list[tuple[str, str]]:
            return event_evidence(snapshot.events_for("HorizontalPodAutoscaler", hname))
        out: list[Finding] = []

        def add(severity: Severity, problem: str, title: str, evidence: list, remediation: str, docs: str = _DOCS) -> None:
            out.append(
                finding(
                    detector=self.name,
                    severity=severity,
                    resource=ref_of(hpa, "HorizontalPodAutoscaler"),
                    problem=problem,
                    title=title,
                    evidence=evidence,
                    remediation=remediation,
                    docs=docs,
                    owners=snapshot.owner_chain(hpa),
                )
            )

        target: Obj | None = None
        if tkind in TARGET_KINDS and snapshot.has(tkind):
            target = snapshot.get(tkind, tname, hns)
            if target is None:
                add(
                    Severity.critical,
                    "TargetMissing",
                    f"HPA {hname} scales {target_label}, which does not exist",
                    [("spec.scaleTargetRef", f"{target_ref.get('apiVersion', '')} {target_label}".strip()), *events()],
                    f"Point spec.scaleTargetRef at the workload to autoscale, or delete the HPA: kubectl delete hpa -n "
                    f"{ns} {hname}",
                )
                return out  # everything else about this HPA follows from the missing target

        conds = conditions_by_type(hpa)
        maximum = int_or(spec.get("maxReplicas"))
        minimum = int_or(spec.get("minReplicas"), 1)
        current = int_or(status.get("currentReplicas"))
        desired = int_or(status.get("desiredReplicas"))
        counts: list[tuple[str, object]] = [
            ("spec.minReplicas", minimum),
            ("spec.maxReplicas", maximum),
            ("status.currentReplicas", current),
            ("status.desiredReplicas", desired),
        ]
        metrics_now = _current_metrics(status)

        missing_requests = self._missing_requests(hpa, target, conds)
        if missing_requests:
            resources = sorted({res for res, _, _ in missing_requests})
            add(
                Severity.warning,
                "MissingRequests",
                f"HPA {hname} scales on {'/'.join(resources)} utilization but {target_label} containers "
                f"{', '.join(sorted({c for _, c, _ in missing_requests}))} set no {'/'.join(resources)} request",
                [
                    *(
                        (f"{tkind}/{tname}.spec.template.spec.containers[{c}].resources.requests.{res}", "not set")
                        for res, c, _ in missing_requests
                    ),
                    *sorted({(path, f"{res} Utilization target") for res, _, path in missing_requests}),
                    *(
                        [("status.conditions[ScalingActive].message", conds["ScalingActive"].get("message", ""))]
                        if is_false(conds.get("ScalingActive"))
                        else []
                    ),
                ],
                "Utilization is measured as a percentage of the request, so without one the HPA cannot compute "
                f"it and does not scale. Set resources.requests for every container of {target_label} (unless a "
                "LimitRange in the namespace fills them in).",
                f"{_DOCS}#support-for-resource-metrics",
            )

        for ctype in ("AbleToScale", "ScalingActive"):
            cond = conds.get(ctype)
            if not is_false(cond) or cond.get("reason") in _BENIGN_REASONS:
                continue
            if ctype == "ScalingActive" and missing_requests:
                continue  # same root cause, already reported with the fix
            since = seconds_since(snapshot.taken_at, cond.get("lastTransitionTime"))
            if since is not None and since <= GRACE_SECONDS:
                continue  # metrics are routinely missing for a minute after pods start
            message = cond.get("message") or ""
            add(
                Severity.warning,
                f"{ctype}False",
                f"HPA {hname} cannot scale {target_label}: {cond.get('reason', ctype)}"
                + (f": {shorten(message, 150)}" if message else ""),
                [
                    (f"status.conditions[{ctype}].reason", cond.get("reason", "")),
                    (f"status.conditions[{ctype}].message", message),
                    (f"status.conditions[{ctype}].lastTransitionTime", cond.get("lastTransitionTime", "")),
                    *counts,
                    *events(),
                ],
                "Metric failures usually mean the metrics API is missing or has no data for the pods "
                "(kubectl get apiservice v1beta1.metrics.k8s.io; kubectl top pods -n "
                f"{ns}); scale failures mean the HPA cannot read or update {target_label}'s scale subresource. "
                f"kubectl describe hpa -n {ns} {hname}",
            )

        limited = conds.get("ScalingLimited")
        if (
            is_true(limited)
            and limited.get("reason") == "TooManyReplicas"
            and maximum > 0
            and max(current, desired) >= maximum
        ):
            add(
                Severity.warning,
                "AtMaxReplicas",
                f"HPA {hname} is pinned at maxReplicas={maximum}: {target_label} wants more replicas",
                [
                    ("status.conditions[ScalingLimited].reason", "TooManyReplicas"),
                    ("status.conditions[ScalingLimited].message", limited.get("message", "")),
                    *counts,
                    *metrics_now,
                    *events(),
                ],
                "Load exceeds what maxReplicas allows, so the pods run hotter than the target. Raise "
                f"maxReplicas (kubectl patch hpa -n {ns} {hname} --type=merge -p "
                "'{\"spec\":{\"maxReplicas\":<n>}}') if the cluster has room, or make each pod handle more.",
            )
        return out

    @staticmethod
    def _missing_requests(hpa: Obj, target: Obj | None, conds: dict[str, Obj]) -> list[tuple[str, str, str]]:
        """(resource, container, metric spec path) for each request a Utilization metric needs but the template lacks."""
        if target is None or is_true(conds.get("ScalingActive")):
            return []  # an active HPA proves requests exist (perhaps filled in by a LimitRange)
        containers = template_containers(target)
        missing: list[tuple[str, str, str]] = []
        for resource, only, path in utilization_resources(hpa):
            for container in containers:
                cname = container.get("name", "?")
                if only is not None and cname != only:
                    continue
                resources = container.get("resources") or {}
                # The API server defaults a missing request to the limit, so a limit is enough.
                if resource not in (resources.get("requests") or {}) and resource not in (resources.get("limits") or {}):
                    missing.append((resource, cname, path))
        return missing


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
            out.append((f"status.currentMetrics[{source.get('name')}].current.averageValue", str(current["averageValue"])))
    return out[:3]


DETECTOR = HpaDetector()
