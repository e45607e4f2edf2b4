"""How fast is an Analysis of a big namespace, compared with simply reading it?

Method
------
For each size N (``--pods``, default 1,000 and 5,000) the script:

1. **Setup** - starts the local control plane ``LocalCluster("bench")`` (real
   kube-apiserver, controller-manager and scheduler; kwok as the kubelet), adds
   enough extra kwok Nodes (created like ``LocalCluster._create_nodes`` does) for
   every namespace of the run to fit, waits for them to be Ready and applies
   ``crds/`` with the built kubectl.
2. **Workload** - in a fresh namespace creates 50 healthy Deployments plus four
   "crashloop" Deployments (about 2% of N, pod template annotated
   ``kwok.x-k8s.io/status=custom``), each with a Service, all shaped like
   ``infragenius_devtools.devcluster.scenarios.deployment(hardened=True)`` (requests, limits,
   probes). The real controllers create the pods and kwok runs them; the
   crashloop pods get a CrashLoopBackOff status written as a kubelet would
   (``workloads.patch_failure``). Then N/5 Warning events (BackOff,
   FailedMount, Unhealthy, ...) are posted from a thread pool. The step ends
   when all N pods are in phase Running.
3. **Floor** - the cost of just reading the same objects: ``kubectl get
   <every kind the analysis lists> -n NS -o json``, ``kubectl get <the
   cluster-scoped kinds it lists> -o json`` and ``kubectl get events -n NS
   --field-selector type=Warning -o json``, run one after the other. The kinds
   come from ``registry.kinds_needed(registry.select()) & ENDPOINTS``, exactly
   what ``runner.analyze`` gathers. One warm-up (discovery cache), then 3
   timed runs; the floor is the median of their sums. The same three commands
   started at once are timed too, for context only. Note that kubectl's own
   decoding dominates this floor at thousands of pods (see benchmarks/README.md).
4. **Operator** - ``infragenius operator`` as a subprocess (its own
   ``INFRAGENIUS_HEALTH_PORT``); once ``/healthz`` answers 200, an Analysis
   (``spec: {maxFindings: 100}``) is created in the namespace and polled every
   50 ms until ``status.phase`` is Completed. Runs 2 and 3 are triggered with
   the ``infragenius.io/rerun=<n>`` annotation and end when a new
   ``status.runId`` is Completed. Per run: wall time from the create/patch
   request to Completed as seen by the poller, and ``status.timings``. After
   the runs the operator's VmHWM (peak RSS) and VmRSS are read from
   ``/proc/<pid>/status``; then it is stopped with SIGTERM.
5. **In-process** - ``runner.analyze(KubeGatherer(api), AnalysisSpec(), ns)``
   three times from this process; the detect figure is the median of
   ``outcome.timings.detect_seconds`` (pure detection, no I/O).

Every figure is a median of 3. Targets (reported, never asserted): the
operator's gather time and apply->Completed at most 1.5x the floor, detection
under 200 ms at 5,000 pods. Namespaces of earlier sizes stay in the cluster
while later sizes run (their capacity is planned for up front). Results go to
stdout and ``benchmarks/results/analysis_scale.json``; operator logs to
``benchmarks/results/operator-<N>.log``.

Run: ``python benchmarks/analysis_scale.py [--pods 1000 5000] [--keep]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from infragenius.analysis import runner
from infragenius.detectors import registry
from infragenius.gather.kube import ENDPOINTS, KindEndpoint, KubeGatherer
from infragenius.kube.time import rfc3339
from infragenius.models.analysis import AnalysisSpec
from infragenius.models.api import ANALYSIS, GROUP, RERUN_ANNOTATION, VERSION
from infragenius_devtools.bench import (
    STARTED,
    WARNING_EVENT_REASONS,
    BenchError,
    Kube,
    add_capacity,
    analysis_path,
    create_namespace,
    kubectl_run,
    log,
    log_errors,
    log_tail,
    median,
    parallel,
    pod_count,
    proc_memory_mib,
    spread,
    wait_until,
)
from infragenius_devtools.devcluster import DevClusterError, LocalCluster
from infragenius_devtools.devcluster import scenarios as workloads
from infragenius_devtools.devcluster.build import ensure_binaries
from infragenius_devtools.devcluster.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[1]

CLUSTER_NAME = "bench"
PLURAL = ANALYSIS.plural
RESULTS_DIR = ROOT / "benchmarks" / "results"
RESULTS_FILE = RESULTS_DIR / "analysis_scale.json"

RUNS = 3
POLL_SECONDS = 0.05
HEALTHY_DEPLOYMENTS = 50
BROKEN_DEPLOYMENTS = 4
BROKEN_FRACTION = 0.02
PODS_PER_EVENT = 5

TARGET_RATIO = 1.5
TARGET_DETECT_MS = 200.0
TARGET_DETECT_AT_PODS = 5000


# --- 1. setup --------------------------------------------------------------------------------------


def gathered_kinds() -> list[str]:
    """Exactly what runner.analyze lists with the default spec."""
    return sorted(registry.kinds_needed(registry.select()) & set(ENDPOINTS))


# --- 2. workload -----------------------------------------------------------------------------------


@dataclass
class Workload:
    namespace: str
    pods: int
    healthy_pods: int
    broken_pods: int
    deployments: int
    services: int
    events: int
    setup_seconds: float


def warning_event(namespace: str, pod: dict[str, Any], reason: str, message: str, count: int) -> dict[str, Any]:
    meta = pod["metadata"]
    node = (pod.get("spec") or {}).get("nodeName") or ""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": namespace,
            "uid": meta.get("uid"),
            "fieldPath": "spec.containers{app}",
        },
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": count,
        "firstTimestamp": rfc3339(now - dt.timedelta(minutes=20)),
        "lastTimestamp": rfc3339(now),
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
    }


def running_pods(kube: Kube, namespace: str) -> tuple[int, int]:
    pods = kube.list_all(f"/api/v1/namespaces/{namespace}/pods")
    return len(pods), sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")


def build_workload(kube: Kube, namespace: str, pods: int) -> Workload:
    started = time.monotonic()
    broken_total = max(BROKEN_DEPLOYMENTS, round(pods * BROKEN_FRACTION))
    healthy_total = pods - broken_total
    create_namespace(kube, namespace)

    healthy = {f"web-{i:02d}": r for i, r in enumerate(spread(healthy_total, HEALTHY_DEPLOYMENTS))}
    broken = {f"crashloop-{i}": r for i, r in enumerate(spread(broken_total, BROKEN_DEPLOYMENTS))}
    objects: list[tuple[str, dict[str, Any]]] = []
    for name, replicas in [*healthy.items(), *broken.items()]:
        deployment = workloads.deployment(name, replicas, custom_status=name in broken, hardened=True)
        objects.append((f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment))
        objects.append((f"/api/v1/namespaces/{namespace}/services", workloads.service(name, {"app": name})))
    log(
        f"creating {len(healthy)} + {len(broken)} Deployments ({healthy_total} healthy + {broken_total} crashlooping "
        f"pods) and {len(healthy) + len(broken)} Services in {namespace}"
    )
    parallel(lambda item: kube.post(item[0], item[1]), objects)

    # The crashloop pods are ignored by kwok: once scheduled, write their CrashLoopBackOff status.
    selector = f"app in ({','.join(broken)})"
    patched: set[str] = set()

    def patch_broken() -> None:
        todo = [
            pod
            for pod in kube.core.list_namespaced_pod(namespace, label_selector=selector).items
            if pod.spec and pod.spec.node_name and pod.metadata and pod.metadata.name not in patched
        ]
        parallel(lambda pod: workloads.patch_failure(kube.core, pod, "CrashLoopBackOff"), todo)
        patched.update(str(pod.metadata.name) for pod in todo if pod.metadata)

    def healthy_ready() -> int:
        items = kube.list_all(f"/apis/apps/v1/namespaces/{namespace}/deployments")
        return sum((d.get("status") or {}).get("readyReplicas") or 0 for d in items if d["metadata"]["name"] in healthy)

    def settled() -> bool:
        if len(patched) < broken_total:
            patch_broken()
        return len(patched) >= broken_total and healthy_ready() >= healthy_total

    def progress() -> str:
        # Deployment status lags far behind while the ReplicaSet controller is busy creating pods.
        return (
            f"{pod_count(kube, namespace)}/{pods} pods created, {healthy_ready()}/{healthy_total} Ready "
            f"per Deployment status, {len(patched)}/{broken_total} crashloop pods patched"
        )

    # The ReplicaSet controller creates pods at its client's rate limit (about 20/s).
    wait_until(
        settled,
        timeout=180 + pods / 8,
        what=f"{healthy_total} Ready and {broken_total} crashlooping pods in {namespace}",
        interval=2.0,
        progress=progress,
    )

    def all_running() -> tuple[int, int] | None:
        counts = running_pods(kube, namespace)
        return counts if counts == (pods, pods) else None

    total, running = wait_until(
        all_running,
        timeout=60,
        what=f"exactly {pods} pods Running in {namespace}",
        interval=1.0,
        progress=lambda: "{} pods, {} Running".format(*running_pods(kube, namespace)),
    )
    log(f"{running}/{total} pods Running in {namespace} after {time.monotonic() - started:.0f}s")

    # Warning events: BackOff on every crashlooping pod, the rest spread over random healthy pods.
    all_pods = kube.list_all(f"/api/v1/namespaces/{namespace}/pods")
    rng = random.Random(pods)
    crashing = [p for p in all_pods if p["metadata"]["name"] in patched]
    others = [p for p in all_pods if p["metadata"]["name"] not in patched]
    wanted = pods // PODS_PER_EVENT
    events = [
        warning_event(namespace, p, "BackOff", "Back-off restarting failed container app", rng.randint(5, 60))
        for p in crashing[:wanted]
    ]
    for index in range(wanted - len(events)):
        reason, message = WARNING_EVENT_REASONS[index % len(WARNING_EVENT_REASONS)]
        events.append(warning_event(namespace, rng.choice(others), reason, message, rng.randint(1, 30)))
    posted_at = time.monotonic()
    parallel(lambda event: kube.post(f"/api/v1/namespaces/{namespace}/events", event), events)
    log(f"posted {len(events)} warning events in {time.monotonic() - posted_at:.1f}s")
    return Workload(
        namespace=namespace,
        pods=total,
        healthy_pods=healthy_total,
        broken_pods=len(patched),
        deployments=len(healthy) + len(broken),
        services=len(healthy) + len(broken),
        events=len(events),
        setup_seconds=round(time.monotonic() - started, 1),
    )


# --- 3. floor --------------------------------------------------------------------------------------


def resource_name(endpoint: KindEndpoint) -> str:
    """kubectl's fully-qualified name, e.g. ``horizontalpodautoscalers.v2.autoscaling``, ``pods``."""
    if endpoint.group_version == "v1":
        return endpoint.plural
    group, version = endpoint.group_version.split("/")
    return f"{endpoint.plural}.{version}.{group}"


