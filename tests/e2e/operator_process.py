"""Helpers for tests that run the operator as a real process (see infragenius_devtools.devcluster.operator_process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infragenius_devtools.devcluster.operator_process import OperatorProcess


def start_operator(kubeconfig: str, log: Path, *, timeout: float = 60, **env: str) -> OperatorProcess:
    """JSON logs, as the chart runs it; fails the test with the log's tail if it never gets ready."""
    return OperatorProcess.start(kubeconfig, log, {"INFRAGENIUS_LOG_FORMAT": "json", **env}).wait_ready(timeout)


def completed_events(items: list[Any]) -> dict[str, int]:
    """Analysis name -> how many AnalysisCompleted events the operator posted for it."""
    counts: dict[str, int] = {}
    for event in items:
        if event.reason == "AnalysisCompleted" and event.involved_object.kind == "Analysis":
            name = event.involved_object.name
            counts[name] = counts.get(name, 0) + (event.count or 1)
    return counts
