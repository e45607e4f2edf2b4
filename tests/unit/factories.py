"""The one set of test factories: raw API objects as `kubectl get -o json` returns them, and snapshots.

One clock (NOW: every timestamp is ``ts(seconds_ago)`` before it) and one uid scheme (``uid(kind, name,
namespace)``), so objects built for any detector's test fit together. The controller builders (deployment,
replicaset, ...) set status counters and conditions for the workload detectors; the ``app_*`` builders make a
well-behaved app (pinned image, probes, requests, non-root) for the infra and best-practice detectors.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import ContainerLog, ContainerMetrics, GatherResult, Snapshot

NS = "shop"
NOW = dt.datetime(2025, 1, 15, 12, 0, 0, tzinfo=dt.UTC)
DAY = 86400

Obj = dict[str, Any]


# --- clock, ids, metadata ----------------------------------------------------------------------


def ts(seconds_ago: float) -> str:
    """RFC 3339 timestamp ``seconds_ago`` before NOW (negative means in the future)."""
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def uid(kind: str, name: str, namespace: str | None = NS) -> str:
    return f"uid-{kind.lower()}-{namespace or 'cluster'}-{name}"


def owner_ref(kind: str, name: str, namespace: str | None = NS) -> Obj:
    api = {
        "ReplicaSet": "apps/v1",
        "Deployment": "apps/v1",
        "StatefulSet": "apps/v1",
        "DaemonSet": "apps/v1",
        "Job": "batch/v1",
        "CronJob": "batch/v1",
    }.get(kind, "v1")
    return {
        "apiVersion": api,
        "kind": kind,
        "name": name,
        "uid": uid(kind, name, namespace),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    kind: str,
    name: str,
    namespace: str | None = NS,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owner: Obj | tuple[str, str] | None = None,
    age: float = DAY,
    **extra: Any,
) -> Obj:
    """``owner`` is an ownerReference, or (kind, name) of a controller in the same namespace."""
    meta: Obj = {
        "name": name,
        "uid": uid(kind, name, namespace),
        "creationTimestamp": ts(age),
        "resourceVersion": "1",
        "generation": 1,
    }
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        meta["ownerReferences"] = [owner_ref(*owner, namespace) if isinstance(owner, tuple) else owner]
    meta.update(extra)
    return meta


def cond(type_: str, status: str = "True", reason: str = "", message: str = "", ago: float = DAY, **extra: Any) -> Obj:
    c: Obj = {"type": type_, "status": status, "lastTransitionTime": ts(ago)}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    c.update(extra)
    return c


def event(
    kind: str,
    name: str,
    reason: str,
    message: str,
    count: int = 1,
    ago: float = 60,
    *,
    type_: str = "Warning",
    series_count: int | None = None,
    namespace: str | None = NS,
    first_ago: float | None = None,
) -> Obj:
    """A core/v1 Event last seen ``ago`` seconds before NOW, first seen ``first_ago`` (default 10 minutes
    earlier); ``series_count`` makes it a series."""
    ev: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{reason.lower()}", "namespace": namespace or "default"},
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace, "uid": uid(kind, name, namespace)},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "firstTimestamp": ts(ago + 600 if first_ago is None else first_ago),
        "lastTimestamp": ts(ago),
    }
    if series_count is not None:
        ev["series"] = {"count": series_count, "lastObservedTime": ts(ago)}
        ev["lastTimestamp"] = None
    return ev


# --- controllers and their pods (status counters and conditions) --------------------------------


def container(name: str = "app", image: str = "shop/web:1.0", **extra: Any) -> Obj:
    c: Obj = {"name": name, "image": image, "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                          "limits": {"memory": "256Mi"}}}  # fmt: skip
    c.update(extra)
    return c


def template(containers: list[Obj] | None = None, labels: Obj | None = None) -> Obj:
    return {"metadata": {"labels": labels or {"app": "web"}}, "spec": {"containers": containers or [container()]}}


# --- pods ------------------------------------------------------------------------------------


def cstatus(
    name: str = "app",
    *,
    waiting: str | None = None,
    message: str | None = None,
    terminated: Obj | None = None,
    last: Obj | None = None,
    restarts: int = 0,
    ready: bool | None = None,
    image: str = "shop/web:1.0",
    started_ago: float = DAY,
) -> Obj:
    """A containerStatus; running unless ``waiting`` or ``terminated`` is given."""
    if waiting:
        state: Obj = {"waiting": {"reason": waiting, **({"message": message} if message else {})}}
    elif terminated:
        state = {"terminated": terminated}
    else:
        state = {"running": {"startedAt": ts(started_ago)}}
    cs: Obj = {
        "name": name,
        "image": image,
        "imageID": "",
        "state": state,
        "lastState": {"terminated": last} if last else {},
        "restartCount": restarts,
        "ready": bool(ready) if ready is not None else "running" in state,
        "started": "running" in state,
    }
    return cs


def terminated(reason: str = "Error", exit_code: int = 1, ago: float = 60, **extra: Any) -> Obj:
    t: Obj = {"reason": reason, "exitCode": exit_code, "startedAt": ts(ago + 30), "finishedAt": ts(ago)}
    t.update(extra)
    return t


def pod(
    name: str,
    owner: tuple[str, str] | None = None,
    *,
    phase: str = "Running",
    statuses: list[Obj] | None = None,
    init_statuses: list[Obj] | None = None,
    conditions: list[Obj] | None = None,
    containers: list[Obj] | None = None,
    age: float = DAY,
    ready: bool = True,
    reason: str | None = None,
    message: str | None = None,
    labels: Obj | None = None,
    node: str = "node-1",
    **meta_extra: Any,
) -> Obj:
    statuses = statuses if statuses is not None else ([cstatus()] if phase == "Running" else [])
    if conditions is None:
        conditions = [cond("PodScheduled", ago=age)]
        if phase == "Running":
            conditions += [
                cond("Initialized", ago=age),
                cond("ContainersReady", "True" if ready else "False", ago=age if ready else 600),
                cond("Ready", "True" if ready else "False", ago=age if ready else 600),
            ]
    status: Obj = {"phase": phase, "conditions": conditions, "containerStatuses": statuses, "startTime": ts(age)}
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata("Pod", name, labels=labels or {"app": "web"}, owner=owner, age=age, **meta_extra),
        "spec": {"containers": containers or [container()], "nodeName": node, "restartPolicy": "Always"},
        "status": status,
    }


# --- controllers -----------------------------------------------------------------------------


def deployment(
    name: str = "web",
    replicas: int = 3,
    *,
    available: int | None = None,
    ready: int | None = None,
    updated: int | None = None,
    conditions: list[Obj] | None = None,
    paused: bool = False,
    deadline: int = 600,
    image: str = "shop/web:1.0",
    containers: list[Obj] | None = None,
    age: float = DAY,
    with_status: bool = True,
) -> Obj:
    available = replicas if available is None else available
    ready = available if ready is None else ready
    updated = replicas if updated is None else updated
    obj: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata("Deployment", name, age=age),
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": {"app": name}},
            "template": template(containers or [container(image=image)], {"app": name}),
            **({"paused": True} if paused else {}),
        },
    }
    if with_status:
        obj["status"] = {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions
            if conditions is not None
            else [
                cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                cond(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}-abc" has successfully progressed.',
                    lastUpdateTime=ts(DAY),
                ),
            ],  # fmt: skip
        }
        if replicas - available > 0:
            obj["status"]["unavailableReplicas"] = replicas - available
    return obj


def replicaset(
    name: str,
    deploy: str | None = None,
    replicas: int = 3,
    *,
    ready: int | None = None,
    revision: int = 1,
    image: str = "shop/web:1.0",
    conditions: list[Obj] | None = None,
    age: float = DAY,
    owner: tuple[str, str] | None = None,
    pod_template: Obj | None = None,
) -> Obj:
    ready = replicas if ready is None else ready
    m = metadata("ReplicaSet", name, owner=owner or (("Deployment", deploy) if deploy else None), age=age)
    m["annotations"] = {"deployment.kubernetes.io/revision": str(revision)}
    status: Obj = {"observedGeneration": 1, "replicas": replicas, "readyReplicas": ready, "availableReplicas": ready}
    if conditions:
        status["conditions"] = conditions
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": m,
        "spec": {"replicas": replicas, "template": pod_template or template([container(image=image)])},
        "status": status,
    }


def statefulset(
    name: str = "db",
    replicas: int = 3,
    *,
    ready: int | None = None,
    service: str | None = "db",
    storage_class: str | None = None,
    current_rev: str = "db-1",
    update_rev: str = "db-1",
    updated: int | None = None,
    strategy: Obj | None = None,
    age: float = DAY,
) -> Obj:
    ready = replicas if ready is None else ready
    spec: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": template([container(image="shop/db:15")], {"app": name}),
        "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "podManagementPolicy": "OrderedReady",
    }
    if service is not None:
        spec["serviceName"] = service
    if storage_class is not None:
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data"},
                "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"]},
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata("StatefulSet", name, age=age),
        "spec": spec,
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "currentReplicas": replicas,
            "updatedReplicas": replicas if updated is None else updated,
            "currentRevision": current_rev,
            "updateRevision": update_rev,
        },
    }


def daemonset(
    name: str = "agent",
    desired: int = 3,
    *,
    ready: int | None = None,
    unavailable: int | None = None,
    misscheduled: int = 0,
    age: float = DAY,
) -> Obj:
    ready = desired if ready is None else ready
    unavailable = desired - ready if unavailable is None else unavailable
    status: Obj = {
        "observedGeneration": 1,
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": desired,
        "numberReady": ready,
        "numberAvailable": ready,
        "updatedNumberScheduled": desired,
        "numberMisscheduled": misscheduled,
    }
    if unavailable:
        status["numberUnavailable"] = unavailable
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata("DaemonSet", name, age=age),
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": template([container(image="shop/agent:2")])},
        "status": status,
    }


def job(
    name: str,
    *,
    cronjob: str | None = None,
    conditions: list[Obj] | None = None,
    active: int = 0,
    succeeded: int = 0,
    failed: int = 0,
    started_ago: float = 3600,
    suspend: bool = False,
    active_deadline: int | None = None,
    backoff: int = 6,
) -> Obj:
    spec: Obj = {"backoffLimit": backoff, "template": template([container(image="shop/batch:1")])}
    if suspend:
        spec["suspend"] = True
    if active_deadline is not None:
        spec["activeDeadlineSeconds"] = active_deadline
    status: Obj = {"startTime": ts(started_ago)}
    for key, value in (("active", active), ("succeeded", succeeded), ("failed", failed)):
        if value:
            status[key] = value
    if conditions:
        status["conditions"] = conditions
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata("Job", name, owner=("CronJob", cronjob) if cronjob else None, age=started_ago),
        "spec": spec,
        "status": status,
    }


def failed_job(name: str, reason: str = "BackoffLimitExceeded", ago: float = 600, **kw: Any) -> Obj:
    message = {
        "BackoffLimitExceeded": "Job has reached the specified backoff limit",
        "DeadlineExceeded": "Job was active longer than specified deadline",
    }.get(reason, reason)
    return job(name, conditions=[cond("Failed", "True", reason, message, ago=ago)], failed=kw.pop("failed", 7), **kw)


def complete_job(name: str, ago: float = 600, **kw: Any) -> Obj:
    return job(name, conditions=[cond("Complete", "True", ago=ago)], succeeded=1, **kw)


def cronjob(
    name: str = "backup",
    schedule: str = "0 3 * * *",
    *,
    suspend: bool = False,
    starting_deadline: int | None = None,
    time_zone: str | None = None,
) -> Obj:
    spec: Obj = {
        "schedule": schedule,
        "jobTemplate": {"spec": {"template": template([container(image="shop/batch:1")])}},
    }
    if suspend:
        spec["suspend"] = True
    if starting_deadline is not None:
        spec["startingDeadlineSeconds"] = starting_deadline
    if time_zone:
        spec["timeZone"] = time_zone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata("CronJob", name),
        "spec": spec,
        "status": {"lastScheduleTime": ts(3600), "lastSuccessfulTime": ts(3600)},
    }


def hpa(
    name: str = "web",
    target: str = "web",
    *,
    kind: str = "Deployment",
    min_replicas: int = 2,
    max_replicas: int = 10,
    current: int = 2,
    desired: int | None = None,
    conditions: list[Obj] | None = None,
    metrics: list[Obj] | None = None,
    with_status: bool = True,
) -> Obj:
    obj: Obj = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata("HorizontalPodAutoscaler", name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": metrics
            if metrics is not None
            else [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }
    if with_status:
        obj["status"] = {
            "currentReplicas": current,
            "desiredReplicas": current if desired is None else desired,
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 30}}}
            ],
            "conditions": conditions
            if conditions is not None
            else [
                cond("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"),
                cond(
                    "ScalingActive",
                    "True",
                    "ValidMetricFound",
                    "the HPA was able to successfully calculate a replica count",
                ),
                cond(
                    "ScalingLimited",
                    "True",
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                ),
            ],  # fmt: skip
        }
    return obj


def pdb(
    name: str = "web",
    *,
    min_available: int | str | None = 2,
    max_unavailable: int | str | None = None,
    allowed: int = 1,
    healthy: int = 3,
    desired: int = 2,
    expected: int = 3,
    observed: bool = True,
    conditions: list[Obj] | None = None,
) -> Obj:
    spec: Obj = {"selector": {"matchLabels": {"app": "web"}}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    status: Obj = {
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
    }
    if observed:
        status["observedGeneration"] = 1
        status["conditions"] = conditions or [
            cond(
                "DisruptionAllowed", "True" if allowed else "False", "SufficientPods" if allowed else "InsufficientPods"
            )
        ]
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata("PodDisruptionBudget", name),
            "spec": spec, "status": status}  # fmt: skip


# --- a well-behaved app (pod templates), networking, storage, cluster ---------------------------


def app_container(
    name: str = "app",
    image: str = "registry.example.com/shop/app:1.4.2",
    *,
    ports: list[Obj] | None = None,
    resources: Obj | None = None,
    readiness: bool = True,
    **extra: Any,
) -> Obj:
    """A well-behaved container by default (pinned image, requests+limits, readiness, non-root)."""
    c: Obj = {
        "name": name,
        "image": image,
        "ports": ports if ports is not None else [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "resources": resources
        if resources is not None
        else {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
    }
    if readiness:
        c["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}
    c.update(extra)
    return c


def pod_spec(*containers: Obj, **extra: Any) -> Obj:
    spec: Obj = {"containers": list(containers) or [app_container()], "restartPolicy": "Always"}
    spec.update(extra)
    return spec


def app_pod(
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    owner: Obj | None = None,
    ready: bool = True,
    node: str = "node-1",
    phase: str = "Running",
    spec: Obj | None = None,
    age: float = 3600,
    namespace: str = NS,
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata("Pod", name, namespace, labels or {"app": "web"}, owner=owner, age=age),
        "spec": {**copy.deepcopy(spec or pod_spec()), "nodeName": node},
        "status": {
            "phase": phase,
            "podIP": "10.0.0.1",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ts(age)},
                {"type": "ContainersReady", "status": "True" if ready else "False"},
                {"type": "PodScheduled", "status": "True"},
            ],
        },
    }


def app_template(labels: Mapping[str, str], spec: Obj | None = None) -> Obj:
    return {"metadata": {"labels": dict(labels)}, "spec": copy.deepcopy(spec or pod_spec())}


def app_deployment(
    name: str,
    labels: Mapping[str, str] | None = None,
    *,
    replicas: int = 3,
    spec: Obj | None = None,
    namespace: str = NS,
) -> Obj:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata("Deployment", name, namespace, labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": app_template(labels, spec),
        },
        "status": {
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "updatedReplicas": replicas,
        },
    }


def app_replicaset(name: str, deploy: Obj, namespace: str = NS) -> Obj:
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": metadata(
            "ReplicaSet", name, namespace, labels, owner=owner_ref("Deployment", deploy["metadata"]["name"], namespace)
        ),
        "spec": {
            "replicas": deploy["spec"]["replicas"],
            "selector": deploy["spec"]["selector"],
            "template": copy.deepcopy(deploy["spec"]["template"]),
        },
        "status": {"replicas": deploy["spec"]["replicas"], "readyReplicas": deploy["spec"]["replicas"]},
    }


def workload(
    kind: str, name: str, labels: Mapping[str, str] | None = None, spec: Obj | None = None, namespace: str = NS
) -> Obj:
    """A StatefulSet, DaemonSet, Job or CronJob with a pod template."""
    labels = labels or {"app": name}
    tmpl = app_template(labels, spec)
    if kind in ("Job", "CronJob"):
        tmpl["spec"]["restartPolicy"] = "Never"
    body: Obj = {"selector": {"matchLabels": dict(labels)}, "template": tmpl}
    if kind == "CronJob":
        body = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": tmpl}}}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": metadata(kind, name, namespace, labels),
        "spec": body,
        "status": {},
    }


def deployment_with_pods(
    name: str,
    n: int = 3,
    *,
    ready: bool | list[bool] = True,
    spec: Obj | None = None,
    node: str = "node-1",
    age: float = 3600,
) -> tuple[Obj, Obj, list[Obj]]:
    """A Deployment, its ReplicaSet and ``n`` pods owned by the ReplicaSet."""
    deploy = app_deployment(name, replicas=n, spec=spec)
    rs = app_replicaset(f"{name}-7d9f8b", deploy)
    readiness = ready if isinstance(ready, list) else [ready] * n
    pods = [
        app_pod(
            f"{name}-7d9f8b-{i:05d}",
            {"app": name, "pod-template-hash": "7d9f8b"},
            owner=owner_ref("ReplicaSet", rs["metadata"]["name"]),
            ready=readiness[i],
            spec=spec,
            node=node,
            age=age,
        )
        for i in range(n)
    ]
    return deploy, rs, pods


# --- networking ------------------------------------------------------------------------------


def service(
    name: str,
    selector: Mapping[str, str] | None = None,
    *,
    ports: list[Obj] | None = None,
    type_: str = "ClusterIP",
    status: Obj | None = None,
    namespace: str = NS,
) -> Obj:
    spec: Obj = {
        "type": type_,
        "ports": ports
        if ports is not None
        else [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    }
    if selector is not None:
        spec["selector"] = dict(selector)
    if type_ == "ExternalName":
        spec = {"type": "ExternalName", "externalName": "db.example.com"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata("Service", name, namespace),
        "spec": spec,
        "status": status or {"loadBalancer": {}},
    }


def endpoint_slice(
    svc: str, endpoints: Iterable[tuple[str, bool | None, bool]], *, suffix: str = "abcde", namespace: str = NS
) -> Obj:
    """``endpoints``: (pod name, ready, terminating); ready None omits the condition."""
    eps = []
    for i, (pod_name, ready, terminating) in enumerate(endpoints):
        conditions: Obj = {"serving": bool(ready), "terminating": terminating}
        if ready is not None:
            conditions["ready"] = ready
        eps.append(
            {
                "addresses": [f"10.0.1.{i + 1}"],
                "conditions": conditions,
                "nodeName": "node-1",
                "targetRef": {
                    "kind": "Pod",
                    "name": pod_name,
                    "namespace": namespace,
                    "uid": uid("Pod", pod_name, namespace),
                },
            }
        )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "addressType": "IPv4",
        "metadata": metadata(
            "EndpointSlice",
            f"{svc}-{suffix}",
            namespace,
            {"kubernetes.io/service-name": svc},
            owner=owner_ref("Service", svc, namespace),
        ),
        "endpoints": eps or None,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def slice_for(svc: str, pods: Iterable[Obj]) -> Obj:
    """An EndpointSlice that mirrors the pods' readiness, as the controller would write it."""
    return endpoint_slice(
        svc, [(p["metadata"]["name"], p["status"]["conditions"][1]["status"] == "True", False) for p in pods]
    )


