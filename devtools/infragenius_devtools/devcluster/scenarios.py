"""Broken and healthy workloads for e2e tests, the demo and benchmarks, as real API objects.

kwok makes every scheduled pod Running and Ready; failures it cannot produce
(crash loops, OOM kills, image pulls) are written into pod status, on pods
annotated so kwok leaves them alone. With the devcluster's real node,
``break_namespace_real`` has a real kubelet make those failures instead.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes import client

from infragenius.kube.time import rfc3339
from infragenius_devtools.devcluster.cluster import CUSTOM_STATUS_ANNOTATION
from infragenius_devtools.devcluster.node import NODE_LABEL
from infragenius_devtools.support import SETUP_TIMEOUT, wait_for

IMAGE = "registry.example/shop/web:1.4.2"
#: Debian minbase with sh, bash and coreutils; `up` imports it into the real node, so it is never pulled.
TESTBOX_IMAGE = "infragenius.local/testbox:bookworm"


def _now(offset_minutes: float = 0) -> str:
    return rfc3339(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=offset_minutes))


def deployment(
    name: str,
    replicas: int = 2,
    *,
    custom_status: bool = False,
    image: str = IMAGE,
    env_from_configmap: str | None = None,
    hardened: bool = True,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}
    if hardened:
        container.update(
            resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
            readinessProbe={"httpGet": {"path": "/ready", "port": "http"}},
            livenessProbe={"httpGet": {"path": "/live", "port": "http"}},
        )
    if env_from_configmap:
        container["envFrom"] = [{"configMapRef": {"name": env_from_configmap}}]
    template_meta: dict[str, Any] = {"labels": {"app": name}}
    if custom_status:
        template_meta["annotations"] = {CUSTOM_STATUS_ANNOTATION: "custom"}
    pod_spec: dict[str, Any] = {"containers": [container]}
    if hardened:
        pod_spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": 10001}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": template_meta, "spec": pod_spec},
        },
    }


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def ingress(name: str, service_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name},
        "spec": {
            "rules": [
                {
                    "host": f"{name}.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service_name, "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ]
        },
    }


def apply(kubectl: Callable[..., Any], namespace: str, *objects: dict[str, Any]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objects))


def _spec(pod: client.V1Pod) -> client.V1PodSpec:
    assert pod.spec is not None  # the API server always returns a stored pod's spec
    return pod.spec


def _identity(pod: client.V1Pod) -> tuple[str, str, str]:
    """Name, namespace and uid of a pod read from the API server, which sets all three on every stored pod."""
    meta = pod.metadata
    assert meta is not None and meta.name is not None and meta.namespace is not None and meta.uid is not None
    return meta.name, meta.namespace, meta.uid


def wait_pods(
    core: client.CoreV1Api, namespace: str, selector: str, count: int, timeout: float = SETUP_TIMEOUT
) -> list[client.V1Pod]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        if len(pods) >= count and all(_spec(p).node_name for p in pods):
            return pods
        time.sleep(0.2)
    raise AssertionError(f"{count} scheduled pods with {selector} in {namespace} did not appear")


def _container_status(name: str, image: str, state: dict[str, Any], restarts: int, last: dict[str, Any] | None) -> dict:
    status: dict[str, Any] = {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": restarts,
        "state": state,
    }
    if last:
        status["lastState"] = last
    return status


def patch_failure(
    core: client.CoreV1Api,
    pod: client.V1Pod,
    failure: str,
    *,
    started_minutes_ago: float = 30,
    exited_minutes_ago: float = 1,
) -> None:
    """Write what a kubelet would report for ``failure`` into the pod's status (a crash loop's last exit
    ``exited_minutes_ago``, the pod started ``started_minutes_ago``)."""
    image = _spec(pod).containers[0].image
    assert image is not None  # every container these scenarios create names an image
    started = _now(started_minutes_ago)
    if failure == "CrashLoopBackOff":
        container = _container_status(
            "app",
            image,
            {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=app"}},
            7,
            {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": _now(exited_minutes_ago + 1),
                    "finishedAt": _now(exited_minutes_ago),
                }
            },
        )
    elif failure == "OOMKilled":
        container = _container_status(
            "app",
            image,
            {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=app"}},
            3,
            {"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": _now(3), "finishedAt": _now(2)}},
        )
    elif failure == "ImagePullBackOff":
        container = _container_status(
            "app",
            image,
            {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}},
            0,
            None,
        )
    else:
        raise ValueError(failure)
    phase = "Pending" if failure == "ImagePullBackOff" else "Running"
    body = {
        "status": {
            "phase": phase,
            "startTime": started,
            "podIP": "10.244.9.9",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                {"type": "Initialized", "status": "True", "lastTransitionTime": started},
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "ContainersNotReady",
                    "message": "containers with unready status: [app]",
                    "lastTransitionTime": started,
                },
                {
                    "type": "ContainersReady",
                    "status": "False",
                    "reason": "ContainersNotReady",
                    "lastTransitionTime": started,
                },
            ],
            "containerStatuses": [container],
        }
    }
    name, namespace, _ = _identity(pod)
    core.patch_namespaced_pod_status(name, namespace, body)


def patch_healthy(core: client.CoreV1Api, namespace: str, name: str) -> None:
    """What a kubelet reports once the container runs and passes its probe (a patched failure fixed)."""
    now = _now()
    container = _container_status("app", IMAGE, {"running": {"startedAt": now}, "waiting": None}, 7, None)
    container.update(ready=True, started=True)
    # A strategic merge patch merges the state map: the waiting state is removed explicitly (None above).
    conditions = [
        {"type": t, "status": "True", "lastTransitionTime": now}
        for t in ("PodScheduled", "Initialized", "Ready", "ContainersReady")
    ]
    body = {"status": {"phase": "Running", "conditions": conditions, "containerStatuses": [container]}}
    core.patch_namespaced_pod_status(name, namespace, body)


def post_warning_event(
    core: client.CoreV1Api,
    namespace: str,
    kind: str,
    name: str,
    reason: str,
    message: str,
    count: int,
    uid: str = "",
    *,
    first_seen_minutes_ago: float = 20,
) -> None:
    core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{name}."),
            involved_object=client.V1ObjectReference(kind=kind, name=name, namespace=namespace, uid=uid or None),
            reason=reason,
            message=message,
            type="Warning",
            count=count,
            first_timestamp=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=first_seen_minutes_ago),
            last_timestamp=dt.datetime.now(dt.UTC),
            source=client.V1EventSource(component="kubelet"),
        ),
    )


def break_namespace(kubectl: Callable[..., Any], core: client.CoreV1Api, namespace: str) -> None:
    """A namespace with the classic problems, each produced by the real control plane where it can be."""
    apply(
        kubectl,
        namespace,
        deployment("checkout", 2, custom_status=True),
        deployment("recommender", 1, custom_status=True),
        deployment("payments", 1, custom_status=True, image="registry.example/shop/payments:does-not-exist"),
        deployment("cart", 1, env_from_configmap="cart-settings"),
        *_control_plane_problems(),
    )
    for pod in wait_pods(core, namespace, "app=checkout", 2):
        patch_failure(core, pod, "CrashLoopBackOff")
        name, _, uid = _identity(pod)
        post_warning_event(core, namespace, "Pod", name, "BackOff", "Back-off restarting failed container app", 42, uid)
    for pod in wait_pods(core, namespace, "app=recommender", 1):
        patch_failure(core, pod, "OOMKilled")
    for pod in wait_pods(core, namespace, "app=payments", 1):
        patch_failure(core, pod, "ImagePullBackOff")
    wait_pods(core, namespace, "app=cart", 1)
    _quota_blocks_search(kubectl, core, namespace)


def _control_plane_problems() -> list[dict[str, Any]]:
    """What is real without a kubelet: a Service with and one without endpoints, an Ingress to a missing
    Service, a pod no node can ever fit."""
    return [
        service("checkout", {"app": "checkout"}),
        service("legacy", {"app": "retired-app"}),
        ingress("storefront", "frontend"),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "batch-huge", "labels": {"app": "batch-huge"}},
            "spec": {
                "containers": [
                    {"name": "app", "image": IMAGE, "resources": {"requests": {"cpu": "1000", "memory": "1Gi"}}}
                ]
            },
        },
    ]


def _quota_blocks_search(kubectl: Callable[..., Any], core: client.CoreV1Api, namespace: str) -> None:
    """A pods quota of 8 over the six pods already there, then Deployment search (3 replicas) that hits it."""
    # Quota last, so it is the new Deployment (not the others) that hits it.
    apply(
        kubectl,
        namespace,
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pods"}, "spec": {"hard": {"pods": "8"}}},
    )
    # The quota controller must have counted the six pods above before search is created; otherwise
    # search's pods may be admitted against a quota without usage. Wait on that state, not on a timer.
    wait_for(
        lambda: _quota_used(core, namespace, "pods", "pods") == "6",
        timeout=SETUP_TIMEOUT,
        what=f"ResourceQuota pods in {namespace} to count 6 pods",
    )
    apply(kubectl, namespace, deployment("search", 3))
    apps = client.AppsV1Api(core.api_client)

    def refused() -> bool:
        status = apps.read_namespaced_deployment("search", namespace).status
        assert status is not None  # the API server always returns a Deployment's status, {} at the least
        return any(c.type == "ReplicaFailure" and c.status == "True" for c in status.conditions or [])

    try:
        wait_for(refused, timeout=SETUP_TIMEOUT, interval=0.5, what="ReplicaFailure on Deployment search")
    except AssertionError as err:
        raise AssertionError(f"the quota never stopped Deployment search: {err}") from None


def on_real_node(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """``pod_spec`` placed on the real node only (kwok nodes would only pretend to run it)."""
    return {
        **pod_spec,
        "nodeSelector": {NODE_LABEL: "true"},
        "tolerations": [{"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
        "terminationGracePeriodSeconds": 1,
    }


def real_deployment(
    name: str,
    replicas: int = 1,
    *,
    script: str | None = None,
    image: str = TESTBOX_IMAGE,
    memory: str = "64Mi",
    env_from_configmap: str | None = None,
) -> dict[str, Any]:
    """``deployment(name)`` (hardened like the kwok ones, so only the intended failure shows) on the real
    node, running ``script`` in the test image under the memory limit ``memory``."""
    manifest = deployment(name, replicas, image=image, env_from_configmap=env_from_configmap)
    pod_spec = manifest["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    # IfNotPresent: the image was imported into the node; a pull could only fail (no registry behind it).
    container["imagePullPolicy"] = "IfNotPresent"
    # A small CPU request: the real node is a share of the machine, not a 16-core kwok node.
    container["resources"] = {
        "requests": {"cpu": "10m", "memory": memory},
        "limits": {"cpu": "500m", "memory": memory},
    }
    if script is not None:
        container["command"] = ["/bin/sh", "-c", script]
    manifest["spec"]["template"]["spec"] = on_real_node(pod_spec)
    return manifest


#: What the real node's checkout containers print before they exit 1: the lines a reader needs.
CRASH_SCRIPT = (
    "echo 'INFO checkout 1.4.2 starting (workers=4, port=8080)'; "
    "echo 'INFO connecting to payments-db:5432 ...'; "
    "echo 'ERROR payments-db:5432: dial tcp 10.96.0.42:5432: connect: connection refused' >&2; "
    "echo 'FATAL: cannot connect to payments-db:5432: connection refused' >&2; "
    "exit 1"
)
#: The recommender reads "the catalogue" into memory until the kernel's OOM killer stops it at its limit.
OOM_SCRIPT = "echo 'INFO recommender 2.3.0: loading product catalogue into memory'; exec tail /dev/zero"
OOM_LIMIT = "24Mi"
#: The Deployments ``break_namespace_real`` runs on the real node, with the failure each one has.
REAL_NODE_WORKLOADS = {
    "checkout": "crash loop (exit 1)",
    "recommender": "OOM kill",
    "payments": "image does not exist",
    "cart": "missing ConfigMap",
}


def break_namespace_real(kubectl: Callable[..., Any], core: client.CoreV1Api, namespace: str) -> None:
    """``break_namespace`` with its crash loop, OOM kill, missing image and missing ConfigMap made by the real
    node's kubelet (``REAL_NODE_WORKLOADS``); the unschedulable pod, the Service without endpoints, the
    Ingress to nowhere and the quota stay on the control plane and kwok nodes, where they are real already.

    Returns once the pods exist; the kubelet needs a minute or two more (``real_failures``).
    """
    apply(
        kubectl,
        namespace,
        real_deployment("checkout", 2, script=CRASH_SCRIPT),
        real_deployment("recommender", 1, script=OOM_SCRIPT, memory=OOM_LIMIT),
        real_deployment("payments", 1, image="infragenius.local/shop/payments:does-not-exist"),
        real_deployment("cart", 1, script="exec sleep 3600", env_from_configmap="cart-settings"),
        *_control_plane_problems(),
    )
    for app, count in (("checkout", 2), ("recommender", 1), ("payments", 1), ("cart", 1)):
        wait_pods(core, namespace, f"app={app}", count)
    _quota_blocks_search(kubectl, core, namespace)


def _first_container(core: client.CoreV1Api, namespace: str, app: str) -> Any:
    """The container status of the ``app`` pod furthest along (most restarts), or None before it has one."""
    statuses = [
        cs
        for pod in core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
        for cs in ((pod.status.container_statuses if pod.status else None) or [])[:1]
    ]
    return max(statuses, key=lambda cs: cs.restart_count or 0, default=None)


def real_failures(core: client.CoreV1Api, namespace: str, min_restarts: int = 2) -> dict[str, tuple[bool, str]]:
    """Each ``REAL_NODE_WORKLOADS`` entry: (reached its failure, what its kubelet reports now)."""
    progress: dict[str, tuple[bool, str]] = {}
    for app in REAL_NODE_WORKLOADS:
        cs = _first_container(core, namespace, app)
        if cs is None:
            progress[app] = (False, "no container status yet")
            continue
        state = cs.state
        waiting = state.waiting.reason if state and state.waiting else None
        terminated = state.terminated.reason if state and state.terminated else None
        last = cs.last_state.terminated.reason if cs.last_state and cs.last_state.terminated else None
        now = waiting or terminated or ("Running" if state and state.running else "?")
        restarts = cs.restart_count or 0
        if app == "checkout":
            progress[app] = (restarts >= min_restarts, f"{now}, restarts {restarts}/{min_restarts}")
        elif app == "recommender":
            progress[app] = ("OOMKilled" in (last, terminated), f"{now}, last exit {last or '-'}")
        elif app == "payments":
            progress[app] = (waiting in ("ErrImagePull", "ImagePullBackOff"), now)
        else:
            progress[app] = (waiting == "CreateContainerConfigError", now)
    return progress


def _quota_used(core: client.CoreV1Api, namespace: str, quota: str, resource: str) -> str | None:
    status = core.read_namespaced_resource_quota(quota, namespace).status
    return ((status.used if status else None) or {}).get(resource)


def healthy_namespace(kubectl: Callable[..., Any], core: client.CoreV1Api, namespace: str) -> None:
    """Deployment, Service, Ingress, HPA at its minimum, PDB that allows disruptions: nothing to report."""
    apply(
        kubectl,
        namespace,
        deployment("web", 3),
        service("web", {"app": "web"}),
        ingress("web", "web"),
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 3,
                "maxReplicas": 10,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                    }
                ],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        },
    )
    # The devcluster has no metrics API (HPA controller off): write the status an HPA at its minimum reports.
    now = _now()
    kubectl(
        "patch",
        "hpa",
        "web",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        yaml.safe_dump(
            {
                "status": {
                    "currentReplicas": 3,
                    "desiredReplicas": 3,
                    "currentMetrics": [
                        {
                            "type": "Resource",
                            "resource": {"name": "cpu", "current": {"averageUtilization": 35, "averageValue": "35m"}},
                        }
                    ],
                    "conditions": [
                        {
                            "type": "AbleToScale",
                            "status": "True",
                            "reason": "ReadyForNewScale",
                            "lastTransitionTime": now,
                        },
                        {
                            "type": "ScalingActive",
                            "status": "True",
                            "reason": "ValidMetricFound",
                            "lastTransitionTime": now,
                        },
                        {
                            "type": "ScalingLimited",
                            "status": "True",
                            "reason": "TooFewReplicas",
                            "message": "the desired replica count is less than the minimum replica count",
                            "lastTransitionTime": now,
                        },
                    ],
                }
            }
        ),
    )
    wait_pods(core, namespace, "app=web", 3)
