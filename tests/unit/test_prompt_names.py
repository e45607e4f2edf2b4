"""The fast ``snapshot_names`` must list exactly what the straightforward walk it replaced listed.

The names decide what is masked before text leaves for the model, so a faster walk that missed one would
be a leak: the reference below is the previous implementation, verbatim, and both run on hand-written
specs covering every field and on generated hostile shapes (wrong types, missing keys, empty strings).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infragenius.detectors.base import finding
from infragenius.llm.prompt import _KIND_CATEGORY, snapshot_names
from infragenius.models.findings import Finding, ResourceRef, Severity
from infragenius.snapshot import Snapshot


def _ref_get(obj: Any, *path: str) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def _ref_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _ref_pod_spec_refs(spec: Any) -> Iterator[tuple[str, Any]]:
    yield "SERVICEACCOUNT", _ref_get(spec, "serviceAccountName")
    yield "SERVICEACCOUNT", _ref_get(spec, "serviceAccount")
    yield "NODE", _ref_get(spec, "nodeName")
    yield "OBJECT", _ref_get(spec, "priorityClassName")
    for ref in _ref_list(_ref_get(spec, "imagePullSecrets")):
        yield "SECRET", _ref_get(ref, "name")
    for volume in _ref_list(_ref_get(spec, "volumes")):
        yield "CONFIGMAP", _ref_get(volume, "configMap", "name")
        yield "SECRET", _ref_get(volume, "secret", "secretName")
        yield "OBJECT", _ref_get(volume, "persistentVolumeClaim", "claimName")
        yield "SECRET", _ref_get(volume, "csi", "nodePublishSecretRef", "name")
        for source in _ref_list(_ref_get(volume, "projected", "sources")):
            yield "CONFIGMAP", _ref_get(source, "configMap", "name")
            yield "SECRET", _ref_get(source, "secret", "name")
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in _ref_list(_ref_get(spec, key)):
            for source in _ref_list(_ref_get(container, "envFrom")):
                yield "CONFIGMAP", _ref_get(source, "configMapRef", "name")
                yield "SECRET", _ref_get(source, "secretRef", "name")
            for env in _ref_list(_ref_get(container, "env")):
                yield "CONFIGMAP", _ref_get(env, "valueFrom", "configMapKeyRef", "name")
                yield "SECRET", _ref_get(env, "valueFrom", "secretKeyRef", "name")


def reference_snapshot_names(snapshot: Snapshot, findings: Sequence[Finding]) -> list[tuple[str, str]]:
    names: list[tuple[str, Any]] = [("NAMESPACE", snapshot.namespace)]
    names += [("NAMESPACE", f.resource.namespace) for f in findings]
    refs: list[tuple[str, Any]] = []
    for kind, objects in snapshot.objects.items():
        category = _KIND_CATEGORY.get(kind, "OBJECT")
        for obj in objects:
            names.append(("NAMESPACE", _ref_get(obj, "metadata", "namespace")))
            refs.append((category, _ref_get(obj, "metadata", "name")))
            refs += [
                ("WORKLOAD", _ref_get(owner, "name"))
                for owner in _ref_list(_ref_get(obj, "metadata", "ownerReferences"))
            ]
            if kind == "Pod":
                refs += _ref_pod_spec_refs(_ref_get(obj, "spec"))
            elif kind == "CronJob":
                refs += _ref_pod_spec_refs(_ref_get(obj, "spec", "jobTemplate", "spec", "template", "spec"))
            elif _ref_get(obj, "spec", "template", "spec") is not None:
                refs += _ref_pod_spec_refs(_ref_get(obj, "spec", "template", "spec"))
    for event in snapshot.events:
        names.append(("NAMESPACE", _ref_get(event, "involvedObject", "namespace")))
        kind = _ref_get(event, "involvedObject", "kind")
        refs.append((_KIND_CATEGORY.get(kind, "OBJECT"), _ref_get(event, "involvedObject", "name")))
        refs.append(("NODE", _ref_get(event, "source", "host")))
    for f in findings:
        refs.append((_KIND_CATEGORY.get(f.resource.kind, "OBJECT"), f.resource.name))
        refs += [(_KIND_CATEGORY.get(o.kind, "WORKLOAD"), o.name) for o in f.owners]
    order = {c: i for i, c in enumerate(("NAMESPACE", "NODE", "SERVICE", "WORKLOAD", "POD"))}
    refs.sort(key=lambda ref: order.get(ref[0], len(order)))
    return [(c, n) for c, n in names + refs if isinstance(n, str) and n]


FULL_SPEC = {
    "serviceAccountName": "sa-a",
    "serviceAccount": "sa-b",
    "nodeName": "node-a",
    "priorityClassName": "high",
    "imagePullSecrets": [{"name": "pull-a"}, {}, "junk"],
    "volumes": [
        {"configMap": {"name": "cm-a"}},
        {"secret": {"secretName": "sec-a"}},
        {"persistentVolumeClaim": {"claimName": "pvc-a"}},
        {"csi": {"nodePublishSecretRef": {"name": "csi-sec"}}},
        {"projected": {"sources": [{"configMap": {"name": "cm-p"}}, {"secret": {"name": "sec-p"}}]}},
        None,
    ],
    "containers": [
        {
            "envFrom": [{"configMapRef": {"name": "cm-e"}}, {"secretRef": {"name": "sec-e"}}],
            "env": [
                {"valueFrom": {"configMapKeyRef": {"name": "cm-k"}}},
                {"valueFrom": {"secretKeyRef": {"name": "sec-k"}}},
                {"value": "plain"},
            ],
        },
        "not-a-container",
    ],
    "initContainers": [{"env": [{"valueFrom": {"secretKeyRef": {"name": "init-sec"}}}]}],
    "ephemeralContainers": [{"envFrom": [{"secretRef": {"name": "eph-sec"}}]}],
}


def _finding(kind: str, name: str, namespace: str | None, owners: list[ResourceRef]) -> Finding:
    return finding(
        detector="pod",
        severity=Severity.warning,
        resource=ResourceRef(kind=kind, name=name, namespace=namespace),
        problem="x",
        title="t",
        evidence=[],
        remediation="r",
        owners=owners,
    )


def full_snapshot() -> Snapshot:
    meta = {"namespace": "shop"}
    return Snapshot.build(
        namespace="shop",
        objects={
            "Pod": [
                {
                    "metadata": {"name": "web-1", **meta, "ownerReferences": [{"name": "web-rs"}, {}]},
                    "spec": FULL_SPEC,
                },
                {"metadata": "junk", "spec": "junk"},
                {},
            ],
            "Deployment": [{"metadata": {"name": "web", **meta}, "spec": {"template": {"spec": FULL_SPEC}}}],
            "CronJob": [
                {
                    "metadata": {"name": "nightly", **meta},
                    "spec": {"jobTemplate": {"spec": {"template": {"spec": {"nodeName": "node-c"}}}}},
                }
            ],
            "Service": [{"metadata": {"name": "web", "namespace": "other"}}],
            "Lease": [{"metadata": {"name": "lock", **meta}, "spec": {"template": "junk"}}],
        },
        events=[
            {"involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "shop"}, "source": {"host": "node-e"}},
            {"involvedObject": "junk"},
            {},
        ],
    )


def test_fast_walk_lists_every_name_the_reference_lists_in_the_same_order() -> None:
    snapshot = full_snapshot()
    findings = [
        _finding("Deployment", "web", "shop", [ResourceRef(kind="ReplicaSet", name="web-rs", namespace="shop")]),
        _finding("Node", "node-a", None, []),
    ]
    expected = reference_snapshot_names(snapshot, findings)
    assert ("SECRET", "eph-sec") in expected and ("NODE", "node-c") in expected  # the fixture reaches every field
    assert snapshot_names(snapshot, findings) == expected


def test_fast_walk_matches_the_reference_on_the_benchmark_namespace() -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from llm_stage import synthetic_namespace

    snapshot = synthetic_namespace(pods=200)
    assert snapshot_names(snapshot, []) == reference_snapshot_names(snapshot, [])


# Hostile shapes: any JSON value where the walk expects a dict, a list or a name.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", "a", "web", "node-1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(sorted(FULL_SPEC)), inner, max_size=3),
    max_leaves=12,
)
_spec = st.fixed_dictionaries({}, optional=dict.fromkeys(FULL_SPEC, _json)) | _json


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod_spec=_spec, template_spec=_spec, name=_json, host=_json)
def test_fast_walk_matches_the_reference_on_generated_shapes(
    pod_spec: Any, template_spec: Any, name: Any, host: Any
) -> None:
    snapshot = Snapshot.build(
        namespace="shop",
        objects={
            "Pod": [{"metadata": {"name": name, "namespace": name}, "spec": pod_spec}, {"spec": FULL_SPEC}],
            "StatefulSet": [{"metadata": {"name": "db"}, "spec": {"template": {"spec": template_spec}}}],
        },
        events=[{"involvedObject": {"kind": "Pod", "name": name}, "source": {"host": host}}],
    )
    assert snapshot_names(snapshot, []) == reference_snapshot_names(snapshot, [])
