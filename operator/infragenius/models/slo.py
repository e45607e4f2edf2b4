"""The SLOReview custom resource: spec and status."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from enum import Enum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from infragenius.models.analysis import MIN_INTERVAL_SECONDS
from infragenius.models.api import RunStatus
from infragenius.models.common import CamelModel, Duration, Instant, LLMSpec, SpecBool, SpecFloat, parse_duration
from infragenius.models.explanation import ExplainedStatus

WINDOW_PLACEHOLDER = "$window"
MAX_TRIGGERS = 20
# Burn-rate lookbacks reported in status (the multi-window alert pairs use these).
BURN_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

# Days or weeks, e.g. 30d, 28d, 4w: an SLO window shorter than a day makes the 1d/3d lookbacks meaningless.
SLO_WINDOW_PATTERN = r"^[1-9][0-9]{0,2}(d|w)$"
# At least one non-blank character (unanchored: JSON schema and Go both search).
NOT_BLANK = r"\S"
METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
# Label names are user input that ends up inside PromQL: only this shape is ever put in a query.
LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
MAX_ATTRIBUTION_LABELS = 4
MAX_ATTRIBUTION_ENTRIES = 5
MAX_LABEL_VALUE_CHARS = 128
MAX_INCIDENT_LINKS = 5


class Verdict(str, Enum):
    """Most severe first: Exhausted > Breaching (a page alert holds) > AtRisk (a ticket alert holds) > Healthy."""

    healthy = "Healthy"
    at_risk = "AtRisk"
    breaching = "Breaching"
    exhausted = "Exhausted"


class AlertSeverity(str, Enum):
    page = "page"
    ticket = "ticket"


class RatioSLI(CamelModel):
    """Errors over total events. Each query is a counter selector (wrapped in `sum(increase(...[w]))`) or an
    expression that uses `$window` for the lookback, e.g. `sum(rate(http_requests_total{code=~"5.."}[$window]))`."""

    error_query: str = Field(min_length=1, max_length=2048, pattern=NOT_BLANK)
    total_query: str = Field(min_length=1, max_length=2048, pattern=NOT_BLANK)


class LatencySLI(CamelModel):
    """Requests slower than `thresholdSeconds` are errors, read from a Prometheus histogram."""

    metric: str = Field(
        max_length=200, pattern=METRIC_NAME_PATTERN, description="Histogram base name (without _bucket/_count)."
    )
    threshold_seconds: SpecFloat = Field(gt=0, le=3600, description="Must equal one of the histogram's bucket bounds.")
    selector: str = Field(
        default="", max_length=1024, pattern=r"^[^{}]*$", description='Label matchers without braces, e.g. job="api".'
    )


class RawSLI(CamelModel):
    """An expression that already yields the error ratio over `$window`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.errorRatioQuery.contains('$window')", "message": "errorRatioQuery must use $window"}
            ]
        }
    )

    error_ratio_query: str = Field(min_length=1, max_length=2048, pattern=NOT_BLANK)

    @model_validator(mode="after")
    def _uses_window(self) -> RawSLI:
        if WINDOW_PLACEHOLDER not in self.error_ratio_query:
            raise ValueError("errorRatioQuery must use $window")
        return self


class SLISpec(CamelModel):
    """Exactly one of ratio, latency or raw."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.ratio) ? 1 : 0) + (has(self.latency) ? 1 : 0) + (has(self.raw) ? 1 : 0) == 1",
                    "message": "set exactly one SLI type: ratio, latency or raw",
                }
            ]
        }
    )

    ratio: RatioSLI | None = None
    latency: LatencySLI | None = None
    raw: RawSLI | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SLISpec:
        if sum(x is not None for x in (self.ratio, self.latency, self.raw)) != 1:
            raise ValueError("set exactly one SLI type: ratio, latency or raw")
        return self


class SLOPrometheusSpec(CamelModel):
    url: str | None = Field(
        default=None, max_length=512, pattern=r"^https?://[^\s]+$", description="Overrides INFRAGENIUS_PROMETHEUS_URL."
    )


class SLORulesSpec(CamelModel):
    """Prometheus rules for this SLO, kept in its namespace and owned by it (a PrometheusRule or a ConfigMap)."""

    enabled: SpecBool = Field(
        default=True, description="false: the rules object (if one was written) is emptied, and no longer updated."
    )


class SLOAttributionSpec(CamelModel):
    """Break the errors of the burning lookback down by these SLI labels when the verdict is not Healthy."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.labels) || self.labels.all(l, !l.startsWith('__'))",
                    "message": "attribution labels starting with __ are reserved by Prometheus",
                }
            ]
        }
    )

    labels: list[Annotated[str, Field(max_length=64, pattern=LABEL_NAME_PATTERN)]] = Field(
        default_factory=list,
        max_length=MAX_ATTRIBUTION_LABELS,
        description="e.g. [route, code]; empty: no attribution (one extra Prometheus query per review otherwise).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _distinct_and_not_reserved(self) -> SLOAttributionSpec:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("attribution labels must be distinct")
        if any(label.startswith("__") for label in self.labels):
            raise ValueError("attribution labels starting with __ are reserved by Prometheus")
        return self


class CalendarUnit(str, Enum):
    """A calendar-aligned SLO window: the budget resets at the start of each one."""

    day = "Day"
    week = "Week"
    month = "Month"
    quarter = "Quarter"
    year = "Year"


# A local wall-clock time without a zone (the zone is timeZone), e.g. 2026-01-01T00:00:00.
LOCAL_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}$"
# IANA names only (Europe/Berlin, UTC, Etc/GMT+2): no paths, no dots, so nothing outside the zone database.
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"


