"""The devcluster's real node: real pods with cluster DNS, the API through its Service, logs and exec
through the kubelet, and a `down` that leaves the host as it found it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from kubernetes import client, config

from infragenius_devtools.devcluster import LocalCluster
from infragenius_devtools.devcluster.build import cache_root
from infragenius_devtools.devcluster.node import NODE_LABEL, cgroup_hierarchies
from tests.e2e.conftest import E2ECluster
from tests.e2e.real_node_support import TESTBOX_IMAGE, on_real_node
from tests.e2e.support import wait_for


def _pod(name: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": on_real_node(
            {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": TESTBOX_IMAGE, "command": ["/bin/sh", "-c", script]}],
            }
        ),
    }


def test_a_pod_on_the_real_node_resolves_services_and_reaches_the_api(
    cluster: E2ECluster, namespace: str, real_node: dict[str, str]
) -> None:
    token = "/var/run/secrets/kubernetes.io/serviceaccount"
    script = (
        "getent hosts kubernetes.default.svc.cluster.local; "
        # bash's /dev/tcp: the image has no curl; a TLS handshake is not needed to prove the route.
        "exec 3<>/dev/tcp/kubernetes.default.svc.cluster.local/443 && echo api-reachable; "
        f"test -s {token}/token && echo token-mounted; sleep 3600"
    )
    manifest = _pod("dns", script)
    manifest["spec"]["containers"][0]["command"] = ["/bin/bash", "-c", script]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    core = client.CoreV1Api(cluster.api)
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("dns", namespace)).status.phase == "Running" and p,
        timeout=180,
        interval=1,
        what="the pod to run on the real node",
    )
    assert pod.spec.node_name == real_node["name"]
    assert pod.status.pod_ip and pod.status.pod_ip.startswith(real_node["podCIDR"].rsplit(".", 2)[0])
    logs = wait_for(
        lambda: (out := cluster.kubectl("logs", "-n", namespace, "dns", check=False).stdout) and "token" in out and out,
        timeout=120,
        interval=1,
        what="the pod's output through kubectl logs",
    )
    assert "10.96.0.1" in logs and "kubernetes.default.svc.cluster.local" in logs, logs
    assert "api-reachable" in logs and "token-mounted" in logs, logs
    # exec goes API server -> kubelet on the node's address -> containerd.
    pid1 = cluster.kubectl("exec", "-n", namespace, "dns", "--", "cat", "/proc/1/cmdline")
    assert pid1.stdout.split("\0")[:2] == ["sleep", "3600"], pid1.stdout


def test_pods_without_the_toleration_stay_off_the_real_node(cluster: E2ECluster) -> None:
    node = client.CoreV1Api(cluster.api).read_node(cluster.real_node["name"] if cluster.real_node else "")
    assert {(t.key, t.effect) for t in node.spec.taints or []} >= {(NODE_LABEL, "NoSchedule")}
    assert node.metadata.labels.get(NODE_LABEL) == "true"
    assert node.status.node_info.container_runtime_version.startswith("containerd://")


def _host_state(exclude_roots: list[str]) -> dict[str, Any]:
    """What a node could leave behind on the host, ignoring other clusters' own directories."""

    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    mounts = {
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if not any(line.split()[4].startswith(root) for root in exclude_roots)
    }
    return {
        "iptables": run("iptables-save").splitlines(),
        "ip6tables": run("ip6tables-save").splitlines(),
        "mounts": mounts,
        "netns": set(run("ip", "netns", "list").split()),
        "links": {line.split(":")[1].strip().split("@")[0] for line in run("ip", "-o", "link").splitlines()},
        "routes": set(run("ip", "route").splitlines()),
    }


def test_down_restores_the_hosts_iptables_mounts_namespaces_and_cgroups(cluster: E2ECluster) -> None:
    """A second cluster with a real node runs a pod, then goes down: the host is as before."""
    others = [str(cache_root() / "clusters" / d.name) for d in (cache_root() / "clusters").iterdir()]
    before = _host_state(others)
    local = LocalCluster("cleanup-check", real_node=True)
    try:
        info = local.up(echo=lambda _m: None, timeout=300)
        assert info.real_node is not None
        kubeconfig = info.kubeconfig
        api = config.new_client_from_config(config_file=kubeconfig)
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("default", _pod("sleeper", "sleep 3600"))
        wait_for(
            lambda: core.read_namespaced_pod("sleeper", "default").status.phase == "Running",
            timeout=180,
            interval=1,
            what="a pod on the second cluster's node",
        )
        during = _host_state(others)
        assert during["netns"] - before["netns"], "the node's network namespace"
        api.close()
    finally:
        local.down(echo=lambda _m: None)

    def differences() -> dict[str, Any]:
        now = _host_state(others)
        return {key: (before[key], now[key]) for key in before if now[key] != before[key]}

    try:
        # Deleting a network namespace (and with it the veth) completes asynchronously.
        wait_for(lambda: not differences(), timeout=60, interval=0.5, what="the host state to be as before")
    except AssertionError:
        raise AssertionError(f"down left the host changed (before, after): {differences()}") from None
    assert not [
        str(h / "infragenius-cleanup-check")
        for h in cgroup_hierarchies(with_unified=True)
        if (h / "infragenius-cleanup-check").exists()
    ]
    assert not (cache_root() / "clusters" / "cleanup-check" / "node").exists()
    leftovers = subprocess.run(["pgrep", "-f", str(cache_root() / "clusters" / "cleanup-check")], capture_output=True)
    assert leftovers.returncode == 1, leftovers.stdout


def test_a_claim_gets_a_local_volume_on_the_node_and_loses_it_on_release(
    cluster: E2ECluster, namespace: str, real_node: dict[str, str]
) -> None:
    """The default StorageClass: bound on first consumer, owned by the pod's fsGroup, deleted on release."""
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    manifest = _pod("writer", "mkdir /data/pgdata && chmod 700 /data/pgdata && stat -c '%u:%g %a' /data/pgdata")
    manifest["spec"]["securityContext"] = {"runAsUser": 70, "runAsGroup": 70, "fsGroup": 70}
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    manifest["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    core.create_namespaced_pod(namespace, manifest)
    wait_for(
        lambda: core.read_namespaced_pod("writer", namespace).status.phase == "Succeeded",
        timeout=180,
        interval=1,
        what="a non-root pod to write to its claim",
    )
    # fsGroup: the group owns the volume and new directories inherit it (setgid), as on any cluster.
    assert cluster.kubectl("logs", "-n", namespace, "writer").stdout.strip() == "70:70 2700"
    claim = core.read_namespaced_persistent_volume_claim("data", namespace)
    volume = core.read_persistent_volume(claim.spec.volume_name)
    assert volume.spec.local.path and Path(volume.spec.local.path).is_dir()
    terms = volume.spec.node_affinity.required.node_selector_terms
    assert terms[0].match_expressions[0].values == [real_node["name"]]
    core.delete_namespaced_pod("writer", namespace, grace_period_seconds=0)
    core.delete_namespaced_persistent_volume_claim("data", namespace)
    wait_for(
        lambda: not any(pv.metadata.name == volume.metadata.name for pv in core.list_persistent_volume().items),
        timeout=120,
        interval=1,
        what="the released volume to be deleted",
    )
    assert not Path(volume.spec.local.path).exists()
