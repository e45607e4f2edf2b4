"""Operator settings, read from the environment (INFRAGENIUS_*) once at start-up."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFRAGENIUS_", extra="ignore")

    kubeconfig: str | None = Field(
        default=None,
        validation_alias=AliasChoices("INFRAGENIUS_KUBECONFIG", "KUBECONFIG"),
        description="Used outside a cluster; in a pod the service account is used.",
    )
    prometheus_url: str | None = Field(default=None, description="Default Prometheus for metrics and SLOs.")
    prometheus_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    max_concurrent_analyses: int = Field(default=4, ge=1, le=64)
    list_concurrency: int = Field(default=8, ge=1, le=64, description="Parallel LIST calls per analysis.")
    event_cap: int = Field(default=500, ge=10, le=10000, description="Newest warning events kept per snapshot.")
    namespaces: list[str] = Field(default_factory=list, description="Watch only these namespaces (empty: all).")
    ollama_url: str | None = Field(default=None, description="Ollama server for explanations; unset disables them.")
    llm_model: str = Field(default="llama3.1:8b", max_length=128)
    llm_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    llm_num_ctx: int = Field(default=4096, ge=512, le=131072, description="Context window; bounds the prompt.")
    llm_max_reply_tokens: int = Field(default=768, ge=1, le=8192)
    llm_concurrency: int = Field(default=2, ge=1, le=64, description="In-flight model calls, operator-wide.")
    llm_namespace_concurrency: int = Field(default=1, ge=1, le=64, description="In-flight model calls per namespace.")
    llm_pull: bool = Field(default=True, description="Pull the model at start-up when it is missing.")
    llm_breaker_threshold: int = Field(default=2, ge=1)
    llm_breaker_cooldown_seconds: float = Field(default=30.0, ge=0)
    health_port: int = Field(default=8080, ge=1, le=65535)
