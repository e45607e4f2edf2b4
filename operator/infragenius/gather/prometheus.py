"""The one Prometheus client: instant and range queries over the HTTP API (via prometheus-api-client).

Gather (container metrics), SLO reviews and incident anomalies all query through it, so every caller
gets the same timeouts, no retries (an outage costs one quick failure, not a backoff loop) and the
same error text: Prometheus's own message for a rejected query, the exception's for anything else.
Calls block: run them in a worker thread.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

Samples = list[tuple[dt.datetime, float]]

# prometheus-api-client reports a non-200 reply as "HTTP Status Code 400 (b'<body>')".
_HTTP_ERROR = re.compile(r"^HTTP Status Code (\d+) \((b'.*'|b\".*\")\)$", re.S)


class PrometheusError(Exception):
    """A query that Prometheus refused, or that could not reach it; the message says which."""


def describe(err: BaseException) -> str:
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


class PrometheusClient:
    """One connection to one Prometheus; ``timeout`` bounds each request and Prometheus's own evaluation."""

    def __init__(self, url: str, timeout: float) -> None:
        self.timeout = timeout
        self._prom = PrometheusConnect(url=url, disable_ssl=True, timeout=math.ceil(timeout), retry=Retry(total=0))

    def instant(self, query: str, at: dt.datetime | None = None) -> list[dict[str, Any]]:
        """The samples of an instant query (``at``: the evaluation time; default now)."""
        params = {"timeout": f"{math.ceil(self.timeout)}s"}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        try:
            return list(self._prom.custom_query(query, params=params))
        except Exception as err:  # HTTP errors, bad PromQL, connection refused, odd JSON: all reported alike
            raise PrometheusError(describe(err)) from err

    def first_series(self, query: str, start: dt.datetime, end: dt.datetime, step_seconds: int) -> Samples:
        """The first series of a range query as (time, value) pairs, NaN and infinite values left out."""
        params = {"timeout": f"{math.ceil(self.timeout)}s"}
        try:
            result = self._prom.custom_query_range(query, start, end, f"{step_seconds}s", params=params)
        except Exception as err:
            raise PrometheusError(describe(err)) from err
        if not result:
            return []
        samples: Samples = []
        for ts, raw in result[0].get("values") or []:
            value = float(raw)
            if not math.isnan(value) and not math.isinf(value):
                samples.append((dt.datetime.fromtimestamp(float(ts), dt.UTC), value))
        return samples

    def close(self) -> None:
        close = getattr(self._prom, "close", None)
        if close is not None:
            close()


@contextmanager
def connect(url: str, timeout: float) -> Iterator[PrometheusClient]:
    """A client for the length of one run's queries."""
    client = PrometheusClient(url, timeout)
    try:
        yield client
    finally:
        client.close()
