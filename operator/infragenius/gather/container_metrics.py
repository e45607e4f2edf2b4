"""Container metrics for an Analysis from Prometheus (cAdvisor and kube-state-metrics series).

A Prometheus that is down, slow or empty degrades the analysis: the result is
reported as data and the detectors run without metrics.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from infragenius.gather.prometheus import PrometheusTarget, connect
from infragenius.snapshot import ContainerMetrics, GatherResult, GatherStatus, MetricsKey

SOURCE = "prometheus"


def queries(namespace: str, window: str) -> dict[str, str]:
    """The PromQL behind each ContainerMetrics field, scoped to one namespace."""
    ns = namespace.replace("\\", "\\\\").replace('"', '\\"')
    by = "by (namespace, pod, container)"
    cfs = f'{{namespace="{ns}",container!=""}}[{window}]'  # the CFS counters' selector and range
    return {
        "restarts": f'sum {by} (increase(kube_pod_container_status_restarts_total{{namespace="{ns}"}}[{window}]))',
        "cpu_throttled_ratio": (
            f"sum {by} (increase(container_cpu_cfs_throttled_periods_total{cfs}))"
            f" / sum {by} (increase(container_cpu_cfs_periods_total{cfs}))"
        ),
        "memory_working_set_bytes": (
            f'max {by} (max_over_time(container_memory_working_set_bytes{{namespace="{ns}",container!=""}}[{window}]))'
        ),
        "memory_limit_bytes": f'max {by} (kube_pod_container_resource_limits{{namespace="{ns}",resource="memory"}})',
    }


def _query_all(
    target: PrometheusTarget, namespace: str, window: str, timeout: float
) -> dict[MetricsKey, dict[str, float]]:
    values: dict[MetricsKey, dict[str, float]] = {}
    with connect(target, timeout) as prom:
        for field, promql in queries(namespace, window).items():
            for sample in prom.instant(promql):
                _add(values, field, sample, namespace)
    return values


def _add(values: dict[MetricsKey, dict[str, float]], field: str, sample: dict[str, Any], namespace: str) -> None:
    labels: dict[str, Any] = sample.get("metric", {})
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return
    if value != value:  # NaN: e.g. 0/0 throttling for a container without CPU limits
        return
    key = (labels.get("namespace", namespace), labels.get("pod", ""), labels.get("container", ""))
    values.setdefault(key, {})[field] = value


async def gather_metrics(
    target: PrometheusTarget | None, namespace: str, window: str, timeout: float = 10.0
) -> tuple[dict[MetricsKey, ContainerMetrics], GatherResult]:
    """Query Prometheus; never raises."""
    if target is None:
        return {}, GatherResult(SOURCE, GatherStatus.no_data, error="no Prometheus URL configured")
    started = time.perf_counter()
    try:
        raw = await asyncio.wait_for(asyncio.to_thread(_query_all, target, namespace, window, timeout), timeout * 4 + 1)
    except Exception as err:  # connection refused, timeouts, HTTP errors and bad JSON all degrade the same way
        return {}, GatherResult(
            SOURCE,
            GatherStatus.error,
            seconds=time.perf_counter() - started,
            error=f"{type(err).__name__}: {err}"[:500],
        )
    metrics = {key: ContainerMetrics(**fields) for key, fields in raw.items()}
    status = GatherStatus.ok if metrics else GatherStatus.no_data
    return metrics, GatherResult(
        SOURCE,
        status,
        count=len(metrics),
        seconds=time.perf_counter() - started,
        error=None if metrics else f"no container series for namespace {namespace}",
    )
