"""Build the explanation prompt from findings: anonymized, ordered by severity, within a token budget."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
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
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _pod_spec_refs(spec: Any) -> Iterator[tuple[str, Any]]:
    """(category, name) of everything a pod spec names: mounts, env sources, accounts, pull secrets."""
    yield "SERVICEACCOUNT", _get(spec, "serviceAccountName")
    yield "SERVICEACCOUNT", _get(spec, "serviceAccount")
    yield "NODE", _get(spec, "nodeName")
    yield "OBJECT", _get(spec, "priorityClassName")
    for ref in _list(_get(spec, "imagePullSecrets")):
        yield "SECRET", _get(ref, "name")
    for volume in _list(_get(spec, "volumes")):
        yield "CONFIGMAP", _get(volume, "configMap", "name")
        yield "SECRET", _get(volume, "secret", "secretName")
        yield "OBJECT", _get(volume, "persistentVolumeClaim", "claimName")
        yield "SECRET", _get(volume, "csi", "nodePublishSecretRef", "name")
        for source in _list(_get(volume, "projected", "sources")):
            yield "CONFIGMAP", _get(source, "configMap", "name")
            yield "SECRET", _get(source, "secret", "name")
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in _list(_get(spec, key)):
            for source in _list(_get(container, "envFrom")):
                yield "CONFIGMAP", _get(source, "configMapRef", "name")
                yield "SECRET", _get(source, "secretRef", "name")
            for env in _list(_get(container, "env")):
                yield "CONFIGMAP", _get(env, "valueFrom", "configMapKeyRef", "name")
                yield "SECRET", _get(env, "valueFrom", "secretKeyRef", "name")


def snapshot_names(snapshot: Snapshot, findings: Sequence[Finding]) -> list[tuple[str, str]]:
    """(category, name) of every name the snapshot or findings know, namespaces first."""
    names: list[tuple[str, Any]] = [("NAMESPACE", snapshot.namespace)]
    names += [("NAMESPACE", f.resource.namespace) for f in findings]
    refs: list[tuple[str, Any]] = []
    for kind, objects in snapshot.objects.items():
        category = _KIND_CATEGORY.get(kind, "OBJECT")
        for obj in objects:
            names.append(("NAMESPACE", _get(obj, "metadata", "namespace")))
            refs.append((category, _get(obj, "metadata", "name")))
            refs += [("WORKLOAD", _get(owner, "name")) for owner in _list(_get(obj, "metadata", "ownerReferences"))]
            if kind == "Pod":
                refs += _pod_spec_refs(_get(obj, "spec"))
            elif kind == "CronJob":
                refs += _pod_spec_refs(_get(obj, "spec", "jobTemplate", "spec", "template", "spec"))
            elif _get(obj, "spec", "template", "spec") is not None:
                refs += _pod_spec_refs(_get(obj, "spec", "template", "spec"))
    for event in snapshot.events:
        names.append(("NAMESPACE", _get(event, "involvedObject", "namespace")))
        kind = _get(event, "involvedObject", "kind")
        refs.append((_KIND_CATEGORY.get(kind, "OBJECT"), _get(event, "involvedObject", "name")))
        refs.append(("NODE", _get(event, "source", "host")))
    for f in findings:
        refs.append((_KIND_CATEGORY.get(f.resource.kind, "OBJECT"), f.resource.name))
        refs += [(_KIND_CATEGORY.get(o.kind, "WORKLOAD"), o.name) for o in f.owners]
    # Specific categories before OBJECT, so a name that is both reads as what it most likely is.
    order = {c: i for i, c in enumerate(("NAMESPACE", "NODE", "SERVICE", "WORKLOAD", "POD"))}
    refs.sort(key=lambda ref: order.get(ref[0], len(order)))
    return [(c, n) for c, n in names + refs if isinstance(n, str) and n]


def anonymizer_for(snapshot: Snapshot, findings: Sequence[Finding], *, anonymize: bool = True) -> Anonymizer:
    """Register every name the findings or snapshot could mention."""
    anon = Anonymizer(keep_identifiers=not anonymize)
    for category, name in snapshot_names(snapshot, findings):
        anon.add_names(category, [name])
    return anon


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
) -> Prompt:
    """Most severe findings first, as many as fit ``num_ctx - reserve_for_reply`` tokens."""
    anon = anonymizer_for(snapshot, findings, anonymize=anonymize)
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