@dataclass
class Floor:
    commands: list[str]
    runs_seconds: list[float]
    per_command_median_seconds: dict[str, float]
    output_bytes: int
    median_seconds: float
    #: The same three commands started at once (the operator's LISTs run in parallel too); for context.
    parallel_runs_seconds: list[float]
    parallel_median_seconds: float


def measure_floor(kubectl: Path, kubeconfig: str, namespace: str, kinds: Sequence[str]) -> Floor:
    namespaced = ",".join(resource_name(ENDPOINTS[k]) for k in kinds if ENDPOINTS[k].namespaced)
    cluster_scoped = ",".join(resource_name(ENDPOINTS[k]) for k in kinds if not ENDPOINTS[k].namespaced)
    with tempfile.TemporaryDirectory(prefix="bench-kubectl-cache-") as cache:
        common = [f"--cache-dir={cache}", "--request-timeout=60s", "-o", "json"]
        commands = [
            ["get", namespaced, "-n", namespace, *common],
            ["get", cluster_scoped, *common],
            ["get", "events", "-n", namespace, "--field-selector=type=Warning", *common],
        ]
        for args in commands:  # warm-up: discovery cache, page cache, connections
            kubectl_run(kubectl, kubeconfig, *args)
        per_command: dict[str, list[float]] = {" ".join(a[:2]): [] for a in commands}
        runs: list[float] = []
        parallel_runs: list[float] = []
        size = 0
        for _ in range(RUNS):
            total = 0.0
            size = 0
            for args in commands:
                started = time.perf_counter()
                done = kubectl_run(kubectl, kubeconfig, *args)
                took = time.perf_counter() - started
                per_command[" ".join(args[:2])].append(took)
                total += took
                size += len(done.stdout)
            runs.append(total)
            parallel_runs.append(kubectl_parallel(kubectl, kubeconfig, commands))
    return Floor(
        commands=["kubectl " + " ".join(a) for a in commands],
        runs_seconds=[round(r, 3) for r in runs],
        per_command_median_seconds={k: round(median(v), 3) for k, v in per_command.items()},
        output_bytes=size,
        median_seconds=round(median(runs), 3),
        parallel_runs_seconds=[round(r, 3) for r in parallel_runs],
        parallel_median_seconds=round(median(parallel_runs), 3),
    )


