"""Metric anomalies for an incident: range-query the spec's PromQL over the window and find a step.

A step is the split of the series into a before and an after segment (at least ``MIN_POINTS`` each)
whose means differ most; it counts when the after mean is at least ``RATIO`` times the before mean
(or the before mean ``RATIO`` times the after mean, for drops) and differs by at least the query's
``minChange``. Prometheus failures are data: the report completes without metrics.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass

from infragenius.gather.prometheus import PrometheusError, PrometheusTarget, Samples, connect
from infragenius.incident.timeline import Entry
from infragenius.kube.time import rfc3339
from infragenius.models.findings import ResourceRef
from infragenius.models.incident import MetricKind, MetricQuery

MIN_POINTS = 3
RATIO = 2.0
MAX_POINTS = 500  # Prometheus allows 11000; a step is visible long before that


@dataclass(frozen=True)
class Step:
    time: dt.datetime
    before: float
    after: float

    @property
    def rising(self) -> bool:
        return self.after > self.before


def detect_step(samples: Samples, min_change: float = 0.0) -> Step | None:
    """The most pronounced step in ``samples`` (sorted by time), or None."""
    values = [v for _, v in samples]
    n = len(values)
    if n < 2 * MIN_POINTS:
        return None
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    best: tuple[float, int] | None = None
    for k in range(MIN_POINTS, n - MIN_POINTS + 1):
        before = prefix[k] / k
        after = (prefix[n] - prefix[k]) / (n - k)
        diff = abs(after - before)
        if best is None or diff > best[0]:
            best = (diff, k)
    assert best is not None
    diff, k = best
    before, after = prefix[k] / k, (prefix[n] - prefix[k]) / (n - k)
    low, high = min(before, after), max(before, after)
    if diff < max(min_change, 1e-12) or high < RATIO * low:
        return None
    return Step(time=samples[k][0], before=before, after=after)


def step_seconds(start: dt.datetime, end: dt.datetime) -> int:
    return max(15, math.ceil((end - start).total_seconds() / MAX_POINTS))


def _format(value: float, kind: MetricKind) -> str:
    if kind is MetricKind.error_rate:
        return f"{value * 100:.3g}%"
    if kind is MetricKind.latency:
        return f"{value:.3g}s"
    return f"{value:.4g}"


def anomaly_entry(query: MetricQuery, step: Step, namespace: str) -> Entry:
    worse = step.rising  # error rate and latency: up is bad; other metrics are reported either way
    severity = "critical" if worse and query.kind is not MetricKind.other else "warning"
    word = "rose" if step.rising else "fell"
    return Entry(
        time=step.time,
        kind="MetricAnomaly",
        severity=severity,
        resource=ResourceRef(kind="Metric", name=query.name, namespace=namespace),
        summary=f"{query.name} {word} from {_format(step.before, query.kind)} to {_format(step.after, query.kind)}",
        details=(f"query: {query.query}", f"mean before {step.before:.6g}, after {step.after:.6g}"),
        reason=f"{query.kind.value} step",
    )


@dataclass
class MetricsOutcome:
    entries: list[Entry]
    error_rate: float | None
    errors: list[str]
    seconds: float


def gather(
    target: PrometheusTarget,
    queries: list[MetricQuery],
    start: dt.datetime,
    end: dt.datetime,
    namespace: str,
    timeout: float,
) -> MetricsOutcome:
    """Blocking: run in a worker thread."""
    began = time.perf_counter()
    entries: list[Entry] = []
    errors: list[str] = []
    error_rate: float | None = None
    with connect(target, timeout) as prom:
        for query in queries:
            try:
                samples = prom.first_series(query.query, start, end, step_seconds(start, end))
            except PrometheusError as err:  # Prometheus down, query rejected: reported, never fatal
                errors.append(f"prometheus {query.name}: {err}"[:256])
                continue
            error_rate = _note(query, samples, namespace, entries, error_rate)
    return MetricsOutcome(entries, error_rate, errors, time.perf_counter() - began)


def _note(
    query: MetricQuery, samples: Samples, namespace: str, entries: list[Entry], error_rate: float | None
) -> float | None:
    """Adds the query's step (if any) to ``entries``; returns the incident's error rate once known."""
    if not samples:
        return error_rate
    step = detect_step(samples, query.min_change)
    if step is not None:
        entries.append(anomaly_entry(query, step, namespace))
    if query.kind is MetricKind.error_rate and error_rate is None:
        # Impact: the mean over the incident (after the step), else over the window.
        tail = [v for t, v in samples if step is None or t >= step.time]
        error_rate = sum(tail) / len(tail)
    return error_rate


def window_text(start: dt.datetime, end: dt.datetime) -> str:
    return f"{rfc3339(start)}..{rfc3339(end)}"
