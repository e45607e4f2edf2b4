"""Pods and pod templates: readiness, container states, where each workload kind keeps its pod spec."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from infragenius.kube.meta import Obj, labels_of, meta
from infragenius.kube.time import seconds_since

#: Pods younger than this are still starting; not being ready yet is not a problem.
STARTING_GRACE_SECONDS = 180.0

#: Waiting reasons that mean a container has failed, not that it is still starting.
FAILED_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)

#: Where each kind keeps its pod spec (also its field path for evidence).
SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


#: A container Ready only because it has no readiness probe, running for less than this after an error
#: exit, is between two crashes rather than recovered (the kubelet shows it so between back-offs).
RESTART_SETTLE_SECONDS = 60.0


def between_crashes(cs: Obj, now: dt.datetime) -> bool:
    """Running again for under ``RESTART_SETTLE_SECONDS`` after an error exit, having restarted."""
    running = (cs.get("state") or {}).get("running")
    last = (cs.get("lastState") or {}).get("terminated") or {}
    if running is None or not last.get("exitCode") or (cs.get("restartCount") or 0) < 1:
        return False
    up_for = seconds_since(now, running.get("startedAt"))
    return up_for is not None and up_for <= RESTART_SETTLE_SECONDS


def pod_ready(pod: Obj) -> bool:
    """The pod's Ready condition is True (what Services and rollouts count)."""
    # The loop of condition()/is_true() inlined: it runs for every pod of every analysis.
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def container_statuses(pod: Obj) -> list[Obj]:
    """Regular then init container statuses."""
    status = pod.get("status") or {}
    return [*(status.get("containerStatuses") or ()), *(status.get("initContainerStatuses") or ())]


def has_failed_container(pod: Obj) -> bool:
    """A container waits for a reason that will not clear by itself (crash loop, bad image, ...)."""
    return any(
        ((cs.get("state") or {}).get("waiting") or {}).get("reason") in FAILED_WAITING_REASONS
        for cs in container_statuses(pod)
    )


def is_starting(pod: Obj | None, now: dt.datetime) -> bool:
    """Created within the grace period and not already failing (a rollout's new pod, not a broken one)."""
    if pod is None or has_failed_container(pod):
        return False
    age = seconds_since(now, meta(pod).get("creationTimestamp"))
    return age is not None and age < STARTING_GRACE_SECONDS


def pod_spec(obj: Obj, kind: str) -> Mapping[str, Any]:
    """The pod spec of a Pod or of a workload's pod template."""
    current: Mapping[str, Any] = obj
    for part in SPEC_PATHS[kind]:
        current = current.get(part) or {}
    return current


def spec_path(kind: str) -> str:
    return ".".join(SPEC_PATHS[kind])


def template_labels(obj: Obj, kind: str) -> Mapping[str, str]:
    """Labels the pods of a workload get (from the pod template's metadata)."""
    if kind == "Pod":
        return labels_of(obj)
    current: Any = obj
    for part in (*SPEC_PATHS[kind][:-1], "metadata"):
        current = (current or {}).get(part) or {}
    labels: Mapping[str, str] = current.get("labels") or {}
    return labels


def template_containers(workload: Obj) -> list[Obj]:
    """Containers of a workload's ``spec.template`` (Deployment, ReplicaSet, StatefulSet, ...)."""
    spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(spec.get("containers") or ())


def containers(spec: Mapping[str, Any], init: bool = True) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(field name, container) for regular, and optionally init and ephemeral, containers."""
    fields = ("containers", "initContainers", "ephemeralContainers") if init else ("containers",)
    for field_name in fields:
        for container in spec.get(field_name) or []:
            yield field_name, container
