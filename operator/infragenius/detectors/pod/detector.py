"""Pod problems: scheduling, containers that cannot start or keep dying, readiness, evictions, stuck deletions.

Every problem rolls up to the pod's outermost controller, so 50 crash-looping pods of one
Deployment make one finding on the Deployment (affected=50) with a few example pods.
"""

from __future__ import annotations

import datetime as dt

from infragenius.detectors.base import finding
from infragenius.detectors.evidence import event_evidence, examples, kubectl_ref, log_evidence
from infragenius.detectors.pod.containers import container_hits
from infragenius.detectors.pod.lifecycle import failed, not_ready, stuck_creating, stuck_terminating, unschedulable
from infragenius.detectors.pod.problems import CRASH_MIN_RESTARTS, HIGH_RESTARTS, PROBLEMS, SHUTDOWN_REASONS, Hit
from infragenius.kube.conditions import condition_true
from infragenius.kube.meta import meta, name_of, ref_of
from infragenius.kube.owners import controller_ref, owner_of_kind
from infragenius.kube.pods import pod_ready
from infragenius.models.findings import Finding, ResourceRef
from infragenius.snapshot import WORKLOAD_KINDS, ContainerLog, Obj, Snapshot


def _quick_healthy(pod: Obj) -> bool:
    """The common case in one cheap pass: every container running and steady, pod Ready."""
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or ():
        if "running" not in (cs.get("state") or ()) or (cs.get("restartCount") or 0) >= HIGH_RESTARTS:
            return False
        last = (cs.get("lastState") or {}).get("terminated")
        if last and last.get("reason") == "OOMKilled":
            return False
        # Restarted after error exits: maybe only between two crashes (the full check decides).
        if last and last.get("exitCode") and (cs.get("restartCount") or 0) >= CRASH_MIN_RESTARTS:
            return False
    for cs in status.get("initContainerStatuses") or ():
        state = cs.get("state") or {}
        term = state.get("terminated")
        if not (term and term.get("exitCode") == 0) and "running" not in state:
            return False
        if (cs.get("restartCount") or 0) >= HIGH_RESTARTS or (
            ((cs.get("lastState") or {}).get("terminated") or {}).get("reason") == "OOMKilled"
        ):
            return False
    return pod_ready(pod)


class PodDetector:
    name = "pod"
    # Workload kinds are read so pods roll up to their Deployment/StatefulSet/...
    kinds = frozenset({"Pod", "Node", *WORKLOAD_KINDS})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        # Failed pods of a Job are its retries; the job detector reports the Job. Once a Job has
        # completed, its failed pods are history.
        complete_jobs = {name_of(job) for job in snapshot.items("Job") if condition_true(job, "Complete")}
        groups: dict[tuple[ResourceRef, str], list[tuple[Obj, Hit]]] = {}
        targets: dict[str, ResourceRef] = {}  # controller uid -> roll-up target, shared by its pods
        for pod in _worth_a_look(snapshot):
            hits = self._pod_hits(pod, snapshot, snapshot.taken_at, complete_jobs)
            if hits:
                target = _target(snapshot, pod, targets)
                for hit in hits:
                    groups.setdefault((target, hit.problem), []).append((pod, hit))
        findings = [self._finding(snapshot, target, problem, members) for (target, problem), members in groups.items()]
        findings.sort(key=lambda f: (f.severity.rank, str(f.resource), f.id))
        return findings

    # --- per pod ---------------------------------------------------------------------------

    def _pod_hits(self, pod: Obj, snapshot: Snapshot, now: dt.datetime, complete_jobs: set) -> list[Hit]:
        status = pod.get("status")
        if meta(pod).get("deletionTimestamp"):
            # A pod being deleted is going away; only report it if the deletion is stuck.
            hit = stuck_terminating(pod, now)
            return [hit] if hit else []
        if not status:
            return []
        phase = status.get("phase")
        if phase == "Succeeded" or (phase == "Running" and _quick_healthy(pod)):
            return []
        job_owner = (owner_of_kind(pod, "Job") or {}).get("name")
        if phase == "Failed" and job_owner in complete_jobs:
            return []

        if phase == "Failed" and (status.get("reason") == "Evicted" or status.get("reason") in SHUTDOWN_REASONS):
            # The kubelet stopped the pod from outside; its container states say nothing more.
            return [failed(pod)] if job_owner is None else []

        hits: list[Hit] = []
        if phase == "Pending":
            hit = unschedulable(pod, now, snapshot)
            if hit:
                hits.append(hit)
        hits.extend(container_hits(pod, snapshot, now))
        if phase == "Failed" and not hits and job_owner is None:
            hits.append(failed(pod))
        elif phase == "Running" and not hits:
            hit = not_ready(pod, now)
            if hit:
                hits.append(hit)
        elif phase == "Pending" and not hits:
            hit = stuck_creating(pod, snapshot, now)
            if hit:
                hits.append(hit)
        return hits

    # --- roll-up ---------------------------------------------------------------------------

    def _finding(
        self, snapshot: Snapshot, target: ResourceRef, problem: str, members: list[tuple[Obj, Hit]]
    ) -> Finding:
        members.sort(key=lambda m: (m[1].severity.rank, name_of(m[0])))
        rep_pod, rep = members[0]
        rep_name = name_of(rep_pod)
        rolled = target.kind != "Pod"
        fact, details = rep.render()
        if rep.extra:
            fact += f" (also containers {', '.join(rep.extra)})"
        prefix = f"{rep_name}: " if rolled else ""
        evidence: list[tuple[str, object]] = [(src, f"{prefix}{val}") for src, val in details[:13]]
        logged = _member_log(snapshot, members)
        if logged is not None:
            pod_name, container, log = logged
            evidence.append(log_evidence(container, log, f"{pod_name}: " if rolled else ""))
        info = PROBLEMS.get(problem) or PROBLEMS[problem.removeprefix("Init")]
        events = [e for pod, _hit in members for e in snapshot.events_for("Pod", name_of(pod))]
        evidence.extend(event_evidence(events, info.events, limit=4))
        if rolled:
            evidence.append(("pods", examples(sorted(name_of(p) for p, _ in members))))
        obj = snapshot.get(target.kind, target.name, target.namespace) if rolled else None
        remediation = info.remediation.format(
            ns=target.namespace or snapshot.namespace, pod=rep_name, container=rep.container or "<container>",
            workload=kubectl_ref(target.kind, target.name),
        )  # fmt: skip
        return finding(
            detector=self.name,
            severity=rep.severity,
            resource=target,
            problem=problem,
            title=f"{_subject(target, rep_name, len(members))}: {fact}",
            evidence=evidence,
            remediation=remediation,
            docs=info.docs,
            owners=snapshot.owner_chain(obj) if obj is not None else [],
            affected=len(members),
        )


