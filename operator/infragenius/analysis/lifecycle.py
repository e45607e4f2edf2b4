"""Findings followed across the runs of one Analysis: new, open, reopened, flapping, resolved (pure, no I/O).

The previous run's memory is ``status.lifecycle.tracked``, written in the same status patch as the run's
findings, so it is exactly as durable as the run itself: a run that never completed changes nothing, and
a repeated run id is skipped before it gets here. Each transition is also returned, for history and for
whatever tells people (once per transition, never while a finding just stays open).

Rules, per finding id:

- not tracked, or resolved longer ago than the quiet period: **New** (a new episode: firstSeen is now);
- tracked and not resolved: **Open** (a Flapping one stays Flapping while its reopens are recent);
- resolved within the quiet period: **Reopened**, or **Flapping** once it has reopened ``flapThreshold``
  times within the quiet period;
- tracked, not resolved, and absent from this run: **Resolved**; kept for the quiet period, then dropped.

A finding matching an unexpired silence keeps its state but is counted only as ``silenced``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from infragenius.kube.time import parse_time, rfc3339
from infragenius.models.analysis import (
    MAX_TRACKED,
    LifecycleCounts,
    LifecycleSpec,
    LifecycleStatus,
    Silence,
    TrackedFinding,
)
from infragenius.models.common import parse_duration
from infragenius.models.findings import Finding, FindingLifecycle, FindingState, ResourceRef

_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Transition:
    """One finding becoming New, Reopened, Flapping or Resolved in this run."""

    finding_id: str
    previous: FindingState | None
    state: FindingState
    tracked: TrackedFinding
    silenced: bool
    repeat_flap: bool = False  # a flapping finding back again, after the run that said it flaps

    @property
    def notifiable(self) -> bool:
        """Worth telling people: not silenced, and for a flapping finding only the run that says it flaps
        (its reopens and resolves would otherwise alternate every run)."""
        if self.silenced or self.repeat_flap:
            return False
        return not (self.state is FindingState.resolved and self.previous is FindingState.flapping)


@dataclass(frozen=True)
class LifecycleResult:
    findings: list[Finding]  # this run's, each with its lifecycle
    status: LifecycleStatus
    transitions: list[Transition]


def resource_key(resource: ResourceRef) -> str:
    return f"{resource.kind}/{resource.namespace or ''}/{resource.name}"


@functools.lru_cache(maxsize=8192)
def _instant(text: str) -> dt.datetime | None:
    """parse_time, remembered: a run sees the same few timestamps thousands of times."""
    return parse_time(text)


def active(silences: Sequence[Silence], now: dt.datetime) -> list[Silence]:
    return [s for s in silences if (expires := _instant(s.expires)) is not None and expires > now]


def silenced_by(finding: Finding, silences: Sequence[Silence], now: dt.datetime) -> Silence | None:
    """The first unexpired silence matching ``finding``: its id, or its detector and resource pattern."""
    for silence in silences:
        expires = _instant(silence.expires)
        if expires is None or expires <= now:
            continue
        if silence.finding_id is not None and silence.finding_id != finding.id:
            continue
        if silence.detector is not None and silence.detector.value != finding.detector:
            continue
        resource = f"{finding.resource.kind}/{finding.resource.name}"
        if silence.resource is not None and not fnmatch.fnmatchcase(resource, silence.resource):
            continue
        return silence
    return None


def _recent(times: Iterable[str], since: dt.datetime) -> list[str]:
    return [t for t in times if (_instant(t) or since) > since]


def _next(
    finding: Finding, before: TrackedFinding | None, now: dt.datetime, quiet: dt.timedelta, flap_threshold: int
) -> tuple[FindingState, TrackedFinding]:
    stamp = rfc3339(now)
    resolved_at = _instant(before.resolved_at) if before is not None and before.resolved_at else None
    fields = {
        "id": finding.id,
        "detector": finding.detector,
        "severity": finding.severity,
        "resource": resource_key(finding.resource),
        "title": finding.title[:128],
        "last_seen": stamp,
        "resolved_at": None,
    }
    if before is None or (resolved_at is not None and now - resolved_at > quiet):
        return FindingState.new, TrackedFinding(state=FindingState.new, first_seen=stamp, occurrences=1, **fields)
    reopens = _recent(before.reopens, now - quiet)
    if resolved_at is not None:
        reopens = [*reopens, stamp][-20:]
        state = FindingState.flapping if len(reopens) >= flap_threshold else FindingState.reopened
    else:
        flapping = before.state is FindingState.flapping and len(reopens) >= flap_threshold
        state = FindingState.flapping if flapping else FindingState.open
    tracked = TrackedFinding(
        state=state, first_seen=before.first_seen, occurrences=before.occurrences + 1, reopens=reopens, **fields
    )
    return state, tracked


def _resolved(before: TrackedFinding, now: dt.datetime) -> TrackedFinding:
    return before.model_copy(update={"state": FindingState.resolved, "resolved_at": rfc3339(now)})


def _bounded(tracked: list[TrackedFinding]) -> tuple[list[TrackedFinding], int]:
    """At most MAX_TRACKED, in order of importance (open first, most severe first), so whatever must be cut
    later (the status budget) is cut from the end; the rest are forgotten (and counted)."""
    ordered = sorted(
        tracked,
        key=lambda t: (t.state is FindingState.resolved, _SEVERITY_ORDER.get(t.severity.value, 3), t.id),
    )
    return ordered[:MAX_TRACKED], max(len(tracked) - MAX_TRACKED, 0)


def advance(
    previous: Mapping[str, TrackedFinding],
    findings: Sequence[Finding],
    now: dt.datetime,
    spec: LifecycleSpec,
    silences: Sequence[Silence] = (),
) -> LifecycleResult:
    """This run's lifecycle from the previous run's memory and this run's findings."""
    quiet = parse_duration(spec.quiet_period)
    silences = active(silences, now)
    counts = LifecycleCounts()
    kept: list[TrackedFinding] = []
    transitions: list[Transition] = []
    annotated: list[Finding] = []
    for finding in findings:
        before = previous.get(finding.id)
        state, tracked = _next(finding, before, now, quiet, spec.flap_threshold)
        silenced = silenced_by(finding, silences, now) is not None
        kept.append(tracked)
        if silenced:
            counts.silenced += 1
        else:
            setattr(counts, state.name, getattr(counts, state.name) + 1)
        # Staying open (New -> Open, Reopened -> Open, Flapping -> Open) is no news.
        if before is None or state is FindingState.new or state not in (before.state, FindingState.open):
            repeat = state is FindingState.flapping and len(tracked.reopens) > spec.flap_threshold
            previous_state = before.state if before else None
            transitions.append(Transition(finding.id, previous_state, state, tracked, silenced, repeat))
        lifecycle = FindingLifecycle(
            state=state,
            first_seen=tracked.first_seen,
            last_seen=tracked.last_seen,
            occurrences=tracked.occurrences,
            silenced=silenced or None,
            reopens=tracked.reopens or None,
        )
        annotated.append(finding.model_copy(update={"lifecycle": lifecycle}))
    seen = {f.id for f in findings}
    for finding_id, before in previous.items():
        if finding_id in seen:
            continue
        if before.state is not FindingState.resolved:
            resolved = _resolved(before, now)
            kept.append(resolved)
            counts.resolved += 1
            transitions.append(Transition(finding_id, before.state, FindingState.resolved, resolved, False))
        elif (_instant(before.resolved_at or "") or now) > now - quiet:
            kept.append(before)  # remembered for the quiet period, to tell a reopen from a new problem
    memory, dropped = _bounded(kept)
    return LifecycleResult(annotated, LifecycleStatus(counts=counts, tracked=memory, dropped=dropped), transitions)


