"""Fixtures and helpers for tests that run the operator against the cluster."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kopf.testing import KopfRunner

from tests.e2e.conftest import E2ECluster
from tests.e2e.support import wait_for

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_operator(kubeconfig: str, **env: str) -> Iterator[KopfRunner]:
    """Kopf's test runner with the operator's settings taken from ``env`` (INFRAGENIUS_*)."""
    # Port 0: several operators (and benchmarks) may run at once on this machine.
    env = {"KUBECONFIG": kubeconfig, "INFRAGENIUS_HEALTH_PORT": "0", **env}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    runner = KopfRunner(["run", "--standalone", "--all-namespaces", "-m", "infragenius.handlers"], timeout=60)
    try:
        with runner:
            yield runner
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert runner.exception is None, runner.output[-4000:]
    assert runner.exit_code == 0, runner.output[-4000:]
    # Least privilege held: RBAC refused nothing. (Events refused because a test namespace is already
    # terminating say "unable to create new content", not 'forbidden: User "...'.)
    assert 'forbidden: User "' not in runner.output, runner.output[-4000:]


def analysis(
    name: str, spec: dict[str, Any] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "infragenius.io/v1alpha1", "kind": "Analysis", "metadata": meta, "spec": spec or {}}


def get_analysis(cluster: E2ECluster, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "analysis", name, "-n", namespace, "-o", "json").stdout)


def wait_phase(cluster: E2ECluster, namespace: str, name: str, phases: tuple[str, ...], timeout: float = 60) -> dict:
    return wait_for(
        lambda: (a := get_analysis(cluster, namespace, name)).get("status", {}).get("phase") in phases and a,
        timeout=timeout,
        what=f"analysis {name} in phase {phases}",
    )


def by_problem(status: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Most severe finding per (detector, kind, name); the list is sorted most severe first."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in status["findings"]:
        found.setdefault((f["detector"], f["resource"]["kind"], f["resource"]["name"]), f)
    return found
