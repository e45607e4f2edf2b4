"""Small dict factories for the infra detector tests: API objects as `kubectl get -o json` returns them."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from typing import Any, Iterable, Mapping

from infragenius.snapshot import ContainerMetrics, GatherResult, Snapshot

NS = "shop"
TAKEN_AT = dt.datetime(2025, 1, 15, 12, 0, 0, tzinfo=dt.timezone.utc)

Obj = dict[str, Any]


def ts(seconds_ago: float) -> str:
    """An RFC 3339 timestamp ``seconds_ago`` before TAKEN_AT."""
    return (TAKEN_AT - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def uid(kind: str, name: str, namespace: str | None = NS) -> str:
    return hashlib.md5(f"{kind}/{namespace}/{name}".encode()).hexdigest()


def owner_ref(kind: str, name: str, namespace: str | None = NS) -> Obj:
    api = {"ReplicaSet": "apps/v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
           "Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "v1")
    return {"apiVersion": api, "kind": kind, "name": name, "uid": uid(kind, name, namespace), "controller": True,
            "blockOwnerDeletion": True}


def metadata(kind: str, name: str, namespace: str | None = NS, labels: Mapping[str, str] | None = None,
             annotations: Mapping[str, str] | None = None, owner: Obj | None = None, age: float = 86400) -> Obj:
    meta: Obj = {"name": name, "uid": uid(kind, name, namespace), "creationTimestamp": ts(age), "resourceVersion": "1"}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        meta["ownerReferences"] = [owner]
    return meta


# --- pods and workloads ----------------------------------------------------------------------


def container(name: str = "app", image: str = "registry.example.com/shop/app:1.4.2", *, ports: list[Obj] | None = None,
              resources: Obj | None = None, readiness: bool = True, **extra: Any) -> Obj:
    """A well-behaved container by default (pinned image, requests+limits, readiness, non-root)."""
    c: Obj = {
        "name": name,
        "image": image,
        "ports": ports if ports is not None else [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "resources": resources if resources is not None else {
            "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
    }
    if readiness:
        c["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}
    c.update(extra)
    return c


def pod_spec(*containers: Obj, **extra: Any) -> Obj:
    spec: Obj = {"containers": list(containers) or [container()], "restartPolicy": "Always"}
    spec.update(extra)
    return spec


def pod(name: str, labels: Mapping[str, str] | None = None, *, owner: Obj | None = None, ready: bool = True,
        node: str = "node-1", phase: str = "Running", spec: Obj | None = None, age: float = 3600,
        namespace: str = NS) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod",
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


def template(labels: Mapping[str, str], spec: Obj | None = None) -> Obj:
    return {"metadata": {"labels": dict(labels)}, "spec": copy.deepcopy(spec or pod_spec())}


def deployment(name: str, labels: Mapping[str, str] | None = None, *, replicas: int = 3, spec: Obj | None = None,
               namespace: str = NS) -> Obj:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata("Deployment", name, namespace, labels),
        "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)}, "template": template(labels, spec)},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "updatedReplicas": replicas},
    }


def replicaset(name: str, deploy: Obj, namespace: str = NS) -> Obj:
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": metadata("ReplicaSet", name, namespace, labels, owner=owner_ref("Deployment", deploy["metadata"]["name"], namespace)),
        "spec": {"replicas": deploy["spec"]["replicas"], "selector": deploy["spec"]["selector"],
                 "template": copy.deepcopy(deploy["spec"]["template"])},
        "status": {"replicas": deploy["spec"]["replicas"], "readyReplicas": deploy["spec"]["replicas"]},
    }


def workload(kind: str, name: str, labels: Mapping[str, str] | None = None, spec: Obj | None = None,
             namespace: str = NS) -> Obj:
    """A StatefulSet, DaemonSet, Job or CronJob with a pod template."""
    labels = labels or {"app": name}
    tmpl = template(labels, spec)
    if kind in ("Job", "CronJob"):
        tmpl["spec"]["restartPolicy"] = "Never"
    body: Obj = {"selector": {"matchLabels": dict(labels)}, "template": tmpl}
    if kind == "CronJob":
        body = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": tmpl}}}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata(kind, name, namespace, labels), "spec": body, "status": {}}


def deployment_with_pods(name: str, n: int = 3, *, ready: bool | list[bool] = True, spec: Obj | None = None,
                         node: str = "node-1", age: float = 3600) -> tuple[Obj, Obj, list[Obj]]:
    """A Deployment, its ReplicaSet and ``n`` pods owned by the ReplicaSet."""
    deploy = deployment(name, replicas=n, spec=spec)
    rs = replicaset(f"{name}-7d9f8b", deploy)
    readiness = ready if isinstance(ready, list) else [ready] * n
    pods = [
        pod(f"{name}-7d9f8b-{i:05d}", {"app": name, "pod-template-hash": "7d9f8b"},
            owner=owner_ref("ReplicaSet", rs["metadata"]["name"]), ready=readiness[i], spec=spec, node=node, age=age)
        for i in range(n)
    ]
    return deploy, rs, pods


# --- networking ------------------------------------------------------------------------------


def service(name: str, selector: Mapping[str, str] | None = None, *, ports: list[Obj] | None = None,
            type_: str = "ClusterIP", status: Obj | None = None, namespace: str = NS) -> Obj:
    spec: Obj = {"type": type_, "ports": ports if ports is not None else [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    if selector is not None:
        spec["selector"] = dict(selector)
    if type_ == "ExternalName":
        spec = {"type": "ExternalName", "externalName": "db.example.com"}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata("Service", name, namespace),
            "spec": spec, "status": status or {"loadBalancer": {}}}


def endpoint_slice(svc: str, endpoints: Iterable[tuple[str, bool | None, bool]], *, suffix: str = "abcde",
                   namespace: str = NS) -> Obj:
    """``endpoints``: (pod name, ready, terminating); ready None omits the condition."""
    eps = []
    for i, (pod_name, ready, terminating) in enumerate(endpoints):
        conditions: Obj = {"serving": bool(ready), "terminating": terminating}
        if ready is not None:
            conditions["ready"] = ready
        eps.append({"addresses": [f"10.0.1.{i + 1}"], "conditions": conditions, "nodeName": "node-1",
                    "targetRef": {"kind": "Pod", "name": pod_name, "namespace": namespace, "uid": uid("Pod", pod_name, namespace)}})
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": metadata("EndpointSlice", f"{svc}-{suffix}", namespace, {"kubernetes.io/service-name": svc},
                             owner=owner_ref("Service", svc, namespace)),
        "endpoints": eps or None,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def slice_for(svc: str, pods: Iterable[Obj]) -> Obj:
    """An EndpointSlice that mirrors the pods' readiness, as the controller would write it."""
    return endpoint_slice(svc, [(p["metadata"]["name"], p["status"]["conditions"][1]["status"] == "True", False) for p in pods])


