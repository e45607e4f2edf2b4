"""Deployment problems: failed or stalled rollouts, pods the controller cannot create, lost availability, paused rollouts.

A rollout still inside its progressDeadlineSeconds is normal and never reported.
"""

from __future__ import annotations

from infragenius.detectors._controllers import GRACE_SECONDS, int_or
from infragenius.detectors.base import finding
from infragenius.detectors.evidence import DOCS, event_evidence, image_evidence, shorten
from infragenius.kube.conditions import conditions_by_type, is_false, is_true
from infragenius.kube.meta import name_of, ref_of
from infragenius.kube.time import human_duration, seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS_FAILED = f"{DOCS}/concepts/workloads/controllers/deployment/#failed-deployment"
_DOCS_PAUSED = f"{DOCS}/concepts/workloads/controllers/deployment/#pausing-and-resuming-a-deployment"
#: Deployment's API default for spec.progressDeadlineSeconds.
DEFAULT_PROGRESS_DEADLINE = 600
#: spec.progressDeadlineSeconds at MaxInt32 means "no deadline" to the controller.
NO_DEADLINE = 2147483647
#: With no progress deadline the controller never flags a stall; this is when we do.
_STALL_WITHOUT_DEADLINE = 3600


def _revision(rs: Obj) -> int:
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    return int_or(annotations.get("deployment.kubernetes.io/revision"), -1)


def newest_replicaset(replicasets: list[Obj]) -> Obj | None:
    """The ReplicaSet of the latest rollout: highest revision, then newest."""
    if not replicasets:
        return None
    return max(
        replicasets,
        key=lambda rs: (_revision(rs), (rs.get("metadata") or {}).get("creationTimestamp") or ""),
    )


def _looks_healthy(deploy: Obj) -> bool:
    """The common case in one cheap pass: not paused, all replicas available, no bad condition."""
    spec = deploy.get("spec") or {}
    status = deploy.get("status") or {}
    if spec.get("paused") or int_or(status.get("availableReplicas")) < int_or(spec.get("replicas"), 1):
        return False
    for cond in status.get("conditions") or ():
        ctype, cstatus = cond.get("type"), cond.get("status")
        if (ctype == "ReplicaFailure" and cstatus == "True") or (ctype in ("Progressing", "Available") and cstatus == "False"):
            return False
    return True