def kubectl_parallel(kubectl: Path, kubeconfig: str, commands: Sequence[Sequence[str]], timeout: float = 120) -> float:
    """Start every command at once; the wall time until the last one has finished."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        for _ in pool.map(lambda args: kubectl_run(kubectl, kubeconfig, *args, timeout=timeout), commands):
            pass
    return time.perf_counter() - started


# --- 4. operator -----------------------------------------------------------------------------------


@dataclass
class OperatorRun:
    run: int
    trigger: str
    run_id: str
    wall_seconds: float
    gather_seconds: float
    detect_seconds: float
    total_seconds: float
    total_findings: int
    findings_in_status: int
    missing: list[str]


@dataclass
class OperatorResult:
    runs: list[OperatorRun]
    vm_hwm_mib: float
    vm_rss_mib: float
    ready_seconds: float
    log_file: str
    exit_code: int | None = None
    log_errors: list[str] = field(default_factory=list)

    @property
    def gather_median(self) -> float:
        return median(r.gather_seconds for r in self.runs)

    @property
    def detect_median(self) -> float:
        return median(r.detect_seconds for r in self.runs)

    @property
    def wall_median(self) -> float:
        return median(r.wall_seconds for r in self.runs)


def wait_completed(
    kube: Kube,
    proc: subprocess.Popen[bytes],
    log_file: Path,
    namespace: str,
    name: str,
    previous_run: str | None,
    timeout: float,
) -> dict[str, Any]:
    """Poll every 50 ms until the Analysis has a Completed status with a run id other than ``previous_run``."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = kube.get(analysis_path(namespace, name)).get("status") or {}
        if last.get("runId") and last.get("runId") != previous_run:
            if last.get("phase") == "Completed":
                return last
            if last.get("phase") == "Failed":
                raise BenchError(f"Analysis {namespace}/{name} failed: {last.get('summary')}")
        if proc.poll() is not None:
            raise BenchError(f"the operator exited with code {proc.returncode} during a run:\n{log_tail(log_file)}")
        time.sleep(POLL_SECONDS)
    raise BenchError(
        f"timed out after {timeout:.0f}s waiting for Analysis {namespace}/{name} to complete a new run "
        f"(last status: phase={last.get('phase')!r} runId={last.get('runId')!r}); operator log: {log_file}"
    )


