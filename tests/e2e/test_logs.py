"""Container logs against a real API server whose nodes have no kubelet (kwok): the "logs unavailable" path.

The API server really proxies ``pods/log`` to the node's kubelet and really answers with an error, so this
is the exact answer an operator gets for a node whose kubelet is down. RBAC is real too: the operator's
service account holds the generated ClusterRole (with ``pods/log`` get), and one without it is refused.
Real log lines need a real kubelet: see tests/e2e/real_logs.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config

from infragenius import rbac
from infragenius.analysis.runner import analyze
from infragenius.gather.kube import KubeGatherer
from infragenius.gather.logs import SOURCE, LogOptions
from infragenius.models.analysis import AnalysisSpec
from infragenius.snapshot import GatherStatus
from infragenius_devtools.devcluster import scenarios as workloads
from tests.e2e.analysis_support import analysis, wait_phase
from tests.e2e.conftest import E2ECluster
from tests.e2e.support import service_account_kubeconfig

pytestmark = pytest.mark.e2e


def crash_looping(cluster: E2ECluster, core: client.CoreV1Api, namespace: str, app: str = "web") -> str:
    """A Deployment's pod on a kwok node, reported (as a kubelet would) as crash-looping; its name."""
    workloads.apply(cluster.kubectl, namespace, workloads.deployment(app, 1, custom_status=True))
    (pod,) = workloads.wait_pods(core, namespace, f"app={app}", 1)
    workloads.patch_failure(core, pod, "CrashLoopBackOff")
    return str(pod.metadata.name)


def api_for(kubeconfig: str) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=kubeconfig)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def operator_api(operator_kubeconfig: str) -> Iterator[client.ApiClient]:
    """The API as the operator sees it: the generated ClusterRole, nothing more."""
    yield from api_for(operator_kubeconfig)


async def test_logs_a_kubelet_cannot_serve_are_a_missing_source_and_named_in_the_evidence(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_api: client.ApiClient
) -> None:
    pod = crash_looping(cluster, core, namespace)
    options = LogOptions(timeout=5.0)

    started = time.monotonic()
    outcome = await analyze(KubeGatherer(operator_api), AnalysisSpec(), namespace, logs=options)
    elapsed = time.monotonic() - started

    log = outcome.snapshot.logs[(namespace, pod, "app")]
    print(f"\npods/log of a pod on a kwok node, after {elapsed:.2f}s: {log.error}")
    assert log.previous and log.lines == () and log.error is not None
    # The API server's own answer (e.g. 500 "dial tcp ... connection refused", or 400 for a node without
    # an address), not the operator's: authorisation passed.
    assert not log.error.startswith(("401", "403")), log.error
    # The API server names the kubelet URL it tried: the bounds and previous=true were passed on.
    assert all(p in log.error for p in ("previous=true", "tailLines=200", "limitBytes=65536")), log.error
    report = outcome.snapshot.result(SOURCE)
    assert report is not None and report.status is GatherStatus.no_data and report.count == 0, report
    assert report.error is not None and f"{namespace}/{pod}/app" in report.error
    assert [(r.source, r.status) for r in outcome.missing] == [(SOURCE, GatherStatus.no_data)]
    crash = next(f for f in outcome.findings if "CrashLoopBackOff" in f.title)
    evidence = {e.source: e.value for e in crash.evidence}
    assert evidence["log:app (previous run)"] == f"{pod}: unavailable: {log.error}"
    assert elapsed < 30, elapsed  # bounded by the per-read timeout, not by the node


async def test_without_pods_log_rights_the_source_is_an_error_and_the_analysis_still_completes(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str
) -> None:
    pod = crash_looping(cluster, core, namespace)
    rules = [*rbac.gather_rules()]  # everything the LISTs need, but not pods/log
    path = Path(service_account_kubeconfig(cluster.api, cluster.kubeconfig, namespace, "no-logs", rules))
    try:
        for api in api_for(str(path)):
            outcome = await analyze(KubeGatherer(api), AnalysisSpec(), namespace, logs=LogOptions())
    finally:
        path.unlink()
        client.RbacAuthorizationV1Api(cluster.api).delete_cluster_role_binding(f"{namespace}-no-logs")
        client.RbacAuthorizationV1Api(cluster.api).delete_cluster_role(f"{namespace}-no-logs")

    report = outcome.snapshot.result(SOURCE)
    assert report is not None and report.status is GatherStatus.error, report
    assert report.error is not None and "403 Forbidden" in report.error and "pods/log" in report.error
    assert [r.source for r in outcome.missing] == [SOURCE]
    crash = next(f for f in outcome.findings if "CrashLoopBackOff" in f.title)
    assert {e.source: e.value for e in crash.evidence}["log:app (previous run)"].startswith(f"{pod}: unavailable: 403")


async def test_no_log_is_read_when_logs_are_off(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_api: client.ApiClient
) -> None:
    crash_looping(cluster, core, namespace)
    outcome = await analyze(KubeGatherer(operator_api), AnalysisSpec(), namespace, logs=None)
    assert outcome.snapshot.result(SOURCE) is None and not outcome.snapshot.logs
    assert outcome.missing == []


def test_the_operator_reports_unavailable_logs_without_degrading(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator: KopfRunner
) -> None:
    """The whole operator (default settings: logs on): the run completes, status lists the gap as no_data,
    Degraded stays False (a node's kubelet is not the operator's dependency), the finding names the gap."""
    pod = crash_looping(cluster, core, namespace)
    workloads.apply(cluster.kubectl, namespace, analysis("logs"))
    status = wait_phase(cluster, namespace, "logs", ("Completed", "Failed"))["status"]
    assert status["phase"] == "Completed", status
    (missing,) = status["missing"]
    assert (missing["source"], missing["status"]) == (SOURCE, "no_data"), missing
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "False", degraded
    assert f"could not read {SOURCE}" in status["summary"]
    crash = next(f for f in status["findings"] if "CrashLoopBackOff" in f["title"])
    value = {e["source"]: e["value"] for e in crash["evidence"]}["log:app (previous run)"]
    assert value.startswith(f"{pod}: unavailable: "), value
