"""Kopf's "last handled configuration" kept in status and written by the run's own final status PATCH.

Kopf records, after a change handler has finished, the essence of the object it handled (spec, labels,
annotations) so that the next watch event can tell a change from a repeat. Stored in annotations, that record
costs one more PATCH of the main object per run (and one more watch event to every watcher). Kept in status
instead, it can ride along with the status PATCH the run makes anyway: a change handler asks for it
(``HandledInStatus.carry``), the run's final write includes it, and when Kopf then goes to store the same
essence, nothing is left to write.

Only a run's *final* write carries it (Completed, or a permanent failure): a run that will be retried must
leave the old record, or Kopf would take the retry's event for "nothing changed". A write that did not land
marks nothing, so Kopf then stores the record itself, as it always did.

Kopf ignores the events of its own PATCHes until it sees the version it wrote; it does not know the run's
writes. The events of those writes (Running, then Completed) may still be queued when the handler returns,
and their bodies predate the record. So the record that last landed is remembered per object and stands in
for an older one in such a body: those events are "nothing changed", not a new object to run again.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

#: Where the record lives (a JSON string, as Kopf writes it); the status models declare it.
FIELD = "lastHandledConfiguration"
#: Objects whose essences are remembered (a few hundred bytes each); beyond it the oldest fall back to Kopf's way.
REMEMBERED = 10_000


@dataclass
class Carried:
    """The record one change handler's final write takes along."""

    storage: HandledInStatus
    uid: str
    essence: Any

    def fragment(self) -> dict[str, str]:
        """What goes into the status patch, encoded as Kopf encodes it."""
        return {FIELD: json.dumps(self.essence, separators=(",", ":"))}

    def landed(self) -> None:
        """The final write carrying it was accepted: Kopf need not store it again."""
        _remember(self.storage.landed, self.uid, self.essence)


class HandledInStatus(kopf.StatusDiffBaseStorage):
    """Kopf's diff-base storage in ``status.lastHandledConfiguration``; reads the old annotation as well, so an
    upgraded operator does not take every existing object for new. Annotations under ``kopf_prefix`` (Kopf's
    retry progress) are not part of what a change is."""

    def __init__(self, kopf_prefix: str, legacy: kopf.DiffBaseStorage | None = None) -> None:
        super().__init__(field=f"status.{FIELD}")
        self.kopf_prefix = f"{kopf_prefix}/"
        self.legacy = legacy
        #: uid -> (resourceVersion, essence) Kopf built for the event it is handling.
        self.built: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        #: uid -> the record the object holds since our (or Kopf's) last write of it.
        self.landed: OrderedDict[str, Any] = OrderedDict()

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> Any:
        essence = super().build(body=body, extra_fields=extra_fields)
        annotations = (essence.get("metadata") or {}).get("annotations") or {}
        for key in [k for k in annotations if k.startswith(self.kopf_prefix)]:
            del annotations[key]
        self.remove_empty_stanzas(essence)
        meta = body.get("metadata") or {}
        _remember(self.built, str(meta.get("uid")), (str(meta.get("resourceVersion")), essence))
        return essence

    def fetch(self, *, body: kopf.Body) -> Any:
        landed = self.landed.get(_uid(body))
        if landed is not None:
            return landed  # newer than the record in a queued event's body, and equal to a fresh one's
        found = super().fetch(body=body)
        if found is None and self.legacy is not None:
            return self.legacy.fetch(body=body)
        return found

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        uid = _uid(body)
        if self.landed.get(uid) == essence:
            return  # the run's final status write already holds exactly this record
        super().store(body=body, patch=patch, essence=essence)
        _remember(self.landed, uid, essence)

    def carry(self, body: Mapping[str, Any]) -> Carried | None:
        """The record for the change being handled in ``body``; None when Kopf did not build one for this very
        version (then Kopf stores it itself, after the handler)."""
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid"))
        found = self.built.get(uid)
        if found is None or found[0] != str(meta.get("resourceVersion")):
            return None
        return Carried(self, uid, found[1])


def _uid(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("uid"))


def _remember(memory: OrderedDict[str, Any], uid: str, value: Any) -> None:
    memory[uid] = value
    memory.move_to_end(uid)
    while len(memory) > REMEMBERED:
        memory.popitem(last=False)
