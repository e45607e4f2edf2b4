"""Build pinned Go programs from the module proxy and cache them by version.

Each program is built once into ``<cache>/bin/<name>-<version>/``; a cache
entry is complete only when its ``.complete`` marker exists, so an interrupted
build is redone rather than half-used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infragenius_devtools.devcluster import versions
from infragenius_devtools.devcluster.errors import DevClusterError

_PACKAGE_PATH = re.compile(r"[\w.~+-]+(/[\w.~+-]+)*")
_NETWORK_HINTS = ("dial tcp", "no such host", "i/o timeout", "connection refused", "TLS handshake")


def _binary_name(package: str) -> str:
    parts = package.rstrip("/").split("/")
    if len(parts) > 1 and re.fullmatch(r"v([2-9]|[1-9]\d+)", parts[-1]):
        parts.pop()
    return parts[-1]


def cache_root() -> Path:
    """Where built binaries and cluster state live (``INFRAGENIUS_CACHE`` overrides)."""
    return Path(os.environ.get("INFRAGENIUS_CACHE", Path.home() / ".cache" / "infragenius"))


@dataclass(frozen=True)
class GoBuild:
    """One wrapper module and the commands built from it."""

    name: str
    version: str
    go_mod: str
    packages: tuple[str, ...]
    sources: dict[str, str] = field(default_factory=dict)
    ldflags: str = "-s -w"
    tags: str = ""
    cgo: bool = False
    #: Extra files to place beside the binaries, read from the downloaded modules: name -> (module@version, paths).
    module_files: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def binaries(self) -> tuple[str, ...]:
        # Like `go build`, a trailing major-version element (…/vegeta/v12) does not name the binary.
        return tuple(_binary_name(pkg) if pkg != "." else self.name for pkg in self.packages)

    def bin_dir(self) -> Path:
        return cache_root() / "bin" / f"{self.name}-{self.version}"

    def is_cached(self) -> bool:
        return (self.bin_dir() / ".complete").exists()


def go_version() -> tuple[int, int]:
    """The machine's Go version, or a clear error when Go is missing."""
    go = shutil.which("go")
    if go is None:
        raise DevClusterError(
            "Go is not installed or not on PATH; install Go "
            f"{versions.MIN_GO_VERSION[0]}.{versions.MIN_GO_VERSION[1]} or newer and run again."
        )
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False).stdout
    match = re.match(r"go(\d+)\.(\d+)", out.strip())
    if not match:
        raise DevClusterError(f"Could not read the Go version from `go env GOVERSION` ({out.strip()!r}).")
    found = (int(match.group(1)), int(match.group(2)))
    if found < versions.MIN_GO_VERSION and not os.environ.get("GOTOOLCHAIN"):
        need = ".".join(map(str, versions.MIN_GO_VERSION))
        raise DevClusterError(
            f"Go {found[0]}.{found[1]} is too old to build the pinned components; install Go {need} or newer, "
            "or set GOTOOLCHAIN to a newer toolchain."
        )
    return found


