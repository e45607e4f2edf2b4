"""The Helm chart against a real API server: lint, template | kubectl apply --dry-run=server, install, uninstall."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from infragenius.settings import Settings
from tests.e2e.conftest import E2ECluster, _unavailable
from tests.e2e.support import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "infragenius-operator"
CRD_NAMES = sorted(yaml.safe_load(p.read_text())["metadata"]["name"] for p in (ROOT / "crds").glob("*.yaml"))

# Everything a platform team is likely to change at once.
CUSTOM_VALUES: dict[str, Any] = {
    "image": {"repository": "registry.example.com/infragenius", "tag": "v9.9.9", "pullPolicy": "Always"},
    "replicaCount": 3,
    "peering": {"name": "ig-peers", "lifetimeSeconds": 20},
    "grafanaDashboard": {"enabled": True},
    "sloRules": {"enabled": False, "labels": {"release": "kube-prometheus"}},
    "rolloutGate": {"mode": "all"},
    "serviceAccount": {"name": "ig-operator"},
    "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
    "operator": {
        "healthPort": 9090,
        "namespaces": ["team-a", "team-b"],
        "prometheusUrl": "http://prometheus.monitoring.svc:9090",
        "prometheusAllowedUrls": ["https://thanos.monitoring.svc:10902"],
        "prometheusCaSecret": "monitoring-ca",
        "targetNamespacesAllowed": ["shared"],
        "maxConcurrentAnalyses": 8,
        "extraEnv": [{"name": "INFRAGENIUS_LLM_BREAKER_THRESHOLD", "value": "5"}],
    },
    "llm": {"model": "qwen2.5:7b", "numCtx": 8192, "pull": False, "forceAnonymize": False},
    "webhook": {
        "enabled": True,
        "token": {"value": "s3cret"},
        "incidentAlertLabels": {"severity": "critical"},
        "incidentAlertNamespaces": ["team-a"],
        "incidentAlertPerMinute": 5,
        "tls": {"secretName": "webhook-tls"},
    },
    "networkPolicy": {"enabled": True, "ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
    "stack": {
        "postgres": {"external": {"existingSecret": "pg", "key": "dsn"}},
        "redis": {"enabled": False},
        "ollama": {
            "gpus": 2,
            "runtimeClassName": "nvidia",
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "storage": "200Gi",
        },
    },
}


OPERATOR = "ig-infragenius-operator"
SERVER = "ig-infragenius-operator-server"
# The server with everything optional on: autoscaling, a PDB, a narrower API "from" and an external Redis.
SERVER_VALUES: dict[str, Any] = {
    "server": {
        "enabled": True,
        "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 8, "targetCPUUtilizationPercentage": 60},
        "tierLimits": {"free": 30, "team": 900},
        "networkPolicy": {"apiFrom": [{"namespaceSelector": {"matchLabels": {"assistants": "true"}}}]},
    },
    "networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
}


def _deployment(docs: list[Any], name: str) -> dict[str, Any]:
    (deployment,) = [d for d in docs if d and d["kind"] == "Deployment" and d["metadata"]["name"] == name]
    return deployment


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    from infragenius_devtools.devcluster.build import ensure_helm

    try:
        binary = ensure_helm(echo=False)
    except Exception as err:  # a failed Go build reports through several exception types
        _unavailable(f"helm could not be built: {err}")
    if not binary.exists():
        _unavailable(f"helm is missing at {binary}")
    home = tmp_path_factory.mktemp("helm-home")
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        os.environ[var] = str(home / var.lower())
    yield [str(binary)]


def _run(cmd: list[str], input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, input=input, timeout=300)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}", pytrace=False)
    return result


def _values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _template(helm: list[str], namespace: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run([*helm, "template", "ig", str(CHART), "--namespace", namespace, *extra], check=check)


@pytest.mark.parametrize("custom", [False, True], ids=["default", "custom"])
def test_helm_lint(helm: list[str], tmp_path: Path, custom: bool) -> None:
    extra = ["-f", _values_file(tmp_path, CUSTOM_VALUES)] if custom else []
    result = _run([*helm, "lint", "--strict", str(CHART), *extra])
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("custom", [False, True, "server"], ids=["default", "custom", "server"])
def test_template_is_accepted_by_the_api_server(
    helm: list[str], cluster: E2ECluster, namespace: str, tmp_path: Path, custom: bool | str
) -> None:
    extra = ["-f", _values_file(tmp_path, CUSTOM_VALUES if custom is True else SERVER_VALUES)] if custom else []
    manifest = _template(helm, namespace, "--include-crds", *extra).stdout
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    kinds = sorted({d["kind"] for d in docs})
    expected = {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    }
    assert expected <= set(kinds), kinds
    if custom == "server":
        assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= set(kinds)
    elif custom:
        assert {"NetworkPolicy", "Secret", "PodDisruptionBudget", "ConfigMap", "KopfPeering"} <= set(kinds)
        for watched in CUSTOM_VALUES["operator"]["namespaces"]:  # their KopfPeering objects live there
            cluster.kubectl("create", "namespace", watched, check=False)
    else:
        assert "ClusterKopfPeering" in kinds and "PodDisruptionBudget" not in kinds
        # On by default: the operator's NetworkPolicy and the cross-namespace admission policy.
        assert {"NetworkPolicy", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= set(kinds)
    result = cluster.kubectl("apply", "--dry-run=server", "--server-side", "-f", "-", input=manifest, check=False)
    assert result.returncode == 0, result.stderr
    # The Role is namespaced to the release; the ClusterRole is the generated one.
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "ig-infragenius-operator-stack")
    assert role["metadata"]["namespace"] == namespace
    assert role["rules"] == yaml.safe_load((CHART / "files" / "stack-role-rules.yaml").read_text())
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == OPERATOR)
    assert cluster_role["rules"] == yaml.safe_load((CHART / "files" / "clusterrole-rules.yaml").read_text())


def _settings_from(deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """What the operator would read from the rendered env (secrets and downward API filled in)."""
    for key in list(os.environ):
        if key.startswith("INFRAGENIUS_") or key in ("POD_NAMESPACE", "KUBECONFIG"):
            monkeypatch.delenv(key)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for env in container["env"]:
        value = env.get("value")
        if value is None:
            value = (
                "from-downward-api"
                if "fieldRef" in env["valueFrom"]
                else f"secret:{env['valueFrom']['secretKeyRef']['name']}"
            )
        monkeypatch.setenv(env["name"], value)
    return Settings()


def test_rendered_env_is_read_by_the_settings(helm: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = list(yaml.safe_load_all(_template(helm, "ops", "-f", _values_file(tmp_path, CUSTOM_VALUES)).stdout))
    deployment = _deployment(docs, OPERATOR)
    settings = _settings_from(deployment, monkeypatch)
    assert settings.operator_namespace == "from-downward-api"
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.health_port == 9090
    assert settings.llm_model == "qwen2.5:7b" and settings.llm_num_ctx == 8192 and settings.llm_pull is False
    assert settings.llm_force_anonymize is False
    assert settings.operator_pod_labels == {
        "app.kubernetes.io/name": "infragenius-operator",
        "app.kubernetes.io/instance": "ig",
    }
    assert settings.webhook_token is not None and settings.webhook_token.get_secret_value().startswith("secret:")
    assert settings.incident_alert_labels == {"severity": "critical"}
    assert settings.incident_alert_namespaces == ["team-a"] and settings.incident_alert_per_minute == 5
    assert settings.incident_alert_max_per_request == 20
    assert settings.webhook_tls_cert_file == "/etc/infragenius/webhook-tls/tls.crt"
    assert settings.webhook_tls_key_file == "/etc/infragenius/webhook-tls/tls.key"
    assert settings.prometheus_allowed_urls == ["https://thanos.monitoring.svc:10902"]
    assert settings.prometheus_tls_verify is True
    assert settings.prometheus_ca_file == "/etc/infragenius/prometheus-ca/ca.crt"
    assert settings.target_namespaces_allowed == ["shared"]
    assert settings.slo_rules_enabled is False and settings.slo_rule_labels == {"release": "kube-prometheus"}
    assert settings.slo_rollout_gate == "all"
    mounts = {
        m["name"]: m["mountPath"] for m in deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert mounts["webhook-tls"] == "/etc/infragenius/webhook-tls"
    assert mounts["prometheus-ca"] == "/etc/infragenius/prometheus-ca"
    volumes = {
        v["name"]: v.get("secret", {}).get("secretName") for v in deployment["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["webhook-tls"] == "webhook-tls" and volumes["prometheus-ca"] == "monitoring-ca"
    assert settings.postgres_url is not None and settings.postgres_url.get_secret_value() == "secret:pg"
    assert settings.stack_redis is False and settings.redis_url is None
    assert settings.ollama_gpus == 2 and settings.ollama_runtime_class == "nvidia"
    assert settings.ollama_node_selector == {"gpu": "a100"}
    assert settings.ollama_tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert settings.ollama_storage == "200Gi" and settings.llm_breaker_threshold == 5
    assert settings.peering_name == "ig-peers" and settings.peering_lifetime_seconds == 20
    assert deployment["spec"]["replicas"] == 3
    pdb = next(d for d in docs if d and d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    peerings = sorted(
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d and d["kind"] == "KopfPeering"
    )
    assert peerings == [("team-a", "ig-peers"), ("team-b", "ig-peers")]
    dashboard = next(d for d in docs if d and d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
    assert json.loads(dashboard["data"]["infragenius-operator.json"])["uid"] == "infragenius-operator"
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["infragenius", "operator"]
    assert container["image"] == "registry.example.com/infragenius:v9.9.9"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert {"name": "health", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["serviceAccountName"] == "ig-operator"
    # Defaults: one replica, every setting at the model's default.
    default = _deployment(list(yaml.safe_load_all(_template(helm, "ops").stdout)), OPERATOR)
    assert default["spec"]["replicas"] == 1
    defaults = _settings_from(default, monkeypatch)
    assert defaults.webhook_token is None and defaults.postgres_url is None and defaults.namespaces == []
    # What the chart sets on purpose for a cluster: JSON logs, and peering so replicas can be added.
    chart_choices = {
        "log_format": "json",
        "peering_name": "infragenius",
        "peering_lifetime_seconds": 30,
        # The stack's NetworkPolicies must select this release's pods.
        "operator_pod_labels": {"app.kubernetes.io/name": "infragenius-operator", "app.kubernetes.io/instance": "ig"},
    }
    for name, value in chart_choices.items():
        assert getattr(defaults, name) == value, name
    for name, field in Settings.model_fields.items():
        if name in ("operator_namespace", "operator_pod_name", "stack_manage", *chart_choices):  # downward API
            continue
        assert getattr(defaults, name) == field.get_default(call_default_factory=True), name


@pytest.mark.parametrize(
    ("flag", "complaint"),
    [
        ("replicaCuont=2", "replicaCuont"),
        ("stack.ollama.gpu=2", "gpu"),
        ("stack.ollama.gpus=lots", "gpus"),
    ],
)
def test_a_values_typo_fails_with_a_clear_message(helm: list[str], flag: str, complaint: str) -> None:
    result = _template(helm, "ops", "--set", flag, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def test_webhook_without_a_token_fails_clearly(helm: list[str]) -> None:
    result = _template(helm, "ops", "--set", "webhook.enabled=true", check=False)
    assert result.returncode != 0 and "webhook.token.existingSecret or webhook.token.value" in result.stderr


def test_helm_install_and_uninstall(helm: list[str], cluster: E2ECluster, namespace: str) -> None:
    kube = [f"--kubeconfig={cluster.kubeconfig}", "--namespace", namespace]
    release = "ig-e2e"
    _run([*helm, "install", release, str(CHART), *kube, "--set", "stack.manage=false", "--timeout", "3m"])
    try:
        for crd in CRD_NAMES:
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        name = f"{release}-infragenius-operator"
        result = cluster.kubectl(
            "wait", "-n", namespace, "--for=condition=Available", f"deployment/{name}", "--timeout=120s", check=False
        )
        assert result.returncode == 0, (
            result.stderr + cluster.kubectl("get", "pods,events", "-n", namespace, check=False).stdout
        )
        pods = client.CoreV1Api(cluster.api).list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/instance={release}"
        )
        assert len(pods.items) == 1
        node = client.CoreV1Api(cluster.api).read_node(pods.items[0].spec.node_name)
        if cluster.provider == "local":
            assert node.metadata.annotations.get("kwok.x-k8s.io/node") == "fake" or "kwok" in node.metadata.name
        status = _run([*helm, "status", release, *kube]).stdout
        assert "STATUS: deployed" in status
    finally:
        _run([*helm, "uninstall", release, *kube, "--wait", "--timeout", "2m"])
    rbac_api = client.RbacAuthorizationV1Api(cluster.api)
    leftovers = [r.metadata.name for r in rbac_api.list_cluster_role().items if r.metadata.name.startswith(release)]
    assert leftovers == []
    apps = client.AppsV1Api(cluster.api)
    wait_for(lambda: not apps.list_namespaced_deployment(namespace).items, timeout=60, what="deployment removed")
    assert not list(client.CoreV1Api(cluster.api).list_namespaced_service(namespace).items)
    assert not [
        s
        for s in client.CoreV1Api(cluster.api).list_namespaced_service_account(namespace).items
        if s.metadata.name != "default"
    ]
    # Helm never deletes CRDs (nor the resources users created): they stay established.
    for crd in CRD_NAMES:
        cluster.kubectl("get", f"crd/{crd}")


def test_every_kubernetes_example_is_accepted_by_the_api_server(
    cluster: E2ECluster, crds: None, namespace: str
) -> None:
    """examples/*.yaml with our kinds pass server-side validation (the Argo CD Application needs Argo's CRDs)."""
    applied = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if not all(isinstance(d, dict) and d.get("apiVersion", "").startswith("infragenius.io/") for d in docs):
            continue
        for doc in docs:
            doc["metadata"]["namespace"] = namespace
        manifest = yaml.safe_dump_all(docs)
        result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"
        applied.append(path.name)
    assert {"analysis.yaml", "sloreview-ratio.yaml", "sloreview-latency.yaml", "incidentreport.yaml"} <= set(applied)


def test_webhook_service_matches_the_alertmanager_example(helm: list[str]) -> None:
    result = _run(
        [
            *helm,
            "template",
            "infragenius-operator",
            str(CHART),
            "--namespace",
            "infragenius-system",
            "--set",
            "webhook.enabled=true",
            "--set",
            "webhook.token.existingSecret=tok",
        ]
    )
    services = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Service"}
    receiver = (ROOT / "examples" / "alertmanager-receiver.yaml").read_text()
    port = services["infragenius-operator-webhook"]["spec"]["ports"][0]["port"]
    assert f"http://infragenius-operator-webhook.infragenius-system.svc:{port}/alertmanager" in receiver
    assert not any(d and d["kind"] == "Secret" for d in yaml.safe_load_all(result.stdout))  # existingSecret: none made


def test_the_pod_template_holds_no_hash_of_the_webhook_token(helm: list[str]) -> None:
    """Anyone who may read pods could test guesses of a weak token against an unsalted hash offline."""
    token = "s3cret"
    docs = [
        d
        for d in yaml.safe_load_all(
            _template(helm, "ops", "--set", "webhook.enabled=true", "--set", f"webhook.token.value={token}").stdout
        )
        if d
    ]
    secret = next(d for d in docs if d["kind"] == "Secret")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    assert not [k for k in annotations if k.startswith("checksum/")], annotations
    text = yaml.safe_dump(deployment)
    for material in (token, secret["data"]["token"], yaml.safe_dump(secret)):
        assert hashlib.sha256(material.encode()).hexdigest() not in text
    assert not re.search(r"\b[0-9a-f]{64}\b", text), "a hash in the Deployment"


def _network_policy(helm: list[str], *extra: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(_template(helm, "ops", *extra).stdout) if d]
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    return policy


def _egress_ports(policy: dict[str, Any]) -> set[tuple[int, str]]:
    return {(p["port"], p["protocol"]) for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}


def test_network_policy_is_on_by_default_and_limits_egress(helm: list[str]) -> None:
    policy = _network_policy(helm)
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "infragenius-operator",
        "app.kubernetes.io/instance": "ig",
    }
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": 8080, "protocol": "TCP"}]
    egress = policy["spec"]["egress"]
    assert all(rule.get("ports") for rule in egress), "an egress rule open on every port"
    # The API server, DNS, and the stack's three ports (to the stack's pods only); no Prometheus unless set.
    assert _egress_ports(policy) == {
        (443, "TCP"),
        (6443, "TCP"),
        (53, "UDP"),
        (53, "TCP"),
        (5432, "TCP"),
        (6379, "TCP"),
        (11434, "TCP"),
    }
    dns = next(r for r in egress if (53, "UDP") in {(p["port"], p["protocol"]) for p in r["ports"]})
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    stack = next(r for r in egress if {"port": 6379, "protocol": "TCP"} in r["ports"])
    assert stack["to"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/part-of": "infragenius",
                    "app.kubernetes.io/managed-by": "infragenius-operator",
                }
            }
        }
    ]
    with_prometheus = _network_policy(helm, "--set", "operator.prometheusUrl=http://prometheus.monitoring.svc:9090")
    assert (9090, "TCP") in _egress_ports(with_prometheus)
    without_stack = _network_policy(helm, "--set", "stack.manage=false")
    assert (6379, "TCP") not in _egress_ports(without_stack)
    off = [d for d in yaml.safe_load_all(_template(helm, "ops", "--set", "networkPolicy.enabled=false").stdout) if d]
    assert "NetworkPolicy" not in {d["kind"] for d in off}


# --- server.enabled: `infragenius serve` ------------------------------------------------------------------


def _docs(helm: list[str], *extra: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(_template(helm, "ops", *extra).stdout) if d]


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_server_is_off_by_default(helm: list[str]) -> None:
    docs = _docs(helm)
    assert not [d["metadata"]["name"] for d in docs if "server" in d["metadata"]["name"]]
    (container,) = _deployment(docs, OPERATOR)["spec"]["template"]["spec"]["containers"]
    assert "INFRAGENIUS_SERVER_POD_LABELS" not in {e["name"] for e in container["env"]}


def test_server_deployment_service_and_settings(
    helm: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = _docs(helm, "--set", "server.enabled=true")
    deployment = _deployment(docs, SERVER)
    assert deployment["spec"]["replicas"] == 2
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["infragenius", "serve"]
    assert spec["serviceAccountName"] == SERVER
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"api": 8090, "health": 8091}
    # Probes on the health port, never on the authenticated API port.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and spec["securityContext"]["runAsNonRoot"]
    settings = _settings_from(deployment, monkeypatch)
    assert (settings.server_port, settings.server_health_port) == (8090, 8091)
    assert settings.server_tier_limits == {"free": 60, "team": 600} and settings.server_kubernetes_tier == "team"
    assert settings.manages_stack and settings.stack_postgres and settings.stack_redis
    service = _named(docs, "Service", SERVER)
    assert {(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        ("api", 8090, "api"),
        ("metrics", 8091, "health"),
    }
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _matches(service["spec"]["selector"], labels)
    # The operator's selectors (Deployment, Service, PDB, NetworkPolicy) never take in a server pod, and back.
    operator = _deployment(docs, OPERATOR)
    operator_labels = operator["spec"]["template"]["metadata"]["labels"]
    for selector in (
        operator["spec"]["selector"]["matchLabels"],
        _named(docs, "Service", OPERATOR)["spec"]["selector"],
    ):
        assert not _matches(selector, labels)
    assert not _matches(deployment["spec"]["selector"]["matchLabels"], operator_labels)
    # The operator tells the stack's NetworkPolicies which pods are the server's.
    operator_settings = _settings_from(operator, monkeypatch)
    assert operator_settings.server_pod_labels == deployment["spec"]["selector"]["matchLabels"]
    # Custom values reach the settings.
    custom = _deployment(_docs(helm, "-f", _values_file(tmp_path, SERVER_VALUES)), SERVER)
    assert _settings_from(custom, monkeypatch).server_tier_limits == {"free": 30, "team": 900}


def test_server_rbac_is_its_own_and_generated(helm: list[str]) -> None:
    docs = _docs(helm, "--set", "server.enabled=true")
    account = _named(docs, "ServiceAccount", SERVER)
    assert account["metadata"]["namespace"] == "ops"
    cluster_role = _named(docs, "ClusterRole", SERVER)
    assert cluster_role["rules"] == yaml.safe_load((CHART / "files" / "server-clusterrole-rules.yaml").read_text())
    role = _named(docs, "Role", f"{SERVER}-stack")
    assert role["metadata"]["namespace"] == "ops"
    assert role["rules"] == yaml.safe_load((CHART / "files" / "server-stack-role-rules.yaml").read_text())
    for kind, name in (("ClusterRoleBinding", SERVER), ("RoleBinding", f"{SERVER}-stack")):
        binding = _named(docs, kind, name)
        assert binding["roleRef"]["name"] == name
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVER, "namespace": "ops"}]
    # The operator's bindings do not name the server's account.
    bindings = [
        d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding") and SERVER not in d["metadata"]["name"]
    ]
    assert bindings and all(s["name"] != SERVER for b in bindings for s in b["subjects"])
    # Without a deployed stack (external URLs), no Role on Secrets at all.
    external = _docs(helm, "--set", "server.enabled=true", "--set", "stack.manage=false")
    assert not [d for d in external if d["kind"] == "Role" and d["metadata"]["name"] == f"{SERVER}-stack"]


def test_server_autoscaling_and_disruption_budget(helm: list[str], tmp_path: Path) -> None:
    fixed = _docs(helm, "--set", "server.enabled=true")
    assert not [d for d in fixed if d["kind"] == "HorizontalPodAutoscaler"]
    assert _named(fixed, "PodDisruptionBudget", SERVER)["spec"]["minAvailable"] == 1
    scaled = _docs(helm, "-f", _values_file(tmp_path, SERVER_VALUES))
    hpa = _named(scaled, "HorizontalPodAutoscaler", SERVER)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVER}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 8)
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}
    ]
    # The HPA owns the replica count: the Deployment leaves it unset so an upgrade does not reset it.
    assert "replicas" not in _deployment(scaled, SERVER)["spec"]
    pdb = _named(scaled, "PodDisruptionBudget", SERVER)
    assert pdb["spec"]["selector"]["matchLabels"] == _deployment(scaled, SERVER)["spec"]["selector"]["matchLabels"]
    # One replica: a PDB with minAvailable 1 would block every drain, so there is none.
    single = _docs(helm, "--set", "server.enabled=true", "--set", "server.replicas=1")
    assert not [d for d in single if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == SERVER]
    off = _docs(helm, "--set", "server.enabled=true", "--set", "server.podDisruptionBudget.enabled=false")
    assert not [d for d in off if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == SERVER]
    bad = _template(
        helm, "ops", "--set", "server.enabled=true", "--set", "server.autoscaling.enabled=true",
        "--set", "server.autoscaling.minReplicas=9", check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "minReplicas must not exceed" in bad.stderr


def test_server_network_policy(helm: list[str], tmp_path: Path) -> None:
    docs = _docs(helm, "--set", "server.enabled=true")
    policy = _named(docs, "NetworkPolicy", SERVER)
    assert policy["spec"]["podSelector"]["matchLabels"] == _deployment(docs, SERVER)["spec"]["selector"]["matchLabels"]
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    api, metrics = policy["spec"]["ingress"]
    # The API from any pod in the cluster by default; the metrics port as open as the operator's (ingressFrom).
    assert api == {"ports": [{"port": 8090, "protocol": "TCP"}], "from": [{"namespaceSelector": {}}]}
    assert metrics == {"ports": [{"port": 8091, "protocol": "TCP"}]}
    assert all(rule.get("ports") for rule in policy["spec"]["egress"]), "an egress rule open on every port"
    # DNS, the API server, Postgres and Redis; not Ollama, not Prometheus.
    assert _egress_ports(policy) == {
        (443, "TCP"),
        (6443, "TCP"),
        (53, "UDP"),
        (53, "TCP"),
        (5432, "TCP"),
        (6379, "TCP"),
    }
    stack = next(r for r in policy["spec"]["egress"] if {"port": 5432, "protocol": "TCP"} in r["ports"])
    operators = next(
        r for r in _network_policy(helm)["spec"]["egress"] if {"port": 5432, "protocol": "TCP"} in r["ports"]
    )
    assert stack["to"] == operators["to"]  # the stack's pods only, as for the operator
    narrowed = _named(_docs(helm, "-f", _values_file(tmp_path, SERVER_VALUES)), "NetworkPolicy", SERVER)
    api, metrics = narrowed["spec"]["ingress"]
    assert api["from"] == SERVER_VALUES["server"]["networkPolicy"]["apiFrom"]
    assert metrics["from"] == SERVER_VALUES["networkPolicy"]["ingressFrom"]
    external = _named(
        _docs(helm, "--set", "server.enabled=true", "--set", "stack.manage=false"), "NetworkPolicy", SERVER
    )
    assert (5432, "TCP") not in _egress_ports(external)
    off = _docs(helm, "--set", "server.enabled=true", "--set", "networkPolicy.enabled=false")
    assert "NetworkPolicy" not in {d["kind"] for d in off}
