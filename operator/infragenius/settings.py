"""Operator settings, read from the environment (INFRAGENIUS_*) once at start-up."""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Kubernetes label keys ([prefix/]name) and values, so bad labels fail start-up rather than every rules write.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFRAGENIUS_", extra="ignore")

    kubeconfig: str | None = Field(
        default=None,
        validation_alias=AliasChoices("INFRAGENIUS_KUBECONFIG", "KUBECONFIG"),
        description="Used outside a cluster; in a pod the service account is used.",
    )
    prometheus_url: str | None = Field(default=None, description="Default Prometheus for metrics and SLOs.")
    prometheus_allowed_urls: list[str] = Field(
        default_factory=list,
        description="Prometheus URLs a resource's spec.prometheus.url may name (JSON list), besides "
        "INFRAGENIUS_PROMETHEUS_URL. Anything else is refused: the operator would otherwise fetch any address "
        "a tenant writes.",
    )
    prometheus_tls_verify: bool = Field(default=True, description="Verify Prometheus's TLS certificate.")
    prometheus_ca_file: str | None = Field(default=None, description="CA bundle for Prometheus's certificate.")
    prometheus_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Per Prometheus query.")
    max_concurrent_analyses: int = Field(default=4, ge=1, le=64, description="Runs (of all kinds) gathering at once.")
    list_concurrency: int = Field(default=8, ge=1, le=64, description="Parallel LIST calls per analysis.")
    running_status_after_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Phase Running is written once a run has worked this long; a quicker run goes straight to "
        "Completed with one status write instead of two. 0: Running is written before the work starts.",
    )
    event_cap: int = Field(default=500, ge=10, le=10000, description="Newest warning events kept per snapshot.")
    gather_container_logs: bool = Field(
        default=True,
        description="Read the logs of a few crashing, OOM-killed or unready containers (pods/log) and add their "
        "error lines to the findings' evidence; false: no pods/log request is ever made.",
    )
    container_logs_max: int = Field(default=10, ge=1, le=100, description="Containers whose logs one run reads.")
    container_log_tail_lines: int = Field(default=200, ge=1, le=5000, description="Last lines read per log.")
    container_log_limit_bytes: int = Field(
        default=64 * 1024, ge=1024, le=1024 * 1024, description="Bytes read per log at most."
    )
    container_log_concurrency: int = Field(default=3, ge=1, le=16, description="Log reads in flight per run.")
    container_log_timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="Per log read.")
    namespaces: list[str] = Field(default_factory=list, description="Watch only these namespaces (empty: all).")
    target_namespaces_allowed: list[str] = Field(
        default_factory=list,
        description='Namespaces a resource may target besides its own (JSON list; "*" also allows allNamespaces). '
        "Empty: no operator-level limit; the chart's admission policy still asks the API server whether the "
        "author may list pods there.",
    )
    ollama_url: str | None = Field(default=None, description="Ollama server for explanations; unset disables them.")
    llm_model: str = Field(
        default="llama3.1:8b", max_length=128, description="Default model; spec.llm.model overrides it."
    )
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=600, description="Per model call.")
    llm_num_ctx: int = Field(default=4096, ge=512, le=131072, description="Context window; bounds the prompt.")
    llm_max_reply_tokens: int = Field(default=768, ge=1, le=8192, description="Reply budget, reserved in the context.")
    llm_concurrency: int = Field(default=2, ge=1, le=64, description="In-flight model calls, operator-wide.")
    llm_namespace_concurrency: int = Field(default=1, ge=1, le=64, description="In-flight model calls per namespace.")
    llm_pull: bool = Field(default=True, description="Pull the model at start-up when it is missing.")
    llm_force_anonymize: bool = Field(
        default=True,
        description="Mask names, addresses and secrets before the model sees them, whatever a resource's "
        "spec.llm.anonymize says; false lets resources opt out.",
    )
    llm_breaker_threshold: int = Field(default=2, ge=1, description="Failed calls that open the circuit breaker.")
    llm_breaker_cooldown_seconds: float = Field(
        default=30.0, ge=0, description="How long the open breaker skips the model."
    )
    health_port: int = Field(
        default=8080, ge=0, le=65535, description="Serves /healthz, /readyz, /metrics and the SLO rollout gate."
    )
    slo_rules_enabled: bool = Field(
        default=True,
        description="Write each SLOReview's Prometheus rules (a PrometheusRule where the Prometheus Operator's CRD "
        "is served, else a ConfigMap) into its namespace, owned by it; spec.rules.enabled opts one review out.",
    )
    slo_rule_labels: dict[str, str] = Field(
        default_factory=dict,
        description='Labels on every rules object (JSON), e.g. {"release": "prometheus"} for the Prometheus '
        "Operator's ruleSelector.",
    )
    slo_rollout_gate: Literal["annotated", "all", "off"] = Field(
        default="annotated",
        description="GET /v1/slo/<namespace>/<name>/gate on the health port (unauthenticated): annotated answers "
        'only for SLOReviews annotated infragenius.io/rollout-gate: "true"; all: for every SLOReview; off: never.',
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one object per line with the resource and run id."
    )

    # --- HA: several replicas, one active (Kopf peering) ---
    peering_name: str | None = Field(
        default=None,
        max_length=253,
        description="Name of the (Cluster)KopfPeering object replicas share; unset: standalone, one replica.",
    )
    peering_priority: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="The live replica with the highest priority is active; unset: random, so replicas never tie.",
    )
    peering_lifetime_seconds: int = Field(
        default=60, ge=5, le=3600, description="A replica silent this long is presumed dead; bounds fail-over time."
    )

    # --- the Alertmanager webhook (runs only when a token is set) ---
    webhook_token: SecretStr | None = Field(default=None, description="Bearer token Alertmanager must send.")
    webhook_host: str = Field(default="0.0.0.0", description="Address the webhook listens on.")
    webhook_port: int = Field(default=8081, ge=1, le=65535, description="Port of the Alertmanager webhook.")
    webhook_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Larger webhook bodies get 413."
    )
    webhook_slo_label: str = Field(default="slo", min_length=1, description="Alert label naming the SLOReview.")
    webhook_namespace_label: str = Field(
        default="namespace", min_length=1, description="Alert label naming its namespace."
    )
    webhook_dedupe_size: int = Field(default=10000, ge=1, description="Alert notifications remembered in memory.")
    incident_alert_labels: dict[str, str] = Field(
        default_factory=dict,
        description='Firing alerts with all these labels (JSON, e.g. {"severity": "critical"}) create an '
        "IncidentReport in the namespace their namespace label names; empty: none do.",
    )
    incident_lead_minutes: float = Field(
        default=15, ge=0, le=1440, description="Report window starts this long before startsAt."
    )
    incident_alert_namespaces: list[str] = Field(
        default_factory=list,
        description='Namespaces alerts may open IncidentReports in (JSON list; ["*"]: any). Empty: none, so a '
        "label a tenant controls cannot make the operator write into another tenant's namespace.",
    )
    incident_alert_max_per_request: int = Field(
        default=20, ge=1, le=1000, description="IncidentReports one Alertmanager request may create."
    )
    incident_alert_per_minute: float = Field(
        default=30, gt=0, le=6000, description="IncidentReports alerts may create per namespace and minute."
    )
    webhook_tls_cert_file: str | None = Field(
        default=None, description="PEM certificate for the webhook (with the key file: HTTPS; unset: HTTP)."
    )
    webhook_tls_key_file: str | None = Field(default=None, description="PEM private key for the webhook.")

    # --- the stack the operator deploys in its own namespace ---
    operator_namespace: str = Field(
        default="infragenius-system",
        validation_alias=AliasChoices("INFRAGENIUS_OPERATOR_NAMESPACE", "POD_NAMESPACE"),
        description="Where the operator runs and deploys Postgres, Redis and Ollama.",
    )
    stack_manage: bool | None = Field(
        default=None,
        description="Deploy and keep the stack in its desired state (default: only when running in a cluster, "
        "where its Service names resolve).",
    )
    operator_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "infragenius-operator"},
        description="The operator pods' labels (JSON): the stack's NetworkPolicies admit only pods with these.",
    )
    server_pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description="The `infragenius serve` pods' labels (JSON; the chart sets them with server.enabled): the "
        "stack's Postgres and Redis NetworkPolicies admit these pods too. Empty: only the operator's.",
    )
    stack_resync_seconds: float = Field(default=300.0, ge=1, description="How often drift is repaired.")
    operator_pod_name: str | None = Field(
        default=None,
        max_length=253,
        validation_alias=AliasChoices("INFRAGENIUS_OPERATOR_POD_NAME", "POD_NAME"),
        description="This pod's name (the chart sets it): the stack is owned by the pod's Deployment, so "
        "uninstalling the operator removes the stack.",
    )
    stack_keep_data: bool = Field(
        default=False,
        description="Keep Postgres's and Ollama's volumes when the stack is removed (uninstall keeps history).",
    )
    stack_postgres: bool = Field(default=True, description="Deploy Postgres (ignored when postgres_url is set).")
    stack_redis: bool = Field(default=True, description="Deploy Redis (ignored when redis_url is set).")
    stack_ollama: bool = Field(default=True, description="Deploy Ollama (ignored when ollama_url is set).")
    postgres_url: SecretStr | None = Field(default=None, description="External Postgres; replaces the deployed one.")
    redis_url: SecretStr | None = Field(default=None, description="External Redis; replaces the deployed one.")
    postgres_image: str = Field(default="postgres:15-bookworm", description="Image of the deployed Postgres.")
    postgres_storage: str = Field(default="10Gi", description="PVC for the deployed Postgres.")
    redis_image: str = Field(default="redis:7.0-bookworm", description="Image of the deployed Redis.")
    ollama_image: str = Field(default="ollama/ollama:0.11.4", description="Image of the deployed Ollama.")
    ollama_gpus: int = Field(default=1, ge=0, le=16, description="nvidia.com/gpu requested by Ollama.")
    ollama_runtime_class: str | None = Field(default=None, description="e.g. nvidia")
    ollama_node_selector: dict[str, str] = Field(default_factory=dict, description="Where Ollama may run (JSON).")
    ollama_tolerations: list[dict[str, str]] = Field(
        default_factory=list, description="Tolerations for GPU nodes (JSON)."
    )
    ollama_storage: str = Field(default="50Gi", description="PVC for downloaded models.")
    ollama_cpu_request: str = Field(default="1", max_length=32, description="CPU requested by Ollama.")
    ollama_memory_request: str = Field(default="8Gi", max_length=32, description="Memory requested by Ollama.")
    ollama_memory_limit: str = Field(
        default="32Gi", max_length=32, description="Memory limit of Ollama (a CPU-only test profile needs far less)."
    )
    stack_node_selector: dict[str, str] = Field(
        default_factory=dict, description="Where Postgres, Redis and Ollama run (JSON); Ollama's own selector wins."
    )
    stack_tolerations: list[dict[str, str]] = Field(
        default_factory=list, description="Tolerations for Postgres, Redis and Ollama (JSON)."
    )
    history_buffer: int = Field(default=10000, ge=1, description="Runs kept in memory while Postgres is down.")
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Per notification request.")
    notify_poll_seconds: float = Field(default=1.0, gt=0, le=60, description="How often the outbox is checked.")
    notify_max_attempts: int = Field(default=8, ge=1, le=50, description="Then a notification is failed for good.")
    notify_concurrency: int = Field(default=16, ge=1, le=256, description="Notifications sent at once.")
    notify_default_sinks: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Sinks (JSON list, as spec.notify.sinks) for Analyses that name none; checked at start-up.",
    )
    notify_allowed_hosts: list[str] = Field(
        default_factory=list,
        description='Host patterns (fnmatch, JSON list) sinks may post to, e.g. ["hooks.slack.com", '
        '"*.example.com"]; empty: any host except link-local and metadata addresses.',
    )
    history_reconnect_max_seconds: float = Field(
        default=15.0,
        ge=1,
        le=120,
        description="Longest wait between attempts to reach Postgres while it is down; no attempt is the last.",
    )
    cache_ttl_seconds: int = Field(default=86400, ge=1, description="How long an explanation stays cached.")
    cache_signing_key: SecretStr | None = Field(
        default=None,
        description="Key that seals cache entries (HMAC); the deployed Redis's Secret provides one. Unset with an "
        "external Redis: a random key per process, so replicas do not share entries.",
    )

    # --- `infragenius serve`: the MCP server and the JSON API (issue 16) ---
    server_host: str = Field(default="0.0.0.0", description="Address the MCP server and the /v1 API listen on.")
    server_port: int = Field(default=8090, ge=0, le=65535, description="Port of /mcp and /v1 (authenticated).")
    server_health_port: int = Field(
        default=8091, ge=0, le=65535, description="Port of the server's /healthz, /readyz and /metrics (no auth)."
    )
    server_max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, le=16 * 1024 * 1024, description="Larger request bodies get 413."
    )
    server_tier_limits: dict[str, int] = Field(
        default_factory=lambda: {"free": 60, "team": 600},
        description='Calls per minute per key or identity, by tier (JSON), e.g. {"free": 60, "team": 600}.',
    )
    server_kubernetes_tier: str = Field(
        default="team", min_length=1, description="Tier of callers who authenticate with a Kubernetes token."
    )
    server_auth_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=5,
        description="How long a key lookup or access review is reused; revocation takes effect within it.",
    )
    server_auth_failures_per_minute: int = Field(
        default=600,
        ge=1,
        description="Failed authentications one client address may make a minute before it gets 429 (each costs "
        "a Postgres lookup or a TokenReview).",
    )
    server_trigger_max_wait_seconds: float = Field(
        default=120.0, gt=0, le=600, description="Longest a trigger call waits for its run to finish."
    )
    server_audit_retention_days: int = Field(default=30, ge=1, le=3650, description="Audit rows kept this long.")
    server_audit_batch: int = Field(default=200, ge=1, le=10000, description="Audit rows written per batch at most.")
    server_audit_queue: int = Field(
        default=10000, ge=10, description="Audit rows held in memory while Postgres is slow; more are counted, dropped."
    )
    server_page_size: int = Field(default=20, ge=1, le=200, description="Items per page when a call names none.")

    @field_validator("slo_rule_labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            prefix = key.rsplit("/", 1)[0] if "/" in key else ""
            if not _LABEL_KEY.fullmatch(key) or len(prefix) > 253:
                raise ValueError(f"{key!r} is not a label key")
            if not _LABEL_VALUE.fullmatch(value):
                raise ValueError(f"{value!r} (label {key}) is not a label value")
        return labels

    @property
    def manages_stack(self) -> bool:
        if self.stack_manage is not None:
            return self.stack_manage
        return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
