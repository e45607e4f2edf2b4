"""Rate limits per caller and tier: a token bucket in Redis, shared by every replica through one Lua script.

The script reads Redis's own clock, so replicas with skewed clocks still share one bucket. When Redis cannot
be reached each replica falls back to an in-memory bucket of the same size: a looser limit (one bucket per
replica), never none; /metrics shows the fallback.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import RedisError

from infragenius.server import metrics
from infragenius.server.errors import ErrorCode, ServiceError

log = logging.getLogger(__name__)

# KEYS[1]: the bucket. ARGV: capacity, tokens per millisecond. Returns {allowed (0/1), milliseconds to wait}.
TOKEN_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_ms)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / per_ms) + 1000)
return {allowed, wait_ms}
"""


@dataclass
class _Bucket:
    tokens: float
    at: float


class LocalBuckets:
    """The same token bucket in this process's memory, for when Redis is away."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, per_minute: int, now: float | None = None) -> float:
        """0 when a token was taken, else the seconds until one is free."""
        now = time.monotonic() if now is None else now
        per_second = per_minute / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 100000:
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(tokens=float(per_minute), at=now)
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.at) * per_second)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / per_second


class RateLimiter:
    def __init__(
        self, redis_client: redis.Redis | None, tier_limits: dict[str, int], *, retry_redis_seconds: float = 5.0
    ) -> None:
        self._redis = redis_client
        self._script = redis_client.register_script(TOKEN_BUCKET_LUA) if redis_client is not None else None
        self._tier_limits = tier_limits
        self._local = LocalBuckets()
        self._retry_redis_seconds = retry_redis_seconds
        self._redis_down_since: float | None = None if redis_client is not None else time.monotonic()
        metrics.RATE_LIMIT_FALLBACK.set(0 if redis_client is not None else 1)

    def limit_for(self, tier: str) -> int:
        # An unknown tier gets the smallest limit, not none.
        return self._tier_limits.get(tier, min(self._tier_limits.values(), default=60))

    async def check(self, principal: str, tier: str) -> None:
        """Take one token for ``principal``; ServiceError(rate_limited) with Retry-After when none is left."""
        per_minute = self.limit_for(tier)
        wait = await self._take(principal, per_minute)
        if wait > 0:
            raise ServiceError(
                ErrorCode.rate_limited,
                f"rate limit of {per_minute} calls per minute (tier {tier}) reached; retry in {math.ceil(wait)} s",
                retry_after=float(math.ceil(wait)),
            )

    async def _take(self, principal: str, per_minute: int) -> float:
        if self._script is not None and self._redis_usable():
            try:
                allowed, wait_ms = await self._script(
                    keys=[f"infragenius:ratelimit:{principal}"], args=[per_minute, per_minute / 60000.0]
                )
            except (RedisError, OSError) as err:
                if self._redis_down_since is None:
                    log.warning(
                        "rate limit: Redis unreachable (%s); limiting in memory per replica", type(err).__name__
                    )
                self._redis_down_since = time.monotonic()
                metrics.RATE_LIMIT_FALLBACK.set(1)
            else:
                if self._redis_down_since is not None:
                    log.info("rate limit: Redis is back; limits are shared again")
                self._redis_down_since = None
                metrics.RATE_LIMIT_FALLBACK.set(0)
                if int(allowed) == 1:
                    return 0.0
                metrics.RATE_LIMITED.labels("redis").inc()
                return max(0.001, int(wait_ms) / 1000.0)
        wait = self._local.take(principal, per_minute)
        if wait > 0:
            metrics.RATE_LIMITED.labels("memory").inc()
        return wait

    def _redis_usable(self) -> bool:
        """After a failure, Redis is tried again only every few seconds, so an outage does not slow every call."""
        if self._redis_down_since is None:
            return True
        return time.monotonic() - self._redis_down_since >= self._retry_redis_seconds
