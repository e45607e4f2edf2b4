"""Label selectors: LabelSelector (matchLabels/matchExpressions) and Service-style map selectors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Evaluate a LabelSelector against labels.

    An empty selector matches everything; a missing (None) selector matches nothing.
    """
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def map_selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """A Service-style plain map selector; an empty or missing one selects nothing."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def is_label_selector(selector: Mapping[str, Any]) -> bool:
    return "matchLabels" in selector or "matchExpressions" in selector


def selector_text(selector: Mapping[str, Any] | None, *, api_operators: bool = False) -> str:
    """A LabelSelector or a map selector as text for evidence and commands.

    Expressions read in ``kubectl -l`` syntax ("env in (a,b)", "!canary"); ``api_operators`` spells them
    as the API does ("env In (a,b)", "canary DoesNotExist"), which some findings' titles have always used.
    "<none>" for a missing selector, "<everything>" for an empty LabelSelector.
    """
    if not selector:
        return "<none>"
    if not is_label_selector(selector):
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or ():
        parts.append(_api_expression(expr) if api_operators else _kubectl_expression(expr))
    return ",".join(p for p in parts if p) or "<everything>"


def _kubectl_expression(expr: Mapping[str, Any]) -> str:
    op, key, values = expr.get("operator"), expr.get("key"), ",".join(expr.get("values") or ())
    if op == "In":
        return f"{key} in ({values})"
    if op == "NotIn":
        return f"{key} notin ({values})"
    if op == "Exists":
        return str(key)
    if op == "DoesNotExist":
        return f"!{key}"
    return ""


def _api_expression(expr: Mapping[str, Any]) -> str:
    values = ",".join(expr.get("values") or [])
    text = f"{expr.get('key')} {expr.get('operator')}"
    return f"{text} ({values})" if values else text
