"""A real node for the local cluster: containerd + runc + CNI bridge, kubelet, kube-proxy and CoreDNS.

Everything the node does happens in places it owns, so ``down`` can undo all of it:
- its own network namespace ``ig-<cluster>`` joined to the host by one veth pair (the API server
  listens on the host end; the kubelet, kube-proxy, CoreDNS, the CNI bridge and every iptables rule
  live inside the namespace, so the host's iptables are never touched);
- its own cgroup root ``/infragenius-<cluster>`` in every cgroup v1 hierarchy;
- its own state directory (containerd root and state, pod network namespaces, kubelet root, pod logs,
  CNI IPAM data) under the cluster's ``data/node``.

Programs run as ordinary host processes, entered into the namespace with ``nsenter --net`` (which,
unlike ``ip netns exec``, keeps the host's mount namespace so the kubelet and containerd share mounts).
The node is tainted: only pods that tolerate ``infragenius.io/real-node`` run on it; kwok nodes stay
for scale.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from infragenius_devtools.devcluster import pki
from infragenius_devtools.devcluster.errors import DevClusterError

NODE_NAME = "real-node-0"
NODE_LABEL = "infragenius.io/real-node"
NODE_TAINT = f"{NODE_LABEL}=true:NoSchedule"
CLUSTER_DNS_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
NODE_COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns", "provisioner")
CNI_BIN_DIR = Path("/usr/lib/cni")
CGROUP_FS = Path("/sys/fs/cgroup")
# Debian packages the node needs; the install step installs them.
DEBIAN_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "conntrack", "iproute2")


def missing_host_tools() -> list[str]:
    """Host programs the node cannot start without (from Debian packages)."""
    wanted = {"containerd": "containerd", "runc": "runc", "ip": "iproute2", "nsenter": "util-linux"}
    wanted |= {"iptables": "iptables", "conntrack": "conntrack"}
    missing = [package for program, package in wanted.items() if shutil.which(program) is None]
    if not (CNI_BIN_DIR / "bridge").exists():
        missing.append("containernetworking-plugins")
    return missing


@dataclass(frozen=True)
class NodeNetwork:
    """Addresses of one real node: the veth link to the host and its pod subnet."""

    index: int

    @property
    def netns(self) -> str:
        return f"ig-node-{self.index}"

    @property
    def host_link(self) -> str:
        return f"igv{self.index}"

    @property
    def host_ip(self) -> str:
        """The host's end of the link: the API server listens and advertises here."""
        return f"172.29.{self.index}.1"

    @property
    def node_ip(self) -> str:
        return f"172.29.{self.index}.2"

    @property
    def pod_cidr(self) -> str:
        return f"10.245.{self.index}.0/24"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns


def _run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise DevClusterError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return done


def _links() -> set[str]:
    out = _run("ip", "-o", "link", "show").stdout
    return {line.split(":", 2)[1].strip().split("@", 1)[0] for line in out.splitlines() if ":" in line}


def _netns_names() -> set[str]:
    return {line.split()[0] for line in _run("ip", "netns", "list").stdout.splitlines() if line.strip()}


def pick_network() -> NodeNetwork:
    """The first index whose namespace, link and addresses nobody on this host uses."""
    links, namespaces = _links(), _netns_names()
    used = _run("ip", "-o", "-4", "addr", "show").stdout
    for index in range(1, 250):
        net = NodeNetwork(index)
        if net.host_link in links or net.netns in namespaces or f" 172.29.{index}." in used:
            continue
        return net
    raise DevClusterError("No free 172.29.N.0/24 link for a real node; remove stale ig-node-* namespaces.")


