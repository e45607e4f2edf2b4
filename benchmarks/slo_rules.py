"""How long does ``infragenius slo rules`` take for 1,000 SLOReviews? Target: under 2 s.

Builds 1,000 SLOReview manifests in memory (ratio, latency and raw SLIs in turn; 7d, 28d and 30d
windows), then times, ``--runs`` times each (median and best):

- parse: validating the manifests (:func:`infragenius.slo.rules.parse_documents`);
- build: the rule file document (:func:`infragenius.slo.rules.rule_file`);
- render: its YAML text (:func:`infragenius.slo.rules.render`);
- total: the three in a row, which is what the CLI does after reading the file;
- cli: the whole ``infragenius slo rules -f`` process on the manifests written to a temporary file
  (interpreter start-up, YAML loading, output to a pipe).

Pure CPU, no cluster. Run: ``.venv/bin/python benchmarks/slo_rules.py [--count 1000] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

import infragenius
from infragenius.slo import rules

TARGET_SECONDS = 2.0
PERIODS = ("7d", "28d", "30d")


def manifest(i: int) -> dict[str, Any]:
    kind = ("ratio", "latency", "raw")[i % 3]
    if kind == "ratio":
        sli: dict[str, Any] = {
            "ratio": {
                "errorQuery": f'http_requests_total{{service="svc-{i}",code=~"5.."}}',
                "totalQuery": f'http_requests_total{{service="svc-{i}"}}',
            }
        }
    elif kind == "latency":
        sli = {
            "latency": {
                "metric": "http_request_duration_seconds",
                "thresholdSeconds": 0.3,
                "selector": f'job="svc-{i}"',
            }
        }
    else:
        job = f'{{job="svc-{i}"}}'
        sli = {
            "raw": {
                "errorRatioQuery": f"sum(rate(errors_total{job}[$window])) / sum(rate(requests_total{job}[$window]))"
            }
        }
    return {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": "SLOReview",
        "metadata": {"name": f"slo-{i:04d}", "namespace": f"team-{i % 20}"},
        "spec": {"service": f"svc-{i}", "objective": 99.9, "window": PERIODS[i % 3], "sli": sli},
    }


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    docs = [manifest(i) for i in range(args.count)]
    parse_med, parse_min, sources = timed(lambda: rules.parse_documents(docs), args.runs)
    build_med, build_min, document = timed(lambda: rules.rule_file(sources), args.runs)
    render_med, render_min, text = timed(lambda: rules.render(document), args.runs)
    total_med, total_min, _ = timed(lambda: rules.render(rules.rule_file(rules.parse_documents(docs))), args.runs)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "slo.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        # The package this script imported, also when it runs from a source tree that is not installed.
        env = {**os.environ, "PYTHONPATH": str(Path(infragenius.__file__).resolve().parents[1])}
        command = [sys.executable, "-m", "infragenius.cli", "slo", "rules", "-f", str(path)]
        cli_med, cli_min, _ = timed(
            lambda: subprocess.run(command, env=env, check=True, capture_output=True), args.runs
        )

    count = sum(len(g["rules"]) for g in document["groups"])
    print(
        f"{args.count} SLOReviews -> {len(document['groups'])} groups, {count} rules, {len(text) / 1e6:.1f} MB of YAML"
    )
    for label, med, best in (
        ("parse", parse_med, parse_min),
        ("build", build_med, build_min),
        ("render", render_med, render_min),
        ("total", total_med, total_min),
        ("cli", cli_med, cli_min),
    ):
        print(f"  {label:<7} median {med:.3f} s   best {best:.3f} s")
    verdict = "ok" if total_med < TARGET_SECONDS else "OVER TARGET"
    print(f"target: total under {TARGET_SECONDS:.0f} s for 1,000 SLOReviews: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
