"""Real Postgres, Redis and Ollama servers as local processes, for tests, benchmarks and the demo.

Postgres and Redis come from Debian's packages; Ollama is built from Go modules.
Each server can be stopped and started again on the same port and data, which
is how the outage tests take a component away and bring it back.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from infragenius_devtools.devcluster.errors import DevClusterError
from infragenius_devtools.support import free_port


def _wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise DevClusterError(f"{what} did not open port {port} within {timeout:.0f}s")


class LocalPostgres:
    """A throwaway Postgres cluster (initdb) on a free port; runs as the postgres user when we are root."""

    def __init__(self, directory: Path | None = None, port: int | None = None) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            raise DevClusterError("PostgreSQL is not installed; install Debian's postgresql package.")
        self.bin = Path(bins[-1]).parent
        # Its own top-level temp dir: the postgres user cannot traverse root's private temp trees.
        self.directory = directory or Path(tempfile.mkdtemp(prefix="infragenius-postgres-"))
        self.data = self.directory / "data"
        self.port = port or free_port()
        self.log = self.directory / "postgres.log"
        self._as_postgres = os.geteuid() == 0  # postgres refuses to run as root

    @property
    def url(self) -> str:
        return f"postgresql://infragenius@127.0.0.1:{self.port}/infragenius"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def init(self) -> LocalPostgres:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        if not self.data.exists():
            done = self._run("initdb", "-D", str(self.data), "-U", "infragenius", "-A", "trust", "--no-sync")
            if done.returncode != 0:
                raise DevClusterError(f"initdb failed: {done.stderr.strip()[-300:]}")
        return self

    def start(self) -> LocalPostgres:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        )
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        if done.returncode != 0:
            raise DevClusterError(f"Postgres did not start: {done.stderr.strip()[-300:]} (log: {self.log})")
        created = self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "infragenius",
            "-d",
            "postgres",
            "-tAc",
            "SELECT 1 FROM pg_database WHERE datname = 'infragenius'",
        )
        if created.stdout.strip() != "1":
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "infragenius", "infragenius")
        return self

    def stop(self, mode: str = "fast") -> None:
        """``mode`` "immediate" kills the server without a clean shutdown, as a crash or an OOM kill would."""
        done = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        if done.returncode != 0 and "Is server running?" not in done.stderr:
            raise DevClusterError(f"Postgres did not stop: {done.stderr.strip()[-300:]}")

    def psql(self, sql: str) -> str:
        done = self._run(
            "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "infragenius", "-d", "infragenius", "-tAc", sql
        )
        if done.returncode != 0:
            raise DevClusterError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()


class LocalRedis:
    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise DevClusterError("redis-server is not installed; install Debian's redis-server package.")
        self.binary = binary
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 20, "redis-server")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class LocalOllama:
    """``ollama serve`` on a free port with its own model directory, serving the tiny local model."""

    MODEL = "infragenius-tiny"

    def __init__(self, directory: Path, binary: Path) -> None:
        self.directory = directory
        self.binary = binary
        self.port = free_port()
        self.log = directory / "ollama.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "OLLAMA_HOST": f"127.0.0.1:{self.port}",
            "OLLAMA_MODELS": str(directory / "models"),
            "HOME": str(directory),
            "OLLAMA_KEEP_ALIVE": "30m",
            "OLLAMA_NUM_PARALLEL": "2",
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalOllama:
        from infragenius_devtools.devcluster.tinymodel import write_modelfile

        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(self.binary), "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DevClusterError(f"ollama serve exited; see {self.log}")
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise DevClusterError(f"ollama serve did not answer within 60s; see {self.log}")
        created = subprocess.run(
            [str(self.binary), "create", self.MODEL, "-f", str(write_modelfile(self.directory / "model"))],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if created.returncode != 0:
            raise DevClusterError(f"ollama create failed: {created.stderr.strip()[-300:]}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
