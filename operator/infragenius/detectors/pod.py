"""Pod problems: scheduling, containers that cannot start or keep dying, readiness, evictions, stuck deletions.

Every problem rolls up to the pod's outermost controller, so 50 crash-looping pods of one
Deployment make one finding on the Deployment (affected=50) with a few example pods.
"""

from __future__ import annotations

from decimal import Decimal

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

from infragenius.detectors._controllers import GRACE_SECONDS
from infragenius.detectors.base import finding
from infragenius.detectors.evidence import DOCS, event_evidence, examples, kubectl_ref, shorten
from infragenius.kube.owners import controller_ref
from infragenius.kube.quantity import quantity_or_none
from infragenius.kube.time import human_duration, seconds_since
from infragenius.models.findings import Finding, ResourceRef, Severity
from infragenius.snapshot import WORKLOAD_KINDS, Obj, Snapshot

#: Waiting reasons that mean the container cannot run, mapped to a stable problem key.
#: ErrImagePull and ImagePullBackOff alternate on the same pod, so they share one key
#: (otherwise the finding id would flip between runs).
WAITING_PROBLEMS: dict[str, str] = {
    "CrashLoopBackOff": "CrashLoopBackOff",
    "ImagePullBackOff": "ImagePull",
    "ErrImagePull": "ImagePull",
    "ErrImageNeverPull": "ImagePull",
    "InvalidImageName": "InvalidImageName",
    "CreateContainerConfigError": "CreateContainerConfigError",
    "CreateContainerError": "CreateContainerError",
    "RunContainerError": "RunContainerError",
}

HIGH_RESTARTS = 5
UNSCHEDULABLE_CRITICAL_SECONDS = 600.0
#: The scheduler retries and autoscalers add nodes; a pod unschedulable for seconds (e.g. a surge pod
#: waiting for an old one to go during a rollout) is routine.
UNSCHEDULABLE_GRACE_SECONDS = 60.0
#: An OOM kill this recent (or a container not running after one) is "broken now".
RECENT_OOM_SECONDS = 3600.0
#: Restarts (or an OOM kill) older than this are history: reported as info, not warning.
RECENT_RESTART_SECONDS = 86400.0
#: Failure reasons kubelet sets when a node shuts down gracefully: leftovers, not faults.
SHUTDOWN_REASONS = frozenset({"NodeShutdown", "Shutdown", "Terminated"})
VOLUME_EVENT_REASONS = frozenset(
    {"FailedMount", "FailedAttachVolume", "FailedMapVolume", "FailedCreatePodSandBox", "FailedSync"}
)


@dataclass(frozen=True)
class _Problem:
    docs: str
    remediation: str  # format fields: ns, pod, container, workload
    events: frozenset[str] | None