def measure_operator(kube: Kube, kubeconfig: str, namespace: str, pods: int) -> OperatorResult:
    log_file = RESULTS_DIR / f"operator-{pods}.log"
    log_file.unlink(missing_ok=True)
    started = time.monotonic()
    operator = OperatorProcess.start(kubeconfig, log_file)
    proc = operator.process
    log(f"operator started (pid {proc.pid}, health port {operator.port}, log {log_file})")
    runs: list[OperatorRun] = []
    exit_code: int | None = None
    hwm = rss = ready = math.nan
    try:
        operator.wait_ready(timeout=90)
        ready = time.monotonic() - started
        log(f"operator ready after {ready:.1f}s")
        time.sleep(2.0)  # let its watch stream open, so run 1 is not measured against operator start-up
        name = "bench"
        previous: str | None = None
        timeout = 120 + pods / 20
        for run in range(1, RUNS + 1):
            t0 = time.perf_counter()
            if run == 1:
                trigger = "create"
                kube.post(
                    analysis_path(namespace),
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "Analysis",
                        "metadata": {"name": name},
                        "spec": {"maxFindings": 100},
                    },
                )
            else:
                trigger = f"{RERUN_ANNOTATION}={run}"
                kube.merge_patch(
                    analysis_path(namespace, name), {"metadata": {"annotations": {RERUN_ANNOTATION: str(run)}}}
                )
            status = wait_completed(kube, proc, log_file, namespace, name, previous, timeout)
            wall = time.perf_counter() - t0
            previous = status["runId"]
            timings = status.get("timings") or {}
            runs.append(
                OperatorRun(
                    run=run,
                    trigger=trigger,
                    run_id=previous,
                    wall_seconds=round(wall, 3),
                    gather_seconds=float(timings.get("gatherSeconds", math.nan)),
                    detect_seconds=float(timings.get("detectSeconds", math.nan)),
                    total_seconds=float(timings.get("totalSeconds", math.nan)),
                    total_findings=int(status.get("totalFindings") or 0),
                    findings_in_status=len(status.get("findings") or []),
                    missing=[m.get("source", "?") for m in status.get("missing") or []],
                )
            )
            log(
                f"  operator run {run} ({trigger}): apply->Completed {wall:.3f}s, "
                f"gather {timings.get('gatherSeconds')}s, "
                f"detect {timings.get('detectSeconds')}s, {status.get('totalFindings')} findings"
            )
        if proc.poll() is not None:
            raise BenchError(f"the operator exited with code {proc.returncode} after the runs:\n{log_tail(log_file)}")
        hwm, rss = proc_memory_mib(proc.pid)
    finally:
        exit_code = operator.stop(timeout=30)
        log(f"operator stopped (exit code {exit_code})")
    return OperatorResult(
        runs=runs,
        vm_hwm_mib=hwm,
        vm_rss_mib=rss,
        ready_seconds=round(ready, 2),
        log_file=str(log_file),
        exit_code=exit_code,
        log_errors=log_errors(log_file),
    )


