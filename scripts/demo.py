"""`make demo`: a broken shop on the local cluster, the operator, an Analysis, and its findings."""

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
from infragenius_devtools.devcluster.scenarios import break_namespace

ROOT = Path(__file__).resolve().parents[1]
DEMO_NAMESPACE = "shop"


NAMESPACE = DEMO_NAMESPACE


def main() -> int:
    cluster = LocalCluster(os.environ.get("CLUSTER", "default"))
    info = cluster.up()
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
        # kwok leaves pods with a hand-written status alone, deletion included: nothing plays the kubelet.
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
        f"\ncreating broken workloads in {NAMESPACE} (crash loop, OOM kill, bad image, missing ConfigMap, quota, ...)"
    )
    break_namespace(kubectl, core, NAMESPACE)

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
        for item in status["findings"]:
            res = item["resource"]
            print(f"\n  [{item['severity']}] {res['kind']}/{res['name']}: {item['title']}")
            for evidence in item["evidence"][:4]:
                print(f"      {evidence['source']} = {evidence['value'][:140]}")
            print(f"      fix: {item['remediation'][:200]}")
    finally:
        operator.stop()
        api.close()
    print(f"\nThe cluster keeps running: export KUBECONFIG={info.kubeconfig}")
    print("Run the operator yourself with `infragenius operator`; stop the cluster with `infragenius devcluster down`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
