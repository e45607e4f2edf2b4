"""Deployment problems: failed or stalled rollouts, pods the controller cannot create, lost availability,
paused rollouts.

A rollout still inside its progressDeadlineSeconds is normal and never reported.
"""

from __future__ import annotations

from typing import Any

from infragenius.detectors._controllers import GRACE_SECONDS, int_or, replica_failure
from infragenius.detectors.base import Problem
from infragenius.detectors.evidence import DOCS, EXAMPLES, event_evidence, image_evidence
from infragenius.kube.conditions import conditions_by_type, is_false, is_true
from infragenius.kube.meta import annotations_of, meta, name_of, namespace_of, ref_of, uid_of
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
    return int_or(annotations_of(rs).get("deployment.kubernetes.io/revision"), -1)


def newest_replicaset(replicasets: list[Obj]) -> Obj | None:
    """The ReplicaSet of the latest rollout: highest revision, then newest."""
    if not replicasets:
        return None
    return max(
        replicasets,
        key=lambda rs: (_revision(rs), meta(rs).get("creationTimestamp") or ""),
    )


def _looks_healthy(deploy: Obj) -> bool:
    """The common case in one cheap pass: not paused, all replicas available, no bad condition."""
    spec = deploy.get("spec") or {}
    status = deploy.get("status") or {}
    if spec.get("paused") or int_or(status.get("availableReplicas")) < int_or(spec.get("replicas"), 1):
        return False
    for cond in status.get("conditions") or ():
        ctype, cstatus = cond.get("type"), cond.get("status")
        failed = ctype == "ReplicaFailure" and cstatus == "True"
        if failed or (ctype in ("Progressing", "Available") and cstatus == "False"):
            return False
    return True


_PROBLEMS: dict[str, Problem] = {
    "Paused": Problem(
        Severity.info,
        "Deployment {name} is paused: spec changes are not rolled out",
        "Resume when ready: kubectl rollout resume -n {ns} deployment/{name}",
        _DOCS_PAUSED,
    ),
    "ProgressDeadlineExceeded": Problem(
        Severity.critical,
        "Deployment {name} rollout failed: no progress within {deadline}s ({available}/{replicas} available)",
        "The new pods never became available. Look at them (kubectl get pods -n {ns} -l <selector>; the pod "
        "findings name the cause), fix the image or config, or roll back: kubectl rollout undo -n {ns} "
        "deployment/{name}",
        _DOCS_FAILED,
    ),
    "Unavailable": Problem(
        Severity.warning,
        "Deployment {name} lacks minimum availability{duration}: {available}/{replicas} replicas available",
        "Fewer pods are available than the rollout strategy allows. Find out why the pods are not ready "
        "(kubectl describe deployment -n {ns} {name}; see the pod findings for this Deployment).",
        _DOCS_FAILED,
    ),
    "ReplicaShortfall": Problem(
        Severity.warning,
        "Deployment {name} rollout stalled for {duration}: {available}/{replicas} replicas available",
        "Check the new pods: kubectl rollout status -n {ns} deployment/{name}; fix them or roll back with "
        "kubectl rollout undo -n {ns} deployment/{name}",
        _DOCS_FAILED,
    ),
}


#: Why a new ReplicaSet's pods do not become available, in the kubelet's words (a failing readiness
#: probe, a volume that cannot mount): a stalled rollout's finding carries them.
_POD_CAUSE_EVENTS = frozenset({"Unhealthy", "FailedMount", "FailedCreatePodSandBox", "BackOff", "Failed"})


def _pod_events(snapshot: Snapshot, replicaset: Obj | None) -> list[Obj]:
    pods = (snapshot.owned_pods(replicaset) or []) if replicaset else []
    return [
        event
        for pod in pods[:EXAMPLES]
        for event in snapshot.events_about("Pod", name_of(pod), namespace_of(pod))
        if event.get("reason") in _POD_CAUSE_EVENTS
    ]