# --- 5. in-process ---------------------------------------------------------------------------------


@dataclass
class InProcess:
    gather_seconds: list[float]
    detect_seconds: list[float]
    total_seconds: list[float]
    findings: int
    by_severity: dict[str, int]
    objects: dict[str, int]
    events_in_snapshot: int
    missing: list[str]

    @property
    def detect_median_ms(self) -> float:
        return median(self.detect_seconds) * 1000

    @property
    def gather_median(self) -> float:
        return median(self.gather_seconds)


def measure_in_process(kubeconfig: str, namespace: str) -> InProcess:
    async def runs() -> list[runner.AnalysisOutcome]:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = 12
        with client.ApiClient(configuration) as api:
            return [await runner.analyze(KubeGatherer(api), AnalysisSpec(), namespace) for _ in range(RUNS)]

    outcomes = asyncio.run(runs())
    last = outcomes[-1]
    severities: dict[str, int] = {}
    for finding in last.findings:
        severities[finding.severity.value] = severities.get(finding.severity.value, 0) + 1
    return InProcess(
        gather_seconds=[o.timings.gather_seconds for o in outcomes],
        detect_seconds=[o.timings.detect_seconds for o in outcomes],
        total_seconds=[o.timings.total_seconds for o in outcomes],
        findings=len(last.findings),
        by_severity=severities,
        objects={kind: len(items) for kind, items in sorted(last.snapshot.objects.items())},
        events_in_snapshot=len(last.snapshot.events),
        missing=[m.source for m in last.missing],
    )


# --- 6. report -------------------------------------------------------------------------------------


