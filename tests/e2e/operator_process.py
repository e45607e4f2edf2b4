"""The operator as a real process (``python -m infragenius.cli operator``), for tests that kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from infragenius.devcluster.services import free_port
from tests.e2e.prometheus_support import stop_process
from tests.e2e.support import wait_for


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def ready(self) -> bool:
        try:
            return self.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

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

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_process(self.process)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_operator(kubeconfig: str, log: Path, *, timeout: float = 60, **env: str) -> OperatorProcess:
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INFRAGENIUS_")},
        "KUBECONFIG": kubeconfig,
        "INFRAGENIUS_HEALTH_PORT": str(port),
        "INFRAGENIUS_LOG_FORMAT": "json",
        **env,
    }
    handle = log.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "infragenius.cli", "operator"],
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=environment,
    )
    handle.close()
    operator = OperatorProcess(process, port, log)
    try:
        wait_for(
            lambda: process.poll() is not None or operator.ready(),
            timeout=timeout,
            what=f"the operator on :{port} to be ready",
        )
    except BaseException:
        operator.stop()
        raise
    if process.poll() is not None:
        raise AssertionError(f"the operator exited with {process.returncode}:\n{operator.output()[-3000:]}")
    return operator


def completed_events(items: list[Any]) -> dict[str, int]:
    """Analysis name -> how many AnalysisCompleted events the operator posted for it."""
    counts: dict[str, int] = {}
    for event in items:
        if event.reason == "AnalysisCompleted" and event.involved_object.kind == "Analysis":
            name = event.involved_object.name
            counts[name] = counts.get(name, 0) + (event.count or 1)
    return counts
