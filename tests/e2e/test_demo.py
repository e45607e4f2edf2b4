"""`make demo` (scripts/demo.py) on the session's local cluster: the shop's crash loop and OOM kill run for
real on the real node, and the findings show the crashed container's own log lines.

The demo waits on the kubelet (a second crash-loop restart takes a minute or two), so this takes a few
minutes; it runs in a namespace of its own, as the demo's `shop` is used by other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import E2ECluster

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "demo-shop"


def test_the_demo_shows_a_real_crash_and_the_log_lines_that_explain_it(
    cluster: E2ECluster, real_node: dict[str, str]
) -> None:
    if cluster.local is None:
        pytest.skip("the demo starts (or reuses) a local devcluster by name; this cluster is not one")
    env = {**os.environ, "CLUSTER": cluster.local.name, "DEMO_NAMESPACE": NAMESPACE}
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "demo.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
    finally:
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-4000:]
    node = real_node["name"]
    # The crash loop is the kubelet's, and its own stderr explains it.
    assert f"(ran for real on {node})" in out, out[-4000:]
    assert "| FATAL: cannot connect to payments-db:5432: connection refused" in out, out[-4000:]
    assert "OOMKilled" in out, out[-4000:]
    assert f"Pods that ran for real on {node}: cart-" in out, out[-4000:]