_PULL_EVENTS = frozenset({"Failed", "BackOff", "ErrImagePull", "InspectFailed", "ErrImageNeverPull"})
_PROBLEMS: dict[str, _Problem] = {
    "Unschedulable": _Problem(
        f"{DOCS}/concepts/scheduling-eviction/kube-scheduler/",
        "The scheduler's message says which constraint fails. Lower the pod's resource requests, add node "
        "capacity, or relax nodeSelector/affinity/tolerations; check with: kubectl describe pod -n {ns} {pod}",
        frozenset({"FailedScheduling"}),
    ),
    "CrashLoopBackOff": _Problem(
        f"{DOCS}/concepts/workloads/pods/pod-lifecycle/#container-restarts",
        "Read the output of the crashed run: kubectl logs -n {ns} {pod} -c {container} --previous. Fix the "
        "application error or its configuration (env, ConfigMaps, Secrets, command), then roll out again.",
        frozenset({"BackOff", "Unhealthy", "Failed", "Killing"}),
    ),
    "ImagePull": _Problem(
        f"{DOCS}/concepts/containers/images/",
        "Check the image name and tag exist in the registry and that the pod can authenticate "
        "(spec.imagePullSecrets); kubectl describe pod -n {ns} {pod} shows the registry's answer. "
        "Then fix the image: kubectl set image -n {ns} {workload} {container}=<image>",
        _PULL_EVENTS,
    ),
    "InvalidImageName": _Problem(
        f"{DOCS}/concepts/containers/images/#image-names",
        "The image reference cannot be parsed (check for upper case, spaces or a bad tag/digest). "
        "Fix it: kubectl set image -n {ns} {workload} {container}=<registry>/<repo>:<tag>",
        _PULL_EVENTS,
    ),
    "CreateContainerConfigError": _Problem(
        f"{DOCS}/tasks/configure-pod-container/configure-pod-configmap/",
        "A ConfigMap, Secret or key the container references (env, envFrom, volume) is missing. Create it in "
        "namespace {ns} or fix the reference; kubectl describe pod -n {ns} {pod} names it.",
        frozenset({"Failed"}),
    ),
    "CreateContainerError": _Problem(
        f"{DOCS}/tasks/debug/debug-application/debug-pods/",
        "The runtime could not create the container (often a bad command, volume subPath or security "
        "context). kubectl describe pod -n {ns} {pod} shows the runtime error.",
        frozenset({"Failed"}),
    ),
    "RunContainerError": _Problem(
        f"{DOCS}/tasks/debug/debug-application/debug-pods/",
        "The container process failed to start (missing executable in the image, wrong command or "
        "permissions). Check spec.containers[{container}].command/args against the image.",
        frozenset({"Failed", "BackOff"}),
    ),
    "OOMKilled": _Problem(
        f"{DOCS}/tasks/configure-pod-container/assign-memory-resource/#exceed-a-container-s-memory-limit",
        "The container used more memory than its limit. Raise resources.limits.memory (and requests) for "
        "container {container} to cover its peak, or reduce the application's memory use (heap sizes, caches).",
        frozenset({"BackOff", "OOMKilling", "Killing"}),
    ),
    "InitContainerFailed": _Problem(
        f"{DOCS}/concepts/workloads/pods/init-containers/",
        "The pod cannot start until init container {container} succeeds. Read its output: "
        "kubectl logs -n {ns} {pod} -c {container}",
        frozenset({"BackOff", "Failed"}),
    ),
    "NotReady": _Problem(
        f"{DOCS}/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/",
        "The pod runs but fails its readiness check, so Services send it no traffic. Compare the probe "
        "(path, port, timeouts) with what the application serves; kubectl describe pod -n {ns} {pod} shows "
        "the probe failures.",
        frozenset({"Unhealthy", "ProbeWarning"}),
    ),
    "Restarts": _Problem(
        f"{DOCS}/concepts/workloads/pods/pod-lifecycle/#container-restarts",
        "The container keeps restarting. Read the previous run: kubectl logs -n {ns} {pod} -c {container} "
        "--previous, and check liveness probe failures in kubectl describe pod -n {ns} {pod}.",
        frozenset({"BackOff", "Unhealthy", "Killing"}),
    ),
    "Evicted": _Problem(
        f"{DOCS}/concepts/scheduling-eviction/node-pressure-eviction/",
        "The kubelet evicted the pod under node resource pressure. Set memory/ephemeral-storage requests "
        "close to real use so the scheduler places pods correctly, and delete the leftovers: "
        "kubectl delete pod -n {ns} --field-selector=status.phase=Failed",
        frozenset({"Evicted"}),
    ),
    "Failed": _Problem(
        f"{DOCS}/concepts/workloads/pods/pod-lifecycle/#pod-phase",
        "The pod ended in phase Failed. Read its containers' exit codes and output "
        "(kubectl logs -n {ns} {pod} -c {container}); delete it once understood.",
        None,
    ),
    "NodeShutdown": _Problem(
        f"{DOCS}/concepts/cluster-administration/node-shutdown/",
        "Pods stopped by a node shutdown stay in phase Failed; their controller has replaced them. "
        "Clean up: kubectl delete pod -n {ns} --field-selector=status.phase=Failed",
        None,
    ),
    "StuckTerminating": _Problem(
        f"{DOCS}/concepts/workloads/pods/pod-lifecycle/#pod-termination",
        "The pod is past its termination grace period. Check its node is Ready and whether finalizers block "
        "deletion (kubectl get pod -n {ns} {pod} -o jsonpath='{{.metadata.finalizers}}'); as a last resort: "
        "kubectl delete pod -n {ns} {pod} --grace-period=0 --force",
        frozenset({"FailedKillPod", "FailedPreStopHook"}),
    ),
    "ContainerCreating": _Problem(
        f"{DOCS}/concepts/storage/volumes/",
        "The pod is scheduled but its containers cannot be created; the events say why (volume mount or "
        "attach failures, sandbox/network errors). kubectl describe pod -n {ns} {pod}",
        VOLUME_EVENT_REASONS,
    ),
}