def _worth_a_look(snapshot: Snapshot) -> list[Obj]:
    """Pods that may have a problem: every pod not Running (or being deleted), and the Running ones whose
    status lists fail the quick check. ``_quick_healthy`` reads only those lists, so it is asked once for
    all the pods that share them (``Snapshot.pods`` groups them). Findings do not depend on the order.
    """
    pods = list(snapshot.pods.not_running)
    for group in snapshot.pods.running_by_status.values():
        if not _quick_healthy(group[0]):
            pods.extend(group)
    return pods


def _member_log(snapshot: Snapshot, members: list[tuple[Obj, Hit]]) -> tuple[str, str, ContainerLog] | None:
    """(pod, container, log) of the first member whose failing container's log was gathered: the gatherer
    reads one pod per controller, not necessarily the example pod. A log read beats a log that failed."""
    if not snapshot.logs:
        return None
    fallback = None
    for pod, hit in members:
        if not hit.container:
            continue
        pod_meta = meta(pod)
        log = snapshot.logs.get((pod_meta.get("namespace") or snapshot.namespace, name_of(pod), hit.container))
        if log is None:
            continue
        if log.error is None:
            return name_of(pod), hit.container, log
        fallback = fallback or (name_of(pod), hit.container, log)
    return fallback


def _target(snapshot: Snapshot, pod: Obj, targets: dict[str, ResourceRef]) -> ResourceRef:
    """The pod's roll-up target, built once per controller (ResourceRef is a model: not once per pod)."""
    owner_uid = (controller_ref(pod) or {}).get("uid")
    target = targets.get(owner_uid) if owner_uid else None
    if target is None:
        target = snapshot.rollup_target(pod, "Pod")
        if target.kind == "Node":  # static (mirror) pods: the node is not their workload
            target = ref_of(pod, "Pod")
        elif owner_uid:
            targets[owner_uid] = target
    return target


def _subject(target: ResourceRef, rep_name: str, count: int) -> str:
    """Who the title is about: the pod itself, one pod of a workload, or how many of them."""
    if target.kind == "Pod":
        return f"Pod {target.name}"
    if count == 1:
        return f"Pod {rep_name} of {target.kind} {target.name}"
    return f"{count} pods of {target.kind} {target.name}"


DETECTOR = PodDetector()
