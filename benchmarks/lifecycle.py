"""What the findings lifecycle adds to a run: 500 findings against the previous run's memory. Target: < 50 ms.

The lifecycle reads no history: the previous run's memory is ``status.lifecycle.tracked`` (at most 2,000
entries), which the operator already holds in the event body. So the cost is: validate that memory from
status JSON, advance it with this run's findings (New/Open/Reopened/Flapping/Resolved, silences), and
serialise the new memory and the annotated findings into the status patch. The workload:

- 500 findings this run: 400 still open, 50 new, 50 reopened (resolved earlier within the quiet period);
- memory: 1,000 tracked (the bound): the 450 seen before, 100 that resolve this run, the rest resolved earlier;
- 10 silences, half matching by detector and resource pattern;
- 10,000 history rows for the Analysis exist in Postgres but are not read (reported for the record).

Each iteration does the whole path; the floor is ``json.loads`` + ``json.dumps`` of the same status memory.
Run: ``.venv/bin/python benchmarks/lifecycle.py [--runs 200]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time

from infragenius.analysis import lifecycle
from infragenius.detectors.base import finding
from infragenius.models.analysis import LifecycleSpec, Silence, TrackedFinding
from infragenius.models.findings import Finding, FindingState, ResourceRef, Severity

NOW = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
SEVERITIES = (Severity.critical, Severity.warning, Severity.info)


def make_finding(i: int) -> Finding:
    return finding(
        detector="pod" if i % 2 else "deployment",
        severity=SEVERITIES[i % 3],
        resource=ResourceRef(kind="Pod", name=f"web-{i}", namespace="shop"),
        problem="crashloop",
        title=f"Pod web-{i} is crash looping",
        evidence=[("restartCount", i)],
        remediation="Read the logs.",
    )


def tracked(f: Finding, state: FindingState, resolved: bool) -> TrackedFinding:
    return TrackedFinding(
        id=f.id,
        state=FindingState.resolved if resolved else state,
        detector=f.detector,
        severity=f.severity,
        resource=lifecycle.resource_key(f.resource),
        title=f.title,
        first_seen="2026-12-02T10:00:00Z",
        last_seen="2026-12-02T11:50:00Z",
        occurrences=12,
        resolved_at="2026-12-02T11:30:00Z" if resolved else None,
    )


def workload() -> tuple[list[Finding], dict[str, object], list[Silence]]:
    findings = [make_finding(i) for i in range(500)]
    memory = [tracked(f, FindingState.open, resolved=False) for f in findings[:400]]
    memory += [tracked(f, FindingState.open, resolved=True) for f in findings[450:]]  # reopen now
    gone = [make_finding(i) for i in range(500, 1050)]
    memory += [tracked(f, FindingState.open, resolved=False) for f in gone[:100]]  # resolve now
    memory += [tracked(f, FindingState.open, resolved=True) for f in gone[100:]]  # remembered
    status = {"lifecycle": {"tracked": [t.model_dump(by_alias=True, mode="json") for t in memory[:1000]]}}
    silences = [
        Silence(detector="pod", resource=f"Pod/web-{i}*", expires="2027-01-01T00:00:00Z", reason="known")
        for i in range(5)
    ] + [Silence(finding_id=findings[i].id, expires="2026-01-01T00:00:00Z", reason="expired") for i in range(5)]
    return findings, json.loads(json.dumps(status)), silences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    findings, status, silences = workload()
    spec = LifecycleSpec(quiet_period="24h", flap_threshold=3)
    raw = json.dumps(status)
    times, floors = [], []
    result = None
    for _ in range(args.runs):
        started = time.perf_counter()
        memory = lifecycle.previous_tracked(status)
        result = lifecycle.advance(memory, findings, NOW, spec, silences)
        patch = {
            "lifecycle": result.status.model_dump(by_alias=True, mode="json"),
            "findings": [f.model_dump(by_alias=True, mode="json", exclude_none=True) for f in result.findings[:50]],
        }
        json.dumps(patch)
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        json.dumps(json.loads(raw))
        floors.append(time.perf_counter() - started)
    assert result is not None
    counts = result.status.counts
    ordered = sorted(times)
    p50, p95 = statistics.median(times) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000
    floor = statistics.median(floors) * 1000
    print(
        f"500 findings, {len(status['lifecycle']['tracked'])} tracked (status JSON {len(raw) / 1024:.0f} KiB): "  # type: ignore[index]
        f"new {counts.new}, open {counts.open}, reopened {counts.reopened}, resolved {counts.resolved}, "
        f"silenced {counts.silenced}; transitions {len(result.transitions)}"
    )
    print(
        f"lifecycle per run: p50 {p50:.1f} ms, p95 {p95:.1f} ms (target < 50 ms); "
        f"floor (json round trip of the memory) p50 {floor:.1f} ms, ratio {p50 / floor:.1f}x; history rows read: 0"
    )


if __name__ == "__main__":
    main()
