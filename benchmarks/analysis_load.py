"""Load on the operator: 1,000 Analyses at once, a 20,000-pod cluster, and idle CPU.

Method
------
Everything runs against its own local control plane, ``LocalCluster("bench-load")``
(real kube-apiserver, etcd, controller-manager and scheduler; kwok as the kubelet),
with ``infragenius operator`` as a subprocess (LLM off: no Ollama URL; no Prometheus;
no Postgres, so no history). Figures are printed, never asserted.

1. **Setup** - applies ``crds/``, adds kwok Nodes for every pod of the run
   (``infragenius_devtools.bench.add_capacity``), and fills ``--namespaces`` (50) namespaces:
   every fifth one gets ``scenarios.break_namespace`` (crash loops, OOM kill, image
   pull, missing ConfigMap, quota, selector-less Service, dangling Ingress, a pod too
   big to schedule), the others ``scenarios.healthy_namespace`` plus two hardened
   Deployments with Services.
2. **1,000 Analyses at once** - with the operator started and idle, the API server's
   ``apiserver_request_total`` is read from its ``/metrics`` twice, ``--baseline``
   seconds apart, for the background request rate (kwok heartbeats, controllers).
   Then ``--analyses`` Analyses, spread evenly over the namespaces (each analysing
   its own namespace), are POSTed from ``--workers`` threads as fast as the API takes
   them. Their specs are a realistic mix: 60% ``{}``, 20% ``labelSelector``, 10%
   ``detectors.include: [pod, deployment, events]``, 10% ``minSeverity: warning``.
   A watch on all Analyses (started before the first POST) records when each one is
   first seen ``Completed``. Reported: time from the first POST to the last
   Completed, throughput, completion-latency percentiles, the operator's VmHWM, the
   CPU seconds used by the operator, kube-apiserver and etcd during the load, and the
   API requests per analysis = (request counter delta - the benchmark's own requests
   - background rate x duration) / analyses, split by verb and by resource.
3. **Idle** - once all are Completed, ``--settle`` seconds pass, then the operator's
   ``utime+stime`` (``/proc/<pid>/stat``) is sampled every 5 s for ``--idle``
   seconds: CPU% = CPU seconds / wall seconds (100% = one core). API requests in the
   idle window are counted as well.
4. **20,000 pods** (``--cluster-pods``, 0 skips it) - the Analyses of step 2 are
   deleted, the operator stopped, and ``--fleet-namespaces`` (10) namespaces are filled
   with bare pods (nodeName set, so neither the ReplicaSet controller's nor the
   scheduler's client rate limit - ~20 and ~50 requests/s - paces the creation), 2%
   of them crashlooping (status written like ``scenarios.patch_failure`` does). Then:

   a. *cluster-wide analysis* - the operator's analysis pipeline
      (``runner.analyze(KubeGatherer(api), AnalysisSpec(), None)``, cluster-wide) in a
      fresh Python process that has imported the operator's modules, so its VmHWM is
      comparable with the operator's. Today an Analysis cannot ask for a cluster-wide
      run (``spec.targetNamespace`` is one namespace), hence the separate process;
   b. *the operator over the same pods* - a fresh operator, one Analysis per fleet
      namespace, all created at once; time until all are Completed and the
      operator's VmHWM.

Targets (printed, not asserted): all 1,000 Completed within 20 s with at most 4 API requests each (issue 19);
operator RSS under 500 MB at 20,000 pods.

Run: ``python benchmarks/analysis_load.py [--analyses 1000] [--cluster-pods 20000] [--keep]``.
Results: stdout, ``benchmarks/results/analysis_load.json``, operator logs
``benchmarks/results/load-operator-*.log``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Works from a checkout whether or not the packages are installed (also for the operator subprocess).
_SOURCES = [str(ROOT / "operator"), str(ROOT / "devtools")]
sys.path[:0] = _SOURCES
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [*_SOURCES, os.environ.get("PYTHONPATH")]))

from kubernetes import client, watch  # noqa: E402

from infragenius import kubeapi  # noqa: E402
from infragenius.kube.quantity import parse_quantity  # noqa: E402
from infragenius.models.api import ANALYSIS, GROUP, VERSION  # noqa: E402
from infragenius_devtools import bench  # noqa: E402
from infragenius_devtools.bench import BenchError, log  # noqa: E402
from infragenius_devtools.devcluster import DevClusterError, LocalCluster, scenarios  # noqa: E402
from infragenius_devtools.devcluster.build import ensure_binaries  # noqa: E402
from infragenius_devtools.devcluster.operator_process import OperatorProcess  # noqa: E402

CLUSTER_NAME = "bench-load"
PLURAL = ANALYSIS.plural
RESULTS_DIR = ROOT / "benchmarks" / "results"
RESULTS_FILE = RESULTS_DIR / "analysis_load.json"
TARGET_SECONDS = 20.0  # issue 19 (issue 9 asked for 60 s)
TARGET_REQUESTS_PER_ANALYSIS = 4.0  # issue 19
TARGET_RSS_MB = 500.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
FLEET_BROKEN_FRACTION = 0.02


# --- /proc and /metrics --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            out[name] = cpu_seconds(pid)
        except (OSError, ValueError):
            out[name] = math.nan
    return out


def mib_to_mb(mib: float) -> float:
    return round(mib * 2**20 / 1e6, 1)


RequestKey = tuple[str, str, str]  # (verb, resource, subresource)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def apiserver_requests(kube: bench.Kube) -> Counter[RequestKey]:
    """``apiserver_request_total`` from the API server's own /metrics, summed over codes and groups."""
    api = kube.api
    method, url, headers, _body, _post = api.param_serialize(
        method="GET", resource_path="/metrics", header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"]
    )
    response = api.call_api(method, url, header_params=headers, _request_timeout=(5, 60))
    text = response.read().decode()
    if response.status != 200:
        raise BenchError(f"GET /metrics: {response.status} {text[:200]}")
    counts: Counter[RequestKey] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line.rpartition(" ")
        labels = dict(_LABEL.findall(labels_text))
        if not labels.get("resource"):
            continue  # non-resource URLs (/metrics, /healthz, discovery)
        counts[(labels.get("verb", "?"), labels["resource"], labels.get("subresource", ""))] += float(value)
    return counts


