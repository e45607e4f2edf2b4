"""The operator as a real process (``python -m infragenius.cli operator``), for the demo and for
tests that kill it: start it on a free health port, wait for /readyz, read /metrics, stop or kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from infragenius_devtools.devcluster.errors import DevClusterError
from infragenius_devtools.support import free_port, stop_process


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @classmethod
    def start(
        cls,
        kubeconfig: str,
        log: Path,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> OperatorProcess:
        """Start it with ``KUBECONFIG`` and a free health port; ``env`` adds settings (INFRAGENIUS_*).
        ``command`` replaces ``python -m infragenius.cli operator`` (benchmarks run patched operators)."""
        port = free_port()
        environment = {k: v for k, v in os.environ.items() if k != "INFRAGENIUS_KUBECONFIG"}
        environment.update({"KUBECONFIG": kubeconfig, "INFRAGENIUS_HEALTH_PORT": str(port), **(env or {})})
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(command or [sys.executable, "-m", "infragenius.cli", "operator"]),
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return cls(process, port, log)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def ready(self) -> bool:
        try:
            return self.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60) -> OperatorProcess:
        """Until start-up is done; stops it and raises with the log's tail if it exits or times out."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise DevClusterError(
                    f"the operator did not become ready (exit code {self.process.returncode}); "
                    f"see {self.log}:\n{self.output()[-3000:]}"
                )
            time.sleep(0.2)
        return self

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for family in text_string_to_metric_families(self.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def kill(self) -> None:
        """SIGKILL: no clean-up handler runs, as in an OOM kill or a node loss."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        return stop_process(self.process, timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")
