"""`infragenius serve` as a child process on free loopback ports, for the e2e tests and the load benchmark."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from infragenius_devtools.support import free_port, stop_process


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    health_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str) -> float:
        """The sum of the metric's series on /metrics; ValueError when it has none."""
        found = [
            float(line.rsplit(" ", 1)[1])
            for line in httpx.get(f"http://127.0.0.1:{self.health_port}/metrics", timeout=10).text.splitlines()
            if line.startswith(name + " ") or line.startswith(name + "{")
        ]
        if not found:
            raise ValueError(f"{name} is not in /metrics")
        return sum(found)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        return stop_process(self.process, timeout)


def launch(env: Mapping[str, str], log: Path) -> ServerProcess:
    """Start it with ``env`` (plus its own host and ports); the caller waits for ``ready()``."""
    port, health_port = free_port(), free_port()
    full = {
        **env,
        "INFRAGENIUS_SERVER_HOST": "127.0.0.1",
        "INFRAGENIUS_SERVER_PORT": str(port),
        "INFRAGENIUS_SERVER_HEALTH_PORT": str(health_port),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "infragenius.cli", "serve"],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return ServerProcess(process, port, health_port, log)
