"""Workloads for the real node: pinned to it, tolerating its taint, running the locally built test image."""

from __future__ import annotations

from typing import Any

# Shared with the demo's broken shop (scenarios.break_namespace_real).
from infragenius_devtools.devcluster.scenarios import TESTBOX_IMAGE, on_real_node

__all__ = ["TESTBOX_IMAGE", "deployment", "exec_probe", "on_real_node", "shell"]


def deployment(name: str, container: dict[str, Any], **pod_spec: Any) -> dict[str, Any]:
    """A one-replica Deployment of ``container`` (image defaults to the test image) on the real node."""
    labels = {"app": name}
    container = {"name": name, "image": TESTBOX_IMAGE, "imagePullPolicy": "IfNotPresent", **container}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": on_real_node({"containers": [container], **pod_spec}),
            },
        },
    }


def shell(script: str) -> dict[str, Any]:
    return {"command": ["/bin/sh", "-c", script]}


def exec_probe(path: str, period: int = 2, failures: int = 1) -> dict[str, Any]:
    return {"exec": {"command": ["cat", path]}, "periodSeconds": period, "failureThreshold": failures}
