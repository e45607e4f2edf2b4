"""OCI images for the devcluster's real node, built from Debian packages without Docker (``make images``).

Every image but ``pause`` starts from one ``debootstrap --variant=minbase bookworm`` base, itself an OCI
image: each image unpacks it (the copy), installs its Debian packages in a chroot and repacks, so the
base layer is the same blob in every archive and containerd stores it once. Archives are written with
``skopeo copy oci:DIR:TAG oci-archive:FILE:REF``, so ``ctr -n k8s.io images import FILE`` names the image REF.

Each image is cached under ``<cache>/images/<name>-<key>/`` where ``key`` hashes its inputs (the recipe,
the base, the project sources, the ollama binary, pause.c); ``manifest.json`` beside the archive records
the exact Debian package versions installed (and, for the operator, the Python distributions).
Building needs root (debootstrap, chroot, file ownership in the layers) and ``debootstrap umoci skopeo``.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from infragenius_devtools.devcluster import versions
from infragenius_devtools.devcluster.build import BuildProgress, cache_root, run_logged
from infragenius_devtools.devcluster.errors import DevClusterError

ROOT = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Release date of Debian 12.0 (2023-06-10): file mtimes are clamped to it and configs are "created" then,
# so a rebuild from the same packages and sources gives the same layers.
SOURCE_DATE_EPOCH = 1686355200
# Bump when a recipe changes in a way the hashed inputs do not show (the keys already hash the source
# of the base recipe, _slim and each image's customize function).
RECIPE_VERSION = "1"
# Debian's python3 in bookworm; the host builds the wheels with the same interpreter version.
DEBIAN_PYTHON = "3.11.2"
PAUSE_TAG = "3.10"
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_TOOLS = ("debootstrap", "umoci", "skopeo", "unshare", "chroot")


class ImageBuildError(DevClusterError):
    """An image could not be built (the message says which step and where its log is)."""


def images_root() -> Path:
    return cache_root() / "images"


def operator_version() -> str:
    """The chart's appVersion: the operator image tag the chart deploys."""
    chart = yaml.safe_load((ROOT / "charts" / "infragenius-operator" / "Chart.yaml").read_text())
    return str(chart["appVersion"])


@dataclass(frozen=True)
class ImageConfig:
    """The OCI image config fields we set (``umoci config``)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    env: tuple[str, ...] = (f"PATH={STD_PATH}",)
    ports: tuple[str, ...] = ()
    workdir: str = ""
    labels: tuple[str, ...] = ()

    def umoci_args(self) -> list[str]:
        args = ["--clear=config.env", "--clear=config.entrypoint", "--clear=config.cmd"]
        args += [f"--config.entrypoint={a}" for a in self.entrypoint]
        args += [f"--config.cmd={a}" for a in self.cmd]
        args += [f"--config.env={e}" for e in self.env]
        args += [f"--config.exposedports={p}" for p in self.ports]
        args += [f"--config.label={label}" for label in self.labels]
        if self.user:
            args.append(f"--config.user={self.user}")
        if self.workdir:
            args.append(f"--config.workingdir={self.workdir}")
        return args


@dataclass(frozen=True)
class ImageSpec:
    """One image: its reference, what goes in (Debian packages, a customize step) and its config."""

    name: str
    ref: str
    summary: str
    config: ImageConfig
    packages: tuple[str, ...] = ()
    from_base: bool = True
    #: Runs with the unpacked rootfs (packages already installed); may add files, users, checks.
    customize: Callable[[_Work], None] | None = None
    #: Extra inputs for the cache key (file hashes, versions); called before building.
    inputs: Callable[[], dict[str, str]] = field(default=lambda: {})


# --- Running commands with progress lines ---------------------------------------------------------------


class _StepProgress(BuildProgress):
    """BuildProgress for apt, debootstrap and pip output: one line every 20s naming the last package."""

    _PREFIXES = (
        "Get:",
        "Unpacking ",
        "Setting up ",
        "Preparing to unpack ",
        "I: Retrieving ",
        "I: Validating ",
        "I: Extracting ",
        "I: Unpacking ",
        "I: Configuring ",
        "Collecting ",
        "Downloading ",
        "Building wheel",
        "Saved ",
        "Processing ",
    )

    @staticmethod
    def item(line: str) -> tuple[str, str] | None:
        line = line.strip()
        if line.startswith(_StepProgress._PREFIXES):
            verb, _, what = line.removeprefix("I: ").partition(" ")
            return verb, what[:100]
        return None


def _run(
    cmd: list[str], *, step: str, log: Path, echo: bool, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    """Run ``cmd``, appending its output to ``log``; progress lines while it runs; error with the log's tail."""
    progress = _StepProgress(step, echo=None) if echo else None
    code, out = run_logged(cmd, log, progress, cwd=cwd, env=env)
    if code != 0:
        tail = "".join(out[-20:])
        raise ImageBuildError(f"{step} failed (exit {code}); log: {log}\n{tail}")
    return "".join(out)


