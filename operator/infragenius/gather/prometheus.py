"""The one Prometheus client: instant and range queries over the HTTP API (via prometheus-api-client).

Gather (container metrics), SLO reviews and incident anomalies all query through it, so every caller
gets the same timeouts, no retries (an outage costs one quick failure, not a backoff loop) and the
same error text: Prometheus's own message for a rejected query, the exception's for anything else.
Calls block: run them in a worker thread.

What a Prometheus says goes into status only as Prometheus API errors (``errorType: error`` of a JSON
error envelope, bounded); any other reply is reported by its status code alone, so an address that is not
a Prometheus cannot have its answer echoed into a tenant's status.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

Samples = list[tuple[dt.datetime, float]]

# prometheus-api-client reports a non-200 reply as "HTTP Status Code 400 (b'<body>')".
_HTTP_ERROR = re.compile(r"^HTTP Status Code (\d+) \((b'.*'|b\".*\")\)$", re.S)
# The error types of Prometheus's HTTP API; only replies in this envelope are quoted.
_ERROR_TYPES = frozenset({"bad_data", "timeout", "canceled", "execution", "internal", "unavailable", "not_found"})
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class PrometheusTarget:
    """Where to query, and how to trust it: ``verify`` is True (system CAs), a CA bundle path, or False."""

    url: str
    verify: bool | str = True


class PrometheusError(Exception):
    """A query that Prometheus refused, or that could not reach it; the message says which."""


def describe(err: BaseException) -> str:
    """Prometheus's own message for a rejected query (e.g. its parse error), the status code alone for any
    other HTTP reply, else the exception's text."""
    text = str(err)
    found = _HTTP_ERROR.match(text)
    if not found:
        return f"{type(err).__name__}: {text}"[:400]
    code = found.group(1)
    try:
        body = json.loads(ast.literal_eval(found.group(2)))
    except (ValueError, SyntaxError):
        body = None
    if isinstance(body, dict) and body.get("status") == "error" and body.get("errorType") in _ERROR_TYPES:
        message = _UNPRINTABLE.sub(" ", str(body.get("error", "")))[:300]
        return f"HTTP {code} {body['errorType']}: {message}"
    return f"HTTP {code}: not a Prometheus API error reply (body not shown)"


class PrometheusClient:
    """One connection to one Prometheus; ``timeout`` bounds each request and Prometheus's own evaluation."""

    def __init__(self, target: PrometheusTarget, timeout: float) -> None:
        self.timeout = timeout
        session = requests.Session()
        session.verify = target.verify  # True, False, or a CA bundle path, as requests takes it
        self._prom = PrometheusConnect(
            url=target.url, session=session, timeout=math.ceil(timeout), retry=Retry(total=0)
        )

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
def connect(target: PrometheusTarget, timeout: float) -> Iterator[PrometheusClient]:
    """A client for the length of one run's queries."""
    client = PrometheusClient(target, timeout)
    try:
        yield client
    finally:
        client.close()
