"""The `metrics` detector end to end: real pods, a real Prometheus holding recent series for them, the operator.

Prometheus (Debian's 2.42) is backfilled by ``promtool tsdb create-blocks-from openmetrics`` with two hours
of per-minute samples that end at the current minute, for the exact pod names the Deployments got. The
blocks are written before Prometheus starts, so the recent range needs no remote write or scraping. The
operator then gathers those series with its own PromQL and the detector reports what the data says.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from infragenius.gather.container_metrics import queries
from infragenius_devtools.devcluster import scenarios as workloads
from infragenius_devtools.prometheus import PrometheusUnavailable, is_ready, stop_process
from infragenius_devtools.support import free_port
from tests.e2e.analysis_support import analysis, running_operator, wait_phase
from tests.e2e.conftest import E2ECluster, _unavailable
from tests.e2e.support import wait_for

pytestmark = pytest.mark.e2e

MINUTES = 120  # two hours of history, one sample a minute, the last at the current minute
MIB = 1024 * 1024
LIMIT = 256 * MIB  # workloads.deployment() sets limits.memory: 256Mi
PERIODS_PER_MINUTE = 600  # 100ms CFS periods
PerMinute = Callable[[int], float]  # minutes before the last sample -> value (gauge) or increment (counter)


@dataclass(frozen=True)
class Figures:
    """What one container's series hold over the last hour."""

    throttled_per_minute: float  # of PERIODS_PER_MINUTE
    working_set_peak: int  # bytes, reached in the last hour
    restarts_at: tuple[int, ...]  # minutes before the last sample at which the container restarted

    @property
    def throttled_ratio(self) -> float:
        return self.throttled_per_minute / PERIODS_PER_MINUTE


