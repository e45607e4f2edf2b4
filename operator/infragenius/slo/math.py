"""Error-budget and burn-rate arithmetic: pure functions, no I/O, no clock.

Terms (Google SRE workbook, chapter "Alerting on SLOs"):

- budget: the error ratio the objective allows, ``1 - objective/100``;
- burn rate over a lookback: the error ratio over it divided by the budget (1 spends the budget exactly
  over the SLO window);
- a multi-window alert holds when both its long and its short lookback burn faster than its factor;
  the factor is the share of the budget the alert should catch being spent within the long lookback,
  times the SLO window over the long lookback (2% in 1h of 30d gives 14.4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from infragenius.models.common import parse_duration
from infragenius.models.slo import (
    MAX_ATTRIBUTION_ENTRIES,
    MAX_LABEL_VALUE_CHARS,
    AlertSeverity,
    AttributionEntry,
    Verdict,
)


@dataclass(frozen=True)
class AlertPolicy:
    name: str
    severity: AlertSeverity
    long_window: str
    short_window: str
    budget_fraction: float  # of the whole budget, spent within long_window


# 2%, 5%, 10%, 10% of the budget: factors 14.4, 6, 3 and 1 for a 30d window; other windows scale.
POLICIES: tuple[AlertPolicy, ...] = (
    AlertPolicy("page-1h-5m", AlertSeverity.page, "1h", "5m", 0.02),
    AlertPolicy("page-6h-30m", AlertSeverity.page, "6h", "30m", 0.05),
    AlertPolicy("ticket-1d-2h", AlertSeverity.ticket, "1d", "2h", 0.10),
    AlertPolicy("ticket-3d-6h", AlertSeverity.ticket, "3d", "6h", 0.10),
)
# The burn rate "now", used for the time to exhaustion (and the Burn (1h) column).
CURRENT_BURN_WINDOW = "1h"


def window_seconds(window: str) -> float:
    return parse_duration(window).total_seconds()


def error_budget(objective_percent: float) -> float:
    """The error ratio the objective allows, e.g. 99.9 -> 0.001."""
    if not 0 < objective_percent < 100:
        raise ValueError(f"objective must be in (0, 100), got {objective_percent}")
    # In decimal: 99.9 must give exactly 0.001, not 0.000999999999999943, or burn rates print as 20.000000000001.
    return float((Decimal(100) - Decimal(repr(float(objective_percent)))) / Decimal(100))


def usable(value: float | None) -> float | None:
    """NaN (0/0: no events) and missing values both mean "no data"."""
    if value is None or math.isnan(value):
        return None
    return value


def burn_rate(error_ratio: float | None, budget: float) -> float | None:
    ratio = usable(error_ratio)
    return None if ratio is None else ratio / budget


def burn_factor(budget_fraction: float, slo_window_s: float, long_window_s: float) -> float:
    """Burn rate that spends ``budget_fraction`` of the budget within the long lookback."""
    # Rounded so that 0.02 * 672h / 1h shows as 13.44, not 13.440000000000001.
    return round(budget_fraction * slo_window_s / long_window_s, 9)


def time_to_exhaustion(remaining: float, burn: float | None, slo_window_s: float) -> float | None:
    """Seconds until the remaining budget is spent at ``burn``; None when nothing is being spent.

    A burn rate of 1 spends the whole budget in one SLO window, so ``remaining`` lasts
    ``remaining * window / burn``. (It ignores old errors leaving the rolling window: a projection, not a promise.)
    """
    if remaining <= 0:
        return 0.0
    if burn is None or burn <= 0:
        return None
    return remaining * slo_window_s / burn


@dataclass(frozen=True)
class AlertEvaluation:
    policy: AlertPolicy
    factor: float
    threshold: float  # factor * budget, as an error ratio
    long_burn: float | None
    short_burn: float | None

    @property
    def firing(self) -> bool:
        if self.long_burn is None or self.short_burn is None:
            return False
        return self.long_burn > self.factor and self.short_burn > self.factor


def evaluate_alerts(
    burn_rates: Mapping[str, float | None],
    budget: float,
    slo_window_s: float,
    policies: Sequence[AlertPolicy] = POLICIES,
) -> list[AlertEvaluation]:
    out = []
    for policy in policies:
        factor = burn_factor(policy.budget_fraction, slo_window_s, window_seconds(policy.long_window))
        out.append(
            AlertEvaluation(
                policy=policy,
                factor=factor,
                threshold=factor * budget,
                long_burn=burn_rates.get(policy.long_window),
                short_burn=burn_rates.get(policy.short_window),
            )
        )
    return out


def verdict(remaining: float, alerts: Sequence[AlertEvaluation]) -> Verdict:
    """Exhausted, else Breaching when a page alert holds, else AtRisk when a ticket alert holds, else Healthy."""
    if remaining <= 0:
        return Verdict.exhausted
    firing = {a.policy.severity for a in alerts if a.firing}
    if AlertSeverity.page in firing:
        return Verdict.breaching
    if AlertSeverity.ticket in firing:
        return Verdict.at_risk
    return Verdict.healthy


@dataclass(frozen=True)
class BudgetReport:
    objective: float
    budget: float
    error_ratio: float  # over the SLO window
    sli: float
    consumed: float
    remaining: float
    burn_rates: dict[str, float | None]
    alerts: list[AlertEvaluation]
    time_to_exhaustion_s: float | None
    verdict: Verdict


def evaluate(
    objective_percent: float,
    slo_window: str,
    window_error_ratio: float,
    error_ratios: Mapping[str, float | None],
    policies: Sequence[AlertPolicy] = POLICIES,
    slo_window_s: float | None = None,
) -> BudgetReport:
    """Everything a review reports, from the error ratio over the SLO window and over each burn lookback.

    ``slo_window_s``: the window's length when it is not ``slo_window`` (a calendar period, of which
    ``slo_window`` is the part elapsed so far)."""
    budget = error_budget(objective_percent)
    slo_s = window_seconds(slo_window) if slo_window_s is None else slo_window_s
    consumed = window_error_ratio / budget
    remaining = 1.0 - consumed
    burns = {window: burn_rate(ratio, budget) for window, ratio in error_ratios.items()}
    alerts = evaluate_alerts(burns, budget, slo_s, policies)
    return BudgetReport(
        objective=objective_percent,
        budget=budget,
        error_ratio=window_error_ratio,
        sli=1.0 - window_error_ratio,
        consumed=consumed,
        remaining=remaining,
        burn_rates=burns,
        alerts=alerts,
        time_to_exhaustion_s=time_to_exhaustion(remaining, burns.get(CURRENT_BURN_WINDOW), slo_s),
        verdict=verdict(remaining, alerts),
    )


def format_seconds(seconds: float) -> str:
    """Compact duration for status: 61290 -> '17h1m30s', 0 -> '0s'."""
    total = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def attribution_window(burn_rates: Mapping[str, float | None], slo_window: str) -> str:
    """The shortest lookback burning faster than 1 (the current problem), else the SLO window (an
    exhausted budget with no current burn: the errors are older)."""
    burning = [w for w, burn in burn_rates.items() if burn is not None and burn > 1]
    return min(burning, key=window_seconds) if burning else slo_window


def attribution_shares(
    groups: Sequence[tuple[Mapping[str, str], float]],
    total: float | None,
    labels: Sequence[str],
    top: int = MAX_ATTRIBUTION_ENTRIES,
) -> list[AttributionEntry]:
    """The largest ``top`` groups with their share of ``total``; [] when there is nothing to attribute.

    NaN and non-positive groups are dropped; ties are ordered by their label values (stable output);
    label values are untrusted text, truncated."""
    if total is None or not math.isfinite(total) or total <= 0:
        return []
    kept = [(g, v) for g, v in groups if math.isfinite(v) and v > 0]
    kept.sort(key=lambda item: (-item[1], tuple(item[0].get(label, "") for label in labels)))
    return [
        AttributionEntry(
            labels={label: str(g[label])[:MAX_LABEL_VALUE_CHARS] for label in labels if label in g},
            share=round(min(value / total, 1.0), 4),
            errors=value,
        )
        for g, value in kept[:top]
    ]


def describe_attribution(entries: Sequence[AttributionEntry], window: str) -> str:
    """The top contributor in words, e.g. 'route=/checkout, code=503: 82% of errors over 1h'."""
    if not entries:
        return ""
    first = entries[0]
    # Label values are untrusted text going into events and logs: short, and printable only.
    who = ", ".join(f"{k}={''.join(c if c.isprintable() else '?' for c in v[:40])}" for k, v in first.labels.items())
    who = who or "(no labels)"
    return f"{who}: {first.share * 100:.0f}% of errors over {window}"
