"""Decode LIST pages into the snapshot's compact form: equal values shared, unread bulk dropped.

Thousands of pods of a few workloads repeat the same strings ("Running", images, node names, label
values) and the same sub-objects (probes, resources, tolerations, owner references, conditions of pods
that started together). As parsed JSON each repeat is a new object: ~13 KB a pod after ``managedFields``
are gone, of which only ~8% of the strings are distinct. :class:`Compactor` hands out one shared
instance per distinct value (strings, and dicts/lists below an object's top level), which takes a pod
to ~4 KB and leaves the garbage collector a fraction of the containers to scan.

Sharing is safe because a snapshot's objects are read-only for everyone (see ``snapshot.py``); the one
writer, ``kube._slim``, runs on the decoded page before it is compacted.

Decoding uses orjson: about twice as fast as ``json`` on LIST pages, with the same Python types out.
The cyclic garbage collector is paused while one page is decoded and compacted: the decoder creates
only acyclic containers, and a collection in the middle of a page would rescan every object already
held (measured: 3/4 of the time of decoding a 20,000-pod LIST whole).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

#: Fields no reader of a snapshot uses (detectors, prompt, incidents, history: checked by name), unique
#: per object so sharing cannot shrink them: dropped while compacting, by (kind, section, field).
POD_STATUS_UNREAD = frozenset({"podIPs", "hostIPs"})
CONTAINER_STATUS_UNREAD = frozenset({"containerID", "imageID"})

_DICT = object()  # key tags: a dict and a list with the same members must not share
_LIST = object()
# Objects at this depth and above (the object, its metadata/spec/status) are unique: not worth a key.
_SHARE_FROM_DEPTH = 2

_pause_lock = threading.Lock()
_pausers = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while any thread is inside; re-enable it (if it was on) after
    the last one leaves. Reference counting still frees everything as usual meanwhile."""
    global _pausers, _was_enabled
    with _pause_lock:
        if _pausers == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pausers -= 1
            if _pausers == 0 and _was_enabled:
                gc.enable()


def decode(data: bytes) -> Any:
    """JSON bytes to Python objects; raises ``orjson.JSONDecodeError`` (a ``ValueError``) on invalid
    UTF-8 or lone surrogate escapes, which the gatherer then reads leniently."""
    return orjson.loads(data)


class Compactor:
    """Shares equal values between the objects it compacts; one per LIST (its memo is dropped with it)."""

    def __init__(self) -> None:
        self._strings: dict[str, str] = {}
        self._shared: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def objects(self, items: list[Any], kind: str) -> list[Any]:
        """The page's objects in compact form (new containers; ``items`` is left as it was)."""
        if kind == "Pod":
            for item in items:
                _prune_pod(item)
        return [self._value(item, 0)[0] for item in items]

    def _value(self, value: Any, depth: int) -> tuple[Any, Any]:
        """(the shared value, its key); key None: the value is unique or unsharable, so its parent is too."""
        kind = type(value)
        if kind is str:
            shared = self._strings.setdefault(value, value)
            return shared, shared
        if kind is dict:
            out: dict[str, Any] = {}
            parts: list[Any] = [_DICT]
            sharable = True
            for key, item in value.items():
                out[key], item_key = self._value(item, depth + 1)
                if item_key is None:
                    sharable = False
                elif sharable:
                    parts.append(key)
                    parts.append(item_key)
            return self._share(out, parts, sharable, depth)
        if kind is list:
            members: list[Any] = []
            parts = [_LIST]
            sharable = True
            for item in value:
                shared_item, item_key = self._value(item, depth + 1)
                members.append(shared_item)
                if item_key is None:
                    sharable = False
                elif sharable:
                    parts.append(item_key)
            return self._share(members, parts, sharable, depth)
        if kind is int or kind is bool or value is None:
            return value, (kind, value)  # the type in the key: True == 1 must not share
        return value, None  # floats (0.0 == -0.0) and anything else: kept, never shared

    def _share(self, value: Any, parts: list[Any], sharable: bool, depth: int) -> tuple[Any, Any]:
        if not sharable or depth < _SHARE_FROM_DEPTH:
            return value, None
        key = tuple(parts)
        hit = self._shared.get(key)
        if hit is None:
            hit = self._shared[key] = (value, key)
        return hit


def _prune_pod(pod: dict[str, Any]) -> None:
    status = pod.get("status")
    if type(status) is not dict:
        return
    for field in POD_STATUS_UNREAD:
        status.pop(field, None)
    for group in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for container in status.get(group) or ():
            if type(container) is dict:
                for field in CONTAINER_STATUS_UNREAD:
                    container.pop(field, None)
