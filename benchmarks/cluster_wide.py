"""A cluster-wide analysis of 20,000 pods, next to its floor, for two source trees side by side (issue 19).

Method
------
Against its own local cluster (``--cluster-name``, default ``bench-wide``; kwok nodes), it fills
``--namespaces`` (10) namespaces with ``--pods`` (20,000) bare pods, 2% crashlooping, exactly as
``analysis_load.py``'s 20,000-pod step does (``analysis_load.build_fleet``), then measures:

- **Floor, API**: ``kubectl get --raw <path>`` of every path a cluster-wide analysis LISTs (the kinds
  ``registry.kinds_needed(registry.select()) & ENDPOINTS`` plus the Warning events), unpaged, 8 at a
  time, as the gatherer does; wall time, median of ``--floor-runs``. The Pod LIST alone too.
- **Floor, decode**: the same bytes (kept from one of those runs) decoded whole by ``json.loads``,
  ``orjson.loads`` and ``msgspec.json.decode`` (median of 3 each, in this process).
- **Figure**: ``runner.analyze(KubeGatherer(api), AnalysisSpec(), None)`` (the operator's pipeline,
  cluster-wide) in a fresh Python process per run that first imported what the operator imports; its
  wall, gather and detect seconds, and ``VmHWM`` (peak RSS) with the imports-only VmHWM for reference.
  The same process then times detection alone over a 5,000-pod part of that snapshot (the first
  5,000 pods with every other kind and the events; median of 5), next to the floor of one pass that
  reads every container status of the same pods.
- With ``--baseline DIR`` (a directory holding another tree's ``operator/``, e.g. ``git archive
  <commit> operator | tar -x -C DIR``), each run alternates the baseline tree and this tree, so that
  a change in the machine's load hits both alike.

Prints, per tree, figure, floor and ratio. Nothing is asserted. Targets (issue 19): the whole run
at most 10 s, peak RSS under 300 MB; detection at 5,000 pods at most 50 ms.

Run: ``python benchmarks/cluster_wide.py [--cluster-name perf] [--baseline /tmp/before] [--keep]``.
Results: stdout and ``benchmarks/results/cluster_wide.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "devtools"), str(ROOT / "benchmarks")]

import analysis_load  # noqa: E402  (the 20,000-pod fleet is built exactly as there)

from infragenius import kubeapi  # noqa: E402
from infragenius.detectors import registry  # noqa: E402
from infragenius.gather.kube import ENDPOINTS, PAGE_SIZE  # noqa: E402
from infragenius_devtools import bench  # noqa: E402
from infragenius_devtools.bench import BenchError, log  # noqa: E402
from infragenius_devtools.devcluster import DevClusterError, LocalCluster  # noqa: E402
from infragenius_devtools.devcluster.build import ensure_binaries  # noqa: E402

RESULTS_FILE = ROOT / "benchmarks" / "results" / "cluster_wide.json"
TARGET_SECONDS = 10.0
TARGET_RSS_MB = 300.0
TARGET_DETECT_MS = 50.0
DETECT_PODS = 5000

CHILD = r"""
import asyncio, json, statistics, sys, time
from pathlib import Path
from kubernetes import client, config
import infragenius.handlers  # what the operator imports, so the memory baselines compare
from infragenius.analysis import engine, runner
from infragenius.detectors import registry
from infragenius.gather.kube import KubeGatherer
from infragenius.models.analysis import AnalysisSpec
from infragenius.settings import Settings
from infragenius.snapshot import Snapshot

def mem():
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024
    return out

def status_pass(pods):
    # The floor of detection: one pass reading every container status.
    started = time.perf_counter()
    seen = 0
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or ():
            seen += bool((status.get("state") or {}).get("waiting"))
    return time.perf_counter() - started

def detect_part(snapshot, pods):
    # The first `pods` pods with everything else: detection alone, as at a 5,000-pod namespace.
    part = dict(snapshot.objects)
    part["Pod"] = snapshot.items("Pod")[:pods]
    detectors = registry.select()
    times, floors = [], []
    for _ in range(5):
        small = Snapshot.build(snapshot.namespace, part, snapshot.events, results=snapshot.results,
                               taken_at=snapshot.taken_at)
        started = time.perf_counter()
        result = engine.run_detectors(small, detectors)
        times.append(time.perf_counter() - started)
        floors.append(status_pass(part["Pod"]))
    return {"pods": len(part["Pod"]), "detect_ms": round(statistics.median(times) * 1000, 1),
            "floor_ms": round(statistics.median(floors) * 1000, 2), "findings": len(result.findings)}

