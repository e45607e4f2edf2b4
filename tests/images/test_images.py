"""``make images``: real builds (root, debootstrap, umoci, skopeo; minutes on a cold cache, seconds warm).

The images are checked as OCI archives (config, files, manifests) and by running their rootfs in a
chroot: honest smoke tests of what is inside. Running them as pods is the real node's business.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infragenius_devtools import images

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "operator" / "infragenius" / "stack" / "templates"


@pytest.fixture(scope="module")
def built() -> dict[str, images.BuiltImage]:
    return images.build_images(echo=True)


@pytest.fixture(scope="module")
def rootfs(built: dict[str, images.BuiltImage], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: images.unpack_archive(image.archive, tmp_path_factory.mktemp(name)) for name, image in built.items()}


def _in_rootfs(rootfs: Path, *args: str, user: str, env: dict[str, str]) -> list[str]:
    """A command line running ``args`` in ``rootfs`` as ``user`` with /proc and /dev, mounts private to it."""
    script = (
        'set -e; R="$1"; U="$2"; shift 2; mount -t proc proc "$R/proc"; mount --rbind /dev "$R/dev"; '
        'exec chroot --userspec="$U" "$R" "$@"'
    )
    pairs = [f"{k}={v}" for k, v in env.items()]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(rootfs), user,
            "env", "-i", *pairs, *args]  # fmt: skip


def _run_in(rootfs: Path, *args: str, user: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = _in_rootfs(rootfs, *args, user=user, env={"PATH": images.STD_PATH, **(env or {})})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _config(image: images.BuiltImage) -> dict:
    config = images.archive_config(image.archive)["config"]
    assert isinstance(config, dict)
    return config


def _env(config: dict) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config.get("Env") or [])


def _dockerfile_runtime() -> dict[str, object]:
    """ENTRYPOINT, CMD, USER, EXPOSE and ENV of the Dockerfile's last stage."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stage = text.rsplit("\nFROM ", 1)[1]
    found: dict[str, object] = {"ENV": {}}
    for line in stage.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword in ("ENTRYPOINT", "CMD"):
            found[keyword] = json.loads(rest)
        elif keyword == "USER":
            found["USER"] = rest.strip()
        elif keyword == "EXPOSE":
            found["EXPOSE"] = {f"{port}/tcp" for port in rest.split()}
        elif keyword == "ENV":
            env = found["ENV"]
            assert isinstance(env, dict)
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
    return found


# --- (a) the operator image is the Dockerfile's -----------------------------------------------------------


def test_operator_image_matches_the_dockerfile(built: dict[str, images.BuiltImage]) -> None:
    image = built["operator"]
    assert image.ref == f"ghcr.io/infragenius/infragenius-operator:{images.operator_version()}"
    dockerfile = _dockerfile_runtime()
    config = _config(image)
    assert config["Entrypoint"] == dockerfile["ENTRYPOINT"]
    assert config["Cmd"] == dockerfile["CMD"]
    assert config["User"] == dockerfile["USER"]
    assert set(config["ExposedPorts"]) == dockerfile["EXPOSE"]
    env = _env(config)
    wanted = dockerfile["ENV"]
    assert isinstance(wanted, dict)
    for name, value in wanted.items():
        if name == "PATH":
            assert env["PATH"].startswith(value.split(":$PATH")[0] + ":")
        else:
            assert env[name] == value, name


def test_operator_image_holds_the_operator_distribution_only(built: dict[str, images.BuiltImage]) -> None:
    files = images.archive_files(built["operator"].archive)
    site = "opt/infragenius/lib/python3.11/site-packages/"
    dist_infos = {f.split("/")[5] for f in files if f.startswith(site) and ".dist-info" in f}
    assert any(re.fullmatch(r"infragenius-0\.1\.0\.dist-info", d) for d in dist_infos), sorted(dist_infos)
    assert not any(d.startswith("infragenius_devtools") for d in dist_infos)
    assert not any("infragenius_devtools" in f for f in files)
    # Slimmed: no apt lists or package caches in any layer.
    assert not any(
        f.startswith(("var/lib/apt/lists/", "var/cache/apt/archives/")) and f.endswith(".deb") for f in files
    )
    assert not any(f.startswith("usr/share/man/man") for f in files)


# --- (b) manifests and the cache -----------------------------------------------------------------------------


