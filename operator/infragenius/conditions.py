"""Status conditions with Kubernetes semantics: a transition time that moves only on change."""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence

from infragenius.models.common import Condition, ConditionStatus


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def set_condition(
    existing: Sequence[dict[str, Any]] | None,
    type_: str,
    status: ConditionStatus,
    reason: str,
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
        type=type_,
        status=status,
        reason=reason,
        message=message[:1024],
        last_transition_time=transition,
        observed_generation=generation,
    ).model_dump(by_alias=True, exclude_none=True)
    return [c for c in existing or [] if c.get("type") != type_] + [new]
