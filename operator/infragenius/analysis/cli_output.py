"""`infragenius analyze`: the operator's pipeline from a kubeconfig, with CI-friendly exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import yaml
from kubernetes import config
from pydantic import ValidationError

from infragenius.analysis import engine
from infragenius.analysis.runner import AnalysisOutcome, analyze
from infragenius.gather.kube import ApiUnavailable, KubeGatherer, TargetNamespaceMissing
from infragenius.gather.logs import LogOptions
from infragenius.gather.prometheus import PrometheusTarget
from infragenius.models.analysis import AnalysisSpec
from infragenius.models.findings import Severity

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def outcome_document(outcome: AnalysisOutcome) -> dict[str, Any]:
    counts = engine.count(outcome.findings)
    return {
        "namespace": outcome.target,
        "summary": engine.summarise(outcome.findings, outcome.target, outcome.missing),
        "counts": counts.model_dump(),
        "timings": outcome.timings.model_dump(by_alias=True),
        "missing": [r.model_dump(by_alias=True, exclude_none=True) for r in outcome.source_reports()],
        "findings": [f.model_dump(mode="json", exclude_none=True) for f in outcome.findings],
    }


def render_table(outcome: AnalysisOutcome) -> str:
    rows = [("SEVERITY", "RESOURCE", "AFFECTED", "TITLE")]
    rows += [(f.severity.value, str(f.resource), str(f.affected), f.title) for f in outcome.findings]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    lines.append("")
    lines.append(engine.summarise(outcome.findings, outcome.target, outcome.missing))
    t = outcome.timings
    lines.append(f"gather {t.gather_seconds:.3f}s, detect {t.detect_seconds:.3f}s, total {t.total_seconds:.3f}s")
    for f in outcome.findings:
        if f.severity is Severity.info:
            continue
        lines.append("")
        lines.append(f"[{f.severity.value}] {f.resource}: {f.title}  (id {f.id}, {f.detector})")
        for ev in f.evidence:
            # Log excerpts span lines: indent them under their source, so a log line cannot pass for output.
            value = ev.value.replace("\n", "\n        | ")
            lines.append(f"    {ev.source} = {value}")
        lines.append(f"    fix: {f.remediation}")
    return "\n".join(lines)


def _prometheus(args: argparse.Namespace) -> PrometheusTarget | None:
    """The CLI's own user chose it (--prometheus-url); TLS is verified against the system's CAs."""
    return PrometheusTarget(args.prometheus_url) if args.prometheus_url else None


def run_cli_analysis(args: argparse.Namespace) -> int:
    try:
        spec = AnalysisSpec.model_validate(
            {
                "labelSelector": args.selector,
                "minSeverity": args.min_severity,
                "detectors": {"include": args.detector, "exclude": args.exclude_detector},
            }
        )
    except ValidationError as err:
        print(f"infragenius: invalid options: {err.errors()[0]['msg']}", file=sys.stderr)
        return EXIT_ERROR
    try:
        api = config.new_client_from_config(config_file=args.kubeconfig)
    except Exception as err:  # kubeconfig problems surface as several exception types
        print(f"infragenius: cannot load kubeconfig: {err}", file=sys.stderr)
        return EXIT_ERROR
    try:
        logs = None if args.no_container_logs else LogOptions()
        outcome = asyncio.run(analyze(KubeGatherer(api), spec, args.namespace, prometheus=_prometheus(args), logs=logs))
    except (TargetNamespaceMissing, ApiUnavailable) as err:
        print(f"infragenius: {err}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        api.close()
    if args.output == "json":
        print(json.dumps(outcome_document(outcome), indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(outcome_document(outcome), sort_keys=False))
    else:
        print(render_table(outcome))
    if args.fail_on == "never":
        return EXIT_CLEAN
    threshold = Severity(args.fail_on)
    return EXIT_FINDINGS if any(f.severity.at_least(threshold) for f in outcome.findings) else EXIT_CLEAN
