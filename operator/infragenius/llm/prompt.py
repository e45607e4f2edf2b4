"""Build the explanation prompt from findings: anonymized, ordered by severity, within a token budget."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import re2

from infragenius.llm.anonymize import Anonymizer
from infragenius.models.findings import Evidence, Finding
from infragenius.snapshot import Snapshot

PROMPT_VERSION = "explain-v1"
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "prompts"),
    autoescape=False,  # plain-text prompts, not HTML
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    keep_trailing_newline=True,
)
# Untrusted text goes in as a JSON string: quoted, escaped, and unable to end its own quotes.
_TEMPLATES.filters["data"] = lambda value: json.dumps(str(value), ensure_ascii=False)
# Conservative for English mixed with identifiers and numbers: about 3 characters per token.
CHARS_PER_TOKEN = 3.0
MAX_EVIDENCE_PER_FINDING = 6


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    finding_ids: list[str]  # the ids of the findings sent, most severe first
    prompt_ids: list[str]  # the opaque ids the prompt and the reply use instead (FINDING_1, ...), same order
    findings_sent: int
    findings_total: int
    estimated_tokens: int
    anonymizer: Anonymizer


# Placeholder category of each kind's names; any other kind's names are OBJECT.
_KIND_CATEGORY = {
    "Namespace": "NAMESPACE",
    "Node": "NODE",
    "Service": "SERVICE",
    "ServiceAccount": "SERVICEACCOUNT",
    "Pod": "POD",
    "ConfigMap": "CONFIGMAP",
    "Secret": "SECRET",
    **dict.fromkeys(("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"), "WORKLOAD"),
}
# Per-field bounds on untrusted text (input is also cut before any pattern runs).
MAX_FIELD_CHARS = {"name": 253, "title": 300, "source": 200, "value": 600, "remediation": 400}
_CONTROL = re2.compile(r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+")


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        # API objects are plain dicts: test that first, the Mapping ABC check is ~10x slower (hot path).
        if type(obj) is dict or isinstance(obj, Mapping):
            obj = obj.get(key)
        else:
            return None
    return obj


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _pod_spec_refs(spec: Any, refs: list[tuple[str, str]]) -> None:
    """Append (category, name) of everything a pod spec names: mounts, env sources, accounts, pull secrets.

    Only names (non-empty strings) are appended; the caller's order is kept. This runs for every pod of the
    namespace on every analysis, so the common case (a plain dict, most keys absent) is tested first.
    """
    if type(spec) is not dict and not isinstance(spec, Mapping):
        return
    add = refs.append
    for category, key in _SPEC_NAME_FIELDS:
        value = spec.get(key)
        if isinstance(value, str) and value:
            add((category, value))
    pull_secrets, volumes = spec.get("imagePullSecrets"), spec.get("volumes")
    for ref in pull_secrets if pull_secrets.__class__ is list else ():
        _add(refs, "SECRET", _get(ref, "name"))
    for volume in volumes if volumes.__class__ is list else ():
        _add(refs, "CONFIGMAP", _get(volume, "configMap", "name"))
        _add(refs, "SECRET", _get(volume, "secret", "secretName"))
        _add(refs, "OBJECT", _get(volume, "persistentVolumeClaim", "claimName"))
        _add(refs, "SECRET", _get(volume, "csi", "nodePublishSecretRef", "name"))
        for source in _list(_get(volume, "projected", "sources")):
            _add(refs, "CONFIGMAP", _get(source, "configMap", "name"))
            _add(refs, "SECRET", _get(source, "secret", "name"))
    for key in ("containers", "initContainers", "ephemeralContainers"):
        containers = spec.get(key)
        if not containers or containers.__class__ is not list:
            continue
        for container in containers:
            if type(container) is not dict and not isinstance(container, Mapping):
                continue
            env_from, env_vars = container.get("envFrom"), container.get("env")
            if not env_from and not env_vars:
                continue
            for source in _list(env_from):
                _add(refs, "CONFIGMAP", _get(source, "configMapRef", "name"))
                _add(refs, "SECRET", _get(source, "secretRef", "name"))
            for env in _list(env_vars):
                _add(refs, "CONFIGMAP", _get(env, "valueFrom", "configMapKeyRef", "name"))
                _add(refs, "SECRET", _get(env, "valueFrom", "secretKeyRef", "name"))


_SPEC_NAME_FIELDS = (
    ("SERVICEACCOUNT", "serviceAccountName"),
    ("SERVICEACCOUNT", "serviceAccount"),
    ("NODE", "nodeName"),
    ("OBJECT", "priorityClassName"),
)
# Specific categories before OBJECT, so a name that is both reads as what it most likely is.
_CATEGORY_ORDER = {c: i for i, c in enumerate(("NAMESPACE", "NODE", "SERVICE", "WORKLOAD", "POD"))}


def _add(out: list[tuple[str, str]], category: str, value: Any) -> None:
    if isinstance(value, str) and value:
        out.append((category, value))


def snapshot_names(snapshot: Snapshot, findings: Sequence[Finding]) -> list[tuple[str, str]]:
    """(category, name) of every name the snapshot or findings know, namespaces first.

    Non-names (missing, empty, not a string) are skipped as they are met; the stable sort below then gives
    the same order as sorting everything and filtering after.
    """
    names: list[tuple[str, str]] = []
    _add(names, "NAMESPACE", snapshot.namespace)
    for f in findings:
        _add(names, "NAMESPACE", f.resource.namespace)
    refs: list[tuple[str, str]] = []
    for kind, objects in snapshot.objects.items():
        category = _KIND_CATEGORY.get(kind, "OBJECT")
        for obj in objects:
            metadata = _get(obj, "metadata")
            if type(metadata) is dict or isinstance(metadata, Mapping):
                _add(names, "NAMESPACE", metadata.get("namespace"))
                _add(refs, category, metadata.get("name"))
                for owner in _list(metadata.get("ownerReferences")):
                    _add(refs, "WORKLOAD", _get(owner, "name"))
            if kind == "Pod":
                _pod_spec_refs(_get(obj, "spec"), refs)
            elif kind == "CronJob":
                _pod_spec_refs(_get(obj, "spec", "jobTemplate", "spec", "template", "spec"), refs)
            else:
                template_spec = _get(obj, "spec", "template", "spec")
                if template_spec is not None:
                    _pod_spec_refs(template_spec, refs)
    for event in snapshot.events:
        involved = _get(event, "involvedObject")
        _add(names, "NAMESPACE", _get(involved, "namespace"))
        _add(refs, _KIND_CATEGORY.get(_get(involved, "kind"), "OBJECT"), _get(involved, "name"))
        _add(refs, "NODE", _get(event, "source", "host"))
    for f in findings:
        _add(refs, _KIND_CATEGORY.get(f.resource.kind, "OBJECT"), f.resource.name)
        for o in f.owners:
            _add(refs, _KIND_CATEGORY.get(o.kind, "WORKLOAD"), o.name)
    # A stable sort by category rank, as buckets: linear, and the same order as ``sorted(..., key=rank)``.
    buckets: list[list[tuple[str, str]]] = [[] for _ in range(len(_CATEGORY_ORDER) + 1)]
    for ref in refs:
        buckets[_CATEGORY_ORDER.get(ref[0], len(_CATEGORY_ORDER))].append(ref)
    for bucket in buckets:
        names += bucket
    return names


def name_registry(snapshot: Snapshot, findings: Sequence[Finding]) -> dict[str, str]:
    """name -> category of every name the findings or snapshot could mention: what the anonymizer masks.

    The first category listed wins and names shorter than two characters are left out, as
    ``Anonymizer.add_names`` does.
    """
    registry: dict[str, str] = {}
    for category, name in snapshot_names(snapshot, findings):
        if len(name) >= 2 and name not in registry:
            registry[name] = category
    return registry


def anonymizer_for(
    snapshot: Snapshot,
    findings: Sequence[Finding],
    *,
    anonymize: bool = True,
    registry: Mapping[str, str] | None = None,
) -> Anonymizer:
    """Register every name the findings or snapshot could mention (``registry``, when already computed)."""
    anon = Anonymizer(keep_identifiers=not anonymize)
    for name, category in (name_registry(snapshot, findings) if registry is None else registry).items():
        anon.add_names(category, [name])
    return anon


class ObjectVersions(str):
    """``object_versions``' encoding of a snapshot's objects: a type apart from text, for ``prompt_fingerprint``."""


def object_versions(snapshot: Snapshot) -> ObjectVersions | None:
    """(kind, uid, resourceVersion) of every object and event, encoded; None when one lacks uid or version.

    The API server gives an object a new resourceVersion on every write and a new uid when it is created
    again, so equal versions mean the same objects with the same content: the same name registry, without
    walking every pod spec again (the walk is most of a cache hit's cost in a large namespace). Gathering
    reads each kind the same way every run (full or metadata-only, slimmed the same), so the content an
    object's version stands for is the same too. Objects not read from the API (tests, hand-built
    snapshots) have no resourceVersion: None sends the caller to the walk.
    """
    fields: list[str] = []
    add = fields.append
    for kind, objects in [*snapshot.objects.items(), ("Event", snapshot.events)]:
        for obj in objects:
            metadata = obj.get("metadata") if type(obj) is dict else None
            if type(metadata) is not dict:
                return None
            uid, version = metadata.get("uid"), metadata.get("resourceVersion")
            if not (type(uid) is str and uid and type(version) is str and version):
                return None
            add(kind)
            add(uid)
            add(version)
    # NUL-separated, which is unambiguous only when no field holds a NUL: checked by counting them.
    encoded = "\0".join(fields)
    if encoded.count("\0") != max(len(fields) - 1, 0):
        return None
    return ObjectVersions(encoded)


def prompt_fingerprint(
    snapshot: Snapshot,
    findings: Sequence[Finding],
    missing_sources: Sequence[str],
    names: Mapping[str, str] | ObjectVersions,
    *,
    num_ctx: int,
    reserve_for_reply: int,
    anonymize: bool = True,
) -> str:
    """SHA-256 over everything ``build_prompt`` reads, so equal fingerprints mean equal prompts and maps.

    That is: the prompt version (templates), the namespace, every field of every finding (not only the
    ones rendered today, so a template change cannot silently miss one), the missing sources, the budget
    and the anonymize switch, and what decides which names are masked and how they are restored:
    ``names`` is either the name registry itself or ``object_versions`` of the snapshot (which determine
    it), tagged with which it is. The encoding is unambiguous: a one-line JSON array (no raw newline in
    it), a newline, then the registry as JSON or the versions' own checked encoding.
    """
    by_versions = isinstance(names, ObjectVersions)
    head = json.dumps(
        [
            PROMPT_VERSION,
            snapshot.namespace,
            [f.model_dump_json() for f in findings],
            list(missing_sources),
            num_ctx,
            reserve_for_reply,
            anonymize,
            "versions" if by_versions else "registry",
        ],
        separators=(",", ":"),
    )
    digest = hashlib.sha256(head.encode())
    digest.update(b"\n")
    tail = str(names) if isinstance(names, ObjectVersions) else json.dumps(list(names.items()))
    digest.update(tail.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def untrusted(text: Any, limit: int, anon: Anonymizer) -> str:
    """Cluster text for the prompt: bounded, control characters gone (newlines too), then masked."""
    cleaned = _CONTROL.sub(" ", str(text)[: limit * 2])
    if len(cleaned) > limit:
        cleaned = cleaned[:limit] + "..."
    return anon.mask(cleaned)


def _prompt_evidence(finding: Finding) -> list[Evidence]:
    """The first evidence items, and a container log excerpt even when it comes later: it is often what
    says why a container crashed. Its lines (untrusted, like all evidence) are masked like the rest."""
    first = finding.evidence[:MAX_EVIDENCE_PER_FINDING]
    logs = [e for e in finding.evidence[MAX_EVIDENCE_PER_FINDING:] if e.source.startswith("log:")][:1]
    return [
        Evidence(source=e.source, value=e.value.replace("\n", " | ")) if e.source.startswith("log:") else e
        for e in first + logs
    ]


def _finding_view(finding: Finding, finding_id: str, anon: Anonymizer) -> dict[str, Any]:
    bound = MAX_FIELD_CHARS
    return {
        "id": finding_id,
        "severity": finding.severity.value,
        "kind": untrusted(finding.resource.kind, bound["name"], anon),
        "name": untrusted(finding.resource.name, bound["name"], anon),
        "affected": finding.affected,
        "title": untrusted(finding.title, bound["title"], anon),
        "evidence": [
            {"source": untrusted(e.source, bound["source"], anon), "value": untrusted(e.value, bound["value"], anon)}
            for e in _prompt_evidence(finding)
        ],
        "remediation": untrusted(finding.remediation, bound["remediation"], anon),
    }


def build_prompt(
    snapshot: Snapshot,
    findings: Sequence[Finding],
    missing_sources: Sequence[str],
    *,
    num_ctx: int,
    reserve_for_reply: int,
    anonymize: bool = True,
    registry: Mapping[str, str] | None = None,
) -> Prompt:
    """Most severe findings first, as many as fit ``num_ctx - reserve_for_reply`` tokens.

    ``registry`` is ``name_registry(snapshot, findings)`` when the caller already has it.
    """
    anon = anonymizer_for(snapshot, findings, anonymize=anonymize, registry=registry)
    system = _TEMPLATES.get_template("explain.v1.system.j2").render()
    counts = {"critical": 0, "warning": 0, "info": 0}
    for f in findings:
        counts[f.severity.value] += 1
    if snapshot.namespace is None:  # a cluster-wide analysis
        namespace = "(all namespaces)"
    else:
        namespace = untrusted(snapshot.namespace, MAX_FIELD_CHARS["name"], anon)
    header_template = _TEMPLATES.get_template("explain.v1.header.j2")
    finding_template = _TEMPLATES.get_template("explain.v1.finding.j2")

    def header(omitted: int) -> str:
        return header_template.render(
            namespace=namespace, counts=counts, omitted=omitted, missing=list(missing_sources)
        )

    # Budget against the longest header (with the "omitted" note), so the final text always fits.
    budget = num_ctx - reserve_for_reply - estimate_tokens(system) - estimate_tokens(header(len(findings)))
    used = 0
    blocks: list[str] = []
    ids: list[str] = []
    real_ids: list[str] = []
    # Findings arrive most severe first; render and mask only as many as fit, stop at the first that does not.
    for finding in findings:
        # Per-prompt opaque ids: real ids are hashes of namespace and name, guessable from a short list.
        opaque = f"FINDING_{len(ids) + 1}"
        block = finding_template.render(f=_finding_view(finding, opaque, anon))
        cost = estimate_tokens(block)
        if used + cost > budget:
            break
        anon.bind(opaque, finding.id)
        blocks.append(block)
        ids.append(opaque)
        real_ids.append(finding.id)
        used += cost
    user = (
        header(len(findings) - len(blocks)) + "".join(blocks) + _TEMPLATES.get_template("explain.v1.footer.j2").render()
    )
    return Prompt(
        system=system,
        user=user,
        finding_ids=real_ids,
        prompt_ids=ids,
        findings_sent=len(ids),
        findings_total=len(findings),
        estimated_tokens=estimate_tokens(system) + estimate_tokens(user),
        anonymizer=anon,
    )
