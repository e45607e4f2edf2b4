"""What the benchmarks share: raw API access, polling with progress, kwok capacity, namespace seeding,
kubectl runs and /proc figures. Each benchmark keeps only its own measurements."""

from __future__ import annotations

import math
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config

from infragenius import kubeapi
from infragenius.kube.quantity import parse_quantity
from infragenius.models.api import ANALYSIS
from infragenius_devtools.devcluster.cluster import fake_node

T = TypeVar("T")
STARTED = time.monotonic()
WORKERS = 16

# Extra kwok nodes. With the hardened pod requests (100m CPU, 128Mi) the pod count is the
# binding limit: 32 CPU fit 320 such pods and 128Gi fit 1,024, so each node takes 250.
EXTRA_NODE_CAPACITY = {"cpu": "32", "memory": "128Gi", "pods": "250", "ephemeral-storage": "200Gi"}
POD_REQUESTS = {"cpu": 0.1, "memory": 128 * 2**20}  # as in scenarios.deployment(hardened=True)
CAPACITY_SLACK = 1.10

#: Reasons and messages of the Warning events the scale benchmarks post (analysis_scale) or build (detect_scale).
WARNING_EVENT_REASONS: tuple[tuple[str, str], ...] = (
    ("FailedMount", 'MountVolume.SetUp failed for volume "config" : configmap "app-config" not found'),
    ("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"),
    ("BackOff", "Back-off restarting failed container app in pod"),
    (
        "FailedCreatePodSandBox",
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network",
    ),
    ("ProbeWarning", "Liveness probe warning: HTTP probe succeeded with a redirect"),
    ("FailedMount", "Unable to attach or mount volumes: unmounted volumes=[data]: timed out waiting for the condition"),
)


class BenchError(Exception):
    """A step did not finish; the message says which and what was last seen."""


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 1.0,
    progress: Callable[[], str] | None = None,
    progress_every: float = 15.0,
) -> T:
    """Poll ``check`` until it returns something other than None/False; raise BenchError on timeout."""
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + progress_every
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        now = time.monotonic()
        if now >= deadline:
            detail = f" (last: {progress()})" if progress else ""
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        if progress and now >= next_report:
            log(f"  waiting for {what}: {progress()}")
            next_report = now + progress_every
        time.sleep(interval)


# --- Kubernetes access ---------------------------------------------------------------------------


class Kube:
    """Raw JSON requests through the official client (no model decoding of thousands of pods)."""

    def __init__(self, kubeconfig: str, pool: int = WORKERS + 4) -> None:
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = pool
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)

    def close(self) -> None:
        self.api.close()

    def get(self, path: str, query: Sequence[tuple[str, Any]] = ()) -> Any:
        return kubeapi.request(self.api, "GET", path, query=query, timeout=(5, 60))

    def post(self, path: str, body: Any) -> Any:
        return kubeapi.request(self.api, "POST", path, body=body, timeout=(5, 60))

    def merge_patch(self, path: str, body: Any) -> Any:
        headers = {"Content-Type": "application/merge-patch+json"}
        return kubeapi.request(self.api, "PATCH", path, body=body, headers=headers, timeout=(5, 60))

    def list_all(self, path: str, query: Sequence[tuple[str, Any]] = ()) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = [*query, ("limit", 500)] + ([("continue", token)] if token else [])
            body = self.get(path, page)
            items.extend(body.get("items") or [])
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return items

    def create_ignoring_conflict(self, path: str, body: dict[str, Any]) -> None:
        try:
            self.post(path, body)
        except client.ApiException as err:
            if err.status != 409:
                raise

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
        except client.ApiException as err:
            if err.status == 404:
                return False
            raise
        return True


