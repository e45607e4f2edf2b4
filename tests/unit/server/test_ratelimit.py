"""The token bucket: the Lua script in a real Redis, shared by two limiters; the in-memory fallback."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as redis

from infragenius.server import metrics
from infragenius.server.errors import ErrorCode, ServiceError
from infragenius.server.ratelimit import LocalBuckets, RateLimiter


def test_local_bucket_allows_the_tier_then_refills_at_its_rate() -> None:
    buckets = LocalBuckets()
    assert all(buckets.take("k", 60, now=100.0) == 0 for _ in range(60))
    assert buckets.take("k", 60, now=100.0) == pytest.approx(1.0)
    # One second later one token (60 per minute) is back, and only one.
    assert buckets.take("k", 60, now=101.0) == 0
    assert buckets.take("k", 60, now=101.0) > 0
    assert buckets.take("other", 60, now=101.0) == 0


async def test_two_limiters_share_one_bucket_in_redis(redis_url: str) -> None:
    first_client, second_client = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    try:
        limits = {"free": 60, "team": 600}
        first, second = RateLimiter(first_client, limits), RateLimiter(second_client, limits)
        principal = f"key:test/{uuid.uuid4().hex[:8]}"
        allowed = 0
        refused: ServiceError | None = None
        # Alternate replicas; the bucket refills one token a second, so allow for the time the loop takes.
        for call in range(200):
            try:
                await (first if call % 2 else second).check(principal, "free")
                allowed += 1
            except ServiceError as err:
                refused = err
                break
        assert refused is not None and refused.code is ErrorCode.rate_limited
        assert 60 <= allowed <= 62
        assert refused.retry_after is not None and refused.retry_after >= 1
        assert metrics.RATE_LIMIT_FALLBACK._value.get() == 0
    finally:
        await first_client.aclose()
        await second_client.aclose()


async def test_unreachable_redis_falls_back_to_a_per_replica_limit() -> None:
    # Nothing listens on port 1: every Redis call fails at once.
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    limiter = RateLimiter(unreachable, {"free": 60})
    principal = f"key:test/{uuid.uuid4().hex[:8]}"
    for _ in range(60):
        await limiter.check(principal, "free")
    with pytest.raises(ServiceError) as refused:
        await limiter.check(principal, "free")
    assert refused.value.code is ErrorCode.rate_limited
    assert metrics.RATE_LIMIT_FALLBACK._value.get() == 1
    await unreachable.aclose()


def test_unknown_tier_gets_the_smallest_limit() -> None:
    assert RateLimiter(None, {"free": 60, "team": 600}).limit_for("gold") == 60