def _say(echo: bool, message: str) -> None:
    if echo:
        print(message, flush=True)


# --- Chroot work on an unpacked rootfs ------------------------------------------------------------------

_CHROOT_ENV = {
    "PATH": STD_PATH,
    "DEBIAN_FRONTEND": "noninteractive",
    "DEBCONF_NONINTERACTIVE_SEEN": "true",
    "LC_ALL": "C.UTF-8",
    "HOME": "/root",
    "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_CACHE_DIR": "1",
}

# Mounts live in a private mount namespace (unshare -m): they vanish with the command, even on a crash,
# and the shared apt downloads and package lists are bind-mounted in rather than copied into a layer.
_CHROOT_SCRIPT = """set -e
R="$1"; shift
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
touch "$R/etc/resolv.conf"
mount --bind /etc/resolv.conf "$R/etc/resolv.conf"
mkdir -p "$R/var/cache/apt/archives" "$R/var/lib/apt/lists"
mount --bind "$ARCHIVES" "$R/var/cache/apt/archives"
mount --bind "$LISTS" "$R/var/lib/apt/lists"
exec chroot ${USERSPEC:+--userspec=$USERSPEC} "$R" "$@"
"""


@dataclass
class _Work:
    """An image being built: its rootfs, its log, and a way to run commands inside it."""

    name: str
    rootfs: Path
    log: Path
    echo: bool
    #: What a customize step found out for the manifest (e.g. the operator's Python distributions).
    extra: dict[str, object] = field(default_factory=dict)

    def chroot(self, *args: str, step: str, userspec: str = "", env: dict[str, str] | None = None) -> str:
        root = images_root()
        run_env = {**_CHROOT_ENV, **(env or {})}
        run_env["ARCHIVES"] = str(root / "apt" / "archives")
        run_env["LISTS"] = str(root / "apt" / "lists")
        run_env["USERSPEC"] = userspec
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _CHROOT_SCRIPT, "sh", str(self.rootfs)]
        return _run([*cmd, *args], step=f"{self.name}: {step}", log=self.log, echo=self.echo, env=run_env)

    def apt_install(self, packages: Iterable[str]) -> None:
        names = list(packages)
        _say(self.echo, f"  {self.name}: apt-get install {' '.join(names)}")
        self.chroot("apt-get", "install", "-y", "--no-install-recommends", *names, step=f"installing {names[0]}")

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        target = self.rootfs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)


# --- OCI layout helpers ---------------------------------------------------------------------------------


def _iso(epoch: int = SOURCE_DATE_EPOCH) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clamp_mtimes(rootfs: Path) -> None:
    """SOURCE_DATE_EPOCH for a rootfs: nothing newer than the epoch, so layers do not depend on build time."""
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for entry in [dirpath, *(os.path.join(dirpath, n) for n in (*dirnames, *filenames))]:
            st = os.lstat(entry)
            if st.st_mtime > SOURCE_DATE_EPOCH:
                os.utime(entry, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH), follow_symlinks=False)


def _repack(work: _Work, layout: Path, tag: str, bundle: Path) -> None:
    _clamp_mtimes(bundle / "rootfs")
    _run(
        ["umoci", "repack", f"--history.created={_iso()}", "--history.created_by=infragenius-dev images",
         f"--image={layout}:{tag}", str(bundle)],
        step=f"{work.name}: umoci repack",
        log=work.log,
        echo=work.echo,
    )  # fmt: skip


