"""Restarting the operator mid-run never leaves an Analysis stuck in Running."""

from __future__ import annotations

import json

import pytest

from infragenius_devtools.devcluster import scenarios as workloads
from tests.e2e.analysis_support import analysis, get_analysis, running_operator, wait_phase
from tests.e2e.conftest import E2ECluster
from tests.e2e.support import wait_for

pytestmark = pytest.mark.e2e


def test_restart_mid_run_never_leaves_running(cluster: E2ECluster, namespace: str, operator_kubeconfig: str) -> None:
    """An operator killed mid-run leaves status Running; the next operator finishes the job."""
    with running_operator(operator_kubeconfig):
        workloads.apply(cluster.kubectl, namespace, analysis("interrupted"))
        first = wait_phase(cluster, namespace, "interrupted", ("Completed",))["status"]
    # What a crash between "Running" and the final status write leaves behind.
    cluster.kubectl(
        "patch",
        "analysis",
        "interrupted",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Running", "runId": "killed-run"}}),
    )
    assert get_analysis(cluster, namespace, "interrupted")["status"]["phase"] == "Running"
    with running_operator(operator_kubeconfig):
        after = wait_for(
            lambda: (s := get_analysis(cluster, namespace, "interrupted")["status"]).get("phase") == "Completed" and s,
            timeout=60,
            what="the restarted operator to finish the interrupted run",
        )
    # The same request (same resource, generation and cause) keeps its run id, so history writes it once.
    assert after["runId"] == first["runId"] != "killed-run"
    assert after["completedAt"] >= first["completedAt"]
    assert after["observedGeneration"] == 1