def ingress(name: str, backends: list[tuple[str, Obj]] | None = None, *, class_name: str | None = "nginx",
            tls: list[Obj] | None = None, default_backend: Obj | None = None, annotations: Mapping[str, str] | None = None) -> Obj:
    """``backends``: (path, {"name": svc, "port": {"number": 80}}) on host shop.example.com."""
    spec: Obj = {}
    if class_name:
        spec["ingressClassName"] = class_name
    if backends is not None:
        spec["rules"] = [{"host": "shop.example.com", "http": {"paths": [
            {"path": path, "pathType": "Prefix", "backend": {"service": svc}} for path, svc in backends]}}]
    if default_backend is not None:
        spec["defaultBackend"] = {"service": default_backend}
    if tls is not None:
        spec["tls"] = tls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": metadata("Ingress", name, NS, annotations=annotations), "spec": spec, "status": {}}


def ingress_class(name: str = "nginx", *, default: bool = False) -> Obj:
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else None
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": metadata("IngressClass", name, None, annotations=annotations),
            "spec": {"controller": "k8s.io/ingress-nginx"}}


def secret(name: str, namespace: str = NS) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": metadata("Secret", name, namespace)}


def network_policy(name: str, pod_selector: Obj | None, *, types: list[str] | None = None, ingress_rules: list[Obj] | None = None) -> Obj:
    spec: Obj = {"podSelector": pod_selector if pod_selector is not None else {}}
    if types is not None:
        spec["policyTypes"] = types
    if ingress_rules is not None:
        spec["ingress"] = ingress_rules
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata("NetworkPolicy", name), "spec": spec}


