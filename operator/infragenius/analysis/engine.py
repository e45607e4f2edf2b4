"""Pure steps of an analysis: run detectors, rank, filter, count, summarise."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from infragenius.detectors.base import Detector
from infragenius.models.analysis import SeverityCounts
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import GatherResult, GatherStatus, Snapshot


@dataclass(frozen=True)
class DetectResult:
    findings: list[Finding]
    seconds: float
    #: A detector that raised is reported like a failed source; the others still count.
    failures: list[GatherResult] = field(default_factory=list)


def sort_key(finding: Finding) -> tuple[int, int, str, str]:
    return (finding.severity.rank, -finding.affected, str(finding.resource), finding.title)


def run_detectors(snapshot: Snapshot, detectors: Sequence[Detector]) -> DetectResult:
    """Run every detector over the snapshot; one finding per id, most severe first."""
    started = time.perf_counter()
    by_id: dict[str, Finding] = {}
    failures: list[GatherResult] = []
    for detector in detectors:
        try:
            found = list(detector.detect(snapshot))
        except Exception as err:  # a detector bug must not cost the user the other detectors' findings
            failures.append(
                GatherResult(
                    f"detector:{detector.name}", GatherStatus.error, error=f"{type(err).__name__}: {err}"[:500]
                )
            )
            continue
        for item in found:
            kept = by_id.get(item.id)
            if kept is None or item.severity.rank < kept.severity.rank:
                by_id[item.id] = item
    findings = sorted(by_id.values(), key=sort_key)
    return DetectResult(findings=findings, seconds=time.perf_counter() - started, failures=failures)


def filter_findings(findings: Iterable[Finding], min_severity: Severity, kinds: Iterable[str] = ()) -> list[Finding]:
    """Keep findings at or above ``min_severity``, on the given kinds (all when empty)."""
    wanted = set(kinds)
    return [
        f
        for f in findings
        if f.severity.at_least(min_severity)
        and (not wanted or f.resource.kind in wanted or any(o.kind in wanted for o in f.owners))
    ]


def count(findings: Iterable[Finding]) -> SeverityCounts:
    tally = Counter(f.severity for f in findings)
    return SeverityCounts(critical=tally[Severity.critical], warning=tally[Severity.warning], info=tally[Severity.info])


def summarise(findings: Sequence[Finding], target: str, missing: Sequence[GatherResult]) -> str:
    """One line for `kubectl get`: the counts and the worst problems."""
    counts = count(findings)
    gaps = f"; could not read {', '.join(r.source for r in missing[:4])}" if missing else ""
    if counts.critical == 0 and counts.warning == 0:
        hygiene = f" ({counts.info} info)" if counts.info else ""
        return f"No problems in {target}{hygiene}{gaps}"[:512]
    parts = []
    if counts.critical:
        parts.append(f"{counts.critical} critical")
    if counts.warning:
        parts.append(f"{counts.warning} warning{'s' if counts.warning != 1 else ''}")
    worst = findings[0].title
    return f"{', '.join(parts)}: {worst}{gaps}"[:512]
