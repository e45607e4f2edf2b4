"""The real node's costs: build and image cache state, `devcluster up --real-node` and `down`, and how
long a pod takes from creation to Running and to its first real crash.

    .venv/bin/python benchmarks/real_node.py            # a cluster named bench-node, stopped at the end

Cold build times come from the caches' own records (``.complete`` of each Go build, ``manifest.json`` of
each image), so this script never wipes a cache; the README's table lists both.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

from infragenius_devtools.devcluster import LocalCluster
from infragenius_devtools.devcluster.build import cache_root
from infragenius_devtools.devcluster.node import NODE_LABEL

RESULTS = Path(__file__).resolve().parent / "results"
TESTBOX = "infragenius.local/testbox:bookworm"


def recorded_builds() -> dict[str, float]:
    """Seconds each cached Go build and image took when it was built."""
    found: dict[str, float] = {}
    for marker in sorted((cache_root() / "bin").glob("*/.complete")):
        found[f"go: {marker.parent.name}"] = json.loads(marker.read_text()).get("seconds", float("nan"))
    for manifest in sorted((cache_root() / "images").glob("*/manifest.json")):
        data = json.loads(manifest.read_text())
        found[f"image: {data['name']} ({manifest.parent.name})"] = data.get("build_seconds", float("nan"))
    return found


def pod(name: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {NODE_LABEL: "true"},
            "tolerations": [{"key": NODE_LABEL, "operator": "Exists"}],
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": TESTBOX, "command": ["/bin/sh", "-c", script]}],
        },
    }


def wait(check: Any, timeout: float = 300.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError


def main() -> int:
    figures: dict[str, Any] = {"load_average": os.getloadavg()}
    cluster = LocalCluster("bench-node", real_node=True)
    cluster.down(echo=lambda _m: None)
    started = time.monotonic()
    info = cluster.up(echo=lambda _m: None, timeout=300)
    figures["up_seconds"] = time.monotonic() - started
    api = config.new_client_from_config(config_file=info.kubeconfig)
    core = client.CoreV1Api(api)
    try:
        running, crash = [], []
        for i in range(5):
            core.create_namespaced_pod("default", pod(f"sleeper-{i}", "sleep 3600"))
            running.append(
                wait(lambda n=f"sleeper-{i}": core.read_namespaced_pod(n, "default").status.phase == "Running")
            )
        for i in range(3):
            core.create_namespaced_pod("default", pod(f"crasher-{i}", "exit 1"))

            def crashed(n: str = f"crasher-{i}") -> bool:
                statuses = core.read_namespaced_pod(n, "default").status.container_statuses or []
                return bool(statuses and statuses[0].last_state and statuses[0].last_state.terminated)

            crash.append(wait(crashed))
        figures["pod_to_running_seconds"] = {"median": statistics.median(running), "max": max(running)}
        figures["pod_to_first_crash_seconds"] = {"median": statistics.median(crash), "max": max(crash)}
        rss = {}
        for component in ("kubelet", "containerd", "kube-proxy", "coredns"):
            pid = info.pids.get(component)
            if pid:
                status = Path(f"/proc/{pid}/status").read_text()
                rss[component] = int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1]) // 1024
        figures["rss_mib_with_8_pods"] = rss
    finally:
        api.close()
        started = time.monotonic()
        cluster.down(echo=lambda _m: None)
        figures["down_seconds"] = time.monotonic() - started
    figures["recorded_builds_seconds"] = recorded_builds()
    figures["iptables_lines_on_host_after"] = len(
        subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout.splitlines()
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "real_node.json").write_text(json.dumps(figures, indent=2))
    print(
        f"devcluster up --real-node (warm caches): {figures['up_seconds']:.1f}s   down: {figures['down_seconds']:.1f}s"
    )
    print(
        f"pod created -> Running: median {figures['pod_to_running_seconds']['median']:.2f}s "
        f"(max {figures['pod_to_running_seconds']['max']:.2f}s, 5 pods)"
    )
    print(
        f"pod created -> first crash recorded: median {figures['pod_to_first_crash_seconds']['median']:.2f}s (3 pods)"
    )
    print(f"RSS with 8 pods (MiB): {figures['rss_mib_with_8_pods']}")
    print("recorded cold builds (s):")
    for name, seconds in figures["recorded_builds_seconds"].items():
        print(f"  {name:<60} {seconds:8.1f}")
    print(f"load average during the run: {figures['load_average']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
