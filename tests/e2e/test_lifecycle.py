"""Findings followed across runs on the local cluster, with history in a real Postgres.

A crash loop appears (New), persists for three runs (Open, no transition), is fixed (Resolved), comes back
within the quiet period (Reopened); a silence hides it from the counts; history holds each change once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from infragenius_devtools.devcluster import scenarios as workloads
from infragenius_devtools.devcluster.services import LocalPostgres
from tests.e2e.analysis_support import analysis, by_problem, get_analysis, running_operator
from tests.e2e.conftest import E2ECluster
from tests.e2e.support import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def history_operator(operator_kubeconfig: str, postgres: LocalPostgres) -> Iterator[KopfRunner]:
    with running_operator(operator_kubeconfig, INFRAGENIUS_POSTGRES_URL=postgres.url) as runner:
        yield runner


def run_again(cluster: E2ECluster, namespace: str, name: str, token: str) -> dict[str, Any]:
    before = get_analysis(cluster, namespace, name)["status"]["runId"]
    cluster.kubectl("annotate", "analysis", name, "-n", namespace, f"infragenius.io/rerun={token}", "--overwrite")
    return wait_for(
        lambda: (
            (s := get_analysis(cluster, namespace, name).get("status", {})).get("runId") != before
            and s.get("phase") == "Completed"
            and s
        ),
        timeout=120,
        what=f"run {token} of {name}",
    )


def crash_finding(status: dict[str, Any], finding_id: str | None = None) -> dict[str, Any] | None:
    """The crash loop, rolled up to its Deployment by the pod detector (by id once known: the fixed pod's
    restart count is a warning of its own)."""
    if finding_id is None:
        return by_problem(status).get(("pod", "Deployment", "checkout"))
    return next((f for f in status.get("findings", []) if f["id"] == finding_id), None)


def test_a_crash_loop_is_new_once_open_while_it_lasts_resolved_and_reopened(
    cluster: E2ECluster, namespace: str, history_operator: KopfRunner, postgres: LocalPostgres, tmp_path: Path
) -> None:
    core = client.CoreV1Api(cluster.api)
    workloads.apply(cluster.kubectl, namespace, workloads.deployment("checkout", 1, custom_status=True))
    (pod,) = workloads.wait_pods(core, namespace, "app=checkout", 1)
    workloads.patch_failure(core, pod, "CrashLoopBackOff")
    workloads.apply(cluster.kubectl, namespace, analysis("shop", {"lifecycle": {"quietPeriod": "1h"}}))
    status = wait_for(
        lambda: (s := get_analysis(cluster, namespace, "shop").get("status", {})).get("phase") == "Completed" and s,
        timeout=120,
        what="the first run",
    )
    first = crash_finding(status)
    assert first is not None and first["severity"] == "critical", status["findings"]
    assert first is not None, status["findings"]
    assert first["lifecycle"]["state"] == "New" and first["lifecycle"]["occurrences"] == 1
    assert status["lifecycle"]["counts"]["new"] >= 1
    table = cluster.kubectl("get", "analyses", "-n", namespace).stdout
    assert table.splitlines()[0].split()[:4] == ["NAME", "PHASE", "NEW", "CRITICAL"], table

    for n in range(1, 4):  # it persists: Open, nothing new
        status = run_again(cluster, namespace, "shop", f"persist-{n}")
        found = crash_finding(status, first["id"])
        assert found is not None and found["lifecycle"]["state"] == "Open", found
        assert found["lifecycle"]["occurrences"] == n + 1
        assert found["lifecycle"]["firstSeen"] == first["lifecycle"]["firstSeen"]
        assert status["lifecycle"]["counts"]["new"] == 0, status["lifecycle"]["counts"]

    assert pod.metadata is not None and pod.metadata.name
    workloads.patch_healthy(core, namespace, pod.metadata.name)
    status = run_again(cluster, namespace, "shop", "fixed")
    assert crash_finding(status, first["id"]) is None
    assert status["lifecycle"]["counts"]["resolved"] >= 1 and "resolved" in status["summary"], status["summary"]
    tracked = {t["id"]: t for t in status["lifecycle"]["tracked"]}
    assert tracked[first["id"]]["state"] == "Resolved" and tracked[first["id"]]["resolvedAt"]

    workloads.patch_failure(core, pod, "CrashLoopBackOff")
    status = run_again(cluster, namespace, "shop", "back")
    back = crash_finding(status, first["id"])
    assert back is not None and back["id"] == first["id"]
    assert back["lifecycle"]["state"] == "Reopened" and status["lifecycle"]["counts"]["reopened"] >= 1

    # A silence: the same finding, Open still, but out of the counts (edit the spec: a new run).
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    silence = {"findingId": first["id"], "expires": expires, "reason": "known; fixed by the next deploy", "by": "sre"}
    critical_before = status["counts"]["critical"]
    cluster.kubectl(
        "patch",
        "analysis",
        "shop",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"silences": [silence]}}),
    )
    status = wait_for(
        lambda: (
            (s := get_analysis(cluster, namespace, "shop").get("status", {})).get("observedGeneration") == 2
            and s.get("phase") == "Completed"
            and s
        ),
        timeout=120,
        what="the run after the silence",
    )
    silenced = crash_finding(status, first["id"])
    assert silenced is not None and silenced["lifecycle"]["silenced"] is True
    assert status["counts"]["critical"] == critical_before - 1
    assert status["lifecycle"]["counts"]["silenced"] == 1

    uid = get_analysis(cluster, namespace, "shop")["metadata"]["uid"]
    rows = postgres.psql(
        "SELECT to_state FROM finding_transitions"
        f" WHERE resource_uid = '{uid}' AND finding_id = '{first['id']}' ORDER BY at, id"
    )
    assert rows.splitlines() == ["New", "Resolved", "Reopened"], rows
    states = postgres.psql(
        "SELECT f.state || ':' || f.occurrences FROM findings f JOIN requests r ON r.id = f.request_id"
        f" WHERE r.resource_uid = '{uid}' AND f.finding_id = '{first['id']}' ORDER BY f.observed_at, f.id"
    )
    assert states.splitlines() == ["New:1", "Open:2", "Open:3", "Open:4", "Reopened:5", "Open:6"], states

    # Trends from that history, through the CLI.
    shown = subprocess.run(
        [sys.executable, "-m", "infragenius.cli", "history", "trends", "-n", namespace, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "INFRAGENIUS_POSTGRES_URL": postgres.url},
    )
    assert shown.returncode == 0, shown.stderr
    trends = json.loads(shown.stdout)
    top = trends["recurring"][0]
    assert (top["finding_id"], top["episodes"]) == (first["id"], 2), trends["recurring"]  # New, then Reopened
    (resolve,) = [r for r in trends["time_to_resolve"] if r["detector"] == "pod" and r["severity"] == "critical"]
    assert resolve["resolved"] == 1 and resolve["mean_seconds"] > 0
    # The last run in the bucket has the crash loop silenced: no open critical finding.
    assert trends["open_over_time"][-1]["critical"] == 0, trends["open_over_time"]
    table = subprocess.run(
        [sys.executable, "-m", "infragenius.cli", "history", "trends", "-n", namespace, "--postgres-url", postgres.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0 and "Top recurring problems" in table.stdout and first["id"] in table.stdout
    print(table.stdout, file=sys.__stdout__, flush=True)  # KopfRunner swaps sys.stdout
