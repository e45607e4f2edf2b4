"""Build the explanation prompt from findings: anonymized, ordered by severity, within a token budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from infragenius.llm.anonymize import Anonymizer
from infragenius.models.findings import Finding
from infragenius.snapshot import Snapshot

PROMPT_VERSION = "explain-v1"
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "prompts"),
    autoescape=False,  # plain-text prompts, not HTML
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    keep_trailing_newline=True,
)
# Conservative for English mixed with identifiers and numbers: about 3 characters per token.
CHARS_PER_TOKEN = 3.0
MAX_EVIDENCE_PER_FINDING = 6


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    finding_ids: list[str]
    findings_sent: int
    findings_total: int
    estimated_tokens: int
    anonymizer: Anonymizer


def anonymizer_for(snapshot: Snapshot, findings: Sequence[Finding]) -> Anonymizer:
    """Register every name the findings or snapshot could mention."""
    anon = Anonymizer()
    anon.add_names("NAMESPACE", [snapshot.namespace, *(f.resource.namespace or "" for f in findings)])
    anon.add_names("NODE", [n.get("metadata", {}).get("name", "") for n in snapshot.items("Node")])
    anon.add_names("SERVICE", [s.get("metadata", {}).get("name", "") for s in snapshot.items("Service")])
    workloads = [
        o.get("metadata", {}).get("name", "")
        for kind in (
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "CronJob",
            "Ingress",
            "PersistentVolumeClaim",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "ConfigMap",
            "NetworkPolicy",
            "ResourceQuota",
        )
        for o in snapshot.items(kind)
    ]
    workloads += [f.resource.name for f in findings if f.resource.kind not in ("Pod", "Node", "Service")]
    workloads += [o.name for f in findings for o in f.owners]
    anon.add_names("WORKLOAD", workloads)
    anon.add_names("POD", [p.get("metadata", {}).get("name", "") for p in snapshot.items("Pod")])
    anon.add_names("OBJECT", [f.resource.name for f in findings])
    return anon


def _finding_view(finding: Finding) -> dict:
    return {
        "id": finding.id,
        "severity": finding.severity.value,
        "kind": finding.resource.kind,
        "name": finding.resource.name,
        "affected": finding.affected,
        "title": finding.title,
        "evidence": [{"source": e.source, "value": e.value} for e in finding.evidence[:MAX_EVIDENCE_PER_FINDING]],
        "remediation": finding.remediation,
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
    anon = anonymizer_for(snapshot, findings) if anonymize else Anonymizer()
    system = _TEMPLATES.get_template("explain.v1.system.j2").render()
    counts = {"critical": 0, "warning": 0, "info": 0}
    for f in findings:
        counts[f.severity.value] += 1
    if snapshot.namespace is None:  # a cluster-wide analysis
        namespace = "(all namespaces)"
    else:
        namespace = anon.mask(snapshot.namespace) if anonymize else snapshot.namespace
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
    # Findings arrive most severe first; render and mask only as many as fit, stop at the first that does not.
    for finding in findings:
        block = finding_template.render(f=_finding_view(finding))
        if anonymize:
            block = anon.mask(block)  # one pass over the rendered block, not one per field
        cost = estimate_tokens(block)
        if used + cost > budget:
            break
        blocks.append(block)
        ids.append(finding.id)
        used += cost
    user = header(len(findings) - len(blocks)) + "".join(blocks)
    return Prompt(
        system=system,
        user=user,
        finding_ids=ids,
        findings_sent=len(ids),
        findings_total=len(findings),
        estimated_tokens=estimate_tokens(system) + estimate_tokens(user),
        anonymizer=anon,
    )
