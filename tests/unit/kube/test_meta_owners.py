"""Metadata, references and owner references of raw objects."""

from __future__ import annotations

from infragenius.kube.meta import annotations_of, key_of, labels_of, name_of, namespace_of, ref_from_key, ref_of, uid_of
from infragenius.kube.owners import controller_ref, owner_of_kind, owner_refs
from infragenius.models.findings import ResourceRef

POD = {
    "metadata": {
        "name": "web-1",
        "namespace": "shop",
        "uid": "u-1",
        "labels": {"app": "web"},
        "annotations": {"a": "b"},
        "ownerReferences": [
            {"kind": "Job", "name": "nightly", "uid": "j"},
            {"kind": "ReplicaSet", "name": "web-abc", "uid": "rs", "controller": True},
        ],
    }
}


def test_metadata_fields() -> None:
    assert (name_of(POD), namespace_of(POD), uid_of(POD)) == ("web-1", "shop", "u-1")
    assert labels_of(POD) == {"app": "web"} and annotations_of(POD) == {"a": "b"}


def test_missing_metadata_reads_empty() -> None:
    assert (name_of({}), namespace_of({}), uid_of({}), dict(labels_of({}))) == ("", None, "", {})
    assert namespace_of({"metadata": {"namespace": ""}}) is None  # cluster-scoped either way


def test_one_ref_builder() -> None:
    assert ref_of(POD, "Pod") == ResourceRef(kind="Pod", name="web-1", namespace="shop")
    assert ref_of({"metadata": {"name": "node-1"}}, "Node") == ResourceRef(kind="Node", name="node-1")
    assert key_of(POD, "Pod") == ("Pod", "shop", "web-1")
    assert ref_from_key(key_of(POD, "Pod")) == ref_of(POD, "Pod")


def test_controller_ref_prefers_the_controller() -> None:
    ref = controller_ref(POD)
    assert ref is not None and ref["name"] == "web-abc"


def test_controller_ref_falls_back_to_the_first_owner() -> None:
    obj = {"metadata": {"ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": False}]}}
    ref = controller_ref(obj)
    assert ref is not None and ref["name"] == "db"
    assert controller_ref({"metadata": {}}) is None
    assert controller_ref(None) is None


def test_owner_of_kind() -> None:
    job = owner_of_kind(POD, "Job")
    assert job is not None and job["name"] == "nightly"
    assert owner_of_kind(POD, "CronJob") is None
    assert len(owner_refs(POD)) == 2 and owner_refs({}) == []