Details = tuple[str, list[tuple[str, object]]]  # (the concrete fact, phrased for the title; evidence)


@dataclass
class _Hit:
    """One problem observed on one pod.

    ``render`` builds the title fact and evidence; only the example pod of a roll-up
    needs them, so a Deployment with 5,000 crashing pods formats one pod's details.
    """

    problem: str
    severity: Severity
    render: Callable[[], Details]
    container: str = ""
    extra: list[str] = field(default_factory=list)  # other containers with the same problem


def _fixed(fact: str, evidence: list[tuple[str, object]]) -> Callable[[], Details]:
    return lambda: (fact, evidence)


def _probe_summary(probe: Obj | None) -> str:
    """One line describing a probe, so the reader sees what is being checked."""
    if not probe:
        return "none"
    if "httpGet" in probe:
        get = probe["httpGet"]
        what = f"httpGet {get.get('scheme', 'HTTP')} :{get.get('port')}{get.get('path', '/')}"
    elif "tcpSocket" in probe:
        what = f"tcpSocket :{probe['tcpSocket'].get('port')}"
    elif "grpc" in probe:
        what = f"grpc :{probe['grpc'].get('port')}"
    elif "exec" in probe:
        what = "exec " + " ".join(probe["exec"].get("command") or ())
    else:
        what = "unknown handler"
    return (
        f"{what} period={probe.get('periodSeconds', 10)}s timeout={probe.get('timeoutSeconds', 1)}s "
        f"failureThreshold={probe.get('failureThreshold', 3)}"
    )


def _spec_containers(pod: Obj) -> dict[str, Obj]:
    spec = pod.get("spec") or {}
    return {c.get("name", ""): c for c in (*(spec.get("initContainers") or ()), *(spec.get("containers") or ()))}


def _spec_path(pod: Obj, container: str) -> str:
    spec = pod.get("spec") or {}
    if any(c.get("name") == container for c in spec.get("initContainers") or ()):
        return f"spec.initContainers[{container}]"
    return f"spec.containers[{container}]"


def _quick_healthy(status: Obj) -> bool:
    """The common case in one cheap pass: every container running and steady, pod Ready."""
    for cs in status.get("containerStatuses") or ():
        if "running" not in (cs.get("state") or ()) or (cs.get("restartCount") or 0) >= HIGH_RESTARTS:
            return False
        last = (cs.get("lastState") or {}).get("terminated")
        if last and last.get("reason") == "OOMKilled":
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
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


