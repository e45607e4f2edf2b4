"""How long does the whole ``infragenius analyze`` process take, compared with ``kubectl get pods``?

Against its own local cluster ``LocalCluster("bench-cli")`` (kwok nodes), it seeds a small namespace
(``scenarios.break_namespace``: 8 pods with the classic problems) and a large one (``--large-pods``,
default 250, in hardened Deployments of 10 replicas with a Service each), then times, ``--runs`` times
each and interleaved so that a change in machine load hits all commands alike:

- ``infragenius analyze -n <ns> --fail-on never`` (the console script next to this Python, else
  ``python -m infragenius.cli``): interpreter start-up, imports, kubeconfig, gathering, detection, output;
- ``kubectl get pods -n <ns> -o json``: the same start-up-plus-one-LIST for a Go binary;
- ``infragenius analyze --help`` and ``python -c pass``: start-up alone, for reading the figures.

Prints medians and the ratio analyze / kubectl per namespace; target: at most 3x kubectl on the
small namespace. Figures go to ``benchmarks/results/cli_startup.json``.

Run: ``.venv/bin/python benchmarks/cli_startup.py [--runs 7] [--large-pods 250] [--keep]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infragenius_devtools import bench
from infragenius_devtools.bench import BenchError, Kube, log, median
from infragenius_devtools.devcluster import DevClusterError, LocalCluster, scenarios
from infragenius_devtools.devcluster.build import ensure_binaries

ROOT = Path(__file__).resolve().parents[1]
RESULTS_FILE = ROOT / "benchmarks" / "results" / "cli_startup.json"
CLUSTER_NAME = "bench-cli"
TARGET_RATIO = 3.0
REPLICAS = 10


def infragenius_command() -> list[str]:
    script = Path(sys.executable).with_name("infragenius")
    return [str(script)] if script.exists() else [sys.executable, "-m", "infragenius.cli"]


def seed_small(kube: Kube, kubectl: Path, kubeconfig: str, namespace: str) -> None:
    bench.create_namespace(kube, namespace)
    scenarios.break_namespace(bench.kubectl_caller(kubectl, kubeconfig), kube.core, namespace)


def seed_large(kube: Kube, namespace: str, pods: int) -> None:
    bench.create_namespace(kube, namespace)
    objects: list[tuple[str, dict[str, Any]]] = []
    for index, replicas in enumerate(bench.spread(pods, max(1, pods // REPLICAS))):
        name = f"web-{index:02d}"
        objects.append((f"/apis/apps/v1/namespaces/{namespace}/deployments", scenarios.deployment(name, replicas)))
        objects.append((f"/api/v1/namespaces/{namespace}/services", scenarios.service(name, {"app": name})))
    bench.parallel(lambda item: kube.post(item[0], item[1]), objects)

    def running() -> int:
        items = kube.list_all(f"/api/v1/namespaces/{namespace}/pods")
        return sum(1 for p in items if (p.get("status") or {}).get("phase") == "Running")

    bench.wait_until(
        lambda: running() >= pods,
        timeout=300,
        what=f"{pods} pods Running in {namespace}",
        interval=2.0,
        progress=lambda: f"{running()}/{pods} Running",
    )


# Bytecode caching on, as in an installed wheel or the image (compileall): a source checkout run with
# PYTHONDONTWRITEBYTECODE would otherwise compile every infragenius module on every start.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: Sequence[str], ok_codes: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, timeout=300, check=False, env=ENV)
    seconds = time.perf_counter() - started
    if done.returncode not in ok_codes:
        raise BenchError(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.decode()[-1000:]}")
    return seconds


def measure(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    """Every command once per round (after one warm-up round), ``runs`` rounds."""
    for argv in commands.values():
        timed(argv)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].append(round(timed(argv), 4))
    return samples


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default: %(default)s)")
    parser.add_argument(
        "--large-pods", type=int, default=250, help="pods in the large namespace (default: %(default)s)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    parser.add_argument("--cluster-name", default=CLUSTER_NAME, help=f"local cluster to use (default {CLUSTER_NAME!r})")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="where the JSON goes")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(args.cluster_name)
    kube: Kube | None = None
    doc: dict[str, Any] = {
        "benchmark": "cli_startup",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        },
        "runs": args.runs,
        "target_ratio_small": TARGET_RATIO,
    }
    try:
        info = cluster.up(echo=log, timeout=180)
        kubectl = ensure_binaries(echo=False).kubectl
        kube = Kube(info.kubeconfig)
        bench.add_capacity(kube, args.large_pods + 20)
        small, large = "cli-small", "cli-large"
        if not kube.exists(f"/api/v1/namespaces/{small}"):
            log(f"seeding {small} (scenarios.break_namespace)")
            seed_small(kube, kubectl, info.kubeconfig, small)
        if bench.pod_count(kube, large) < args.large_pods:
            log(f"seeding {large} ({args.large_pods} pods)")
            seed_large(kube, large, args.large_pods)
        cli = infragenius_command()
        doc["command"] = cli
        doc["namespaces"] = {}
        startup = measure(
            {"python -c pass": [sys.executable, "-c", "pass"], "analyze --help": [*cli, "analyze", "--help"]}, args.runs
        )
        doc["startup"] = {name: {"median": median(v), "samples": v} for name, v in startup.items()}
        for namespace in (small, large):
            pods = bench.pod_count(kube, namespace)
            log(f"timing {namespace} ({pods} pods), {args.runs} runs each")
            analyze = [*cli, "analyze", "-n", namespace, f"--kubeconfig={info.kubeconfig}", "--fail-on=never"]
            get_pods = [str(kubectl), f"--kubeconfig={info.kubeconfig}", "get", "pods", "-n", namespace, "-o=json"]
            samples = measure({"analyze": analyze, "kubectl": get_pods}, args.runs)
            figures = {name: {"median": median(v), "samples": v} for name, v in samples.items()}
            ratio = figures["analyze"]["median"] / figures["kubectl"]["median"]
            doc["namespaces"][namespace] = {"pods": pods, **figures, "ratio": round(ratio, 2)}
        doc["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        args.output.write_text(json.dumps(doc, indent=2) + "\n")
        print()
        for name, figure in doc["startup"].items():
            print(f"{name:<28} median {figure['median']:.3f}s")
        for namespace, figures in doc["namespaces"].items():
            print(
                f"{namespace} ({figures['pods']} pods): analyze median {figures['analyze']['median']:.3f}s, "
                f"kubectl get pods -o json median {figures['kubectl']['median']:.3f}s, ratio {figures['ratio']:.2f}x"
            )
        small_ratio = doc["namespaces"][small]["ratio"]
        verdict = "met" if small_ratio <= TARGET_RATIO else "MISSED"
        print(f"target: analyze at most {TARGET_RATIO:.0f}x kubectl on {small}: {verdict}")
        print(
            f"load average {doc['machine']['load_average_before']} -> {doc['machine']['load_average_after']} "
            f"on {os.cpu_count()} CPUs; figures in {args.output}"
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
