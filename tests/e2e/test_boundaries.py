"""Operator-level boundaries, each with its own operator configuration (so none of these tests shares a
module-wide operator): target namespaces, and the Prometheus a resource may make the operator query.

A resource's spec.prometheus.url is the one address a tenant can make the operator fetch.

Only URLs on the operator's allowlist (INFRAGENIUS_PROMETHEUS_ALLOWED_URLS, plus its own Prometheus) are
queried; whatever an allowed server answers reaches status only as a status code, or as a Prometheus API
error; TLS is verified unless the operator is told otherwise. The "hostile" server here is a real HTTP
server on loopback that answers every request with a secret-looking 403 body and counts what it got.
"""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from infragenius_devtools.devcluster import scenarios as workloads
from tests.e2e.analysis_support import analysis, running_operator, wait_phase
from tests.e2e.conftest import E2ECluster
from tests.e2e.support import wait_for
from tests.e2e.test_slo import get_slo, ratio_sli, slo_review
from tests.tls_support import self_signed

CANARY = "AKIAZZCANARY0000SSRF"
BODY = json.dumps({"credentials": {"aws_access_key_id": CANARY, "password": "hunter2-" + CANARY}}).encode()


class HostileServer:
    """Answers everything with 403 and a body that must never reach a status."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.requests: list[str] = []
        hostile = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hostile.requests.append(self.path)
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def _events(cluster: E2ECluster, namespace: str) -> str:
    return cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == "Ready")


def test_a_url_off_the_allowlist_is_refused_without_a_request(
    cluster: E2ECluster, namespace: str, operator_kubeconfig: str, hostile: HostileServer
) -> None:
    with running_operator(operator_kubeconfig):
        workloads.apply(
            cluster.kubectl, namespace, slo_review("nosy", ratio_sli("healthy"), prometheus={"url": hostile.url})
        )
        workloads.apply(cluster.kubectl, namespace, analysis("nosy", {"prometheus": {"url": hostile.url + "/#"}}))
        review = wait_for(
            lambda: (
                get_slo(cluster, namespace, "nosy").get("status", {}).get("phase") == "Failed"
                and get_slo(cluster, namespace, "nosy")["status"]
            ),
            timeout=120,
            what="the SLOReview refused",
        )
        status = wait_phase(cluster, namespace, "nosy", ("Failed", "Completed"), timeout=120)["status"]
    for refused in (review, status):
        ready = _ready(refused)
        assert (ready["status"], ready["reason"]) == ("False", "PrometheusNotAllowed"), ready
        assert "INFRAGENIUS_PROMETHEUS_ALLOWED_URLS" in ready["message"]
    assert status["phase"] == "Failed"
    assert hostile.requests == []  # refused before a single request


def test_an_allowed_servers_reply_reaches_status_as_a_code_only(
    cluster: E2ECluster, namespace: str, operator_kubeconfig: str, hostile: HostileServer
) -> None:
    allowed = json.dumps([hostile.url])
    with running_operator(operator_kubeconfig, INFRAGENIUS_PROMETHEUS_ALLOWED_URLS=allowed):
        workloads.apply(
            cluster.kubectl, namespace, slo_review("probe", ratio_sli("healthy"), prometheus={"url": hostile.url})
        )
        workloads.apply(cluster.kubectl, namespace, analysis("probe", {"prometheus": {"url": hostile.url}}))
        review = wait_for(
            lambda: (
                get_slo(cluster, namespace, "probe").get("status", {}).get("phase") == "Failed"
                and get_slo(cluster, namespace, "probe")["status"]
            ),
            timeout=120,
            what="the SLOReview's failed query",
        )
        status = wait_phase(cluster, namespace, "probe", ("Completed",), timeout=120)["status"]
        events = wait_for(lambda: "QueryFailed" in _events(cluster, namespace) and _events(cluster, namespace), 60)
    assert hostile.requests, "the allowed server was queried"
    assert _ready(review)["reason"] == "QueryFailed" and "HTTP 403" in _ready(review)["message"], review
    missing = {m["source"]: m for m in status["missing"]}
    assert "HTTP 403" in missing["prometheus"]["error"], missing
    for text in (json.dumps(review), json.dumps(status), events):
        assert CANARY not in text and "hunter2" not in text


def test_tls_is_verified_unless_the_operator_trusts_the_ca(
    cluster: E2ECluster, namespace: str, operator_kubeconfig: str, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    with HostileServer(tls=(cert, key)) as server:
        allowed = json.dumps([server.url])
        with running_operator(operator_kubeconfig, INFRAGENIUS_PROMETHEUS_ALLOWED_URLS=allowed):
            workloads.apply(cluster.kubectl, namespace, analysis("untrusted", {"prometheus": {"url": server.url}}))
            untrusted = wait_phase(cluster, namespace, "untrusted", ("Completed",), timeout=120)["status"]
        assert server.requests == []  # the handshake failed: no HTTP request was made
        error = {m["source"]: m for m in untrusted["missing"]}["prometheus"]["error"]
        assert "CERTIFICATE_VERIFY_FAILED" in error or "SSLError" in error, error

        env = {"INFRAGENIUS_PROMETHEUS_ALLOWED_URLS": allowed, "INFRAGENIUS_PROMETHEUS_CA_FILE": str(cert)}
        with running_operator(operator_kubeconfig, **env):
            workloads.apply(cluster.kubectl, namespace, analysis("trusted", {"prometheus": {"url": server.url}}))
            trusted = wait_phase(cluster, namespace, "trusted", ("Completed",), timeout=120)["status"]
        assert server.requests, "with the CA trusted, the queries went through"
        assert "HTTP 403" in {m["source"]: m for m in trusted["missing"]}["prometheus"]["error"]


def test_prometheus_down_degrades_but_completes(cluster: E2ECluster, namespace: str, operator_kubeconfig: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with running_operator(operator_kubeconfig, INFRAGENIUS_PROMETHEUS_ALLOWED_URLS=json.dumps([dead])):
        workloads.apply(cluster.kubectl, namespace, analysis("degraded", {"prometheus": {"url": dead}}))
        status = wait_phase(cluster, namespace, "degraded", ("Completed", "Failed"))["status"]
    assert status["phase"] == "Completed"
    assert [m["source"] for m in status["missing"]] == ["prometheus"]
    assert "Connection" in status["missing"][0]["error"] or "refused" in status["missing"][0]["error"]
    assert "could not read prometheus" in status["summary"]


def test_targets_outside_the_operators_allowlist_are_refused(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_kubeconfig: str
) -> None:
    """INFRAGENIUS_TARGET_NAMESPACES_ALLOWED: another namespace only from the list, allNamespaces only with "*"."""
    workloads.apply(cluster.kubectl, namespace, workloads.deployment("web", 1))
    with running_operator(operator_kubeconfig, INFRAGENIUS_TARGET_NAMESPACES_ALLOWED=json.dumps(["default"])):
        workloads.apply(cluster.kubectl, namespace, analysis("peek", {"targetNamespace": "kube-system"}))
        workloads.apply(cluster.kubectl, namespace, analysis("everything", {"allNamespaces": True}))
        workloads.apply(cluster.kubectl, namespace, analysis("listed", {"targetNamespace": "default"}))
        workloads.apply(cluster.kubectl, namespace, analysis("own", {"targetNamespace": namespace}))
        refused = {
            name: wait_phase(cluster, namespace, name, ("Failed", "Completed"))["status"]
            for name in ("peek", "everything")
        }
        for name in ("listed", "own"):
            assert wait_phase(cluster, namespace, name, ("Failed", "Completed"))["status"]["phase"] == "Completed"
    for name, what in (("peek", "namespace 'kube-system'"), ("everything", "every namespace (allNamespaces)")):
        status = refused[name]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (status["phase"], ready["status"], ready["reason"]) == ("Failed", "False", "TargetNotAllowed")
        assert what in ready["message"] and "INFRAGENIUS_TARGET_NAMESPACES_ALLOWED" in ready["message"]
        assert "findings" not in status or status["findings"] == []  # nothing was read from the target
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        assert [e.reason for e in events if e.type == "Warning"] == ["TargetNotAllowed"]
