"""The explanation stage's prepared-prompt memo and cache keys (issue 19).

What must hold: an entry (memo or Redis) is only ever served for the input it was computed from; a reply
served from the cache names the current run's objects; Redis holds nothing it did not hold before (hashed
keys, sealed anonymized replies).
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infragenius.cache.redis_cache import KEY_PREFIX, seal, unseal
from infragenius.detectors.base import finding
from infragenius.llm import explain as explain_module
from infragenius.llm.base import Completion
from infragenius.llm.explain import Explainer, LLMOptions
from infragenius.llm.prompt import (
    ObjectVersions,
    build_prompt,
    name_registry,
    object_versions,
    prompt_fingerprint,
)
from infragenius.models.findings import Finding, ResourceRef, Severity
from infragenius.snapshot import Snapshot

SIGNING_KEY = b"test-signing-key"
OPTIONS = LLMOptions(model="tiny", num_ctx=4096, max_reply_tokens=512)


def pod(name: str, version: str = "1", node: str = "node-a") -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "resourceVersion": version},
        "spec": {"nodeName": node, "containers": [{"name": "app"}]},
    }


def snapshot(*pods: dict[str, Any], namespace: str = "shop") -> Snapshot:
    return Snapshot.build(namespace, {"Pod": list(pods)})


def crash(pod_name: str, *, line: str = "exit code 1", title: str | None = None) -> Finding:
    # The detector reports the pod by name (its id does not depend on it), as real findings do in evidence.
    return finding(
        detector="pod",
        severity=Severity.critical,
        resource=ResourceRef(kind="Deployment", name="checkout", namespace="shop"),
        problem="CrashLoopBackOff",
        title=title or "Deployment checkout is crashing",
        evidence=[("pod", pod_name), ("log:app", line)],
        remediation=f"kubectl logs -n shop {pod_name} --previous",
    )


class MemoryCache:
    """An ExplanationCache in a dict, sealed as Redis entries are: what would be stored, inspectable."""

    def __init__(self) -> None:
        self.store: dict[str, str] = {}
        self.gets = 0

    @property
    def bypassed(self) -> bool:
        return False

    async def get(self, key: str) -> dict[str, Any] | None:
        self.gets += 1
        raw = self.store.get(key)
        return None if raw is None else unseal(SIGNING_KEY, key, raw)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        self.store[key] = seal(SIGNING_KEY, key, value)

    async def discard(self, key: str) -> None:
        self.store.pop(key, None)

    async def close(self) -> None:
        pass


class EchoLLM:
    """Answers with the first POD_ placeholder of the prompt, as a model naming the crashing pod would."""

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, *, user: str, **_: Any) -> Completion:
        self.calls += 1
        placeholder = next(word for word in user.replace('"', " ").split() if word.startswith("POD_"))
        reply = {
            "summary": f"{placeholder} crashes",
            "root_causes": [{"title": f"{placeholder} exits", "reasoning": "see logs", "finding_ids": ["FINDING_1"]}],
            "remediation": [{"action": "read its log", "command": f"kubectl logs -n NAMESPACE_1 {placeholder}"}],
            "confidence": "medium",
        }
        return Completion(json.dumps(reply), 10, 10, 0.1, "stop")

    async def ensure_model(self, model: str, *, pull: bool) -> None:
        pass

    async def close(self) -> None:
        pass


def run(explainer: Explainer, snap: Snapshot, findings: list[Finding]) -> Any:
    outcome = asyncio.run(explainer.explain(snap, findings, [], OPTIONS))
    assert outcome.ok and outcome.status is not None, outcome.message
    return outcome


def fingerprint(snap: Snapshot, findings: list[Finding], missing: list[str] | None = None, **kw: Any) -> str:
    options = {"num_ctx": 4096, "reserve_for_reply": 512, "anonymize": True, **kw}
    return prompt_fingerprint(snap, findings, missing or [], name_registry(snap, findings), **options)


# --- keys: every prompt input is in them -------------------------------------------------------------------


def test_every_prompt_input_changes_the_fingerprint() -> None:
    base_snap, base = snapshot(pod("checkout-1")), [crash("checkout-1")]
    other_finding = base[0].model_copy
    variants = {
        "base": fingerprint(base_snap, base),
        "namespace": fingerprint(snapshot(pod("checkout-1"), namespace="shop2"), base),
        "title": fingerprint(base_snap, [other_finding(update={"title": "Deployment checkout is down"})]),
        "severity": fingerprint(base_snap, [other_finding(update={"severity": Severity.warning})]),
        "evidence value": fingerprint(base_snap, [crash("checkout-1", line="exit code 2")]),
        "evidence source": fingerprint(
            base_snap,
            [other_finding(update={"evidence": [e.model_copy(update={"source": "log:x"}) for e in base[0].evidence]})],
        ),
        "remediation": fingerprint(base_snap, [other_finding(update={"remediation": "kubectl get pods"})]),
        "affected": fingerprint(base_snap, [other_finding(update={"affected": 2})]),
        "id": fingerprint(base_snap, [other_finding(update={"id": "0" * 16})]),
        "resource": fingerprint(
            base_snap,
            [other_finding(update={"resource": ResourceRef(kind="Deployment", name="cart", namespace="shop")})],
        ),
        "owners": fingerprint(
            base_snap,
            [other_finding(update={"owners": [ResourceRef(kind="ReplicaSet", name="rs-1", namespace="shop")]})],
        ),
        "docs": fingerprint(base_snap, [other_finding(update={"docs": "https://example.com"})]),
        "finding order": fingerprint(base_snap, [base[0], crash("checkout-1", line="x")]),
        "finding order swapped": fingerprint(base_snap, [crash("checkout-1", line="x"), base[0]]),
        "missing source": fingerprint(base_snap, base, ["prometheus"]),
        "num_ctx": fingerprint(base_snap, base, num_ctx=8192),
        "reserve": fingerprint(base_snap, base, reserve_for_reply=256),
        "anonymize": fingerprint(base_snap, base, anonymize=False),
        "another name": fingerprint(snapshot(pod("checkout-1"), pod("checkout-2")), base),
        "another node": fingerprint(snapshot(pod("checkout-1", node="node-b")), base),
    }
    # A name's category decides its placeholder: the same name as a node instead of a pod is another key.
    as_node = Snapshot.build("shop", {"Node": [{"metadata": {"name": "checkout-1"}}]})
    variants["category"] = fingerprint(as_node, base)
    assert len(set(variants.values())) == len(variants), [k for k, v in variants.items() if v == variants["base"]]


def test_object_versions_are_a_key_of_their_own_and_change_with_any_object() -> None:
    findings = [crash("checkout-1")]

    def by_versions(snap: Snapshot) -> str:
        versions = object_versions(snap)
        assert versions is not None
        return prompt_fingerprint(snap, findings, [], versions, num_ctx=4096, reserve_for_reply=512)

    base = by_versions(snapshot(pod("checkout-1")))
    assert by_versions(snapshot(pod("checkout-1"))) == base  # a new snapshot of the same objects
    assert by_versions(snapshot(pod("checkout-1", version="2"))) != base
    assert by_versions(snapshot(pod("checkout-1"), pod("checkout-2"))) != base
    renamed = pod("checkout-1")
    renamed["metadata"]["uid"] = "uid-recreated"
    assert by_versions(snapshot(renamed)) != base
    # Never equal to a registry-keyed fingerprint of the same input.
    assert base != fingerprint(snapshot(pod("checkout-1")), findings)


def test_object_versions_need_a_uid_and_a_version_on_every_object_and_event() -> None:
    assert isinstance(object_versions(snapshot(pod("a1"), pod("b1"))), ObjectVersions)
    no_version = pod("a1")
    del no_version["metadata"]["resourceVersion"]
    assert object_versions(snapshot(pod("b1"), no_version)) is None
    nul = pod("a1")
    nul["metadata"]["uid"] = "uid\0x"  # would make the NUL-separated encoding ambiguous
    assert object_versions(snapshot(nul)) is None
    event = {"involvedObject": {"kind": "Pod", "name": "a1"}}
    assert object_versions(Snapshot.build("shop", {"Pod": [pod("a1")]}, events=[event])) is None


_words = st.sampled_from(["checkout-1", "checkout-2", "cart", "node-a", "10.0.0.1", "exit", "token=abc123def456", "x"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=st.tuples(st.lists(_words, min_size=1, max_size=3), st.lists(_words, min_size=1, max_size=4)),
    b=st.tuples(st.lists(_words, min_size=1, max_size=3), st.lists(_words, min_size=1, max_size=4)),
)
def test_equal_fingerprints_mean_equal_prompts(a: tuple[list[str], list[str]], b: tuple[list[str], list[str]]) -> None:
    def build(pod_names: list[str], line_words: list[str]) -> tuple[str, tuple[Any, ...]]:
        snap = snapshot(*(pod(n) for n in pod_names))
        findings = [crash(pod_names[0], line=" ".join(line_words))]
        prompt = build_prompt(snap, findings, [], num_ctx=4096, reserve_for_reply=512)
        made = (prompt.system, prompt.user, prompt.prompt_ids, prompt.finding_ids, prompt.anonymizer.placeholders)
        return fingerprint(snap, findings), made

    key_a, prompt_a = build(*a)
    key_b, prompt_b = build(*b)
    if prompt_a != prompt_b:
        assert key_a != key_b
    if key_a == key_b:
        assert prompt_a == prompt_b


# --- the stage: memo reuse, restored names, what Redis holds -----------------------------------------------


def test_a_cached_reply_names_the_current_runs_pod() -> None:
    cache, llm = MemoryCache(), EchoLLM()
    explainer = Explainer(llm, cache=cache)
    first = run(explainer, snapshot(pod("checkout-1")), [crash("checkout-1")])
    assert "checkout-1" in first.status.summary and not first.status.cached
    # Same findings, the pod replaced by another: the masked prompt is the same, so Redis answers...
    second = run(explainer, snapshot(pod("checkout-2")), [crash("checkout-2")])
    assert second.status.cached and llm.calls == 1
    # ...and the reply is restored with this run's placeholder map, never the first run's names.
    shown = second.status.model_dump_json()
    assert "checkout-2" in second.status.summary and "checkout-1" not in shown
    assert second.status.remediation[0].command == "kubectl logs -n shop checkout-2"


def test_a_changed_prompt_input_is_a_miss() -> None:
    cache, llm = MemoryCache(), EchoLLM()
    explainer = Explainer(llm, cache=cache)
    run(explainer, snapshot(pod("checkout-1")), [crash("checkout-1")])
    changed = run(explainer, snapshot(pod("checkout-1")), [crash("checkout-1", line="exit code 137")])
    assert not changed.status.cached and llm.calls == 2 and len(cache.store) == 2


def test_redis_holds_hashed_keys_and_sealed_anonymized_replies_only() -> None:
    cache = MemoryCache()
    run(Explainer(EchoLLM(), cache=cache), snapshot(pod("checkout-1")), [crash("checkout-1")])
    [(key, raw)] = cache.store.items()
    assert key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 64
    assert int(key[len(KEY_PREFIX) :], 16) >= 0  # hex digest
    for real in ("checkout-1", "shop", "node-a"):
        assert real not in key and real not in raw


def test_the_memo_skips_masking_for_an_unchanged_namespace_and_only_then(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real_build = explain_module.build_prompt

    def counting_build(*args: Any, **kwargs: Any) -> Any:
        built.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(explain_module, "build_prompt", counting_build)
    cache, llm = MemoryCache(), EchoLLM()
    explainer = Explainer(llm, cache=cache)
    objects = [pod("checkout-1"), pod("cart-1")]
    findings = [crash("checkout-1")]
    run(explainer, snapshot(*objects), findings)
    assert len(built) == 1
    # A new snapshot of the same objects (as the next periodic run reads them): no masking at all.
    hit = run(explainer, snapshot(*copy.deepcopy(objects)), [f.model_copy() for f in findings])
    assert hit.status.cached and len(built) == 1
    # An object written again without a name change: new versions, same registry, still no masking.
    run(explainer, snapshot(pod("checkout-1", version="7"), pod("cart-1")), findings)
    assert len(built) == 1
    # Objects without resourceVersion (not read from the API) go by the registry: same names, no masking.
    bare = [
        {k: v for k, v in o.items() if k != "metadata"} | {"metadata": {"name": o["metadata"]["name"]}} for o in objects
    ]
    run(explainer, snapshot(*bare), findings)
    assert len(built) == 1
    # A new name anywhere in the namespace may change masking: built again.
    run(explainer, snapshot(*objects, pod("payments-1")), findings)
    assert len(built) == 2
    assert llm.calls == 1  # and all of these were Redis hits of the one masked prompt


def test_the_memo_is_bounded() -> None:
    explainer = Explainer(EchoLLM(), cache=MemoryCache())
    for i in range(explain_module.PREPARED_PROMPTS + 10):
        explainer.prepare(snapshot(pod(f"checkout-{i}")), [crash(f"checkout-{i}")], [], OPTIONS)
    assert len(explainer._prepared) == explain_module.PREPARED_PROMPTS
