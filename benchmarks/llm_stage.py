"""LLM stage figures: prompt size at 5,000 pods, stage overhead excluding inference, dead-server cost.

Method:
- A synthetic 5,000-pod namespace (500 Deployments, every tenth one crash-looping, plus warning
  events) goes through the real detectors; the prompt is built for num_ctx 4096 and 8192 and its
  estimated size is compared with the budget (num_ctx minus the reply reserve).
- Overhead: the whole stage against a real Ollama (built from Go modules, tiny local model) minus
  the model's own total_duration, median of several runs.
- Dead server: the stage against a closed port, first call (connection refused) and with the
  circuit breaker open.

Run: python benchmarks/llm_stage.py   (builds Ollama on first use; prints the figures)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from infragenius.analysis.engine import run_detectors
from infragenius.detectors.registry import select
from infragenius.llm.explain import Explainer, LLMOptions
from infragenius.llm.guard import CircuitBreaker
from infragenius.llm.ollama_llm import OllamaLLM
from infragenius.llm.prompt import build_prompt
from infragenius.snapshot import Snapshot
from infragenius_devtools.devcluster.build import ensure_ollama
from infragenius_devtools.devcluster.tinymodel import write_modelfile

NS = "shop"
NOW = dt.datetime.now(dt.UTC)


def ts(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def synthetic_namespace(pods: int = 5000, per_deployment: int = 10) -> Snapshot:
    deployments, replicasets, pod_objs, events = [], [], [], []
    for d in range(pods // per_deployment):
        name = f"svc-{d:04d}"
        broken = d % 10 == 0
        uid_d, uid_rs = f"uid-d-{d}", f"uid-rs-{d}"
        deployments.append(
            {
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "namespace": NS,
                    "uid": uid_d,
                    "resourceVersion": "1",
                    "creationTimestamp": ts(86400),
                },
                "spec": {
                    "replicas": per_deployment,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "app",
                                    "image": f"registry.example/{name}:1.{d}",
                                    "resources": {
                                        "requests": {"cpu": "100m", "memory": "128Mi"},
                                        "limits": {"memory": "256Mi"},
                                    },
                                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                                }
                            ],
                            "securityContext": {"runAsNonRoot": True},
                        },
                    },
                },
                "status": {
                    "replicas": per_deployment,
                    "readyReplicas": 0 if broken else per_deployment,
                    "availableReplicas": 0 if broken else per_deployment,
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "False" if broken else "True",
                            "lastTransitionTime": ts(3600),
                            "reason": "MinimumReplicasUnavailable",
                        }
                    ],
                },
            }
        )
        replicasets.append(
            {
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-7d9f",
                    "namespace": NS,
                    "uid": uid_rs,
                    "resourceVersion": "1",
                    "ownerReferences": [{"kind": "Deployment", "name": name, "uid": uid_d, "controller": True}],
                },
                "spec": {"replicas": per_deployment},
                "status": {"replicas": per_deployment},
            }
        )
        for p in range(per_deployment):
            pod_name = f"{name}-7d9f-{p:05d}"
            state = (
                {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}
                if broken
                else {"running": {"startedAt": ts(3600)}}
            )
            pod_objs.append(
                {
                    "kind": "Pod",
                    "metadata": {
                        "name": pod_name,
                        "namespace": NS,
                        "uid": f"uid-p-{d}-{p}",
                        "resourceVersion": "1",
                        "labels": {"app": name},
                        "creationTimestamp": ts(7200),
                        "ownerReferences": [
                            {"kind": "ReplicaSet", "name": f"{name}-7d9f", "uid": uid_rs, "controller": True}
                        ],
                    },
                    "spec": {
                        "nodeName": f"node-{p % 50}",
                        "containers": [{"name": "app", "image": f"registry.example/{name}:1.{d}"}],
                    },
                    "status": {
                        "phase": "Running",
                        "podIP": f"10.1.{d % 250}.{p}",
                        "conditions": [
                            {"type": "Ready", "status": "False" if broken else "True", "lastTransitionTime": ts(3600)}
                        ],
                        "containerStatuses": [
                            {
                                "name": "app",
                                "ready": not broken,
                                "restartCount": 40 if broken else 0,
                                "state": state,
                                "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "finishedAt": ts(60)}}
                                if broken
                                else {},
                            }
                        ],
                    },
                }
            )
            if broken:
                events.append(
                    {
                        "metadata": {
                            "name": f"{pod_name}.bo",
                            "namespace": NS,
                            "uid": f"uid-e-{d}-{p}",
                            "resourceVersion": "1",
                        },
                        "type": "Warning",
                        "reason": "BackOff",
                        "message": f"Back-off restarting failed container app in pod {pod_name}",
                        "count": 30,
                        "lastTimestamp": ts(30),
                        "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": NS},
                    }
                )
    return Snapshot.build(
        NS, {"Deployment": deployments, "ReplicaSet": replicasets, "Pod": pod_objs}, events=events, taken_at=NOW
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def stage_overhead(
    url: str, snapshot: Snapshot, findings: list, runs: int = 5
) -> tuple[list[float], list[float], dict]:
    explainer = Explainer(OllamaLLM(url))
    options = LLMOptions(model="infragenius-tiny", num_ctx=4096, max_reply_tokens=256, timeout=300)
    overheads, totals, last = [], [], {}
    for _ in range(runs):
        started = time.perf_counter()
        outcome = await explainer.explain(snapshot, findings, [], options)
        total = time.perf_counter() - started
        assert outcome.status is not None, outcome.message
        overheads.append(total - (outcome.status.model_seconds or 0))
        totals.append(total)
        last = outcome.status.model_dump()
    await explainer.llm.close()
    return overheads, totals, last


async def dead_server(snapshot: Snapshot, findings: list, runs: int = 20) -> tuple[float, list[float]]:
    explainer = Explainer(
        OllamaLLM(f"http://127.0.0.1:{free_port()}"), breaker=CircuitBreaker(threshold=2, cooldown=600)
    )
    options = LLMOptions(model="infragenius-tiny", timeout=60)
    started = time.perf_counter()
    first = await explainer.explain(snapshot, findings, [], options)
    first_cost = time.perf_counter() - started
    assert first.reason == "ModelUnavailable"
    await explainer.explain(snapshot, findings, [], options)  # second failure opens the circuit
    costs = []
    for _ in range(runs):
        started = time.perf_counter()
        outcome = await explainer.explain(snapshot, findings, [], options)
        costs.append(time.perf_counter() - started)
        assert "retrying in" in outcome.message
    await explainer.llm.close()
    return first_cost, costs


def main() -> None:
    snapshot = synthetic_namespace()
    result = run_detectors(snapshot, select())
    findings = result.findings
    print(
        f"synthetic namespace: {len(snapshot.items('Pod'))} pods, {len(snapshot.events)} events, "
        f"{len(findings)} findings (detect {result.seconds * 1000:.0f} ms)"
    )
    for num_ctx in (4096, 8192):
        started = time.perf_counter()
        prompt = build_prompt(snapshot, findings, [], num_ctx=num_ctx, reserve_for_reply=768)
        built = time.perf_counter() - started
        budget = num_ctx - 768
        print(
            f"num_ctx {num_ctx}: prompt ~{prompt.estimated_tokens} tokens (estimate) for a budget of {budget} "
            f"({prompt.estimated_tokens / budget:.0%}); {prompt.findings_sent}/{prompt.findings_total} findings sent; "
            f"{len(prompt.system) + len(prompt.user)} chars; built in {built * 1000:.1f} ms"
        )

    binary = ensure_ollama()
    home = Path(tempfile.mkdtemp(prefix="ig-ollama-bench-"))
    port = free_port()
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(home / "models"), "HOME": str(home)}
    server = subprocess.Popen([str(binary), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        subprocess.run(
            [str(binary), "create", "infragenius-tiny", "-f", str(write_modelfile(home / "m"))],
            env=env,
            check=True,
            capture_output=True,
        )
        overheads, totals, last = asyncio.run(stage_overhead(url, snapshot, findings))
        print(
            f"LLM stage with the tiny model: total median {statistics.median(totals) * 1000:.0f} ms; "
            f"overhead excluding inference median {statistics.median(overheads) * 1000:.1f} ms "
            f"(min {min(overheads) * 1000:.1f}, max {max(overheads) * 1000:.1f}); "
            f"prompt_eval_count {last['prompt_tokens']} (tiny model's byte-level tokenizer), "
            f"eval_count {last['completion_tokens']}"
        )
    finally:
        server.terminate()
        server.wait(timeout=15)
    first, costs = asyncio.run(dead_server(snapshot, findings))
    print(
        f"dead server: first call {first * 1000:.1f} ms (connection refused); with the breaker open "
        f"median {statistics.median(costs) * 1000:.2f} ms, max {max(costs) * 1000:.2f} ms per analysis"
    )


if __name__ == "__main__":
    main()
