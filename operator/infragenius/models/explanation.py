"""The structured explanation an LLM returns, and the LLM stage's record in status."""

from __future__ import annotations

import copy
import functools
from enum import Enum
from typing import Any

from pydantic import Field

from infragenius.models.common import CamelModel


class Confidence(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"


class RootCause(CamelModel):
    title: str = Field(max_length=160)
    finding_ids: list[str] = Field(min_length=1, max_length=5, description="Ids of the findings this cause explains.")
    reasoning: str = Field(max_length=400)


class RemediationStep(CamelModel):
    action: str = Field(max_length=240)
    command: str = Field(default="", max_length=240, description="A command to run by hand; never executed.")


class Explanation(CamelModel):
    """What the model must produce; bounded so that a constrained reply always terminates."""

    summary: str = Field(max_length=400)
    root_causes: list[RootCause] = Field(min_length=1, max_length=3)
    remediation: list[RemediationStep] = Field(min_length=1, max_length=5)
    confidence: Confidence


def explanation_schema(finding_ids: list[str]) -> dict[str, Any]:
    """JSON schema for Ollama's ``format``: finding ids are an enum of the ids actually sent."""
    schema = copy.deepcopy(_base_schema())
    ids = schema["properties"]["rootCauses"]["items"]["properties"]["findingIds"]
    ids["items"] = {"type": "string", "enum": finding_ids} if finding_ids else {"type": "string", "maxLength": 16}
    return schema


@functools.lru_cache(maxsize=1)
def _base_schema() -> dict[str, Any]:
    raw = Explanation.model_json_schema()
    return _inline(raw, raw.get("$defs", {}))


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Resolve $ref and drop titles: grammar converters handle plain, self-contained schemas best."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        out = {}
        for key, value in node.items():
            if key in ("$defs", "title"):
                continue
            if key == "properties":  # a map of field names: a field may be called "title"
                out[key] = {name: _inline(sub, defs) for name, sub in value.items()}
            else:
                out[key] = _inline(value, defs)
        return out
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


class ExplainedStatus(CamelModel):
    """The LLM stage as recorded in status."""

    model: str = Field(max_length=128)
    prompt_version: str = Field(max_length=32)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model_seconds: float | None = None
    stage_seconds: float | None = None
    findings_sent: int = 0
    findings_total: int = 0
    cached: bool = False
    attempts: int = 0
    commands_dropped: int = Field(default=0, description="Commands the model proposed that the allowlist refused.")
    summary: str | None = Field(default=None, max_length=400)
    root_causes: list[RootCause] = Field(default_factory=list, max_length=3)
    remediation: list[RemediationStep] = Field(default_factory=list, max_length=5)
    confidence: Confidence | None = None