class PodDetector:
    name = "pod"
    # Workload kinds are read so pods roll up to their Deployment/StatefulSet/...
    kinds = frozenset({"Pod", "Node", *WORKLOAD_KINDS})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        now = snapshot.taken_at
        # Failed pods of a Job are its retries; the job detector reports the Job. Once a Job has
        # completed, its failed pods are history.
        complete_jobs = {
            (job.get("metadata") or {}).get("name")
            for job in snapshot.items("Job")
            if any(
                c.get("type") == "Complete" and c.get("status") == "True"
                for c in (job.get("status") or {}).get("conditions") or ()
            )
        }
        groups: dict[tuple[ResourceRef, str], list[tuple[Obj, _Hit]]] = {}
        targets: dict[str, ResourceRef] = {}  # controller uid -> roll-up target, shared by its pods
        for pod in snapshot.items("Pod"):
            hits = self._pod_hits(pod, snapshot, now, complete_jobs)
            if not hits:
                continue
            owner_uid = (controller_ref(pod) or {}).get("uid")
            target = targets.get(owner_uid) if owner_uid else None
            if target is None:
                target = snapshot.rollup_target(pod, "Pod")  # builds models: once per controller
                if target.kind == "Node":  # static (mirror) pods: the node is not their workload
                    meta = pod.get("metadata") or {}
                    target = ResourceRef(kind="Pod", name=meta.get("name", ""), namespace=meta.get("namespace"))
                elif owner_uid:
                    targets[owner_uid] = target
            for hit in hits:
                groups.setdefault((target, hit.problem), []).append((pod, hit))
        findings = [self._finding(snapshot, target, problem, members) for (target, problem), members in groups.items()]
        findings.sort(key=lambda f: (f.severity.rank, str(f.resource), f.id))
        return findings

    # --- per pod ---------------------------------------------------------------------------

    def _pod_hits(self, pod: Obj, snapshot: Snapshot, now: dt.datetime, complete_jobs: set) -> list[_Hit]:
        meta = pod.get("metadata") or {}
        status = pod.get("status")
        if meta.get("deletionTimestamp"):
            # A pod being deleted is going away; only report it if the deletion is stuck.
            hit = self._stuck_terminating(pod, now)
            return [hit] if hit else []
        if not status:
            return []
        phase = status.get("phase")
        if phase == "Succeeded" or (phase == "Running" and _quick_healthy(status)):
            return []
        owners = meta.get("ownerReferences") or ()
        job_owner = next((o.get("name") for o in owners if o.get("kind") == "Job"), None)
        if phase == "Failed" and job_owner in complete_jobs:
            return []

        if phase == "Failed" and (status.get("reason") == "Evicted" or status.get("reason") in SHUTDOWN_REASONS):
            # The kubelet stopped the pod from outside; its container states say nothing more.
            return [self._failed(pod)] if job_owner is None else []

        hits: list[_Hit] = []
        if phase == "Pending":
            hit = self._unschedulable(pod, now, snapshot)
            if hit:
                hits.append(hit)
        hits.extend(self._container_hits(pod, snapshot, now))
        if phase == "Failed" and not hits and job_owner is None:
            hits.append(self._failed(pod))
        elif phase == "Running" and not hits:
            hit = self._not_ready(pod, now)
            if hit:
                hits.append(hit)
        elif phase == "Pending" and not hits:
            hit = self._stuck_creating(pod, snapshot, now)
            if hit:
                hits.append(hit)
        return hits

    def _container_hits(self, pod: Obj, snapshot: Snapshot, now: dt.datetime) -> list[_Hit]:
        status = pod["status"]
        by_problem: dict[str, _Hit] = {}
        for list_field, is_init in (("initContainerStatuses", True), ("containerStatuses", False)):
            for cs in status.get(list_field) or ():
                hit = self._container_hit(pod, cs, list_field, is_init, snapshot, now)
                if hit is None:
                    continue
                first = by_problem.get(hit.problem)
                if first is None:
                    by_problem[hit.problem] = hit
                else:  # several containers of one pod with the same problem: one hit, all names
                    first.extra.append(hit.container)
                    if hit.severity.rank < first.severity.rank:
                        first.severity = hit.severity
        return list(by_problem.values())

    def _container_hit(
        self, pod: Obj, cs: Obj, list_field: str, is_init: bool, snapshot: Snapshot, now: dt.datetime
    ) -> _Hit | None:
        name = cs.get("name", "?")
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        restarts = cs.get("restartCount") or 0
        reason = waiting.get("reason")
        path = f"status.{list_field}[{name}]"
        oom_last = last.get("reason") == "OOMKilled"

        # A crash loop caused by OOM kills is reported as OOMKilled: the root cause, and the same
        # key whether the container is backing off or briefly running between kills.
        if reason in WAITING_PROBLEMS and not (reason == "CrashLoopBackOff" and oom_last):
            return self._waiting_hit(pod, cs, path, reason, waiting, last, restarts, is_init)
        if terminated.get("reason") == "OOMKilled":
            return self._oom_hit(pod, cs, path, "state", terminated, snapshot, now, running=False)
        if oom_last:
            return self._oom_hit(pod, cs, path, "lastState", last, snapshot, now, running="running" in state)
        if is_init and terminated and terminated.get("exitCode", 0) != 0:
            code = terminated.get("exitCode")
            evidence = [
                (f"{path}.state.terminated.reason", terminated.get("reason", "")),
                (f"{path}.state.terminated.exitCode", code),
            ]
            if terminated.get("message"):
                evidence.append((f"{path}.state.terminated.message", terminated["message"]))
            evidence.append((f"{path}.restartCount", restarts))
            fact = f"init container {name} failed ({terminated.get('reason', 'Error')}, exit code {code})"
            return _Hit("InitContainerFailed", Severity.critical, _fixed(fact, evidence), name)
        if "running" in state and restarts >= HIGH_RESTARTS:
            return self._restart_hit(pod, cs, path, last, restarts, snapshot, now)
        return None

    def _waiting_hit(
        self, pod: Obj, cs: Obj, path: str, reason: str, waiting: Obj, last: Obj, restarts: int, is_init: bool
    ) -> _Hit:
        name = cs.get("name", "?")
        key = WAITING_PROBLEMS[reason]
        # Init containers block the whole pod; same problem key family, distinct from app containers.
        problem = "Init" + key if is_init else key
        return _Hit(
            problem,
            Severity.critical,
            lambda: self._waiting_details(pod, cs, path, reason, key, waiting, last, restarts, is_init),
            name,
        )

    @staticmethod
    def _waiting_details(
        pod: Obj, cs: Obj, path: str, reason: str, problem: str, waiting: Obj, last: Obj, restarts: int, is_init: bool
    ) -> Details:
        name = cs.get("name", "?")
        message = waiting.get("message") or ""
        image = cs.get("image") or _spec_containers(pod).get(name, {}).get("image", "")
        evidence: list[tuple[str, object]] = [(f"{path}.state.waiting.reason", reason)]
        if message:
            evidence.append((f"{path}.state.waiting.message", message))
        evidence.append((f"{path}.restartCount", restarts))
        if last:
            evidence.append((f"{path}.lastState.terminated.reason", last.get("reason", "")))
            evidence.append((f"{path}.lastState.terminated.exitCode", last.get("exitCode", "")))
            if last.get("finishedAt"):
                evidence.append((f"{path}.lastState.terminated.finishedAt", last["finishedAt"]))
        if problem in ("ImagePull", "InvalidImageName"):
            evidence.append((f"{_spec_path(pod, name)}.image", image))

        kind = "init container" if is_init else "container"
        if problem == "CrashLoopBackOff":
            exit_part = (
                f", last exit {last.get('reason', 'Error')} code {last.get('exitCode')}" if last else ""
            )
            fact = f"{kind} {name} is in CrashLoopBackOff ({restarts} restarts{exit_part})"
        elif problem == "ImagePull":
            fact = f"{kind} {name} cannot pull image {image} ({reason})"
        elif problem == "InvalidImageName":
            fact = f"{kind} {name} has an invalid image name {image!r}"
        else:
            fact = f"{kind} {name} cannot start: {reason}" + (f": {shorten(message, 120)}" if message else "")
        return fact, evidence

    def _oom_hit(
        self,
        pod: Obj,
        cs: Obj,
        path: str,
        which: str,
        term: Obj,
        snapshot: Snapshot,
        now: dt.datetime,
        running: bool,
    ) -> _Hit:
        name = cs.get("name", "?")
        spec = _spec_containers(pod).get(name, {})
        limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        finished_age = seconds_since(now, term.get("finishedAt"))
        # Broken now: killed within the hour, or kept down by the kills (crash loop). A pod that ran on
        # after an old kill, or a dead pod from long ago, is a risk or history rather than an outage.
        crash_looping = not running and (pod.get("status") or {}).get("phase") != "Failed"
        if finished_age is None or finished_age <= RECENT_OOM_SECONDS or crash_looping:
            severity = Severity.critical
        elif finished_age <= RECENT_RESTART_SECONDS:
            severity = Severity.warning
        else:
            severity = Severity.info

        def render() -> Details:
            return self._oom_details(pod, cs, path, which, term, snapshot, limit, finished_age)

        return _Hit("OOMKilled", severity, render, name)

    @staticmethod
    def _oom_details(
        pod: Obj, cs: Obj, path: str, which: str, term: Obj, snapshot: Snapshot, limit: str | None, finished_age: float | None
    ) -> Details:
        name = cs.get("name", "?")
        evidence: list[tuple[str, object]] = [
            (f"{path}.{which}.terminated.reason", "OOMKilled"),
            (f"{path}.{which}.terminated.exitCode", term.get("exitCode", 137)),
        ]
        if term.get("finishedAt"):
            evidence.append((f"{path}.{which}.terminated.finishedAt", term["finishedAt"]))
        evidence.append((f"{path}.restartCount", cs.get("restartCount") or 0))
        evidence.append((f"{_spec_path(pod, name)}.resources.limits.memory", limit or "not set"))
        meta = pod.get("metadata") or {}
        metrics = snapshot.metrics.get((meta.get("namespace") or snapshot.namespace, meta.get("name", ""), name))
        if metrics and metrics.memory_working_set_bytes is not None:
            evidence.append(
                ("metric:container_memory_working_set_bytes", f"{metrics.memory_working_set_bytes / 2**20:.0f}Mi")
            )
        if metrics and metrics.memory_limit_bytes:
            evidence.append(("metric:container_spec_memory_limit_bytes", f"{metrics.memory_limit_bytes / 2**20:.0f}Mi"))
        when = f", {human_duration(finished_age)} ago" if finished_age is not None else ""
        fact = f"container {name} was OOMKilled (memory limit {limit or 'not set'}{when})"
        return fact, evidence

    def _restart_hit(
        self, pod: Obj, cs: Obj, path: str, last: Obj, restarts: int, snapshot: Snapshot, now: dt.datetime
    ) -> _Hit:
        name = cs.get("name", "?")
        meta = pod.get("metadata") or {}
        metrics = snapshot.metrics.get((meta.get("namespace") or snapshot.namespace, meta.get("name", ""), name))
        window_restarts = metrics.restarts if metrics else None
        if window_restarts is not None:
            still_restarting = window_restarts > 0
        else:
            last_age = seconds_since(now, last.get("finishedAt"))
            still_restarting = last_age is None or last_age <= RECENT_RESTART_SECONDS
        # Restarts that stopped long ago are hygiene, not a degradation happening now.
        severity = Severity.warning if still_restarting else Severity.info

        def render() -> Details:
            evidence: list[tuple[str, object]] = [(f"{path}.restartCount", restarts)]
            if last:
                evidence.append((f"{path}.lastState.terminated.reason", last.get("reason", "")))
                evidence.append((f"{path}.lastState.terminated.exitCode", last.get("exitCode", "")))
                if last.get("finishedAt"):
                    evidence.append((f"{path}.lastState.terminated.finishedAt", last["finishedAt"]))
            if window_restarts is not None:
                evidence.append(
                    ("metric:kube_pod_container_status_restarts_total", f"+{window_restarts:g} in {snapshot.metrics_window}")
                )
            exit_part = f"; last exit {last.get('reason', 'Error')} code {last.get('exitCode')}" if last else ""
            return f"container {name} has restarted {restarts} times{exit_part}", evidence

        return _Hit("Restarts", severity, render, name)

    def _unschedulable(self, pod: Obj, now: dt.datetime, snapshot: Snapshot) -> _Hit | None:
        cond = next(
            (c for c in pod["status"].get("conditions") or () if c.get("type") == "PodScheduled"), None
        )
        if not cond or cond.get("status") != "False" or cond.get("reason") != "Unschedulable":
            return None
        created = (pod.get("metadata") or {}).get("creationTimestamp")
        pending = seconds_since(now, created)
        if pending is None:
            pending = seconds_since(now, cond.get("lastTransitionTime")) or 0.0
        # A request larger than every node can ever offer will not be fixed by waiting: report it at once.
        oversized = _exceeds_every_node(pod, snapshot)
        if pending <= UNSCHEDULABLE_GRACE_SECONDS and not oversized:
            return None
        severity = (
            Severity.critical if oversized or pending > UNSCHEDULABLE_CRITICAL_SECONDS else Severity.warning
        )

        def render() -> Details:
            message = cond.get("message") or ""
            evidence: list[tuple[str, object]] = [
                ("status.phase", "Pending"),
                ("status.conditions[PodScheduled].reason", "Unschedulable"),
                ("status.conditions[PodScheduled].message", message),
                ("metadata.creationTimestamp", f"{created} (pending {human_duration(pending)})"),
            ]
            for resource, requested, largest in oversized:
                evidence.append((f"spec.containers[*].resources.requests.{resource}", f"{requested} > largest node allocatable {largest}"))
            if oversized:
                fact = "can never be scheduled: requests " + ", ".join(
                    f"{res} {req} but the largest node has {largest}" for res, req, largest in oversized
                )
            else:
                fact = f"unschedulable for {human_duration(pending)}" + (f": {shorten(message, 150)}" if message else "")
            return fact, evidence

        return _Hit("Unschedulable", severity, render)

    def _not_ready(self, pod: Obj, now: dt.datetime) -> _Hit | None:
        status = pod["status"]
        conds = {c.get("type"): c for c in status.get("conditions") or ()}
        ready = conds.get("Ready")
        if not ready or ready.get("status") != "False":
            return None
        since = seconds_since(now, ready.get("lastTransitionTime"))
        if since is None or since <= GRACE_SECONDS:
            return None
        unready = [cs for cs in status.get("containerStatuses") or () if not cs.get("ready")]
        return _Hit(
            "NotReady",
            Severity.warning,
            lambda: self._not_ready_details(pod, conds, ready, unready, since),
            unready[0].get("name", "") if unready else "",
        )

    @staticmethod
    def _not_ready_details(pod: Obj, conds: dict, ready: Obj, unready: list[Obj], since: float) -> Details:
        evidence: list[tuple[str, object]] = [("status.conditions[Ready].status", "False")]
        if ready.get("reason"):
            evidence.append(("status.conditions[Ready].reason", ready["reason"]))
        if ready.get("message"):
            evidence.append(("status.conditions[Ready].message", ready["message"]))
        evidence.append(("status.conditions[Ready].lastTransitionTime", ready.get("lastTransitionTime", "")))
        specs = _spec_containers(pod)
        for cs in unready[:3]:
            cname = cs.get("name", "?")
            evidence.append((f"status.containerStatuses[{cname}].ready", "False"))
            spec = specs.get(cname, {})
            evidence.append((f"spec.containers[{cname}].readinessProbe", _probe_summary(spec.get("readinessProbe"))))
            if spec.get("startupProbe") and not cs.get("started", True):
                evidence.append((f"spec.containers[{cname}].startupProbe", _probe_summary(spec["startupProbe"])))
        # Readiness gates (e.g. a load balancer's target health) can hold a pod unready on their own.
        for gate in (pod.get("spec") or {}).get("readinessGates") or ():
            gate_cond = conds.get(gate.get("conditionType"))
            if gate_cond is None or gate_cond.get("status") != "True":
                evidence.append(
                    (f"status.conditions[{gate.get('conditionType')}].status", (gate_cond or {}).get("status", "missing"))
                )
        names = ", ".join(cs.get("name", "?") for cs in unready) or "readiness gates"
        return f"running but not Ready for {human_duration(since)} (unready: {names})", evidence

    def _failed(self, pod: Obj) -> _Hit:
        status = pod["status"]
        reason = status.get("reason") or ""
        message = status.get("message") or ""
        evidence: list[tuple[str, object]] = [("status.phase", "Failed")]
        if reason:
            evidence.append(("status.reason", reason))
        if message:
            evidence.append(("status.message", message))
        if reason == "Evicted":
            return _Hit("Evicted", Severity.warning, _fixed(f"evicted: {shorten(message or reason, 150)}", evidence))
        if reason in SHUTDOWN_REASONS:
            fact = f"stopped by node shutdown: {shorten(message or reason, 150)}"
            return _Hit("NodeShutdown", Severity.info, _fixed(fact, evidence))
        container = ""
        for cs in status.get("containerStatuses") or ():
            term = (cs.get("state") or {}).get("terminated") or {}
            if term and term.get("exitCode", 0) != 0:
                path = f"status.containerStatuses[{cs.get('name', '?')}].state.terminated"
                evidence.append((f"{path}.reason", term.get("reason", "")))
                evidence.append((f"{path}.exitCode", term.get("exitCode")))
                container = container or cs.get("name", "")
        what = reason or (f"container {container} exited with an error" if container else "phase Failed")
        fact = f"failed: {shorten(what + (': ' + message if message else ''), 150)}"
        return _Hit("Failed", Severity.warning, _fixed(fact, evidence), container)

    def _stuck_terminating(self, pod: Obj, now: dt.datetime) -> _Hit | None:
        meta = pod.get("metadata") or {}
        # deletionTimestamp is when the grace period ends, so "over" is time past the grace period.
        over = seconds_since(now, meta.get("deletionTimestamp"))
        if over is None or over <= GRACE_SECONDS:
            return None
        evidence: list[tuple[str, object]] = [
            ("metadata.deletionTimestamp", meta.get("deletionTimestamp")),
            ("metadata.deletionGracePeriodSeconds", meta.get("deletionGracePeriodSeconds", "")),
        ]
        if meta.get("finalizers"):
            evidence.append(("metadata.finalizers", ", ".join(meta["finalizers"])))
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            evidence.append(("spec.nodeName", node))
        evidence.append(("status.phase", (pod.get("status") or {}).get("phase", "")))
        fact = f"stuck Terminating {human_duration(over)} past its grace period"
        if meta.get("finalizers"):
            fact += f" (finalizers: {', '.join(meta['finalizers'])})"
        return _Hit("StuckTerminating", Severity.warning, _fixed(fact, evidence))

    def _stuck_creating(self, pod: Obj, snapshot: Snapshot, now: dt.datetime) -> _Hit | None:
        status = pod["status"]
        scheduled = next((c for c in status.get("conditions") or () if c.get("type") == "PodScheduled"), None)
        if not scheduled or scheduled.get("status") != "True":
            return None
        since = seconds_since(now, scheduled.get("lastTransitionTime"))
        if since is None or since <= GRACE_SECONDS:
            return None
        creating = [
            cs
            for cs in (*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ()))
            if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in ("ContainerCreating", "PodInitializing")
        ]
        events = [
            e
            for e in snapshot.events_for("Pod", (pod.get("metadata") or {}).get("name", ""))
            if e.get("reason") in VOLUME_EVENT_REASONS
        ]
        # Slow image pulls also sit in ContainerCreating; only a Warning event proves it is stuck.
        if not creating or not events:
            return None
        cs = creating[0]
        evidence: list[tuple[str, object]] = [
            (f"status.containerStatuses[{cs.get('name', '?')}].state.waiting.reason", cs["state"]["waiting"]["reason"]),
            ("status.conditions[PodScheduled].lastTransitionTime", scheduled.get("lastTransitionTime", "")),
        ]
        message = events[0].get("message") or events[0].get("reason", "")
        fact = f"stuck in ContainerCreating for {human_duration(since)}: {shorten(message, 140)}"
        return _Hit("ContainerCreating", Severity.warning, _fixed(fact, evidence), cs.get("name", ""))

    # --- roll-up ---------------------------------------------------------------------------

    def _finding(self, snapshot: Snapshot, target: ResourceRef, problem: str, members: list[tuple[Obj, _Hit]]) -> Finding:
        members.sort(key=lambda m: (m[1].severity.rank, (m[0].get("metadata") or {}).get("name", "")))
        rep_pod, rep = members[0]
        rep_name = (rep_pod.get("metadata") or {}).get("name", "")
        names = sorted((p.get("metadata") or {}).get("name", "") for p, _ in members)
        rolled = target.kind != "Pod"
        count = len(members)
        if not rolled:
            subject = f"Pod {target.name}"
        elif count == 1:
            subject = f"Pod {rep_name} of {target.kind} {target.name}"
        else:
            subject = f"{count} pods of {target.kind} {target.name}"
        fact, details = rep.render()
        if rep.extra:
            fact += f" (also containers {', '.join(rep.extra)})"
        title = f"{subject}: {fact}"

        prefix = f"{rep_name}: " if rolled else ""
        evidence: list[tuple[str, object]] = [(src, f"{prefix}{val}") for src, val in details[:13]]
        info = _PROBLEMS.get(problem) or _PROBLEMS[problem.removeprefix("Init")]
        events: list[Obj] = []
        for pod, _hit in members:
            events.extend(snapshot.events_for("Pod", (pod.get("metadata") or {}).get("name", "")))
        evidence.extend(event_evidence(events, info.events, limit=4))
        if rolled:
            evidence.append(("pods", examples(names)))

        obj = snapshot.get(target.kind, target.name, target.namespace) if rolled else None
        ns = target.namespace or snapshot.namespace
        workload = kubectl_ref(target.kind, target.name)
        remediation = info.remediation.format(ns=ns, pod=rep_name, container=rep.container or "<container>", workload=workload)
        return finding(
            detector=self.name,
            severity=rep.severity,
            resource=target,
            problem=problem,
            title=title,
            evidence=evidence,
            remediation=remediation,
            docs=info.docs,
            owners=snapshot.owner_chain(obj) if obj is not None else [],
            affected=count,
        )


DETECTOR = PodDetector()


def _exceeds_every_node(pod: Obj, snapshot: Snapshot) -> list[tuple[str, str, str]]:
    """(resource, requested, largest allocatable) for requests no gathered node could ever satisfy."""
    nodes = snapshot.items("Node")
    if not nodes:
        return []
    over: list[tuple[str, str, str]] = []
    for resource in ("cpu", "memory"):
        total = Decimal(0)
        for container in (pod.get("spec") or {}).get("containers") or ():
            value = quantity_or_none(((container.get("resources") or {}).get("requests") or {}).get(resource))
            total += value or 0
        if not total:
            continue
        allocatable = [
            quantity_or_none(((n.get("status") or {}).get("allocatable") or {}).get(resource)) for n in nodes
        ]
        largest = max((a for a in allocatable if a is not None), default=None)
        if largest is not None and total > largest:
            over.append((resource, f"{total.normalize():f}", f"{largest.normalize():f}"))
    return over
