"""The LLM stage without a model server: masking, budget, schema, validation, breaker, limits."""

from __future__ import annotations

import asyncio
import json

import pytest

from infragenius.detectors.base import finding
from infragenius.llm.anonymize import Anonymizer
from infragenius.llm.base import InvalidModelOutput
from infragenius.llm.explain import parse_reply, restore
from infragenius.llm.guard import CircuitBreaker, CircuitOpen, Limiter
from infragenius.llm.prompt import PROMPT_VERSION, build_prompt, estimate_tokens
from infragenius.models.explanation import Explanation, explanation_schema
from infragenius.models.findings import Finding, ResourceRef, Severity
from infragenius.snapshot import Snapshot

NS = "payments-prod"


def pod(name: str, node: str) -> dict:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": {"nodeName": node}}


def make(i: int, severity: Severity = Severity.critical, message: str = "") -> Finding:
    return finding(
        detector="pod",
        severity=severity,
        resource=ResourceRef(kind="Deployment", name=f"checkout-{i}", namespace=NS),
        problem="CrashLoopBackOff",
        title=f"2 pods of Deployment checkout-{i}: container app is in CrashLoopBackOff",
        evidence=[
            ("status.containerStatuses[app].state.waiting.reason", f"checkout-{i}-7d9f-abcde: CrashLoopBackOff"),
            ("event:BackOff", message or "x42: Back-off restarting failed container"),
        ],
        remediation=f"kubectl logs -n {NS} deploy/checkout-{i} --previous",
    )


def snapshot(deployments: int = 3) -> Snapshot:
    objects = {
        "Deployment": [
            {"kind": "Deployment", "metadata": {"name": f"checkout-{i}", "namespace": NS}} for i in range(deployments)
        ],
        "Pod": [pod(f"checkout-{i}-7d9f-abcde", "worker-eu-1") for i in range(deployments)],
        "Node": [{"kind": "Node", "metadata": {"name": "worker-eu-1"}}],
        "Service": [{"kind": "Service", "metadata": {"name": "ledger-api", "namespace": NS}}],
    }
    return Snapshot.build(namespace=NS, objects=objects)


def test_names_addresses_and_secrets_are_masked_and_names_restored() -> None:
    anon = Anonymizer()
    anon.add_names("NAMESPACE", [NS])
    anon.add_names("WORKLOAD", ["checkout"])
    anon.add_names("POD", ["checkout-7d9f-abcde"])
    anon.add_names("NODE", ["worker-eu-1"])
    text = (
        f"pod checkout-7d9f-abcde of checkout in {NS} on worker-eu-1 (10.42.17.99) failed: "
        "password=Hunter2Secret! token: ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
        "key AKIAIOSFODNN7EXAMPLE, mail oncall@canary-corp.example, Authorization: Bearer abcdefghijklmnop1234567890"
    )
    masked = anon.mask(text)
    for leaked in (
        NS,
        "checkout",
        "worker-eu-1",
        "10.42.17.99",
        "Hunter2Secret",
        "ghp_ABCDEF",
        "AKIAIOSFODNN7EXAMPLE",
        "oncall@canary-corp.example",
        "abcdefghijklmnop1234567890",
    ):
        assert leaked not in masked, leaked
    assert masked.startswith("pod POD_1 of WORKLOAD_1 in NAMESPACE_1 on NODE_1 (IP_1) failed: password=[REDACTED]")
    assert anon.secrets_masked >= 4
    # Stable within a request, restorable for names, never for secrets.
    assert anon.mask("checkout again") == "WORKLOAD_1 again"
    assert (
        anon.restore("restart WORKLOAD_1 on NODE_1; see [REDACTED]")
        == "restart checkout on worker-eu-1; see [REDACTED]"
    )


def test_prompt_is_anonymized_versioned_and_within_budget() -> None:
    snap = snapshot(3)
    findings = [make(i) for i in range(3)]
    prompt = build_prompt(snap, findings, ["prometheus"], num_ctx=4096, reserve_for_reply=768)
    text = prompt.system + prompt.user
    assert NS not in text and "checkout-1" not in text and "worker-eu-1" not in text
    assert prompt.finding_ids == [f.id for f in findings]
    assert "Could not read: prometheus." in prompt.user
    assert PROMPT_VERSION == "explain-v1"
    assert prompt.estimated_tokens <= 4096 - 768


def test_budget_keeps_the_most_severe_findings_whatever_the_namespace_size() -> None:
    findings = [make(i) for i in range(500)] + [make(1000 + i, Severity.info) for i in range(500)]
    snap = snapshot(1000)
    prompt = build_prompt(snap, findings, [], num_ctx=4096, reserve_for_reply=768)
    assert 0 < prompt.findings_sent < len(findings)
    assert prompt.findings_total == 1000
    assert prompt.estimated_tokens <= 4096 - 768
    assert set(prompt.finding_ids) <= {f.id for f in findings[:500]}  # critical ones first
    assert f"{1000 - prompt.findings_sent} lower-priority finding(s) omitted" in prompt.user
    big = build_prompt(snap, findings, [], num_ctx=32768, reserve_for_reply=768)
    assert big.findings_sent > prompt.findings_sent and big.estimated_tokens <= 32768 - 768
    assert estimate_tokens("x" * 300) == 101