def metric_changes(result: LifecycleResult) -> list[tuple[str, str, float | None]]:
    """(state, severity, seconds from first seen to resolved) per change, for /metrics."""
    out = []
    for change in result.transitions:
        seconds = None
        if change.state is FindingState.resolved:
            first, resolved = parse_time(change.tracked.first_seen), parse_time(change.tracked.resolved_at)
            if first is not None and resolved is not None:
                seconds = max((resolved - first).total_seconds(), 0.0)
        out.append((change.state.value, change.tracked.severity.value, seconds))
    return out


def open_by_severity(result: LifecycleResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in result.findings:
        if finding.lifecycle is not None and not finding.lifecycle.silenced:
            counts[finding.severity.value] = counts.get(finding.severity.value, 0) + 1
    return counts


def previous_tracked(status: Mapping[str, object]) -> dict[str, TrackedFinding]:
    """The memory the last completed run left in status: the lifecycle of each finding it kept in
    ``findings``, and ``lifecycle.tracked`` for the others (beyond maxFindings, or resolved). Entries that
    no longer validate are forgotten."""
    out: dict[str, TrackedFinding] = {}
    for raw in status.get("findings") or []:  # type: ignore[attr-defined]
        entry = _from_finding(raw)
        if entry is not None:
            out[entry.id] = entry
    lifecycle = status.get("lifecycle")
    if not isinstance(lifecycle, Mapping):
        return out
    for raw in lifecycle.get("tracked") or []:
        try:
            entry = TrackedFinding.model_validate(raw)
        except ValueError:
            continue
        out[entry.id] = entry
    return out


def _from_finding(raw: object) -> TrackedFinding | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("lifecycle"), Mapping):
        return None
    try:
        found = Finding.model_validate(raw)
    except ValueError:
        return None
    lc = found.lifecycle
    if lc is None:
        return None
    return TrackedFinding(
        id=found.id,
        state=lc.state,
        detector=found.detector,
        severity=found.severity,
        resource=resource_key(found.resource),
        title=found.title[:128],
        first_seen=lc.first_seen,
        last_seen=lc.last_seen,
        occurrences=lc.occurrences,
        reopens=list(lc.reopens or []),
    )


def status_memory(memory: Sequence[TrackedFinding], kept: Sequence[Finding]) -> list[TrackedFinding]:
    """What ``lifecycle.tracked`` must hold: the memory of findings not already in status ``findings``."""
    in_findings = {f.id for f in kept}
    return [t for t in memory if t.id not in in_findings]
