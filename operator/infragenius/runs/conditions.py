"""Status conditions with Kubernetes semantics: a transition time that moves only on change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infragenius.kube.time import now_rfc3339
from infragenius.models.api import ConditionType, Reason
from infragenius.models.common import Condition, ConditionStatus


def set_condition(
    existing: Sequence[Mapping[str, Any]] | None,
    type_: ConditionType,
    status: ConditionStatus,
    reason: Reason,
    message: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """Return the conditions with ``type_`` replaced, keeping its transition time if the status is unchanged."""
    previous = next((c for c in existing or [] if c.get("type") == type_), None)
    transition = (
        previous["lastTransitionTime"]
        if previous and previous.get("status") == status.value and previous.get("lastTransitionTime")
        else now_rfc3339()
    )
    new = Condition(
        type=type_.value,
        status=status,
        reason=reason.value,
        message=message[:1024],
        last_transition_time=transition,
        observed_generation=generation,
    ).model_dump(by_alias=True, exclude_none=True)
    return [dict(c) for c in existing or [] if c.get("type") != type_] + [new]


def without_condition(existing: Sequence[Mapping[str, Any]] | None, type_: ConditionType) -> list[dict[str, Any]]:
    return [dict(c) for c in existing or [] if c.get("type") != type_]


def ready(status: Mapping[str, Any], ok: bool, reason: Reason, message: str, generation: int) -> list[dict[str, Any]]:
    """The status's conditions with ``Ready`` set."""
    value = ConditionStatus.true if ok else ConditionStatus.false
    return set_condition(status.get("conditions"), ConditionType.ready, value, reason, message, generation)