def parallel(func: Callable[[T], Any], items: Sequence[T], workers: int = WORKERS) -> None:
    """Run ``func`` over ``items`` in a thread pool; the first failure is raised."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(func, items):
            pass


def analysis_path(namespace: str, name: str | None = None) -> str:
    return ANALYSIS.path(namespace, name) if name else ANALYSIS.collection_path(namespace)


def pod_count(kube: Kube, namespace: str) -> int:
    """Pods in the namespace, from a one-item page (``remainingItemCount``) instead of a full LIST."""
    page = kube.get(f"/api/v1/namespaces/{namespace}/pods", [("limit", 1)])
    return len(page.get("items") or []) + int((page.get("metadata") or {}).get("remainingItemCount") or 0)


def spread(total: int, parts: int) -> list[int]:
    base, rest = divmod(total, parts)
    return [base + (1 if i < rest else 0) for i in range(parts)]


# --- seeding -------------------------------------------------------------------------------------


def create_namespace(kube: Kube, name: str, labels: dict[str, str] | None = None) -> None:
    """Create it (an existing one is fine) and wait for its default service account: pods need it."""
    kube.create_ignoring_conflict(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}},
    )
    wait_until(
        lambda: kube.exists(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        timeout=60,
        what=f"the default service account in {name}",
        interval=0.2,
    )


def bench_node(index: int) -> dict[str, Any]:
    address = f"10.0.{1 + index // 250}.{index % 250 + 1}"
    return fake_node(f"bench-node-{index}", address, EXTRA_NODE_CAPACITY, zone=f"zone-{index % 3}")


def ready_nodes(kube: Kube) -> int:
    count = 0
    for node in kube.list_all("/api/v1/nodes"):
        for condition in (node.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready" and condition.get("status") == "True":
                count += 1
    return count


def pods_that_fit(allocatable: dict[str, str]) -> int:
    """How many benchmark pods one node takes: the tightest of its pods, CPU and memory."""
    return int(
        min(
            float(parse_quantity(allocatable.get("pods", "0"))),
            float(parse_quantity(allocatable.get("cpu", "0"))) / POD_REQUESTS["cpu"],
            float(parse_quantity(allocatable.get("memory", "0"))) / POD_REQUESTS["memory"],
        )
    )


def add_capacity(kube: Kube, pods_wanted: int) -> int:
    """Create enough extra kwok nodes for ``pods_wanted`` more pods; wait until all nodes are Ready."""
    existing_pods = len(kube.list_all("/api/v1/pods"))
    nodes = kube.list_all("/api/v1/nodes")
    have = sum(pods_that_fit((n.get("status") or {}).get("allocatable") or {}) for n in nodes)
    needed = math.ceil((existing_pods + pods_wanted) * CAPACITY_SLACK)
    extra = max(0, math.ceil((needed - have) / pods_that_fit(EXTRA_NODE_CAPACITY)))
    log(
        f"adding {extra} kwok nodes ({EXTRA_NODE_CAPACITY}) to room for {have} pods, "
        f"for {existing_pods} existing + {pods_wanted} new pods"
    )
    # New names after the existing ones: on a kept cluster, bench-node-0... are taken (a conflict adds nothing).
    taken = {n["metadata"]["name"] for n in nodes}
    free = (i for i in range(len(taken) + extra + 1) if bench_node(i)["metadata"]["name"] not in taken)
    indices = [next(free) for _ in range(extra)]
    parallel(lambda i: kube.create_ignoring_conflict("/api/v1/nodes", bench_node(i)), indices)
    total = len(kube.list_all("/api/v1/nodes"))
    wait_until(
        lambda: ready_nodes(kube) >= total,
        timeout=120,
        what=f"{total} nodes to be Ready",
        progress=lambda: f"{ready_nodes(kube)}/{total} Ready",
    )
    return total


# --- kubectl -------------------------------------------------------------------------------------


def kubectl_run(kubectl: Path, kubeconfig: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    argv = [str(kubectl), f"--kubeconfig={kubeconfig}", *args]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"`kubectl {' '.join(args)}` took longer than {timeout:.0f}s") from err
    if done.returncode != 0:
        raise BenchError(f"`kubectl {' '.join(args)}` failed ({done.returncode}): {done.stderr.decode()[-1000:]}")
    return done


def kubectl_caller(kubectl: Path, kubeconfig: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The ``kubectl(*args, input=..., check=...)`` callable that ``scenarios.*`` expect."""

    def call(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(kubectl), f"--kubeconfig={kubeconfig}", *args]
        done = subprocess.run(argv, input=input, text=True, capture_output=True, check=False)
        if check and done.returncode != 0:
            raise BenchError(f"kubectl {' '.join(args)}: {done.stderr[-500:]}")
        return done

    return call


# --- processes -----------------------------------------------------------------------------------


def proc_memory_mib(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a live process, in MiB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return round(fields["VmHWM"], 1), round(fields["VmRSS"], 1)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def log_errors(path: Path, limit: int = 20) -> list[str]:
    """Lines of an operator log that report a traceback or an error."""
    text = path.read_text(errors="replace")
    return [line for line in text.splitlines() if "Traceback" in line or " ERROR " in line or "[ERROR" in line][:limit]
