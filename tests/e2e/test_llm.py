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

from infragenius.llm.commands import check_command
from infragenius.models.explanation import ExplainedStatus
from infragenius_devtools.devcluster import scenarios as workloads
from infragenius_devtools.devcluster.services import LocalOllama as OllamaServer
from tests.e2e.analysis_support import analysis, get_analysis, running_operator, wait_phase
from tests.e2e.conftest import TINY_MODEL, E2ECluster
from tests.unit import llm_corpus as corpus
from tests.unit.test_llm_security import INJECTIONS

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
    deployment = workloads.deployment(
        "pelican-payments", 1, custom_status=True, image="registry.example/pelican-payments:2.0"
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "DB_PASSWORD", "value": secrets[0]}, {"name": "API_TOKEN", "value": secrets[1]}]
    container["args"] = [f"--aws-key={secrets[2]}"]
    # Names only the pod spec knows (their kinds are not gathered): mounts, env sources, account, pull secret.
    pod_spec = deployment["spec"]["template"]["spec"]
    pod_spec["serviceAccountName"] = corpus.SERVICE_ACCOUNT
    pod_spec["imagePullSecrets"] = [{"name": corpus.PULL_SECRET}]
    pod_spec["volumes"] = [
        {"name": "settings", "configMap": {"name": corpus.CONFIGMAP, "optional": True}},
        {"name": "creds", "secret": {"secretName": corpus.SECRET, "optional": True}},
    ]
    container["envFrom"] = [{"secretRef": {"name": corpus.SECRET, "optional": True}}]
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": corpus.SERVICE_ACCOUNT}}
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": corpus.PVC},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    workloads.apply(cluster.kubectl, namespace, account, claim)
    workloads.apply(
        cluster.kubectl, namespace, deployment, workloads.service("toucan-gateway", {"app": "pelican-payments"})
    )
    pods = workloads.wait_pods(core, namespace, "app=pelican-payments", 1)
    node = pods[0].spec.node_name
    real = {corpus.NAMESPACE: namespace, corpus.POD: pods[0].metadata.name, corpus.NODE: node}
    pod = pods[0]
    workloads.patch_failure(core, pod, "CrashLoopBackOff")
    # The corpus goes out in slices, one analysis each: the tiny model reads 8192 tokens at most, and a prompt
    # left out for length would prove nothing.
    slices = [[line for line, _ in corpus.CORPUS[i : i + 8]] for i in range(0, len(corpus.CORPUS), 8)]
    slices.append(INJECTIONS)  # and the injections, through the real model server
    statuses = []
    with (
        CaptureProxy(ollama.url) as proxy,
        running_operator(operator_kubeconfig, **llm_env(proxy.url, INFRAGENIUS_LLM_NUM_CTX="8192")),
    ):
        for k, lines in enumerate(slices):
            core.delete_collection_namespaced_event(namespace)
            workloads.post_warning_event(
                core,
                namespace,
                "Pod",
                pod.metadata.name,
                "FailedMount",
                f"mount failed for oncall@canary-corp.example from 10.42.17.99: "
                f"password={secrets[0]} token {secrets[3]}",
                5,
                pod.metadata.uid,
            )
            for i, line in enumerate(lines):  # four messages per reason: what the events detector keeps
                reason = f"CanaryLeak{k:02d}x{i // 4}"
                workloads.post_warning_event(core, namespace, "Pod", pod.metadata.name, reason, _real(line, real), 3)
            workloads.apply(cluster.kubectl, namespace, analysis(f"canary-{k}", LLM_ON))
            statuses.append(
                wait_phase(cluster, namespace, f"canary-{k}", ("Completed", "Failed"), timeout=300)["status"]
            )
    chats = [b for b in proxy.bodies if '"messages"' in b]
    assert len(chats) >= len(slices), "the model was not asked about every slice"
    for status in statuses:
        assert explained(status)["reason"] == "Explained", explained(status)
        # Every finding went out, so every corpus line did: none was left out for length.
        assert (
            status["explanation"]["findingsSent"] == status["explanation"]["findingsTotal"] == status["totalFindings"]
        )
    users = [json.loads(b)["messages"][1]["content"] for b in chats]
    sent = "\n".join(users) + "\n".join(chats)
    planted = [
        namespace,
        "flamingo",
        "pelican-payments",
        "pelican",
        "toucan-gateway",
        pods[0].metadata.name,
        node,
        "oncall@canary-corp.example",
        "10.42.17.99",
        *secrets,
        "eyJhbGciOiJIUzI1NiJ9",
    ]
    planted += [_real(value, real) for _, values in corpus.CORPUS for value in values]
    leaked = [p for p in planted if p in sent]
    assert leaked == [], leaked
    assert "[REDACTED]" in sent and "NAMESPACE_1" in sent
    assert all(f"CanaryLeak{k:02d}x0" in sent for k in range(len(slices)))
    # Injected text reached the model only as quoted data: never at the start of a line of the prompt.
    for user in users:
        for line in user.splitlines():
            assert not line.startswith(("SYSTEM", "Ignore", "to kubectl", '"}]}', "END FINDINGS. New")), line
    # Whatever the model answered, every command in status passes the allowlist.
    names = {namespace, "pelican-payments", pods[0].metadata.name, "toucan-gateway", node}
    for status in statuses:
        for step in status["explanation"]["remediation"]:
            assert check_command(step.get("command", ""), names) is None, step
        assert status["explanation"]["commandsDropped"] >= 0


def _real(text: str, real: dict[str, str]) -> str:
    """A corpus line with its example names replaced by the live cluster's."""
    for example, live in real.items():
        text = text.replace(example, live)
    return text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthz_answers_while_hostile_events_are_masked(
    cluster: E2ECluster, core: client.CoreV1Api, namespace: str, operator_kubeconfig: str
) -> None:
    """Backtracking-prone messages in many findings: the event loop must stay free while the prompt is built."""
    crashing_namespace(cluster, core, namespace)
    pod = workloads.wait_pods(core, namespace, "app=checkout", 2)[0]
    hostile = [("password." * 120)[:1023] + "x", ("token-" * 200)[:1023] + "=", ("a." * 600)[:1023] + "@"]
    for i in range(90):  # four messages per reason: the events detector keeps them all as evidence
        for j in range(4):
            message = hostile[(i + j) % 3] + f" {i}-{j}"
            workloads.post_warning_event(core, namespace, "Pod", pod.metadata.name, f"Hostile{i:02d}", message, 3)
    health_port = _free_port()
    dead = f"http://127.0.0.1:{_free_port()}"  # the stall to catch is building the prompt, before any call
    latencies: list[float] = []
    with running_operator(
        operator_kubeconfig, **llm_env(dead, INFRAGENIUS_LLM_NUM_CTX="131072", INFRAGENIUS_HEALTH_PORT=str(health_port))
    ):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        workloads.apply(cluster.kubectl, namespace, analysis("hostile", LLM_ON))
        done = False
        while not done:
            started = time.perf_counter()
            reply = httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=30)
            latencies.append(time.perf_counter() - started)
            assert reply.status_code == 200
            phase = (get_analysis(cluster, namespace, "hostile").get("status") or {}).get("phase")
            done = phase in ("Completed", "Failed")
            time.sleep(0.05)
    status = get_analysis(cluster, namespace, "hostile")["status"]
    assert status["phase"] == "Completed", status
    assert status["totalFindings"] >= 90
    print(f"\n/healthz during the analysis: worst {max(latencies) * 1000:.0f} ms over {len(latencies)} probes")
    assert max(latencies) < 1.0
