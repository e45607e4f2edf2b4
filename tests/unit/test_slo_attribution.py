"""Burn attribution: the one PromQL query, the shares, the status model, failures as data."""

from __future__ import annotations

import asyncio
import datetime as dt
import math

import pytest
from pydantic import ValidationError

from infragenius.gather.prometheus import PrometheusTarget
from infragenius.models.slo import (
    AttributionStatus,
    AttributionUnavailable,
    LatencySLI,
    RatioSLI,
    RawSLI,
    SLISpec,
    SLOReviewSpec,
    SLOReviewStatus,
)
from infragenius.slo import math as slo_math
from infragenius.slo import queries
from infragenius.slo import reconcile as service
from infragenius.slo.review import attribute, read_attribution

RATIO = SLISpec(ratio=RatioSLI(error_query='http_requests_total{code=~"5.."}', total_query="http_requests_total"))
TOTAL = {queries.TOTAL_LABEL: "1"}

# --- the query ------------------------------------------------------------------------------------


def test_ratio_attribution_is_one_topk_query_with_the_total() -> None:
    assert queries.attribution_query(RATIO, ["route", "code"], "1h") == (
        'topk(5, sum by (route, code) (increase(http_requests_total{code=~"5.."}[1h])))'
        ' or label_replace(sum(sum by (route, code) (increase(http_requests_total{code=~"5.."}[1h]))),'
        ' "infragenius_attribution_total", "1", "", "")'
    )


def test_ratio_attribution_fills_a_window_template() -> None:
    sli = SLISpec(ratio=RatioSLI(error_query="rate(errs[$window])", total_query="rate(all[$window])"))
    assert queries.attribution_query(sli, ["pod"], "5m").startswith("topk(5, sum by (pod) (rate(errs[5m])))")


def test_latency_attribution_counts_slow_requests_per_group() -> None:
    sli = SLISpec(latency=LatencySLI(metric="http_seconds", threshold_seconds=0.3, selector='job="api"'))
    query = queries.attribution_query(sli, ["route"], "30m")
    slow = (
        '(sum by (route) (increase(http_seconds_count{job="api"}[30m]))'
        ' - sum by (route) (increase(http_seconds_bucket{job="api",le="0.3"}[30m])))'
    )
    assert query == f'topk(5, {slow}) or label_replace(sum({slow}), "infragenius_attribution_total", "1", "", "")'


@pytest.mark.parametrize(
    ("sli", "labels", "message"),
    [
        (SLISpec(raw=RawSLI(error_ratio_query="1 - avg_over_time(up[$window])")), ["route"], "raw SLI"),
        (SLISpec(latency=LatencySLI(metric="h", threshold_seconds=1)), ["le"], "by le"),
        (RATIO, [], "no attribution labels"),
        (RATIO, ["route) (x) or vector(1"], "invalid label name"),
        (RATIO, ["__name__"], "invalid label name"),
        (RATIO, [queries.TOTAL_LABEL], "invalid label name"),
    ],
)
def test_attribution_query_refuses(sli: SLISpec, labels: list[str], message: str) -> None:
    with pytest.raises(queries.AttributionRefused, match=message):
        queries.attribution_query(sli, labels, "1h")


# --- the spec and status models -----------------------------------------------------------------

SPEC = {"service": "api", "objective": 99.9, "sli": {"ratio": {"errorQuery": "e", "totalQuery": "t"}}}