def create_network(net: NodeNetwork) -> None:
    """The namespace and its veth link; forwarding is switched on inside the namespace only."""
    _run("ip", "netns", "add", net.netns)
    _run("ip", "link", "add", net.host_link, "type", "veth", "peer", "name", "eth0", "netns", net.netns)
    _run("ip", "addr", "add", f"{net.host_ip}/24", "dev", net.host_link)
    _run("ip", "link", "set", net.host_link, "up")
    inside = ("ip", "-n", net.netns)
    _run(*inside, "addr", "add", f"{net.node_ip}/24", "dev", "eth0")
    _run(*inside, "link", "set", "eth0", "up")
    _run(*inside, "link", "set", "lo", "up")
    _run(*inside, "route", "add", "default", "via", net.host_ip)
    _run("ip", "netns", "exec", net.netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    # The host reaches pod IPs through the node (the route goes away with the link).
    _run("ip", "route", "add", net.pod_cidr, "via", net.node_ip, "dev", net.host_link)


def delete_network(net: NodeNetwork) -> None:
    if net.netns in _netns_names():
        _run("ip", "netns", "del", net.netns, check=False)
    if net.host_link in _links():
        _run("ip", "link", "del", net.host_link, check=False)


def cgroup_hierarchies(with_unified: bool = False) -> list[Path]:
    """Every cgroup v1 hierarchy (the kubelet needs its cgroup root in each); with ``with_unified`` also
    the hybrid setup's v2 tree, where runc creates cgroups too."""
    return sorted(
        p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink() and (with_unified or p.name != "unified")
    )


def create_cgroup_root(name: str) -> None:
    for hierarchy in cgroup_hierarchies():
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            # A new cpuset cgroup starts with no CPUs or memory nodes; give it its parent's.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (path / knob).write_text((hierarchy / knob).read_text())


def cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies(with_unified=True):
        root = hierarchy / name
        if root.exists():
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids.update(int(line) for line in procs.read_text().split())
    return pids


def remove_cgroup_root(name: str) -> list[str]:
    """Remove the cgroup tree bottom-up; returns paths that could not be removed."""
    left: list[str] = []
    for hierarchy in cgroup_hierarchies(with_unified=True):
        root = hierarchy / name
        if not root.exists():
            continue
        for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        try:
            root.rmdir()
        except OSError:
            left.append(str(root))
    return left


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` in this mount namespace, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(root) or point.startswith(f"{root}/"):
            points.append(point)
    return sorted(points, key=lambda p: -p.count("/"))


def unmount_under(root: Path) -> list[str]:
    for _attempt in range(3):
        points = mounts_under(root)
        if not points:
            return []
        for point in points:
            _run("umount", "-l", point, check=False)
    return mounts_under(root)


def pids_with_argument(fragment: str) -> list[int]:
    """Processes whose command line contains ``fragment`` (a path of ours, never a bare name)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if fragment in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(proc.name))
    return found


def kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


# --- configuration files ------------------------------------------------------------------------


def containerd_config(state: Path) -> str:
    """containerd 1.6's CRI plugin, confined to ``state``."""
    cni_conf = state / "cni" / "net.d"
    return f"""version = 2
root = "{state / "containerd" / "root"}"
state = "{state / "containerd" / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{state / "containerd" / "containerd.sock"}"

[ttrpc]
  address = "{state / "containerd" / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{state / "containerd" / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to lower its OOM score.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state directory, not the host's /run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  max_container_log_line_size = 16384

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{cni_conf}"
  max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
"""


def cni_config(net: NodeNetwork, state: Path) -> dict[str, object]:
    return {
        "cniVersion": "0.4.0",
        "name": "infragenius",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": net.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(state / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(net: NodeNetwork, state: Path, ca: Path, serving: pki.CertPair, cgroup_root: str) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This VM has cgroup v1 only; the kubelet refuses it unless told otherwise.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{cgroup_root}",
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "address": net.node_ip,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "clusterDNS": [CLUSTER_DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(state / "resolv.conf"),
        "containerRuntimeEndpoint": f"unix://{state / 'containerd' / 'containerd.sock'}",
        "podLogsDir": str(state / "pod-logs"),
        "failSwapOn": False,
        "serializeImagePulls": False,
        "maxPods": 110,
        # Images are imported, not pulled: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "protectKernelDefaults": False,
        "registerWithTaints": [{"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}],
        "localStorageCapacityIsolation": True,
        "containerLogMaxSize": "1Mi",
        "containerLogMaxFiles": 2,
        "nodeStatusReportFrequency": "10s",
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(net: NodeNetwork, kubeconfig: Path) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": net.pod_cidr,
        "hostnameOverride": NODE_NAME,
        "bindAddress": net.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{net.node_ip}/32"],
        # Zero leaves the host-wide conntrack sysctls as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def corefile(net: NodeNetwork, kubeconfig: Path) -> str:
    return f""".:53 {{
    bind {net.node_ip}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} infragenius
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""


def dns_objects(net: NodeNetwork) -> list[dict]:
    """A selectorless ``kube-dns`` Service whose endpoint is CoreDNS on the node's address, and CoreDNS's RBAC."""
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "infragenius-devcluster:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "infragenius-devcluster:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "infragenius-devcluster:coredns",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:coredns"}],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"clusterIP": CLUSTER_DNS_IP, "ports": [{**p, "targetPort": 53} for p in ports]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "infragenius-devcluster",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [net.node_ip], "conditions": {"ready": True}, "nodeName": NODE_NAME}],
            "ports": ports,
        },
    ]


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def wait_until(check: Callable[[], bool], seconds: float, what: str, alive: Callable[[], None]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive()
        if check():
            return
        time.sleep(0.25)
    raise DevClusterError(f"Timed out after {seconds:.0f}s waiting for {what}.")


def ip_in(ip: str, cidr: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)