class SLOCalendarSpec(CamelModel):
    """Calendar-aligned instead of rolling: the SLO window is the current day, week, month, quarter or year."""

    unit: CalendarUnit
    time_zone: str = Field(
        default="UTC", max_length=64, pattern=TIME_ZONE_PATTERN, description="IANA zone the periods follow."
    )
    start_time: str | None = Field(
        default=None,
        max_length=19,
        pattern=LOCAL_TIME_PATTERN,
        description=(
            "Local time one period starts (periods repeat every unit from it), e.g. 2026-01-01T00:00:00; "
            "default: midnight, Monday, the 1st, or the quarter's or year's first day."
        ),
    )

    @model_validator(mode="after")
    def _known_zone_and_time(self) -> SLOCalendarSpec:
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.time_zone!r}; use an IANA name such as Europe/Berlin") from None
        if self.start_time is not None:
            try:
                dt.datetime.fromisoformat(self.start_time.replace(" ", "T"))
            except ValueError:
                raise ValueError(f"{self.start_time!r} is not a valid local time") from None
        return self


class SLOReviewSpec(CamelModel):
    """One SLO of one service and how often to review it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.interval) || duration(self.interval) >= duration('60s')",
                    "message": "interval must be at least 1m",
                }
            ]
        }
    )

    service: str = Field(min_length=1, max_length=253, pattern=NOT_BLANK)
    objective: SpecFloat = Field(gt=0, lt=100, description="Target percentage of good events, e.g. 99.9.")
    window: str = Field(
        default="30d", max_length=8, pattern=SLO_WINDOW_PATTERN, description="Rolling window: 30d, 28d, 4w."
    )
    calendar: SLOCalendarSpec | None = Field(
        default=None, description="A calendar-aligned window instead of the rolling one (window is then unused)."
    )
    sli: SLISpec
    prometheus: SLOPrometheusSpec = Field(default_factory=SLOPrometheusSpec)
    interval: Duration | None = Field(default=None, description="Review periodically, at least every 1m.")
    evaluation_time: Instant | None = Field(
        default=None, description="Review as of this instant instead of now (postmortems, reproducible results)."
    )
    llm: LLMSpec = Field(default_factory=LLMSpec)
    rules: SLORulesSpec = Field(default_factory=SLORulesSpec)
    attribution: SLOAttributionSpec = Field(default_factory=SLOAttributionSpec)

    @model_validator(mode="after")
    def _interval_floor(self) -> SLOReviewSpec:
        if self.interval is not None and parse_duration(self.interval).total_seconds() < MIN_INTERVAL_SECONDS:
            raise ValueError(f"interval must be at least {MIN_INTERVAL_SECONDS}s")
        return self


class ErrorBudget(CamelModel):
    total: float = Field(description="Allowed error ratio over the window: 1 - objective/100.")
    consumed: float = Field(description="Fraction of the budget spent (above 1 when overspent).")
    remaining: float = Field(description="1 - consumed (negative when overspent).")
    remaining_percent: float = Field(description="remaining as a percentage, rounded to 0.01.")


class BurnRates(CamelModel):
    """Error ratio over each lookback divided by the budget; absent when the lookback had no events."""

    m5: float | None = Field(default=None, alias="5m")
    m30: float | None = Field(default=None, alias="30m")
    h1: float | None = Field(default=None, alias="1h")
    h2: float | None = Field(default=None, alias="2h")
    h6: float | None = Field(default=None, alias="6h")
    d1: float | None = Field(default=None, alias="1d")
    d3: float | None = Field(default=None, alias="3d")


class AlertCondition(CamelModel):
    """One multi-window burn-rate alert: it holds when both lookbacks burn faster than `factor`."""

    name: str = Field(max_length=32, description="e.g. page-1h-5m")
    severity: AlertSeverity
    long_window: str = Field(max_length=8)
    short_window: str = Field(max_length=8)
    budget_fraction: float = Field(description="Share of the budget this alert catches being spent in longWindow.")
    factor: float = Field(description="Burn-rate threshold, scaled to the SLO window.")
    threshold: float = Field(description="factor x budget, as an error ratio.")
    long_burn_rate: float | None = None
    short_burn_rate: float | None = None
    firing: bool = False


class AlertStatus(str, Enum):
    firing = "firing"
    resolved = "resolved"


class TriggerRecord(CamelModel):
    """An Alertmanager alert about this SLO, as delivered to the operator's webhook."""

    alertname: str = Field(default="", max_length=253)
    fingerprint: str = Field(max_length=64)
    starts_at: str = Field(max_length=64)
    status: AlertStatus
    labels: dict[str, str] = Field(default_factory=dict, max_length=16)
    received_at: str = Field(max_length=64)

    @property
    def key(self) -> tuple[str, str, str]:
        """Alertmanager re-sends the same alert; (fingerprint, startsAt, status) names one notification."""
        return (self.fingerprint, self.starts_at, self.status.value)

    @property
    def token(self) -> str:
        return f"{self.fingerprint}@{self.starts_at}"


