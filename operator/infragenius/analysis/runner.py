"""One analysis run: gather -> snapshot -> detect -> rank. Shared by the operator and the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass

from infragenius.analysis import engine
from infragenius.detectors import registry
from infragenius.detectors.base import Detector
from infragenius.gather import compact
from infragenius.gather import logs as container_logs
from infragenius.gather.container_metrics import gather_metrics
from infragenius.gather.kube import ENDPOINTS, KubeGatherer, events_in_scope, require_some_answer
from infragenius.gather.prometheus import PrometheusTarget
from infragenius.models.analysis import AnalysisSpec, SourceReport, Timings
from infragenius.models.findings import Finding
from infragenius.snapshot import ContainerLog, GatherResult, GatherStatus, MetricsKey, Snapshot


@dataclass(frozen=True)
class AnalysisOutcome:
    target: str
    findings: list[Finding]  # filtered by the spec, most severe first, not truncated
    missing: list[GatherResult]
    timings: Timings
    snapshot: Snapshot

    def source_reports(self) -> list[SourceReport]:
        return [
            SourceReport(
                source=r.source, status=r.status.value, count=r.count, seconds=round(r.seconds, 3), error=r.error
            )
            for r in self.missing
        ]


ALL_NAMESPACES = "all namespaces"  # the target's name in summaries and history for a cluster-wide run


async def analyze(
    gatherer: KubeGatherer,
    spec: AnalysisSpec,
    target_namespace: str | None,
    *,
    prometheus: PrometheusTarget | None = None,
    prometheus_timeout: float = 10.0,
    not_before: float | None = None,
    logs: container_logs.LogOptions | None = None,
) -> AnalysisOutcome:
    """Run the whole pipeline for one namespace (None: every namespace, cluster-wide); gathering
    failures degrade, never abort.

    ``not_before`` is when the request was observed (``time.monotonic()``, e.g. on entering the
    handler, before waiting for a slot): LISTs that other analyses started since then are shared
    instead of repeated (:mod:`infragenius.gather.shared`). None shares nothing.

    ``logs`` bounds the reading of failing containers' logs (:mod:`infragenius.gather.logs`); None reads none.
    """
    started = time.perf_counter()
    if not_before is not None:
        gatherer.not_before = not_before
    if target_namespace is not None:
        await gatherer.require_namespace(target_namespace)

    detectors = registry.select([d.value for d in spec.detectors.include], [d.value for d in spec.detectors.exclude])
    kinds = registry.kinds_needed(detectors) & set(ENDPOINTS)
    # Metrics are queried per namespace; a cluster-wide run goes without them.
    use_prometheus = (
        spec.prometheus.enabled and target_namespace is not None and any(d.name == "metrics" for d in detectors)
    )
    metrics_source = prometheus if use_prometheus else None

    lookback = spec.prometheus.lookback
    (objects, events, reports), (metrics, prom_report) = await asyncio.gather(
        gatherer.gather(kinds, target_namespace, spec.label_selector),
        gather_metrics(metrics_source, target_namespace, lookback, prometheus_timeout)
        if use_prometheus and target_namespace is not None
        else _no_metrics(),
    )
    require_some_answer(reports)
    if use_prometheus:
        reports.append(prom_report)
    # Which logs are worth reading follows from the pods' status, so they are read after the LISTs.
    log_excerpts: dict[MetricsKey, ContainerLog] = {}
    if logs is not None and "Pod" in objects and any(d.name == "pod" for d in detectors):
        targets = container_logs.log_targets(objects["Pod"], dt.datetime.now(dt.UTC), logs.max_containers)
        log_excerpts, log_report = await container_logs.gather_logs(
            gatherer.api, targets, logs, not_before=gatherer.not_before
        )
        reports.append(log_report)
    gathered = time.perf_counter()

    snapshot = Snapshot.build(
        namespace=target_namespace or "",  # "": detectors treat the snapshot as cluster-wide
        objects=objects,
        events=events_in_scope(events, objects) if spec.label_selector else events,
        metrics=metrics,
        results=reports,
        metrics_window=spec.prometheus.lookback,
        logs=log_excerpts,
    )
    # Detection is CPU-bound; a worker thread keeps the operator's event loop responsive.
    result = await asyncio.to_thread(_detect, snapshot, detectors)
    findings = engine.filter_findings(result.findings, spec.min_severity, [k.value for k in spec.kinds])
    # A configured Prometheus that has no series for the namespace is reported too: otherwise a
    # misconfigured one would look exactly like healthy metrics. So are logs that could not be read
    # (no_data: the kubelet or the container, not the operator's dependencies, kept them away).
    missing = [
        r
        for r in reports
        if r.status is GatherStatus.error
        or (r.source == "prometheus" and metrics_source and r.status is GatherStatus.no_data)
        or (r.source == container_logs.SOURCE and r.status is GatherStatus.no_data)
    ] + result.failures
    finished = time.perf_counter()
    return AnalysisOutcome(
        target=target_namespace or ALL_NAMESPACES,
        findings=findings,
        missing=missing,
        timings=Timings(
            gather_seconds=round(gathered - started, 4),
            detect_seconds=round(result.seconds, 4),
            total_seconds=round(finished - started, 4),
        ),
        snapshot=snapshot,
    )


async def _no_metrics() -> tuple[dict, GatherResult]:
    return {}, GatherResult("prometheus", GatherStatus.no_data, error="disabled")


def _detect(snapshot: Snapshot, detectors: list[Detector]) -> engine.DetectResult:
    """The detectors with the cyclic garbage collector paused: they build indexes and findings next to a
    snapshot of up to tens of thousands of objects, and each collection meanwhile rescans all of them
    (20,000 pods: 1.1-1.2 s with collections, 0.66-0.73 s paused). What they make is freed as usual."""
    with compact.gc_paused():
        return engine.run_detectors(snapshot, detectors)
