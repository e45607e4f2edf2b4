"""The trends as text tables for a terminal."""

from __future__ import annotations

from infragenius.history.trends import Trends


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def render_trends(found: Trends) -> str:
    parts = ["Open findings (last run per Analysis in each bucket)"]
    points = [[p.bucket, str(p.critical), str(p.warning), str(p.info)] for p in found.open_over_time]
    parts.append(_table(["BUCKET", "CRITICAL", "WARNING", "INFO"], points) if points else "  none")
    parts.append("\nTime to resolve (first seen -> resolved)")
    resolve = [
        [r.detector, r.severity, str(r.resolved), _duration(r.mean_seconds), _duration(r.max_seconds)]
        for r in found.time_to_resolve
    ]
    parts.append(_table(["DETECTOR", "SEVERITY", "RESOLVED", "MEAN", "MAX"], resolve) if resolve else "  none")
    parts.append("\nTop recurring problems (new and reopened episodes)")
    recurring = [[r.finding_id, r.detector, r.resource, str(r.episodes), r.last, r.title[:60]] for r in found.recurring]
    parts.append(
        _table(["FINDING", "DETECTOR", "RESOURCE", "EPISODES", "LAST", "TITLE"], recurring) if recurring else "  none"
    )
    return "\n".join(parts)