def ingress(
    name: str,
    backends: list[tuple[str, Obj]] | None = None,
    *,
    class_name: str | None = "nginx",
    tls: list[Obj] | None = None,
    default_backend: Obj | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """``backends``: (path, {"name": svc, "port": {"number": 80}}) on host shop.example.com."""
    spec: Obj = {}
    if class_name:
        spec["ingressClassName"] = class_name
    if backends is not None:
        spec["rules"] = [
            {
                "host": "shop.example.com",
                "http": {
                    "paths": [
                        {"path": path, "pathType": "Prefix", "backend": {"service": svc}} for path, svc in backends
                    ]
                },
            }
        ]
    if default_backend is not None:
        spec["defaultBackend"] = {"service": default_backend}
    if tls is not None:
        spec["tls"] = tls
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata("Ingress", name, NS, annotations=annotations),
        "spec": spec,
        "status": {},
    }


def ingress_class(name: str = "nginx", *, default: bool = False) -> Obj:
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else None
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": metadata("IngressClass", name, None, annotations=annotations),
        "spec": {"controller": "k8s.io/ingress-nginx"},
    }


def secret(name: str, namespace: str = NS) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": metadata("Secret", name, namespace),
    }


def network_policy(
    name: str, pod_selector: Obj | None, *, types: list[str] | None = None, ingress_rules: list[Obj] | None = None
) -> Obj:
    spec: Obj = {"podSelector": pod_selector if pod_selector is not None else {}}
    if types is not None:
        spec["policyTypes"] = types
    if ingress_rules is not None:
        spec["ingress"] = ingress_rules
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata("NetworkPolicy", name),
        "spec": spec,
    }


