"""The Helm chart's static parts: CRD copies, generated RBAC, values schema (no helm needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from infragenius.rbac import render_rules, render_server_rules, render_server_stack_rules, render_stack_rules
from infragenius.server.rbac_rules import SERVER_RULES, SERVER_STACK_RULES
from infragenius.settings import Settings
from infragenius.stack.apply import stack_rules

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "infragenius-operator"


def test_chart_crds_are_identical_copies_of_crds() -> None:
    ours = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert ours, "no CRDs in crds/"
    assert chart == ours, "copy crds/*.yaml to charts/infragenius-operator/crds/"


def test_chart_rbac_files_are_generated() -> None:
    assert (CHART / "files" / "clusterrole-rules.yaml").read_text() == render_rules(), "run `infragenius rbac`"
    path = CHART / "files" / "stack-role-rules.yaml"
    assert path.read_text() == render_stack_rules(), "run `infragenius rbac`"
    assert yaml.safe_load(path.read_text()) == stack_rules()


def test_chart_server_rbac_files_are_generated_and_least_privilege() -> None:
    """The server's ServiceAccount gets exactly SERVER_RULES and SERVER_STACK_RULES, through `infragenius rbac`."""
    cluster_path = CHART / "files" / "server-clusterrole-rules.yaml"
    stack_path = CHART / "files" / "server-stack-role-rules.yaml"
    assert cluster_path.read_text() == render_server_rules(), "run `infragenius rbac`"
    assert stack_path.read_text() == render_server_stack_rules(), "run `infragenius rbac`"
    assert yaml.safe_load(cluster_path.read_text()) == SERVER_RULES
    assert yaml.safe_load(stack_path.read_text()) == SERVER_STACK_RULES
    for rule in SERVER_RULES:
        # No Secrets, no status or patch: the server reads three kinds, creates two, and reviews callers.
        assert "secrets" not in rule["resources"] and not {"patch", "update", "delete"} & set(rule["verbs"]), rule
    # Secrets only by name, get only (the stack's Postgres and Redis URLs).
    (secrets,) = SERVER_STACK_RULES
    assert secrets["verbs"] == ["get"] and secrets["resourceNames"]


def test_chart_may_read_container_logs_and_nothing_more_of_pods_subresources() -> None:
    """gather.logs reads pods/log with GET; no exec, attach, port-forward or log streaming verbs beyond it."""
    rules = yaml.safe_load((CHART / "files" / "clusterrole-rules.yaml").read_text())
    subresources = [(r, rule["verbs"]) for rule in rules for r in rule["resources"] if r.startswith("pods/")]
    assert subresources == [("pods/log", ["get"])]


def test_templates_use_the_generated_rules_not_inline_ones() -> None:
    rbac = (CHART / "templates" / "rbac.yaml").read_text()
    assert '.Files.Get "files/clusterrole-rules.yaml"' in rbac
    assert '.Files.Get "files/stack-role-rules.yaml"' in rbac
    server = (CHART / "templates" / "server-rbac.yaml").read_text()
    assert '.Files.Get "files/server-clusterrole-rules.yaml"' in server
    assert '.Files.Get "files/server-stack-role-rules.yaml"' in server


def _schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


def _values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_default_values_match_the_schema() -> None:
    jsonschema.validate(_values(), _schema())


@pytest.mark.parametrize(
    "patch",
    [
        {"replicaCuont": 1},
        {"stack": {"ollama": {"gpu": 1}}},
        {"stack": {"ollama": {"gpus": "one"}}},
        {"stack": {"postgres": {"storage": "lots"}}},
        {"llm": {"numCtx": 10}},
        {"image": {"pullPolicy": "Sometimes"}},
        {"server": {"replica": 2}},
        {"server": {"replicas": 0}},
        {"server": {"autoscaling": {"targetCPU": 50}}},
        {"server": {"tierLimits": {"free": "lots"}}},
        {"server": {"networkPolicy": {"from": []}}},
    ],
)
def test_schema_rejects_typos_and_bad_values(patch: dict) -> None:
    def merge(base: dict, extra: dict) -> dict:
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        return out

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(merge(_values(), patch), _schema())


