"""Start, inspect and stop the local control plane: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok with three fake nodes.

State lives in ``<cache>/clusters/<name>/``: ``data/`` (etcd, PKI, kubeconfigs;
removed by ``down``), ``logs/`` (kept, so a failed run can be read) and
``pids/`` (one file per process this module started).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from infragenius_devtools.devcluster import build, node, pki, provisioner, versions
from infragenius_devtools.devcluster.errors import DevClusterError

SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
NODE_COUNT = 3
NODE_CAPACITY = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# Pods carrying this annotation are left alone by kwok, so tests can patch their status.
CUSTOM_STATUS_ANNOTATION = "kwok.x-k8s.io/status"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


@dataclass
class ClusterInfo:
    """What ``status`` reports and what tests connect with."""

    name: str
    kubeconfig: str
    server: str
    log_dir: str
    version: str
    ports: dict[str, int]
    pids: dict[str, int]
    components: list[str] = field(default_factory=lambda: list(COMPONENTS))
    #: The real node's name and addresses, when the cluster has one.
    real_node: dict[str, str] | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kubeconfig(server: str, ca: Path, user: str, cert: pki.CertPair) -> dict[str, Any]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "infragenius", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [
            {"name": user, "user": {"client-certificate-data": b64(cert.cert), "client-key-data": b64(cert.key)}}
        ],
        "contexts": [{"name": "infragenius", "context": {"cluster": "infragenius", "user": user}}],
        "current-context": "infragenius",
    }


def fake_node(name: str, address: str, capacity: dict[str, str], zone: str = "zone-0") -> dict[str, Any]:
    """A Node that kwok manages: Ready, with this capacity, its own address and the usual labels."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "type": "kwok",
                "topology.kubernetes.io/zone": zone,
            },
        },
        "spec": {},
        "status": {
            # Distinct addresses, as real nodes have; kwok keeps addresses that are already set.
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "allocatable": capacity,
            "capacity": capacity,
            "nodeInfo": {
                "architecture": "amd64",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "operatingSystem": "linux",
            },
            "phase": "Running",
        },
    }


