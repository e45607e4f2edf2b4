"""Types shared by every custom resource: conditions, durations, the LLM block."""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Go-style durations without days, so CEL's duration() can read them: 30s, 5m, 1h30m.
DURATION_PATTERN = r"^([0-9]+(s|m|h))+$"
# Prometheus-style range for lookbacks: 30m, 6h, 1d, 1w.
PROM_RANGE_PATTERN = r"^[0-9]+(s|m|h|d|w)$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]
PromRange = Annotated[str, Field(pattern=PROM_RANGE_PATTERN, max_length=16)]

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> dt.timedelta:
    """Parse '1h30m', '5m', '2d' into a timedelta; raise ValueError on anything else."""
    parts = re.findall(r"([0-9]+)([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}; use forms like 30s, 5m, 1h30m")
    return dt.timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


class CamelModel(BaseModel):
    """camelCase on the wire (as Kubernetes does), snake_case in Python; unknown fields rejected."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ConditionStatus(str, Enum):
    true = "True"
    false = "False"
    unknown = "Unknown"


class Condition(CamelModel):
    """A status condition as `kubectl wait` and Argo CD read it."""

    type: str = Field(max_length=64)
    status: ConditionStatus
    reason: str = Field(max_length=64, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=1024)
    last_transition_time: str = Field(description="RFC 3339 time of the last status change.")
    observed_generation: int | None = Field(default=None, ge=0)


class LLMSpec(CamelModel):
    """Optional LLM explanation of the findings (off by default)."""

    enabled: bool = False
    model: str | None = Field(default=None, max_length=128, description="Overrides the operator's default model.")
    anonymize: bool = Field(default=True, description="Mask names, addresses and secrets before they leave.")
