"""Explanation cache in Redis; any Redis failure is a miss, never an error.

After a failure the cache is skipped for a short while, so a dead Redis costs
one short timeout, not one per analysis.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Protocol

import redis.asyncio as redis
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

    async def close(self) -> None: ...


def cache_key(model: str, prompt_version: str, *parts: str) -> str:
    """Hash of model, prompt version and the anonymized context (prompt text and schema)."""
    digest = hashlib.sha256()
    for part in (model, prompt_version, *parts):
        digest.update(part.encode())
        digest.update(b"\0")
    return KEY_PREFIX + digest.hexdigest()


class RedisExplanationCache:
    def __init__(
        self, url: str, *, ttl_seconds: int = 86400, timeout: float = 0.25, skip_after_error: float = 10.0
    ) -> None:
        self.ttl = ttl_seconds
        self.skip_after_error = skip_after_error
        self._skip_until = 0.0
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False, decode_responses=True
        )
        self.hits = self.misses = self.errors = 0

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
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        self.hits += 1
        metrics.LLM_CACHE.labels(result="hit").inc()
        return value if isinstance(value, dict) else None

    async def set(self, key: str, value: dict[str, Any]) -> None:
        if not self._available():
            return
        try:
            await self._client.set(key, json.dumps(value), ex=self.ttl)
        except (RedisError, OSError) as err:
            self._failed(err)

    async def close(self) -> None:
        await self._client.aclose()
