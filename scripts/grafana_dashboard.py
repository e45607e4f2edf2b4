"""Write charts/infragenius-operator/files/grafana-dashboard.json from the panel list below.

A unit test checks that the file is current and that every metric it queries is one the
operator exports, so the dashboard cannot drift from /metrics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "charts" / "infragenius-operator" / "files" / "grafana-dashboard.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
JOB = 'job=~"$job"'

# (title, unit, [(expr, legend)], width)
PANELS: list[tuple[str, str, list[tuple[str, str]], int]] = [
    (
        "Runs by kind and outcome",
        "ops",
        [(f"sum by (kind, outcome) (rate(infragenius_runs_total{{{JOB}}}[5m]))", "{{kind}} {{outcome}}")],
        12,
    ),
    (
        "Runs in flight and queued",
        "short",
        [
            (f"sum by (kind) (infragenius_runs_in_flight{{{JOB}}})", "in flight {{kind}}"),
            (f"sum by (kind) (infragenius_runs_queued{{{JOB}}})", "queued {{kind}}"),
        ],
        12,
    ),
    (
        "Analysis stage duration p95",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le, stage) "
                f'(rate(infragenius_stage_duration_seconds_bucket{{kind="Analysis", {JOB}}}[5m])))',
                "{{stage}}",
            ),
        ],
        12,
    ),
    (
        "Analysis stage duration p50",
        "s",
        [
            (
                "histogram_quantile(0.5, sum by (le, stage) "
                f'(rate(infragenius_stage_duration_seconds_bucket{{kind="Analysis", {JOB}}}[5m])))',
                "{{stage}}",
            ),
        ],
        12,
    ),
    (
        "Findings by severity",
        "short",
        [(f"sum by (severity) (increase(infragenius_findings_total{{{JOB}}}[1h]))", "{{severity}}")],
        12,
    ),
    (
        "Top detectors (24h)",
        "short",
        [(f"topk(10, sum by (detector) (increase(infragenius_findings_total{{{JOB}}}[24h])))", "{{detector}}")],
        12,
    ),
    (
        "LLM calls by outcome",
        "ops",
        [(f"sum by (outcome) (rate(infragenius_llm_calls_total{{{JOB}}}[5m]))", "{{outcome}}")],
        8,
    ),
    (
        "LLM tokens",
        "short",
        [(f"sum by (direction) (rate(infragenius_llm_tokens_total{{{JOB}}}[5m]))", "{{direction}}")],
        8,
    ),
    (
        "Explanation cache hit ratio",
        "percentunit",
        [
            (
                f'sum(rate(infragenius_llm_cache_lookups_total{{result="hit", {JOB}}}[15m])) / '
                f"sum(rate(infragenius_llm_cache_lookups_total{{{JOB}}}[15m]))",
                "hit ratio",
            ),
        ],
        8,
    ),
    (
        "Alertmanager webhook requests",
        "reqps",
        [(f"sum by (code) (rate(infragenius_webhook_requests_total{{{JOB}}}[5m]))", "{{code}}")],
        8,
    ),
    ("Dependencies up", "short", [(f"min by (dependency) (infragenius_dependency_up{{{JOB}}})", "{{dependency}}")], 8),
    (
        "History runs buffered (Postgres away)",
        "short",
        [(f"sum(infragenius_history_pending_runs{{{JOB}}})", "buffered")],
        8,
    ),
    ("Operator memory", "bytes", [(f"process_resident_memory_bytes{{{JOB}}}", "{{pod}}")], 12),
    ("Operator CPU", "percentunit", [(f"rate(process_cpu_seconds_total{{{JOB}}}[5m])", "{{pod}}")], 12),
    (
        "Open findings by severity",
        "short",
        [(f"sum by (severity) (infragenius_findings_open{{{JOB}}})", "{{severity}}")],
        12,
    ),
    (
        "Mean time to resolve (1d)",
        "s",
        [
            (
                f"sum by (severity) (rate(infragenius_finding_time_to_resolve_seconds_sum{{{JOB}}}[1d]))"
                f" / sum by (severity) (rate(infragenius_finding_time_to_resolve_seconds_count{{{JOB}}}[1d]))",
                "{{severity}}",
            )
        ],
        12,
    ),
]


def _panel(
    index: int, title: str, unit: str, targets: list[tuple[str, str]], width: int, x: int, y: int
) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + n), "datasource": DS, "expr": expr, "legendFormat": legend}
            for n, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    panels, x, y = [], 0, 0
    for index, (title, unit, targets, width) in enumerate(PANELS):
        if x + width > 24:
            x, y = 0, y + 8
        panels.append(_panel(index, title, unit, targets, width, x, y))
        x += width
    return {
        "title": "InfraGenius operator",
        "uid": "infragenius-operator",
        "tags": ["infragenius", "kubernetes", "operator"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
                {
                    "name": "job",
                    "type": "query",
                    "datasource": DS,
                    "query": "label_values(infragenius_start_time_seconds, job)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(
            0 if OUT.read_text() == render() else "grafana dashboard is stale: run python scripts/grafana_dashboard.py"
        )
    OUT.write_text(render())
    print(OUT)
