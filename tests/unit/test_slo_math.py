"""SLO arithmetic, PromQL building, spec validation and the pure parts of the SLO service."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from pydantic import ValidationError

from infragenius.models.slo import (
    AlertSeverity,
    LatencySLI,
    RatioSLI,
    RawSLI,
    SLISpec,
    SLOReviewSpec,
    TriggerRecord,
    Verdict,
)
from infragenius.slo import math as slo_math
from infragenius.slo import queries
from infragenius.slo import reconcile as service

DAY = 86400.0


def test_budget_is_exact_for_decimal_objectives() -> None:
    assert slo_math.error_budget(99.9) == 0.001
    assert slo_math.error_budget(99.95) == 0.0005
    assert slo_math.error_budget(99) == 0.01
    for bad in (0, 100, -1, 101):
        with pytest.raises(ValueError):
            slo_math.error_budget(bad)


def test_burn_rate_and_no_data() -> None:
    assert slo_math.burn_rate(0.02, 0.001) == pytest.approx(20.0, abs=1e-12)
    assert slo_math.burn_rate(None, 0.001) is None
    assert slo_math.burn_rate(float("nan"), 0.001) is None  # 0/0: no events in the lookback


def test_factors_for_30d_are_the_workbook_ones() -> None:
    factors = [
        slo_math.burn_factor(p.budget_fraction, 30 * DAY, slo_math.window_seconds(p.long_window))
        for p in slo_math.POLICIES
    ]
    assert factors == [14.4, 6.0, 3.0, 1.0]
    assert [(p.long_window, p.short_window) for p in slo_math.POLICIES] == [
        ("1h", "5m"),
        ("6h", "30m"),
        ("1d", "2h"),
        ("3d", "6h"),
    ]
    assert [p.severity for p in slo_math.POLICIES] == [AlertSeverity.page] * 2 + [AlertSeverity.ticket] * 2


def test_factors_scale_with_the_slo_window() -> None:
    # Same budget fractions (2%, 5%, 10%, 10%) spent within the long lookback of a 28d window.
    factors = [
        slo_math.burn_factor(p.budget_fraction, 28 * DAY, slo_math.window_seconds(p.long_window))
        for p in slo_math.POLICIES
    ]
    assert factors == pytest.approx([13.44, 5.6, 2.8, 0.933333333], abs=1e-9)
    seven = slo_math.evaluate_alerts({}, 0.001, 7 * DAY)
    assert seven[0].factor == pytest.approx(0.02 * 168, abs=1e-9)
    assert seven[0].threshold == pytest.approx(0.02 * 168 * 0.001, abs=1e-12)


def _report(ratios: dict[str, float | None], window_ratio: float, objective: float = 99.9) -> slo_math.BudgetReport:
    return slo_math.evaluate(objective, "30d", window_ratio, ratios)


def test_breaching_scenario_by_hand() -> None:
    # 1000 requests/min; 0.5 errors/min for 30d except 20/min in the last hour.
    ratios = {
        "5m": 0.02,
        "30m": 0.02,
        "1h": 0.02,
        "2h": (60 * 20 + 60 * 0.5) / 120000,
        "6h": (60 * 20 + 300 * 0.5) / 360000,
        "1d": (60 * 20 + 1380 * 0.5) / 1440000,
        "3d": (60 * 20 + 4260 * 0.5) / 4320000,
    }
    report = _report(ratios, (60 * 20 + 43140 * 0.5) / 43200000)
    assert report.burn_rates["1h"] == pytest.approx(20.0, abs=1e-9)
    assert report.burn_rates["2h"] == pytest.approx(10.25, abs=1e-9)
    assert report.burn_rates["6h"] == pytest.approx(3.75, abs=1e-9)
    assert report.consumed == pytest.approx(0.52708333333, abs=1e-9)
    assert report.remaining == pytest.approx(0.47291666667, abs=1e-9)
    assert report.sli == pytest.approx(1 - 0.000527083333, abs=1e-12)
    assert [a.firing for a in report.alerts] == [True, False, False, False]
    assert report.verdict is Verdict.breaching
    # remaining x 30d / burn 20
    assert report.time_to_exhaustion_s == pytest.approx(0.47291666667 * 30 * DAY / 20, rel=1e-9)
    assert slo_math.format_seconds(report.time_to_exhaustion_s or 0) == "17h1m30s"


def test_each_verdict() -> None:
    flat = lambda ratio: dict.fromkeys(("5m", "30m", "1h", "2h", "6h", "1d", "3d"), ratio)  # noqa: E731
    assert _report(flat(0.0005), 0.0005).verdict is Verdict.healthy
    at_risk = {**flat(0.004), "3d": 0.004 / 3}
    assert _report(at_risk, 0.004 / 30).verdict is Verdict.at_risk
    assert _report(flat(0.0015), 0.0015).verdict is Verdict.exhausted  # overspent beats the firing ticket
    exhausted = _report(flat(0.0015), 0.0015)
    assert exhausted.remaining == pytest.approx(-0.5, abs=1e-12) and exhausted.time_to_exhaustion_s == 0.0


def test_alerts_need_both_lookbacks_and_data() -> None:
    ratios = {"1h": 0.02, "5m": 0.001}  # long window burning, short window recovered: no page
    assert not _report(ratios, 0.0001).alerts[0].firing
    assert not _report({"1h": 0.02, "5m": None}, 0.0001).alerts[0].firing
    assert _report({"1h": 0.02, "5m": None}, 0.0001).verdict is Verdict.healthy
    # Strictly above the factor (the workbook's `>`): exactly 14.4 does not page.
    assert not _report({"1h": 0.0144, "5m": 0.0144}, 0.0001).alerts[0].firing


def test_time_to_exhaustion() -> None:
    assert slo_math.time_to_exhaustion(0.5, 1.0, 30 * DAY) == 15 * DAY
    assert slo_math.time_to_exhaustion(0.5, 0.0, 30 * DAY) is None
    assert slo_math.time_to_exhaustion(0.5, None, 30 * DAY) is None
    assert slo_math.time_to_exhaustion(-0.1, 3.0, 30 * DAY) == 0.0
    assert slo_math.format_seconds(0) == "0s"
    assert slo_math.format_seconds(90061) == "1d1h1m1s"


# --- PromQL ---------------------------------------------------------------------------------------


def test_ratio_queries_wrap_selectors_and_fill_templates() -> None:
    sli = SLISpec(ratio=RatioSLI(error_query='http_requests_total{code=~"5.."}', total_query="http_requests_total"))
    assert queries.error_ratio_query(sli, "1h") == (
        '(sum(increase(http_requests_total{code=~"5.."}[1h]))) / (sum(increase(http_requests_total[1h])))'
    )
    templated = SLISpec(
        ratio=RatioSLI(error_query="sum(rate(errs[$window]))", total_query="sum by (x) (rate(all[$window]))")
    )
    assert queries.error_ratio_query(templated, "5m") == (
        "(sum(sum(rate(errs[5m])))) / (sum(sum by (x) (rate(all[5m]))))"
    )


def test_latency_query_counts_slow_requests_as_errors() -> None:
    sli = SLISpec(
        latency=LatencySLI(metric="http_request_duration_seconds", threshold_seconds=0.3, selector='job="api"')
    )
    assert queries.error_ratio_query(sli, "30m") == (
        '(sum(increase(http_request_duration_seconds_count{job="api"}[30m]))'
        ' - sum(increase(http_request_duration_seconds_bucket{job="api",le="0.3"}[30m])))'
        ' / sum(increase(http_request_duration_seconds_count{job="api"}[30m]))'
    )
    whole = SLISpec(latency=LatencySLI(metric="rpc_seconds", threshold_seconds=1))
    assert 'rpc_seconds_bucket{le=~"1|1.0"}' in queries.error_ratio_query(whole, "5m")
    assert "rpc_seconds_count{}" in queries.error_ratio_query(whole, "5m")


def test_raw_query_fills_the_window() -> None:
    sli = SLISpec(raw=RawSLI(error_ratio_query="1 - avg_over_time(probe_success[$window])"))
    assert queries.window_queries(sli, ("5m", "3d")) == {
        "5m": "1 - avg_over_time(probe_success[5m])",
        "3d": "1 - avg_over_time(probe_success[3d])",
    }


# --- spec validation (the CRD carries the same rules for the API server) -------------------------

RATIO = {"ratio": {"errorQuery": "errors_total", "totalQuery": "requests_total"}}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"service": "api", "objective": 100, "sli": RATIO}, "less than 100"),
        ({"service": "api", "objective": 0, "sli": RATIO}, "greater than 0"),
        ({"service": "api", "objective": 99.9, "window": "30days", "sli": RATIO}, "should match pattern"),
        ({"service": "api", "objective": 99.9, "window": "12h", "sli": RATIO}, "should match pattern"),
        ({"service": "api", "objective": 99.9, "sli": {"ratio": {"errorQuery": "", "totalQuery": "t"}}}, "at least 1"),
        ({"service": "api", "objective": 99.9, "sli": {"ratio": {"errorQuery": "  ", "totalQuery": "t"}}}, "pattern"),
        ({"service": "api", "objective": 99.9, "sli": {}}, "exactly one SLI type"),
        (
            {"service": "api", "objective": 99.9, "sli": {**RATIO, "raw": {"errorRatioQuery": "x[$window]"}}},
            "exactly one SLI type",
        ),
        ({"service": "api", "objective": 99.9, "sli": {"raw": {"errorRatioQuery": "x"}}}, "must use $window"),
        ({"service": "api", "objective": 99.9, "sli": RATIO, "interval": "30s"}, "at least 60s"),
    ],
)
def test_spec_rejects_impossible_input(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        SLOReviewSpec.model_validate(spec)
    assert message in str(err.value)


def test_spec_defaults() -> None:
    spec = SLOReviewSpec.model_validate({"service": "api", "objective": 99.9, "sli": RATIO})
    assert spec.window == "30d" and spec.interval is None and spec.evaluation_time is None and not spec.llm.enabled


# --- the service's pure helpers ------------------------------------------------------------------


def _body(status: dict | None = None, annotations: dict | None = None, spec: dict | None = None) -> dict:
    return {
        "metadata": {"name": "api", "namespace": "shop", "generation": 2, "annotations": annotations or {}},
        "spec": spec or {"service": "api", "objective": 99.9, "sli": RATIO},
        "status": status or {},
    }


def test_resume_due_and_pending_decisions() -> None:
    done = {"phase": "Completed", "observedGeneration": 2, "lastReview": {"completedAt": "2025-01-01T00:00:00Z"}}
    assert service.needs_review_on_resume(_body())
    assert not service.needs_review_on_resume(_body(done))
    assert service.needs_review_on_resume(_body({**done, "observedGeneration": 1}))
    assert service.needs_review_on_resume(_body(done, {"infragenius.io/trigger": "fp@t"}))
    assert not service.needs_review_on_resume(
        _body({**done, "triggerToken": "fp@t"}, {"infragenius.io/trigger": "fp@t"})
    )

    with_interval = _body({**done, "phase": "Failed"}, spec={"interval": "5m"})
    at = dt.datetime(2025, 1, 1, 0, 4, 59, tzinfo=dt.UTC)
    assert not service.review_due(with_interval, at)
    assert service.review_due(with_interval, at + dt.timedelta(seconds=1))  # failed reviews retry at the interval
    assert not service.review_due(_body(done), at + dt.timedelta(days=1))  # no interval

    assert service.rerun_requested(_body(done, {"infragenius.io/rerun": "1"}))
    assert not service.rerun_requested(_body({**done, "rerunToken": "1"}, {"infragenius.io/rerun": "1"}))


def test_one_change_handler_decides_what_a_change_asks_of_a_review() -> None:
    done = {"phase": "Completed", "observedGeneration": 2, "rerunToken": "1", "triggerToken": "fp@t"}
    assert service.review_request(_body(), "create") == ("create", False)
    # A new spec with an alert pending: one review, marked as the alert's (its Running write takes both tokens).
    behind = _body({**done, "observedGeneration": 1}, {"infragenius.io/trigger": "fp@u"})
    assert service.review_request(behind, "update") == ("update", True)
    alert_and_rerun = _body(done, {"infragenius.io/trigger": "fp@u", "infragenius.io/rerun": "2"})
    assert service.review_request(alert_and_rerun, "update") == ("alert", True)
    assert service.review_request(_body(done, {"infragenius.io/rerun": "2"}), "update") == ("rerun annotation", False)
    # Labels or handled tokens only: nothing to review.
    handled = _body(done, {"infragenius.io/trigger": "fp@t", "infragenius.io/rerun": "1"})
    assert service.review_request(handled, "update") is None
    assert service.review_request(_body({**done, "phase": "Failed"}), "update") is None


def _record(fp: str = "abc", status: str = "firing") -> TriggerRecord:
    return TriggerRecord.model_validate(
        {
            "alertname": "HighBurn",
            "fingerprint": fp,
            "startsAt": "2025-01-01T00:00:00Z",
            "status": status,
            "labels": {"slo": "api"},
            "receivedAt": "2025-01-01T00:00:01Z",
        }
    )


def test_trigger_record_lookup() -> None:
    rec = _record()
    status = {
        "triggers": [_record("zzz").model_dump(by_alias=True, mode="json"), rec.model_dump(by_alias=True, mode="json")]
    }
    assert service.trigger_record(status, rec.token) == rec
    assert service.trigger_record(status, "nope@x") is None
    assert service.trigger_record(status, None) is None


def test_computed_status_clears_lookbacks_without_events() -> None:
    report = slo_math.evaluate(99.9, "30d", 0.0005, {"5m": None, "1h": 0.0005})
    status = service.computed_status(report)
    assert status["burnRates"]["5m"] is None and status["burnRates"]["1h"] == pytest.approx(0.5)
    assert set(status["burnRates"]) == {"5m", "30m", "1h", "2h", "6h", "1d", "3d"}
    assert status["errorBudget"] == {"total": 0.001, "consumed": 0.5, "remaining": 0.5, "remainingPercent": 50.0}
    assert status["verdict"] == "Healthy"
    assert [a["name"] for a in status["alerts"]] == ["page-1h-5m", "page-6h-30m", "ticket-1d-2h", "ticket-3d-6h"]
    assert "longBurnRate" not in status["alerts"][1]  # 6h had no data: omitted, not null
    assert status["timeToExhaustion"] == "30d"


def test_findings_for_the_llm() -> None:
    flat = dict.fromkeys(("5m", "30m", "1h", "2h", "6h", "1d", "3d"), 0.0015)
    report = slo_math.evaluate(99.9, "30d", 0.0015, flat)
    found = service.review_findings(report, "shop", "api", "checkout")
    assert [f.severity.value for f in found] == ["critical", "warning"]  # exhausted, ticket-3d-6h
    assert found[0].title.startswith("Error budget exhausted")
    assert found[0].owners[0].name == "checkout"
    assert math.isclose(float({e.source: e.value for e in found[0].evidence}["errorBudget.consumed"]), 1.5)
    assert service.summarise(report, "30d").startswith("Exhausted: 0.0% of the 30d budget left")


def test_examples_are_valid() -> None:
    from pathlib import Path

    import yaml

    from infragenius.alerts.receiver import PATH
    from infragenius.settings import Settings

    root = Path(__file__).resolve().parents[2] / "examples"
    for name in ("sloreview-ratio.yaml", "sloreview-latency.yaml"):
        obj = yaml.safe_load((root / name).read_text())
        assert obj["kind"] == "SLOReview"
        SLOReviewSpec.model_validate(obj["spec"])
    receiver = yaml.safe_load((root / "alertmanager-receiver.yaml").read_text())
    (hook,) = next(r for r in receiver["receivers"] if r["name"] == "infragenius")["webhook_configs"]
    assert hook["url"].endswith(f":{Settings.model_fields['webhook_port'].default}{PATH}")
    assert hook["send_resolved"] is True and hook["http_config"]["authorization"]["type"] == "Bearer"
