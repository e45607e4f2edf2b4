"""The local cluster's build and process management, without starting a cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from infragenius_devtools.devcluster import DevClusterError, LocalCluster, build, versions

ROOT = Path(__file__).resolve().parents[2]

SAMPLE_GO_MOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/streaming v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming
\tk8s.io/streaming => ./staging/src/k8s.io/streaming
\tgithub.com/example/other => github.com/example/other v1.2.3
)
"""


# The CLI runs as a subprocess: it must import this checkout, not whatever the venv has installed.
CHECKOUT_PATH = os.pathsep.join(str(ROOT / d) for d in ("operator", "devtools"))


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INFRAGENIUS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_staging_modules_are_read_from_the_replace_block() -> None:
    assert build._STAGING_REPLACE.findall(SAMPLE_GO_MOD) == ["k8s.io/api", "k8s.io/cri-streaming", "k8s.io/streaming"]


def test_wrapper_module_replaces_each_staging_module_with_its_published_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(build, "kubernetes_staging_modules", lambda v: ["k8s.io/api", "k8s.io/streaming"])
    spec = build.kubernetes_build("1.36.3")
    assert "require k8s.io/kubernetes v1.36.3" in spec.go_mod
    assert "\tk8s.io/api => k8s.io/api v0.36.3\n" in spec.go_mod
    assert "\tk8s.io/streaming => k8s.io/streaming v0.36.3\n" in spec.go_mod
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in spec.ldflags
    assert "-X k8s.io/component-base/version.gitMinor=36" in spec.ldflags
    assert spec.binaries == ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
    assert spec.tags == "selinux,notest"


def test_cache_is_keyed_by_version(isolated_cache: Path) -> None:
    etcd = build.etcd_build("3.6.16")
    assert etcd.bin_dir() == isolated_cache / "bin" / "etcd-3.6.16"
    assert not etcd.is_cached()
    etcd.bin_dir().mkdir(parents=True)
    (etcd.bin_dir() / ".complete").write_text("{}")
    assert etcd.is_cached()
    # A cached entry is used as is: no Go, no network.
    assert build.ensure_built(etcd, echo=False) == etcd.bin_dir()
    assert build.etcd_build("3.6.17").bin_dir() != etcd.bin_dir()


def test_missing_go_is_one_clear_sentence(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevClusterError, match=r"^Go is not installed or not on PATH; install Go 1\.26 or newer"):
        build.go_version()


