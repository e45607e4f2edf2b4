"""Workloads for the real node: pinned to it, tolerating its taint, running the locally built test image."""

from __future__ import annotations

from typing import Any

from infragenius_devtools.devcluster.node import NODE_LABEL

TESTBOX_IMAGE = "infragenius.local/testbox:bookworm"


def on_real_node(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """``pod_spec`` placed on the real node only (kwok nodes would only pretend to run it)."""
    return {
        **pod_spec,
        "nodeSelector": {NODE_LABEL: "true"},
        "tolerations": [{"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
        "terminationGracePeriodSeconds": 1,
    }


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