def webhook_config(name: str, hooks: list[Obj], *, kind: str = "ValidatingWebhookConfiguration") -> Obj:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": metadata(kind, name, None), "webhooks": hooks}


def webhook(name: str, svc: str, *, namespace: str = NS, port: int | None = 443, failure_policy: str | None = "Fail",
            timeout: int | None = 10) -> Obj:
    service_ref: Obj = {"namespace": namespace, "name": svc, "path": "/validate"}
    if port is not None:
        service_ref["port"] = port
    hook: Obj = {"name": name, "clientConfig": {"service": service_ref, "caBundle": "LS0t"},
                 "admissionReviewVersions": ["v1"], "sideEffects": "None",
                 "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}
    if failure_policy is not None:
        hook["failurePolicy"] = failure_policy
    if timeout is not None:
        hook["timeoutSeconds"] = timeout
    return hook


# --- storage, config, cluster ----------------------------------------------------------------


def configmap(name: str, *, owner: Obj | None = None, annotations: Mapping[str, str] | None = None, namespace: str = NS) -> Obj:
    """Metadata only, as the gatherer stores ConfigMaps."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata("ConfigMap", name, namespace, owner=owner, annotations=annotations)}


def pvc(name: str, *, phase: str = "Bound", storage_class: str | None = "standard", age: float = 3600,
        annotations: Mapping[str, str] | None = None, conditions: list[Obj] | None = None, volume: str | None = "pv-1") -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume and phase in ("Bound", "Lost"):
        spec["volumeName"] = volume
    status: Obj = {"phase": phase}
    if conditions:
        status["conditions"] = conditions
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": metadata("PersistentVolumeClaim", name, annotations=annotations, age=age), "spec": spec, "status": status}


def storage_class(name: str = "standard", *, binding: str = "Immediate", default: bool = False) -> Obj:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else None
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": metadata("StorageClass", name, None, annotations=annotations),
            "provisioner": "rancher.io/local-path", "volumeBindingMode": binding, "reclaimPolicy": "Delete"}


def node(name: str = "node-1", *, ready: str = "True", reason: str = "KubeletReady", message: str = "kubelet is posting ready status",
         heartbeat_ago: float = 10, pressure: Mapping[str, str] | None = None, unschedulable: bool = False,
         taints: list[Obj] | None = None, age: float = 86400 * 30) -> Obj:
    conditions = [
        {"type": t, "status": (pressure or {}).get(t, "False"), "reason": f"KubeletHas{'No' if (pressure or {}).get(t) != 'True' else ''}{t}",
         "message": f"{t} status", "lastHeartbeatTime": ts(heartbeat_ago), "lastTransitionTime": ts(age)}
        for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ]
    conditions.append({"type": "Ready", "status": ready, "reason": reason, "message": message,
                       "lastHeartbeatTime": ts(heartbeat_ago), "lastTransitionTime": ts(min(age, 600))})
    if pressure and "NetworkUnavailable" in pressure:
        conditions.insert(0, {"type": "NetworkUnavailable", "status": pressure["NetworkUnavailable"], "reason": "NoRouteCreated",
                              "message": "routes not created", "lastTransitionTime": ts(300)})
    spec: Obj = {"podCIDR": "10.244.0.0/24"}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    return {"apiVersion": "v1", "kind": "Node", "metadata": metadata("Node", name, None, age=age), "spec": spec,
            "status": {"conditions": conditions}}


def resource_quota(name: str, hard: Mapping[str, str], used: Mapping[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": metadata("ResourceQuota", name),
            "spec": {"hard": dict(hard)}, "status": {"hard": dict(hard), "used": dict(used)}}


def event(kind: str, name: str, reason: str, message: str, *, count: int = 1, seconds_ago: float = 60,
          type_: str = "Warning", series_count: int | None = None, namespace: str | None = NS) -> Obj:
    ev: Obj = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.{reason.lower()}", "namespace": namespace or "default"},
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace, "uid": uid(kind, name, namespace)},
        "reason": reason, "message": message, "type": type_, "count": count,
        "firstTimestamp": ts(seconds_ago + 600), "lastTimestamp": ts(seconds_ago),
    }
    if series_count is not None:
        ev["series"] = {"count": series_count, "lastObservedTime": ts(seconds_ago)}
        ev["lastTimestamp"] = None
    return ev


# --- snapshots -------------------------------------------------------------------------------


def group(objs: Iterable[Obj]) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for obj in objs:
        out.setdefault(obj["kind"], []).append(obj)
    return out


ALL_KINDS = (
    "Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Service", "EndpointSlice",
    "Ingress", "IngressClass", "PersistentVolumeClaim", "StorageClass", "Node", "NetworkPolicy", "ResourceQuota",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ConfigMap", "Secret",
)


def snap(*objs: Obj, events: Iterable[Obj] = (), metrics: Mapping[tuple[str, str, str], ContainerMetrics] | None = None,
         without: Iterable[str] = (), namespace: str = NS, results: Iterable[GatherResult] = (), window: str = "1h") -> Snapshot:
    """A snapshot in which every kind was gathered (possibly empty) except those in ``without``."""
    skip = set(without)
    objects: dict[str, list[Obj]] = {kind: [] for kind in ALL_KINDS if kind not in skip}
    for kind, items in group(objs).items():
        if kind not in skip:
            objects[kind] = items
    return Snapshot.build(namespace=namespace, objects=objects, events=events, metrics=metrics, results=results,
                          taken_at=TAKEN_AT, metrics_window=window)


def healthy_namespace() -> list[Obj]:
    """Everything a well-run namespace has: ready Deployment behind a Service and an Ingress, bound
    PVC, a used ConfigMap, a default-deny policy with an allow rule, a quota with headroom, a webhook
    whose server is up, on a Ready node."""
    spec = pod_spec(container(
        volumeMounts=[{"name": "config", "mountPath": "/etc/app"}, {"name": "data", "mountPath": "/data"}],
        envFrom=[{"configMapRef": {"name": "web-env"}}],
    ), volumes=[
        {"name": "config", "configMap": {"name": "web-config"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
        {"name": "token", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}},
    ], securityContext={"runAsNonRoot": True})
    deploy, rs, pods = deployment_with_pods("web", 3, spec=spec)
    hook_deploy, hook_rs, hook_pods = deployment_with_pods("policy-server", 2)
    return [
        deploy, rs, *pods, hook_deploy, hook_rs, *hook_pods,
        service("web", {"app": "web"}), slice_for("web", pods),
        service("policy-server", {"app": "policy-server"}, ports=[{"name": "https", "port": 443, "targetPort": "http"}]),
        slice_for("policy-server", hook_pods),
        ingress("web", [("/", {"name": "web", "port": {"number": 80}}), ("/api", {"name": "web", "port": {"name": "http"}})],
                tls=[{"hosts": ["shop.example.com"], "secretName": "web-tls"}]),
        ingress_class("nginx", default=True), secret("web-tls"),
        configmap("web-config"), configmap("web-env"), configmap("kube-root-ca.crt"),
        pvc("web-data"), storage_class("standard", default=True),
        node("node-1"), node("node-2"),
        network_policy("default-deny", {}, types=["Ingress"]),
        network_policy("allow-web", {"matchLabels": {"app": "web"}}, types=["Ingress"], ingress_rules=[{}]),
        network_policy("allow-policy-server", {"matchLabels": {"app": "policy-server"}}, types=["Ingress"], ingress_rules=[{}]),
        resource_quota("compute", {"requests.cpu": "4", "requests.memory": "8Gi", "pods": "20"},
                       {"requests.cpu": "500m", "requests.memory": "640Mi", "pods": "5"}),
        webhook_config("shop-policy", [webhook("validate.shop.example.com", "policy-server")]),
        webhook_config("shop-defaults", [webhook("mutate.shop.example.com", "policy-server", failure_policy="Ignore")],
                       kind="MutatingWebhookConfiguration"),
    ]


def healthy_events() -> list[Obj]:
    """Normal events and stale one-offs a healthy namespace still carries."""
    return [
        event("Pod", "web-7d9f8b-00000", "Scheduled", "Successfully assigned", type_="Normal"),
        event("Pod", "web-7d9f8b-00001", "Unhealthy", "Readiness probe failed: connection refused", count=2),
        event("Pod", "web-7d9f8b-00002", "FailedMount", "MountVolume.SetUp failed: timeout", seconds_ago=7200),
    ]


