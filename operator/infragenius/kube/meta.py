"""Object metadata and references: the fields every API object has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infragenius.models.findings import ResourceRef

#: A raw API object as the API serves it (camelCase JSON); read-only by convention.
Obj = Mapping[str, Any]

#: (kind, namespace, name): a hashable, allocation-cheap stand-in for ResourceRef in hot loops.
Key = tuple[str, str | None, str]


def meta(obj: Obj) -> Mapping[str, Any]:
    """``metadata``, or an empty mapping when the object has none."""
    return obj.get("metadata") or {}


# The accessors below read ``metadata`` inline rather than through meta(): detectors call them hundreds of
# thousands of times on a large namespace, and the extra call was a measurable share of detection.


def name_of(obj: Obj) -> str:
    name: str = (obj.get("metadata") or {}).get("name", "")
    return name


def namespace_of(obj: Obj) -> str | None:
    """The namespace; None for cluster-scoped objects (an empty string means the same)."""
    return (obj.get("metadata") or {}).get("namespace") or None


def uid_of(obj: Obj) -> str:
    uid: str = (obj.get("metadata") or {}).get("uid", "")
    return uid


def labels_of(obj: Obj) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def annotations_of(obj: Obj) -> Mapping[str, str]:
    annotations: Mapping[str, str] = meta(obj).get("annotations") or {}
    return annotations


def ref_of(obj: Obj, kind: str) -> ResourceRef:
    """The ResourceRef of an object. Raw objects in a list carry no ``kind``, so the caller names it."""
    return ref_from_key(key_of(obj, kind))


def key_of(obj: Obj, kind: str) -> Key:
    return (kind, namespace_of(obj), name_of(obj))


def ref_from_key(key: Key) -> ResourceRef:
    kind, namespace, name = key
    return ResourceRef(kind=kind, name=name, namespace=namespace)