class _Rollout:
    """One Deployment's rollout state and the evidence every finding about it shares."""

    def __init__(self, snapshot: Snapshot, deploy: Obj, replicasets: list[Obj]) -> None:
        spec, status = deploy.get("spec") or {}, deploy.get("status") or {}
        self.deploy = deploy
        self.ref = ref_of(deploy, "Deployment")
        self.ns = self.ref.namespace or snapshot.namespace
        self.owners = snapshot.owner_chain(deploy)
        self.now = snapshot.taken_at
        self.reported = bool(status.get("conditions")) or "observedGeneration" in status
        conds = conditions_by_type(deploy)
        self.progressing, self.available_cond = conds.get("Progressing"), conds.get("Available")
        self.failure = conds.get("ReplicaFailure")
        self.replicas = int_or(spec.get("replicas"), 1)
        self.available = int_or(status.get("availableReplicas"))
        self.counts: list[tuple[str, object]] = [
            ("spec.replicas", self.replicas),
            ("status.updatedReplicas", int_or(status.get("updatedReplicas"))),
            ("status.readyReplicas", int_or(status.get("readyReplicas"))),
            ("status.availableReplicas", self.available),
        ]
        if status.get("unavailableReplicas"):
            self.counts.append(("status.unavailableReplicas", int_or(status.get("unavailableReplicas"))))
        self.newest = newest_replicaset(replicasets)
        self.images = image_evidence(self.newest, "ReplicaSet") if self.newest else image_evidence(deploy, "Deployment")
        rs_events = snapshot.events_for("ReplicaSet", name_of(self.newest)) if self.newest else []
        self.events = event_evidence(
            [*snapshot.events_for("Deployment", self.ref.name), *rs_events, *_pod_events(snapshot, self.newest)]
        )
        self.deadline = int_or(spec.get("progressDeadlineSeconds"), DEFAULT_PROGRESS_DEADLINE)
        self.stall_limit = _STALL_WITHOUT_DEADLINE if self.deadline >= NO_DEADLINE else self.deadline
        self.rollout_done = self.progressing is not None and self.progressing.get("reason") == "NewReplicaSetAvailable"
        progressing = self.progressing or {}
        progressed = progressing.get("lastUpdateTime") or progressing.get("lastTransitionTime")
        self.last_progress = seconds_since(self.now, progressed) if self.progressing else None

    @property
    def rollout_active(self) -> bool:
        """Progressing within its deadline: not finished, and progress seen recently enough."""
        recent = self.last_progress is None or self.last_progress <= self.stall_limit
        return is_true(self.progressing) and not self.rollout_done and recent

    @property
    def deadline_exceeded(self) -> bool:
        return is_false(self.progressing) and (self.progressing or {}).get("reason") == "ProgressDeadlineExceeded"

    @property
    def stalled(self) -> bool:
        """Past its deadline by the counts, before the controller's next sync flags it."""
        return (
            self.available < self.replicas
            and is_true(self.progressing)
            and not self.rollout_done
            and self.last_progress is not None
            and self.last_progress > self.stall_limit
        )

    def finding(self, problem: str, evidence: list[tuple[str, object]], **fields: Any) -> Finding:
        return _PROBLEMS[problem].finding(
            DeploymentDetector.name, problem, self.ref, evidence, self.owners,
            ns=self.ns, available=self.available, replicas=self.replicas, **fields,
        )  # fmt: skip


class DeploymentDetector:
    name = "deployment"
    kinds = frozenset({"Deployment", "ReplicaSet"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        findings: list[Finding] = []
        for deploy in snapshot.items("Deployment"):
            if not _looks_healthy(deploy):
                replicasets = snapshot.by_controller("ReplicaSet").get(uid_of(deploy), [])
                findings.extend(self._check(_Rollout(snapshot, deploy, replicasets)))
        return findings

    def _check(self, r: _Rollout) -> list[Finding]:
        out: list[Finding] = []
        if (r.deploy.get("spec") or {}).get("paused"):
            out.append(r.finding("Paused", [("spec.paused", "true")]))
        if not r.reported:
            return out  # the controller has not reported yet: nothing observed, nothing to say
        if is_true(r.failure):
            out.append(_replica_failure(r))
        if r.replicas == 0:
            return out
        if r.deadline_exceeded:
            out.append(_deadline_exceeded(r))
        elif is_false(r.available_cond) and not r.rollout_active:
            out.extend(_unavailable(r))
        elif r.stalled:
            out.append(_stalled(r))
        return out


def _replica_failure(r: _Rollout) -> Finding:
    return replica_failure(
        detector=DeploymentDetector.name,
        resource=r.ref,
        failure=r.failure or {},
        default_reason="ReplicaFailure",
        evidence=[*r.counts, *r.events, *r.images],
        replicaset=name_of(r.newest) if r.newest else "<replicaset>",
        namespace=r.ns,
        docs=_DOCS_FAILED,
        owners=r.owners,
    )


def _deadline_exceeded(r: _Rollout) -> Finding:
    progressing, available = r.progressing or {}, r.available_cond
    evidence: list[tuple[str, object]] = [
        ("status.conditions[Progressing].reason", "ProgressDeadlineExceeded"),
        ("status.conditions[Progressing].message", progressing.get("message") or ""),
        *r.counts,
        *([("status.conditions[Available].status", available.get("status"))] if available else []),
        *r.images,
        *r.events,
    ]
    return r.finding("ProgressDeadlineExceeded", evidence, deadline=r.deadline)


def _unavailable(r: _Rollout) -> list[Finding]:
    available = r.available_cond or {}
    since = seconds_since(r.now, available.get("lastTransitionTime"))
    if since is not None and since <= GRACE_SECONDS:
        return []
    evidence: list[tuple[str, object]] = [
        ("status.conditions[Available].reason", available.get("reason", "")),
        ("status.conditions[Available].message", available.get("message", "")),
        ("status.conditions[Available].lastTransitionTime", available.get("lastTransitionTime", "")),
        *r.counts,
        *r.images,
        *r.events,
    ]
    duration = f" for {human_duration(since)}" if since is not None else ""
    return [r.finding("Unavailable", evidence, duration=duration)]


def _stalled(r: _Rollout) -> Finding:
    progressing = r.progressing or {}
    evidence: list[tuple[str, object]] = [
        ("status.conditions[Progressing].reason", progressing.get("reason", "")),
        ("status.conditions[Progressing].lastUpdateTime", progressing.get("lastUpdateTime", "")),
        ("spec.progressDeadlineSeconds", r.deadline),
        *r.counts,
        *r.images,
        *r.events,
    ]
    return r.finding("ReplicaShortfall", evidence, duration=human_duration(r.last_progress))


DETECTOR = DeploymentDetector()