@dataclass
class SizeResult:
    pods: int
    workload: Workload
    floor: Floor
    operator: OperatorResult
    in_process: InProcess

    def figures(self) -> dict[str, Any]:
        floor = self.floor.median_seconds
        return {
            "pods": self.workload.pods,
            "broken_pods": self.workload.broken_pods,
            "events_posted": self.workload.events,
            "floor_kubectl_median_s": floor,
            "floor_kubectl_parallel_median_s": self.floor.parallel_median_seconds,
            "operator_gather_median_s": round(self.operator.gather_median, 3),
            "operator_detect_median_ms": round(self.operator.detect_median * 1000, 1),
            "in_process_detect_median_ms": round(self.in_process.detect_median_ms, 1),
            "in_process_gather_median_s": round(self.in_process.gather_median, 3),
            "apply_to_completed_median_s": round(self.operator.wall_median, 3),
            "ratio_gather_to_floor": round(self.operator.gather_median / floor, 2),
            "ratio_apply_to_completed_to_floor": round(self.operator.wall_median / floor, 2),
            "ratio_gather_to_parallel_floor": round(
                self.operator.gather_median / self.floor.parallel_median_seconds, 2
            ),
            "findings": self.in_process.findings,
            "operator_total_findings": self.operator.runs[-1].total_findings,
            "operator_vm_hwm_mib": self.operator.vm_hwm_mib,
            "operator_vm_rss_mib": self.operator.vm_rss_mib,
        }


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def print_table(result: SizeResult) -> None:
    f = result.figures()
    detect_ok = f["in_process_detect_median_ms"] < TARGET_DETECT_MS
    detect_target = f"< {TARGET_DETECT_MS:.0f} ms at {TARGET_DETECT_AT_PODS:,} pods"
    if result.pods >= TARGET_DETECT_AT_PODS:
        detect_target += f"  {verdict(detect_ok)}"
    rows: list[tuple[str, str, str]] = [
        ("pods (Running)", f"{f['pods']:,}", ""),
        ("  of which CrashLoopBackOff", f"{f['broken_pods']:,}", ""),
        ("warning events posted", f"{f['events_posted']:,}", ""),
        ("floor: kubectl get -o json, median", f"{f['floor_kubectl_median_s']:.3f} s", "(3 commands in turn)"),
        ("  same 3 commands in parallel, median", f"{f['floor_kubectl_parallel_median_s']:.3f} s", "(context only)"),
        ("operator gather, median", f"{f['operator_gather_median_s']:.3f} s", ""),
        ("detect (in-process), median", f"{f['in_process_detect_median_ms']:.1f} ms", detect_target),
        ("detect (operator status), median", f"{f['operator_detect_median_ms']:.1f} ms", ""),
        ("apply->Completed, median", f"{f['apply_to_completed_median_s']:.3f} s", ""),
        (
            "ratio gather / floor",
            f"{f['ratio_gather_to_floor']:.2f}x",
            f"<= {TARGET_RATIO}x  {verdict(f['ratio_gather_to_floor'] <= TARGET_RATIO)}",
        ),
        (
            "ratio apply->Completed / floor",
            f"{f['ratio_apply_to_completed_to_floor']:.2f}x",
            f"<= {TARGET_RATIO}x  {verdict(f['ratio_apply_to_completed_to_floor'] <= TARGET_RATIO)}",
        ),
        ("findings (in-process / operator total)", f"{f['findings']} / {f['operator_total_findings']}", ""),
        (
            "operator VmHWM (VmRSS after runs)",
            f"{f['operator_vm_hwm_mib']:.1f} MiB ({f['operator_vm_rss_mib']:.1f})",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    title = f"Analysis at {result.pods:,} pods  (namespace {result.workload.namespace}, median of {RUNS})"
    print()
    print(title)
    print("-" * max(len(title), width + value_width + 40))
    print(f"{'metric':<{width}}  {'value':>{value_width}}  target")
    for label, value, target in rows:
        print(f"{label:<{width}}  {value:>{value_width}}  {target}".rstrip())
    print(
        f"  floor runs {result.floor.runs_seconds} s, in parallel {result.floor.parallel_runs_seconds} s; "
        f"gather / parallel floor {f['ratio_gather_to_parallel_floor']:.2f}x; "
        f"kubectl output {result.floor.output_bytes / 2**20:.1f} MiB"
    )
    for command, seconds in result.floor.per_command_median_seconds.items():
        print(f"    {seconds:6.3f} s  kubectl {command[:110]}")
    print(
        "  operator runs (wall / gather / detect s): "
        + "; ".join(
            f"{r.wall_seconds:.3f} / {r.gather_seconds:.3f} / {r.detect_seconds:.3f}" for r in result.operator.runs
        )
    )
    print(
        f"  in-process detect runs: {[round(s * 1000, 1) for s in result.in_process.detect_seconds]} ms; "
        f"gather runs: {result.in_process.gather_seconds} s"
    )
    print(
        f"  findings by severity: {result.in_process.by_severity}; snapshot objects: {result.in_process.objects}; "
        f"events kept: {result.in_process.events_in_snapshot}"
    )
    missing = sorted(set(result.in_process.missing) | {m for r in result.operator.runs for m in r.missing})
    if missing:
        print(f"  missing/failed sources: {missing}")
    if result.operator.log_errors:
        print(
            f"  operator log has {len(result.operator.log_errors)} error lines, e.g. {result.operator.log_errors[0]!r}"
        )
    sys.stdout.flush()


def write_json(results: list[SizeResult], cluster_info: dict[str, Any], duration: float) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "analysis_scale",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average": list(os.getloadavg()),
        },
        "cluster": cluster_info,
        "gathered_kinds": gathered_kinds(),
        "targets": {
            "max_ratio_to_floor": TARGET_RATIO,
            "max_detect_ms": TARGET_DETECT_MS,
            "detect_target_at_pods": TARGET_DETECT_AT_PODS,
        },
        "duration_seconds": round(duration, 1),
        "sizes": [
            {
                "figures": r.figures(),
                "workload": asdict(r.workload),
                "floor": asdict(r.floor),
                "operator": asdict(r.operator),
                "in_process": asdict(r.in_process),
            }
            for r in results
        ],
    }
    RESULTS_FILE.write_text(json.dumps(document, indent=2) + "\n")


