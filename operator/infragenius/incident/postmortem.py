"""Impact figures and the Markdown postmortem draft (Jinja2 template shipped in the package)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

import jinja2

from infragenius.incident.causes import Cause
from infragenius.incident.timeline import Timeline
from infragenius.kube.meta import name_of
from infragenius.kube.time import rfc3339
from infragenius.models.findings import ResourceRef
from infragenius.snapshot import Snapshot

TRUNCATION_NOTE = "\n\n_[truncated: the full postmortem is kept in history]_\n"


@dataclass
class ImpactFigures:
    workloads: list[ResourceRef] = field(default_factory=list)
    pods_affected: int = 0
    restarts: int = 0
    error_rate: float | None = None

    def to_status(self) -> dict:
        out = {
            "workloads": [w.model_dump(exclude_none=True) for w in self.workloads[:50]],
            "podsAffected": self.pods_affected,
            "restarts": self.restarts,
        }
        if self.error_rate is not None:
            out["errorRate"] = self.error_rate
        return out


def impact(snapshot: Snapshot, timeline: Timeline, error_rate: float | None = None) -> ImpactFigures:
    """Pods with a symptom (or on a failing node) and the workloads they roll up to."""
    bad_nodes = {e.node for e in timeline.symptoms if e.kind == "NodeCondition" and e.node}
    symptom_pods = {e.resource.name for e in timeline.symptoms if e.resource.kind == "Pod"}
    pods = [
        p
        for p in snapshot.items("Pod")
        if name_of(p) in symptom_pods or (p.get("spec") or {}).get("nodeName") in bad_nodes
    ]
    workloads: dict[tuple[str, str], ResourceRef] = {}
    for pod in pods:
        ref = snapshot.rollup_target(pod, "Pod")
        workloads.setdefault((ref.kind, ref.name), ref)
    for e in timeline.symptoms:
        if e.workload is not None and e.resource.kind != "Pod":
            workloads.setdefault((e.workload.kind, e.workload.name), e.workload)
    restarts = sum(
        int(cs.get("restartCount") or 0)
        for pod in pods
        for cs in (pod.get("status") or {}).get("containerStatuses") or []
    )
    return ImpactFigures(
        workloads=sorted(workloads.values(), key=lambda r: (r.kind, r.name)),
        pods_affected=len(pods),
        restarts=restarts,
        error_rate=error_rate,
    )


def action_items(causes: list[Cause]) -> list[str]:
    items: list[str] = []
    if causes:
        top = causes[0]
        if top.rule == "change before the first symptom":
            items.append(
                f"Roll back {top.resource.kind} {top.resource.name} "
                f"(`kubectl rollout undo {top.resource.kind.lower()}/{top.resource.name} -n {top.resource.namespace}`) "
                "and confirm recovery"
            )
            items.append("Find why the change was not caught before production (tests, canary, readiness gates)")
        elif top.rule == "dependency change":
            items.append(
                f"Restore the previous {top.resource.kind} {top.resource.name} (from version control, or "
                f"`kubectl diff` against the last applied manifest) and restart what depends on it if it reads it "
                "only at start-up; confirm recovery"
            )
            items.append(
                f"Version {top.resource.kind} changes with the workloads that depend on them, so a rollout shows them"
            )
        elif top.rule == "node condition":
            items.append(
                f"Investigate node {top.resource.name} (kubelet, runtime, network) "
                "and cordon/drain it if it stays unhealthy"
            )
            items.append("Spread replicas across nodes (topology spread constraints, PodDisruptionBudgets)")
        elif top.rule == "exceeded quota":
            items.append("Raise the ResourceQuota or lower requests so the workload can schedule")
        elif top.rule == "Insufficient":
            items.append("Add node capacity or lower requests; review autoscaling of the node pool")
        elif top.rule == "oom":
            items.append(f"Raise the memory limit of {top.resource.name} or fix its memory growth")
        else:
            items.append("Confirm the suspected cause with logs and metrics")
    items.append("Add or tune alerting so this is detected earlier")
    items.append("Review this draft, fill in detection and resolution times, and share it")
    return items


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("infragenius.incident", "templates"),
        autoescape=False,  # Markdown, not HTML
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("postmortem.md.j2")


def render(
    *,
    title: str,
    severity: str,
    namespace: str,
    timeline: Timeline,
    causes: list[Cause],
    figures: ImpactFigures,
    summary: str,
    alert: str | None = None,
    generated_at: dt.datetime | None = None,
) -> str:
    return _template().render(
        title=title,
        severity=severity,
        namespace=namespace,
        window_start=rfc3339(timeline.start),
        window_end=rfc3339(timeline.end),
        generated_at=rfc3339(generated_at or dt.datetime.now(dt.UTC)),
        summary=summary,
        impact=figures,
        alert=alert,
        timeline=[e.to_status() for e in timeline.entries],
        causes=causes,
        actions=action_items(causes),
    )


def bounded(markdown: str, limit: int) -> dict:
    """The status copy: at most ``limit`` characters, cut at a line end, with a truncated flag."""
    if len(markdown) <= limit:
        return {"markdown": markdown, "truncated": False, "totalChars": len(markdown)}
    cut = markdown.rfind("\n", 0, limit)
    cut = cut if cut > limit // 2 else limit
    return {"markdown": markdown[:cut] + TRUNCATION_NOTE, "truncated": True, "totalChars": len(markdown)}


def summarise(timeline: Timeline, causes: list[Cause], figures: ImpactFigures) -> str:
    first = timeline.first_symptom
    if first is None:
        return f"No symptom in the window ({len(timeline.entries)} timeline entries)."
    top = f"; most likely cause: {causes[0].title}" if causes else ""
    return (
        f"{len(timeline.symptoms)} symptoms from {rfc3339(first.time)} affecting {figures.pods_affected} pods in "
        f"{len(figures.workloads)} workloads{top}"
    )[:512]
