"""Alertmanager's webhook body (version 4), as far as the operator reads it; other fields are ignored."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    # Alertmanager may add fields; reading only what we need keeps newer senders working.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AlertState(str, Enum):
    firing = "firing"
    resolved = "resolved"


class Alert(_Wire):
    status: AlertState
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: str = Field(alias="startsAt", min_length=1, max_length=64)
    ends_at: str | None = Field(default=None, alias="endsAt", max_length=64)
    generator_url: str | None = Field(default=None, alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=64)


class WebhookPayload(_Wire):
    version: str = Field(max_length=8)
    group_key: str | None = Field(default=None, alias="groupKey")
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts")
    status: AlertState | None = None
    receiver: str | None = None
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    external_url: str | None = Field(default=None, alias="externalURL")
    alerts: list[Alert] = Field(max_length=5000)