@pytest.mark.parametrize("template", ["deployment.yaml", "server-deployment.yaml"])
def test_every_env_the_deployment_sets_is_a_setting(template: str) -> None:
    deployment = (CHART / "templates" / template).read_text()
    names = set(re.findall(r"name: (INFRAGENIUS_[A-Z_]+)", deployment))
    fields = {f"INFRAGENIUS_{name.upper()}" for name in Settings.model_fields}
    assert names and names <= fields, names - fields
    if template == "server-deployment.yaml":
        for secret in ("INFRAGENIUS_POSTGRES_URL", "INFRAGENIUS_REDIS_URL"):
            block = deployment.split(f"name: {secret}", 1)[1].split("- name:", 1)[0]
            assert "secretKeyRef" in block, secret
        assert "fieldPath: metadata.namespace" in deployment  # where the stack's Secrets are
        return
    # The secrets come from Secrets, never from plain values.
    for secret in ("INFRAGENIUS_WEBHOOK_TOKEN", "INFRAGENIUS_POSTGRES_URL", "INFRAGENIUS_REDIS_URL"):
        block = deployment.split(f"name: {secret}", 1)[1].split("- name:", 1)[0]
        assert "secretKeyRef" in block, secret
    assert "fieldPath: metadata.namespace" in deployment  # POD_NAMESPACE


def test_schema_bounds_follow_the_settings() -> None:
    props = _schema()["properties"]
    llm = props["llm"]["properties"]
    assert llm["numCtx"]["minimum"] == 512 and llm["numCtx"]["maximum"] == 131072
    assert props["stack"]["properties"]["ollama"]["properties"]["gpus"]["maximum"] == 16
    values = _values()
    assert values["llm"]["model"] == Settings.model_fields["llm_model"].default
    assert values["stack"]["ollama"]["image"] == Settings.model_fields["ollama_image"].default
    assert values["stack"]["postgres"]["image"] == Settings.model_fields["postgres_image"].default
    assert values["stack"]["redis"]["image"] == Settings.model_fields["redis_image"].default
    assert values["operator"]["healthPort"] == Settings.model_fields["health_port"].default
    reconnect = Settings.model_fields["history_reconnect_max_seconds"]
    assert values["operator"]["historyReconnectMaxSeconds"] == reconnect.default
    bounds = props["operator"]["properties"]["historyReconnectMaxSeconds"]
    ge = next(m.ge for m in reconnect.metadata if hasattr(m, "ge"))
    le = next(m.le for m in reconnect.metadata if hasattr(m, "le"))
    assert (bounds["minimum"], bounds["maximum"]) == (ge, le)
    assert values["webhook"]["port"] == Settings.model_fields["webhook_port"].default
    server = values["server"]
    assert server["enabled"] is False and server["replicas"] == 2
    assert server["port"] == Settings.model_fields["server_port"].default
    assert server["healthPort"] == Settings.model_fields["server_health_port"].default
    assert server["tierLimits"] == Settings.model_fields["server_tier_limits"].get_default(call_default_factory=True)
    assert server["kubernetesTier"] == Settings.model_fields["server_kubernetes_tier"].default
    assert server["authCacheSeconds"] == Settings.model_fields["server_auth_cache_seconds"].default
    assert server["auditRetentionDays"] == Settings.model_fields["server_audit_retention_days"].default
    cache = props["server"]["properties"]["authCacheSeconds"]
    field = Settings.model_fields["server_auth_cache_seconds"]
    ge = next(m.ge for m in field.metadata if hasattr(m, "ge"))
    le = next(m.le for m in field.metadata if hasattr(m, "le"))
    assert (cache["minimum"], cache["maximum"]) == (ge, le)


def test_dockerfile_is_multi_stage_non_root_and_pinned() -> None:
    # It cannot be built here (no Docker); this checks what the chart relies on.
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    user = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user and user[-1].split(":")[0] == "10001"
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    assert "runAsUser: 10001" in deployment