def request_delta(
    before: Counter[RequestKey],
    after: Counter[RequestKey],
    own: Counter[RequestKey],
    background_rate: dict[RequestKey, float],
    seconds: float,
) -> dict[RequestKey, float]:
    """Requests attributed to the operator: delta minus ours minus the background rate (never below 0)."""
    keys = set(after) | set(before)
    out: dict[RequestKey, float] = {}
    for key in keys:
        value = after[key] - before[key] - own[key] - background_rate.get(key, 0.0) * seconds
        if value > 0.5:
            out[key] = value
    return out


def split(requests: dict[RequestKey, float], per: float) -> dict[str, Any]:
    by_verb: Counter[str] = Counter()
    by_resource: Counter[str] = Counter()
    for (verb, resource, sub), value in requests.items():
        by_verb[verb] += value
        by_resource[f"{verb} {resource}{'/' + sub if sub else ''}"] += value
    return {
        "total": round(sum(requests.values()), 1),
        "per_analysis": round(sum(requests.values()) / per, 2),
        "by_verb_per_analysis": {k: round(v / per, 2) for k, v in by_verb.most_common()},
        "by_request_per_analysis": {k: round(v / per, 3) for k, v in by_resource.most_common()},
    }


# --- setup ---------------------------------------------------------------------------------------


def build_namespaces(
    kube: bench.Kube, kubectl: Path, kubeconfig: str, count: int, reuse: bool = False
) -> tuple[list[str], list[str]]:
    """``count`` namespaces; every fifth broken by scenarios.break_namespace. Returns (all, broken)."""
    names = [f"load-{i:02d}" for i in range(count)]
    broken = [n for i, n in enumerate(names) if i % 5 == 0]
    call = bench.kubectl_caller(kubectl, kubeconfig)

    def fill(name: str) -> None:
        bench.create_namespace(kube, name, {"infragenius.io/bench": "load"})
        if name in broken:
            scenarios.break_namespace(call, kube.core, name)
        else:
            scenarios.healthy_namespace(call, kube.core, name)
            scenarios.apply(
                call,
                name,
                scenarios.deployment("api", 2),
                scenarios.service("api", {"app": "api"}),
                scenarios.deployment("worker", 2),
                scenarios.service("worker", {"app": "worker"}),
            )

    started = time.monotonic()
    if reuse and all(kube.exists(f"/api/v1/namespaces/{name}") for name in names):
        log(f"reusing the {count} namespaces of an earlier run (--reuse-namespaces)")
        return names, broken
    with ThreadPoolExecutor(max_workers=10) as pool:
        for _ in pool.map(fill, names):
            pass
    log(f"{count} namespaces ({len(broken)} broken) filled in {time.monotonic() - started:.0f}s")
    return names, broken


def pods_expected_per_namespace(broken: bool) -> int:
    return 8 if broken else 7


# --- the 1,000 Analyses --------------------------------------------------------------------------


def analysis_body(namespace: str, index: int, broken: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    kind = index % 10
    if kind in (1, 2):
        spec["labelSelector"] = "app=checkout" if broken else "app=web"
    elif kind == 3:
        spec["detectors"] = {"include": ["pod", "deployment", "events"]}
    elif kind == 4:
        spec["minSeverity"] = "warning"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Analysis",
        "metadata": {"name": f"load-{index:04d}", "namespace": namespace},
        "spec": spec,
    }


class CompletionWatch:
    """Watches every Analysis from a given resourceVersion; records when each is first seen Completed."""

    def __init__(self, kube: bench.Kube, resource_version: str) -> None:
        self.custom = client.CustomObjectsApi(kube.api)
        self.resource_version = resource_version
        self.completed: dict[tuple[str, str], float] = {}
        self.failed: dict[tuple[str, str], str] = {}
        self.events = 0
        self.watch_requests = 0
        self.list_requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="completion-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def count(self) -> int:
        with self._lock:
            return len(self.completed)

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            self.watch_requests += 1
            try:
                for event in stream.stream(
                    self.custom.list_cluster_custom_object,
                    GROUP,
                    VERSION,
                    PLURAL,
                    resource_version=self.resource_version,
                    timeout_seconds=5,
                ):
                    self.events += 1
                    obj = event["object"]
                    meta = obj.get("metadata") or {}
                    self.resource_version = meta.get("resourceVersion") or self.resource_version
                    status = obj.get("status") or {}
                    key = (meta.get("namespace", ""), meta.get("name", ""))
                    phase = status.get("phase")
                    if phase == "Completed" and status.get("runId"):
                        with self._lock:
                            self.completed.setdefault(key, time.perf_counter())
                    elif phase == "Failed":
                        self.failed[key] = status.get("summary", "")
                    if self._stop.is_set():
                        break
            except client.ApiException as err:
                if err.status == 410:  # expired: start again from a fresh list
                    self.list_requests += 1
                    self.resource_version = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)[
                        "metadata"
                    ]["resourceVersion"]
                    continue
                log(f"watch error: {err.status} {err.reason}")
                time.sleep(0.5)
            except Exception as err:
                log(f"watch error: {type(err).__name__}: {err}")
                time.sleep(0.5)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def start_operator(label: str, extra_env: dict[str, str]) -> tuple[OperatorProcess, Path]:
    log_file = RESULTS_DIR / f"load-operator-{label}.log"
    log_file.unlink(missing_ok=True)
    operator = OperatorProcess.start(os.environ["KUBECONFIG"], log_file, extra_env).wait_ready(timeout=90)
    log(f"operator {label} ready (pid {operator.process.pid}, log {log_file})")
    return operator, log_file


