"""Generated SLO rules in a real Prometheus: loaded and healthy, and their recorded values equal the review's.

Uses the session's backfilled Prometheus (``prometheus`` fixture, no Kubernetes cluster needed). Its data
ends at ``T_END``, in the past: loaded live, the rules run on empty lookbacks (healthy means they parse and
evaluate without errors); the values are checked by backfilling the recording rules at ``T_END`` with promtool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infragenius.gather.prometheus import PrometheusTarget
from infragenius.models.slo import BURN_WINDOWS, LatencySLI, RatioSLI, SLISpec, SLOReviewSpec
from infragenius.slo import math as slo_math
from infragenius.slo import rules
from infragenius.slo.review import collect
from tests.e2e.prometheus_support import LATENCY, LATENCY_METRIC, SCENARIOS, T_END, LocalPrometheus, ratio_queries

pytestmark = pytest.mark.e2e

NAMESPACE = "e2e-rules"


def sources() -> list[rules.SLOSource]:
    out = []
    for name, scenario in SCENARIOS.items():
        errors, total = ratio_queries(name)
        sli = SLISpec(ratio=RatioSLI(error_query=errors, total_query=total))
        out.append(rules.SLOSource(NAMESPACE, name, SLOReviewSpec(service=name, objective=scenario.objective, sli=sli)))
    latency = SLISpec(latency=LatencySLI(metric=LATENCY_METRIC, threshold_seconds=1.0, selector='scenario="latency"'))
    out.append(
        rules.SLOSource(NAMESPACE, "latency", SLOReviewSpec(service="api", objective=LATENCY.objective, sli=latency))
    )
    return out


@pytest.fixture
def rule_file(tmp_path: Path) -> Path:
    path = tmp_path / "slo-rules.yaml"
    path.write_text(rules.render(rules.rule_file(sources())))
    return path


@pytest.fixture
def loaded(prometheus: LocalPrometheus, rule_file: Path) -> Iterator[LocalPrometheus]:
    """The session's Prometheus with the rule file loaded (SIGHUP), and without it again afterwards."""
    config = prometheus.home / "prometheus.yml"
    original = config.read_text()
    process = prometheus._process
    assert process is not None
    config.write_text(original + f"rule_files:\n  - {rule_file}\n")
    process.send_signal(signal.SIGHUP)
    try:
        yield prometheus
    finally:
        config.write_text(original)
        process.send_signal(signal.SIGHUP)


def test_prometheus_loads_the_rules_and_evaluates_them_without_errors(loaded: LocalPrometheus) -> None:
    expected = {rules.group_name(s) for s in sources()}
    deadline = time.monotonic() + 60
    while True:
        body = httpx.get(f"{loaded.url}/api/v1/rules", timeout=10).json()
        groups = {g["name"]: g for g in body["data"]["groups"]}
        # Evaluated at least once: every rule has a health other than "unknown".
        done = expected <= set(groups) and all(
            r["health"] != "unknown" for name in expected for r in groups[name]["rules"]
        )
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert expected <= set(groups), sorted(groups)
    for name in sorted(expected):
        group_rules = groups[name]["rules"]
        assert len(group_rules) == len(BURN_WINDOWS) + 2 + len(slo_math.POLICIES)
        bad = [(r["name"], r["health"], r.get("lastError")) for r in group_rules if r["health"] != "ok"]
        assert not bad, bad
        assert [r["type"] for r in group_rules].count("alerting") == 4


SAMPLE = re.compile(r'^\{__name__="(?P<name>[^"]+)", (?P<labels>.*)\} (?P<value>\S+) (?P<ts>\d+)$')


def test_recorded_values_equal_the_review_numbers(prometheus: LocalPrometheus, rule_file: Path, tmp_path: Path) -> None:
    # promtool evaluates the recording rules through the real Prometheus's query API, as its rule manager
    # would have in the last two minutes of the backfilled data, and writes the results as blocks. Each
    # group is evaluated at its own offset within the minute (a hash of its name), so the review is run
    # at the very instant each SLO's rules were evaluated.
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed with prometheus (the fixture started one)"
    out = tmp_path / "recorded"
    end = int(T_END.timestamp())
    created = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "rules", f"--start={end - 120}", f"--end={end}",
         f"--url={prometheus.url}", f"--output-dir={out}", "--eval-interval=60s", str(rule_file)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    (out / "wal").mkdir(exist_ok=True)  # `tsdb dump` opens the directory as a database, WAL included
    dumped = subprocess.run([promtool, "tsdb", "dump", str(out)], capture_output=True, text=True, timeout=300)
    assert dumped.returncode == 0, dumped.stderr
    # slo -> evaluation time (ms) -> record name -> value
    recorded: dict[str, dict[int, dict[str, float]]] = {}
    for line in dumped.stdout.splitlines():
        match = SAMPLE.match(line)
        assert match, line
        slo = re.search(r'slo="([^"]+)"', match["labels"])
        assert slo
        recorded.setdefault(slo.group(1), {}).setdefault(int(match["ts"]), {})[match["name"]] = float(match["value"])

    compared = 0
    for source in sources():
        # The last evaluation. promtool aligns evaluations to the interval and adds the group's offset, so it
        # can fall up to one interval plus the offset before --end: anywhere in the range it was asked for.
        at_ms = max(recorded[source.name])
        assert (end - 120) * 1000 <= at_ms <= end * 1000
        values = recorded[source.name][at_ms]
        at = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC)
        data = asyncio.run(collect(PrometheusTarget(prometheus.url), source.spec.sli, "30d", at=at))
        assert not data.failed, data.errors
        review = {**data.error_ratios, "30d": data.window_error_ratio}
        for window, ratio in review.items():
            value = values.get(rules.record_name(window))
            if ratio is None:  # no events: the rule records NaN (0/0), or nothing
                assert value is None or math.isnan(value), (source.name, window, value)
                continue
            assert value == pytest.approx(ratio, abs=1e-6), (source.name, window)
            compared += 1
        # Budget remaining reads another recorded series, which promtool cannot backfill in the same run;
        # its arithmetic on the recorded 30d value must give the review's own remaining budget.
        assert data.window_error_ratio is not None
        report = slo_math.evaluate(source.spec.objective, "30d", data.window_error_ratio, data.error_ratios)
        remaining = 1 - values[rules.record_name("30d")] / slo_math.error_budget(source.spec.objective)
        assert remaining == pytest.approx(report.remaining, abs=1e-6)
    assert compared >= len(sources()) * 5
