"""The LLM stage against a real Ollama server: success, every failure path, and what leaves the cluster."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from infragenius.models.explanation import ExplainedStatus
from infragenius_devtools.devcluster import scenarios as workloads
from infragenius_devtools.devcluster.services import LocalOllama as OllamaServer
from tests.e2e.analysis_support import analysis, running_operator, wait_phase
from tests.e2e.conftest import TINY_MODEL, E2ECluster

pytestmark = pytest.mark.e2e

LLM_ON = {"llm": {"enabled": True}}


def llm_env(url: str, **extra: str) -> dict[str, str]:
    return {
        "INFRAGENIUS_OLLAMA_URL": url,
        "INFRAGENIUS_LLM_MODEL": TINY_MODEL,
        "INFRAGENIUS_LLM_TIMEOUT_SECONDS": "120",
        "INFRAGENIUS_LLM_NUM_CTX": "4096",
        "INFRAGENIUS_LLM_MAX_REPLY_TOKENS": "512",
        **extra,
    }


def explained(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Explained")


def crashing_namespace(cluster: E2ECluster, core: client.CoreV1Api, namespace: str) -> None:
    workloads.apply(cluster.kubectl, namespace, workloads.deployment("checkout", 2, custom_status=True))
    for pod in workloads.wait_pods(core, namespace, "app=checkout", 2):
        workloads.patch_failure(core, pod, "CrashLoopBackOff")


def test_explanation_from_a_real_model(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_kubeconfig: str, ollama: OllamaServer
) -> None:
    crashing_namespace(cluster, core, namespace)
    with running_operator(operator_kubeconfig, **llm_env(ollama.url)):
        workloads.apply(cluster.kubectl, namespace, analysis("explained", LLM_ON))
        status = wait_phase(cluster, namespace, "explained", ("Completed", "Failed"), timeout=180)["status"]
    assert status["phase"] == "Completed"
    condition = explained(status)
    assert (condition["status"], condition["reason"]) == ("True", "Explained"), condition
    explanation = ExplainedStatus.model_validate(status["explanation"])
    assert explanation.model == TINY_MODEL and explanation.prompt_version == "explain-v1"
    assert explanation.prompt_tokens and explanation.prompt_tokens > 50
    assert explanation.completion_tokens and explanation.completion_tokens > 0
    assert explanation.model_seconds and explanation.model_seconds > 0
    ids = {f["id"] for f in status["findings"]}
    assert explanation.root_causes and all(set(c.finding_ids) <= ids for c in explanation.root_causes)
    assert explanation.findings_sent == explanation.findings_total == status["totalFindings"]
    assert explanation.attempts in (1, 2)


def test_failures_end_completed_with_the_right_reason(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_kubeconfig: str, ollama: OllamaServer
) -> None:
    crashing_namespace(cluster, core, namespace)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cases = [
        # (name, operator settings, spec, expected Explained reason, expected Degraded status and reason)
        ("stopped", llm_env(dead), LLM_ON, "ModelUnavailable", ("True", "ModelUnavailable")),
        (
            "slow",
            llm_env(ollama.url, INFRAGENIUS_LLM_TIMEOUT_SECONDS="0.001"),
            LLM_ON,
            "ModelTimeout",
            ("True", "ModelTimeout"),
        ),
        (
            "missing",
            llm_env(ollama.url),
            {"llm": {"enabled": True, "model": "no-such-model"}},
            "ModelUnavailable",
            ("True", "ModelUnavailable"),
        ),
        # A reply cut off after 3 tokens is never valid JSON: retried once, then given up. The model server
        # worked, so the run is not degraded.
        (
            "truncated",
            llm_env(ollama.url, INFRAGENIUS_LLM_MAX_REPLY_TOKENS="3"),
            LLM_ON,
            "InvalidModelOutput",
            ("False", "AllDependenciesAvailable"),
        ),
    ]
    for name, env, spec, reason, degraded in cases:
        with running_operator(operator_kubeconfig, **env):
            workloads.apply(cluster.kubectl, namespace, analysis(name, spec))
            status = wait_phase(cluster, namespace, name, ("Completed", "Failed"), timeout=180)["status"]
        assert status["phase"] == "Completed", (name, status)
        assert status["counts"]["critical"] >= 1, name  # rule-based findings are kept
        condition = explained(status)
        assert (condition["status"], condition["reason"]) == ("False", reason), (name, condition)
        dependency = next(c for c in status["conditions"] if c["type"] == "Degraded")
        assert (dependency["status"], dependency["reason"]) == degraded, (name, dependency)
        assert "explanation" not in status or status["explanation"] is None
        if name == "missing":
            assert "no-such-model" in condition["message"]
        if name == "truncated":
            assert condition["message"].startswith("after 2 attempts")


def test_dead_server_costs_milliseconds_once_the_breaker_opens(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_kubeconfig: str
) -> None:
    crashing_namespace(cluster, core, namespace)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with running_operator(operator_kubeconfig, **llm_env(dead, INFRAGENIUS_LLM_BREAKER_COOLDOWN_SECONDS="600")):
        for i in range(4):
            workloads.apply(cluster.kubectl, namespace, analysis(f"dead-{i}", LLM_ON))
            status = wait_phase(cluster, namespace, f"dead-{i}", ("Completed",), timeout=60)["status"]
            message = explained(status)["message"]
            if i >= 2:  # two refused connections opened the circuit
                assert "retrying in" in message, message
    assert status["durationSeconds"] < 5


class CaptureProxy:
    """A pass-through HTTP tap in front of Ollama that keeps every request body it forwards."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.bodies: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.bodies.append(body.decode(errors="replace"))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                reply = httpx.request(self.command, upstream + self.path, content=body, headers=headers, timeout=300)
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = do_POST = do_HEAD = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> CaptureProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


