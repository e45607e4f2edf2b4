"""Owner references: who controls an object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infragenius.kube.meta import Obj, meta


def owner_refs(obj: Obj | None) -> list[Mapping[str, Any]]:
    owners: list[Mapping[str, Any]] = meta(obj or {}).get("ownerReferences") or []
    return owners


def controller_ref(obj: Obj | None) -> Mapping[str, Any] | None:
    """The controlling ownerReference (``controller: true``).

    Falls back to the first ownerReference: objects built by hand or by older tools often omit the
    flag, and the only owner is then the controller in all but name.
    """
    return controller_among(owner_refs(obj))


def controller_among(owners: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The controlling one of an object's ownerReferences (see :func:`controller_ref`)."""
    for owner in owners:  # a plain loop: this runs for every object of every analysis
        if owner.get("controller"):
            return owner
    return owners[0] if owners else None


def owner_of_kind(obj: Obj, kind: str) -> Mapping[str, Any] | None:
    """The first ownerReference of a kind (e.g. the Job of a pod), controlling or not."""
    return next((o for o in owner_refs(obj) if o.get("kind") == kind), None)
