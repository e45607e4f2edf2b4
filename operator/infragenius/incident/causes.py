"""Rank suspected causes from a timeline (pure). Every score comes from a stated rule, and every cause
says why it is ranked where it is.

Rules (score in [0, 1]):
- A rollout that changed a workload's pod template before the first symptom: 0.5 + 0.45 * closeness
  when that workload shows symptoms; closeness = exp(-gap / 15 min), so a change seconds before the
  first symptom scores about 0.95 and one an hour earlier about 0.5. In a workload a failing one
  depends on (through a Service it calls): 0.45 + 0.45 * closeness. In a workload that stayed healthy
  and that no failing workload depends on (a bystander): 0.05 + 0.1 * closeness. When that cannot be
  told (no symptom names a workload, or Services, ConfigMaps and NetworkPolicies were not gathered):
  0.3 + 0.45 * closeness. A rollout after the first symptom scores 0.15 (more likely a reaction); a
  first revision (the workload was created) 0.25.
- A change of something a failing workload depends on (a ConfigMap it mounts or reads, a Service it
  calls or is behind, a NetworkPolicy that selects it) before the first symptom: 0.45 + 0.45 * closeness;
  after it, 0.15. Changes nothing failing depends on are not listed (when no symptom names a workload,
  a change some workload depends on scores 0.3 + 0.45 * closeness).
- A node hosting target pods that turned NotReady: 0.75 + 0.2 * closeness to the first symptom
  (the NotReady transition may itself be the first symptom). A pressure condition: 0.5 + 0.3 * closeness.
- Quota exhaustion ("exceeded quota" events): 0.6 + 0.3 * closeness; insufficient node resources
  (FailedScheduling "Insufficient ..."): 0.55 + 0.3 * closeness; OOM kills: 0.5 + 0.3 * closeness.
- Symptoms without any of these: 0.2, naming the most frequent failure reason.
Ties are broken by the earlier time.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from infragenius.incident.timeline import Entry, Timeline
from infragenius.kube.time import rfc3339
from infragenius.models.findings import ResourceRef

CLOSENESS_SCALE_SECONDS = 900.0


@dataclass
class Cause:
    title: str
    resource: ResourceRef
    score: float
    rule: str
    time: dt.datetime
    evidence: list[tuple[str, str]] = field(default_factory=list)
    why: str = ""
    rank: int = 0

    def to_status(self) -> dict:
        return {
            "rank": self.rank,
            "title": self.title[:256],
            "resource": self.resource.model_dump(exclude_none=True),
            "score": round(self.score, 3),
            "why": self.why[:1024],
            "evidence": [{"label": label[:128], "value": value[:1024]} for label, value in self.evidence[:10]],
        }


def closeness(gap_seconds: float) -> float:
    return math.exp(-abs(gap_seconds) / CLOSENESS_SCALE_SECONDS)


def _gap_text(seconds: float) -> str:
    seconds = abs(int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60}m"


def _symptom_workloads(timeline: Timeline) -> set[tuple[str, str]]:
    return {(e.workload.kind, e.workload.name) for e in timeline.symptoms if e.workload is not None}


def _ref_text(refs: Iterable[tuple[str, str]]) -> str:
    return ", ".join(f"{kind} {name}" for kind, name in sorted(refs))


def _relation(entry: Entry, timeline: Timeline, affected: set[tuple[str, str]]) -> tuple[float, str]:
    """(base score, where) of a change before the first symptom, by how it relates to the failing workloads."""
    workload = entry.workload or entry.resource
    if (workload.kind, workload.name) in affected:
        return 0.5, "in the same workload"
    dependents = timeline.links.of((workload.kind, workload.name), affected)
    if dependents:
        how = "; ".join(f"{kind} {name} {text}" for (kind, name), text in dependents[:3])
        return 0.45, f"in a workload the failing ones depend on ({how})"
    if not affected or not timeline.links.known:
        unknown = "no symptom names a workload" if not affected else "Services and ConfigMaps were not gathered"
        return 0.3, f"in another workload than the failing ones (whether they depend on it is unknown: {unknown})"
    return 0.05, (
        f"in a workload that stayed healthy (no restart, termination or warning event of it in the window) "
        f"and that none of the failing workloads ({_ref_text(affected)}) depends on"
    )


def _rollout_cause(entry: Entry, first: Entry | None, timeline: Timeline, affected: set[tuple[str, str]]) -> Cause:
    workload = entry.workload or entry.resource
    same = (workload.kind, workload.name) in affected
    evidence = [("change", c) for c in entry.changes] + [("revision", f"{entry.previous_revision} -> {entry.revision}")]
    evidence.append((entry.resource.kind, entry.resource.name))
    evidence.append(("rolled out at", rfc3339(entry.time)))
    if entry.previous_revision is None:
        return Cause(
            title=f"{workload.kind} {workload.name} created (revision {entry.revision})",
            resource=workload,
            score=0.25 if same else 0.1,
            rule="first revision",
            time=entry.time,
            evidence=evidence,
            why=(
                "the workload was created in the window: "
                "a first revision is a weak suspect, with nothing earlier to compare"
            ),
        )
    what = "; ".join(entry.changes[:3]) or "pod template change"
    if first is None or entry.time > first.time:
        after = (
            f"{_gap_text((entry.time - first.time).total_seconds())} after the first symptom"
            if first
            else "with no symptom"
        )
        return Cause(
            title=f"Rollout of {workload.kind} {workload.name} to revision {entry.revision}: {what}",
            resource=workload,
            score=0.15,
            rule="rollout after the first symptom",
            time=entry.time,
            evidence=evidence,
            why=f"came {after}, so it is more likely a reaction than the cause",
        )
    gap = (first.time - entry.time).total_seconds()
    near = closeness(gap)
    base, where = _relation(entry, timeline, affected)
    span = 0.1 if base == 0.05 else 0.45
    evidence.append(
        (
            "first symptom",
            f"{rfc3339(first.time)} {first.kind} {first.resource.kind}/{first.resource.name}: {first.summary}",
        )
    )
    return Cause(
        title=f"Rollout of {workload.kind} {workload.name} to revision {entry.revision}: {what}",
        resource=workload,
        score=base + span * near,
        rule="change before the first symptom" if base > 0.05 else "healthy change elsewhere",
        time=entry.time,
        evidence=evidence,
        why=(
            f"changed {what} {_gap_text(gap)} before the first symptom ({first.summary[:120]}) {where}; "
            + (
                "a bystander's change ranks low, however close in time"
                if base == 0.05
                else "a change shortly before the first symptom in the same workload ranks highest, "
                "the closer the higher"
            )
            + f" (score {base} + {span} x closeness {near:.2f})"
        ),
    )


def _dependency_causes(timeline: Timeline, first: Entry | None, affected: set[tuple[str, str]]) -> list[Cause]:
    """Changes of Services, ConfigMaps and NetworkPolicies that failing workloads depend on."""
    causes = []
    for entry in timeline.entries:
        target = (entry.resource.kind, entry.resource.name)
        if entry.kind != "Change" or not timeline.links.dependents.get(target):
            continue  # nothing depends on it: not a suspect
        failing = timeline.links.of(target, affected)
        if affected and not failing:
            continue  # only healthy workloads depend on it
        dependents = failing or timeline.links.dependents[target]  # no symptom names a workload: all of them
        how = "; ".join(f"{kind} {name} {text}" for (kind, name), text in dependents[:3])
        evidence = [("change", entry.summary), *[("now", d) for d in entry.details]]
        evidence += [("depends on it", f"{kind} {name} {text}") for (kind, name), text in dependents[:5]]
        evidence.append(("changed at", rfc3339(entry.time)))
        title = f"{entry.summary} ({_ref_text(w for w, _ in dependents)})"
        if first is None or entry.time > first.time:
            after = f"{_gap_text((entry.time - first.time).total_seconds())} after the first symptom" if first else ""
            why = f"came {after or 'with no symptom'}, so it is more likely a reaction than the cause"
            causes.append(
                Cause(title, entry.resource, 0.15, "change after the first symptom", entry.time, evidence, why)
            )
            continue
        gap = (first.time - entry.time).total_seconds()
        near = closeness(gap)
        base = 0.45 if failing else 0.3
        whose = (
            "the failing workloads depend on it" if failing else "no symptom names a workload, but some depend on it"
        )
        why = (
            f"changed {_gap_text(gap)} before the first symptom ({first.summary[:120]}), and {whose} ({how}); "
            f"a workload that did not change itself often fails through what it depends on "
            f"(score {base} + 0.45 x closeness {near:.2f})"
        )
        causes.append(Cause(title, entry.resource, base + 0.45 * near, "dependency change", entry.time, evidence, why))
    return causes


def _node_causes(timeline: Timeline, first: Entry | None) -> list[Cause]:
    causes = []
    for entry in timeline.entries:
        if entry.kind != "NodeCondition" or entry.severity == "info":
            continue
        reference = first.time if first else entry.time
        gap = (entry.time - reference).total_seconds()
        near = closeness(gap)
        not_ready = entry.reason.startswith("Ready=")
        base, span = (0.75, 0.2) if not_ready else (0.5, 0.3)
        failing = sorted(
            {e.resource.name for e in timeline.symptoms if e.node == entry.node and e.resource.kind == "Pod"}
        )
        evidence = [("condition", f"{entry.reason} at {rfc3339(entry.time)}"), *[("detail", d) for d in entry.details]]
        if failing:
            evidence.append(("failing pods on the node", ", ".join(failing[:10])))
        title = f"Node {entry.node} NotReady" if not_ready else f"Node {entry.node} {entry.reason}"
        causes.append(
            Cause(
                title=title,
                resource=entry.resource,
                score=base + span * near,
                rule="node condition",
                time=entry.time,
                evidence=evidence,
                why=(
                    f"node {entry.node} hosts target pods and turned {entry.reason} "
                    + (
                        "as the first symptom"
                        if first is entry or gap == 0
                        else f"{_gap_text(gap)} {'after' if gap > 0 else 'before'} the first symptom"
                    )
                    + f"; pods on a {'NotReady' if not_ready else 'pressured'} node fail together "
                    f"(score {base} + {span} x closeness {near:.2f})"
                ),
            )
        )
    return causes


def _event_causes(timeline: Timeline, first: Entry | None) -> list[Cause]:
    causes: list[Cause] = []
    rules = (
        (
            "exceeded quota",
            "ResourceQuota exhausted",
            0.6,
            "a namespace quota blocks new pods; nothing can roll out or scale",
        ),
        (
            "Insufficient",
            "Cluster out of schedulable resources",
            0.55,
            "pods cannot be scheduled for lack of node capacity",
        ),
    )
    for needle, title, base, because in rules:
        hits = [e for e in timeline.entries if e.kind == "Event" and needle in e.summary]
        if not hits:
            continue
        earliest = hits[0]
        gap = (earliest.time - (first.time if first else earliest.time)).total_seconds()
        near = closeness(gap)
        causes.append(
            Cause(
                title=title,
                resource=earliest.workload or earliest.resource,
                score=base + 0.3 * near,
                rule=needle,
                time=earliest.time,
                evidence=[
                    ("event", f"{rfc3339(e.time)} {e.resource.kind}/{e.resource.name} {e.summary}") for e in hits[:5]
                ],
                why=(
                    f"{because}; first seen {_gap_text(gap)} from the first symptom "
                    f"(score {base} + 0.3 x closeness {near:.2f})"
                ),
            )
        )
    ooms = [e for e in timeline.entries if e.kind in ("Restart", "Termination") and e.reason == "OOMKilled"]
    if ooms:
        earliest = ooms[0]
        gap = (earliest.time - (first.time if first else earliest.time)).total_seconds()
        near = closeness(gap)
        causes.append(
            Cause(
                title=f"Memory limit too low for {(earliest.workload or earliest.resource).name} (OOMKilled)",
                resource=earliest.workload or earliest.resource,
                score=0.5 + 0.3 * near,
                rule="oom",
                time=earliest.time,
                evidence=[("termination", f"{rfc3339(e.time)} {e.summary}") for e in ooms[:5]],
                why=f"containers were killed for exceeding their memory limit, {_gap_text(gap)} from the first symptom "
                f"(score 0.5 + 0.3 x closeness {near:.2f})",
            )
        )
    return causes


def rank(timeline: Timeline, limit: int = 10) -> list[Cause]:
    """Suspected causes, most likely first, each with its rank, score, reason and evidence."""
    first = timeline.first_symptom
    affected = _symptom_workloads(timeline)
    causes = [_rollout_cause(e, first, timeline, affected) for e in timeline.entries if e.kind == "Rollout"]
    causes += _dependency_causes(timeline, first, affected)
    causes += _node_causes(timeline, first)
    causes += _event_causes(timeline, first)
    if timeline.symptoms and not any(c.score >= 0.3 for c in causes):
        reasons = Counter(e.reason or e.kind for e in timeline.symptoms)
        reason, count = reasons.most_common(1)[0]
        sample = next(e for e in timeline.symptoms if (e.reason or e.kind) == reason)
        causes.append(
            Cause(
                title=f"Unexplained {reason} ({count} entries); no change found in the window",
                resource=sample.workload or sample.resource,
                score=0.2,
                rule="symptom only",
                time=sample.time,
                evidence=[("symptom", f"{rfc3339(e.time)} {e.summary}") for e in timeline.symptoms[:5]],
                why=(
                    "no rollout, node, quota or capacity change explains the symptoms in the window; "
                    "this names the most frequent one"
                ),
            )
        )
    causes.sort(key=lambda c: (-round(c.score, 6), c.time))
    causes = causes[:limit]
    for i, cause in enumerate(causes, start=1):
        cause.rank = i
        if i == 1 and len(causes) > 1:
            position = f"ranked 1 of {len(causes)} (score {cause.score:.2f}, next {causes[1].score:.2f}): "
        else:
            position = f"ranked {i} of {len(causes)} (score {cause.score:.2f}): "
        cause.why = position + cause.why
    return causes
