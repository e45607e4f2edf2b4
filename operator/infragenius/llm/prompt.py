"""Build the explanation prompt from findings: anonymized, ordered by severity, within a token budget."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

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
        for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Ingress",
                     "PersistentVolumeClaim", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
                     "NetworkPolicy", "ResourceQuota")
        for o in snapshot.items(kind)
    ]
    workloads += [f.resource.name for f in findings if f.resource.kind not in ("Pod", "Node", "Service")]
    workloads += [o.name for f in findings for o in f.owners]
    anon.add_names("WORKLOAD", workloads)
    anon.add_names("POD", [p.get("metadata", {}).get("name", "") for p in snapshot.items("Pod")])
    anon.add_names("OBJECT", [f.resource.name for f in findings])
    return anon


def _finding_view(finding: Finding, anon: Anonymizer | None) -> dict:
    mask = anon.mask if anon else (lambda text: text)
    return {
        "id": finding.id,
        "severity": finding.severity.value,
        "kind": finding.resource.kind,
        "name": mask(finding.resource.name),
        "affected": finding.affected,
        "title": mask(finding.title),
        "evidence": [
            {"source": mask(e.source), "value": mask(e.value)} for e in finding.evidence[:MAX_EVIDENCE_PER_FINDING]
        ],
        "remediation": mask(finding.remediation),
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
    namespace = anon.mask(snapshot.namespace) if anonymize else snapshot.namespace
    user_template = _TEMPLATES.get_template("explain.v1.user.j2")

    def render(views: list[dict], omitted: int) -> str:
        return user_template.render(
            namespace=namespace, counts=counts, findings=views, omitted=omitted, missing=list(missing_sources)
        )

    budget = num_ctx - reserve_for_reply - estimate_tokens(system)
    used = estimate_tokens(render([], len(findings)))
    views: list[dict] = []
    # findings arrive sorted most severe first; stop at the first that does not fit.
    for finding in findings:
        view = _finding_view(finding, anon if anonymize else None)
        cost = estimate_tokens(render([view], 0)) - estimate_tokens(render([], 0))
        if used + cost > budget:
            break
        views.append(view)
        used += cost
    user = render(views, len(findings) - len(views))
    return Prompt(
        system=system,
        user=user,
        finding_ids=[v["id"] for v in views],
        findings_sent=len(views),
        findings_total=len(findings),
        estimated_tokens=estimate_tokens(system) + estimate_tokens(user),
        anonymizer=anon,
    )
