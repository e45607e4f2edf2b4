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
the next caller reads again. All kept results together hold at most ``KEEP_TOTAL_ITEMS`` objects; the oldest
go first.

Why a minute: a read is only of use to runs observed before it started, that is runs already waiting in the
queue. When hundreds of analyses arrive at once, those of one namespace wait up to tens of seconds for a work
slot; with a short window each of them read the namespace again.

A read runs as its own task, so a caller that is cancelled (operator shutdown, handler timeout) does not
cancel it for the others.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

KEEP_SECONDS = 60.0
#: A finished read this big is not kept for later callers (only joined while running): keeping
#: whole LISTs of a big namespace would raise the operator's peak memory more than it saves.
KEEP_MAX_ITEMS = 2000
#: Objects held by all kept results together (a bound on memory whatever the number of namespaces).
KEEP_TOTAL_ITEMS = 50_000
_SWEEP_EVERY = 1.0


@dataclass(eq=False)
class _Read:
    started: float
    task: asyncio.Task[Any]
    finished: float | None = None
    waiters: int = field(default=1)
    items: int = 0


class SharedReads:
    """Per event loop and API client; see the module docstring."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS) -> None:
        self.keep_seconds = keep_seconds
        self._reads: dict[Hashable, list[_Read]] = {}
        self._last_sweep = time.monotonic()
        self._kept_items = 0
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
            return
        result = task.result()
        entry.items = len(result) if isinstance(result, list) else 1
        self._kept_items += entry.items
        if self._kept_items > KEEP_TOTAL_ITEMS:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        finished = sorted(
            ((e.finished, key, e) for key, entries in self._reads.items() for e in entries if e.finished is not None),
            key=lambda found: found[0],
        )
        for _, key, entry in finished:
            if self._kept_items <= KEEP_TOTAL_ITEMS:
                break
            self._remove(key, entry)

    def _remove(self, key: Hashable, entry: _Read) -> None:
        entries = self._reads.get(key)
        if entries and entry in entries:
            entries.remove(entry)
            self._kept_items -= entry.items
            if not entries:
                del self._reads[key]

    def _sweep(self, now: float) -> None:
        """Forget finished reads older than ``keep_seconds`` (they hold whole LIST results)."""
        if now - self._last_sweep < _SWEEP_EVERY:
            return
        self._last_sweep = now
        for key in list(self._reads):
            for entry in list(self._reads.get(key, ())):
                if entry.finished is not None and now - entry.finished > self.keep_seconds:
                    self._remove(key, entry)

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