def test_manifests_record_package_versions(built: dict[str, images.BuiltImage]) -> None:
    expected = {
        "operator": ("python3", r"3\.11\.2-.*"),
        "postgres": ("postgresql-15", r"15\.\d+-.*"),
        "redis": ("redis-server", r"5:7\.0\.\d+-.*"),
        "ollama": ("libstdc++6", r"12\..*"),
        "testbox": ("bash", r"5\.2.*"),
    }
    for name, image in built.items():
        manifest = json.loads(image.manifest.read_text())
        assert manifest["ref"] == image.ref
        assert manifest["archive_bytes"] == image.archive.stat().st_size
        if name in expected:
            package, version = expected[name]
            assert re.fullmatch(version, manifest["debian_packages"][package]), (name, package)
            assert "coreutils" in manifest["debian_packages"]
        else:
            assert manifest["debian_packages"] == {}  # pause: one static binary
    python = json.loads(built["operator"].manifest.read_text())["python_packages"]
    assert python["infragenius"] == "0.1.0"
    assert {"kopf", "psycopg", "redis"} <= set(python)


def test_a_second_call_is_a_cache_hit(built: dict[str, images.BuiltImage]) -> None:
    # No timing bound: the call waits on the cache lock while another process builds. Unchanged archives
    # (same file, same mtime) show nothing was rebuilt.
    before = {name: image.archive.stat().st_mtime_ns for name, image in built.items()}
    again = images.ensure_images(echo=False)
    assert again == {image.ref: image.archive for image in built.values()}
    assert {name: image.archive.stat().st_mtime_ns for name, image in built.items()} == before


def test_archives_name_their_images(built: dict[str, images.BuiltImage]) -> None:
    """``ctr images import`` names an oci-archive's image after index.json's ref.name annotation."""
    import tarfile

    for image in built.values():
        with tarfile.open(image.archive) as tar:
            member = tar.extractfile("index.json")
            assert member is not None
            index = json.load(member)
        assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == image.ref


# --- (c) the rootfs runs ---------------------------------------------------------------------------------------