# --- main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--pods", type=int, nargs="+", default=[1000, 5000], help="namespace sizes (default: 1000 5000)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    parser.add_argument("--cluster-name", default=CLUSTER_NAME, help=f"local cluster to use (default {CLUSTER_NAME!r})")
    args = parser.parse_args(argv)
    if any(n < HEALTHY_DEPLOYMENTS + BROKEN_DEPLOYMENTS for n in args.pods):
        parser.error(f"--pods must be at least {HEALTHY_DEPLOYMENTS + BROKEN_DEPLOYMENTS}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(args.cluster_name)
    results: list[SizeResult] = []
    kube: Kube | None = None
    try:
        info = cluster.up(echo=log, timeout=180)
        kubectl = ensure_binaries(echo=False).kubectl
        kube = Kube(info.kubeconfig)
        kubectl_run(kubectl, info.kubeconfig, "apply", "-f", str(ROOT / "crds"))
        kubectl_run(
            kubectl, info.kubeconfig, "wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", "--timeout=60s"
        )
        nodes = add_capacity(kube, sum(args.pods))
        kinds = gathered_kinds()
        log(f"{nodes} nodes Ready; the analysis gathers {len(kinds)} kinds: {', '.join(kinds)}")
        for pods in args.pods:
            namespace = f"scale-{pods}-{uuid.uuid4().hex[:5]}"
            log(f"=== {pods:,} pods in {namespace} ===")
            workload = build_workload(kube, namespace, pods)
            floor = measure_floor(kubectl, info.kubeconfig, namespace, kinds)
            log(
                f"floor (kubectl) median {floor.median_seconds:.3f}s in turn, "
                f"{floor.parallel_median_seconds:.3f}s in parallel"
            )
            operator = measure_operator(kube, info.kubeconfig, namespace, pods)
            in_process = measure_in_process(info.kubeconfig, namespace)
            log(f"in-process detect median {in_process.detect_median_ms:.1f} ms, {in_process.findings} findings")
            results.append(SizeResult(pods, workload, floor, operator, in_process))
        duration = time.monotonic() - STARTED
        for result in results:
            print_table(result)
        write_json(results, {"name": args.cluster_name, "version": info.version, "nodes": nodes}, duration)
        print(
            f"\nTargets: operator gather and apply->Completed at most {TARGET_RATIO}x the kubectl floor; "
            f"detect under {TARGET_DETECT_MS:.0f} ms at {TARGET_DETECT_AT_PODS:,} pods."
        )
        print(
            f"Figures written to {RESULTS_FILE.relative_to(ROOT)}; total duration {duration:.0f}s "
            f"(load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)."
        )
        return 0
    except (BenchError, DevClusterError) as err:
        log(f"benchmark failed: {err}")
        return 1
    finally:
        if kube is not None:
            kube.close()
        if args.keep:
            log(
                f"cluster {args.cluster_name!r} kept running (--keep); stop it with "
                f"`infragenius devcluster down --name {args.cluster_name}`"
            )
        else:
            cluster.down(echo=log)


if __name__ == "__main__":
    sys.exit(main())
