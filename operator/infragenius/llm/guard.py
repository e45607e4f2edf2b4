"""Keep a dead or busy model server cheap: a circuit breaker and concurrency limits."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class CircuitOpen(Exception):
    pass


class CircuitBreaker:
    """After ``threshold`` consecutive failures, fail fast for ``cooldown`` seconds, then try one call."""

    def __init__(self, threshold: int = 2, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.cooldown, self._clock = threshold, cooldown, clock
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        if self._opened_at is None:
            return False
        # Past the cooldown it is half-open: one call goes through.
        return self._clock() - self._opened_at < self.cooldown

    def check(self) -> None:
        if self.is_open:
            remaining = self.cooldown - (self._clock() - (self._opened_at or 0))
            raise CircuitOpen(f"model server failed {self._failures} times in a row; retrying in {remaining:.0f}s")

    def success(self) -> None:
        self._failures, self._opened_at = 0, None

    def failure(self) -> None:
        self._failures += 1
        if self._failures >= self.threshold:
            self._opened_at = self._clock()


class Limiter:
    """A global cap on in-flight calls and a per-namespace cap, so one team cannot starve the GPU."""

    def __init__(self, global_limit: int = 2, per_namespace: int = 1) -> None:
        self._global = asyncio.Semaphore(global_limit)
        self._per_namespace_limit = per_namespace
        self._namespaces: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self._per_namespace_limit)
        )
        self.in_flight = 0
        self.peak = 0

    @asynccontextmanager
    async def slot(self, namespace: str) -> AsyncIterator[None]:
        async with self._namespaces[namespace], self._global:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1