async def main():
    settings = Settings()
    configuration = client.Configuration()
    config.load_kube_config(config_file=sys.argv[1], client_configuration=configuration)
    configuration.connection_pool_maxsize = settings.list_concurrency + 4
    baseline = mem()
    with client.ApiClient(configuration) as api:
        started = time.perf_counter()
        outcome = await runner.analyze(
            KubeGatherer(api, event_cap=settings.event_cap, concurrency=settings.list_concurrency),
            AnalysisSpec(),
            None,
        )
        wall = time.perf_counter() - started
        after = mem()
        run = {
            "wall_s": round(wall, 3),
            "gather_s": outcome.timings.gather_seconds,
            "detect_s": outcome.timings.detect_seconds,
            "findings": len(outcome.findings),
            "objects": {k: len(v) for k, v in sorted(outcome.snapshot.objects.items())},
            "missing": [m.source for m in outcome.missing],
            "imports_hwm_mib": baseline["VmHWM"],
            "hwm_mib": after["VmHWM"],
        }
        run["detect_5000"] = detect_part(outcome.snapshot, int(sys.argv[2]))
        del outcome
        if sys.argv[3:]:  # a namespace of Deployments (analysis_scale.py): detection as the operator runs it
            times = []
            for _ in range(3):
                ns_outcome = await runner.analyze(KubeGatherer(api), AnalysisSpec(), sys.argv[3])
                times.append(ns_outcome.timings.detect_seconds)
            run["namespace_detect"] = {
                "namespace": sys.argv[3],
                "pods": len(ns_outcome.snapshot.items("Pod")),
                "detect_ms": round(statistics.median(times) * 1000, 1),
                "floor_ms": round(status_pass(ns_outcome.snapshot.items("Pod")) * 1000, 2),
                "findings": len(ns_outcome.findings),
            }
    print(json.dumps(run))