@pytest.fixture
def canary_namespace(cluster: E2ECluster, core: client.CoreV1Api) -> Iterator[str]:
    name = f"flamingo-canary-{int(time.time()) % 100000}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


def test_nothing_sensitive_reaches_the_model_server(
    cluster: E2ECluster, core: client.CoreV1Api, canary_namespace: str, operator_kubeconfig: str, ollama: OllamaServer
) -> None:
    namespace = canary_namespace
    secrets = [
        "Hunter2Secret!",
        "ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "AKIAIOSFODNN7EXAMPLE",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlc2lnbmF0dXJl",
    ]
    deployment = workloads.deployment("pelican-payments", 1, custom_status=True, image="registry.example/pelican-payments:2.0")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "DB_PASSWORD", "value": secrets[0]}, {"name": "API_TOKEN", "value": secrets[1]}]
    container["args"] = [f"--aws-key={secrets[2]}"]
    workloads.apply(cluster.kubectl, namespace, deployment, workloads.service("toucan-gateway", {"app": "pelican-payments"}))
    pods = workloads.wait_pods(core, namespace, "app=pelican-payments", 1)
    for pod in pods:
        workloads.patch_failure(core, pod, "CrashLoopBackOff")
        workloads.post_warning_event(
            core, namespace, "Pod", pod.metadata.name, "FailedMount",
            f"mount failed for oncall@canary-corp.example from 10.42.17.99: password={secrets[0]} token {secrets[3]}",
            5, pod.metadata.uid,
        )
    node = pods[0].spec.node_name
    with CaptureProxy(ollama.url) as proxy, running_operator(operator_kubeconfig, **llm_env(proxy.url)):
        workloads.apply(cluster.kubectl, namespace, analysis("canary", LLM_ON))
        status = wait_phase(cluster, namespace, "canary", ("Completed", "Failed"), timeout=180)["status"]
    chats = [b for b in proxy.bodies if '"messages"' in b]
    assert chats, "the model was never asked"
    assert explained(status)["reason"] == "Explained"
    sent = "\n".join(json.loads(b)["messages"][1]["content"] for b in chats) + "\n".join(chats)
    planted = [
        namespace, "flamingo", "pelican-payments", "pelican", "toucan-gateway", pods[0].metadata.name, node,
        "oncall@canary-corp.example", "10.42.17.99", *secrets, "eyJhbGciOiJIUzI1NiJ9",
    ]
    leaked = [p for p in planted if p in sent]
    assert leaked == [], leaked
    assert "[REDACTED]" in sent and "NAMESPACE_1" in sent