def profile_start(pid: int, seconds: int) -> tuple[subprocess.Popen[bytes], Path] | None:
    """py-spy, when installed, samples the operator during the load (collapsed stacks)."""
    import shutil

    exe = shutil.which("py-spy")
    if not exe:
        log("py-spy not installed; no profile")
        return None
    out = RESULTS_DIR / "load-operator-profile.txt"
    proc = subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "50",
            "--duration",
            str(seconds),
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, out


def profile_summary(path: Path, top: int = 25) -> dict[str, Any]:
    """Inclusive sample share per function from py-spy's collapsed stacks."""
    if not path.exists():
        return {}
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r" \((.*/)?([^/]+)\)$", r" (\2)", f) for f in stack.split(";")]
        frames = [re.sub(r":\d+\)$", ")", f) for f in frames]
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        leaf[frames[-1]] += count
    return {
        "samples": total,
        "inclusive_percent": {k: round(100 * v / total, 1) for k, v in inclusive.most_common(top)} if total else {},
        "leaf_percent": {k: round(100 * v / total, 1) for k, v in leaf.most_common(top)} if total else {},
    }


def measure_load(
    kube: bench.Kube,
    pids: dict[str, int],
    namespaces: list[str],
    broken: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    operator, log_file = start_operator("load", dict(args.operator_env))
    proc = operator.process
    result: dict[str, Any] = {"operator_env": dict(args.operator_env)}
    try:
        time.sleep(3.0)  # watch streams open, start-up settled
        before_bg = apiserver_requests(kube)
        t_bg = time.perf_counter()
        time.sleep(args.baseline)
        after_bg = apiserver_requests(kube)
        bg_seconds = time.perf_counter() - t_bg
        background = {k: (after_bg[k] - before_bg[k]) / bg_seconds for k in after_bg if after_bg[k] - before_bg[k] > 0}
        result["background_requests_per_s"] = round(sum(background.values()), 2)
        log(
            f"background API rate {result['background_requests_per_s']}/s over {bg_seconds:.0f}s "
            "(operator idle, no Analyses)"
        )

        bodies = [
            analysis_body(namespaces[i % len(namespaces)], i, namespaces[i % len(namespaces)] in broken)
            for i in range(args.analyses)
        ]
        own: Counter[RequestKey] = Counter()
        rv = kube.get(f"/apis/{GROUP}/{VERSION}/{PLURAL}", [("limit", 1)])["metadata"]["resourceVersion"]
        own[("LIST", PLURAL, "")] += 1
        watcher = CompletionWatch(kube, rv)
        watcher.start()
        time.sleep(0.5)
        profiler = profile_start(proc.pid, int(args.profile_seconds)) if args.profile else None
        before = apiserver_requests(kube)
        cpu_before = cpu_of({"operator": proc.pid, **pids, "benchmark": os.getpid()})
        t0 = time.perf_counter()
        bench.parallel(
            lambda body: kube.post(bench.analysis_path(body["metadata"]["namespace"]), body), bodies, args.workers
        )
        created = time.perf_counter() - t0
        own[("POST", PLURAL, "")] += len(bodies)
        log(f"{len(bodies)} Analyses created in {created:.1f}s ({len(bodies) / created:.0f}/s)")
        peak_samples: list[float] = []

        def done() -> bool:
            peak_samples.append(bench.proc_memory_mib(proc.pid)[0])
            if proc.poll() is not None:
                raise BenchError(f"the operator exited ({proc.returncode}):\n{bench.log_tail(log_file)}")
            if watcher.failed:
                raise BenchError(f"{len(watcher.failed)} Analyses Failed, e.g. {next(iter(watcher.failed.items()))}")
            return watcher.count() >= len(bodies)

        bench.wait_until(
            done,
            timeout=args.timeout,
            what=f"{len(bodies)} Analyses Completed",
            interval=0.25,
            progress=lambda: f"{watcher.count()}/{len(bodies)} Completed after {time.perf_counter() - t0:.0f}s",
            progress_every=10,
        )
        elapsed = max(watcher.completed.values()) - t0
        cpu_after = cpu_of({"operator": proc.pid, **pids, "benchmark": os.getpid()})
        after = apiserver_requests(kube)
        window = time.perf_counter() - t0
        own[("WATCH", PLURAL, "")] += watcher.watch_requests
        own[("LIST", PLURAL, "")] += watcher.list_requests
        hwm, rss = bench.proc_memory_mib(proc.pid)
        latencies = sorted(v - t0 for v in watcher.completed.values())
        operator_requests = request_delta(before, after, own, background, window)
        upper_bound = request_delta(before, after, own, {}, window)
        result.update(
            analyses=len(bodies),
            create_seconds=round(created, 2),
            all_completed_seconds=round(elapsed, 2),
            throughput_per_s=round(len(bodies) / elapsed, 1),
            completion_p50_s=round(percentile(latencies, 0.5), 2),
            completion_p90_s=round(percentile(latencies, 0.9), 2),
            first_completed_s=round(latencies[0], 2),
            watch_events=watcher.events,
            vm_hwm_mib=hwm,
            vm_rss_mib=rss,
            vm_hwm_mb=mib_to_mb(hwm),
            cpu_seconds_during_load={k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_after},
            measured_window_s=round(window, 2),
            requests=split(operator_requests, len(bodies)),
            # Without subtracting the background rate: an upper bound for the operator's requests.
            requests_upper_bound=split(upper_bound, len(bodies)),
            benchmark_own_requests={" ".join(filter(None, k)): v for k, v in own.items()},
        )
        cpu = result["cpu_seconds_during_load"]
        log(
            f"all {len(bodies)} Completed after {elapsed:.1f}s ({result['throughput_per_s']}/s); "
            f"operator CPU {cpu['operator']}s, "
            f"apiserver {cpu['kube-apiserver']}s, etcd {cpu['etcd']}s; "
            f"{result['requests']['per_analysis']} API requests per analysis; "
            f"VmHWM {hwm} MiB"
        )
        if profiler is not None:
            profiler[0].wait(timeout=args.profile_seconds + 60)
            result["profile"] = profile_summary(profiler[1])
            result["profile_file"] = str(profiler[1])

        watcher.stop()
        if args.idle > 0:
            result["idle"] = measure_idle(kube, proc, args)
        result["vm_hwm_after_idle_mib"] = bench.proc_memory_mib(proc.pid)[0]
        result["log_problems"] = bench.log_errors(log_file)
    finally:
        result["exit_code"] = operator.stop(timeout=30)
    return result


def measure_idle(kube: bench.Kube, proc: subprocess.Popen[bytes], args: argparse.Namespace) -> dict[str, Any]:
    time.sleep(args.settle)
    before = apiserver_requests(kube)
    samples: list[float] = []
    start_cpu = last_cpu = cpu_seconds(proc.pid)
    start = last = time.perf_counter()
    while time.perf_counter() - start < args.idle:
        time.sleep(5.0)
        now, now_cpu = time.perf_counter(), cpu_seconds(proc.pid)
        samples.append(round(100 * (now_cpu - last_cpu) / (now - last), 1))
        last, last_cpu = now, now_cpu
    wall = last - start
    after = apiserver_requests(kube)
    delta = {" ".join(filter(None, k)): after[k] - before[k] for k in after if after[k] - before[k] > 0}
    idle = {
        "seconds": round(wall, 1),
        "cpu_percent": round(100 * (last_cpu - start_cpu) / wall, 2),
        "cpu_percent_per_5s": samples,
        "api_requests_per_s_all_clients": round(sum(delta.values()) / wall, 2),
        "api_requests_by_kind": dict(sorted(delta.items(), key=lambda kv: -kv[1])[:12]),
    }
    log(f"idle: operator CPU {idle['cpu_percent']}% of a core over {wall:.0f}s (per 5 s: {samples})")
    return idle


def delete_all_analyses(kube: bench.Kube) -> None:
    """Delete every Analysis, removing Kopf's finalizer first (an operator that ran older handlers added one):
    none runs now."""
    items = kube.list_all(f"/apis/{GROUP}/{VERSION}/{PLURAL}")
    if not items:
        return

    def drop(obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        path = bench.analysis_path(meta["namespace"], meta["name"])
        try:
            if meta.get("finalizers"):
                kube.merge_patch(path, {"metadata": {"finalizers": None}})
            kubeapi.request(kube.api, "DELETE", path)
        except client.ApiException as err:
            if err.status != 404:
                raise

    started = time.monotonic()
    bench.parallel(drop, items, 16)
    bench.wait_until(
        lambda: not kube.get(f"/apis/{GROUP}/{VERSION}/{PLURAL}", [("limit", 1)]).get("items"),
        timeout=120,
        what="all Analyses deleted",
        interval=0.5,
    )
    log(f"deleted {len(items)} Analyses in {time.monotonic() - started:.0f}s")


# --- 20,000 pods -----------------------------------------------------------------------------------


def fleet_pod(namespace: str, index: int, node: str, broken: bool) -> dict[str, Any]:
    app = f"svc-{index % 20:02d}"
    template = scenarios.deployment(app, 1, custom_status=broken, hardened=True)["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{app}-{index:05d}",
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"].get("annotations", {}),
        },
        "spec": {**template["spec"], "nodeName": node},
    }


def node_slots(kube: bench.Kube) -> list[str]:
    """Node names repeated by how many more pods each takes (pods allocatable minus pods bound)."""
    bound: Counter[str] = Counter()
    for pod in kube.list_all("/api/v1/pods"):
        bound[(pod.get("spec") or {}).get("nodeName") or ""] += 1
    slots: list[str] = []
    for node in kube.list_all("/api/v1/nodes"):
        name = node["metadata"]["name"]
        room = int(parse_quantity(((node.get("status") or {}).get("allocatable") or {}).get("pods", "0"))) - bound[name]
        slots.extend([name] * max(0, room))
    # Interleave so consecutive pods land on different nodes.
    by_node: dict[str, int] = Counter(slots)
    out: list[str] = []
    while by_node:
        for name in list(by_node):
            out.append(name)
            by_node[name] -= 1
            if not by_node[name]:
                del by_node[name]
    return out


def not_running(kube: bench.Kube, namespace: str) -> int:
    page = kube.get(
        f"/api/v1/namespaces/{namespace}/pods", [("fieldSelector", "status.phase!=Running"), ("limit", 500)]
    )
    return len(page.get("items") or [])


def is_broken_index(index: int) -> bool:
    return index % round(1 / FLEET_BROKEN_FRACTION) == 0


def fleet_pod_name(index: int) -> str:
    return f"svc-{index % 20:02d}-{index:05d}"


def patch_broken(kube: bench.Kube, broken: list[tuple[str, str]]) -> None:
    """Write a crash loop into each pod's status, unless an earlier (interrupted) run already did."""

    def patch(item: tuple[str, str]) -> None:
        namespace, name = item
        pod = kube.core.read_namespaced_pod(name, namespace)  # patch_failure needs the stored pod's uid
        waiting = (
            [
                (s.state.waiting.reason if s.state and s.state.waiting else None)
                for s in (pod.status.container_statuses or [])
            ]
            if pod.status
            else []
        )
        if "CrashLoopBackOff" not in waiting:
            scenarios.patch_failure(kube.core, pod, "CrashLoopBackOff")

    bench.parallel(patch, broken, 16)


def build_fleet(kube: bench.Kube, total: int, count: int) -> dict[str, Any]:
    started = time.monotonic()
    namespaces = [f"fleet-{i:02d}" for i in range(count)]
    per_ns = bench.spread(total, count)
    if all(
        kube.exists(f"/api/v1/namespaces/{ns}") and bench.pod_count(kube, ns) == n
        for ns, n in zip(namespaces, per_ns, strict=True)
    ):
        log(f"reusing the {total:,} pods of an earlier run in {count} namespaces")
        patch_broken(
            kube,
            [
                (ns, fleet_pod_name(i))
                for ns, n in zip(namespaces, per_ns, strict=True)
                for i in range(n)
                if is_broken_index(i)
            ],
        )
        return {
            "namespaces": namespaces,
            "pods": total,
            "crashlooping": round(total * FLEET_BROKEN_FRACTION),
            "reused": True,
        }
    for name in namespaces:
        bench.create_namespace(kube, name, {"infragenius.io/bench": "fleet"})
    slots = node_slots(kube)
    if len(slots) < total:
        raise BenchError(f"room for {len(slots)} pods on the nodes, {total} wanted")
    work: list[tuple[str, dict[str, Any]]] = []
    broken: list[tuple[str, str]] = []
    index = 0
    for namespace, n in zip(namespaces, per_ns, strict=True):
        for i in range(n):
            is_broken = is_broken_index(i)
            pod = fleet_pod(namespace, i, slots[index], is_broken)
            index += 1
            work.append((namespace, pod))
            if is_broken:
                broken.append((namespace, pod["metadata"]["name"]))
    log(f"creating {total:,} pods ({len(broken)} crashlooping) in {count} namespaces")
    t0 = time.monotonic()
    bench.parallel(lambda item: kube.post(f"/api/v1/namespaces/{item[0]}/pods", item[1]), work, 16)
    created = time.monotonic() - t0
    log(f"  created in {created:.0f}s ({total / created:.0f}/s)")

    patch_broken(kube, broken)
    bench.wait_until(
        lambda: all(not_running(kube, ns) == 0 for ns in namespaces),
        timeout=600,
        what=f"{total:,} pods Running",
        interval=5.0,
        progress=lambda: f"{sum(not_running(kube, ns) for ns in namespaces)}+ not Running yet",
        progress_every=20,
    )
    log(f"{total:,} pods Running after {time.monotonic() - started:.0f}s")
    return {
        "namespaces": namespaces,
        "pods": total,
        "crashlooping": len(broken),
        "create_seconds": round(created, 1),
        "setup_seconds": round(time.monotonic() - started, 1),
    }


CLUSTER_WIDE_CHILD = r"""
import asyncio, json, sys, time
from pathlib import Path
from kubernetes import client, config
import infragenius.handlers  # what the operator imports, so the memory baselines compare
import infragenius.gather.kube as kube_gather
if sys.argv[3:] == ["unslimmed"]:  # for comparison: keep managedFields and last-applied as listed
    kube_gather._slim = lambda items, keep_writes=False: items
from infragenius.analysis import runner
from infragenius.gather.kube import KubeGatherer
from infragenius.models.analysis import AnalysisSpec
from infragenius.settings import Settings

def mem():
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024
    return out

async def main():
    settings = Settings()
    configuration = client.Configuration()
    config.load_kube_config(config_file=sys.argv[1], client_configuration=configuration)
    configuration.connection_pool_maxsize = settings.list_concurrency + 4
    runs = []
    baseline = mem()
    with client.ApiClient(configuration) as api:
        for _ in range(int(sys.argv[2])):
            started = time.perf_counter()
            outcome = await runner.analyze(
                KubeGatherer(api, event_cap=settings.event_cap, concurrency=settings.list_concurrency),
                AnalysisSpec(),
                None,
            )
            runs.append({
                "wall_s": round(time.perf_counter() - started, 3),
                "gather_s": outcome.timings.gather_seconds,
                "detect_s": outcome.timings.detect_seconds,
                "findings": len(outcome.findings),
                "objects": {k: len(v) for k, v in sorted(outcome.snapshot.objects.items())},
                "missing": [m.source for m in outcome.missing],
                "after_run": mem(),
            })
            del outcome
    print(json.dumps({"baseline": baseline, "runs": runs, "final": mem()}))

asyncio.run(main())
"""


def measure_cluster_wide(kubeconfig: str, runs: int, unslimmed: bool = False) -> dict[str, Any]:
    argv = [sys.executable, "-c", CLUSTER_WIDE_CHILD, kubeconfig, str(runs)] + (["unslimmed"] if unslimmed else [])
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise BenchError(f"cluster-wide analysis failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["vm_hwm_mb"] = mib_to_mb(result["final"]["VmHWM"])
    for run in result["runs"]:
        log(
            f"  cluster-wide run: {run['wall_s']}s (gather {run['gather_s']}s, detect {run['detect_s']}s), "
            f"{run['findings']} findings, {run['objects'].get('Pod', 0)} pods, "
            f"VmHWM {run['after_run']['VmHWM']:.0f} MiB"
        )
    return result


def measure_fleet_operator(kube: bench.Kube, namespaces: list[str], args: argparse.Namespace) -> dict[str, Any]:
    operator, log_file = start_operator("fleet", dict(args.operator_env))
    proc = operator.process
    result: dict[str, Any] = {}
    try:
        time.sleep(2.0)
        baseline_hwm = bench.proc_memory_mib(proc.pid)[0]
        rv = kube.get(f"/apis/{GROUP}/{VERSION}/{PLURAL}", [("limit", 1)])["metadata"]["resourceVersion"]
        watcher = CompletionWatch(kube, rv)
        watcher.start()
        time.sleep(0.5)
        t0 = time.perf_counter()
        for namespace in namespaces:
            kube.post(
                bench.analysis_path(namespace),
                {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Analysis", "metadata": {"name": "fleet"}, "spec": {}},
            )

        def fleet_done() -> bool:
            if proc.poll() is not None:
                raise BenchError(f"the operator exited ({proc.returncode}):\n{bench.log_tail(log_file)}")
            return watcher.count() >= len(namespaces)

        bench.wait_until(
            fleet_done,
            timeout=600,
            what=f"{len(namespaces)} fleet Analyses Completed",
            interval=0.25,
            progress=lambda: f"{watcher.count()}/{len(namespaces)}; VmHWM {bench.proc_memory_mib(proc.pid)[0]} MiB",
            progress_every=15,
        )
        elapsed = max(watcher.completed.values()) - t0
        watcher.stop()
        hwm, rss = bench.proc_memory_mib(proc.pid)
        statuses = [(kube.get(bench.analysis_path(ns, "fleet")).get("status") or {}) for ns in namespaces]
        result = {
            "analyses": len(namespaces),
            "all_completed_seconds": round(elapsed, 2),
            "gather_seconds": [s.get("timings", {}).get("gatherSeconds") for s in statuses],
            "detect_seconds": [s.get("timings", {}).get("detectSeconds") for s in statuses],
            "total_findings": [s.get("totalFindings") for s in statuses],
            "vm_hwm_before_mib": baseline_hwm,
            "vm_hwm_mib": hwm,
            "vm_hwm_mb": mib_to_mb(hwm),
            "vm_rss_mib": rss,
            "log_problems": bench.log_errors(log_file),
        }
        log(f"fleet: {len(namespaces)} Analyses Completed after {elapsed:.1f}s; operator VmHWM {hwm} MiB")
    finally:
        result["exit_code"] = operator.stop(timeout=30)
    return result


def measure_operator_cluster_wide(kube: bench.Kube, args: argparse.Namespace) -> dict[str, Any]:
    """One Analysis with ``spec.allNamespaces`` handled by a fresh operator process: time and memory."""
    operator, log_file = start_operator("cluster-wide", dict(args.operator_env))
    proc = operator.process
    result: dict[str, Any] = {}
    try:
        time.sleep(2.0)
        baseline_hwm = bench.proc_memory_mib(proc.pid)[0]
        name = f"cluster-wide-{int(time.time())}"
        t0 = time.perf_counter()
        kube.post(
            bench.analysis_path("default"),
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Analysis",
                "metadata": {"name": name},
                "spec": {"allNamespaces": True, "maxFindings": 100},
            },
        )
        status: dict[str, Any] = {}

        def completed() -> bool:
            nonlocal status
            if proc.poll() is not None:
                raise BenchError(f"the operator exited ({proc.returncode}):\n{bench.log_tail(log_file)}")
            status = kube.get(bench.analysis_path("default", name)).get("status") or {}
            return status.get("phase") in ("Completed", "Failed")

        bench.wait_until(completed, timeout=600, what="the cluster-wide Analysis", interval=0.25)
        elapsed = time.perf_counter() - t0
        hwm, rss = bench.proc_memory_mib(proc.pid)
        result = {
            "phase": status.get("phase"),
            "apply_to_completed_seconds": round(elapsed, 2),
            "timings": status.get("timings"),
            "total_findings": status.get("totalFindings"),
            "summary": status.get("summary"),
            "vm_hwm_before_mib": baseline_hwm,
            "vm_hwm_mib": hwm,
            "vm_hwm_mb": mib_to_mb(hwm),
            "vm_rss_mib": rss,
            "log_problems": bench.log_errors(log_file),
        }
        log(f"cluster-wide Analysis via the operator: {status.get('phase')} after {elapsed:.1f}s; VmHWM {hwm} MiB")
    finally:
        result["exit_code"] = operator.stop(timeout=30)
    return result


# --- report --------------------------------------------------------------------------------------


def print_summary(doc: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str]] = []
    load = doc.get("load")
    if load:
        ok = load["all_completed_seconds"] <= TARGET_SECONDS
        rows += [
            (
                f"{load['analyses']:,} Analyses: first POST -> last Completed",
                f"{load['all_completed_seconds']:.1f} s",
                f"<= {TARGET_SECONDS:.0f} s  {'OK' if ok else 'MISSED'}",
            ),
            (
                "  creating them (POSTs, {} threads)".format(doc["args"]["workers"]),
                f"{load['create_seconds']:.1f} s",
                "",
            ),
            ("  throughput", f"{load['throughput_per_s']:.1f} /s", ""),
            ("  completion p50 / p90", f"{load['completion_p50_s']:.1f} / {load['completion_p90_s']:.1f} s", ""),
            ("  operator VmHWM", f"{load['vm_hwm_mib']:.0f} MiB", ""),
            (
                "  API requests per analysis (operator)",
                f"{load['requests']['per_analysis']:.1f}",
                f"<= {TARGET_REQUESTS_PER_ANALYSIS:.0f}  "
                f"{'OK' if load['requests']['per_analysis'] <= TARGET_REQUESTS_PER_ANALYSIS else 'MISSED'}: "
                + ", ".join(f"{k} {v}" for k, v in load["requests"]["by_verb_per_analysis"].items()),
            ),
            (
                "  CPU s during load: operator/apiserver/etcd",
                "{operator:.0f} / {kube-apiserver:.0f} / {etcd:.0f}".format(**load["cpu_seconds_during_load"]),
                "",
            ),
        ]
        idle = load.get("idle")
        if idle:
            rows.append(
                (
                    f"idle operator CPU, {load['analyses']:,} Analyses present",
                    f"{idle['cpu_percent']:.1f} %",
                    f"of one core over {idle['seconds']:.0f} s",
                )
            )
    fleet = doc.get("fleet")
    if fleet:
        wide = fleet.get("cluster_wide") or {}
        if wide:
            first = wide["runs"][0]
            rows += [
                (
                    f"cluster-wide analysis, {fleet['setup']['pods']:,} pods (separate process)",
                    f"{first['wall_s']:.1f} s",
                    f"gather {first['gather_s']:.1f} s, detect {first['detect_s']:.1f} s",
                ),
                (
                    "  its VmHWM",
                    f"{wide['final']['VmHWM']:.0f} MiB",
                    f"< {TARGET_RSS_MB:.0f} MB  {'OK' if wide['vm_hwm_mb'] < TARGET_RSS_MB else 'MISSED'}",
                ),
            ]
        plain = fleet.get("cluster_wide_unslimmed") or {}
        if plain:
            rows.append(
                (
                    "  same, keeping managedFields (VmHWM)",
                    f"{plain['final']['VmHWM']:.0f} MiB",
                    f"{plain['runs'][0]['wall_s']:.1f} s",
                )
            )
        op = fleet.get("operator") or {}
        if op.get("vm_hwm_mib"):
            rows += [
                (
                    f"operator: {op['analyses']} namespace Analyses over the same pods",
                    f"{op['all_completed_seconds']:.1f} s",
                    "",
                ),
                (
                    "  operator VmHWM",
                    f"{op['vm_hwm_mib']:.0f} MiB",
                    f"< {TARGET_RSS_MB:.0f} MB  {'OK' if op['vm_hwm_mb'] < TARGET_RSS_MB else 'MISSED'}",
                ),
            ]
        via = (fleet or {}).get("operator_cluster_wide") or {}
        if via.get("vm_hwm_mib"):
            rows += [
                (
                    f"operator: one Analysis with allNamespaces, {fleet['setup']['pods']:,} pods",
                    f"{via['apply_to_completed_seconds']:.1f} s",
                    "gather {gatherSeconds:.1f} s, detect {detectSeconds:.1f} s".format(
                        **(via.get("timings") or {"gatherSeconds": 0, "detectSeconds": 0})
                    ),
                ),
                (
                    "  operator VmHWM",
                    f"{via['vm_hwm_mib']:.0f} MiB",
                    f"< {TARGET_RSS_MB:.0f} MB  {'OK' if via['vm_hwm_mb'] < TARGET_RSS_MB else 'MISSED'}",
                ),
            ]
    width = max(len(r[0]) for r in rows) if rows else 10
    vwidth = max(len(r[1]) for r in rows) if rows else 10
    print()
    print(f"{'metric':<{width}}  {'value':>{vwidth}}  target / detail")
    print("-" * (width + vwidth + 40))
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:>{vwidth}}  {note}".rstrip())
    machine = doc["machine"]
    print(
        f"\n{machine['cpus']} CPUs; load average before {machine['load_average_before']}, "
        f"after {machine['load_average_after']} "
        "(other sessions share these cores: figures are noisy, compare ratios)."
    )
    sys.stdout.flush()