def test_attribution_labels_default_to_none() -> None:
    assert SLOReviewSpec.model_validate(SPEC).attribution.labels == []


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["a", "b", "c", "d", "e"], "at most 4"),
        (["route}"], "should match pattern"),
        (["1code"], "should match pattern"),
        (['code="5', "x"], "should match pattern"),
        (["code", "code"], "distinct"),
        (["__name__"], "reserved"),
    ],
)
def test_attribution_labels_are_validated(labels: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SLOReviewSpec.model_validate({**SPEC, "attribution": {"labels": labels}})


def test_status_model_bounds_entries() -> None:
    entry = {"labels": {"route": "/a"}, "share": 0.5, "errors": 1.0}
    with pytest.raises(ValidationError, match="at most 5"):
        AttributionStatus.model_validate({"available": True, "top": [entry] * 6})
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        AttributionStatus.model_validate({"available": True, "top": [{**entry, "share": 1.5}]})
    status = SLOReviewStatus.model_validate({"attribution": {"available": False, "reason": "error", "note": "x"}})
    assert status.attribution is not None and status.attribution.reason is AttributionUnavailable.error


# --- shares -------------------------------------------------------------------------------------


def test_shares_largest_first_bounded_and_truncated() -> None:
    groups = [({"route": f"/r{i}"}, float(i)) for i in range(1, 8)] + [({"route": "x" * 500}, 100.0)]
    top = slo_math.attribution_shares(groups, 128.0, ["route"])
    assert len(top) == 5
    assert top[0].labels["route"] == "x" * 128 and top[0].share == pytest.approx(100 / 128, abs=1e-4)
    assert [e.labels["route"] for e in top[1:]] == ["/r7", "/r6", "/r5", "/r4"]


@pytest.mark.parametrize("total", [0.0, None, math.nan, -1.0, math.inf])
def test_shares_without_a_usable_total_are_empty(total: float | None) -> None:
    assert slo_math.attribution_shares([({"route": "/a"}, 1.0)], total, ["route"]) == []


def test_shares_drop_nan_and_zero_and_order_ties_by_labels() -> None:
    groups = [({"route": "/b"}, 5.0), ({"route": "/z"}, math.nan), ({"route": "/a"}, 5.0), ({"route": "/c"}, 0.0)]
    top = slo_math.attribution_shares(groups, 10.0, ["route"])
    assert [(e.labels["route"], e.share) for e in top] == [("/a", 0.5), ("/b", 0.5)]


def test_the_human_line_is_short_and_printable() -> None:
    top = slo_math.attribution_shares([({"route": "/a\n\x1b[31m" + "x" * 100}, 3.0)], 4.0, ["route"])
    line = slo_math.describe_attribution(top, "1h")
    assert line == f"route=/a??[31m{'x' * 32}: 75% of errors over 1h"
    assert slo_math.describe_attribution([], "1h") == ""


def test_window_is_the_shortest_burning_one_else_the_slo_window() -> None:
    burns = {"5m": 0.5, "30m": 2.0, "1h": 3.0, "6h": None, "1d": 1.5}
    assert slo_math.attribution_window(burns, "30d") == "30m"
    assert slo_math.attribution_window({"5m": 0.2, "1h": None}, "28d") == "28d"


# --- reading the answer, and failures as data -----------------------------------------------------


def _series(labels: dict[str, str], value: float) -> dict:
    return {"metric": labels, "value": [0, str(value)]}


def test_read_attribution_uses_the_total_series() -> None:
    answer = [
        _series({"route": "/checkout", "code": "503"}, 82.0),
        _series({"route": "/cart", "code": "500"}, 18.0),
        _series(TOTAL, 100.0),
    ]
    status = read_attribution(answer, ["route", "code"], "1h")
    assert status.available and status.total_errors == 100.0
    assert status.top[0].labels == {"route": "/checkout", "code": "503"} and status.top[0].share == 0.82
    assert status.note == "route=/checkout, code=503: 82% of errors over 1h"


def test_read_attribution_without_errors_or_labels_is_no_data() -> None:
    empty = read_attribution([_series(TOTAL, 0.0)], ["route"], "1h")
    assert not empty.available and empty.reason is AttributionUnavailable.no_data
    summed_away = read_attribution([_series({}, 4.0), _series(TOTAL, 4.0)], ["route"], "1h")
    assert summed_away.reason is AttributionUnavailable.no_data and "sum them away" in (summed_away.note or "")


def test_attribute_reports_failures_instead_of_raising() -> None:
    unreachable = PrometheusTarget(url="http://127.0.0.1:9")
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    failed = asyncio.run(attribute(unreachable, RATIO, ["route"], "1h", at=at, timeout=1.0))
    assert not failed.available and failed.reason is AttributionUnavailable.error
    assert (failed.note or "").startswith("attribution query failed")
    raw = SLISpec(raw=RawSLI(error_ratio_query="x[$window]"))
    skipped = asyncio.run(attribute(unreachable, raw, ["route"], "1h", at=at, timeout=1.0))
    assert skipped.reason is AttributionUnavailable.skipped and "raw SLI" in (skipped.note or "")


def test_summary_names_the_top_contributor() -> None:
    report = slo_math.evaluate(99.9, "30d", 0.0005, {"5m": 0.05, "1h": 0.05})
    status = read_attribution([_series({"route": "/checkout"}, 8.0), _series(TOTAL, 10.0)], ["route"], "5m")
    assert service.summarise(report, "30d", status).endswith("; route=/checkout: 80% of errors over 5m")
    unavailable = AttributionStatus(available=False, reason=AttributionUnavailable.error, note="boom")
    assert "boom" not in service.summarise(report, "30d", unavailable)
