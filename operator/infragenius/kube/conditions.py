"""``status.conditions`` of raw objects (the API's, not the ones this operator writes)."""

from __future__ import annotations

from infragenius.kube.meta import Obj


def conditions_by_type(obj: Obj) -> dict[str, Obj]:
    """Status conditions by type, in one pass (for objects asked about several types)."""
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or ()}


def condition(obj: Obj, type_: str) -> Obj | None:
    """The status condition of a type, if present."""
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def is_true(cond: Obj | None) -> bool:
    return cond is not None and cond.get("status") == "True"


def is_false(cond: Obj | None) -> bool:
    """Explicitly False; a missing condition or status Unknown is not."""
    return cond is not None and cond.get("status") == "False"


def condition_true(obj: Obj, type_: str) -> bool:
    return is_true(condition(obj, type_))
