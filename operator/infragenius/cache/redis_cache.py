"""Explanation cache in Redis; any Redis failure is a miss, never an error.

After a failure the cache is skipped for a short while, so a dead Redis costs
one short timeout, not one per analysis.

Entries are sealed: ``<hex HMAC-SHA256 over key and payload>.<payload JSON>``, with a key only the operator
holds. Whoever else can write to Redis cannot make the operator serve their text as ``cached: true``, and an
entry that fails the MAC or the schema is a miss, deleted, never an error that every retry would repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any, Protocol

import redis.asyncio as redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError

from infragenius.observability import metrics

log = logging.getLogger(__name__)
# v2: entries cite per-prompt finding ids (FINDING_1), restored per request.
KEY_PREFIX = "infragenius:explain:v2:"


class ExplanationCache(Protocol):
    @property
    def bypassed(self) -> bool:
        """True after an error made the cache step aside (runs report it as Degraded)."""

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def set(self, key: str, value: dict[str, Any]) -> None: ...

    async def discard(self, key: str) -> None: ...

    async def close(self) -> None: ...


class CachedReply(BaseModel):
    """What an entry must hold to be used: the anonymized explanation (checked against the prompt by the
    caller) and the model's usage figures."""

    model_config = ConfigDict(extra="forbid")

    explanation: dict[str, Any]
    promptTokens: int | None = Field(default=None, ge=0)
    completionTokens: int | None = Field(default=None, ge=0)
    modelSeconds: float | None = Field(default=None, ge=0)


def _mac(signing_key: bytes, key: str, payload: str) -> str:
    return hmac.new(signing_key, key.encode() + b"\0" + payload.encode(), hashlib.sha256).hexdigest()


def seal(signing_key: bytes, key: str, value: dict[str, Any]) -> str:
    payload = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return f"{_mac(signing_key, key, payload)}.{payload}"


def unseal(signing_key: bytes, key: str, raw: str) -> dict[str, Any] | None:
    """The entry's value when its MAC (for this very key) and schema hold, else None."""
    mac, _, payload = raw.partition(".")
    if not hmac.compare_digest(mac.encode(), _mac(signing_key, key, payload).encode()):
        return None
    try:
        return CachedReply.model_validate_json(payload).model_dump(exclude_none=True)
    except ValidationError:
        return None


def cache_key(model: str, prompt_version: str, *parts: str) -> str:
    """Hash of model, prompt version and the anonymized context (prompt text and schema)."""
    digest = hashlib.sha256()
    for part in (model, prompt_version, *parts):
        digest.update(part.encode())
        digest.update(b"\0")
    return KEY_PREFIX + digest.hexdigest()


class RedisExplanationCache:
    def __init__(
        self,
        url: str,
        *,
        signing_key: bytes,
        ttl_seconds: int = 86400,
        timeout: float = 0.25,
        skip_after_error: float = 10.0,
    ) -> None:
        self.signing_key = signing_key
        self.ttl = ttl_seconds
        self.skip_after_error = skip_after_error
        self._skip_until = 0.0
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False, decode_responses=True
        )
        self.hits = self.misses = self.errors = self.rejected = 0

    def _available(self) -> bool:
        return time.monotonic() >= self._skip_until

    @property
    def bypassed(self) -> bool:
        """True while the cache is skipped after a failure."""
        return not self._available()

    def _failed(self, err: Exception) -> None:
        self.errors += 1
        metrics.LLM_CACHE.labels(result="error").inc()
        metrics.dependency("redis", False)
        self._skip_until = time.monotonic() + self.skip_after_error
        log.warning("explanation cache bypassed for %.0fs: %s", self.skip_after_error, err)

    async def get(self, key: str) -> dict[str, Any] | None:
        if not self._available():
            return None
        try:
            raw = await self._client.get(key)
        except (RedisError, OSError) as err:
            self._failed(err)
            return None
        metrics.dependency("redis", True)
        if raw is None:
            self.misses += 1
            metrics.LLM_CACHE.labels(result="miss").inc()
            return None
        value = unseal(self.signing_key, key, raw if isinstance(raw, str) else raw.decode(errors="replace"))
        if value is None:
            log.warning("explanation cache: dropped an entry that is not sealed by this operator or is malformed")
            self.rejected += 1
            metrics.LLM_CACHE.labels(result="rejected").inc()
            await self.discard(key)
            return None
        self.hits += 1
        metrics.LLM_CACHE.labels(result="hit").inc()
        return value

    async def set(self, key: str, value: dict[str, Any]) -> None:
        if not self._available():
            return
        try:
            await self._client.set(key, seal(self.signing_key, key, value), ex=self.ttl)
        except (RedisError, OSError) as err:
            self._failed(err)

    async def discard(self, key: str) -> None:
        """Delete an entry that must not be served again (a miss whatever happens)."""
        if not self._available():
            return
        try:
            await self._client.delete(key)
        except (RedisError, OSError) as err:
            self._failed(err)

    async def close(self) -> None:
        await self._client.aclose()
