"""Render the stack from Jinja2 templates and server-side apply it with our own field manager.

Server-side apply with ``force`` both repairs drift (fields we own are set back)
and recreates deleted objects. The Postgres Secret is the exception: it is
created once with a generated password and never written again; so is the Redis one.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from kubernetes import client

from infragenius import kubeapi
from infragenius.settings import Settings

FIELD_MANAGER = "infragenius-operator"
POSTGRES_SECRET = "infragenius-postgres"
REDIS_SECRET = "infragenius-redis"
CACHE_SIGNING_KEY = "cache-signing-key"
# Every object the stack may hold, by kind: the stack Role limits get/patch/update to these names.
OBJECT_NAMES = {
    "deployments": ["infragenius-ollama", "infragenius-redis"],
    "statefulsets": ["infragenius-postgres"],
    "services": ["infragenius-ollama", "infragenius-postgres", "infragenius-redis"],
    "persistentvolumeclaims": ["infragenius-ollama-models"],
    "networkpolicies": ["infragenius-ollama", "infragenius-postgres", "infragenius-redis"],
}
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_PLURALS = {
    ("v1", "Service"): "services",
    ("v1", "Secret"): "secrets",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
}


@dataclass(frozen=True)
class Endpoints:
    """Where the operator finds each component: an external URL or the one it deploys."""

    # The URLs carry passwords: kept out of repr so a logged Endpoints never shows them.
    postgres: str | None = field(repr=False)
    redis: str | None = field(repr=False)
    ollama: str | None
    cache_signing_key: str | None = field(default=None, repr=False)


@dataclass
class EnsureReport:
    applied: list[str] = field(default_factory=list)
    secret_created: bool = False  # the Postgres one
    redis_secret_created: bool = False
    errors: list[str] = field(default_factory=list)


def components(settings: Settings) -> list[str]:
    """The components to deploy: enabled and not replaced by an external URL."""
    wanted = []
    if settings.stack_postgres and settings.postgres_url is None:
        wanted.append("postgres")
    if settings.stack_redis and settings.redis_url is None:
        wanted.append("redis")
    if settings.stack_ollama and not settings.ollama_url:
        wanted.append("ollama")
    return wanted


def render(settings: Settings, owner: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object of the enabled components, as dicts; ``owner`` (an ownerReference) makes the
    garbage collector remove them with the operator's Deployment."""
    values = {
        "namespace": settings.operator_namespace,
        "secret_name": POSTGRES_SECRET,
        "redis_secret_name": REDIS_SECRET,
        "operator_pod_labels": settings.operator_pod_labels,
        "server_pod_labels": settings.server_pod_labels,
        "postgres_image": settings.postgres_image,
        "postgres_storage": settings.postgres_storage,
        "redis_image": settings.redis_image,
        "ollama_image": settings.ollama_image,
        "ollama_gpus": settings.ollama_gpus,
        "ollama_runtime_class": settings.ollama_runtime_class,
        "ollama_node_selector": settings.ollama_node_selector,
        "ollama_tolerations": settings.ollama_tolerations,
        "ollama_storage": settings.ollama_storage,
        "ollama_cpu_request": settings.ollama_cpu_request,
        "ollama_memory_request": settings.ollama_memory_request,
        "ollama_memory_limit": settings.ollama_memory_limit,
        "stack_node_selector": settings.stack_node_selector,
        "stack_tolerations": settings.stack_tolerations,
        "keep_data": settings.stack_keep_data,
    }
    objects: list[dict[str, Any]] = []
    for component in components(settings):
        text = _TEMPLATES.get_template(f"{component}.yaml.j2").render(**values)
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    if owner is not None:
        for obj in objects:
            keeps_data = obj["kind"] == "PersistentVolumeClaim" and settings.stack_keep_data
            if not keeps_data:
                obj["metadata"]["ownerReferences"] = [owner]
    return objects