def test_operator_entrypoint_runs(rootfs: dict[str, Path], built: dict[str, images.BuiltImage]) -> None:
    env = _env(_config(built["operator"]))
    done = _run_in(rootfs["operator"], "infragenius", "--help", user="10001:10001", env=env)
    assert done.returncode == 0, done.stderr
    assert "operator" in done.stdout
    done = _run_in(
        rootfs["operator"], "python", "-c", "import infragenius, kopf, psycopg, redis", user="10001", env=env
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture()
def postgres(rootfs: dict[str, Path], built: dict[str, images.BuiltImage]) -> Iterator[dict[str, str]]:
    template = (TEMPLATES / "postgres.yaml.j2").read_text()
    assert "runAsUser: 70" in template and "pg_isready" in template
    env = {
        **_env(_config(built["postgres"])),
        "POSTGRES_USER": "infragenius",
        "POSTGRES_DB": "infragenius",
        "POSTGRES_PASSWORD": "s3cret",
        "PGDATA": "/var/lib/postgresql/data/pgdata",  # as the stack template sets it
        "PGPORT": "55432",  # not the host's 5432
    }
    config = _config(built["postgres"])
    cmd = _in_rootfs(rootfs["postgres"], *config["Entrypoint"], *config["Cmd"], user=config["User"], env=env)
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield env
    finally:
        server.send_signal(signal.SIGINT)
        try:
            out, _ = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            out, _ = server.communicate()
        print(out)


def test_postgres_initdb_start_and_pg_isready(postgres: dict[str, str], rootfs: dict[str, Path]) -> None:
    ready = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # The stack template's readiness probe, as uid 70.
        ready = _run_in(rootfs["postgres"], "pg_isready", "-U", "infragenius", "-d", "infragenius", user="70:70",
                        env=postgres)  # fmt: skip
        if ready.returncode == 0 and "accepting" in ready.stdout:
            break
        time.sleep(1)
    assert ready is not None and ready.returncode == 0, (ready.stdout, ready.stderr)
    # Password auth over TCP (the host rule initdb added), as the operator connects. pg_isready may have
    # answered the socket-only server of the init phase (as in the official image): retry while it restarts.
    url = "postgresql://infragenius:s3cret@127.0.0.1:55432/infragenius"
    for _ in range(60):
        query = _run_in(rootfs["postgres"], "psql", url, "-tAc", "select current_user, current_database()",
                        user="70:70", env=postgres)  # fmt: skip
        if query.returncode == 0:
            break
        time.sleep(0.5)
    assert query.stdout.strip() == "infragenius|infragenius", query.stderr
    wrong = _run_in(rootfs["postgres"], "psql", url.replace("s3cret", "wrong"), "-c", "select 1", user="70:70",
                    env=postgres)  # fmt: skip
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    data = rootfs["postgres"] / "var/lib/postgresql/data/pgdata"
    assert data.stat().st_uid == 70
    assert "listen_addresses = '*'" in (data / "postgresql.conf").read_text()


def test_redis_answers_ping_as_the_template_runs_it(
    rootfs: dict[str, Path], built: dict[str, images.BuiltImage]
) -> None:
    template = (TEMPLATES / "redis.yaml.j2").read_text()
    assert "runAsUser: 999" in template and "requirepass $REDIS_PASSWORD" in template
    # The template's `sh -c` script, on a port the host does not use.
    script = (
        'exec redis-server - --port 56379 --save "" --appendonly no --maxmemory 256mb '
        "--maxmemory-policy allkeys-lru <<EOF\nrequirepass $REDIS_PASSWORD\nEOF\n"
    )
    env = {**_env(_config(built["redis"])), "REDIS_PASSWORD": "pw"}
    cmd = _in_rootfs(rootfs["redis"], "sh", "-c", script, user=_config(built["redis"])["User"], env=env)
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pong = None
        for _ in range(60):
            pong = _run_in(rootfs["redis"], "redis-cli", "-p", "56379", "--no-auth-warning", "-a", "pw", "ping",
                           user="999:999")  # fmt: skip
            if pong.stdout.strip() == "PONG":
                break
            time.sleep(0.5)
        assert pong is not None and pong.stdout.strip() == "PONG", (pong.stdout, pong.stderr)
        denied = _run_in(rootfs["redis"], "redis-cli", "-p", "56379", "ping", user="999:999")
        assert "NOAUTH" in denied.stdout + denied.stderr
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_ollama_binary_runs_as_uid_1000(rootfs: dict[str, Path], built: dict[str, images.BuiltImage]) -> None:
    config = _config(built["ollama"])
    assert config["Entrypoint"] == ["/bin/ollama"] and config["Cmd"] == ["serve"]
    assert _env(config)["OLLAMA_HOST"] == "0.0.0.0:11434"
    done = _run_in(rootfs["ollama"], "/bin/ollama", "--version", user="1000:1000", env=_env(config))
    assert done.returncode == 0, done.stderr
    assert "0.11.4" in done.stdout + done.stderr
    models = rootfs["ollama"] / "var/lib/ollama/models"
    assert models.stat().st_uid == 1000


def test_pause_is_one_static_binary(rootfs: dict[str, Path], built: dict[str, images.BuiltImage]) -> None:
    files = [f for f in images.archive_files(built["pause"].archive) if f not in ("", ".")]
    assert files == ["pause"]
    assert _config(built["pause"])["Entrypoint"] == ["/pause"]
    version = subprocess.run([str(rootfs["pause"] / "pause"), "-v"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and version.stdout.startswith("pause.c v3.10")
    # It waits for a signal and exits 0 on SIGTERM (what the kubelet sends).
    proc = subprocess.Popen([str(rootfs["pause"] / "pause")])
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_testbox_makes_real_failures(rootfs: dict[str, Path]) -> None:
    assert _run_in(rootfs["testbox"], "bash", "-c", "exit 1", user="0:0").returncode == 1
    hog = _run_in(rootfs["testbox"], "sh", "-c", "command -v tail timeout sleep", user="65534:65534")
    assert hog.returncode == 0, hog.stderr
    assert os.path.exists(rootfs["testbox"] / "bin" / "bash")


def test_layers_keep_ownership(rootfs: dict[str, Path]) -> None:
    """Built as root, so the layers carry the owners the images run with (not the builder's uid)."""
    owners = {
        ("operator", "opt/infragenius/bin/python"): 0,
        ("postgres", "run/postgresql"): 70,
        ("postgres", "var/lib/postgresql/data"): 70,
        ("redis", "data"): 999,
        ("ollama", "var/lib/ollama/models"): 1000,
        ("ollama", "home/ollama"): 1000,
    }
    for (name, path), uid in owners.items():
        assert (rootfs[name] / path).lstat().st_uid == uid, (name, path)
    passwd = (rootfs["operator"] / "etc" / "passwd").read_text()
    assert "infragenius:x:10001:10001:" in passwd
    assert not (rootfs["postgres"] / "etc/ssl/private/ssl-cert-snakeoil.key").exists()


def _digest(archive: Path) -> str:
    import tarfile

    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        return str(json.load(member)["manifests"][0]["digest"])


@pytest.mark.parametrize("name", ["testbox", "pause"])
def test_a_rebuild_gives_the_same_image(name: str, built: dict[str, images.BuiltImage], tmp_path: Path) -> None:
    """Clamped mtimes, fixed created dates, no build-host files: the same inputs give the same digest."""
    entry = built[name].archive.parent
    digest = _digest(built[name].archive)
    aside = tmp_path / "aside"
    entry.rename(aside)
    try:
        again = images.build_images([name], echo=False)[name]
        assert again.archive == built[name].archive
        assert _digest(again.archive) == digest
    finally:
        if entry.exists():
            shutil.rmtree(entry)
        aside.rename(entry)
