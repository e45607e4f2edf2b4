"""The pod problem table: per problem, its docs, remediation template and the events that explain it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from infragenius.detectors.evidence import DOCS
from infragenius.models.findings import Severity

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
#: A running container that is not Ready, restarted at least this many times and last exited with an error
#: this recently is crash-looping between back-offs: the kubelet reports ``terminated: Error`` and a rising
#: restartCount before (and between) ``waiting: CrashLoopBackOff``. The back-off is capped at 5 minutes.
CRASH_MIN_RESTARTS = 2
CRASH_RECENT_SECONDS = 600.0
#: Restarts (or an OOM kill) older than this are history: reported as info, not warning.
RECENT_RESTART_SECONDS = 86400.0
#: Failure reasons kubelet sets when a node shuts down gracefully: leftovers, not faults.
SHUTDOWN_REASONS = frozenset({"NodeShutdown", "Shutdown", "Terminated"})
VOLUME_EVENT_REASONS = frozenset(
    {"FailedMount", "FailedAttachVolume", "FailedMapVolume", "FailedCreatePodSandBox", "FailedSync"}
)


@dataclass(frozen=True)
class PodProblem:
    docs: str
    remediation: str  # format fields: ns, pod, container, workload
    events: frozenset[str] | None


_PULL_EVENTS = frozenset({"Failed", "BackOff", "ErrImagePull", "InspectFailed", "ErrImageNeverPull"})
PROBLEMS: dict[str, PodProblem] = {
    "Unschedulable": PodProblem(
        f"{DOCS}/concepts/scheduling-eviction/kube-scheduler/",
        "The scheduler's message says which constraint fails. Lower the pod's resource requests, add node "
        "capacity, or relax nodeSelector/affinity/tolerations; check with: kubectl describe pod -n {ns} {pod}",
        frozenset({"FailedScheduling"}),
    ),
    "CrashLoopBackOff": PodProblem(
        f"{DOCS}/concepts/workloads/pods/pod-lifecycle/#container-restarts",
        "Read the output of the crashed run: kubectl logs -n {ns} {pod} -c {container} --previous. Fix the "
        "application error or its configuration (env, ConfigMaps, Secrets, command), then roll out again.",
        frozenset({"BackOff", "Unhealthy", "Failed", "Killing"}),
    ),
    "ImagePull": PodProblem(
        f"{DOCS}/concepts/containers/images/",
        "Check the image name and tag exist in the registry and that the pod can authenticate "
        "(spec.imagePullSecrets); kubectl describe pod -n {ns} {pod} shows the registry's answer. "
        "Then fix the image: kubectl set image -n {ns} {workload} {container}=<image>",
        _PULL_EVENTS,
    ),
    "InvalidImageName": PodProblem(
        f"{DOCS}/concepts/containers/images/#image-names",
        "The image reference cannot be parsed (check for upper case, spaces or a bad tag/digest). "
        "Fix it: kubectl set image -n {ns} {workload} {container}=<registry>/<repo>:<tag>",
        _PULL_EVENTS,
    ),
    "CreateContainerConfigError": PodProblem(
        f"{DOCS}/tasks/configure-pod-container/configure-pod-configmap/",
        "A ConfigMap, Secret or key the container references (env, envFrom, volume) is missing. Create it in "
        "namespace {ns} or fix the reference; kubectl describe pod -n {ns} {pod} names it.",
        frozenset({"Failed"}),
    ),
    "CreateContainerError": PodProblem(
        f"{DOCS}/tasks/debug/debug-application/debug-pods/",
        "The runtime could not create the container (often a bad command, volume subPath or security "
        "context). kubectl describe pod -n {ns} {pod} shows the runtime error.",
        frozenset({"Failed"}),
    ),
    "RunContainerError": PodProblem(
        f"{DOCS}/tasks/debug/debug-application/debug-pods/",
        "The container process failed to start (missing executable in the image, wrong command or "
        "permissions). Check spec.containers[{container}].command/args against the image.",
        frozenset({"Failed", "BackOff"}),
    ),
    "OOMKilled": PodProblem(
        f"{DOCS}/tasks/configure-pod-container/assign-memory-resource/#exceed-a-container-s-memory-limit",
        "The container used more memory than its limit. Raise resources.limits.memory (and requests) for "
        "container {container} to cover its peak, or reduce the application's memory use (heap sizes, caches).",
        frozenset({"BackOff", "OOMKilling", "Killing"}),
    ),
    "InitContainerFailed": PodProblem(
        f"{DOCS}/concepts/workloads/pods/init-containers/",
        "The pod cannot start until init container {container} succeeds. Read its output: "
        "kubectl logs -n {ns} {pod} -c {container}",
        frozenset({"BackOff", "Failed"}),
    ),
    "NotReady": PodProblem(
        f"{DOCS}/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/",
        "The pod runs but fails its readiness check, so Services send it no traffic. Compare the probe "
        "(path, port, timeouts) with what the application serves; kubectl describe pod -n {ns} {pod} shows "
        "the probe failures.",
        frozenset({"Unhealthy", "ProbeWarning"}),
    ),
    "Restarts": PodProblem(
        f"{DOCS}/concepts/workloads/pods/pod-lifecycle/#container-restarts",
        "The container keeps restarting. Read the previous run: kubectl logs -n {ns} {pod} -c {container} "
        "--previous, and check liveness probe failures in kubectl describe pod -n {ns} {pod}.",
        frozenset({"BackOff", "Unhealthy", "Killing"}),
    ),
    "Evicted": PodProblem(
        f"{DOCS}/concepts/scheduling-eviction/node-pressure-eviction/",
        "The kubelet evicted the pod under node resource pressure. Set memory/ephemeral-storage requests "
        "close to real use so the scheduler places pods correctly, and delete the leftovers: "
        "kubectl delete pod -n {ns} --field-selector=status.phase=Failed",
        frozenset({"Evicted"}),
    ),
    "Failed": PodProblem(
        f"{DOCS}/concepts/workloads/pods/pod-lifecycle/#pod-phase",
        "The pod ended in phase Failed. Read its containers' exit codes and output "
        "(kubectl logs -n {ns} {pod} -c {container}); delete it once understood.",
        None,
    ),
    "NodeShutdown": PodProblem(
        f"{DOCS}/concepts/cluster-administration/node-shutdown/",
        "Pods stopped by a node shutdown stay in phase Failed; their controller has replaced them. "
        "Clean up: kubectl delete pod -n {ns} --field-selector=status.phase=Failed",
        None,
    ),
    "StuckTerminating": PodProblem(
        f"{DOCS}/concepts/workloads/pods/pod-lifecycle/#pod-termination",
        "The pod is past its termination grace period. Check its node is Ready and whether finalizers block "
        "deletion (kubectl get pod -n {ns} {pod} -o jsonpath='{{.metadata.finalizers}}'); as a last resort: "
        "kubectl delete pod -n {ns} {pod} --grace-period=0 --force",
        frozenset({"FailedKillPod", "FailedPreStopHook"}),
    ),
    "ContainerCreating": PodProblem(
        f"{DOCS}/concepts/storage/volumes/",
        "The pod is scheduled but its containers cannot be created; the events say why (volume mount or "
        "attach failures, sandbox/network errors). kubectl describe pod -n {ns} {pod}",
        VOLUME_EVENT_REASONS,
    ),
}


Details = tuple[str, list[tuple[str, object]]]  # (the concrete fact, phrased for the title; evidence)


@dataclass
class Hit:
    """One problem observed on one pod.

    ``render`` builds the title fact and evidence; only the example pod of a roll-up
    needs them, so a Deployment with 5,000 crashing pods formats one pod's details.
    """

    problem: str
    severity: Severity
    render: Callable[[], Details]
    container: str = ""
    extra: list[str] = field(default_factory=list)  # other containers with the same problem


def fixed(fact: str, evidence: list[tuple[str, object]]) -> Callable[[], Details]:
    return lambda: (fact, evidence)
