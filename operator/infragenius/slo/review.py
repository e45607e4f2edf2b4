"""Run an SLO's error-ratio queries against Prometheus (the I/O edge); failures come back as data."""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import json
import math
import re
import time
from dataclasses import dataclass, field

from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from infragenius.models.slo import BURN_WINDOWS, SLISpec
from infragenius.slo.queries import window_queries


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


class QueryFailed(Exception):
    pass


# prometheus-api-client reports a non-200 reply as "HTTP Status Code 400 (b'<body>')".
_HTTP_ERROR = re.compile(r"^HTTP Status Code (\d+) \((b'.*'|b\".*\")\)$", re.S)


def _describe(err: Exception) -> str:
    """Prometheus's own message for a rejected query (e.g. its parse error), else the exception's."""
    text = str(err)
    found = _HTTP_ERROR.match(text)
    if found:
        try:
            body = json.loads(ast.literal_eval(found.group(2)))
            return f"HTTP {found.group(1)} {body.get('errorType', '')}: {body.get('error', '')}"[:400]
        except (ValueError, SyntaxError, AttributeError):
            pass
    return f"{type(err).__name__}: {text}"[:400]


def _value(result: list[dict]) -> float | None:
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


def _query_all(url: str, queries: dict[str, str], at: dt.datetime, timeout: float) -> tuple[dict, dict]:
    # No retries: an outage should cost one quick failure per review, not a backoff loop.
    prom = PrometheusConnect(url=url, disable_ssl=True, timeout=math.ceil(timeout), retry=Retry(total=0))
    values: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    params = {"time": f"{at.timestamp():.3f}", "timeout": f"{math.ceil(timeout)}s"}
    try:
        for window, promql in queries.items():
            try:
                values[window] = _value(prom.custom_query(promql, params=params))
            except Exception as err:  # HTTP errors, bad PromQL, connection refused, odd JSON: all reported alike
                errors[window] = str(err)[:400] if isinstance(err, QueryFailed) else _describe(err)
                break  # one failure already costs the verdict; the other lookbacks would mostly fail alike
    finally:
        close = getattr(prom, "close", None)
        if close is not None:
            close()
    return values, errors


async def collect(
    url: str,
    sli: SLISpec,
    slo_window: str,
    *,
    at: dt.datetime | None = None,
    timeout: float = 10.0,
    windows: tuple[str, ...] = BURN_WINDOWS,
) -> ReviewData:
    """Query the error ratio over the SLO window and every burn lookback at ``at`` (default: now). Never raises."""
    at = at or dt.datetime.now(dt.timezone.utc)
    if at.tzinfo is None:  # an evaluationTime without an offset means UTC, as in Kubernetes
        at = at.replace(tzinfo=dt.timezone.utc)
    lookbacks = tuple(dict.fromkeys((slo_window, *windows)))
    queries = window_queries(sli, lookbacks)
    started = time.perf_counter()
    try:
        values, errors = await asyncio.wait_for(
            asyncio.to_thread(_query_all, url, queries, at, timeout), timeout * len(queries) + 1
        )
    except Exception as err:  # the overall deadline, or anything the thread could not report
        values, errors = {}, {"*": _describe(err) if str(err) else type(err).__name__}
    return ReviewData(
        evaluated_at=at,
        slo_window=slo_window,
        window_error_ratio=values.get(slo_window),
        error_ratios={w: values.get(w) for w in windows},
        queries=queries,
        errors=errors,
        seconds=time.perf_counter() - started,
    )
