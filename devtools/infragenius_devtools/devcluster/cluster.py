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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from infragenius_devtools.devcluster import build, pki, versions
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
    """One named local cluster; several can run side by side with separate names."""

    def __init__(self, name: str = "default") -> None:
        if not name.replace("-", "").isalnum():
            raise DevClusterError(f"Cluster name {name!r} must be letters, digits and dashes.")
        self.name = name
        self.root = build.cache_root() / "clusters" / name
        self.data_dir = self.root / "data"
        self.log_dir = self.root / "logs"
        self.pid_dir = self.root / "pids"
        self.state_file = self.root / "state.json"
        self.kubeconfig_path = self.data_dir / "admin.kubeconfig"

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
        if set(pids) != set(COMPONENTS) or not all(self._ours(c, p) for c, p in pids.items()):
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
        if running is not None and self.is_healthy():
            echo(f"cluster {self.name!r} is already running at {running.server}")
            return running
        started = time.monotonic()
        self._stop_recorded(echo=lambda _m: None)  # stale PID files or a half-started cluster
        binaries = build.ensure_binaries(echo=True)
        deadline = time.monotonic() + timeout  # building is not part of the start-up budget

        def remaining() -> float:
            return max(1.0, deadline - time.monotonic())

        shutil.rmtree(self.data_dir, ignore_errors=True)
        for directory in (self.data_dir, self.log_dir, self.pid_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for old_log in self.log_dir.glob("*.log"):
            old_log.unlink()

        ports = self._ports()
        certs = pki.generate(self.data_dir / "pki")
        server = f"https://127.0.0.1:{ports['kube-apiserver']}"
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
            self._start_apiserver(binaries.kube_apiserver, ports, certs)
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
            info = ClusterInfo(
                name=self.name,
                kubeconfig=str(kubeconfigs["admin"]),
                server=server,
                log_dir=str(self.log_dir),
                version=f"v{versions.KUBERNETES_VERSION}",
                ports=ports,
                pids=self._recorded_pids(),
            )
            self.state_file.write_text(json.dumps(asdict(info), indent=2))
            self._create_nodes(server)
            self._wait(lambda: self._nodes_ready(server), remaining(), f"{NODE_COUNT} fake nodes to be Ready")
            self._wait(
                lambda: self._get_ok(server, "/api/v1/namespaces/default/serviceaccounts/default"),
                remaining(),
                "the default service account",
            )
        except BaseException:
            self._stop_recorded(echo=lambda _m: None)
            raise
        echo(f"cluster {self.name!r} is up at {server} in {time.monotonic() - started:.1f}s")
        return info

    def down(self, echo: Callable[[str], None] = print) -> bool:
        """Stop the processes this cluster recorded and remove its data; True if anything ran."""
        stopped = self._stop_recorded(echo)
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

    def _start_apiserver(self, apiserver: Path, ports: dict[str, int], certs: pki.Pki) -> None:
        self._start(
            "kube-apiserver",
            [
                str(apiserver),
                f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
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
                "--endpoint-reconciler-type=none",
                "--profiling=false",
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
        for node in items:
            for condition in node.get("status", {}).get("conditions", []):
                if condition.get("type") == "Ready" and condition.get("status") == "True":
                    ready += 1
        return ready >= NODE_COUNT

    def _stop_recorded(self, echo: Callable[[str], None]) -> bool:
        """Stop our recorded processes one by one, dependents first (etcd last), SIGKILL stragglers."""
        pids = self._recorded_pids()
        ours = {c: p for c, p in pids.items() if self._ours(c, p)}
        for component in (c for c in reversed(COMPONENTS) if c in ours):
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
