"""Fixtures that give e2e tests a real Kubernetes API.

The cluster is chosen in this order:
1. an existing cluster named by ``INFRAGENIUS_TEST_KUBECONFIG``;
2. pytest-kind, where a Docker engine and kind work;
3. the local control plane built from Go modules (``infragenius devcluster``).

Outside CI a cluster that cannot start skips the e2e tests; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config

from infragenius import rbac
from infragenius_devtools.devcluster import DevClusterError, LocalCluster
from infragenius_devtools.devcluster.services import LocalOllama, LocalPostgres, LocalRedis
from tests.e2e.support import SETUP_TIMEOUT, service_account_kubeconfig, wait_for

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_CLUSTER_NAME = os.environ.get("INFRAGENIUS_TEST_CLUSTER_NAME", "pytest")
# The local cluster runs a real node (kubelet, containerd, CNI) next to its kwok nodes unless told not to.
TEST_REAL_NODE = os.environ.get("INFRAGENIUS_TEST_REAL_NODE", "1") != "0"


@dataclass
class E2ECluster:
    """A cluster the tests may use, however it was obtained."""

    kubeconfig: str
    kubectl_path: str
    provider: str  # "existing", "kind" or "local"
    api: client.ApiClient
    local: LocalCluster | None = None  # the local control plane, for fault tests that restart it
    real_node: dict[str, str] | None = None  # name, address and pod CIDR of the local cluster's real node

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=check,
            input=input,
            timeout=120,
        )


def _unavailable(reason: str) -> None:
    """A missing cluster, database or model server fails in CI and skips elsewhere."""
    if IN_CI:
        pytest.fail(f"e2e dependency unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"e2e dependency unavailable: {reason}")


def _docker_and_kind_work() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def cluster() -> Iterator[E2ECluster]:
    existing = os.environ.get("INFRAGENIUS_TEST_KUBECONFIG")
    local: LocalCluster | None = None
    kind_cluster: Any = None
    real_node_info: dict[str, str] | None = None
    if existing:
        if not Path(existing).exists():
            _unavailable(f"INFRAGENIUS_TEST_KUBECONFIG={existing} does not exist")
        kubeconfig, provider = existing, "existing"
        kubectl_path = shutil.which("kubectl") or ""
    elif _docker_and_kind_work() and os.environ.get("INFRAGENIUS_TEST_PROVIDER", "") != "local":
        from pytest_kind import KindCluster  # imported lazily: only this path needs it

        kind_cluster = KindCluster("infragenius-e2e")
        try:
            kind_cluster.create()
        except Exception as err:  # kind reports failures through many exception types
            _unavailable(f"kind could not create a cluster: {err}")
        kubeconfig, provider = str(kind_cluster.kubeconfig_path), "kind"
        kubectl_path = str(kind_cluster.kubectl_path)
    else:
        local = LocalCluster(TEST_CLUSTER_NAME, real_node=TEST_REAL_NODE)
        try:
            info = local.up(echo=lambda _m: None, timeout=300)
        except DevClusterError as err:
            _unavailable(str(err))
        kubeconfig, provider, real_node_info = info.kubeconfig, "local", info.real_node
        from infragenius_devtools.devcluster.build import ensure_binaries

        kubectl_path = str(ensure_binaries(echo=False).kubectl)
    api = config.new_client_from_config(config_file=kubeconfig)
    try:
        yield E2ECluster(
            kubeconfig=kubeconfig,
            kubectl_path=kubectl_path,
            provider=provider,
            api=api,
            local=local,
            real_node=real_node_info,
        )
    finally:
        api.close()
        # A local cluster is kept for the next run when asked (fast iteration), else stopped.
        if local is not None and os.environ.get("INFRAGENIUS_KEEP_CLUSTER") != "1":
            local.down(echo=lambda _m: None)
        if kind_cluster is not None and os.environ.get("INFRAGENIUS_KEEP_CLUSTER") != "1":
            kind_cluster.delete()


@pytest.fixture
def real_node(cluster: E2ECluster) -> dict[str, str]:
    """The real node's name and addresses; its absence is a failure in CI."""
    if cluster.real_node is None:
        _unavailable("the cluster has no real node (INFRAGENIUS_TEST_REAL_NODE=0 or not a local cluster)")
    assert cluster.real_node is not None
    return cluster.real_node