# One pod throttled 60% of its periods (critical), at 95% of its memory limit (warning) and restarted 5 times
# in the last hour (warning; one restart 90 minutes ago falls outside the 1h lookback).
BAD = Figures(throttled_per_minute=360, working_set_peak=int(LIMIT * 0.95), restarts_at=(90, 50, 40, 30, 20, 10))
# Its sibling and the other namespace: 5% throttled, half the memory limit, no restarts.
HEALTHY = Figures(throttled_per_minute=30, working_set_peak=LIMIT // 2, restarts_at=())


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _gauge(lines: list[str], end: int, metric: str, labels: str, value: PerMinute) -> None:
    for m in range(MINUTES, -1, -1):
        lines.append(f"{metric}{{{labels}}} {_number(value(m))} {end - m * 60}")


def _counter(lines: list[str], end: int, metric: str, labels: str, increment: PerMinute, start: float = 0) -> None:
    total = start
    for m in range(MINUTES, -1, -1):
        if m < MINUTES:
            total += increment(m)
        lines.append(f"{metric}{{{labels}}} {_number(total)} {end - m * 60}")


def container_series(lines: list[str], end: int, namespace: str, pod: str, figures: Figures) -> None:
    """The cAdvisor and kube-state-metrics series for container "app" of ``pod``, as a real cluster has them."""
    app = f'namespace="{namespace}",pod="{pod}",container="app"'
    cadvisor = f'{app},id="/kubepods/burstable/pod-{pod}/app",image="registry.example/shop/web:1.4.2"'
    _counter(lines, end, "container_cpu_cfs_periods_total", cadvisor, lambda m: PERIODS_PER_MINUTE)
    _counter(lines, end, "container_cpu_cfs_throttled_periods_total", cadvisor, lambda m: figures.throttled_per_minute)
    # The working set climbs to its peak half an hour ago and eases off (max_over_time sees the peak).
    _gauge(
        lines,
        end,
        "container_memory_working_set_bytes",
        cadvisor,
        lambda m: figures.working_set_peak if m == 30 else figures.working_set_peak - (abs(m - 30) + 1) * MIB,
    )
    # The pod-level cgroup (container="") that cAdvisor also exports: bigger, and to be ignored.
    _gauge(
        lines,
        end,
        "container_memory_working_set_bytes",
        f'namespace="{namespace}",pod="{pod}",container="",id="/kubepods/burstable/pod-{pod}"',
        lambda m: LIMIT * 2,
    )
    ksm = f'{app},job="kube-state-metrics",uid="{uuid.uuid5(uuid.NAMESPACE_DNS, pod)}"'
    _gauge(lines, end, "kube_pod_container_resource_limits", f'{ksm},resource="memory",unit="byte"', lambda m: LIMIT)
    _gauge(lines, end, "kube_pod_container_resource_limits", f'{ksm},resource="cpu",unit="core"', lambda m: 0.5)
    _counter(
        lines,
        end,
        "kube_pod_container_status_restarts_total",
        ksm,
        lambda m: float(figures.restarts_at.count(m)),
        start=1,
    )


class RecentPrometheus:
    """Prometheus on 127.0.0.1, started (no scraping) over blocks promtool wrote from ``lines``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, lines: list[str]) -> RecentPrometheus:
        prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
        if not prometheus or not promtool:
            raise PrometheusUnavailable("prometheus/promtool not installed (Debian: apt-get install prometheus)")
        source = self.home / "containers.om"
        source.write_text("\n".join([*lines, "# EOF"]) + "\n")
        data = self.home / "data"
        # Default (2h) blocks: the recent range spans two or three of them, all written before start-up.
        created = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if created.returncode != 0:
            raise PrometheusUnavailable(f"promtool failed: {created.stderr[-500:]}")
        config = self.home / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\n")
        self.log = self.home / "prometheus.log"
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data}",
                    "--storage.tsdb.retention.time=15d",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not is_ready(self.url):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PrometheusUnavailable(f"prometheus did not start: {self.log.read_text()[-800:]}")
            time.sleep(0.2)
        return self

    def query(self, promql: str) -> list[dict[str, Any]]:
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None


@dataclass
class World:
    cluster: E2ECluster
    prometheus: RecentPrometheus
    busy: str  # namespace: one bad pod, one healthy
    calm: str  # namespace: both pods healthy
    bad_pod: str
    good_pod: str


def _namespace(core: client.CoreV1Api, prefix: str) -> str:
    name = f"t-{prefix}-{uuid.uuid4().hex[:5]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        lambda: any(
            sa.metadata and sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items
        ),
        timeout=30,
        what=f"default service account in {name}",
    )
    return name


def _pod_names(core: client.CoreV1Api, namespace: str, selector: str) -> list[str]:
    """The real names the ReplicaSet gave its two pods."""
    return sorted(str(p.metadata.name) for p in workloads.wait_pods(core, namespace, selector, 2) if p.metadata)


@pytest.fixture(scope="module")
def world(cluster: E2ECluster, operator_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    core = client.CoreV1Api(cluster.api)
    busy, calm = _namespace(core, "metrics-busy"), _namespace(core, "metrics-calm")
    try:
        workloads.apply(cluster.kubectl, busy, workloads.deployment("api", 2))
        workloads.apply(cluster.kubectl, calm, workloads.deployment("web", 2))
        busy_pods = _pod_names(core, busy, "app=api")
        calm_pods = _pod_names(core, calm, "app=web")
        bad_pod, good_pod = busy_pods
        end = int(time.time()) // 60 * 60  # the current minute: instant queries at "now" see it as fresh
        lines: list[str] = []
        container_series(lines, end, busy, bad_pod, BAD)
        container_series(lines, end, busy, good_pod, HEALTHY)
        for pod in calm_pods:
            container_series(lines, end, calm, pod, HEALTHY)
        try:
            prom = RecentPrometheus(tmp_path_factory.mktemp("prometheus-recent")).start(lines)
        except PrometheusUnavailable as err:
            _unavailable(str(err))
        try:
            yield World(cluster, prom, busy, calm, bad_pod, good_pod)
        finally:
            prom.stop()
    finally:
        for name in (busy, calm):
            try:
                core.delete_namespace(name)
            except client.ApiException as err:
                if err.status != 404:
                    raise


def _metrics_findings(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The metrics detector's findings, keyed by the metric their evidence names."""
    found = {}
    for f in status["findings"]:
        if f["detector"] == "metrics":
            found[f["evidence"][0]["source"]] = f
    return found


def test_prometheus_holds_the_recent_series_the_gatherer_queries(world: World) -> None:
    """The backfilled blocks answer the operator's own PromQL at "now" (guards the fixture, not the product)."""
    values: dict[tuple[str, str], dict[str, float]] = {}
    for field, promql in queries(world.busy, "1h").items():
        for sample in world.prometheus.query(promql):
            labels = sample["metric"]
            values.setdefault((labels["pod"], labels["container"]), {})[field] = float(sample["value"][1])
    assert set(values) == {(world.bad_pod, "app"), (world.good_pod, "app")}, values
    bad = values[(world.bad_pod, "app")]
    assert bad["cpu_throttled_ratio"] == pytest.approx(BAD.throttled_ratio)
    assert bad["memory_working_set_bytes"] == BAD.working_set_peak
    assert bad["memory_limit_bytes"] == LIMIT
    assert round(bad["restarts"]) == 5  # increase() extrapolates to the window's edges
    assert values[(world.good_pod, "app")]["restarts"] == 0
    # The other namespace has data too, so its clean result below is not just an empty Prometheus.
    calm = {
        (s["metric"]["pod"], field): float(s["value"][1])
        for field, promql in queries(world.calm, "1h").items()
        for s in world.prometheus.query(promql)
    }
    assert len(calm) == 8, calm  # two pods, four figures each
    throttled = [v for (_, f), v in calm.items() if f == "cpu_throttled_ratio"]
    assert throttled == pytest.approx([HEALTHY.throttled_ratio] * 2)


def test_metrics_detector_reports_throttling_memory_and_restarts(world: World, operator_kubeconfig: str) -> None:
    cluster = world.cluster
    with running_operator(operator_kubeconfig, INFRAGENIUS_PROMETHEUS_URL=world.prometheus.url):
        workloads.apply(cluster.kubectl, world.busy, analysis("metrics", {"prometheus": {"lookback": "1h"}}))
        workloads.apply(cluster.kubectl, world.calm, analysis("metrics", {"prometheus": {"lookback": "1h"}}))
        busy = wait_phase(cluster, world.busy, "metrics", ("Completed", "Failed"))["status"]
        calm = wait_phase(cluster, world.calm, "metrics", ("Completed", "Failed"))["status"]

    for status in (busy, calm):
        assert status["phase"] == "Completed", status
        assert "prometheus" not in [m["source"] for m in status.get("missing", [])], status["missing"]

    found = _metrics_findings(busy)
    assert set(found) == {"metric:cpu_throttled_ratio", "metric:memory_working_set_bytes", "metric:restarts"}, found
    where = f"{world.bad_pod}/app"
    for f in found.values():
        assert (f["resource"]["kind"], f["resource"]["name"]) == ("Deployment", "api"), f
        assert f["affected"] == 1, f  # the healthy sibling is not counted
        assert len(f["evidence"]) == 1 and f["evidence"][0]["value"].startswith(f"{where}: "), f
        assert world.good_pod not in f["title"] + str(f["evidence"]), f

    cpu = found["metric:cpu_throttled_ratio"]
    percent = f"{BAD.throttled_ratio:.0%}"  # 60%
    assert cpu["severity"] == "critical"
    assert cpu["evidence"][0]["value"] == f"{where}: {percent} of CFS periods throttled"
    assert cpu["title"] == f"Deployment api: CPU throttled in {percent} of periods ({where}, over 1h)"

    memory = found["metric:memory_working_set_bytes"]
    ratio = BAD.working_set_peak / LIMIT  # 95%
    assert memory["severity"] == "warning"
    assert memory["evidence"][0]["value"] == (
        f"{where}: {BAD.working_set_peak / MIB:.0f}MiB of {LIMIT / MIB:.0f}MiB limit ({ratio:.0%})"
    )  # 243MiB of 256MiB limit (95%)
    assert memory["title"] == f"Deployment api: memory at {ratio:.0%} of its limit ({where}); OOM kill is near"

    restarts = found["metric:restarts"]
    in_window = sum(1 for m in BAD.restarts_at if m < 60)  # 5
    assert restarts["severity"] == "warning"
    assert restarts["evidence"][0]["value"] == f"{where}: {in_window} restarts"
    assert restarts["title"] == f"Deployment api: {in_window} container restarts in 1h ({where})"

    # Healthy figures everywhere in the other namespace: nothing from the metrics detector.
    assert _metrics_findings(calm) == {}, calm["findings"]


def test_configured_prometheus_without_series_is_reported(
    world: World, namespace: str, operator_kubeconfig: str
) -> None:
    """Prometheus answers but holds nothing for the namespace: status says so instead of looking healthy."""
    cluster = world.cluster
    with running_operator(operator_kubeconfig, INFRAGENIUS_PROMETHEUS_URL=world.prometheus.url):
        workloads.apply(cluster.kubectl, namespace, analysis("unmeasured", {"prometheus": {"lookback": "1h"}}))
        status = wait_phase(cluster, namespace, "unmeasured", ("Completed", "Failed"))["status"]
    assert status["phase"] == "Completed"
    missing = {m["source"]: m for m in status["missing"]}
    assert missing["prometheus"]["status"] == "no_data"
    assert missing["prometheus"]["error"] == f"no container series for namespace {namespace}"
    assert "could not read prometheus" in status["summary"]