def parse_env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--analyses", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--workers", type=int, default=16, help="threads POSTing the Analyses")
    parser.add_argument("--timeout", type=float, default=900, help="give up waiting for Completed after this")
    parser.add_argument("--baseline", type=float, default=20, help="seconds of background API rate measurement")
    parser.add_argument("--settle", type=float, default=5)
    parser.add_argument("--idle", type=float, default=60, help="seconds of idle CPU sampling (0 skips)")
    parser.add_argument("--cluster-pods", type=int, default=20000, help="pods for the cluster-wide step (0 skips it)")
    parser.add_argument("--fleet-namespaces", type=int, default=10)
    parser.add_argument("--cluster-wide-runs", type=int, default=2)
    parser.add_argument(
        "--cluster-wide-unslimmed", action="store_true", help="also run it once keeping managedFields (comparison)"
    )
    parser.add_argument("--skip-load", action="store_true", help="only the 20,000-pod step")
    parser.add_argument("--profile", action="store_true", help="py-spy the operator during the load")
    parser.add_argument("--profile-seconds", type=float, default=60)
    parser.add_argument(
        "--operator-env",
        type=parse_env,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the operator, e.g. INFRAGENIUS_MAX_CONCURRENT_ANALYSES=8",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="where the JSON goes")
    parser.add_argument("--reuse-namespaces", action="store_true", help="skip filling namespaces a kept cluster has")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    parser.add_argument("--cluster-name", default=CLUSTER_NAME, help=f"local cluster to use (default {CLUSTER_NAME!r})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(args.cluster_name)
    kube: bench.Kube | None = None
    doc: dict[str, Any] = {
        "benchmark": "analysis_load",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "nice": os.nice(0),
        },
        "targets": {
            "all_completed_seconds": TARGET_SECONDS,
            "requests_per_analysis": TARGET_REQUESTS_PER_ANALYSIS,
            "operator_rss_mb": TARGET_RSS_MB,
        },
    }
    try:
        info = cluster.up(echo=log, timeout=180)
        os.environ["KUBECONFIG"] = info.kubeconfig
        doc["cluster"] = {"name": args.cluster_name, "version": info.version}
        kubectl = ensure_binaries(echo=False).kubectl
        kube = bench.Kube(info.kubeconfig, pool=args.workers + 4)
        bench.kubectl_run(kubectl, info.kubeconfig, "apply", "-f", str(ROOT / "crds"))
        bench.kubectl_run(
            kubectl, info.kubeconfig, "wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", "--timeout=60s"
        )
        load_pods = 0 if args.skip_load else args.namespaces * 8
        doc["cluster"]["nodes"] = bench.add_capacity(kube, load_pods + args.cluster_pods)
        pids = {k: v for k, v in info.pids.items() if k in ("kube-apiserver", "etcd")}
        if not args.skip_load:
            # Leftovers of an earlier run (--keep) would conflict with the new names and load the operator.
            delete_all_analyses(kube)
            namespaces, broken = build_namespaces(
                kube, kubectl, info.kubeconfig, args.namespaces, args.reuse_namespaces
            )
            doc["load_setup"] = {"namespaces": len(namespaces), "broken": len(broken)}
            doc["load"] = measure_load(kube, pids, namespaces, broken, args)
            args.output.write_text(json.dumps(doc, indent=2) + "\n")
        if args.cluster_pods:
            log("deleting the load Analyses before the 20,000-pod step")
            delete_all_analyses(kube)
            fleet = build_fleet(kube, args.cluster_pods, args.fleet_namespaces)
            doc["fleet"] = {"setup": {k: v for k, v in fleet.items() if k != "namespaces"}}
            log("cluster-wide analysis in a separate process")
            doc["fleet"]["cluster_wide"] = measure_cluster_wide(info.kubeconfig, args.cluster_wide_runs)
            if args.cluster_wide_unslimmed:
                log("the same, keeping managedFields and last-applied (as before the gatherer dropped them)")
                doc["fleet"]["cluster_wide_unslimmed"] = measure_cluster_wide(info.kubeconfig, 1, unslimmed=True)
            doc["fleet"]["operator"] = measure_fleet_operator(kube, fleet["namespaces"], args)
            log("one Analysis with spec.allNamespaces, handled by the operator")
            doc["fleet"]["operator_cluster_wide"] = measure_operator_cluster_wide(kube, args)
        doc["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        doc["duration_seconds"] = round(time.monotonic() - bench.STARTED, 1)
        args.output.write_text(json.dumps(doc, indent=2) + "\n")
        print_summary(doc)
        print(f"Figures written to {args.output}; total {doc['duration_seconds']:.0f}s.")
        return 0
    except (BenchError, DevClusterError) as err:
        log(f"benchmark failed: {err}")
        doc["error"] = str(err)
        args.output.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        return 1
    finally:
        if kube is not None:
            kube.close()
        if args.keep:
            log(
                f"cluster {args.cluster_name!r} kept running (--keep); "
                f"stop it with `infragenius devcluster down --name {args.cluster_name}`"
            )
        else:
            cluster.down(echo=log)


if __name__ == "__main__":
    sys.exit(main())