@pytest.fixture
def core(cluster: E2ECluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api)


@pytest.fixture
def apps(cluster: E2ECluster) -> client.AppsV1Api:
    return client.AppsV1Api(cluster.api)


@pytest.fixture
def namespace(cluster: E2ECluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting, to keep tests fast)."""
    base = request.node.name.lower().replace("_", "-")
    name = f"t-{''.join(c for c in base if c.isalnum() or c == '-')[:40].strip('-')}-{uuid.uuid4().hex[:5]}"
    core_api = client.CoreV1Api(cluster.api)
    core_api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        lambda: any(sa.metadata.name == "default" for sa in core_api.list_namespaced_service_account(name).items),
        # The controller-manager may still be reconnecting after a fault test restarted the API server.
        timeout=SETUP_TIMEOUT,
        what=f"default service account in {name}",
    )
    yield name
    try:
        core_api.delete_namespace(name)
    except client.ApiException as err:
        if err.status != 404:
            raise


# --- the operator ---------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def crds(cluster: E2ECluster) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/analyses.infragenius.io", "--timeout=30s")


@dataclass(frozen=True)
class OperatorAccount:
    namespace: str
    name: str
    kubeconfig: str


@pytest.fixture(scope="session")
def operator_account(cluster: E2ECluster, crds: None) -> OperatorAccount:
    """The operator runs as a service account holding only the generated ClusterRole (least privilege)."""
    home = f"infragenius-e2e-{uuid.uuid4().hex[:5]}"
    client.CoreV1Api(cluster.api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=home)))
    wait_for(
        lambda: client.CoreV1Api(cluster.api).list_namespaced_service_account(home).items,
        timeout=30,
        what="SA controller",
    )
    path = service_account_kubeconfig(cluster.api, cluster.kubeconfig, home, "operator", rbac.operator_rules())
    return OperatorAccount(namespace=home, name="operator", kubeconfig=path)


@pytest.fixture(scope="session")
def operator_kubeconfig(operator_account: OperatorAccount) -> str:
    return operator_account.kubeconfig


@pytest.fixture(scope="module")
def operator(operator_kubeconfig: str) -> Iterator[KopfRunner]:
    from tests.e2e.analysis_support import running_operator  # the module imports this one

    with running_operator(operator_kubeconfig) as runner:
        yield runner


# --- the model server -----------------------------------------------------------------------------

TINY_MODEL = LocalOllama.MODEL


@pytest.fixture(scope="session")
def ollama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOllama]:
    """A real Ollama (built from Go modules, CPU only) serving a tiny model made locally."""
    from infragenius_devtools.devcluster.build import ensure_ollama

    try:
        server = LocalOllama(tmp_path_factory.mktemp("ollama"), ensure_ollama(echo=False)).start()
    except DevClusterError as err:
        _unavailable(f"Ollama: {err}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A real Postgres from Debian's package (initdb in a temp dir)."""
    try:
        server = LocalPostgres().init().start()
    except DevClusterError as err:
        _unavailable(f"Postgres: {err}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    """A real redis-server from Debian's package."""
    try:
        server = LocalRedis().start()
    except DevClusterError as err:
        _unavailable(f"Redis: {err}")
    try:
        yield server
    finally:
        server.stop()


# --- Prometheus with backfilled SLO data (see prometheus_support.py) --------------------------------


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Prometheus (Debian's package) on a free port, loaded by promtool with SLO data sets."""
    from tests.e2e.prometheus_support import LocalPrometheus, PrometheusUnavailable, free_port

    try:
        server = LocalPrometheus(tmp_path_factory.mktemp("prometheus"), free_port()).start()
    except PrometheusUnavailable as err:
        _unavailable(str(err))
    try:
        yield server
    finally:
        server.stop()