class LocalCluster:
    """One named local cluster; several can run side by side with separate names.

    With ``real_node`` it also runs a real node (``node.py``) next to the kwok nodes.
    """

    def __init__(self, name: str = "default", real_node: bool = False) -> None:
        if not name.replace("-", "").isalnum():
            raise DevClusterError(f"Cluster name {name!r} must be letters, digits and dashes.")
        self.name = name
        self.root = build.cache_root() / "clusters" / name
        self.data_dir = self.root / "data"
        self.log_dir = self.root / "logs"
        self.pid_dir = self.root / "pids"
        self.state_file = self.root / "state.json"
        self.kubeconfig_path = self.data_dir / "admin.kubeconfig"
        self.real_node = real_node
        # Written as soon as the node's namespace exists, so `down` can undo a half-started node.
        self.node_file = self.root / "node.json"
        self.node_state = self.root / "node"
        self.cgroup_root = f"infragenius-{name}"

    # --- inspection ---------------------------------------------------------------------------

    def _recorded_pids(self) -> dict[str, int]:
        pids: dict[str, int] = {}
        if self.pid_dir.exists():
            for path in self.pid_dir.glob("*.pid"):
                with contextlib.suppress(ValueError, OSError):
                    pids[path.stem] = int(path.read_text().strip())
        return pids

    def _ours(self, component: str, pid: int) -> bool:
        """True only for a live process that is the binary we started (guards against PID reuse)."""
        return _pid_alive(pid) and component in _pid_cmdline(pid) and str(self.root) in _pid_cmdline(pid)

    def info(self) -> ClusterInfo | None:
        """The running cluster, or None when it is not (fully) up."""
        if not self.state_file.exists():
            return None
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        pids = self._recorded_pids()
        components = set(state.get("components", COMPONENTS))
        if set(pids) != components or not all(self._ours(c, p) for c, p in pids.items()):
            return None
        return ClusterInfo(**state)

    def is_healthy(self, timeout: float = 2.0) -> bool:
        info = self.info()
        if info is None:
            return False
        try:
            return self._http(timeout).get(f"{info.server}/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    # --- lifecycle ----------------------------------------------------------------------------

    def up(self, echo: Callable[[str], None] = print, timeout: float = 120.0) -> ClusterInfo:
        """Start the cluster and wait until it is usable; report the running one if already up."""
        running = self.info()
        if running is not None and self.is_healthy() and (running.real_node is not None or not self.real_node):
            echo(f"cluster {self.name!r} is already running at {running.server}")
            return running
        started = time.monotonic()
        self._teardown_node(echo=lambda _m: None)
        self._stop_recorded(echo=lambda _m: None)  # stale PID files or a half-started cluster
        binaries = build.ensure_binaries(echo=True)
        node_binaries = self._node_prerequisites() if self.real_node else None
        # Built here, before the clock starts: a fresh machine spends minutes on debootstrap, not on starting.
        node_images = self._node_images() if self.real_node else {}
        deadline = time.monotonic() + timeout  # building is not part of the start-up budget

        def remaining() -> float:
            return max(1.0, deadline - time.monotonic())

        shutil.rmtree(self.data_dir, ignore_errors=True)
        for directory in (self.data_dir, self.log_dir, self.pid_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for old_log in self.log_dir.glob("*.log"):
            old_log.unlink()

        ports = self._ports()
        net = self._create_node_network() if self.real_node else None
        host = net.host_ip if net else "127.0.0.1"
        certs = pki.generate(self.data_dir / "pki", (host,) if net else ())
        server = f"https://{host}:{ports['kube-apiserver']}"
        kubeconfigs = {}
        for user, pair in (
            ("admin", certs.admin),
            ("controller-manager", certs.controller_manager),
            ("scheduler", certs.scheduler),
            ("kwok", certs.kwok),
        ):
            path = self.data_dir / f"{user}.kubeconfig"
            path.write_text(yaml.safe_dump(_kubeconfig(server, certs.ca.cert, user, pair)))
            path.chmod(0o600)
            kubeconfigs[user] = path
        self._certs = certs

        try:
            self._start_etcd(binaries.etcd, ports)
            self._wait(lambda: self._etcd_healthy(ports["etcd"]), remaining(), "etcd to become healthy")
            self._start_apiserver(binaries.kube_apiserver, ports, certs, net)
            self._wait(lambda: self._get_ok(server, "/readyz"), remaining(), "kube-apiserver /readyz")
            self._start(
                "kube-controller-manager",
                [
                    str(binaries.kube_controller_manager),
                    f"--kubeconfig={kubeconfigs['controller-manager']}",
                    f"--authentication-kubeconfig={kubeconfigs['controller-manager']}",
                    f"--authorization-kubeconfig={kubeconfigs['controller-manager']}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kube-controller-manager']}",
                    f"--cert-dir={self.data_dir / 'controller-manager-certs'}",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={certs.service_account_key}",
                    f"--root-ca-file={certs.ca.cert}",
                    f"--cluster-signing-cert-file={certs.ca.cert}",
                    f"--cluster-signing-key-file={certs.ca.key}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--leader-elect=false",
                    # No metrics API here: the HPA controller would only mark every HPA ScalingActive=False.
                    "--controllers=*,bootstrapsigner,tokencleaner,-horizontalpodautoscaling",
                ],
            )
            self._start(
                "kube-scheduler",
                [
                    str(binaries.kube_scheduler),
                    f"--kubeconfig={kubeconfigs['scheduler']}",
                    f"--authentication-kubeconfig={kubeconfigs['scheduler']}",
                    f"--authorization-kubeconfig={kubeconfigs['scheduler']}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kube-scheduler']}",
                    f"--cert-dir={self.data_dir / 'scheduler-certs'}",
                    "--leader-elect=false",
                ],
            )
            self._start(
                "kwok",
                [
                    str(binaries.kwok),
                    f"--config={binaries.kwok_stages}",
                    f"--kubeconfig={kubeconfigs['kwok']}",
                    "--manage-all-nodes=false",
                    f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                    f"--disregard-status-with-annotation-selector={CUSTOM_STATUS_ANNOTATION}=custom",
                    f"--cidr={POD_CIDR}",
                    "--node-ip=10.0.0.1",
                    f"--server-address=127.0.0.1:{ports['kwok']}",
                    "--node-lease-duration-seconds=40",
                ],
            )
            self._create_nodes(server)
            self._wait(lambda: self._nodes_ready(server), remaining(), f"{NODE_COUNT} fake nodes to be Ready")
            self._wait(
                lambda: self._get_ok(server, "/api/v1/namespaces/default/serviceaccounts/default"),
                remaining(),
                "the default service account",
            )
            real_node = None
            if net is not None and node_binaries is not None:
                echo(f"starting the real node {node.NODE_NAME} ({net.node_ip}, pods {net.pod_cidr}) ...")
                self._start_node(net, node_binaries, node_images, server, remaining, echo)
                real_node = {"name": node.NODE_NAME, "address": net.node_ip, "podCIDR": net.pod_cidr}
            info = ClusterInfo(
                name=self.name,
                kubeconfig=str(kubeconfigs["admin"]),
                server=server,
                log_dir=str(self.log_dir),
                version=f"v{versions.KUBERNETES_VERSION}",
                ports=ports,
                pids=self._recorded_pids(),
                components=sorted(self._recorded_pids()),
                real_node=real_node,
            )
            self.state_file.write_text(json.dumps(asdict(info), indent=2))
        except BaseException:
            self._teardown_node(echo=lambda _m: None)
            self._stop_recorded(echo=lambda _m: None)
            raise
        echo(f"cluster {self.name!r} is up at {server} in {time.monotonic() - started:.1f}s")
        return info

    def down(self, echo: Callable[[str], None] = print) -> bool:
        """Stop the processes this cluster recorded and remove its data; True if anything ran."""
        node_ran = self._teardown_node(echo)
        stopped = self._stop_recorded(echo) or node_ran
        shutil.rmtree(self.data_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        echo(f"cluster {self.name!r} is down" if stopped else f"cluster {self.name!r} was not running")
        return stopped

    def restart_apiserver(self, down_seconds: float = 2.0, timeout: float = 60.0) -> float:
        """Stop kube-apiserver, keep it down for ``down_seconds``, start it again with the same
        arguments and wait until it is ready; returns the seconds it was unreachable.

        For fault tests: clients see refused connections and torn watches, as in a control-plane upgrade.
        """
        info = self.info()
        if info is None:
            raise DevClusterError(f"cluster {self.name!r} is not running")
        pid = info.pids["kube-apiserver"]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        stopped_at = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        time.sleep(down_seconds)
        self._start("kube-apiserver", [a.decode() for a in argv])
        self._wait(lambda: self._get_ok(info.server, "/readyz"), timeout, "kube-apiserver to be ready again")
        pids = self._recorded_pids()
        info.pids = pids
        self.state_file.write_text(json.dumps(asdict(info), indent=2))
        return time.monotonic() - stopped_at

    # --- the real node ---------------------------------------------------------------------------

    def _node_prerequisites(self) -> build.NodeBinaries:
        if os.geteuid() != 0:
            raise DevClusterError("A real node needs root (network namespaces, cgroups, mounts); run as root.")
        missing = node.missing_host_tools()
        if missing:
            raise DevClusterError(
                f"A real node needs Debian packages that are missing: {', '.join(sorted(set(missing)))}; "
                "run `make install`."
            )
        return build.ensure_node_binaries(echo=True)

    @staticmethod
    def _node_images() -> dict[str, Path]:
        """The locally built image archives the node imports (image reference -> OCI archive)."""
        from infragenius_devtools import images

        return images.ensure_images(echo=True)

    def _create_node_network(self) -> node.NodeNetwork:
        net = node.pick_network()
        self.node_file.write_text(json.dumps({"index": net.index, "cgroup_root": self.cgroup_root}))
        node.create_network(net)
        return net

    def _node_kubeconfig(self, server: str, user: str, pair: pki.CertPair) -> Path:
        path = self.node_state / f"{user}.kubeconfig"
        path.write_text(yaml.safe_dump(_kubeconfig(server, self.data_dir / "pki" / "ca.crt", user, pair)))
        path.chmod(0o600)
        return path

    def _start_in_node(self, net: node.NodeNetwork, component: str, argv: list[str]) -> int:
        return self._start(component, ["nsenter", f"--net={net.netns_path}", "--", *argv])

    def _start_node(
        self,
        net: node.NodeNetwork,
        binaries: build.NodeBinaries,
        archives: dict[str, Path],
        server: str,
        remaining: Callable[[], float],
        echo: Callable[[str], None],
    ) -> None:
        state = self.node_state
        for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        pki_dir = self.data_dir / "pki"
        node.create_cgroup_root(self.cgroup_root)
        (state / "resolv.conf").write_text(f"nameserver {net.node_ip}\n")
        node.write_json(state / "cni" / "net.d" / "10-infragenius.conflist", node.cni_config(net, state))
        config = state / "containerd" / "config.toml"
        config.write_text(node.containerd_config(state))
        socket_path = state / "containerd" / "containerd.sock"
        self._start_in_node(net, "containerd", ["containerd", "--config", str(config)])
        self._wait(socket_path.exists, remaining(), "containerd's socket")
        self._import_images(socket_path, archives, echo)

        kubelet_client = pki.issue_from_ca(pki_dir, "kubelet", f"system:node:{node.NODE_NAME}", ("system:nodes",))
        kubelet_serving = pki.issue_from_ca(pki_dir, "kubelet-serving", node.NODE_NAME, (), (net.node_ip,))
        kubelet_config = node.write_yaml(
            state / "kubelet-config.yaml",
            node.kubelet_config(net, state, pki_dir / "ca.crt", kubelet_serving, self.cgroup_root),
        )
        self._start_in_node(
            net,
            "kubelet",
            [
                str(binaries.kubelet),
                f"--config={kubelet_config}",
                f"--kubeconfig={self._node_kubeconfig(server, 'kubelet', kubelet_client)}",
                f"--root-dir={state / 'kubelet'}",
                f"--hostname-override={node.NODE_NAME}",
                f"--node-ip={net.node_ip}",
                f"--node-labels={node.NODE_LABEL}=true",
                "--v=1",
            ],
        )
        proxy_client = pki.issue_from_ca(pki_dir, "kube-proxy", "system:kube-proxy")
        proxy_config = node.write_yaml(
            state / "kube-proxy-config.yaml",
            node.kube_proxy_config(net, self._node_kubeconfig(server, "kube-proxy", proxy_client)),
        )
        self._start_in_node(net, "kube-proxy", [str(binaries.kube_proxy), f"--config={proxy_config}"])
        with self._http() as client:
            for obj in node.dns_objects(net):
                self._create(client, server, obj)
        dns_client = pki.issue_from_ca(pki_dir, "coredns", "system:coredns")
        corefile = state / "Corefile"
        corefile.write_text(node.corefile(net, self._node_kubeconfig(server, "coredns", dns_client)))
        self._start_in_node(net, "coredns", [str(binaries.coredns), "-conf", str(corefile)])
        # PVCs (the operator's Postgres and Ollama) get local volumes on the node from the default class.
        with self._http() as client:
            self._create(client, server, provisioner.storage_class())
        self._start(
            "provisioner",
            [
                sys.executable,
                "-m",
                "infragenius_devtools.devcluster.provisioner",
                f"--server={server}",
                f"--pki={pki_dir}",
                f"--node={node.NODE_NAME}",
                f"--root={state / 'volumes'}",
            ],
        )
        self._wait(lambda: self._node_ready(server, node.NODE_NAME), remaining(), f"the real node {node.NODE_NAME}")

    def _import_images(self, socket_path: Path, archives: dict[str, Path], echo: Callable[[str], None]) -> None:
        """Import the locally built image archives, so pods run them under their usual names."""
        for name, archive in archives.items():
            done = subprocess.run(
                ["ctr", "--address", str(socket_path), "-n", "k8s.io", "images", "import", str(archive)],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                raise DevClusterError(f"Could not import {name} into the node: {done.stderr.strip()[-300:]}")
            echo(f"  imported {name}")

    def load_images(self, names: list[str] | None = None, echo: Callable[[str], None] = print) -> None:
        """Rebuild what changed (e.g. the operator image after a code change) and import it into the
        running real node, like ``kind load``."""
        if self.info() is None or not self.node_file.exists():
            raise DevClusterError(f"cluster {self.name!r} has no running real node")
        from infragenius_devtools import images

        archives = images.ensure_images(names, echo=True)
        self._import_images(self.node_state / "containerd" / "containerd.sock", archives, echo)

    def _create(self, client: httpx.Client, server: str, obj: dict[str, Any]) -> None:
        group_version = obj["apiVersion"]
        prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        namespace = obj["metadata"].get("namespace")
        plural = {"EndpointSlice": "endpointslices", "StorageClass": "storageclasses"}.get(
            obj["kind"], obj["kind"].lower() + "s"
        )
        path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
        reply = client.post(server + path, json=obj)
        if reply.status_code not in (201, 409):
            raise DevClusterError(f"Could not create {obj['kind']} {obj['metadata']['name']}: {reply.text[:200]}")

    def _node_ready(self, server: str, name: str) -> bool:
        try:
            with self._http(2.0) as client:
                reply = client.get(f"{server}/api/v1/nodes/{name}")
        except httpx.HTTPError:
            return False
        if reply.status_code != 200:
            return False
        conditions = reply.json().get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def _teardown_node(self, echo: Callable[[str], None]) -> bool:
        """Undo everything the real node did: processes, containers, mounts, cgroups, namespace, link."""
        if not self.node_file.exists():
            return False
        recorded = json.loads(self.node_file.read_text())
        net = node.NodeNetwork(int(recorded["index"]))
        pids = self._recorded_pids()
        for component in reversed(node.NODE_COMPONENTS):
            pid = pids.get(component)
            if pid is not None and self._ours(component, pid):
                echo(f"stopping {component} (pid {pid})")
                self._stop_pid(pid)
            with contextlib.suppress(FileNotFoundError):
                (self.pid_dir / f"{component}.pid").unlink()
        # Containers live in our cgroup root; their shims name our containerd socket.
        for _attempt in range(20):
            leftovers = node.cgroup_pids(recorded["cgroup_root"]) | set(
                node.pids_with_argument(str(self.node_state / "containerd"))
            )
            if not leftovers:
                break
            node.kill_all(leftovers)
            time.sleep(0.25)
        stuck = node.unmount_under(self.node_state)
        cgroups = node.remove_cgroup_root(recorded["cgroup_root"])
        node.delete_network(net)
        shutil.rmtree(self.node_state, ignore_errors=True)
        if stuck or cgroups:
            echo(f"warning: could not remove {', '.join(stuck + cgroups)}")
        self.node_file.unlink()
        return True

    @staticmethod
    def _stop_pid(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.05)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)

    # --- helpers ------------------------------------------------------------------------------

    def _ports(self) -> dict[str, int]:
        wanted = os.environ.get("INFRAGENIUS_APISERVER_PORT")
        ports = {name: _free_port() for name in ("etcd", "etcd-peer", *COMPONENTS[1:])}
        if wanted:
            port = int(wanted)
            if not _port_is_free(port):
                raise DevClusterError(
                    f"Port {port} (INFRAGENIUS_APISERVER_PORT) is already in use on 127.0.0.1; "
                    "free it or unset the variable to pick a free port."
                )
            ports["kube-apiserver"] = port
        if len(set(ports.values())) != len(ports):
            return self._ports()
        return ports

    def _start(self, component: str, argv: list[str]) -> int:
        log = (self.log_dir / f"{component}.log").open("ab")
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        (self.pid_dir / f"{component}.pid").write_text(str(proc.pid))
        time.sleep(0.05)
        if proc.poll() is not None:
            raise DevClusterError(
                f"{component} exited at start (code {proc.returncode}); see {self.log_dir / (component + '.log')}."
            )
        return proc.pid

    def _start_etcd(self, etcd: Path, ports: dict[str, int]) -> None:
        client = f"http://127.0.0.1:{ports['etcd']}"
        peer = f"http://127.0.0.1:{ports['etcd-peer']}"
        self._start(
            "etcd",
            [
                str(etcd),
                "--name=infragenius",
                f"--data-dir={self.data_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=infragenius={peer}",
                # Throwaway test data: durability is not worth an fsync per write on a shared disk.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )

    def _start_apiserver(
        self, apiserver: Path, ports: dict[str, int], certs: pki.Pki, net: node.NodeNetwork | None
    ) -> None:
        host = net.host_ip if net else "127.0.0.1"
        if net is None:
            # Nothing runs in pods: the `kubernetes` Service needs no endpoints.
            extra = ["--endpoint-reconciler-type=none"]
        else:
            # Pods reach the API server through the `kubernetes` Service, whose endpoint the lease
            # reconciler publishes; it talks to the kubelet (logs, exec) with its own client cert.
            kubelet_client = pki.issue_from_ca(
                self.data_dir / "pki", "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)
            )
            extra = [
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                f"--kubelet-certificate-authority={certs.ca.cert}",
                "--kubelet-preferred-address-types=InternalIP",
            ]
        self._start(
            "kube-apiserver",
            [
                str(apiserver),
                f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                f"--bind-address={host}",
                f"--advertise-address={host}",
                f"--secure-port={ports['kube-apiserver']}",
                f"--cert-dir={self.data_dir / 'apiserver-certs'}",
                f"--tls-cert-file={certs.apiserver.cert}",
                f"--tls-private-key-file={certs.apiserver.key}",
                f"--client-ca-file={certs.ca.cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={certs.service_account_key}",
                f"--service-account-signing-key-file={certs.service_account_key}",
                "--profiling=false",
                *extra,
            ],
        )

    def _http(self, timeout: float = 5.0) -> httpx.Client:
        certs = getattr(self, "_certs", None)
        directory = self.data_dir / "pki"
        ca = certs.ca.cert if certs else directory / "ca.crt"
        admin = certs.admin if certs else pki.CertPair(directory / "admin.crt", directory / "admin.key")
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.load_cert_chain(str(admin.cert), str(admin.key))
        return httpx.Client(verify=ctx, timeout=timeout)

    def _get_ok(self, server: str, path: str) -> bool:
        try:
            with self._http(2.0) as client:
                return client.get(server + path).status_code == 200
        except (httpx.HTTPError, ssl.SSLError, OSError):
            return False

    @staticmethod
    def _etcd_healthy(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            return False

    def _wait(self, check: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for component, pid in self._recorded_pids().items():
                if not _pid_alive(pid):
                    raise DevClusterError(
                        f"{component} stopped while waiting for {what}; see {self.log_dir / (component + '.log')}."
                    )
            if check():
                return
            time.sleep(0.2)
        raise DevClusterError(f"Timed out after {seconds:.0f}s waiting for {what}; logs are in {self.log_dir}.")

    def _create_nodes(self, server: str) -> None:
        with self._http() as client:
            for index in range(NODE_COUNT):
                name = f"kwok-node-{index}"
                node = fake_node(name, f"10.0.0.{index + 1}", NODE_CAPACITY, zone=f"zone-{index % 3}")
                reply = client.post(f"{server}/api/v1/nodes", json=node)
                if reply.status_code not in (201, 409):
                    raise DevClusterError(f"Could not create node {name}: {reply.status_code} {reply.text[:200]}")

    def _nodes_ready(self, server: str) -> bool:
        try:
            with self._http(2.0) as client:
                items = client.get(f"{server}/api/v1/nodes").json().get("items", [])
        except (httpx.HTTPError, ValueError):
            return False
        ready = 0
        for item in items:
            for condition in item.get("status", {}).get("conditions", []):
                if condition.get("type") == "Ready" and condition.get("status") == "True":
                    ready += 1
        return ready >= NODE_COUNT

    def _stop_recorded(self, echo: Callable[[str], None]) -> bool:
        """Stop our recorded processes one by one, dependents first (etcd last), SIGKILL stragglers."""
        pids = self._recorded_pids()
        ours = {c: p for c, p in pids.items() if self._ours(c, p)}
        for component in (c for c in reversed((*COMPONENTS, *node.NODE_COMPONENTS)) if c in ours):
            pid = ours[component]
            echo(f"stopping {component} (pid {pid})")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _pid_alive(pid):
                time.sleep(0.05)
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        for path in self.pid_dir.glob("*.pid") if self.pid_dir.exists() else []:
            path.unlink()
        return bool(ours)
