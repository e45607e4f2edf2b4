"""Alertmanager alerts open IncidentReports through the webhook: matching labels, the window, never twice."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from kubernetes import client

from infragenius.alerts.incidents import report_name
from infragenius.models.alertmanager import Alert
from infragenius_devtools.devcluster import scenarios
from tests.e2e.analysis_support import running_operator
from tests.e2e.conftest import E2ECluster
from tests.e2e.prometheus_support import free_port
from tests.e2e.support import wait_for

pytestmark = pytest.mark.e2e

TOKEN = "e2e-incident-token"


def payload(namespace: str, fingerprint: str, starts_at: str, severity: str = "critical") -> dict[str, Any]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "CheckoutDown", "namespace": namespace, "severity": severity},
        "annotations": {"summary": "checkout is down"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }
    return {"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "infragenius", "alerts": [alert]}


def post(port: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/alertmanager", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )


def reports(cluster: E2ECluster, namespace: str) -> list[dict[str, Any]]:
    return json.loads(cluster.kubectl("get", "incidentreports", "-n", namespace, "-o", "json").stdout)["items"]


def test_a_critical_alert_opens_one_incident_report(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_kubeconfig: str
) -> None:
    cluster.kubectl("wait", "--for=condition=Established", "crd/incidentreports.infragenius.io", "--timeout=30s")
    scenarios.apply(cluster.kubectl, namespace, scenarios.deployment("checkout", 1, custom_status=True))
    pod = scenarios.wait_pods(core, namespace, "app=checkout", 1)[0]
    scenarios.patch_failure(core, pod, "CrashLoopBackOff", started_minutes_ago=3, exited_minutes_ago=0)
    starts = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
    starts_at = starts.isoformat().replace("+00:00", ".000000001Z")
    port = free_port()
    env = {
        "INFRAGENIUS_WEBHOOK_TOKEN": TOKEN,
        "INFRAGENIUS_WEBHOOK_PORT": str(port),
        "INFRAGENIUS_WEBHOOK_HOST": "127.0.0.1",
        "INFRAGENIUS_INCIDENT_ALERT_LABELS": '{"severity": "critical"}',
        "INFRAGENIUS_INCIDENT_ALERT_NAMESPACES": json.dumps([namespace]),
        "INFRAGENIUS_INCIDENT_LEAD_MINUTES": "10",
    }
    name = report_name(Alert.model_validate(payload(namespace, "fp-checkout-1", starts_at)["alerts"][0]))
    with running_operator(operator_kubeconfig, **env):
        wait_for(lambda: _healthy(port), timeout=30, what="the webhook to listen")
        # Not matching (severity=warning, no SLO label): nothing is created.
        ignored = post(port, payload(namespace, "fp-warning", starts_at, severity="warning"))
        assert ignored.status_code == 422, ignored.text
        # A namespace outside INFRAGENIUS_INCIDENT_ALERT_NAMESPACES: refused (200: a retry would be refused too).
        elsewhere = post(port, payload("kube-system", "fp-elsewhere", starts_at))
        assert elsewhere.status_code == 200, elsewhere.text
        assert elsewhere.json()["results"][0]["incident"] == "namespace-not-allowed", elsewhere.text
        assert elsewhere.json()["results"][0]["action"] == "refused"
        assert reports(cluster, "kube-system") == []
        reply = post(port, payload(namespace, "fp-checkout-1", starts_at))
        assert reply.status_code == 200, reply.text
        assert reply.json()["results"][0] == {
            "fingerprint": "fp-checkout-1",
            "status": "firing",
            "incident": "created",
            "action": "incident",
        }
        again = post(port, payload(namespace, "fp-checkout-1", starts_at))
        assert again.status_code == 200 and again.json()["results"][0]["incident"] == "duplicate"
        body = wait_for(
            lambda: next(
                (r for r in reports(cluster, namespace) if r.get("status", {}).get("phase") == "Completed"), None
            ),
            timeout=60,
            what="the alert's incident report to complete",
        )
    assert body["metadata"]["name"] == name
    spec = body["spec"]
    assert spec["start"] == (starts - dt.timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    assert spec["severity"] == "SEV1"
    assert spec["alert"] == {
        "name": "CheckoutDown",
        "fingerprint": "fp-checkout-1",
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
    }
    timeline = body["status"]["timeline"]
    assert any(e["kind"] == "Alert" and e["resource"]["name"] == "CheckoutDown" for e in timeline), timeline
    assert any(e["kind"] == "Restart" for e in timeline), timeline

    # A restarted operator has forgotten the alert; the API server still knows it (the name is taken).
    with running_operator(operator_kubeconfig, **env):
        wait_for(lambda: _healthy(port), timeout=30, what="the webhook to listen")
        repeat = post(port, payload(namespace, "fp-checkout-1", starts_at))
        assert repeat.status_code == 200 and repeat.json()["results"][0]["incident"] == "duplicate", repeat.text
    assert [r["metadata"]["name"] for r in reports(cluster, namespace)] == [name]


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_history_keeps_the_whole_report_when_status_is_bounded(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_kubeconfig: str, postgres: Any
) -> None:
    cluster.kubectl("wait", "--for=condition=Established", "crd/incidentreports.infragenius.io", "--timeout=30s")
    scenarios.apply(cluster.kubectl, namespace, scenarios.deployment("checkout", 1, custom_status=True))
    pod = scenarios.wait_pods(core, namespace, "app=checkout", 1)[0]
    # Enough distinct warnings that the postmortem's timeline outgrows the status copy (16000 characters).
    for i in range(160):
        scenarios.post_warning_event(
            core,
            namespace,
            "Pod",
            pod.metadata.name,
            "Unhealthy",
            f"Readiness probe failed: HTTP probe failed with statuscode: 503 (probe {i:03d} of the incident)",
            1,
            uid=pod.metadata.uid,
            first_seen_minutes_ago=5,
        )
    with running_operator(operator_kubeconfig, INFRAGENIUS_POSTGRES_URL=postgres.url):
        cluster.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "infragenius.io/v1alpha1",
                    "kind": "IncidentReport",
                    "metadata": {"name": "long"},
                    "spec": {"since": "1h"},
                }
            ),
        )
        status = wait_for(
            lambda: next(
                (r["status"] for r in reports(cluster, namespace) if r.get("status", {}).get("phase") == "Completed"),
                None,
            ),
            timeout=60,
            what="the report",
        )

        def stored() -> int:
            if postgres.psql("SELECT to_regclass('public.requests') IS NOT NULL") != "t":
                return 0
            value = postgres.psql(
                "SELECT coalesce(max(length(a.metadata->>'postmortem')), 0) FROM analyses a"
                " JOIN requests r ON r.id = a.request_id"
                f" WHERE r.namespace = '{namespace}' AND r.kind = 'IncidentReport'"
            )
            return int(value or 0)

        wait_for(lambda: stored() > 0, timeout=30, what="the report in history")
    copy = status["postmortem"]
    assert copy["truncated"] is True and len(copy["markdown"]) < copy["totalChars"]
    assert stored() == copy["totalChars"]
    timeline_rows = int(
        postgres.psql(
            "SELECT jsonb_array_length(a.metadata->'timeline') FROM analyses a JOIN requests r ON r.id = a.request_id"
            f" WHERE r.namespace = '{namespace}'"
        )
    )
    assert timeline_rows == status["totalTimelineEntries"] >= 160