asyncio.run(main())
"""


def cluster_paths() -> list[str]:
    kinds = sorted(registry.kinds_needed(registry.select()) & set(ENDPOINTS))
    return [ENDPOINTS[k].path(None) for k in kinds] + ["/api/v1/events?fieldSelector=type=Warning"]


def raw_floor(kubectl: Path, kubeconfig: str, paths: list[str], runs: int) -> dict[str, Any]:
    """`kubectl get --raw` of every path, unpaged, 8 at a time (wall, median of runs), and of the Pod LIST alone."""

    def get(path: str) -> int:
        return len(bench.kubectl_run(kubectl, kubeconfig, "get", "--raw", path, timeout=300).stdout)

    walls, pod_walls, sizes = [], [], []
    for _ in range(runs + 1):  # the first run warms up
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            sizes = list(pool.map(get, paths))
        walls.append(time.perf_counter() - started)
        started = time.perf_counter()
        get("/api/v1/pods")
        pod_walls.append(time.perf_counter() - started)
    return {
        "all_paths_s": round(statistics.median(walls[1:]), 3),
        "pods_only_s": round(statistics.median(pod_walls[1:]), 3),
        "bytes": sum(sizes),
    }


_CONTINUE = re.compile(rb'"continue":"([^"]+)"')


def paged_floor(kube: bench.Kube, paths: list[str], runs: int) -> tuple[dict[str, Any], list[bytes]]:
    """The gatherer's requests without its work: every path LISTed in pages of 500 (the same pool,
    8 paths at a time), bytes kept, nothing decoded. Wall time, median of runs; the pages of the last run."""
    pages: list[bytes] = []

    def read(path: str) -> list[bytes]:
        base, _, selector = path.partition("?")
        query = [tuple(selector.split("=", 1))] if selector else []
        out: list[bytes] = []
        token = None
        while True:
            page = [*query, ("limit", PAGE_SIZE)] + ([("continue", token)] if token else [])
            data = kubeapi.request(kube.api, "GET", base, query=page, timeout=(5, 60), raw=True)
            out.append(data)
            found = _CONTINUE.search(data[:4096])  # metadata comes first in a List
            if not found:
                return out
            token = found.group(1).decode()

    walls = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            pages = [page for result in pool.map(read, paths) for page in result]
        walls.append(time.perf_counter() - started)
    return {"paged_s": round(statistics.median(walls[1:]), 3), "pages": len(pages)}, pages


def decode_floor(pages: list[bytes]) -> dict[str, float]:
    """Seconds to decode every page, keeping the results (as a gatherer must), per decoder (median of 3).
    msgspec is measured when installed (it is not a dependency of the project)."""
    import orjson

    decoders: dict[str, Any] = {"json": json.loads, "orjson": orjson.loads}
    try:
        import msgspec
    except ImportError:
        pass
    else:
        decoders["msgspec"] = msgspec.json.decode
    out: dict[str, float] = {}
    for name, decode in decoders.items():
        times = []
        for _ in range(3):
            started = time.perf_counter()
            kept = [decode(page) for page in pages]
            times.append(time.perf_counter() - started)
            del kept
        out[name] = round(statistics.median(times), 3)
    return out


def run_child(tree: Path, kubeconfig: str, namespace: str | None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree / "operator")}
    argv = [sys.executable, "-c", CHILD, kubeconfig, str(DETECT_PODS), *([namespace] if namespace else [])]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=900, env=env)
    if done.returncode != 0:
        raise BenchError(f"cluster-wide analysis ({tree}) failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_average"] = round(os.getloadavg()[0], 2)
    log(
        f"  {tree}: {result['wall_s']}s (gather {result['gather_s']}s, detect {result['detect_s']}s), "
        f"VmHWM {result['hwm_mib']:.0f} MiB (imports {result['imports_hwm_mib']:.0f}), "
        f"detect at {result['detect_5000']['pods']} pods {result['detect_5000']['detect_ms']} ms"
    )
    return result


def summarize(runs: list[dict[str, Any]], floor: dict[str, Any], decode: dict[str, float]) -> dict[str, Any]:
    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    detect_ms = round(statistics.median(r["detect_5000"]["detect_ms"] for r in runs), 1)
    detect_floor = round(statistics.median(r["detect_5000"]["floor_ms"] for r in runs), 2)
    hwm_mb = round(statistics.median(r["hwm_mib"] for r in runs) * 2**20 / 1e6, 1)
    imports_mb = round(statistics.median(r["imports_hwm_mib"] for r in runs) * 2**20 / 1e6, 1)
    summary = {
        "wall_s": med("wall_s"),
        "gather_s": med("gather_s"),
        "detect_s": med("detect_s"),
        "wall_floor_s": round(floor["paged_s"] + decode["json"], 3),
        "gather_floor_s": floor["paged_s"],
        "peak_rss_mb": hwm_mb,
        "imports_rss_mb": imports_mb,
        "detect_5000_ms": detect_ms,
        "detect_5000_floor_ms": detect_floor,
        "findings": [r["findings"] for r in runs],
    }
    if all("namespace_detect" in r for r in runs):
        summary["namespace_detect_ms"] = round(statistics.median(r["namespace_detect"]["detect_ms"] for r in runs), 1)
        summary["namespace_detect_floor_ms"] = round(
            statistics.median(r["namespace_detect"]["floor_ms"] for r in runs), 2
        )
        summary["namespace_pods"] = runs[0]["namespace_detect"]["pods"]
    return summary


def print_table(doc: dict[str, Any]) -> None:
    floor, decode = doc["floor"], doc["decode_floor_s"]
    print()
    print(
        f"Floor: kubectl get --raw of {len(doc['paths'])} paths, unpaged, 8 at a time: {floor['all_paths_s']} s "
        f"({floor['bytes'] / 1e6:.1f} MB; the Pod LIST alone {floor['pods_only_s']} s)"
    )
    print(
        f"Floor: the same paths in pages of {PAGE_SIZE} over the gatherer's pool, not decoded: {floor['paged_s']} s "
        f"({floor['pages']} pages)"
    )
    print(
        f"Floor: decoding those pages: json {decode['json']} s, orjson {decode['orjson']} s, "
        f"msgspec {decode.get('msgspec', 'not installed')} s"
    )
    rows = [
        ("whole run (gather + detect)", "wall_s", "wall_floor_s", "s", f"<= {TARGET_SECONDS:g} s"),
        ("gather", "gather_s", "gather_floor_s", "s", ""),
        ("peak RSS (VmHWM)", "peak_rss_mb", "imports_rss_mb", "MB", f"< {TARGET_RSS_MB:g} MB"),
        (
            "detect, 5,000 bare pods of it",
            "detect_5000_ms",
            "detect_5000_floor_ms",
            "ms",
            f"<= {TARGET_DETECT_MS:g} ms",
        ),
    ]
    if all("namespace_detect_ms" in t["summary"] for t in doc["trees"].values()):
        pods = next(iter(doc["trees"].values()))["summary"]["namespace_pods"]
        rows.append(
            (
                f"detect, namespace of {pods:,} Deployment pods",
                "namespace_detect_ms",
                "namespace_detect_floor_ms",
                "ms",
                f"<= {TARGET_DETECT_MS:g} ms",
            )
        )
    trees = list(doc["trees"])
    header = "| figure | " + " | ".join(f"{t}: figure / floor / ratio" for t in trees) + " | target |"
    print(header)
    print("|" + "---|" * (len(trees) + 2))
    for label, key, floor_key, unit, target in rows:
        cells = []
        for tree in trees:
            s = doc["trees"][tree]["summary"]
            ratio = s[key] / s[floor_key] if s[floor_key] else float("nan")
            cells.append(f"{s[key]:g} {unit} / {s[floor_key]:g} {unit} / {ratio:.1f}x")
        print(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    print(
        "(floors: whole run = paged raw LISTs + json decode of the pages; gather = paged raw LISTs; "
        "RSS = the process after its imports; detect = one pass over the pods' container statuses)"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster-name", default="bench-wide")
    parser.add_argument("--pods", type=int, default=20000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3, help="runs per tree, alternated")
    parser.add_argument("--floor-runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a directory with another tree's operator/ to compare")
    parser.add_argument(
        "--detect-namespace", help="also time detection over this namespace (e.g. analysis_scale.py's scale-5000-*)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(args.cluster_name)
    kube: bench.Kube | None = None
    trees = {"this tree": ROOT} if args.baseline is None else {"baseline": args.baseline, "this tree": ROOT}
    doc: dict[str, Any] = {
        "benchmark": "cluster_wide",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        },
    }
    try:
        info = cluster.up(echo=log, timeout=180)
        kubectl = ensure_binaries(echo=False).kubectl
        kube = bench.Kube(info.kubeconfig)
        bench.add_capacity(kube, max(0, args.pods - len(kube.list_all("/api/v1/pods"))))  # a kept cluster has them
        fleet = analysis_load.build_fleet(kube, args.pods, args.namespaces)
        doc["fleet"] = {k: v for k, v in fleet.items() if k != "namespaces"}
        doc["paths"] = cluster_paths()
        log("floor: raw LISTs with kubectl get --raw, and paged without decoding")
        doc["floor"] = raw_floor(kubectl, info.kubeconfig, doc["paths"], args.floor_runs)
        paged, pages = paged_floor(kube, doc["paths"], args.floor_runs)
        doc["floor"].update(paged)
        doc["decode_floor_s"] = decode_floor(pages)
        del pages
        log(f"floor {doc['floor']}, decode {doc['decode_floor_s']}")
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, tree in trees.items():
                runs[name].append(run_child(tree, info.kubeconfig, args.detect_namespace))
        doc["trees"] = {
            name: {
                "path": str(tree),
                "runs": runs[name],
                "summary": summarize(runs[name], doc["floor"], doc["decode_floor_s"]),
            }
            for name, tree in trees.items()
        }
        doc["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        args.output.write_text(json.dumps(doc, indent=2) + "\n")
        print_table(doc)
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
                f"cluster {args.cluster_name!r} kept running; stop it with "
                f"`infragenius-dev devcluster down --name {args.cluster_name}`"
            )
        else:
            cluster.down(echo=log)


if __name__ == "__main__":
    sys.exit(main())
