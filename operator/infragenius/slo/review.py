"""Run an SLO's error-ratio queries against Prometheus (the I/O edge); failures come back as data."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from dataclasses import dataclass, field
from typing import Any

from infragenius.gather.prometheus import PrometheusError, PrometheusTarget, connect, describe
from infragenius.models.slo import BURN_WINDOWS, AttributionStatus, AttributionUnavailable, SLISpec
from infragenius.slo.math import attribution_shares, describe_attribution
from infragenius.slo.queries import TOTAL_LABEL, AttributionRefused, attribution_query, window_queries


@dataclass(frozen=True)
class ReviewData:
    """Error ratios at one instant: the SLO window's and each burn lookback's (None: no events there)."""

    evaluated_at: dt.datetime
    slo_window: str
    window_error_ratio: float | None
    error_ratios: dict[str, float | None]
    queries: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)  # lookback -> what went wrong
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    @property
    def no_data(self) -> bool:
        return not self.errors and self.window_error_ratio is None


def review_instant(at: dt.datetime | None) -> dt.datetime:
    """The instant a review describes: ``at`` (an evaluationTime), else now; zone-less means UTC, as in Kubernetes."""
    at = at or dt.datetime.now(dt.UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


class QueryFailed(Exception):
    pass


def _value(result: list[dict[str, Any]]) -> float | None:
    if not result:
        return None
    if len(result) > 1:
        raise QueryFailed(f"returned {len(result)} series; the SLI query must yield one")
    value = float(result[0]["value"][1])
    if math.isnan(value):
        return None  # 0/0: no events in this lookback
    if math.isinf(value):
        raise QueryFailed("returned an infinite error ratio (errors without total events?)")
    return value


def _query_all(
    target: PrometheusTarget, queries: dict[str, str], at: dt.datetime, timeout: float
) -> tuple[dict[str, float | None], dict[str, str]]:
    values: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    with connect(target, timeout) as prom:
        for window, promql in queries.items():
            try:
                values[window] = _value(prom.instant(promql, at))
            except (PrometheusError, QueryFailed) as err:
                errors[window] = str(err)[:400]
                break  # one failure already costs the verdict; the other lookbacks would mostly fail alike
    return values, errors


async def collect(
    target: PrometheusTarget,
    sli: SLISpec,
    slo_window: str,
    *,
    at: dt.datetime | None = None,
    timeout: float = 10.0,
    windows: tuple[str, ...] = BURN_WINDOWS,
) -> ReviewData:
    """Query the error ratio over the SLO window and every burn lookback at ``at`` (default: now). Never raises."""
    at = review_instant(at)
    lookbacks = tuple(dict.fromkeys((slo_window, *windows)))
    queries = window_queries(sli, lookbacks)
    started = time.perf_counter()
    try:
        values, errors = await asyncio.wait_for(
            asyncio.to_thread(_query_all, target, queries, at, timeout), timeout * len(queries) + 1
        )
    except Exception as err:  # the overall deadline, or anything the thread could not report
        values, errors = {}, {"*": describe(err) if str(err) else type(err).__name__}
    return ReviewData(
        evaluated_at=at,
        slo_window=slo_window,
        window_error_ratio=values.get(slo_window),
        error_ratios={w: values.get(w) for w in windows},
        queries=queries,
        errors=errors,
        seconds=time.perf_counter() - started,
    )


def _unavailable(reason: AttributionUnavailable, note: str, window: str, labels: list[str]) -> AttributionStatus:
    return AttributionStatus(available=False, window=window, labels=labels, reason=reason, note=note[:512])


def read_attribution(result: list[dict[str, Any]], labels: list[str], window: str) -> AttributionStatus:
    """The status from the attribution query's answer (pure: the unit tests feed it answers)."""
    groups: list[tuple[dict[str, str], float]] = []
    total: float | None = None
    for series in result:
        metric = series.get("metric") or {}
        value = float(series["value"][1])
        if TOTAL_LABEL in metric:
            total = value
        else:
            groups.append((metric, value))
    top = attribution_shares(groups, total, labels)
    if not top:
        return _unavailable(AttributionUnavailable.no_data, f"no errors to attribute over {window}", window, labels)
    if all(not entry.labels for entry in top):
        note = f"the error query keeps none of the labels {', '.join(labels)} (does it sum them away?)"
        return _unavailable(AttributionUnavailable.no_data, note, window, labels)
    return AttributionStatus(
        available=True,
        window=window,
        labels=labels,
        top=top,
        total_errors=total,
        note=describe_attribution(top, window),
    )


async def attribute(
    target: PrometheusTarget,
    sli: SLISpec,
    labels: list[str],
    window: str,
    *,
    at: dt.datetime,
    timeout: float = 10.0,
) -> AttributionStatus:
    """ONE query: the top error contributors over ``window``. Never raises: failures come back as data."""
    try:
        promql = attribution_query(sli, labels, window)
    except AttributionRefused as err:
        return _unavailable(AttributionUnavailable.skipped, str(err), window, labels)

    def run() -> list[dict[str, Any]]:
        with connect(target, timeout) as prom:
            return prom.instant(promql, at)

    try:
        result = await asyncio.wait_for(asyncio.to_thread(run), timeout + 1)
        return read_attribution(result, labels, window)
    except Exception as err:  # the query failing must not fail the review
        detail = describe(err) if str(err) else type(err).__name__
        return _unavailable(AttributionUnavailable.error, f"attribution query failed: {detail}", window, labels)
