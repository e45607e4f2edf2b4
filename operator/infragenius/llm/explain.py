"""The explanation stage: prompt -> model (bounded, guarded) -> validated, restored explanation.

It never raises: every failure becomes an ``Explained=False`` condition with a
reason, and the analysis keeps its rule-based findings.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2
from pydantic import ValidationError

from infragenius.cache.redis_cache import ExplanationCache, cache_key
from infragenius.llm.base import LLM, InvalidModelOutput, LLMError, ModelTimeout, ModelUnavailable
from infragenius.llm.commands import check_command
from infragenius.llm.guard import CircuitBreaker, CircuitOpen, Limiter
from infragenius.llm.prompt import (
    PROMPT_VERSION,
    ObjectVersions,
    Prompt,
    build_prompt,
    name_registry,
    object_versions,
    prompt_fingerprint,
)
from infragenius.models.api import Reason
from infragenius.models.explanation import ExplainedStatus, Explanation, explanation_schema
from infragenius.models.findings import Finding
from infragenius.observability import metrics
from infragenius.snapshot import Snapshot

_CONTROL = re2.compile(r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+")


@dataclass(frozen=True)
class LLMOptions:
    model: str
    num_ctx: int = 4096
    max_reply_tokens: int = 768
    timeout: float = 60.0
    anonymize: bool = True


@dataclass(frozen=True)
class ExplainOutcome:
    ok: bool
    reason: Reason
    message: str
    status: ExplainedStatus | None = None
    prompt: Prompt | None = field(default=None, repr=False)


# Memo keys kept per operator (least recently used dropped; a prompt is filed under up to two keys): one
# prompt per Analysis target and settings is what periodic runs reuse; each holds a prompt (at most num_ctx
# tokens) and its name registry: about 0.2 MB for a 1,000-pod namespace, 0.6 MB at 5,000 pods (measured), so
# at most ~80 MB if every entry were a 5,000-pod namespace.
PREPARED_PROMPTS = 128


@dataclass(frozen=True)
class PreparedPrompt:
    """A masked prompt with what is derived from it alone; shared by runs, so treat it as read-only."""

    prompt: Prompt
    schema: dict[str, Any]
    cache_key: str


class Explainer:
    """Shared by all analyses of one operator: one breaker and one limiter for the model server."""

    def __init__(
        self,
        llm: LLM,
        *,
        breaker: CircuitBreaker | None = None,
        limiter: Limiter | None = None,
        cache: ExplanationCache | None = None,
    ) -> None:
        self.llm = llm
        self.breaker = breaker or CircuitBreaker()
        self.limiter = limiter or Limiter()
        self.cache = cache
        self._prepared: OrderedDict[str, PreparedPrompt] = OrderedDict()
        self._prepared_lock = threading.Lock()  # prepare() runs in worker threads

    async def explain(
        self,
        snapshot: Snapshot,
        findings: Sequence[Finding],
        missing_sources: Sequence[str],
        options: LLMOptions,
    ) -> ExplainOutcome:
        outcome = await self._explain(snapshot, findings, missing_sources, options)
        _count(outcome)
        return outcome

    async def _explain(
        self,
        snapshot: Snapshot,
        findings: Sequence[Finding],
        missing_sources: Sequence[str],
        options: LLMOptions,
    ) -> ExplainOutcome:
        started = time.perf_counter()
        if not findings:
            return ExplainOutcome(False, Reason.no_findings, "nothing to explain")
        if self.cache is None and self.breaker.is_open:
            # Nothing could answer: skip even building the prompt, so a dead server costs microseconds.
            try:
                self.breaker.check()
            except CircuitOpen as err:
                return ExplainOutcome(False, ModelUnavailable.reason, str(err))
        # Masking and rendering are CPU work on cluster text: off the event loop, so handlers, the webhook
        # and /healthz keep answering while a large prompt is built.
        prepared = await asyncio.to_thread(self.prepare, snapshot, findings, missing_sources, options)
        prompt, schema, key = prepared.prompt, prepared.schema, prepared.cache_key
        if not prompt.finding_ids:
            return ExplainOutcome(
                False, Reason.context_too_small, f"num_ctx {options.num_ctx} leaves no room for a finding"
            )
        if self.cache is not None:
            hit = await self.cache.get(key)
            if hit is not None:
                try:
                    cached = parse_reply(json.dumps(hit["explanation"]), prompt.prompt_ids)
                except (InvalidModelOutput, KeyError):
                    cached = None  # valid for the schema, not for this prompt's ids: ask the model again
                    await self.cache.discard(key)
                if cached is not None:
                    restored, dropped = checked(restore(cached, prompt), prompt)
                    status = self._status(options, prompt, restored, hit, started, attempts=0, dropped=dropped)
                    status.cached = True
                    message = f"{options.model} ({PROMPT_VERSION}), from cache{_dropped_note(dropped)}"
                    return ExplainOutcome(True, Reason.explained, message, status, prompt)
        try:
            self.breaker.check()
        except CircuitOpen as err:
            return ExplainOutcome(False, ModelUnavailable.reason, str(err), prompt=prompt)

        attempts = 0
        last_error: LLMError | None = None
        async with self.limiter.slot(snapshot.namespace):
            for attempts in (1, 2):  # one retry, for invalid or truncated output only
                try:
                    completion = await self.llm.complete(
                        model=options.model,
                        system=prompt.system,
                        user=prompt.user,
                        schema=schema,
                        num_ctx=options.num_ctx,
                        max_tokens=options.max_reply_tokens,
                        timeout=options.timeout,
                    )
                except (ModelTimeout, ModelUnavailable) as err:
                    metrics.dependency("ollama", False)
                    if getattr(err, "server_down", True):
                        self.breaker.failure()
                    return ExplainOutcome(False, err.reason, str(err)[:1000], prompt=prompt)
                self.breaker.success()
                metrics.dependency("ollama", True)
                metrics.LLM_TOKENS.labels(direction="prompt").inc(completion.prompt_tokens or 0)
                metrics.LLM_TOKENS.labels(direction="reply").inc(completion.completion_tokens or 0)
                try:
                    explanation = parse_reply(completion.content, prompt.prompt_ids)
                except InvalidModelOutput as err:
                    last_error = err
                    continue
                usage = {
                    "promptTokens": completion.prompt_tokens,
                    "completionTokens": completion.completion_tokens,
                    "modelSeconds": completion.model_seconds,
                }
                if self.cache is not None:
                    # Stored anonymized: names are restored per request from that request's placeholders.
                    await self.cache.set(
                        key, {"explanation": json.loads(explanation.model_dump_json(by_alias=True)), **usage}
                    )
                restored, dropped = checked(restore(explanation, prompt), prompt)
                status = self._status(options, prompt, restored, usage, started, attempts, dropped=dropped)
                message = f"{options.model} ({PROMPT_VERSION}){_dropped_note(dropped)}"
                return ExplainOutcome(True, Reason.explained, message, status, prompt)
        assert last_error is not None
        return ExplainOutcome(
            False, last_error.reason, f"after {attempts} attempts: {last_error}"[:1000], prompt=prompt
        )

    def prepare(
        self,
        snapshot: Snapshot,
        findings: Sequence[Finding],
        missing_sources: Sequence[str],
        options: LLMOptions,
    ) -> PreparedPrompt:
        """The masked prompt, its schema and its cache key; reused while everything the prompt reads is unchanged.

        A periodic analysis of a namespace that did not change builds the same prompt every time: masking
        it again (RE2 over every evidence line) was most of a cache hit's cost. The memo is keyed on
        ``prompt_fingerprint``, which covers every input of ``build_prompt``: the findings, the options and
        what decides the name registry (the objects' versions, or the registry itself), so an entry is only
        reused for inputs that would mask to the same text and the same placeholder map. It lives in this
        process only: real names never go to Redis, whose keys and entries are unchanged.
        """

        def fingerprint(names: Mapping[str, str] | ObjectVersions) -> str:
            digest = prompt_fingerprint(
                snapshot,
                findings,
                missing_sources,
                names,
                num_ctx=options.num_ctx,
                reserve_for_reply=options.max_reply_tokens,
                anonymize=options.anonymize,
            )
            return f"{digest}:{options.model}"  # the model is in the cache key kept in the entry

        # First by object versions (cheap: two fields an object), then by the registry (a walk of every pod
        # spec, still far cheaper than masking); either equal means the same prompt and placeholder map.
        versions = object_versions(snapshot)
        keys = [fingerprint(versions)] if versions is not None else []
        if (found := self._memo_get(keys)) is not None:
            return found
        registry = name_registry(snapshot, findings)
        keys.append(fingerprint(registry))
        if (found := self._memo_get(keys)) is not None:
            return found
        prompt = build_prompt(
            snapshot,
            findings,
            missing_sources,
            num_ctx=options.num_ctx,
            reserve_for_reply=options.max_reply_tokens,
            anonymize=options.anonymize,
            registry=registry,
        )
        schema = explanation_schema(prompt.prompt_ids)
        key = cache_key(options.model, PROMPT_VERSION, prompt.system, prompt.user, json.dumps(schema, sort_keys=True))
        prepared = PreparedPrompt(prompt, schema, key)
        self._memo_put(keys, prepared)
        return prepared

    def _memo_get(self, keys: Sequence[str]) -> PreparedPrompt | None:
        with self._prepared_lock:
            for key in keys:
                found = self._prepared.get(key)
                if found is not None:
                    self._prepared.move_to_end(key)
                    for other in keys:  # reachable by the cheaper key next time
                        self._prepared[other] = found
                    self._trim()
                    return found
        return None

    def _memo_put(self, keys: Sequence[str], prepared: PreparedPrompt) -> None:
        with self._prepared_lock:
            for key in keys:
                self._prepared[key] = prepared
            self._trim()

    def _trim(self) -> None:
        while len(self._prepared) > PREPARED_PROMPTS:
            self._prepared.popitem(last=False)

    @staticmethod
    def _status(
        options: LLMOptions,
        prompt: Prompt,
        explanation: Explanation,
        usage: dict[str, Any],
        started: float,
        attempts: int,
        *,
        dropped: int = 0,
    ) -> ExplainedStatus:
        seconds = usage.get("modelSeconds")
        return ExplainedStatus(
            model=options.model,
            prompt_version=PROMPT_VERSION,
            prompt_tokens=usage.get("promptTokens"),
            completion_tokens=usage.get("completionTokens"),
            model_seconds=round(seconds, 3) if seconds else None,
            stage_seconds=round(time.perf_counter() - started, 4),
            findings_sent=prompt.findings_sent,
            findings_total=prompt.findings_total,
            attempts=attempts,
            commands_dropped=dropped,
            summary=explanation.summary,
            root_causes=explanation.root_causes,
            remediation=explanation.remediation,
            confidence=explanation.confidence,
        )


def parse_reply(content: str, allowed_ids: Sequence[str]) -> Explanation:
    """Validate the model's JSON against the schema; truncated or off-schema replies are invalid."""
    try:
        explanation = Explanation.model_validate_json(content)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "reply"
        raise InvalidModelOutput(f"reply does not match the schema at {where}: {first['msg']}") from err
    unknown = {i for cause in explanation.root_causes for i in cause.finding_ids} - set(allowed_ids)
    if unknown:
        raise InvalidModelOutput(f"reply cites unknown finding ids: {', '.join(sorted(unknown))}")
    return explanation


def checked(explanation: Explanation, prompt: Prompt) -> tuple[Explanation, int]:
    """Drop every proposed command the allowlist refuses (the step keeps its text); count them."""
    names = prompt.anonymizer.names
    dropped = 0
    steps = []
    for step in explanation.remediation:
        if step.command and check_command(step.command, names) is not None:
            dropped += 1
            step = step.model_copy(update={"command": ""})
        steps.append(step)
    return explanation.model_copy(update={"remediation": steps}), dropped


def _dropped_note(dropped: int) -> str:
    return f"; dropped {dropped} proposed command(s) outside the allowlist" if dropped else ""


def restore(explanation: Explanation, prompt: Prompt) -> Explanation:
    """Put the real names and finding ids back into every string of the reply; control characters go."""
    data: Any = json.loads(explanation.model_dump_json())

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return prompt.anonymizer.restore(_CONTROL.sub(" ", value))
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    restored = walk(data)
    # Restoring can lengthen strings past their bound; keep the schema's limits.
    for cause in restored["root_causes"]:
        cause["title"], cause["reasoning"] = cause["title"][:160], cause["reasoning"][:400]
    for step in restored["remediation"]:
        step["action"], step["command"] = step["action"][:240], step["command"][:240]
    restored["summary"] = restored["summary"][:400]
    return Explanation.model_validate(restored)


def _count(outcome: ExplainOutcome) -> None:
    if outcome.ok:
        cached = outcome.status is not None and bool(outcome.status.cached)
        metrics.LLM_CALLS.labels(outcome="cached" if cached else "ok").inc()
    else:
        metrics.LLM_CALLS.labels(outcome=outcome.reason).inc()
