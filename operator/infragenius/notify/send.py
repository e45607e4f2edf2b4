"""Send one notification request; the outcome is data: sent, retry (5xx, 429, 408, timeouts, connection
errors) or failed (any other 4xx: sending it again would fail again). Error texts never carry the URL,
which for Slack and Teams is itself the secret."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

import aiohttp

from infragenius.notify.formats import HTTPRequest

RETRIED_STATUSES = frozenset({408, 425, 429})
MAX_BACKOFF_SECONDS = 300.0


class Delivery(str, Enum):
    sent = "sent"
    retry = "retry"
    failed = "failed"


@dataclass(frozen=True)
class Outcome:
    delivery: Delivery
    status: int | None
    error: str | None
    retry_after: float | None = None


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), MAX_BACKOFF_SECONDS) if value else None
    except ValueError:
        return None


async def send(session: aiohttp.ClientSession, request: HTTPRequest, timeout: float) -> Outcome:
    """aiohttp rather than httpx here: several times the throughput on a small machine (measured in
    benchmarks/notify_outbox.py), and already the operator's web server. Redirects are not followed: a
    receiver must not be able to bounce a notification to an address the sink was not allowed to name."""
    try:
        async with session.post(
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            await response.read()
            status, reason = response.status, response.reason or ""
            retry_after = response.headers.get("Retry-After")
    except TimeoutError as err:
        return Outcome(Delivery.retry, None, f"timed out after {timeout:g}s ({type(err).__name__})")
    except aiohttp.ClientError as err:
        return Outcome(Delivery.retry, None, f"could not connect ({type(err).__name__})")
    if 200 <= status < 300:
        return Outcome(Delivery.sent, status, None)
    text = f"HTTP {status} {reason}".strip()
    if status >= 500 or status in RETRIED_STATUSES:
        return Outcome(Delivery.retry, status, text, _retry_after(retry_after))
    return Outcome(Delivery.failed, status, text)


def backoff(attempt: int, base: float = 1.0, rng: random.Random | None = None) -> float:
    """Exponential with full jitter: a random wait in [half, all] of base * 2^attempt, at most 5 minutes."""
    ceiling = min(base * 2**attempt, MAX_BACKOFF_SECONDS)
    return (rng or random).uniform(ceiling / 2, ceiling)
