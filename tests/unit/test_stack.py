"""The stack the operator deploys: Redis needs a generated password, only the operator's pods get in."""

from __future__ import annotations

import base64
import json
from typing import Any
from unittest import mock

import pytest

from infragenius.settings import Settings
from infragenius.stack import apply as stack
from infragenius.stack.apply import OBJECT_NAMES, POSTGRES_SECRET, REDIS_SECRET, endpoints, render, stack_rules

OPERATOR_LABELS = {"app.kubernetes.io/name": "infragenius-operator", "app.kubernetes.io/instance": "ig"}
PORTS = {"postgres": 5432, "redis": 6379, "ollama": 11434}


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in ("INFRAGENIUS_REDIS_URL", "INFRAGENIUS_POSTGRES_URL", "INFRAGENIUS_OLLAMA_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("INFRAGENIUS_OPERATOR_NAMESPACE", "ops")
    monkeypatch.setenv("INFRAGENIUS_OPERATOR_POD_LABELS", json.dumps(OPERATOR_LABELS))
    monkeypatch.setenv("INFRAGENIUS_STACK_MANAGE", "true")
    return Settings()


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def test_redis_requires_the_password_from_its_generated_secret(settings: Settings) -> None:
    redis = _one(render(settings), "Deployment", "infragenius-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": REDIS_SECRET, "key": "password"}
    script = " ".join(container["command"] + container["args"])
    assert "requirepass $REDIS_PASSWORD" in script
    # Fed on stdin, not as an argument: nothing to see in the process list or the pod spec.
    assert "--requirepass" not in script and "redis-server -" in script


@pytest.mark.parametrize("component", ["postgres", "redis", "ollama"])
def test_only_the_operators_pods_reach_each_component(settings: Settings, component: str) -> None:
    objects = render(settings)
    policy = _one(objects, "NetworkPolicy", f"infragenius-{component}")
    assert policy["metadata"]["namespace"] == "ops"
    workload = next(
        o for o in objects if o["kind"] in ("Deployment", "StatefulSet") and component in o["metadata"]["name"]
    )
    assert policy["spec"]["podSelector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    # A podSelector alone: pods with the operator's labels in the stack's (the operator's) namespace.
    assert rule["from"] == [{"podSelector": {"matchLabels": OPERATOR_LABELS}}]
    assert rule["ports"] == [{"port": PORTS[component], "protocol": "TCP"}]


def test_ollama_runs_unprivileged(settings: Settings) -> None:
    spec = _one(render(settings), "Deployment", "infragenius-ollama")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert env["OLLAMA_MODELS"].startswith("/var/lib/ollama/") and "/var/lib/ollama" in mounts
    assert env["HOME"] == "/tmp" and "/tmp" in mounts


def test_the_stack_role_limits_changes_to_the_stacks_own_names(settings: Settings) -> None:
    rendered: dict[str, set[str]] = {}
    for obj in render(settings):
        plural = stack._PLURALS[(obj["apiVersion"], obj["kind"])]
        rendered.setdefault(plural, set()).add(obj["metadata"]["name"])
    assert {k: set(v) for k, v in OBJECT_NAMES.items()} == rendered
    for rule in stack_rules():
        (resource,) = rule["resources"]
        if "resourceNames" in rule:
            expected = OBJECT_NAMES.get(resource, [POSTGRES_SECRET, REDIS_SECRET])
            assert sorted(rule["resourceNames"]) == sorted(expected)
        else:  # RBAC cannot limit create by name; nothing else is granted unnamed
            assert rule["verbs"] == ["create"], rule
    for plural in OBJECT_NAMES:
        verbs = [v for r in stack_rules() if r["resources"] == [plural] and "resourceNames" in r for v in r["verbs"]]
        assert sorted(verbs) == ["get", "patch", "update"], plural


def _secret(password: str) -> dict[str, Any]:
    return {"data": {"password": base64.b64encode(password.encode()).decode()}}


def test_the_redis_url_carries_the_password_read_from_the_secret(settings: Settings) -> None:
    reads: list[str] = []

    def request(_api: object, method: str, path: str, **_kw: object) -> dict[str, Any]:
        reads.append(path)
        return _secret("pg-secret" if path.endswith(POSTGRES_SECRET) else "r3d/is+pw")

    with mock.patch.object(stack.kubeapi, "request", side_effect=request):
        urls = endpoints(settings, api=mock.Mock())
    assert urls.redis == "redis://:r3d%2Fis%2Bpw@infragenius-redis.ops.svc:6379/0"
    assert f"/api/v1/namespaces/ops/secrets/{REDIS_SECRET}" in reads
    assert "pg-secret" in (urls.postgres or "")
    assert "r3d" not in repr(urls) and "pg-secret" not in repr(urls)  # never logged by accident


def test_without_the_redis_password_there_is_no_redis_url(settings: Settings) -> None:
    from kubernetes import client

    with mock.patch.object(stack.kubeapi, "request", side_effect=client.ApiException(status=403)):
        assert endpoints(settings, api=mock.Mock()).redis is None


def test_the_redis_secret_is_created_once_and_never_overwritten() -> None:
    from kubernetes import client

    calls: list[tuple[str, str, dict[str, Any]]] = []

    def request(_api: object, method: str, path: str, body: dict[str, Any] | None = None, **_kw: object) -> None:
        calls.append((method, path, body or {}))
        if len(calls) > 1:
            raise client.ApiException(status=409)

    with mock.patch.object(stack.kubeapi, "request", side_effect=request):
        assert stack._ensure_secret_sync(mock.Mock(), "ops", "redis") is True
        assert stack._ensure_secret_sync(mock.Mock(), "ops", "redis") is False
    assert [(m, p) for m, p, _ in calls] == [("POST", "/api/v1/namespaces/ops/secrets")] * 2  # never PUT or PATCH
    body = calls[0][2]
    assert body["metadata"]["name"] == REDIS_SECRET
    assert len(base64.b64decode(body["data"]["password"])) >= 40
    assert body["data"]["password"] != calls[1][2]["data"]["password"]  # generated, not a constant


def _pod_specs(settings: Settings) -> dict[str, dict[str, Any]]:
    objects = render(settings)
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
    }


def test_the_whole_stack_follows_the_stack_node_selector_and_tolerations(monkeypatch: pytest.MonkeyPatch) -> None:
    taint = {"key": "infragenius.io/real-node", "operator": "Exists", "effect": "NoSchedule"}
    monkeypatch.setenv("INFRAGENIUS_STACK_NODE_SELECTOR", json.dumps({"infragenius.io/real-node": "true"}))
    monkeypatch.setenv("INFRAGENIUS_STACK_TOLERATIONS", json.dumps([taint]))
    specs = _pod_specs(Settings())
    assert set(specs) == {"infragenius-postgres", "infragenius-redis", "infragenius-ollama"}
    for spec in specs.values():
        assert spec["nodeSelector"] == {"infragenius.io/real-node": "true"}
        assert spec["tolerations"] == [taint]


def test_ollamas_own_selector_wins_and_tolerations_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    monkeypatch.setenv("INFRAGENIUS_STACK_NODE_SELECTOR", json.dumps({"pool": "general"}))
    monkeypatch.setenv("INFRAGENIUS_STACK_TOLERATIONS", json.dumps([{"key": "dedicated", "operator": "Exists"}]))
    monkeypatch.setenv("INFRAGENIUS_OLLAMA_NODE_SELECTOR", json.dumps({"pool": "gpu"}))
    monkeypatch.setenv("INFRAGENIUS_OLLAMA_TOLERATIONS", json.dumps([gpu]))
    specs = _pod_specs(Settings())
    assert specs["infragenius-ollama"]["nodeSelector"] == {"pool": "gpu"}
    assert specs["infragenius-ollama"]["tolerations"] == [gpu, {"key": "dedicated", "operator": "Exists"}]
    assert specs["infragenius-postgres"]["nodeSelector"] == {"pool": "general"}


def test_without_scheduling_settings_the_pods_carry_none(settings: Settings) -> None:
    for spec in _pod_specs(settings).values():
        assert "nodeSelector" not in spec and "tolerations" not in spec


def test_a_cpu_only_ollama_profile_sets_its_requests_and_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRAGENIUS_OLLAMA_GPUS", "0")
    monkeypatch.setenv("INFRAGENIUS_OLLAMA_CPU_REQUEST", "100m")
    monkeypatch.setenv("INFRAGENIUS_OLLAMA_MEMORY_REQUEST", "256Mi")
    monkeypatch.setenv("INFRAGENIUS_OLLAMA_MEMORY_LIMIT", "1Gi")
    (container,) = _pod_specs(Settings())["infragenius-ollama"]["containers"]
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


OWNER = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ig-infragenius-operator", "uid": "0b7c-uid"}


def test_with_an_owner_every_object_goes_with_the_operators_deployment(settings: Settings) -> None:
    objects = render(settings, OWNER)
    assert objects and all(o["metadata"]["ownerReferences"] == [OWNER] for o in objects)
    postgres = _one(objects, "StatefulSet", "infragenius-postgres")
    assert postgres["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Delete", "whenScaled": "Retain"}


def test_keeping_data_leaves_the_volumes_unowned_and_retained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFRAGENIUS_STACK_KEEP_DATA", "true")
    objects = render(Settings(), OWNER)
    assert "ownerReferences" not in _one(objects, "PersistentVolumeClaim", "infragenius-ollama-models")["metadata"]
    postgres = _one(objects, "StatefulSet", "infragenius-postgres")
    assert postgres["metadata"]["ownerReferences"] == [OWNER]
    assert postgres["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


def test_without_an_owner_nothing_is_owned(settings: Settings) -> None:
    assert all("ownerReferences" not in o["metadata"] for o in render(settings))


SERVER_LABELS = {"app.kubernetes.io/name": "infragenius-operator-server", "app.kubernetes.io/instance": "ig"}


@pytest.mark.parametrize("component", ["postgres", "redis", "ollama"])
def test_the_servers_pods_reach_postgres_and_redis_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, component: str
) -> None:
    """With the chart's server.enabled, `infragenius serve` keeps keys, limits and audit in Postgres and Redis."""
    monkeypatch.setenv("INFRAGENIUS_SERVER_POD_LABELS", json.dumps(SERVER_LABELS))
    (rule,) = _one(render(Settings()), "NetworkPolicy", f"infragenius-{component}")["spec"]["ingress"]
    operator = {"podSelector": {"matchLabels": OPERATOR_LABELS}}
    server = {"podSelector": {"matchLabels": SERVER_LABELS}}
    # Two peers in one rule's from: either may connect, each only from the stack's namespace (no namespaceSelector).
    assert rule["from"] == ([operator, server] if component != "ollama" else [operator])
    assert rule["ports"] == [{"port": PORTS[component], "protocol": "TCP"}]
