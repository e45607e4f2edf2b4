"""PromQL for the error ratio of each SLI type over one lookback (pure string building)."""

from __future__ import annotations

from infragenius.models.slo import WINDOW_PLACEHOLDER, LatencySLI, RatioSLI, RawSLI, SLISpec


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