class BuildProgress:
    """Turns the output of ``go mod tidy`` and ``go build -v`` into one line every ``interval`` seconds:
    a cold kubernetes build is silent for ~15 minutes otherwise."""

    def __init__(
        self,
        step: str,
        *,
        interval: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.step = step
        self.interval = interval
        self.clock = clock
        self.echo = echo or (lambda line: print(line, flush=True))
        self.started = clock()
        self.last_printed = self.started
        self.count = 0
        self.last: str | None = None
        self._lock = threading.Lock()

    @staticmethod
    def item(line: str) -> tuple[str, str] | None:
        """(verb, what) for a line naming a module being downloaded or a package being compiled."""
        line = line.strip()
        if line.startswith("go: downloading "):
            return "downloading", line.removeprefix("go: downloading ").replace(" ", "@", 1)
        # `go build -v` prints each package it compiles as a bare import path.
        if not line.startswith(("#", "go:")) and _PACKAGE_PATH.fullmatch(line):
            return "compiling", line
        return None

    def feed(self, line: str) -> None:
        found = self.item(line)
        with self._lock:
            if found is not None:
                self.count += 1
                self.last = f"{found[0]} {found[1]}"
        self.tick()

    def tick(self) -> None:
        """Print a line if ``interval`` has passed since the last one (called on every line and every second)."""
        with self._lock:
            now = self.clock()
            if now - self.last_printed < self.interval:
                return
            self.last_printed = now
            detail = f", {self.count} so far, last: {self.last}" if self.last else ", no output yet"
            message = f"  ... {self.step}: {now - self.started:.0f}s{detail}"
        self.echo(message)


def run_logged(
    argv: list[str],
    log: Path,
    progress: BuildProgress | None = None,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, list[str]]:
    """Run ``argv``, appending its output to ``log`` and feeding ``progress`` line by line; returns the exit
    code and the output's lines. Shared by the Go builds and the image builds."""
    started = time.monotonic()
    lines: list[str] = []
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert proc.stdout is not None

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                fh.write(line)
                lines.append(line)
                if progress is not None:
                    progress.feed(line)

        # A thread reads the output so that silent stretches (linking, cgo, dpkg triggers) still get a
        # progress line.
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        while proc.poll() is None:
            reader.join(timeout=1.0)
            if progress is not None:
                progress.tick()
        reader.join()
        fh.write(f"# exit {proc.returncode} after {time.monotonic() - started:.1f}s\n")
    return proc.returncode, lines


def _run_go(
    args: list[str], cwd: Path, env: dict[str, str], what: str, log: Path, progress: BuildProgress | None = None
) -> None:
    code, lines = run_logged(["go", *args], log, progress, cwd=cwd, env=env)
    if code != 0:
        text = "".join(lines[-15:]).rstrip("\n")
        if any(hint in text for hint in _NETWORK_HINTS):
            raise DevClusterError(
                f"Could not reach the Go module proxy while {what}; check the network or GOPROXY "
                f"(currently {env.get('GOPROXY') or 'default'}) and run again. Log: {log}"
            )
        raise DevClusterError(f"`go {args[0]}` failed while {what}; see the last lines of {log}:\n{text}")


def _go_env(cgo: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "1" if cgo else "0"
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


def ensure_built(build: GoBuild, *, log_to: Path | None = None, echo: bool = True) -> Path:
    """Return the directory holding the build's binaries, building them if not cached."""
    target = build.bin_dir()
    if build.is_cached():
        return target
    go_version()
    work = cache_root() / "build" / f"{build.name}-{build.version}"
    work.mkdir(parents=True, exist_ok=True)
    log = log_to or (work / "build.log")
    (work / "go.mod").write_text(build.go_mod)
    for filename, text in build.sources.items():
        (work / filename).write_text(text)
    env = _go_env(build.cgo)
    if echo:
        print(f"building {build.name} {build.version} from Go modules (once; cached in {target}) ...", flush=True)
    started = time.monotonic()

    def progress(step: str) -> BuildProgress | None:
        return BuildProgress(f"{step} {build.name} {build.version}") if echo else None

    _run_go(
        ["mod", "tidy"],
        work,
        env,
        f"resolving modules for {build.name} {build.version}",
        log,
        progress("downloading modules for"),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{build.name}-", dir=target.parent))
    try:
        # -v names each package as it is compiled: the progress lines show how far the build is.
        args = ["build", "-v", "-trimpath", "-ldflags", build.ldflags, "-o", str(staging) + "/"]
        if build.tags:
            args += ["-tags", build.tags]
        what = f"building {build.name} {build.version}"
        _run_go([*args, *build.packages], work, env, what, log, progress("building"))
        for filename, (module, paths) in build.module_files.items():
            root = _module_dir(module, work, env)
            (staging / filename).write_text("---\n".join((root / p).read_text() for p in paths))
        missing = [b for b in build.binaries if not (staging / b).exists()]
        if missing:
            raise DevClusterError(f"The {build.name} build finished without producing {', '.join(missing)}; see {log}.")
        (staging / ".complete").write_text(
            json.dumps({"version": build.version, "seconds": round(time.monotonic() - started, 1)})
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if echo:
        print(f"built {build.name} {build.version} in {time.monotonic() - started:.0f}s", flush=True)
    return target


def _module_dir(module: str, cwd: Path, env: dict[str, str]) -> Path:
    proc = subprocess.run(
        ["go", "mod", "download", "-json", module], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    try:
        return Path(json.loads(proc.stdout)["Dir"])
    except (json.JSONDecodeError, KeyError):
        raise DevClusterError(f"Could not locate the downloaded module {module}: {proc.stderr.strip()}") from None


# --- The pinned builds -------------------------------------------------------------------------

_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[A-Za-z0-9._-]+)\s*=>\s*\./staging/", re.MULTILINE)


def kubernetes_staging_modules(version: str) -> list[str]:
    """The staging modules that ``k8s.io/kubernetes@v<version>``'s go.mod replaces with local paths."""
    go_version()
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@v{version}"],
        capture_output=True,
        text=True,
        env=_go_env(False),
        check=False,
        cwd=tempfile.gettempdir(),
    )
    info = {}
    if proc.stdout.strip():
        try:
            info = json.loads(proc.stdout)
        except json.JSONDecodeError:
            info = {}
    if proc.returncode != 0 or "GoMod" not in info:
        detail = info.get("Error") or proc.stderr.strip()
        if any(hint in detail for hint in _NETWORK_HINTS):
            raise DevClusterError(
                "Could not reach the Go module proxy to fetch k8s.io/kubernetes; "
                "check the network or GOPROXY and run again."
            )
        raise DevClusterError(f"Could not download k8s.io/kubernetes v{version}: {detail}")
    modules = _STAGING_REPLACE.findall(Path(info["GoMod"]).read_text())
    if not modules:
        raise DevClusterError(f"k8s.io/kubernetes v{version}'s go.mod lists no staging modules; is the version right?")
    return modules


CONTROL_PLANE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
NODE_COMMANDS = ("kubelet", "kube-proxy")


def kubernetes_build(
    version: str = versions.KUBERNETES_VERSION,
    *,
    name: str = "kubernetes",
    commands: tuple[str, ...] = CONTROL_PLANE_COMMANDS,
) -> GoBuild:
    """Commands of ``k8s.io/kubernetes`` in one shared compile: the control plane by default, or the
    node's kubelet and kube-proxy (``kubernetes_node_build``)."""
    major, minor, _patch = version.split(".")
    staging_version = f"v0.{minor}.{_patch}"
    replaces = "\n".join(f"\t{m} => {m} {staging_version}" for m in kubernetes_staging_modules(version))
    go_mod = (
        f"module infragenius.local/{name}\n\ngo 1.26.0\n\n"
        f"require k8s.io/kubernetes v{version}\n\nreplace (\n{replaces}\n)\n"
    )
    tools = (
        "//go:build tools\n\npackage tools\n\nimport (\n"
        + "".join(f'\t_ "k8s.io/kubernetes/cmd/{c}"\n' for c in commands)
        + ")\n"
    )
    stamp = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        stamp += [
            f"-X {pkg}.gitVersion=v{version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return GoBuild(
        name=name,
        version=version,
        go_mod=go_mod,
        sources={"tools.go": tools},
        packages=tuple(f"k8s.io/kubernetes/cmd/{c}" for c in commands),
        ldflags="-s -w " + " ".join(stamp),
        tags="selinux,notest",
    )


def kubernetes_node_build(version: str = versions.KUBERNETES_VERSION) -> GoBuild:
    """kubelet and kube-proxy, for the devcluster's real node; same wrapper module as the control plane."""
    return kubernetes_build(version, name="kubernetes-node", commands=NODE_COMMANDS)


def coredns_build(version: str = versions.COREDNS_VERSION) -> GoBuild:
    """CoreDNS, the cluster DNS of the real node (its module has no replace lines)."""
    go_mod = f"module infragenius.local/coredns\n\ngo 1.26.0\n\nrequire github.com/coredns/coredns v{version}\n"
    tools = '//go:build tools\n\npackage tools\n\nimport _ "github.com/coredns/coredns"\n'
    return GoBuild(
        name="coredns",
        version=version,
        go_mod=go_mod,
        sources={"tools.go": tools},
        packages=("github.com/coredns/coredns",),
    )


def etcd_build(version: str = versions.ETCD_VERSION) -> GoBuild:
    """etcd from a wrapper main, because server/v3's own go.mod has replace lines."""
    go_mod = f"module infragenius.local/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 v{version}\n"
    main = (
        'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n"
    )
    return GoBuild(name="etcd", version=version, go_mod=go_mod, sources={"main.go": main}, packages=(".",))


def kwok_build(version: str = versions.KWOK_VERSION) -> GoBuild:
    """kwok, the fake kubelet that moves pods on fake nodes through their lifecycle."""
    go_mod = f"module infragenius.local/kwok\n\ngo 1.26.0\n\nrequire sigs.k8s.io/kwok v{version}\n"
    tools = '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/kwok/cmd/kwok"\n'
    return GoBuild(
        name="kwok",
        version=version,
        go_mod=go_mod,
        sources={"tools.go": tools},
        packages=("sigs.k8s.io/kwok/cmd/kwok",),
        ldflags=f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v{version}",
        # kwok's own default stages (what kwokctl feeds it): nodes become Ready, pods Running/Ready,
        # Job pods Succeeded, deleted pods go away.
        module_files={
            "stages.yaml": (
                f"sigs.k8s.io/kwok@v{version}",
                (
                    "kustomize/stage/node/fast/node-initialize.yaml",
                    "kustomize/stage/pod/fast/pod-ready.yaml",
                    "kustomize/stage/pod/fast/pod-complete.yaml",
                    "kustomize/stage/pod/fast/pod-delete.yaml",
                ),
            )
        },
    )


def ollama_build(version: str = versions.OLLAMA_VERSION) -> GoBuild:
    """Ollama, CPU only: ggml and its CPU backend compile through cgo (needs gcc and g++)."""
    go_mod = f"module infragenius.local/ollama\n\ngo 1.26.0\n\nrequire github.com/ollama/ollama v{version}\n"
    tools = '//go:build tools\n\npackage tools\n\nimport _ "github.com/ollama/ollama"\n'
    return GoBuild(
        name="ollama",
        version=version,
        go_mod=go_mod,
        sources={"tools.go": tools},
        packages=("github.com/ollama/ollama",),
        ldflags=f"-s -w -X github.com/ollama/ollama/version.Version={version}",
        cgo=True,
    )


def ensure_ollama(echo: bool = True) -> Path:
    """Path of the ollama binary, built once from Go modules."""
    cached = _cached_dir("ollama", versions.OLLAMA_VERSION)
    return (cached or ensure_built(ollama_build(), echo=echo)) / "ollama"


def helm_build(version: str = versions.HELM_VERSION) -> GoBuild:
    """Helm 3, told which Kubernetes version it renders for (its default without ldflags is v1.20)."""
    go_mod = f"module infragenius.local/helm\n\ngo 1.26.0\n\nrequire helm.sh/helm/v3 v{version}\n"
    tools = '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v3/cmd/helm"\n'
    minor = versions.KUBERNETES_VERSION.split(".")[1]
    return GoBuild(
        name="helm",
        version=version,
        go_mod=go_mod,
        sources={"tools.go": tools},
        packages=("helm.sh/helm/v3/cmd/helm",),
        ldflags=(
            f"-s -w -X helm.sh/helm/v3/internal/version.version=v{version}"
            f" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
            f" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}"
        ),
    )


def ensure_helm(echo: bool = True) -> Path:
    """Path of the helm binary, built once from Go modules."""
    cached = _cached_dir("helm", versions.HELM_VERSION)
    return (cached or ensure_built(helm_build(), echo=echo)) / "helm"


def vegeta_build(version: str = versions.VEGETA_VERSION) -> GoBuild:
    """Vegeta, the HTTP load generator benchmarks/server_load.py drives (constant-rate attacks)."""
    go_mod = f"module infragenius.local/vegeta\n\ngo 1.26.0\n\nrequire github.com/tsenart/vegeta/v12 v{version}\n"
    tools = '//go:build tools\n\npackage tools\n\nimport _ "github.com/tsenart/vegeta/v12"\n'
    return GoBuild(
        name="vegeta",
        version=version,
        go_mod=go_mod,
        sources={"tools.go": tools},
        packages=("github.com/tsenart/vegeta/v12",),
        ldflags=f"-s -w -X main.Version=v{version}",
    )


def ensure_vegeta(echo: bool = True) -> Path:
    """Path of the vegeta binary, built once from Go modules."""
    cached = _cached_dir("vegeta", versions.VEGETA_VERSION)
    return (cached or ensure_built(vegeta_build(), echo=echo)) / "vegeta"


@dataclass(frozen=True)
class Binaries:
    """Paths of every binary the local cluster runs."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    kwok_stages: Path


def _cached_dir(name: str, version: str) -> Path | None:
    path = cache_root() / "bin" / f"{name}-{version}"
    return path if (path / ".complete").exists() else None


@dataclass(frozen=True)
class NodeBinaries:
    """Paths of the real node's programs built from Go modules (containerd, runc and CNI come from Debian)."""

    kubelet: Path
    kube_proxy: Path
    coredns: Path


def ensure_node_binaries(echo: bool = True) -> NodeBinaries:
    """Build the real node's kubelet, kube-proxy and CoreDNS if the cache lacks them."""
    node = _cached_dir("kubernetes-node", versions.KUBERNETES_VERSION) or ensure_built(
        kubernetes_node_build(), echo=echo
    )
    coredns = _cached_dir("coredns", versions.COREDNS_VERSION) or ensure_built(coredns_build(), echo=echo)
    return NodeBinaries(kubelet=node / "kubelet", kube_proxy=node / "kube-proxy", coredns=coredns / "coredns")


def ensure_binaries(echo: bool = True) -> Binaries:
    """Build whatever is missing from the cache; a warm cache touches neither Go nor the network."""
    k8s = _cached_dir("kubernetes", versions.KUBERNETES_VERSION) or ensure_built(kubernetes_build(), echo=echo)
    etcd = _cached_dir("etcd", versions.ETCD_VERSION) or ensure_built(etcd_build(), echo=echo)
    kwok = _cached_dir("kwok", versions.KWOK_VERSION) or ensure_built(kwok_build(), echo=echo)
    return Binaries(
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kube_scheduler=k8s / "kube-scheduler",
        kubectl=k8s / "kubectl",
        etcd=etcd / "etcd",
        kwok=kwok / "kwok",
        kwok_stages=kwok / "stages.yaml",
    )
