"""PromQL for the error ratio of each SLI type over one lookback (pure string building)."""

from __future__ import annotations

import re

from infragenius.models.slo import (
    LABEL_NAME_PATTERN,
    MAX_ATTRIBUTION_ENTRIES,
    WINDOW_PLACEHOLDER,
    LatencySLI,
    RatioSLI,
    RawSLI,
    SLISpec,
)

# Marks the one series of an attribution answer that is the total, not a group (no user label may use it).
TOTAL_LABEL = "infragenius_attribution_total"


def _counter_increase(query: str, window: str) -> str:
    """A `$window` template is filled in; anything else is taken as a counter selector."""
    if WINDOW_PLACEHOLDER in query:
        return f"sum({query.replace(WINDOW_PLACEHOLDER, window)})"
    return f"sum(increase({query.strip()}[{window}]))"


def ratio_query(sli: RatioSLI, window: str) -> str:
    # sum() on both sides: one series each, so the division matches whatever labels the user's queries keep.
    return f"({_counter_increase(sli.error_query, window)}) / ({_counter_increase(sli.total_query, window)})"


def le_matcher(threshold: float) -> str:
    """Bucket bounds are label strings: Go clients write 1 as "1", Python clients as "1.0"; match both."""
    text = repr(float(threshold))
    if text.endswith(".0"):
        return f'le=~"{text[:-2]}|{text}"'
    return f'le="{text}"'


def latency_query(sli: LatencySLI, window: str) -> str:
    selector = sli.selector.strip().strip(",")
    bucket = ",".join(m for m in (selector, le_matcher(sli.threshold_seconds)) if m)
    count = f"sum(increase({sli.metric}_count{{{selector}}}[{window}]))"
    fast = f"sum(increase({sli.metric}_bucket{{{bucket}}}[{window}]))"
    # (all - fast) / all, not 1 - fast/all: exact when nothing is slow.
    return f"({count} - {fast}) / {count}"


def raw_query(sli: RawSLI, window: str) -> str:
    return sli.error_ratio_query.replace(WINDOW_PLACEHOLDER, window)


def error_ratio_query(sli: SLISpec, window: str) -> str:
    """PromQL whose value at the evaluation instant is the error ratio over ``window`` (NaN without events)."""
    if sli.ratio is not None:
        return ratio_query(sli.ratio, window)
    if sli.latency is not None:
        return latency_query(sli.latency, window)
    if sli.raw is not None:
        return raw_query(sli.raw, window)
    raise ValueError("the SLI names no type")


def window_queries(sli: SLISpec, windows: tuple[str, ...]) -> dict[str, str]:
    return {window: error_ratio_query(sli, window) for window in windows}


class AttributionRefused(ValueError):
    """The SLI cannot be broken down by these labels; the message says why."""


def _errors_by(query: str, by: str, window: str) -> str:
    if WINDOW_PLACEHOLDER in query:
        # The user's expression must keep the labels itself; if it sums them away the answer says so.
        return f"sum by ({by}) ({query.replace(WINDOW_PLACEHOLDER, window)})"
    return f"sum by ({by}) (increase({query.strip()}[{window}]))"


def attribution_query(sli: SLISpec, labels: list[str], window: str, top: int = MAX_ATTRIBUTION_ENTRIES) -> str:
    """ONE query answering the top ``top`` groups of errors by ``labels`` over ``window``, plus the total
    errors as an extra series labelled ``TOTAL_LABEL`` (the ratios the review has are not counts)."""
    if not labels:
        raise AttributionRefused("no attribution labels")
    for label in labels:
        # Validated in the model already; checked again because this string is spliced into PromQL.
        if not re.fullmatch(LABEL_NAME_PATTERN, label) or label.startswith("__") or label == TOTAL_LABEL:
            raise AttributionRefused(f"invalid label name {label[:64]!r}")
    by = ", ".join(labels)
    if sli.ratio is not None:
        errors = _errors_by(sli.ratio.error_query, by, window)
    elif sli.latency is not None:
        if "le" in labels:
            raise AttributionRefused("a latency SLI cannot be broken down by le (the bucket bound)")
        latency = sli.latency
        selector = latency.selector.strip().strip(",")
        bucket = ",".join(m for m in (selector, le_matcher(latency.threshold_seconds)) if m)
        count = f"sum by ({by}) (increase({latency.metric}_count{{{selector}}}[{window}]))"
        fast = f"sum by ({by}) (increase({latency.metric}_bucket{{{bucket}}}[{window}]))"
        errors = f"({count} - {fast})"  # slow requests per group, matched on exactly the grouping labels
    else:
        raise AttributionRefused("a raw SLI yields a ratio, not error events to break down")
    total = f'label_replace(sum({errors}), "{TOTAL_LABEL}", "1", "", "")'
    return f"topk({top}, {errors}) or {total}"