def webhook_config(name: str, hooks: list[Obj], *, kind: str = "ValidatingWebhookConfiguration") -> Obj:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": metadata(kind, name, None),
        "webhooks": hooks,
    }


def webhook(
    name: str,
    svc: str,
    *,
    namespace: str = NS,
    port: int | None = 443,
    failure_policy: str | None = "Fail",
    timeout: int | None = 10,
) -> Obj:
    service_ref: Obj = {"namespace": namespace, "name": svc, "path": "/validate"}
    if port is not None:
        service_ref["port"] = port
    hook: Obj = {
        "name": name,
        "clientConfig": {"service": service_ref, "caBundle": "LS0t"},
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
    }
    if failure_policy is not None:
        hook["failurePolicy"] = failure_policy
    if timeout is not None:
        hook["timeoutSeconds"] = timeout
    return hook


# --- storage, config, cluster ----------------------------------------------------------------


def configmap(
    name: str, *, owner: Obj | None = None, annotations: Mapping[str, str] | None = None, namespace: str = NS
) -> Obj:
    """Metadata only, as the gatherer stores ConfigMaps."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("ConfigMap", name, namespace, owner=owner, annotations=annotations),
    }


def pvc(
    name: str,
    *,
    phase: str = "Bound",
    storage_class: str | None = "standard",
    age: float = 3600,
    annotations: Mapping[str, str] | None = None,
    conditions: list[Obj] | None = None,
    volume: str | None = "pv-1",
) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume and phase in ("Bound", "Lost"):
        spec["volumeName"] = volume
    status: Obj = {"phase": phase}
    if conditions:
        status["conditions"] = conditions
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata("PersistentVolumeClaim", name, annotations=annotations, age=age),
        "spec": spec,
        "status": status,
    }


def storage_class(name: str = "standard", *, binding: str = "Immediate", default: bool = False) -> Obj:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else None
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": metadata("StorageClass", name, None, annotations=annotations),
        "provisioner": "rancher.io/local-path",
        "volumeBindingMode": binding,
        "reclaimPolicy": "Delete",
    }


def node(
    name: str = "node-1",
    *,
    ready: str = "True",
    reason: str = "KubeletReady",
    message: str = "kubelet is posting ready status",
    heartbeat_ago: float = 10,
    pressure: Mapping[str, str] | None = None,
    unschedulable: bool = False,
    taints: list[Obj] | None = None,
    age: float = 86400 * 30,
    ready_changed_ago: float | None = None,
) -> Obj:
    conditions = [
        {
            "type": t,
            "status": (pressure or {}).get(t, "False"),
            "reason": f"KubeletHas{'No' if (pressure or {}).get(t) != 'True' else ''}{t}",
            "message": f"{t} status",
            "lastHeartbeatTime": ts(heartbeat_ago),
            "lastTransitionTime": ts(age),
        }
        for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": ready,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": ts(heartbeat_ago),
            "lastTransitionTime": ts(min(age, 600) if ready_changed_ago is None else ready_changed_ago),
        }
    )
    if pressure and "NetworkUnavailable" in pressure:
        conditions.insert(
            0,
            {
                "type": "NetworkUnavailable",
                "status": pressure["NetworkUnavailable"],
                "reason": "NoRouteCreated",
                "message": "routes not created",
                "lastTransitionTime": ts(300),
            },
        )
    spec: Obj = {"podCIDR": "10.244.0.0/24"}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata("Node", name, None, age=age),
        "spec": spec,
        "status": {"conditions": conditions},
    }


def resource_quota(name: str, hard: Mapping[str, str], used: Mapping[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": metadata("ResourceQuota", name),
        "spec": {"hard": dict(hard)},
        "status": {"hard": dict(hard), "used": dict(used)},
    }


# --- snapshots ---------------------------------------------------------------------------------


ALL_KINDS = (
    "Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Service", "EndpointSlice",
    "Ingress", "IngressClass", "PersistentVolumeClaim", "StorageClass", "Node", "NetworkPolicy", "ResourceQuota",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ConfigMap", "Secret",
    "HorizontalPodAutoscaler", "PodDisruptionBudget",
)  # fmt: skip


def group(objs: Iterable[Obj]) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for obj in objs:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def snap(
    *objects: Obj | Iterable[Obj],
    events: Iterable[Obj] = (),
    metrics: Mapping[tuple[str, str, str], ContainerMetrics] | None = None,
    without: Iterable[str] = (),
    namespace: str = NS,
    results: Iterable[GatherResult] = (),
    window: str = "1h",
    logs: Mapping[tuple[str, str, str], ContainerLog] | None = None,
) -> Snapshot:
    """A snapshot taken at NOW in which every kind was gathered (possibly empty) except those in ``without``.

    ``objects`` are objects or iterables of them.
    """
    skip = set(without)
    flat = [obj for item in objects for obj in ([item] if isinstance(item, dict) else item)]
    grouped: dict[str, list[Obj]] = {kind: [] for kind in ALL_KINDS if kind not in skip}
    for kind, items in group(flat).items():
        if kind not in skip:
            grouped[kind] = items
    return Snapshot.build(
        namespace=namespace,
        objects=grouped,
        events=events,
        metrics=metrics,
        results=results,
        taken_at=NOW,
        metrics_window=window,
        logs=logs,
    )


def metrics_for(pod_name: str, container_name: str = "app", **values: float) -> dict:
    return {(NS, pod_name, container_name): ContainerMetrics(**values)}


def web_pods(count: int = 3, rs: str = "web-abc", **kw: Any) -> list[Obj]:
    """``count`` pods of ReplicaSet ``rs`` (which belongs to Deployment web)."""
    return [pod(f"{rs}-{i}", ("ReplicaSet", rs), **kw) for i in range(count)]


def healthy_objects() -> list[Obj]:
    """A healthy namespace: Deployment with ready pods, Service, HPA at min, PDB allowing one disruption."""
    return [
        deployment("web"),
        replicaset("web-abc", "web", revision=2),
        replicaset("web-old", "web", replicas=0, revision=1),
        *web_pods(3),
        service("web"),
        hpa("web", current=2, min_replicas=2),
        pdb("web"),
        statefulset("db"),
        service("db"),
        *(pod(f"db-{i}", ("StatefulSet", "db"), labels={"app": "db"}) for i in range(3)),
        daemonset("agent"),
        *(pod(f"agent-{i}", ("DaemonSet", "agent"), labels={"app": "agent"}) for i in range(3)),
        cronjob("backup"),
        complete_job("backup-100", cronjob="backup"),
        storage_class("standard"),
    ]


def healthy_namespace() -> list[Obj]:
    """Everything a well-run namespace has: ready Deployment behind a Service and an Ingress, bound
    PVC, a used ConfigMap, a default-deny policy with an allow rule, a quota with headroom, a webhook
    whose server is up, on a Ready node."""
    spec = pod_spec(
        app_container(
            volumeMounts=[{"name": "config", "mountPath": "/etc/app"}, {"name": "data", "mountPath": "/data"}],
            envFrom=[{"configMapRef": {"name": "web-env"}}],
        ),
        volumes=[
            {"name": "config", "configMap": {"name": "web-config"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
            {"name": "token", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}},
        ],
        securityContext={"runAsNonRoot": True},
    )
    deploy, rs, pods = deployment_with_pods("web", 3, spec=spec)
    hook_deploy, hook_rs, hook_pods = deployment_with_pods("policy-server", 2)
    return [
        deploy,
        rs,
        *pods,
        hook_deploy,
        hook_rs,
        *hook_pods,
        service("web", {"app": "web"}),
        slice_for("web", pods),
        service(
            "policy-server", {"app": "policy-server"}, ports=[{"name": "https", "port": 443, "targetPort": "http"}]
        ),
        slice_for("policy-server", hook_pods),
        ingress(
            "web",
            [("/", {"name": "web", "port": {"number": 80}}), ("/api", {"name": "web", "port": {"name": "http"}})],
            tls=[{"hosts": ["shop.example.com"], "secretName": "web-tls"}],
        ),
        ingress_class("nginx", default=True),
        secret("web-tls"),
        configmap("web-config"),
        configmap("web-env"),
        configmap("kube-root-ca.crt"),
        pvc("web-data"),
        storage_class("standard", default=True),
        node("node-1"),
        node("node-2"),
        network_policy("default-deny", {}, types=["Ingress"]),
        network_policy("allow-web", {"matchLabels": {"app": "web"}}, types=["Ingress"], ingress_rules=[{}]),
        network_policy(
            "allow-policy-server", {"matchLabels": {"app": "policy-server"}}, types=["Ingress"], ingress_rules=[{}]
        ),
        resource_quota(
            "compute",
            {"requests.cpu": "4", "requests.memory": "8Gi", "pods": "20"},
            {"requests.cpu": "500m", "requests.memory": "640Mi", "pods": "5"},
        ),
        webhook_config("shop-policy", [webhook("validate.shop.example.com", "policy-server")]),
        webhook_config(
            "shop-defaults",
            [webhook("mutate.shop.example.com", "policy-server", failure_policy="Ignore")],
            kind="MutatingWebhookConfiguration",
        ),
    ]


def healthy_events() -> list[Obj]:
    """Normal events and stale one-offs a healthy namespace still carries."""
    return [
        event("Pod", "web-7d9f8b-00000", "Scheduled", "Successfully assigned", type_="Normal"),
        event("Pod", "web-7d9f8b-00001", "Unhealthy", "Readiness probe failed: connection refused", count=2),
        event("Pod", "web-7d9f8b-00002", "FailedMount", "MountVolume.SetUp failed: timeout", ago=7200),
    ]


def only(findings: list[Finding], problem_title_part: str | None = None) -> Finding:
    """The single finding (optionally the one whose title contains a text); fails loudly otherwise."""
    chosen = [f for f in findings if problem_title_part is None or problem_title_part in f.title]
    assert len(chosen) == 1, [f.title for f in findings]
    return chosen[0]


def ev(f: Finding) -> dict[str, str]:
    """Evidence as a dict source -> value (first value wins)."""
    out: dict[str, str] = {}
    for item in f.evidence:
        out.setdefault(item.source, item.value)
    return out


def serious(findings: list[Finding]) -> list[Finding]:
    """Findings at warning or critical: what a healthy namespace must not have."""
    return [f for f in findings if f.severity.at_least(Severity.warning)]


# --- well-built workloads shaped like common real-world software (precision corpus) -------------


def host_mount(name: str, path: str, mount_path: str, *, read_only: bool = True, type_: str | None = None) -> tuple:
    """(volume, volumeMount) for a hostPath mounted at ``mount_path``."""
    host: Obj = {"path": path}
    if type_:
        host["type"] = type_
    mount: Obj = {"name": name, "mountPath": mount_path}
    if read_only:
        mount["readOnly"] = True
    return {"name": name, "hostPath": host}, mount


def app_daemonset(
    name: str, spec: Obj, *, nodes: int = 3, annotations: Mapping[str, str] | None = None, namespace: str = NS
) -> tuple[Obj, list[Obj]]:
    """A DaemonSet ready on ``nodes`` nodes, with one pod per node ("node-1", ...)."""
    ds = workload("DaemonSet", name, spec=spec, namespace=namespace)
    if annotations:
        ds["metadata"]["annotations"] = dict(annotations)
    ds["status"] = {
        "observedGeneration": 1, "desiredNumberScheduled": nodes, "currentNumberScheduled": nodes,
        "numberReady": nodes, "numberAvailable": nodes, "updatedNumberScheduled": nodes, "numberMisscheduled": 0,
    }  # fmt: skip
    pods = [
        app_pod(f"{name}-{i:05d}", {"app": name}, owner=owner_ref("DaemonSet", name, namespace), spec=spec,
                node=f"node-{i + 1}", namespace=namespace)
        for i in range(nodes)
    ]  # fmt: skip
    return ds, pods


def app_statefulset(
    name: str, replicas: int, spec: Obj, *, claim: str = "data", service: str | None = None, target: str = "http"
) -> list[Obj]:
    """A ready StatefulSet with a headless governing Service, a volume claim template and bound claims."""
    sts = workload("StatefulSet", name, spec=spec)
    governing = service or f"{name}-headless"
    sts["spec"].update(
        replicas=replicas, serviceName=governing, podManagementPolicy="Parallel",
        updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        volumeClaimTemplates=[{"metadata": {"name": claim}, "spec": {
            "storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "10Gi"}}}}],
    )  # fmt: skip
    sts["status"] = {
        "observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
        "currentReplicas": replicas, "updatedReplicas": replicas, "currentRevision": f"{name}-1",
        "updateRevision": f"{name}-1",
    }  # fmt: skip
    pods = []
    for i in range(replicas):
        pod_spec_i = copy.deepcopy(spec)
        pod_spec_i.setdefault("volumes", []).append(
            {"name": claim, "persistentVolumeClaim": {"claimName": f"{claim}-{name}-{i}"}}
        )
        pods.append(app_pod(f"{name}-{i}", {"app": name}, owner=owner_ref("StatefulSet", name), spec=pod_spec_i))
    headless = service_for(governing, {"app": name}, headless=True, target=target)
    claims = [pvc(f"{claim}-{name}-{i}", volume=f"pv-{name}-{i}") for i in range(replicas)]
    return [sts, *pods, headless, slice_for(governing, pods), *claims]


def service_for(
    name: str, selector: Mapping[str, str], *, headless: bool = False, port: int = 80, target: str = "http"
) -> Obj:
    svc = service(name, selector, ports=[{"name": target, "port": port, "targetPort": target, "protocol": "TCP"}])
    if headless:
        svc["spec"]["clusterIP"] = "None"
    return svc


def app_pdb(name: str, selector: Mapping[str, str], *, healthy: int, min_available: int) -> Obj:
    obj = pdb(name, min_available=min_available, allowed=healthy - min_available, healthy=healthy,
              desired=min_available, expected=healthy)  # fmt: skip
    obj["spec"]["selector"] = {"matchLabels": dict(selector)}
    return obj
