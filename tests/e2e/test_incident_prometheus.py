"""IncidentReports that query Prometheus. Each test runs its own operator, allowed to query the Prometheus
its spec names (INFRAGENIUS_PROMETHEUS_ALLOWED_URLS), so none shares test_incident.py's module-wide one."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from infragenius_devtools.devcluster import scenarios
from tests.e2e.analysis_support import running_operator
from tests.e2e.conftest import E2ECluster
from tests.e2e.test_incident import incident_report, wait_report


def test_error_rate_step_becomes_a_metric_anomaly(
    cluster: E2ECluster, namespace: str, operator_kubeconfig: str, prometheus: Any
) -> None:
    from tests.e2e.prometheus_support import T_END

    query = (
        'sum(rate(slo_requests_errors{scenario="breaching"}[5m])) / '
        'sum(rate(slo_requests_total{scenario="breaching"}[5m]))'
    )
    spec = {
        "start": (T_END - dt.timedelta(hours=3)).isoformat().replace("+00:00", "Z"),
        "end": T_END.isoformat().replace("+00:00", "Z"),
        "prometheus": {
            "url": prometheus.url,
            "queries": [{"name": "checkout-errors", "query": query, "kind": "errorRate", "minChange": 0.005}],
        },
    }
    # A spec may name a Prometheus only from the operator's allowlist.
    with running_operator(operator_kubeconfig, INFRAGENIUS_PROMETHEUS_ALLOWED_URLS=json.dumps([prometheus.url])):
        scenarios.apply(cluster.kubectl, namespace, incident_report("errors", spec))
        status = wait_report(cluster, namespace, "errors")["status"]
    assert status["phase"] == "Completed" and status["missing"] == [], status
    anomalies = [e for e in status["timeline"] if e["kind"] == "MetricAnomaly"]
    assert len(anomalies) == 1, status["timeline"]
    # The data set steps from 0.05% to 2% errors 60 minutes before T_END; rate()[5m] shows it within 5 minutes.
    at = dt.datetime.fromisoformat(anomalies[0]["time"].replace("Z", "+00:00"))
    assert T_END - dt.timedelta(minutes=61) <= at <= T_END - dt.timedelta(minutes=54), at
    rose = re.fullmatch(r"checkout-errors rose from ([0-9.]+)% to ([0-9.]+)%", anomalies[0]["summary"])
    assert rose is not None, anomalies[0]["summary"]
    # Means of the two segments: about 0.05% before (a few points of the 5m ramp included), 2% after.
    assert float(rose.group(1)) < 0.1 and float(rose.group(2)) == pytest.approx(2.0, rel=0.05)
    assert status["impact"]["errorRate"] == pytest.approx(0.02, rel=0.05)
    assert re.search(r"Error rate: (1\.9|2\.0)[0-9]%", status["postmortem"]["markdown"])
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "False", degraded


def test_unreachable_prometheus_degrades_the_report(
    cluster: E2ECluster, namespace: str, operator_kubeconfig: str
) -> None:
    from infragenius_devtools.support import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    spec = {
        "since": "1h",
        "prometheus": {"url": dead, "queries": [{"name": "errors", "query": "vector(1)", "kind": "errorRate"}]},
    }
    with running_operator(operator_kubeconfig, INFRAGENIUS_PROMETHEUS_ALLOWED_URLS=json.dumps([dead])):
        scenarios.apply(cluster.kubectl, namespace, incident_report("blind", spec))
        status = wait_report(cluster, namespace, "blind")["status"]
    assert status["phase"] == "Completed" and any(m.startswith("prometheus errors") for m in status["missing"]), status
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "PrometheusUnavailable", degraded
    assert degraded["message"].startswith("Prometheus errors: ")  # the query's name, then the error
