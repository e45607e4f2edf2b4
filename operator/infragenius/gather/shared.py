"""Identical reads shared between analyses that run close together (a "single flight").

When many analyses of the same namespace (or many namespaces, for cluster-scoped
kinds such as Nodes) run at once, each would LIST the same objects. A read here is
keyed by its request (path and query); a caller joins a read of the same request
that is still running, or takes the result of one that finished at most
``keep_seconds`` ago, **provided that read started no earlier than the caller's
``not_before``** (a ``time.monotonic()`` value). A caller passes the moment its request
was observed: a LIST started after that moment reads state at least as new as every
write the requester made before asking (LISTs without a resourceVersion are quorum
reads), so sharing never hands out a snapshot older than the request. Without a
``not_before`` a caller shares nothing.

Failed reads, and results longer than ``KEEP_MAX_ITEMS``, are never kept: whoever joined them gets the error,
the next caller reads again. A read runs as its own task, so a caller that is cancelled (operator
shutdown, handler timeout) does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

KEEP_SECONDS = 10.0
#: A finished read this big is not kept for later callers (only joined while running): keeping
#: whole LISTs of a big namespace would raise the operator's peak memory more than it saves.
KEEP_MAX_ITEMS = 2000
_SWEEP_EVERY = 1.0


@dataclass(eq=False)
class _Read:
    started: float
    task: asyncio.Task[Any]
    finished: float | None = None
    waiters: int = field(default=1)


class SharedReads:
    """Per event loop and API client; see the module docstring."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS) -> None:
        self.keep_seconds = keep_seconds
        self._reads: dict[Hashable, list[_Read]] = {}
        self._last_sweep = time.monotonic()
        #: Reads started / callers served from another caller's read (for logs and benchmarks).
        self.started = 0
        self.shared = 0

    async def read(self, key: Hashable, fetch: Callable[[], Awaitable[Any]], not_before: float | None) -> Any:
        if not_before is None:
            return await fetch()
        now = time.monotonic()
        self._sweep(now)
        for entry in reversed(self._reads.get(key, ())):
            if entry.started < not_before:
                break  # older entries started earlier still
            if entry.finished is not None and now - entry.finished > self.keep_seconds:
                continue
            if entry.task.done() and (entry.task.cancelled() or entry.task.exception() is not None):
                continue
            entry.waiters += 1
            self.shared += 1
            return await asyncio.shield(entry.task)
        entry = _Read(started=now, task=asyncio.ensure_future(fetch()))
        self.started += 1
        entry.task.add_done_callback(functools.partial(self._done, key, entry))
        self._reads.setdefault(key, []).append(entry)
        return await asyncio.shield(entry.task)

    def _done(self, key: Hashable, entry: _Read, task: asyncio.Task[Any]) -> None:
        entry.finished = time.monotonic()
        if task.cancelled() or task.exception() is not None or _too_big(task.result()):
            self._remove(key, entry)  # whoever joined already has it; nobody new gets it

    def _remove(self, key: Hashable, entry: _Read) -> None:
        entries = self._reads.get(key)
        if entries and entry in entries:
            entries.remove(entry)
            if not entries:
                del self._reads[key]

    def _sweep(self, now: float) -> None:
        """Forget finished reads older than ``keep_seconds`` (they hold whole LIST results)."""
        if now - self._last_sweep < _SWEEP_EVERY:
            return
        self._last_sweep = now
        for key in list(self._reads):
            kept = [e for e in self._reads[key] if e.finished is None or now - e.finished <= self.keep_seconds]
            if kept:
                self._reads[key] = kept
            else:
                del self._reads[key]

    def __len__(self) -> int:
        return sum(len(v) for v in self._reads.values())


def _too_big(result: Any) -> bool:
    return isinstance(result, list) and len(result) > KEEP_MAX_ITEMS


_BY_CLIENT: weakref.WeakKeyDictionary[Any, tuple[asyncio.AbstractEventLoop, SharedReads]] = weakref.WeakKeyDictionary()


def for_client(api: Any) -> SharedReads:
    """The SharedReads of this API client in the running event loop (a new one for a new loop)."""
    loop = asyncio.get_running_loop()
    found = _BY_CLIENT.get(api)
    if found is None or found[0] is not loop:
        found = (loop, SharedReads())
        _BY_CLIENT[api] = found
    return found[1]