def _slim(rootfs: Path) -> None:
    """What no container needs: docs, apt state, logs, caches, the build host's name and resolver."""
    globs = [
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "usr/share/lintian/*",
        "var/cache/apt/*.bin",
        # debootstrap's own downloads and lists (later runs bind-mount the shared ones over these paths).
        "var/cache/apt/archives/*.deb",
        "var/lib/apt/lists/*_*",
        "var/cache/debconf/*-old",
        "var/lib/dpkg/*-old",
        "var/cache/ldconfig/aux-cache",
        "var/log/*.log",
        "var/log/apt/*",
        "tmp/*",
        "root/.cache",
        "etc/hostname",
        "usr/sbin/policy-rc.d",
    ]
    # Of the docs only the copyright files stay (the dpkg excludes do the same for later installs).
    # (some doc dirs are symlinks to another package's: their files are reached once, through that one.)
    docs = [
        p for p in (rootfs / "usr" / "share" / "doc").glob("*/*") if p.name != "copyright" and not p.parent.is_symlink()
    ]
    for path in [*docs, *(p for pattern in globs for p in rootfs.glob(pattern))]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    resolv = rootfs / "etc" / "resolv.conf"
    if resolv.exists() or resolv.is_symlink():
        resolv.unlink()
    resolv.write_text("")  # the runtime mounts its own; this one only hides the build host's
    # Containers get /dev from the runtime; device nodes in a layer only trouble rootless unpacking.
    dev = rootfs / "dev"
    if dev.is_dir():
        for path in dev.iterdir():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _dpkg_versions(rootfs: Path) -> dict[str, str]:
    out = subprocess.run(
        [
            "dpkg-query",
            f"--admindir={rootfs}/var/lib/dpkg",
            "-W",
            "-f",
            "${db:Status-Abbrev}\t${Package}\t${Version}\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    versions_: dict[str, str] = {}
    for line in out.splitlines():
        status, package, version = line.split("\t")
        if status.startswith("ii"):
            versions_[package] = version
    return versions_


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_hash(paths: Iterable[Path], relative_to: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        skip = "__pycache__" in path.parts or any(part.endswith(".egg-info") for part in path.parts)
        if skip or path.suffix == ".pyc" or not path.is_file():
            continue
        digest.update(str(path.relative_to(relative_to)).encode() + b"\0" + _sha256(path).encode() + b"\0")
    return digest.hexdigest()


def _key(data: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# --- The shared base ------------------------------------------------------------------------------------

BASE_SOURCES = f"""Types: deb
URIs: {MIRROR}
Suites: {SUITE} {SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: {SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# dpkg leaves docs (but copyright), man pages and translations out of every later install.
DPKG_EXCLUDES = """path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""

APT_CONF = """APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
"""


def _source(*functions: Callable[..., object]) -> str:
    """A hash of the functions' source: editing a recipe rebuilds what it makes, and only that."""
    return hashlib.sha256("".join(inspect.getsource(f) for f in functions).encode()).hexdigest()


def _base_key() -> str:
    return _key({"recipe": RECIPE_VERSION, "suite": SUITE, "mirror": MIRROR, "sources": BASE_SOURCES,
                 "dpkg": DPKG_EXCLUDES, "apt": APT_CONF, "epoch": SOURCE_DATE_EPOCH,
                 "code": _source(_base_layout, _slim, _clamp_mtimes)})  # fmt: skip


def _base_layout(echo: bool) -> Path:
    """The OCI layout holding ``base``: debootstrap minbase + security updates, built once."""
    key = _base_key()
    target = images_root() / f"base-{SUITE}-{key}"
    if (target / ".complete").exists():
        return target / "layout"
    root = images_root()
    for sub in ("apt/archives/partial", "apt/lists/partial", "apt/debootstrap"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".base-", dir=root))
    staging.chmod(0o755)
    try:
        layout, bundle, log = staging / "layout", staging / "bundle", staging / "build.log"
        work = _Work("base", bundle / "rootfs", log, echo)
        started = time.monotonic()
        _say(echo, f"images: debootstrap {SUITE} minbase (once; cached in {target}) ...")
        _run(["umoci", "init", f"--layout={layout}"], step="base: umoci init", log=log, echo=echo)
        _run(["umoci", "new", f"--image={layout}:base"], step="base: umoci new", log=log, echo=echo)
        _run(["umoci", "unpack", f"--image={layout}:base", str(bundle)], step="base: unpack", log=log, echo=echo)
        _run(
            ["debootstrap", "--variant=minbase", f"--cache-dir={root / 'apt' / 'debootstrap'}", SUITE,
             str(work.rootfs), MIRROR],
            step="base: debootstrap",
            log=log,
            echo=echo,
        )  # fmt: skip
        (work.rootfs / "etc" / "apt" / "sources.list").unlink(missing_ok=True)
        work.write("/etc/apt/sources.list.d/debian.sources", BASE_SOURCES)
        work.write("/etc/dpkg/dpkg.cfg.d/infragenius-excludes", DPKG_EXCLUDES)
        work.write("/etc/apt/apt.conf.d/90infragenius", APT_CONF)
        _say(echo, "images: base: apt-get update && upgrade (security updates)")
        work.chroot("apt-get", "update", step="apt-get update")
        work.chroot("apt-get", "-y", "upgrade", step="apt-get upgrade")
        packages = _dpkg_versions(work.rootfs)
        _slim(work.rootfs)
        _repack(work, layout, "base", bundle)
        shutil.rmtree(bundle)
        (staging / "packages.json").write_text(json.dumps(packages, indent=1, sort_keys=True) + "\n")
        (staging / ".complete").write_text(json.dumps({"seconds": round(time.monotonic() - started, 1)}))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        _say(echo, f"images: base ready in {time.monotonic() - started:.0f}s")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target / "layout"


# --- The images -----------------------------------------------------------------------------------------


def _operator_inputs() -> dict[str, str]:
    files = [ROOT / "pyproject.toml", ROOT / "README.md", *(ROOT / "operator").rglob("*")]
    return {"project": _tree_hash(files, ROOT), "python": DEBIAN_PYTHON}


def _host_wheels(work: _Work, dest: Path) -> None:
    """Wheels of the operator and its dependencies, built on the host with Debian's own python3 (3.11.2),
    so environment markers resolve as in the image (pip in the chroot cannot verify TLS)."""
    host_python = Path("/usr/bin/python3")
    found = subprocess.run([str(host_python), "-c", "import platform; print(platform.python_version())"],
                           capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    if found != DEBIAN_PYTHON:
        raise ImageBuildError(
            f"The operator image resolves its wheels with the host's Debian python3 {DEBIAN_PYTHON} "
            f"(the image's interpreter); /usr/bin/python3 is {found or 'missing'}. Build on Debian 12."
        )
    venv = images_root() / f"host-python-{DEBIAN_PYTHON}"
    if not (venv / "bin" / "pip").exists():
        _run([str(host_python), "-m", "venv", str(venv)], step="operator: host venv", log=work.log, echo=work.echo)
    # Only the operator distribution: the sources the root pyproject.toml builds, copied so the build
    # leaves no egg-info in the checkout (devtools/ is a separate distribution and stays out).
    src = work.log.parent / "src"
    src.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", src / "pyproject.toml")
    shutil.copy2(ROOT / "README.md", src / "README.md")
    shutil.copytree(ROOT / "operator", src / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _say(work.echo, "  operator: pip wheel (host, Debian python3) ...")
    _run(
        [str(venv / "bin" / "pip"), "wheel", "--disable-pip-version-check", "--wheel-dir", str(dest), str(src)],
        step="operator: pip wheel",
        log=work.log,
        echo=work.echo,
        env={**os.environ, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH), "PIP_NO_CACHE_DIR": "1"},
    )


def _customize_operator(work: _Work) -> None:
    wheels = work.rootfs / "tmp" / "wheels"
    _host_wheels(work, wheels)
    # Like the Dockerfile's runtime stage.
    work.chroot("groupadd", "--system", "--gid", "10001", "infragenius", step="groupadd")
    work.chroot("useradd", "--system", "--uid", "10001", "--gid", "10001", "--home-dir", "/nonexistent",
                "--shell", "/usr/sbin/nologin", "infragenius", step="useradd")  # fmt: skip
    _say(work.echo, "  operator: venv /opt/infragenius, pip install --no-index (offline, the host's wheels)")
    work.chroot("python3", "-m", "venv", "/opt/infragenius", step="python3 -m venv")
    work.chroot("/opt/infragenius/bin/pip", "install", "--no-index", "--find-links", "/tmp/wheels", "--no-compile",
                "infragenius", step="pip install")  # fmt: skip
    # Hash-based .pyc files: valid whatever the mtimes (clamped before repack).
    work.chroot("/opt/infragenius/bin/python", "-m", "compileall", "-q", "--invalidation-mode", "checked-hash",
                "/opt/infragenius", step="compileall")  # fmt: skip
    shutil.rmtree(wheels)
    freeze = work.chroot("/opt/infragenius/bin/python", "-m", "pip", "list", "--format=json", step="pip list")
    listing = [line for line in freeze.splitlines() if line.startswith("[")][-1]
    work.extra["python_packages"] = {p["name"]: p["version"] for p in json.loads(listing)}
    # The image must run: the entrypoint and the imports the operator needs at start.
    work.chroot("/opt/infragenius/bin/infragenius", "--help", step="infragenius --help", userspec="10001:10001",
                env={"HOME": "/tmp"})  # fmt: skip
    work.chroot("/opt/infragenius/bin/python", "-c", "import infragenius, kopf, psycopg, redis", step="imports",
                userspec="10001:10001", env={"HOME": "/tmp"})  # fmt: skip


POSTGRES_ENTRYPOINT = r"""#!/bin/bash
# A small stand-in for the official postgres image's docker-entrypoint.sh: on first start initdb into
# $PGDATA with POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, listen on '*', password auth from
# anywhere (scram-sha-256), run /docker-entrypoint-initdb.d/*.sql|*.sh; then exec postgres.
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
export PGDATA

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi
if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
	# As root: own the data and socket directories, then run as the postgres user (uid 70).
	mkdir -p "$PGDATA" /var/run/postgresql
	chown -R postgres:postgres "$PGDATA" /var/run/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
		echo 'error: database is uninitialized and POSTGRES_PASSWORD is not set' >&2
		exit 1
	fi
	mkdir -p "$PGDATA"
	chmod 700 "$PGDATA"
	pwfile="$(mktemp)"
	printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
	initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" \
		--encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-}
	rm -f "$pwfile"
	echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
	echo "host all all all $POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
	# A socket-only server for the setup steps.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
			-c "CREATE DATABASE \"$POSTGRES_DB\""
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh) echo "running $f"; . "$f" ;;
			*.sql) echo "running $f"
				psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	echo 'PostgreSQL init process complete; ready for start up.'
fi
exec "$@"
"""


def _customize_postgres(work: _Work) -> None:
    # uid/gid 70 like the Alpine image the stack template was written for (runAsUser 70, fsGroup 70),
    # created before postgresql-common so its postinst keeps them.
    work.chroot("groupadd", "--system", "--gid", "70", "postgres", step="groupadd")
    work.chroot("useradd", "--system", "--uid", "70", "--gid", "70", "--home-dir", "/var/lib/postgresql",
                "--shell", "/bin/bash", "postgres", step="useradd")  # fmt: skip
    work.apt_install(["postgresql-common"])
    # No Debian-style cluster under /etc/postgresql: the entrypoint runs initdb into $PGDATA.
    conf = work.rootfs / "etc" / "postgresql-common" / "createcluster.conf"
    conf.write_text(conf.read_text().replace("#create_main_cluster = true", "create_main_cluster = false"))
    work.apt_install(["postgresql-15"])
    work.write("/usr/local/bin/docker-entrypoint.sh", POSTGRES_ENTRYPOINT, 0o755)
    # ssl-cert generated a snakeoil key pair at install: a private key baked into an image is no secret,
    # and it changed the layer on every build. initdb here does not turn SSL on.
    certs = work.rootfs / "etc" / "ssl" / "certs"
    for link in certs.iterdir():
        if link.is_symlink() and os.readlink(link).endswith("ssl-cert-snakeoil.pem"):
            link.unlink()
    (certs / "ssl-cert-snakeoil.pem").unlink(missing_ok=True)
    (work.rootfs / "etc" / "ssl" / "private" / "ssl-cert-snakeoil.key").unlink(missing_ok=True)
    for path, mode in (("/var/run/postgresql", 0o3777), ("/var/lib/postgresql/data", 0o1777)):
        target = work.rootfs / path.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        os.chown(target, 70, 70)
        target.chmod(mode)
    work.chroot("sh", "-c", "command -v pg_isready initdb postgres", step="postgres on PATH",
                env={"PATH": POSTGRES_PATH})  # fmt: skip


POSTGRES_PATH = f"/usr/lib/postgresql/15/bin:{STD_PATH}"


def _customize_redis(work: _Work) -> None:
    # uid 999 like the official image (the stack template's runAsUser), before redis-server's postinst.
    work.chroot("groupadd", "--system", "--gid", "999", "redis", step="groupadd")
    work.chroot("useradd", "--system", "--uid", "999", "--gid", "999", "--home-dir", "/data",
                "--shell", "/usr/sbin/nologin", "redis", step="useradd")  # fmt: skip
    work.apt_install(["redis-server"])
    data = work.rootfs / "data"
    data.mkdir(exist_ok=True)
    os.chown(data, 999, 999)


def _ollama_binary() -> Path:
    from infragenius_devtools.devcluster.build import ensure_ollama

    return ensure_ollama(echo=True)


def _customize_ollama(work: _Work) -> None:
    binary = _ollama_binary()
    target = work.rootfs / "usr" / "bin" / "ollama"
    shutil.copy2(binary, target)
    target.chmod(0o755)
    work.chroot("groupadd", "--gid", "1000", "ollama", step="groupadd")
    work.chroot("useradd", "--uid", "1000", "--gid", "1000", "--home-dir", "/home/ollama", "--create-home",
                "--shell", "/usr/sbin/nologin", "ollama", step="useradd")  # fmt: skip
    # The stack mounts its models volume at /var/lib/ollama (OLLAMA_MODELS=/var/lib/ollama/models).
    for path in ("var/lib/ollama/models",):
        (work.rootfs / path).mkdir(parents=True, exist_ok=True)
        for part in (work.rootfs / "var/lib/ollama", work.rootfs / path):
            os.chown(part, 1000, 1000)
    missing = work.chroot("ldd", "/usr/bin/ollama", step="ldd ollama")
    if "not found" in missing:
        raise ImageBuildError(f"ollama's shared libraries are not all in the image:\n{missing}")
    work.chroot("/usr/bin/ollama", "--version", step="ollama --version", userspec="1000:1000")


def _pause_source() -> Path:
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@v{versions.KUBERNETES_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    try:
        return Path(json.loads(proc.stdout)["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    except (json.JSONDecodeError, KeyError):
        raise ImageBuildError(f"Could not download k8s.io/kubernetes@v{versions.KUBERNETES_VERSION}: "
                              f"{proc.stderr.strip()}") from None  # fmt: skip


def _pause_inputs() -> dict[str, str]:
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True, check=False).stdout.strip()
    return {"pause.c": _sha256(_pause_source()), "gcc": gcc, "kubernetes": versions.KUBERNETES_VERSION}


def _pause_version() -> str:
    """The TAG of build/pause/Makefile at the pinned Kubernetes (the version pause prints with -v)."""
    makefile = (_pause_source().parents[1] / "Makefile").read_text()
    for line in makefile.splitlines():
        if line.startswith("TAG ?="):
            return line.split("=", 1)[1].strip()
    return PAUSE_TAG


def _customize_pause(work: _Work) -> None:
    out = work.rootfs / "pause"
    _run(["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{_pause_version()}", "-o", str(out),
          str(_pause_source())], step="pause: gcc", log=work.log, echo=work.echo)  # fmt: skip
    _run(["strip", str(out)], step="pause: strip", log=work.log, echo=work.echo)


def _ollama_inputs() -> dict[str, str]:
    return {"ollama": _sha256(_ollama_binary())}


def specs() -> dict[str, ImageSpec]:
    """Every image ``make images`` builds, by short name."""
    operator_env = (
        f"PATH=/opt/infragenius/bin:{STD_PATH}",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "HOME=/tmp",
    )
    return {
        "operator": ImageSpec(
            name="operator",
            ref=f"ghcr.io/infragenius/infragenius-operator:{operator_version()}",
            summary="the operator: Debian python3 + a venv at /opt/infragenius (mirrors the Dockerfile)",
            packages=("python3", "python3-venv"),
            customize=_customize_operator,
            inputs=_operator_inputs,
            # Must match the Dockerfile (tests/images checks entrypoint, cmd and user).
            config=ImageConfig(
                entrypoint=("infragenius",),
                cmd=("operator",),
                user="10001:10001",
                env=operator_env,
                ports=("8080/tcp", "8081/tcp"),
                labels=(
                    "org.opencontainers.image.title=infragenius-operator",
                    "org.opencontainers.image.source=https://github.com/infragenius/infragenius",
                    "org.opencontainers.image.licenses=Apache-2.0",
                ),
            ),
        ),
        "postgres": ImageSpec(
            name="postgres",
            ref="docker.io/library/postgres:15-bookworm",
            summary="Debian's postgresql-15, initdb on first start like the official image, uid 70",
            customize=_customize_postgres,
            inputs=lambda: {"entrypoint": hashlib.sha256(POSTGRES_ENTRYPOINT.encode()).hexdigest()},
            config=ImageConfig(
                entrypoint=("docker-entrypoint.sh",),
                cmd=("postgres",),
                user="70:70",
                env=(f"PATH={POSTGRES_PATH}", "PGDATA=/var/lib/postgresql/data", "LANG=C.UTF-8"),
                ports=("5432/tcp",),
                labels=("org.opencontainers.image.title=postgres",),
            ),
        ),
        "redis": ImageSpec(
            name="redis",
            ref="docker.io/library/redis:7.0-bookworm",
            summary="Debian's redis-server 7.0, uid 999",
            customize=_customize_redis,
            # The official image builds redis with protected mode off; Debian's is on without a config file.
            config=ImageConfig(
                cmd=("redis-server", "--protected-mode", "no"), user="999:999", ports=("6379/tcp",), workdir="/data"
            ),
        ),
        "ollama": ImageSpec(
            name="ollama",
            ref=f"docker.io/ollama/ollama:{versions.OLLAMA_VERSION}",
            summary="ollama built from Go modules (CPU), uid 1000",
            packages=("libstdc++6", "ca-certificates"),
            customize=_customize_ollama,
            inputs=_ollama_inputs,
            config=ImageConfig(
                entrypoint=("/bin/ollama",),
                cmd=("serve",),
                user="1000:1000",
                env=(f"PATH={STD_PATH}", "OLLAMA_HOST=0.0.0.0:11434", "HOME=/home/ollama"),
                ports=("11434/tcp",),
            ),
        ),
        "pause": ImageSpec(
            name="pause",
            ref=f"registry.k8s.io/pause:{PAUSE_TAG}",
            summary=f"pause.c of k8s.io/kubernetes v{versions.KUBERNETES_VERSION}, gcc -Os -static",
            from_base=False,
            customize=_customize_pause,
            inputs=_pause_inputs,
            config=ImageConfig(entrypoint=("/pause",), user="65535:65535", env=()),
        ),
        "testbox": ImageSpec(
            name="testbox",
            ref="infragenius.local/testbox:bookworm",
            summary="minbase Debian (coreutils, bash) for tests that need real failures",
            config=ImageConfig(cmd=("bash",)),
        ),
    }


# --- Building and caching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltImage:
    name: str
    ref: str
    archive: Path
    manifest: Path


def _image_key(spec: ImageSpec) -> str:
    return _key(
        {
            "recipe": RECIPE_VERSION,
            "ref": spec.ref,
            "packages": spec.packages,
            "config": spec.config.umoci_args(),
            "base": _base_key() if spec.from_base else None,
            "code": _source(_build, _slim, *([spec.customize] if spec.customize else [])),
            "inputs": spec.inputs(),
        }
    )


def _entry(spec: ImageSpec, key: str) -> Path:
    return images_root() / f"{spec.name}-{key}"


def cached_image(name: str) -> BuiltImage | None:
    """The cached build of ``name`` for its current inputs, or None."""
    spec = specs()[name]
    entry = _entry(spec, _image_key(spec))
    if not (entry / ".complete").exists():
        return None
    return BuiltImage(name, spec.ref, entry / f"{name}.oci.tar", entry / "manifest.json")


def _build(spec: ImageSpec, key: str, echo: bool) -> BuiltImage:
    target = _entry(spec, key)
    root = images_root()
    base = _base_layout(echo) if spec.from_base else None
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=root))
    staging.chmod(0o755)
    started = time.monotonic()
    try:
        layout, bundle, log = staging / "layout", staging / "bundle", staging / "build.log"
        work = _Work(spec.name, bundle / "rootfs", log, echo)
        _say(echo, f"images: building {spec.name} ({spec.ref}) ...")
        if base is not None:
            shutil.copytree(base, layout, symlinks=True)
            _run(["umoci", "unpack", f"--image={layout}:base", str(bundle)], step=f"{spec.name}: unpack base",
                 log=log, echo=echo)  # fmt: skip
            # Daemons must not start inside the chroot while packages install.
            work.write("/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
        else:
            _run(["umoci", "init", f"--layout={layout}"], step=f"{spec.name}: umoci init", log=log, echo=echo)
            _run(["umoci", "new", f"--image={layout}:base"], step=f"{spec.name}: umoci new", log=log, echo=echo)
            _run(["umoci", "unpack", f"--image={layout}:base", str(bundle)], step=f"{spec.name}: unpack",
                 log=log, echo=echo)  # fmt: skip
        if spec.packages:
            work.apt_install(spec.packages)
        if spec.customize is not None:
            spec.customize(work)
        packages = _dpkg_versions(work.rootfs) if spec.from_base else {}
        if spec.from_base:
            _slim(work.rootfs)
        tag = "image"
        # repack writes the bundle's rootfs over the base it was unpacked from; the config comes after.
        _repack(work, layout, tag, bundle)
        _run(["umoci", "config", f"--image={layout}:{tag}", "--no-history", f"--created={_iso()}",
              "--os=linux", "--architecture=amd64", *spec.config.umoci_args()],
             step=f"{spec.name}: umoci config", log=log, echo=echo)  # fmt: skip
        _run(["umoci", "gc", f"--layout={layout}"], step=f"{spec.name}: umoci gc", log=log, echo=echo)
        archive = staging / f"{spec.name}.oci.tar"
        _run(["skopeo", "copy", "--quiet", f"oci:{layout}:{tag}", f"oci-archive:{archive}:{spec.ref}"],
             step=f"{spec.name}: skopeo copy", log=log, echo=echo)  # fmt: skip
        manifest = {
            "name": spec.name,
            "ref": spec.ref,
            "key": key,
            "archive": archive.name,
            "archive_bytes": archive.stat().st_size,
            "suite": SUITE if spec.from_base else None,
            "source_date_epoch": SOURCE_DATE_EPOCH,
            "inputs": spec.inputs(),
            "debian_packages": packages,
            "build_seconds": round(time.monotonic() - started, 1),
        }
        manifest.update(work.extra)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        shutil.rmtree(bundle)
        shutil.rmtree(layout)
        (staging / ".complete").write_text(json.dumps({"seconds": manifest["build_seconds"]}))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _prune(spec.name, keep=target)
    size = (target / f"{spec.name}.oci.tar").stat().st_size
    _say(echo, f"images: built {spec.name} in {time.monotonic() - started:.0f}s ({size / 1e6:.1f} MB)")
    return BuiltImage(spec.name, spec.ref, target / f"{spec.name}.oci.tar", target / "manifest.json")


#: Older builds of one image kept beside the newest (another checkout may still use them).
KEEP_OLD_BUILDS = 2


def _prune(name: str, keep: Path) -> None:
    """Remove all but the newest few complete builds of ``name``: every code change makes a new
    operator image, ~90 MB each."""
    builds = [p for p in images_root().glob(f"{name}-*") if p != keep and (p / ".complete").exists()]
    for old in sorted(builds, key=lambda p: (p / ".complete").stat().st_mtime, reverse=True)[KEEP_OLD_BUILDS:]:
        shutil.rmtree(old, ignore_errors=True)


def _check_host() -> None:
    if os.geteuid() != 0:
        raise ImageBuildError("Building images needs root (debootstrap, chroot, file ownership in the layers).")
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        raise ImageBuildError(f"Missing {', '.join(missing)}: apt-get install -y debootstrap umoci skopeo")


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One build at a time per cache (two would debootstrap and write the same entries)."""
    images_root().mkdir(parents=True, exist_ok=True)
    with (images_root() / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_images(names: Iterable[str] | None = None, echo: bool = True) -> dict[str, BuiltImage]:
    """Build whatever is not cached for its current inputs; by short name."""
    all_specs = specs()
    wanted = list(names) if names else list(all_specs)
    unknown = [n for n in wanted if n not in all_specs]
    if unknown:
        raise ImageBuildError(f"Unknown image(s) {', '.join(unknown)}; known: {', '.join(all_specs)}")
    built: dict[str, BuiltImage] = {}
    with _lock():
        for name in wanted:
            spec = all_specs[name]
            key = _image_key(spec)
            entry = _entry(spec, key)
            if (entry / ".complete").exists():
                built[name] = BuiltImage(name, spec.ref, entry / f"{name}.oci.tar", entry / "manifest.json")
                continue
            _check_host()
            built[name] = _build(spec, key, echo)
    return built


def ensure_images(names: Iterable[str] | None = None, echo: bool = True) -> dict[str, Path]:
    """Image reference (what ``ctr images import`` names it) -> OCI archive, built when inputs changed.

    ``names`` are short names (``operator``, ``postgres``, ``redis``, ``ollama``, ``pause``, ``testbox``).
    """
    return {image.ref: image.archive for image in build_images(names, echo=echo).values()}


# --- Reading archives (tests, the node) -----------------------------------------------------------------


def _archive_json(tar: tarfile.TarFile, name: str) -> dict[str, object]:
    member = tar.extractfile(name.removeprefix("./"))
    assert member is not None
    return dict(json.load(member))


def _manifest(tar: tarfile.TarFile) -> dict[str, object]:
    index = _archive_json(tar, "index.json")
    manifests = index["manifests"]
    assert isinstance(manifests, list)
    digest = str(manifests[0]["digest"]).replace(":", "/")
    return _archive_json(tar, f"blobs/{digest}")


def archive_config(archive: Path) -> dict[str, object]:
    """The OCI image config (``config`` holds Entrypoint, Cmd, User, Env, ExposedPorts) of an archive."""
    with tarfile.open(archive) as tar:
        config = _manifest(tar)["config"]
        assert isinstance(config, dict)
        return _archive_json(tar, f"blobs/{str(config['digest']).replace(':', '/')}")


def archive_files(archive: Path) -> list[str]:
    """Paths in the image's layers (whiteouts included), in layer order."""
    names: list[str] = []
    with tarfile.open(archive) as tar:
        layers = _manifest(tar)["layers"]
        assert isinstance(layers, list)
        for layer in layers:
            blob = tar.extractfile(f"blobs/{str(layer['digest']).replace(':', '/')}")
            assert blob is not None
            with tarfile.open(fileobj=gzip.GzipFile(fileobj=blob), mode="r|") as inner:
                names += [member.name.removeprefix("./") for member in inner]
    return names


def unpack_archive(archive: Path, dest: Path) -> Path:
    """Unpack an archive into ``dest`` (an OCI runtime bundle); returns its rootfs. Needs root."""
    layout = dest / "layout"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci-archive:{archive}", f"oci:{layout}:image"], check=True)
    subprocess.run(["umoci", "unpack", f"--image={layout}:image", str(dest / "bundle")], check=True,
                   capture_output=True)  # fmt: skip
    return dest / "bundle" / "rootfs"
