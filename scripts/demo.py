"""`make demo`: a broken shop on the local cluster, the operator, an Analysis, and its findings.

The shop's crash loop, OOM kill, missing image and missing ConfigMap run for real on the cluster's real
node (kubelet + containerd); the rest (quota, unschedulable pod, Service and Ingress without backends)
is made by the control plane over kwok nodes. The findings show the crashed containers' own log lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client, config

from infragenius_devtools.devcluster import LocalCluster
from infragenius_devtools.devcluster.build import ensure_binaries
from infragenius_devtools.devcluster.errors import DevClusterError
from infragenius_devtools.devcluster.operator_process import OperatorProcess
from infragenius_devtools.devcluster.scenarios import REAL_NODE_WORKLOADS, break_namespace_real, real_failures

ROOT = Path(__file__).resolve().parents[1]
# The e2e test runs the demo in a namespace of its own (tests use "shop" too).
DEMO_NAMESPACE = os.environ.get("DEMO_NAMESPACE", "shop")
#: A real kubelet backs off 10 s, 20 s, 40 s between crashes; the second restart comes within a minute or two.
REAL_FAILURE_TIMEOUT = 300.0
PROGRESS_EVERY = 10.0


NAMESPACE = DEMO_NAMESPACE


def main() -> int:
    started = time.monotonic()
    # A cluster already running without a real node is restarted with one by `up`.
    cluster = LocalCluster(os.environ.get("CLUSTER", "default"), real_node=True)
    info = cluster.up()
    if info.real_node is None:
        raise SystemExit("the cluster came up without its real node; see the logs in " + info.log_dir)
    real_node = info.real_node["name"]
    kubectl_path = str(ensure_binaries(echo=False).kubectl)

    def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl_path, f"--kubeconfig={info.kubeconfig}", *args],
            input=input,
            text=True,
            capture_output=True,
            check=check,
        )

    print("\n$ kubectl apply -f crds/")
    print(kubectl("apply", "-f", str(ROOT / "crds")).stdout.strip())
    kubectl("wait", "--for=condition=Established", "crd/analyses.infragenius.io", "--timeout=30s")

    api = config.new_client_from_config(config_file=info.kubeconfig)
    core = client.CoreV1Api(api)
    global NAMESPACE
    NAMESPACE = DEMO_NAMESPACE
    if kubectl("get", "namespace", NAMESPACE, check=False).returncode == 0:
        print(f"\nresetting namespace {NAMESPACE} ...")
        # kwok leaves pods with a hand-written status alone, deletion included: nothing plays the kubelet
        # (the real node's kubelet still stops the containers of force-deleted pods).
        kubectl("delete", "pods", "--all", "-n", NAMESPACE, "--grace-period=0", "--force", "--wait=false", check=False)
        kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and kubectl("get", "namespace", NAMESPACE, check=False).returncode == 0:
            time.sleep(1)
        if kubectl("get", "namespace", NAMESPACE, check=False).returncode == 0:
            # The namespace controller backs off after a failed pass; do not make the demo wait for it.
            NAMESPACE = f"{DEMO_NAMESPACE}-{int(time.time())}"
            print(f"{DEMO_NAMESPACE} is still terminating; using {NAMESPACE}")
    kubectl("create", "namespace", NAMESPACE)
    while not core.list_namespaced_service_account(NAMESPACE).items:
        time.sleep(0.2)
    print(
        f"\ncreating broken workloads in {NAMESPACE}: on {real_node} for real "
        + ", ".join(f"{app} ({why})" for app, why in REAL_NODE_WORKLOADS.items())
        + "; on kwok nodes an unschedulable pod, a quota, a Service and an Ingress without backends"
    )
    break_namespace_real(kubectl, core, NAMESPACE)
    wait_for_real_failures(core, real_node)
    print(f"\n$ kubectl get pods -n {NAMESPACE} -o wide")
    print(kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide").stdout.rstrip())

    log_path = Path(info.log_dir) / "operator.log"
    print(f"\nstarting the operator (log: {log_path})")
    try:
        operator = OperatorProcess.start(info.kubeconfig, log_path).wait_ready(timeout=60)
    except DevClusterError as err:
        raise SystemExit(str(err)) from err
    try:
        print(f"\n$ kubectl apply -n {NAMESPACE} -f examples/analysis.yaml")
        print(kubectl("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples" / "analysis.yaml")).stdout.strip())
        kubectl(
            "wait", "--for=jsonpath={.status.phase}=Completed", "analysis/shop-health", "-n", NAMESPACE, "--timeout=60s"
        )

        print("\n$ kubectl get analyses -A")
        print(kubectl("get", "analyses", "-A").stdout.rstrip())
        status = json.loads(kubectl("get", "analysis", "shop-health", "-n", NAMESPACE, "-o", "json").stdout)["status"]
        print(
            f"\nfindings ({status['totalFindings']}; gather {status['timings']['gatherSeconds']}s, "
            f"detect {status['timings']['detectSeconds']}s):"
        )
        real_apps = {app for _, app in _real_pods(core, real_node)}
        for item in status["findings"]:
            res = item["resource"]
            where = f"  (ran for real on {real_node})" if _owner_app(res) in real_apps else ""
            print(f"\n  [{item['severity']}] {res['kind']}/{res['name']}: {item['title']}{where}")
            evidence = item["evidence"]
            logs = [e for e in evidence if e["source"].startswith("log:")]
            for other in [e for e in evidence if not e["source"].startswith("log:")][:4]:
                print(f"      {other['source']} = {other['value'][:140]}")
            # The container's own words explain the failure: every line, uncut.
            for log in logs:
                print(f"      {log['source']}:")
                for line in str(log["value"]).splitlines():
                    print(f"        | {line}")
            print(f"      fix: {item['remediation'][:200]}")
    finally:
        operator.stop()
    print(
        f"\nPods that ran for real on {real_node}: "
        + (", ".join(sorted(name for name, _ in _real_pods(core, real_node))) or "none")
    )
    print(f"demo took {time.monotonic() - started:.0f}s")
    print(f"\nThe cluster keeps running: export KUBECONFIG={info.kubeconfig}")
    print("Run the operator yourself with `infragenius operator`; stop the cluster with `infragenius devcluster down`.")
    api.close()
    return 0


def wait_for_real_failures(core: client.CoreV1Api, real_node: str) -> None:
    """Wait until the real node's kubelet has made each failure, saying what it waits for every few seconds."""
    print(f"\nwaiting for the kubelet on {real_node} (seconds to a minute or two: it backs off between crashes) ...")
    started = time.monotonic()
    next_report = 0.0
    while True:
        progress = real_failures(core, NAMESPACE)
        elapsed = time.monotonic() - started
        done = all(reached for reached, _ in progress.values())
        if done or elapsed >= next_report:
            marks = ", ".join(f"{app}: {now}{' ✓' if reached else ''}" for app, (reached, now) in progress.items())
            print(f"  {elapsed:5.0f}s  {marks}")
            next_report += PROGRESS_EVERY
        if done:
            return
        if elapsed > REAL_FAILURE_TIMEOUT:
            missing = [app for app, (reached, _) in progress.items() if not reached]
            raise SystemExit(f"the kubelet did not fail {', '.join(missing)} within {REAL_FAILURE_TIMEOUT:.0f}s")
        time.sleep(2)


def _real_pods(core: client.CoreV1Api, real_node: str) -> list[tuple[str, str]]:
    """(name, app label) of each pod the real node runs in the demo's namespace."""
    return [
        (p.metadata.name or "", (p.metadata.labels or {}).get("app", ""))
        for p in core.list_namespaced_pod(NAMESPACE).items
        if p.metadata and p.spec and p.spec.node_name == real_node
    ]


def _owner_app(resource: dict[str, str]) -> str:
    """The ``app`` a finding's resource belongs to: a Deployment's own name, a pod's name without its hashes."""
    name = resource.get("name", "")
    if resource.get("kind") in ("Pod", "ReplicaSet"):
        # checkout-5d8f7c9b4-x2x7q -> checkout (the demo's apps have no dashes of their own)
        return name.split("-", 1)[0]
    return name


if __name__ == "__main__":
    sys.exit(main())