def test_schema_pins_finding_ids_and_bounds_strings() -> None:
    schema = explanation_schema(["a" * 16, "b" * 16])
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    cause = schema["properties"]["rootCauses"]["items"]
    assert cause["properties"]["findingIds"]["items"]["enum"] == ["a" * 16, "b" * 16]
    assert schema["properties"]["summary"]["maxLength"] == 400
    assert schema["properties"]["confidence"]["enum"] == ["low", "medium", "high"]
    assert schema["additionalProperties"] is False


VALID = {
    "summary": "WORKLOAD_1 crashes on start",
    "rootCauses": [
        {"title": "bad config in WORKLOAD_1", "findingIds": ["a" * 16], "reasoning": "exit 1 right after start"}
    ],
    "remediation": [{"action": "roll back WORKLOAD_1", "command": "kubectl rollout undo deploy/WORKLOAD_1"}],
    "confidence": "medium",
}


def test_reply_validation() -> None:
    assert parse_reply(json.dumps(VALID), ["a" * 16]).confidence.value == "medium"
    with pytest.raises(InvalidModelOutput, match="does not match the schema"):
        parse_reply(json.dumps(VALID)[:-20], ["a" * 16])  # truncated
    with pytest.raises(InvalidModelOutput, match="unknown finding ids"):
        parse_reply(json.dumps(VALID), ["b" * 16])
    with pytest.raises(InvalidModelOutput):
        parse_reply(json.dumps({**VALID, "confidence": "certain"}), ["a" * 16])
    with pytest.raises(InvalidModelOutput):
        parse_reply("I think the pod is sad.", ["a" * 16])


def test_restore_puts_names_back() -> None:
    snap = snapshot(2)
    prompt = build_prompt(snap, [make(0)], [], num_ctx=4096, reserve_for_reply=768)
    placeholder = next(k for k, v in prompt.anonymizer.placeholders.items() if v == "checkout-0")
    reply = json.loads(json.dumps(VALID).replace("WORKLOAD_1", placeholder).replace("a" * 16, prompt.finding_ids[0]))
    restored = restore(Explanation.model_validate(reply), prompt)
    assert restored.summary == "checkout-0 crashes on start"
    assert restored.remediation[0].command == "kubectl rollout undo deploy/checkout-0"


def test_circuit_breaker_opens_after_failures_and_half_opens_after_cooldown() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=30, clock=lambda: now[0])
    breaker.check()
    breaker.failure()
    breaker.check()  # one failure: still closed
    breaker.failure()
    with pytest.raises(CircuitOpen, match="failed 2 times in a row"):
        breaker.check()
    now[0] = 31
    breaker.check()  # half-open: one call may go through
    breaker.success()
    assert not breaker.is_open


async def test_limiter_caps_global_and_per_namespace_concurrency() -> None:
    limiter = Limiter(global_limit=2, per_namespace=1)
    seen: dict[str, int] = {}
    current: dict[str, int] = {}

    async def call(namespace: str) -> None:
        async with limiter.slot(namespace):
            current[namespace] = current.get(namespace, 0) + 1
            seen[namespace] = max(seen.get(namespace, 0), current[namespace])
            await asyncio.sleep(0.01)
            current[namespace] -= 1

    await asyncio.gather(*(call(ns) for ns in ["team-a"] * 5 + ["team-b"] * 5 + ["team-c"] * 5))
    assert limiter.peak == 2
    assert seen == {"team-a": 1, "team-b": 1, "team-c": 1}


def test_names_inside_dns_names_are_masked() -> None:
    anon = Anonymizer()
    anon.add_names("NAMESPACE", [NS])
    anon.add_names("SERVICE", ["ledger-api"])
    anon.add_names("POD", [f"ledger-api-{i:05d}" for i in range(5000)])
    masked = anon.mask(f"dial ledger-api.{NS}.svc.cluster.local:8080 from ledger-api-04999 failed.")
    assert masked == "dial SERVICE_1.NAMESPACE_1.svc.cluster.local:8080 from POD_1 failed."
    assert anon.restore(masked) == f"dial ledger-api.{NS}.svc.cluster.local:8080 from ledger-api-04999 failed."


def test_long_object_names_are_names_not_secrets() -> None:
    anon = Anonymizer()
    pod = "payments-processor-canary-eu-west-7d9f8b6c5d-x2x9z"
    anon.add_names("POD", [pod])
    assert anon.mask(f"pod {pod} restarted; key 0123456789abcdef0123456789abcdef01") == (
        "pod POD_1 restarted; key [REDACTED]"
    )


def test_times_are_not_mistaken_for_ipv6_addresses() -> None:
    anon = Anonymizer()
    assert anon.mask("finishedAt 2026-11-29T11:54:00Z") == "finishedAt 2026-11-29T11:54:00Z"
    assert anon.mask("from fd00:10:42::17 and 2001:db8:0:0:1:0:0:1") == "from IP_1 and IP_2"