class LastReview(CamelModel):
    run_id: str = Field(max_length=64)
    reason: str = Field(max_length=256)
    trigger: TriggerRecord | None = Field(default=None, description="The alert that asked for this review.")
    started_at: str
    completed_at: str | None = None
    duration_seconds: float | None = None


class RulesKind(str, Enum):
    prometheus_rule = "PrometheusRule"
    config_map = "ConfigMap"


class RulesStatus(CamelModel):
    """Where the SLOReview's Prometheus rules are, and whether they are the current spec's."""

    kind: RulesKind
    name: str = Field(max_length=253)
    key: str | None = Field(default=None, max_length=253, description="The ConfigMap's data key holding the rules.")
    generation: int = Field(ge=0, description="The SLOReview generation whose rules the object holds.")
    hash: str = Field(max_length=64, description="sha256 of the rule file the object holds.")
    current: bool = Field(description="The object holds the rules of the generation the last review saw.")
    enabled: bool = Field(default=True, description="false: spec.rules.enabled is false and the object is empty.")


class AttributionUnavailable(str, Enum):
    no_data = "no_data"  # the query answered without errors to attribute (or without the labels)
    error = "error"  # the query failed or timed out
    skipped = "skipped"  # the SLI type cannot be broken down (raw), or a label it cannot keep


class AttributionEntry(CamelModel):
    labels: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTION_LABELS, description="Values truncated to 128 characters."
    )
    share: float = Field(ge=0, le=1, description="This group's share of the errors over the window.")
    errors: float = Field(ge=0, description="The group's errors (slow requests) over the window.")


class AttributionStatus(CamelModel):
    """Who caused the errors of the burning lookback (only when the verdict is not Healthy)."""

    available: bool = Field(description="false: no breakdown; note says why.")
    window: str | None = Field(default=None, max_length=16)
    labels: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=MAX_ATTRIBUTION_LABELS)
    top: list[AttributionEntry] = Field(default_factory=list, max_length=MAX_ATTRIBUTION_ENTRIES)
    total_errors: float | None = None
    reason: AttributionUnavailable | None = None
    note: str | None = Field(default=None, max_length=512)


class SLOPeriod(CamelModel):
    """The SLO window the review measured: the rolling window back from evaluatedAt, or the calendar period."""

    start: str
    end: str = Field(description="evaluatedAt for a rolling window; when the budget resets for a calendar one.")
    calendar: bool = False


class IncidentLink(CamelModel):
    """An IncidentReport in the same namespace whose window overlaps the burning lookback."""

    name: str = Field(max_length=253)
    start: str | None = None
    end: str | None = None


class SLOReviewStatus(RunStatus):
    """What the operator writes back."""

    verdict: Verdict | None = None
    evaluated_at: str | None = Field(default=None, description="The instant the values describe.")
    sli: float | None = Field(default=None, description="Good events / all events over the window.")
    error_budget: ErrorBudget | None = None
    burn_rates: BurnRates | None = None
    alerts: list[AlertCondition] = Field(default_factory=list, max_length=8)
    time_to_exhaustion: str | None = Field(default=None, max_length=32, description="At the 1h burn rate, e.g. 17h1m.")
    time_to_exhaustion_seconds: float | None = None
    last_review: LastReview | None = None
    triggers: list[TriggerRecord] = Field(
        default_factory=list, max_length=MAX_TRIGGERS, description="Newest last; bounded."
    )
    explanation: ExplainedStatus | None = Field(default=None, description="The LLM's narrative.")
    trigger_token: str | None = Field(default=None, max_length=253, description="Last handled trigger annotation.")
    rules: RulesStatus | None = Field(default=None, description="The Prometheus rules the operator keeps.")
    attribution: AttributionStatus | None = Field(default=None, description="The top error contributors.")
    period: SLOPeriod | None = Field(default=None, description="The SLO window this review measured.")
    incidents: list[IncidentLink] = Field(
        default_factory=list,
        max_length=MAX_INCIDENT_LINKS,
        description="IncidentReports covering the burning lookback (not Healthy only), newest first.",
    )
