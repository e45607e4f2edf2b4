"""Small factories for the workload detectors' tests: raw API dicts as `kubectl get -o json` returns them."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import ContainerMetrics, Snapshot

NOW = dt.datetime(2024, 6, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
NS = "shop"
DAY = 86400
ALL_KINDS = (
    "Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Service",
    "PersistentVolumeClaim", "StorageClass", "HorizontalPodAutoscaler", "PodDisruptionBudget",
)  # fmt: skip

Obj = dict[str, Any]


def ts(seconds_ago: float) -> str:
    """RFC 3339 timestamp ``seconds_ago`` before NOW (negative means in the future)."""
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def uid(kind: str, name: str) -> str:
    return f"uid-{kind.lower()}-{name}"


def owner_ref(kind: str, name: str) -> Obj:
    api = {"Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "apps/v1")
    return {"apiVersion": api, "kind": kind, "name": name, "uid": uid(kind, name), "controller": True}


def meta(kind: str, name: str, age: float = DAY, owner: tuple[str, str] | None = None, **extra: Any) -> Obj:
    m: Obj = {"name": name, "namespace": NS, "uid": uid(kind, name), "creationTimestamp": ts(age), "generation": 1}
    if owner:
        m["ownerReferences"] = [owner_ref(*owner)]
    m.update(extra)
    return m


def cond(type_: str, status: str = "True", reason: str = "", message: str = "", ago: float = DAY, **extra: Any) -> Obj:
    c: Obj = {"type": type_, "status": status, "lastTransitionTime": ts(ago)}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    c.update(extra)
    return c


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
        "metadata": meta("Pod", name, age, owner, labels=labels or {"app": "web"}, **meta_extra),
        "spec": {"containers": containers or [container()], "nodeName": "node-1", "restartPolicy": "Always"},
        "status": status,
    }


def event(kind: str, name: str, reason: str, message: str, count: int = 1, ago: float = 60) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{reason.lower()}", "namespace": NS},
        "involvedObject": {"kind": kind, "name": name, "namespace": NS, "uid": uid(kind, name)},
        "reason": reason,
        "message": message,
        "count": count,
        "type": "Warning",
        "firstTimestamp": ts(ago + 600),
        "lastTimestamp": ts(ago),
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
        "metadata": meta("Deployment", name, age),
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
                cond("Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{name}-abc" has successfully progressed.',
                     lastUpdateTime=ts(DAY)),
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
) -> Obj:
    ready = replicas if ready is None else ready
    m = meta("ReplicaSet", name, age, owner or (("Deployment", deploy) if deploy else None))
    m["annotations"] = {"deployment.kubernetes.io/revision": str(revision)}
    status: Obj = {"observedGeneration": 1, "replicas": replicas, "readyReplicas": ready, "availableReplicas": ready}
    if conditions:
        status["conditions"] = conditions
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": m,
        "spec": {"replicas": replicas, "template": template([container(image=image)])},
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
            {"metadata": {"name": "data"}, "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"]}}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta("StatefulSet", name, age),
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
        "metadata": meta("DaemonSet", name, age),
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
        "metadata": meta("Job", name, started_ago, ("CronJob", cronjob) if cronjob else None),
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
    spec: Obj = {"schedule": schedule, "jobTemplate": {"spec": {"template": template([container(image="shop/batch:1")])}}}
    if suspend:
        spec["suspend"] = True
    if starting_deadline is not None:
        spec["startingDeadlineSeconds"] = starting_deadline
    if time_zone:
        spec["timeZone"] = time_zone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": meta("CronJob", name),
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
        "metadata": meta("HorizontalPodAutoscaler", name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": metrics
            if metrics is not None
            else [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    }
    if with_status:
        obj["status"] = {
            "currentReplicas": current,
            "desiredReplicas": current if desired is None else desired,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 30}}}],
            "conditions": conditions
            if conditions is not None
            else [
                cond("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"),
                cond("ScalingActive", "True", "ValidMetricFound", "the HPA was able to successfully calculate a replica count"),
                cond("ScalingLimited", "True", "TooFewReplicas", "the desired replica count is less than the minimum replica count"),
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
    status: Obj = {"disruptionsAllowed": allowed, "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected}
    if observed:
        status["observedGeneration"] = 1
        status["conditions"] = conditions or [
            cond("DisruptionAllowed", "True" if allowed else "False", "SufficientPods" if allowed else "InsufficientPods")
        ]
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta("PodDisruptionBudget", name),
            "spec": spec, "status": status}  # fmt: skip


def service(name: str = "web", selector: Obj | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta("Service", name),
            "spec": {"selector": selector or {"app": name}, "ports": [{"port": 80}]}}  # fmt: skip


def storageclass(name: str = "standard") -> Obj:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name, "uid": uid("sc", name)},
            "provisioner": "rancher.io/local-path"}  # fmt: skip


# --- snapshots -------------------------------------------------------------------------------


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
        storageclass("standard"),
    ]


def snap(
    *objects: Obj | Iterable[Obj],
    events: Iterable[Obj] = (),
    missing: Iterable[str] = (),
    metrics: dict | None = None,
) -> Snapshot:
    """A snapshot of namespace shop at NOW; every kind in ALL_KINDS is gathered unless listed in ``missing``."""
    skip = set(missing)
    grouped: dict[str, list[Obj]] = {kind: [] for kind in ALL_KINDS if kind not in skip}
    for item in objects:
        for obj in [item] if isinstance(item, dict) else item:
            if obj["kind"] in skip:
                continue
            grouped.setdefault(obj["kind"], []).append(obj)
    return Snapshot.build(namespace=NS, objects=grouped, events=events, metrics=metrics, taken_at=NOW)


def metrics_for(pod_name: str, container_name: str = "app", **values: float) -> dict:
    return {(NS, pod_name, container_name): ContainerMetrics(**values)}


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