def test_cli_reports_missing_go_without_a_traceback(tmp_path: Path, isolated_cache: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "INFRAGENIUS_CACHE": str(isolated_cache), "PYTHONPATH": CHECKOUT_PATH}
    proc = subprocess.run(
        [sys.executable, "-m", "infragenius.cli", "devcluster", "up", "--name", "nogo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("infragenius: Go is not installed")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unreachable_module_proxy_is_reported_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("GOPROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GOFLAGS", "-modcacherw")
    monkeypatch.setenv("GONOSUMDB", "*")
    monkeypatch.setenv("GOSUMDB", "off")
    with pytest.raises(DevClusterError, match="Could not reach the Go module proxy"):
        build.kubernetes_staging_modules("1.36.3")


def test_taken_port_is_one_clear_sentence(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        monkeypatch.setenv("INFRAGENIUS_APISERVER_PORT", str(port))
        with pytest.raises(DevClusterError, match=rf"^Port {port} \(INFRAGENIUS_APISERVER_PORT\) is already in use"):
            LocalCluster("busy")._ports()


def test_stale_pid_files_never_kill_foreign_processes(isolated_cache: Path) -> None:
    cluster = LocalCluster("stale")
    cluster.pid_dir.mkdir(parents=True)
    # A live process that is not ours (this test) and a dead PID, as a crashed run might leave.
    (cluster.pid_dir / "kube-apiserver.pid").write_text(str(os.getpid()))
    (cluster.pid_dir / "etcd.pid").write_text("999999999")
    cluster.state_file.write_text("{}")
    assert cluster.info() is None
    messages: list[str] = []
    assert cluster.down(echo=messages.append) is False
    assert messages == ["cluster 'stale' was not running"]
    assert list(cluster.pid_dir.glob("*.pid")) == []
    assert not cluster.state_file.exists()


def test_cluster_names_are_checked() -> None:
    with pytest.raises(DevClusterError, match="letters, digits and dashes"):
        LocalCluster("../etc")


def test_status_of_a_stopped_cluster(isolated_cache: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "infragenius.cli", "devcluster", "status", "--name", "absent"],
        capture_output=True,
        text=True,
        env={**os.environ, "INFRAGENIUS_CACHE": str(isolated_cache), "PYTHONPATH": CHECKOUT_PATH},
        timeout=60,
    )
    assert proc.returncode == 1
    assert "cluster 'absent': not running" in proc.stdout
    assert f"logs:       {isolated_cache / 'clusters' / 'absent' / 'logs'}" in proc.stdout


def test_pinned_versions_are_consistent() -> None:
    assert versions.KUBERNETES_VERSION.count(".") == 2
    assert int(versions.ETCD_VERSION.split(".")[0]) >= 3 and int(versions.ETCD_VERSION.split(".")[1]) >= 5


def test_helm_is_told_the_cluster_version() -> None:
    spec = build.helm_build("3.22.0")
    assert spec.binaries == ("helm",)
    assert (
        "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=" + versions.KUBERNETES_VERSION.split(".")[1] in spec.ldflags
    )
    assert "require helm.sh/helm/v3 v3.22.0" in spec.go_mod


def test_vegeta_binary_is_named_as_go_build_names_a_major_version_module() -> None:
    """`go build` names the binary of github.com/tsenart/vegeta/v12 "vegeta": the completeness check must too."""
    spec = build.vegeta_build("12.13.0")
    assert spec.binaries == ("vegeta",)
    assert "require github.com/tsenart/vegeta/v12 v12.13.0" in spec.go_mod
    assert spec.bin_dir().name == "vegeta-12.13.0" and not spec.cgo
    # Only a trailing vN (N >= 2) is a major-version element; other names stay as they are.
    assert build.GoBuild("x", "1", "", ("example.com/tool/v2", "example.com/v1", "example.com/v10")).binaries == (
        "tool",
        "v1",
        "example.com",
    )


def test_build_progress_names_the_last_module_or_package_at_most_every_interval() -> None:
    now = [0.0]
    printed: list[str] = []
    progress = build.BuildProgress("building kubernetes 1.36.3", interval=20, clock=lambda: now[0], echo=printed.append)
    stream = [
        (1, "go: downloading k8s.io/api v0.36.3\n"),
        (5, "go: finding module for package k8s.io/foo\n"),
        (12, "runtime\n"),
        (19, "internal/abi\n"),
        (21, "k8s.io/apiserver/pkg/server\n"),  # 20 s passed: one line, naming this package
        (22, "k8s.io/apiserver/pkg/endpoints\n"),  # 1 s later: nothing
        (30, "# k8s.io/broken\n"),
        (31, "pkg/x.go:3:1: undefined: y\n"),
    ]
    for at, line in stream:
        now[0] = at
        progress.feed(line)
    assert printed == [
        "  ... building kubernetes 1.36.3: 21s, 4 so far, last: compiling k8s.io/apiserver/pkg/server",
    ]
    # Silence (linking) still prints, from the once-a-second tick.
    now[0] = 42
    progress.tick()
    assert printed[-1] == (
        "  ... building kubernetes 1.36.3: 42s, 5 so far, last: compiling k8s.io/apiserver/pkg/endpoints"
    )
    downloading = build.BuildProgress.item("go: downloading sigs.k8s.io/kwok v0.8.0")
    assert downloading == ("downloading", "sigs.k8s.io/kwok@v0.8.0")


def test_build_progress_before_any_output() -> None:
    now = [0.0]
    printed: list[str] = []
    progress = build.BuildProgress("building etcd 3.6.16", clock=lambda: now[0], echo=printed.append)
    now[0] = 25
    progress.tick()
    assert printed == ["  ... building etcd 3.6.16: 25s, no output yet"]


def test_go_output_reaches_the_log_and_the_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """_run_go streams `go`'s output through the progress printer (a fake `go` on PATH)."""
    fake = tmp_path / "go"
    fake.write_text("#!/bin/sh\necho 'go: downloading example.com/m v1.0.0'\necho example.com/m/pkg\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    printed: list[str] = []
    progress = build.BuildProgress("building m", interval=0, echo=printed.append)
    log = tmp_path / "build.log"
    build._run_go(["build", "-v"], tmp_path, dict(os.environ), "building m", log, progress)
    assert "example.com/m/pkg" in log.read_text()
    assert progress.count == 2 and progress.last == "compiling example.com/m/pkg"
    assert printed and printed[-1].endswith("last: compiling example.com/m/pkg")


def test_the_demo_shop_runs_its_kubelet_failures_on_the_real_node() -> None:
    """break_namespace_real's workloads: pinned to the real node, its imported image, never a registry pull."""
    from infragenius_devtools.devcluster import scenarios
    from infragenius_devtools.devcluster.node import NODE_LABEL

    oom = scenarios.real_deployment("recommender", script=scenarios.OOM_SCRIPT, memory=scenarios.OOM_LIMIT)
    spec = oom["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert spec["nodeSelector"] == {NODE_LABEL: "true"}
    assert spec["tolerations"][0]["key"] == NODE_LABEL
    assert container["image"] == scenarios.TESTBOX_IMAGE and container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"]["limits"]["memory"] == "24Mi"
    assert container["command"][-1].endswith("exec tail /dev/zero")
    assert "FATAL: cannot connect to payments-db:5432: connection refused' >&2" in scenarios.CRASH_SCRIPT
    assert scenarios.CRASH_SCRIPT.endswith("exit 1")


def test_real_failures_reads_each_workloads_kubelet_state() -> None:
    from types import SimpleNamespace as NS

    from kubernetes import client

    from infragenius_devtools.devcluster import scenarios

    def pod(app: str, status: client.V1ContainerStatus) -> client.V1Pod:
        return client.V1Pod(
            metadata=client.V1ObjectMeta(name=app), status=client.V1PodStatus(container_statuses=[status])
        )

    def cs(restarts: int = 0, waiting: str | None = None, last: str | None = None) -> client.V1ContainerStatus:
        return client.V1ContainerStatus(
            name="app",
            image="x",
            image_id="",
            ready=False,
            restart_count=restarts,
            state=client.V1ContainerState(
                waiting=client.V1ContainerStateWaiting(reason=waiting) if waiting else None,
                running=None if waiting else client.V1ContainerStateRunning(),
            ),
            last_state=client.V1ContainerState(terminated=client.V1ContainerStateTerminated(exit_code=1, reason=last))
            if last
            else None,
        )

    pods = {
        "checkout": [pod("checkout", cs(1, "CrashLoopBackOff", "Error")), pod("checkout", cs(2, None, "Error"))],
        "recommender": [pod("recommender", cs(1, "CrashLoopBackOff", "OOMKilled"))],
        "payments": [pod("payments", cs(0, "ContainerCreating"))],
        "cart": [],
    }

    class Core:
        def list_namespaced_pod(self, namespace: str, label_selector: str) -> NS:
            return NS(items=pods[label_selector.removeprefix("app=")])

    progress = scenarios.real_failures(Core(), "shop")  # type: ignore[arg-type]
    assert progress == {
        "checkout": (True, "Running, restarts 2/2"),
        "recommender": (True, "CrashLoopBackOff, last exit OOMKilled"),
        "payments": (False, "ContainerCreating"),
        "cart": (False, "no container status yet"),
    }
