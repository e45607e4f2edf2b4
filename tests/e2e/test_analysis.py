"""Analysis end to end: the operator (KopfRunner) against the real cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client

from infragenius_devtools.devcluster import scenarios as workloads
from tests.e2e.analysis_support import analysis, by_problem, get_analysis, wait_phase
from tests.e2e.conftest import E2ECluster
from tests.e2e.support import service_account_kubeconfig, wait_for

pytestmark = pytest.mark.e2e


def test_broken_namespace_yields_the_expected_findings(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator: KopfRunner
) -> None:
    workloads.break_namespace(cluster.kubectl, core, namespace)
    workloads.apply(cluster.kubectl, namespace, analysis("diagnose", {"maxFindings": 100}))
    done = wait_phase(cluster, namespace, "diagnose", ("Completed", "Failed"))
    status = done["status"]
    assert status["phase"] == "Completed", status
    found = by_problem(status)

    crash = found[("pod", "Deployment", "checkout")]
    assert crash["severity"] == "critical"
    assert crash["affected"] == 2
    assert any("CrashLoopBackOff" in e["value"] for e in crash["evidence"])
    assert crash["owners"] == [] or crash["resource"]["kind"] == "Deployment"

    oom = found[("pod", "Deployment", "recommender")]
    assert any("OOMKilled" in e["value"] for e in oom["evidence"])
    pull = found[("pod", "Deployment", "payments")]
    assert any("ImagePullBackOff" in e["value"] for e in pull["evidence"])

    unschedulable = found[("pod", "Pod", "batch-huge")]
    assert any("Insufficient cpu" in e["value"] for e in unschedulable["evidence"])

    assert found[("configmap", "Deployment", "cart")]["severity"] == "critical"
    assert found[("service", "Service", "legacy")]["severity"] in ("warning", "critical")
    assert found[("ingress", "Ingress", "storefront")]["severity"] == "critical"
    quota = found[("deployment", "Deployment", "search")]
    assert any("exceeded quota" in e["value"] for e in quota["evidence"])

    # The healthy Service in front of crashing pods is reported as having no ready endpoints.
    assert found[("service", "Service", "checkout")]["severity"] == "critical"
    # Most severe first; counts and the summary agree with the list.
    ranks = {"critical": 0, "warning": 1, "info": 2}
    assert [ranks[f["severity"]] for f in status["findings"]] == sorted(
        ranks[f["severity"]] for f in status["findings"]
    )
    assert status["counts"]["critical"] == sum(f["severity"] == "critical" for f in status["findings"])
    assert status["summary"].startswith(f"{status['counts']['critical']} critical")
    assert status["totalFindings"] == len(status["findings"]) and status["truncated"] is False
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == done["metadata"]["generation"]
    assert status["timings"]["gatherSeconds"] > 0 and status["timings"]["detectSeconds"] >= 0

    # kubectl understands it: printer columns and the Ready condition.
    table = cluster.kubectl("get", "analyses", "-n", namespace).stdout
    assert "Completed" in table and "diagnose" in table
    cluster.kubectl("wait", "--for=condition=Ready", "analysis/diagnose", "-n", namespace, "--timeout=5s")
    # Kopf posts events from a background queue, shortly after the status write.
    wait_for(
        lambda: any(
            e.reason == "AnalysisCompleted" and e.type == "Normal"
            for e in core.list_namespaced_event(namespace, field_selector="involvedObject.name=diagnose").items
        ),
        timeout=15,
        what="an AnalysisCompleted event on the Analysis",
    )


def test_healthy_namespace_has_no_warnings(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator: KopfRunner
) -> None:
    workloads.healthy_namespace(cluster.kubectl, core, namespace)
    # Let the endpointslice and disruption controllers catch up, as they would in any cluster.
    wait_for(
        lambda: (core.list_namespaced_endpoints(namespace).items or [None])[0] is not None,
        timeout=30,
        what="endpoints",
    )
    policy = client.PolicyV1Api(cluster.api)
    wait_for(
        lambda: (policy.read_namespaced_pod_disruption_budget("web", namespace).status.disruptions_allowed or 0) >= 1,
        timeout=30,
        what="PDB to allow disruptions",
    )
    workloads.apply(cluster.kubectl, namespace, analysis("check"))
    status = wait_phase(cluster, namespace, "check", ("Completed", "Failed"))["status"]
    assert status["phase"] == "Completed"
    noisy = [f for f in status["findings"] if f["severity"] in ("critical", "warning")]
    assert noisy == [], yaml.safe_dump(noisy)
    assert status["counts"]["critical"] == 0 and status["counts"]["warning"] == 0
    assert status["summary"].startswith(f"No problems in {namespace}")


def test_missing_target_namespace_fails_once_with_a_clear_message(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator: KopfRunner
) -> None:
    workloads.apply(cluster.kubectl, namespace, analysis("lost", {"targetNamespace": "no-such-namespace"}))
    status = wait_phase(cluster, namespace, "lost", ("Failed", "Completed"))["status"]
    assert status["phase"] == "Failed"
    assert status["summary"] == "target namespace 'no-such-namespace' does not exist"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "TargetNotFound")
    # A permanent failure is not retried: no second attempt rewrites the status or posts another event.
    time.sleep(3)
    assert get_analysis(cluster, namespace, "lost")["status"]["completedAt"] == status["completedAt"]
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=lost").items
    assert [(e.reason, e.count or 1) for e in events if e.reason == "TargetNotFound"] == [("TargetNotFound", 1)]


def test_api_server_rejects_invalid_specs_with_clear_messages(cluster: E2ECluster, namespace: str, crds: None) -> None:
    cases = {
        "a detector cannot be both included and excluded": {"detectors": {"include": ["pod"], "exclude": ["pod"]}},
        "interval must be at least 1m": {"interval": "10s"},
        'Unsupported value: "loud"': {"minSeverity": "loud"},
        'unknown field "spec.bogus"': {"bogus": True},
        "should be less than or equal to 500": {"maxFindings": 5000},
    }
    for message, spec in cases.items():
        reply = cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(analysis("bad", spec)), check=False
        )
        assert reply.returncode != 0, spec
        assert message in reply.stderr, (spec, reply.stderr)


def test_rerun_annotation_and_spec_change_run_again(cluster: E2ECluster, namespace: str, operator: KopfRunner) -> None:
    workloads.apply(cluster.kubectl, namespace, analysis("again"))
    first = wait_phase(cluster, namespace, "again", ("Completed",))["status"]["runId"]
    cluster.kubectl("annotate", "analysis", "again", "-n", namespace, "infragenius.io/rerun=1")
    second = wait_for(
        lambda: (
            (s := get_analysis(cluster, namespace, "again")["status"]).get("runId") != first
            and s.get("phase") == "Completed"
            and s
        ),
        timeout=30,
        what="a second run after the annotation",
    )
    assert second["rerunToken"] == "1"
    cluster.kubectl(
        "patch", "analysis", "again", "-n", namespace, "--type=merge", "-p", '{"spec":{"minSeverity":"warning"}}'
    )
    third = wait_for(
        lambda: (
            (a := get_analysis(cluster, namespace, "again"))["status"].get("observedGeneration") == 2
            and a["status"]["phase"] == "Completed"
            and a["status"]
        ),
        timeout=30,
        what="a run for generation 2",
    )
    assert third["runId"] not in (first, second["runId"])


def test_cli_records_forbidden_sources_as_missing(cluster: E2ECluster, namespace: str) -> None:
    """A service account that may list pods but not ingresses: the CLI reports the gap and still analyses."""
    rules = [{"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list"]}]
    path = Path(service_account_kubeconfig(cluster.api, cluster.kubeconfig, namespace, "limited", rules))
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "infragenius.cli",
                "analyze",
                "-n",
                namespace,
                "--kubeconfig",
                str(path),
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        path.unlink()
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    missing = {m["source"]: m for m in report["missing"]}
    assert "Pod" not in missing
    assert missing["Ingress"]["status"] == "error" and missing["Ingress"]["error"].startswith("403")
    assert "could not read" in report["summary"]


def test_cluster_wide_analysis_covers_every_namespace(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator: KopfRunner
) -> None:
    other = f"{namespace[:50]}-b"
    cluster.kubectl("create", "namespace", other)
    app = f"cw-{namespace[-5:]}"  # unique to this test, so other tests' namespaces cannot crowd it out
    try:
        for ns in (namespace, other):
            workloads.apply(cluster.kubectl, ns, workloads.deployment(app, 1, custom_status=True))
            for pod in workloads.wait_pods(core, ns, f"app={app}", 1):
                workloads.patch_failure(core, pod, "CrashLoopBackOff")
        wide = {"allNamespaces": True, "labelSelector": f"app={app}", "maxFindings": 500}
        workloads.apply(cluster.kubectl, namespace, analysis("everywhere", wide))
        status = wait_phase(cluster, namespace, "everywhere", ("Completed", "Failed"))["status"]
        assert status["phase"] == "Completed", status
        crashing = {f["resource"]["namespace"] for f in status["findings"] if f["detector"] == "pod"}
        assert {namespace, other} <= crashing, status["findings"]
        assert status["counts"]["critical"] >= 2 and status["summary"].startswith(
            f"{status['counts']['critical']} critical"
        )
        # Either the whole cluster or one namespace, never both.
        refused = cluster.kubectl(
            "apply",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            "-",
            check=False,
            input=yaml.safe_dump(analysis("both", {"allNamespaces": True, "targetNamespace": other})),
        )
        assert refused.returncode != 0 and "allNamespaces and targetNamespace are exclusive" in refused.stderr
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)