def operator_owner(api: client.ApiClient, namespace: str, pod_name: str) -> dict[str, Any] | None:
    """An ownerReference to the Deployment that runs this pod (pod -> ReplicaSet -> Deployment), or None
    when the operator does not run as one (a local process, a bare pod)."""

    def controller(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
        refs = obj.get("metadata", {}).get("ownerReferences") or []
        return next((r for r in refs if r.get("controller") and r.get("kind") == kind), None)

    try:
        pod = kubeapi.request(api, "GET", f"/api/v1/namespaces/{namespace}/pods/{pod_name}")
        rs_ref = controller(pod, "ReplicaSet")
        if rs_ref is None:
            return None
        rs = kubeapi.request(api, "GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets/{rs_ref['name']}")
    except client.ApiException:
        return None
    deploy_ref = controller(rs, "Deployment")
    if deploy_ref is None:
        return None
    # Not a controller reference (the stack's workloads have their own controllers) and no
    # blockOwnerDeletion (that would need delete rights on the operator's own Deployment).
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": deploy_ref["name"], "uid": deploy_ref["uid"]}


def _path(obj: dict[str, Any]) -> str:
    api_version, kind = obj["apiVersion"], obj["kind"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    meta = obj["metadata"]
    return f"{prefix}/namespaces/{meta['namespace']}/{_PLURALS[(api_version, kind)]}/{meta['name']}"


def _apply_sync(api: client.ApiClient, obj: dict[str, Any]) -> None:
    kubeapi.request(
        api,
        "PATCH",
        _path(obj),
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        headers={"Content-Type": "application/apply-patch+yaml"},
        body=obj,
    )


def _ensure_secret_sync(
    api: client.ApiClient, namespace: str, component: str = "postgres", owner: dict[str, Any] | None = None
) -> bool:
    """Create the component's password Secret if absent; True when created. An existing Secret is never touched."""
    password = secrets.token_urlsafe(32)
    data = {"password": base64.b64encode(password.encode()).decode()}
    if component == "postgres":
        data["username"] = base64.b64encode(b"infragenius").decode()
    else:  # the key that seals explanation cache entries (HMAC), shared by all replicas
        data[CACHE_SIGNING_KEY] = base64.b64encode(secrets.token_urlsafe(32).encode()).decode()
    metadata: dict[str, Any] = {
        "name": POSTGRES_SECRET if component == "postgres" else REDIS_SECRET,
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/name": component,
            "app.kubernetes.io/instance": "infragenius",
            "app.kubernetes.io/part-of": "infragenius",
            "app.kubernetes.io/managed-by": "infragenius-operator",
        },
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque", "data": data}
    try:
        kubeapi.request(api, "POST", f"/api/v1/namespaces/{namespace}/secrets", body=body)
    except client.ApiException as err:
        if err.status == 409:
            return False
        raise
    return True


def read_password(api: client.ApiClient, namespace: str, name: str, field: str = "password") -> str:
    secret = kubeapi.request(api, "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
    return base64.b64decode(secret["data"][field]).decode()


def read_postgres_password(api: client.ApiClient, namespace: str) -> str:
    return read_password(api, namespace, POSTGRES_SECRET)


async def ensure(api: client.ApiClient, settings: Settings) -> EnsureReport:
    """Bring the stack to its desired state; errors are collected, not raised."""
    report = EnsureReport()
    wanted = components(settings)
    owner = None
    if settings.operator_pod_name:
        owner = await asyncio.to_thread(operator_owner, api, settings.operator_namespace, settings.operator_pod_name)
    # Kept data is useless without its password: the Secrets stay with it.
    secret_owner = None if settings.stack_keep_data else owner
    if "postgres" in wanted:
        try:
            report.secret_created = await asyncio.to_thread(
                _ensure_secret_sync, api, settings.operator_namespace, "postgres", secret_owner
            )
        except client.ApiException as err:
            report.errors.append(f"Secret/{POSTGRES_SECRET}: {err.status} {err.reason}")
    if "redis" in wanted:
        try:
            report.redis_secret_created = await asyncio.to_thread(
                _ensure_secret_sync, api, settings.operator_namespace, "redis", secret_owner
            )
        except client.ApiException as err:
            report.errors.append(f"Secret/{REDIS_SECRET}: {err.status} {err.reason}")
    for obj in render(settings, owner):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            await asyncio.to_thread(_apply_sync, api, obj)
            report.applied.append(name)
        except client.ApiException as err:
            report.errors.append(f"{name}: {err.status} {err.reason}")
    return report


def endpoints(settings: Settings, api: client.ApiClient | None = None) -> Endpoints:
    """Connection URLs: external ones win; deployed components are reached by their Service DNS names."""
    ns = settings.operator_namespace
    deployed = settings.manages_stack
    postgres = settings.postgres_url.get_secret_value() if settings.postgres_url else None
    if postgres is None and deployed and settings.stack_postgres and api is not None:
        try:
            password = read_postgres_password(api, ns)
        except (client.ApiException, KeyError):
            password = None
        if password:
            postgres = f"postgresql://infragenius:{password}@infragenius-postgres.{ns}.svc:5432/infragenius"
    redis = settings.redis_url.get_secret_value() if settings.redis_url else None
    signing_key: str | None = None
    if redis is None and deployed and settings.stack_redis and api is not None:
        # The deployed Redis requires its generated password; without it there is no cache.
        try:
            redis_password = read_password(api, ns, REDIS_SECRET)
        except (client.ApiException, KeyError):
            redis_password = None
        if redis_password:
            quoted = urllib.parse.quote(redis_password, safe="")
            redis = f"redis://:{quoted}@infragenius-redis.{ns}.svc:6379/0"
            try:
                signing_key = read_password(api, ns, REDIS_SECRET, CACHE_SIGNING_KEY)
            except (client.ApiException, KeyError):
                signing_key = None  # a Secret from before the key existed: the operator makes its own
    ollama = settings.ollama_url
    if ollama is None and deployed and settings.stack_ollama:
        ollama = f"http://infragenius-ollama.{ns}.svc:11434"
    if settings.cache_signing_key is not None:
        signing_key = settings.cache_signing_key.get_secret_value()
    return Endpoints(postgres=postgres, redis=redis, ollama=ollama, cache_signing_key=signing_key)


def stack_rules() -> list[dict[str, Any]]:
    """The namespaced Role the operator needs in its own namespace to manage the stack."""
    groups = {"deployments": "apps", "statefulsets": "apps", "networkpolicies": "networking.k8s.io"}
    rules: list[dict[str, Any]] = []
    for plural, names in OBJECT_NAMES.items():
        group = groups.get(plural, "")
        # RBAC cannot limit create by name (the name is in the body, not the URL), so create stays open;
        # everything that touches an existing object is limited to the stack's own names.
        rules.append({"apiGroups": [group], "resources": [plural], "verbs": ["create"]})
        rules.append(
            {"apiGroups": [group], "resources": [plural], "resourceNames": names, "verbs": ["get", "patch", "update"]}
        )
    # Secrets: create the passwords once and read them back; never update or list others' data.
    rules.append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]})
    rules.append(
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [POSTGRES_SECRET, REDIS_SECRET],
            "verbs": ["get"],
        }
    )
    return rules
