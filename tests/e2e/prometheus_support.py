"""A real Prometheus loaded with SLO data sets of known error ratios (backfilled with promtool).

Every series has one sample per minute for 30 days and 1 hour, ending exactly at ``T_END``. Reviews
evaluate at ``T_END``, so each lookback holds whole minutes and Prometheus's ``increase()`` needs no
extrapolation: the error ratios it returns are the ones :func:`expected_ratio` adds up by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infragenius_devtools.prometheus import LocalPrometheus as BaseLocalPrometheus
from infragenius_devtools.prometheus import PrometheusUnavailable, stop_process  # noqa: F401  (re-exported)
from infragenius_devtools.support import free_port  # noqa: F401  (re-exported for the tests)

T_END = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
STEP = 60  # seconds: one sample per minute
MINUTES = 30 * 1440 + 60  # history: the 30d window plus an hour
WINDOW_MINUTES = {"5m": 5, "30m": 30, "1h": 60, "2h": 120, "6h": 360, "1d": 1440, "3d": 4320, "30d": 43200}
PerMinute = Callable[[int], float]  # minutes before T_END (0: the minute that ends at T_END) -> increment


@dataclass(frozen=True)
class Scenario:
    """Requests and errors per minute, by how many minutes before T_END the minute ends."""

    objective: float
    total: PerMinute
    errors: PerMinute
    verdict: str | None


def _const(value: float) -> PerMinute:
    return lambda m: value


# 1000 requests a minute; objective 99.9 (budget 0.001) unless stated.
SCENARIOS: dict[str, Scenario] = {
    # 0.05% errors throughout: burn 0.5 everywhere, half the budget spent.
    "healthy": Scenario(99.9, _const(1000), _const(0.5), "Healthy"),
    # Clean until the last day, then 0.4% (burn 4): the 1d/2h ticket alert (factor 3) holds, no page.
    "at-risk": Scenario(99.9, _const(1000), lambda m: 4.0 if m < 1440 else 0.0, "AtRisk"),
    # 0.05% for 30 days, then 2% (burn 20) in the last hour: the 1h/5m page alert (14.4) holds.
    "breaching": Scenario(99.9, _const(1000), lambda m: 20.0 if m < 60 else 0.5, "Breaching"),
    # 0.15% throughout: 150% of the budget spent.
    "exhausted": Scenario(99.9, _const(1000), _const(1.5), "Exhausted"),
    # No traffic in the last hour: the 5m, 30m and 1h lookbacks have no events (no data, not zero).
    "quiet": Scenario(99.9, lambda m: 0.0 if m < 60 else 1000.0, lambda m: 0.0 if m < 60 else 0.5, "Healthy"),
}

# A histogram: 1000 requests a minute, 2 slower than 1s (5 in the last 2 hours); objective 99.5.
LATENCY = Scenario(99.5, _const(1000), lambda m: 5.0 if m < 120 else 2.0, "Healthy")
LATENCY_METRIC = "slo_latency_seconds"

# Burn attribution: 1000 requests a minute (one series without route labels), 0.5 errors a minute on
# /search for 30 days, then 20 a minute in the last hour (burn 20: Breaching), of which /checkout 503s
# cause 16 (80%), /cart 500s 3 and /search 500s 1.
ATTRIBUTION_ROUTES: dict[tuple[str, str], PerMinute] = {
    ("/checkout", "503"): lambda m: 16.0 if m < 60 else 0.0,
    ("/cart", "500"): lambda m: 3.0 if m < 60 else 0.0,
    ("/search", "500"): lambda m: 1.0 if m < 60 else 0.5,
}


def expected_ratio(scenario: Scenario, window: str) -> float | None:
    """The error ratio over the last ``window`` at T_END, added up minute by minute."""
    minutes = range(WINDOW_MINUTES[window])
    total = sum(scenario.total(m) for m in minutes)
    return None if total == 0 else sum(scenario.errors(m) for m in minutes) / total


def ratio_queries(name: str) -> tuple[str, str]:
    return f'slo_requests_errors{{scenario="{name}"}}', f'slo_requests_total{{scenario="{name}"}}'


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _series(lines: list[str], metric: str, labels: str, per_minute: PerMinute) -> None:
    end = int(T_END.timestamp())
    value = 0.0
    for i in range(MINUTES + 1):
        m = MINUTES - i  # the minute ending at this sample is m minutes before T_END
        if i > 0:
            value += per_minute(m)
        lines.append(f"{metric}{{{labels}}} {_number(value)} {end - m * STEP}")


def write_openmetrics(path: Path) -> Path:
    lines: list[str] = []
    for name, scenario in SCENARIOS.items():
        _series(lines, "slo_requests_total", f'scenario="{name}"', scenario.total)
        _series(lines, "slo_requests_errors", f'scenario="{name}"', scenario.errors)
    _series(lines, "slo_requests_total", 'scenario="attribution"', _const(1000))
    for (route, code), errors in ATTRIBUTION_ROUTES.items():
        _series(lines, "slo_requests_errors", f'scenario="attribution",route="{route}",code="{code}"', errors)
    # Bucket bounds as Go clients write them ("1", not "1.0"), which the latency query must match.
    fast = lambda m: LATENCY.total(m) - LATENCY.errors(m)  # noqa: E731
    _series(lines, f"{LATENCY_METRIC}_bucket", 'scenario="latency",le="0.25"', lambda m: fast(m) - 100)
    _series(lines, f"{LATENCY_METRIC}_bucket", 'scenario="latency",le="1"', fast)
    _series(lines, f"{LATENCY_METRIC}_bucket", 'scenario="latency",le="+Inf"', LATENCY.total)
    _series(lines, f"{LATENCY_METRIC}_count", 'scenario="latency"', LATENCY.total)
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")
    return path


class LocalPrometheus(BaseLocalPrometheus):
    """The SLO data sets above, ending at ``T_END``."""

    end = T_END

    def write_openmetrics(self, path: Path) -> Path:
        return write_openmetrics(path)