class DeploymentDetector:
    name = "deployment"
    kinds = frozenset({"Deployment", "ReplicaSet"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        rs_by_owner: dict[str, list[Obj]] | None = None
        findings: list[Finding] = []
        for deploy in snapshot.items("Deployment"):
            if _looks_healthy(deploy):
                continue
            if rs_by_owner is None:  # only needed for the images of a deployment with a problem
                rs_by_owner = snapshot.by_controller("ReplicaSet")
            findings.extend(self._check(snapshot, deploy, rs_by_owner))
        return findings

    def _check(self, snapshot: Snapshot, deploy: Obj, rs_by_owner: dict[str, list[Obj]]) -> list[Finding]:
        spec = deploy.get("spec") or {}
        status = deploy.get("status") or {}
        meta = deploy.get("metadata") or {}
        ref = ref_of(deploy, "Deployment")
        owners = snapshot.owner_chain(deploy)
        out: list[Finding] = []
        if spec.get("paused"):
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.info,
                    resource=ref,
                    problem="Paused",
                    title=f"Deployment {ref.name} is paused: spec changes are not rolled out",
                    evidence=[("spec.paused", "true")],
                    remediation=f"Resume when ready: kubectl rollout resume -n {ref.namespace} deployment/{ref.name}",
                    docs=_DOCS_PAUSED,
                    owners=owners,
                )
            )
        if not status.get("conditions") and "observedGeneration" not in status:
            return out  # the controller has not reported yet: nothing observed, nothing to say

        conds = conditions_by_type(deploy)
        progressing = conds.get("Progressing")
        available = conds.get("Available")
        failure = conds.get("ReplicaFailure")
        replicas = int_or(spec.get("replicas"), 1)
        counts = [
            ("spec.replicas", replicas),
            ("status.updatedReplicas", int_or(status.get("updatedReplicas"))),
            ("status.readyReplicas", int_or(status.get("readyReplicas"))),
            ("status.availableReplicas", int_or(status.get("availableReplicas"))),
        ]
        if status.get("unavailableReplicas"):
            counts.append(("status.unavailableReplicas", int_or(status.get("unavailableReplicas"))))
        newest = newest_replicaset(rs_by_owner.get(meta.get("uid", ""), []))
        images = image_evidence(newest, "ReplicaSet") if newest else image_evidence(deploy, "Deployment")
        rs_events = snapshot.events_for("ReplicaSet", name_of(newest)) if newest else []
        events = event_evidence([*snapshot.events_for("Deployment", ref.name), *rs_events])
        ns = ref.namespace or snapshot.namespace
        available_count = int_or(status.get("availableReplicas"))

        if is_true(failure):
            message = failure.get("message") or ""
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.critical,
                    resource=ref,
                    problem="ReplicaFailure",
                    title=f"Deployment {ref.name} cannot create pods ({failure.get('reason', 'ReplicaFailure')}): "
                    f"{shorten(message, 160)}",
                    evidence=[
                        ("status.conditions[ReplicaFailure].reason", failure.get("reason", "")),
                        ("status.conditions[ReplicaFailure].message", message),
                        *counts,
                        *events,
                        *images,
                    ],
                    remediation="The API server rejects the pods the ReplicaSet tries to create. Fix the cause in the "
                    "message (ResourceQuota: raise the quota or lower requests; admission webhook or policy: adjust "
                    f"the pod template), then check: kubectl describe rs -n {ns} {name_of(newest) or '<replicaset>'}",
                    docs=_DOCS_FAILED,
                    owners=owners,
                )
            )

        if replicas == 0:
            return out

        deadline = int_or(spec.get("progressDeadlineSeconds"), DEFAULT_PROGRESS_DEADLINE)
        stall_limit = _STALL_WITHOUT_DEADLINE if deadline >= NO_DEADLINE else deadline
        rollout_done = progressing is not None and progressing.get("reason") == "NewReplicaSetAvailable"
        last_progress = (
            seconds_since(snapshot.taken_at, progressing.get("lastUpdateTime") or progressing.get("lastTransitionTime"))
            if progressing
            else None
        )
        rollout_active = (
            is_true(progressing) and not rollout_done and (last_progress is None or last_progress <= stall_limit)
        )

        if is_false(progressing) and progressing.get("reason") == "ProgressDeadlineExceeded":
            message = progressing.get("message") or ""
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.critical,
                    resource=ref,
                    problem="ProgressDeadlineExceeded",
                    title=f"Deployment {ref.name} rollout failed: no progress within {deadline}s "
                    f"({available_count}/{replicas} available)",
                    evidence=[
                        ("status.conditions[Progressing].reason", "ProgressDeadlineExceeded"),
                        ("status.conditions[Progressing].message", message),
                        *counts,
                        *([("status.conditions[Available].status", available.get("status"))] if available else []),
                        *images,
                        *events,
                    ],
                    remediation="The new pods never became available. Look at them (kubectl get pods -n "
                    f"{ns} -l <selector>; the pod findings name the cause), fix the image or config, or roll "
                    f"back: kubectl rollout undo -n {ns} deployment/{ref.name}",
                    docs=_DOCS_FAILED,
                    owners=owners,
                )
            )
        elif is_false(available) and not rollout_active:
            since = seconds_since(snapshot.taken_at, available.get("lastTransitionTime"))
            if since is None or since > GRACE_SECONDS:
                out.append(
                    finding(
                        detector=self.name,
                        severity=Severity.warning,
                        resource=ref,
                        problem="Unavailable",
                        title=f"Deployment {ref.name} lacks minimum availability"
                        + (f" for {human_duration(since)}" if since is not None else "")
                        + f": {available_count}/{replicas} replicas available",
                        evidence=[
                            ("status.conditions[Available].reason", available.get("reason", "")),
                            ("status.conditions[Available].message", available.get("message", "")),
                            ("status.conditions[Available].lastTransitionTime", available.get("lastTransitionTime", "")),
                            *counts,
                            *images,
                            *events,
                        ],
                        remediation="Fewer pods are available than the rollout strategy allows. Find out why the "
                        f"pods are not ready (kubectl describe deployment -n {ns} {ref.name}; see the pod "
                        "findings for this Deployment).",
                        docs=_DOCS_FAILED,
                        owners=owners,
                    )
                )
        elif (
            available_count < replicas
            and is_true(progressing)
            and not rollout_done
            and last_progress is not None
            and last_progress > stall_limit
        ):
            # The controller flags ProgressDeadlineExceeded on its next sync; until then the counts show it.
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.warning,
                    resource=ref,
                    problem="ReplicaShortfall",
                    title=f"Deployment {ref.name} rollout stalled for {human_duration(last_progress)}: "
                    f"{available_count}/{replicas} replicas available",
                    evidence=[
                        ("status.conditions[Progressing].reason", progressing.get("reason", "")),
                        ("status.conditions[Progressing].lastUpdateTime", progressing.get("lastUpdateTime", "")),
                        ("spec.progressDeadlineSeconds", deadline),
                        *counts,
                        *images,
                        *events,
                    ],
                    remediation=f"Check the new pods: kubectl rollout status -n {ns} deployment/{ref.name}; fix "
                    f"them or roll back with kubectl rollout undo -n {ns} deployment/{ref.name}",
                    docs=_DOCS_FAILED,
                    owners=owners,
                )
            )
        return out


DETECTOR = DeploymentDetector()
