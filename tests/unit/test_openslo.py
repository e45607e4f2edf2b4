"""OpenSLO v1 import and export: the mapping, the refusals (naming the field), the CLI, and round trips."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infragenius import cli
from infragenius.models.slo import SLOReviewSpec
from infragenius.slo import openslo, queries, rules

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "openslo" / "checkout.yaml"

BAD = 'http_requests_total{service="checkout",code=~"5.."}'
GOOD = 'http_requests_total{service="checkout",code!~"5.."}'
TOTAL = 'http_requests_total{service="checkout"}'


def prom(query: str) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}


def slo(
    name: str = "checkout-availability",
    *,
    indicator: dict[str, Any] | None = None,
    objectives: list[dict[str, Any]] | None = None,
    window: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "service": "checkout",
        "indicator": indicator or {"metadata": {"name": "errors"}, "spec": {"ratioMetric": ratio("bad")}},
        "timeWindow": [window or {"duration": "28d", "isRolling": True}],
        "budgetingMethod": "Occurrences",
        "objectives": objectives or [{"target": 0.999}],
        **spec,
    }
    return {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": name}, "spec": body}


def ratio(numerator: str) -> dict[str, Any]:
    return {"counter": True, numerator: prom(BAD if numerator == "bad" else GOOD), "total": prom(TOTAL)}


def import_one(*docs: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    (manifest,) = openslo.import_documents(docs, namespace).manifests
    return manifest


def refusal(*docs: object) -> str:
    with pytest.raises(openslo.OpenSLOError) as err:
        openslo.import_documents(docs)
    return str(err.value)


# --- import ---------------------------------------------------------------------------------------


def test_example_imports_into_valid_sloreviews() -> None:
    result = openslo.import_text(EXAMPLE.read_text(), namespace="shop")
    availability, latency = result.manifests
    # Valid as the operator and `slo rules` read them.
    sources = rules.parse_documents(result.manifests)
    assert [s.name for s in sources] == ["checkout-availability", "checkout-latency"]
    assert availability["metadata"] == {
        "name": "checkout-availability",
        "namespace": "shop",
        "labels": {"team": "payments"},
        "annotations": {
            openslo.DISPLAY_NAME_ANNOTATION: "Checkout availability",
            openslo.DESCRIPTION_ANNOTATION: "99.9% of checkout requests succeed over 30 days",
        },
    }
    assert availability["spec"] == {
        "service": "checkout",
        "objective": 99.9,
        "window": "30d",
        "sli": {
            "ratio": {
                "errorQuery": 'http_requests_total{namespace="shop",service="checkout",code=~"5.."}',
                "totalQuery": 'http_requests_total{namespace="shop",service="checkout"}',
            }
        },
    }
    assert latency["spec"]["sli"] == {
        "latency": {
            "metric": "http_request_duration_seconds",
            "thresholdSeconds": 0.3,
            "selector": 'namespace="shop",service="checkout"',
        }
    }
    assert latency["spec"]["objective"] == 99.0 and latency["spec"]["window"] == "28d"
    # The alert policy is read and reported, not silently dropped.
    assert len(result.warnings) == 2
    assert all("alert" in w.lower() and "not imported" in w for w in result.warnings)


def test_inline_indicator_and_separate_sli_give_the_same_review() -> None:
    inline = import_one(slo())
    sli = {
        "apiVersion": "openslo/v1",
        "kind": "SLI",
        "metadata": {"name": "errors"},
        "spec": {"ratioMetric": ratio("bad")},
    }
    referenced = slo()
    del referenced["spec"]["indicator"]
    referenced["spec"]["indicatorRef"] = "errors"
    assert import_one(sli, referenced) == inline
    assert inline["spec"]["sli"] == {"ratio": {"errorQuery": BAD, "totalQuery": TOTAL}}


@pytest.mark.parametrize(
    ("objective", "percent"),
    [({"target": 0.999}, 99.9), ({"target": 0.9995}, 99.95), ({"targetPercent": 99.99}, 99.99), ({"target": 0.5}, 50)],
)
def test_target_is_a_percentage_exactly(objective: dict[str, Any], percent: float) -> None:
    # 0.999 * 100 in binary floating point is 99.89999999999999; the import works in decimal.
    assert import_one(slo(objectives=[objective]))["spec"]["objective"] == percent


def test_good_over_total_counts_total_minus_good_as_errors() -> None:
    spec = SLOReviewSpec.model_validate(import_one(slo(indicator={"spec": {"ratioMetric": ratio("good")}}))["spec"])
    assert spec.sli.ratio is not None
    assert queries.error_ratio_query(spec.sli, "1h") == (
        f"(sum(sum(increase({TOTAL}[1h])) - sum(increase({GOOD}[1h])))) / (sum(increase({TOTAL}[1h])))"
    )


def test_window_templates_stay_as_written() -> None:
    good = "sum(rate(http_requests_total{code!~'5..'}[$window]))"
    total = "sum(rate(http_requests_total[$window]))"
    indicator = {"spec": {"ratioMetric": {"counter": False, "good": prom(good), "total": prom(total)}}}
    spec = import_one(slo(indicator=indicator))["spec"]
    assert spec["sli"]["ratio"] == {"errorQuery": f"sum({total}) - sum({good})", "totalQuery": total}


@pytest.mark.parametrize(
    ("raw_type", "expected"),
    [
        ("failure", "sum(rate(e[$window])) / sum(rate(t[$window]))"),
        ("success", "1 - (sum(rate(e[$window])) / sum(rate(t[$window])))"),
    ],
)
def test_raw_ratio(raw_type: str, expected: str) -> None:
    query = "sum(rate(e[$window])) / sum(rate(t[$window]))"
    indicator = {"spec": {"ratioMetric": {"rawType": raw_type, "raw": prom(query)}}}
    assert import_one(slo(indicator=indicator))["spec"]["sli"] == {"raw": {"errorRatioQuery": expected}}


def test_threshold_metric_on_histogram_buckets_is_the_latency_sli() -> None:
    indicator = {"spec": {"thresholdMetric": prom("rpc_seconds_bucket")}}
    spec = import_one(slo(indicator=indicator, objectives=[{"op": "lte", "value": 1, "targetPercent": 95}]))["spec"]
    assert spec["sli"] == {"latency": {"metric": "rpc_seconds", "thresholdSeconds": 1.0}}


def test_datasource_ref_gives_the_type_and_its_connection_is_reported() -> None:
    source = {
        "apiVersion": "openslo/v1",
        "kind": "DataSource",
        "metadata": {"name": "prom"},
        "spec": {"type": "Prometheus", "connectionDetails": {"url": "http://prometheus:9090"}},
    }
    indicator = {
        "spec": {
            "ratioMetric": {
                "bad": {"metricSource": {"metricSourceRef": "prom", "spec": {"query": BAD}}},
                "total": {"metricSource": {"metricSourceRef": "prom", "spec": {"query": TOTAL}}},
            }
        }
    }
    result = openslo.import_documents([source, slo(indicator=indicator)])
    assert result.manifests[0]["spec"]["sli"] == {"ratio": {"errorQuery": BAD, "totalQuery": TOTAL}}
    assert len(result.warnings) == 1 and "connectionDetails" in result.warnings[0]


def test_namespace_from_the_annotation_wins_over_the_default() -> None:
    doc = slo()
    assert "namespace" not in import_one(doc)["metadata"]
    assert import_one(doc, namespace="team")["metadata"]["namespace"] == "team"
    doc["metadata"]["annotations"] = {openslo.NAMESPACE_ANNOTATION: "shop"}
    assert import_one(doc, namespace="team")["metadata"] == {"name": "checkout-availability", "namespace": "shop"}


def _set(path: str, value: Any) -> Any:
    """A change to an SLO document: set (or with value ... delete) the dotted path; [n] indexes a list."""

    def change(doc: dict[str, Any]) -> None:
        keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
        target: Any = doc
        for key in keys[:-1]:
            target = target[key]
        if value is ...:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _set(
                "spec.timeWindow[0]",
                {"duration": "2w", "isRolling": False, "calendar": {"timeZone": "UTC"}},
            ),
            "SLO checkout-availability: spec.timeWindow[0].duration: '2w' is not supported for a calendar window",
        ),
        (
            _set("spec.timeWindow[0]", {"duration": "1M", "isRolling": False, "calendar": {"timeZone": "Mars/Base"}}),
            "spec.timeWindow[0].calendar.calendar: Value error, unknown time zone 'Mars/Base'",
        ),
        (
            _set("spec.timeWindow[0]", {"duration": "1M", "isRolling": False, "calendar": {"timeZone": "../etc"}}),
            "spec.timeWindow[0].calendar.timeZone: String should match pattern",
        ),
        (
            _set(
                "spec.timeWindow[0]",
                {"duration": "1M", "isRolling": False, "calendar": {"startTime": "2026-02-30 00:00:00"}},
            ),
            "'2026-02-30 00:00:00' is not a valid local time",
        ),
        (
            _set(
                "spec.timeWindow[0]",
                {"duration": "1M", "isRolling": False, "calendar": {"timeZone": "UTC", "weekStart": "Sunday"}},
            ),
            "spec.timeWindow[0].calendar.weekStart is not supported",
        ),
        (
            _set(
                "spec.timeWindow[0]",
                {"duration": "1M", "calendar": {"startTime": dt.datetime(2020, 1, 21, 12, 30, tzinfo=dt.UTC)}},
            ),
            "spec.timeWindow[0].calendar.startTime: 2020-01-21T12:30:00+00:00 has a zone",
        ),
        (
            _set("spec.timeWindow[0]", {"duration": "28d", "isRolling": True, "calendar": {"timeZone": "UTC"}}),
            "spec.timeWindow[0].calendar: a rolling window (isRolling: true) has no calendar",
        ),
        (
            _set("spec.timeWindow[0].isRolling", False),
            "spec.timeWindow[0].calendar: a calendar window (isRolling: false) needs a calendar",
        ),
        (_set("spec.timeWindow[0].isRolling", "yes"), "spec.timeWindow[0].isRolling: 'yes' is not a boolean"),
        (_set("spec.timeWindow[0].duration", "12h"), "spec.timeWindow[0].duration: '12h' is not supported"),
        (_set("spec.timeWindow[0].duration", "1Q"), "spec.timeWindow[0].duration: '1Q'"),
        (_set("spec.timeWindow", ...), "spec.timeWindow: expected a list of exactly one window"),
        (_set("spec.budgetingMethod", "Timeslices"), "spec.budgetingMethod: 'Timeslices' is not supported"),
        (_set("spec.budgetingMethod", "RatioTimeslices"), "spec.budgetingMethod: 'RatioTimeslices' is not supported"),
        (_set("spec.budgetingMethod", ...), "spec.budgetingMethod: None is not supported"),
        (
            _set("spec.objectives", [{"target": 0.99}, {"target": 0.999}]),
            "spec.objectives: 2 objectives are not supported",
        ),
        (_set("spec.objectives", []), "spec.objectives: expected a list of one objective"),
        (
            _set("spec.objectives[0]", {"target": 0.99, "timeSliceWindow": "5m"}),
            "spec.objectives[0].timeSliceWindow is not supported",
        ),
        (
            _set("spec.objectives[0]", {"target": 0.99, "indicatorRef": "x"}),
            "spec.objectives[0].indicatorRef is not supported",
        ),
        (
            _set("spec.objectives[0]", {"target": 0.99, "targetPercent": 99}),
            "set exactly one of target and targetPercent",
        ),
        (_set("spec.objectives[0]", {"target": 1}), "spec.objectives[0].target: 1 is not in (0, 1)"),
        (_set("spec.objectives[0]", {"target": "0.99"}), "spec.objectives[0].target: expected a number"),
        (_set("spec.objectives[0]", {"target": float("nan")}), "spec.objectives[0].target: expected a finite number"),
        (_set("spec.objectives[0]", {"targetPercent": True}), "spec.objectives[0].targetPercent: expected a number"),
        (
            _set("spec.objectives[0]", {"target": 0.99, "op": "lte"}),
            "spec.objectives[0].op is only for a thresholdMetric",
        ),
        (_set("spec.service", ...), "spec.service: expected a non-empty string"),
        (_set("spec.budget", 1), "spec.budget is not supported"),
        (
            _set("spec.indicator.spec.ratioMetric.bad.metricSource.type", "Datadog"),
            "spec.indicator.spec.ratioMetric.bad.metricSource.type: 'Datadog' is not supported: "
            "SLOReview reads Prometheus",
        ),
        (
            _set("spec.indicator.spec.ratioMetric.total.metricSource.spec", {"query": TOTAL, "step": 60}),
            "ratioMetric.total.metricSource.spec.step is not supported",
        ),
        (
            _set("spec.indicator.spec.ratioMetric.total.metricSource.spec.query", "sum(rate(x[5m]))"),
            "ratioMetric.total.metricSource.spec.query: 'sum(rate(x[5m]))' is neither a counter selector",
        ),
        (_set("spec.indicator.spec.ratioMetric.counter", False), "counter: false needs a query using $window"),
        (_set("spec.indicator.spec.ratioMetric.good", prom(GOOD)), "set total and exactly one of good and bad"),
        (_set("spec.indicator.spec.ratioMetric.total", ...), "set total and exactly one of good and bad"),
        (
            _set("spec.indicator.spec", {"ratioMetric": {"rawType": "failure", "raw": prom("errors:ratio")}}),
            "raw.metricSource.spec.query: must use $window",
        ),
        (_set("spec.indicatorRef", "errors"), "spec: set exactly one of indicator and indicatorRef"),
        (_set("metadata.labels", {"team": ["a", "b"]}), "metadata.labels.team: 2 values are not supported"),
        (
            _set("metadata.labels", {"team": "not a label value"}),
            "metadata.labels.team: 'not a label value' is not a valid",
        ),
        (_set("metadata.name", "Checkout_SLO"), "metadata.name: 'Checkout_SLO' is not a valid Kubernetes name"),
        (_set("apiVersion", "openslo/v2alpha"), "document 1: apiVersion: expected 'openslo/v1', got 'openslo/v2alpha'"),
        (_set("kind", "SLOReview"), "document 1: kind: expected one of"),
        (
            _set("spec.indicator.spec", {"thresholdMetric": prom("histogram_quantile(0.99, rate(x_bucket[5m]))")}),
            "is not supported: a thresholdMetric maps to the latency SLI only as a histogram's buckets",
        ),
    ],
)
def test_what_cannot_be_mapped_is_refused_naming_the_field(change: Any, message: str) -> None:
    doc = slo()
    change(doc)
    assert message in refusal(doc)


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ({"op": "gte", "value": 0.3, "target": 0.99}, "spec.objectives[0].op: 'gte' is not supported"),
        ({"op": "lt", "value": 0.3, "target": 0.99}, "spec.objectives[0].op: 'lt' is not supported"),
        ({"op": "lte", "value": 0, "target": 0.99}, "spec.objectives[0].value: Input should be greater than 0"),
        ({"op": "lte", "target": 0.99}, "spec.objectives[0].value: expected a number"),
    ],
)
def test_threshold_metric_that_does_not_fit_the_latency_sli_is_refused(objective: dict[str, Any], message: str) -> None:
    doc = slo(indicator={"spec": {"thresholdMetric": prom('x_seconds_bucket{job="a"}')}}, objectives=[objective])
    assert message in refusal(doc)
    le = slo(indicator={"spec": {"thresholdMetric": prom('x_bucket{le="0.3"}')}}, objectives=[objective])
    assert "the le label is set from the objective's value" in refusal(le)


def test_references_and_duplicates_are_checked() -> None:
    referenced = slo()
    del referenced["spec"]["indicator"]
    referenced["spec"]["indicatorRef"] = "missing"
    assert "spec.indicatorRef: no SLI named 'missing' in the input" in refusal(referenced)
    assert "SLO checkout-availability: metadata.name: defined twice" in refusal(slo(), slo())
    service = {"apiVersion": "openslo/v1", "kind": "Service", "metadata": {"name": "checkout"}, "spec": {}}
    assert refusal(service) == "no OpenSLO v1 SLO documents in the input"
    assert refusal(["a list"]) == "document 1: expected a mapping, got list"
    unknown_ref = slo(
        indicator={
            "spec": {
                "ratioMetric": {
                    "bad": {"metricSource": {"metricSourceRef": "x", "spec": {"query": BAD}}},
                    "total": prom(TOTAL),
                }
            }
        }
    )
    assert "metricSourceRef: no DataSource named 'x' and no type given" in refusal(unknown_ref)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("spec: [unclosed", yaml.YAMLError, ""),
        # Nine levels of aliases: a few hundred bytes that would expand into a billion strings.
        (
            "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(8)
            ),
            openslo.OpenSLOError,
            "YAML aliases (*a) are not supported",
        ),
        ("x: " + "[" * 200 + "]" * 200, openslo.OpenSLOError, "nested deeper than 32 levels"),
        ("# " + "x" * openslo.MAX_INPUT_BYTES, openslo.OpenSLOError, f"larger than {openslo.MAX_INPUT_BYTES} bytes"),
    ],
)
def test_garbage_bombs_and_huge_input_are_refused(text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as err:
        openslo.load_yaml(text)
    assert message in str(err.value)


# --- export ---------------------------------------------------------------------------------------


def review(name: str, sli: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": "SLOReview",
        "metadata": {"name": name},
        "spec": {"service": "checkout", "objective": 99.9, "window": "30d", "sli": sli, **spec},
    }


def test_export_writes_openslo_v1_that_imports_back() -> None:
    manifests = [
        yaml.safe_load((ROOT / "examples" / name).read_text())
        for name in ("sloreview-ratio.yaml", "sloreview-latency.yaml")
    ]
    service, availability, latency = openslo.export_documents(manifests)
    assert service == {"apiVersion": "openslo/v1", "kind": "Service", "metadata": {"name": "checkout"}, "spec": {}}
    assert availability["spec"]["budgetingMethod"] == "Occurrences"
    assert availability["spec"]["timeWindow"] == [{"duration": "30d", "isRolling": True}]
    assert availability["spec"]["objectives"] == [{"target": 0.999}]
    assert availability["spec"]["indicator"]["spec"]["ratioMetric"]["bad"] == prom(
        manifests[0]["spec"]["sli"]["ratio"]["errorQuery"]
    )
    # interval and llm have no OpenSLO field: they travel in one annotation.
    assert json.loads(availability["metadata"]["annotations"][openslo.SPEC_ANNOTATION]) == {
        "interval": "5m",
        "llm": {"enabled": False},
    }
    assert latency["spec"]["objectives"] == [{"op": "lte", "value": 0.3, "target": 0.99}]
    assert latency["spec"]["indicator"]["spec"]["thresholdMetric"] == prom(
        'http_request_duration_seconds_bucket{namespace="shop",service="checkout"}'
    )
    back = openslo.import_documents(yaml.safe_load_all(openslo.dump_yaml([service, availability, latency])))
    for original, imported in zip(manifests, back.manifests, strict=True):
        assert_same_review(original, imported)


@pytest.mark.parametrize(
    ("objective", "written"),
    [(99.9, {"target": 0.999}), (50, {"target": 0.5}), (5e-324, {"targetPercent": 5e-324})],
)
def test_export_writes_target_only_when_it_reads_back_exactly(objective: float, written: dict[str, float]) -> None:
    (_, exported) = openslo.export_documents(
        [review("a", {"raw": {"errorRatioQuery": "$window"}}, objective=objective)]
    )
    assert exported["spec"]["objectives"] == [written]
    assert import_one(exported)["spec"]["objective"] == objective


def test_export_reads_a_kubectl_list_and_drops_server_fields() -> None:
    item = review("a", {"raw": {"errorRatioQuery": "x{w='$window'}"}})
    item["metadata"].update(
        namespace="shop",
        uid="1234",
        resourceVersion="7",
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}", "team.io/owner": "payments"},
    )
    item["status"] = {"verdict": "Healthy"}
    (_, exported) = openslo.export_documents([{"apiVersion": "v1", "kind": "List", "items": [item]}])
    assert exported["metadata"] == {
        "name": "a",
        "annotations": {"team.io/owner": "payments", openslo.NAMESPACE_ANNOTATION: "shop"},
    }
    assert exported["spec"]["indicator"]["spec"] == {
        "ratioMetric": {"rawType": "failure", "raw": prom("x{w='$window'}")}
    }


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (review("a", {"ratio": {"errorQuery": "sum(rate(e[5m]))", "totalQuery": "t"}}), "spec.sli.ratio.errorQuery"),
        (
            review("a", {"latency": {"metric": "m", "thresholdSeconds": 1, "selector": 'le="1"'}}),
            "spec.sli.latency.selector",
        ),
        (review("a", {"raw": {"errorRatioQuery": "x"}}), "SLOReview a: spec.sli.raw"),
        ({**review("a", {"raw": {"errorRatioQuery": "$window"}}), "kind": "SLO"}, "document 1: kind"),
        (
            {**review("a", {"raw": {"errorRatioQuery": "$window"}}), "apiVersion": "openslo/v1"},
            "document 1: apiVersion",
        ),
    ],
)
def test_export_refuses_what_would_not_import_back(manifest: dict[str, Any], message: str) -> None:
    with pytest.raises(openslo.OpenSLOError, match=message.replace(".", r"\.")):
        openslo.export_documents([manifest])


# --- round trips ----------------------------------------------------------------------------------


def assert_same_review(original: dict[str, Any], imported: dict[str, Any]) -> None:
    """The same SLOReview: the same validated spec (defaults included) and the same metadata."""
    assert SLOReviewSpec.model_validate(imported["spec"]) == SLOReviewSpec.model_validate(original["spec"])
    keep = ("name", "namespace", "labels", "annotations")
    meta = {k: v for k, v in original["metadata"].items() if k in keep and v}
    assert imported["metadata"] == meta


QUERIES = st.sampled_from([BAD, TOTAL, "up", "{__name__='x'}", "sum(rate(x[$window]))", "a:b:ratio_rate$window"])
SLIS = st.one_of(
    st.builds(lambda e, t: {"ratio": {"errorQuery": e, "totalQuery": t}}, QUERIES, QUERIES),
    st.builds(
        lambda m, s, sel: {"latency": {"metric": m, "thresholdSeconds": s, **({"selector": sel} if sel else {})}},
        st.sampled_from(["http_request_duration_seconds", "rpc:latency_seconds"]),
        st.floats(min_value=0, max_value=3600, exclude_min=True),
        st.sampled_from(["", 'job="api"', ' job="a", code!~"5.." ']),
    ),
    st.builds(
        lambda q: {"raw": {"errorRatioQuery": q}}, st.sampled_from(["sum(e[$window]) / sum(t[$window])", "$window"])
    ),
)
EXTRA = st.fixed_dictionaries(
    {},
    optional={
        "interval": st.sampled_from(["1m", "5m", "1h30m"]),
        "evaluationTime": st.sampled_from(["2026-01-01T00:00:00Z", "2026-03-04T05:06:07.5+02:00"]),
        "prometheus": st.sampled_from([{}, {"url": "http://prometheus:9090"}]),
        "llm": st.sampled_from([{"enabled": True}, {"enabled": False, "model": "m", "anonymize": False}]),
        "window": st.from_regex(r"\A[1-9][0-9]{0,2}[dw]\Z"),
        "rules": st.sampled_from([{"enabled": False}, {"enabled": True}]),
        "attribution": st.sampled_from([{"labels": []}, {"labels": ["route", "code"]}]),
        "calendar": st.fixed_dictionaries(
            {"unit": st.sampled_from(["Day", "Week", "Month", "Quarter", "Year"])},
            optional={
                "timeZone": st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Etc/GMT+2"]),
                "startTime": st.sampled_from(["2026-01-31T00:00:00", "2025-04-01 06:30:00"]),
            },
        ),
    },
)
METADATA = st.fixed_dictionaries(
    {"name": st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?\Z")},
    optional={
        "namespace": st.sampled_from(["shop", "team-a"]),
        "labels": st.dictionaries(
            st.sampled_from(["team", "app.kubernetes.io/part-of"]), st.sampled_from(["", "a", "b-1"])
        ),
        "annotations": st.dictionaries(
            st.sampled_from(
                [
                    "team.io/owner",
                    openslo.DISPLAY_NAME_ANNOTATION,
                    openslo.DESCRIPTION_ANNOTATION,
                    rules.RUNBOOK_ANNOTATION,
                ]
            ),
            st.text(min_size=1, max_size=20).filter(str.strip),
        ),
    },
)


@st.composite
def reviews(draw: st.DrawFn) -> dict[str, Any]:
    spec = {
        "service": draw(
            st.one_of(st.sampled_from(["checkout", "pay.ments"]), st.text(min_size=1, max_size=12).filter(str.strip))
        ),
        "objective": draw(st.floats(min_value=0, max_value=100, exclude_min=True, exclude_max=True)),
        "sli": draw(SLIS),
        **draw(EXTRA),
    }
    if "calendar" in spec:
        spec.pop("window", None)  # unused with a calendar, so not exported
        spec["calendar"].setdefault("timeZone", "UTC")  # always written out
    return {"apiVersion": "infragenius.io/v1alpha1", "kind": "SLOReview", "metadata": draw(METADATA), "spec": spec}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reviews())
def test_import_of_export_is_the_same_sloreview(manifest: dict[str, Any]) -> None:
    original = copy.deepcopy(manifest)
    text = openslo.dump_yaml(openslo.export_documents([manifest]))
    (imported,) = openslo.import_text(text).manifests
    assert_same_review(original, imported)
    # The objective exactly, whichever of target or targetPercent carried it.
    assert imported["spec"]["objective"] == original["spec"]["objective"]


OPENSLO_DOCS = [
    slo(),
    slo(indicator={"spec": {"ratioMetric": ratio("good")}}, objectives=[{"targetPercent": 99.5}]),
    slo(indicator={"spec": {"ratioMetric": {"rawType": "success", "raw": prom("s[$window]")}}}),
    slo(
        indicator={"spec": {"thresholdMetric": prom('x_seconds_bucket{job="a"}')}},
        objectives=[{"op": "lte", "value": 0.25, "target": 0.95}],
        window={"duration": "4w", "isRolling": True},
        description="Fast enough",
    ),
    slo(
        window={
            "duration": "1M",
            "isRolling": False,
            "calendar": {"startTime": "2026-01-01 00:00:00", "timeZone": "UTC"},
        }
    ),
    slo(window={"duration": "1w", "isRolling": False, "calendar": {"timeZone": "Europe/Berlin"}}),
]


@pytest.mark.parametrize(
    "doc", OPENSLO_DOCS, ids=["bad-total", "good-total", "raw-success", "threshold", "calendar-month", "calendar-week"]
)
def test_export_of_import_keeps_the_meaning(doc: dict[str, Any]) -> None:
    first = import_one(doc)
    exported = openslo.export_documents([first])[-1]
    spec, again = doc["spec"], exported["spec"]
    for key in ("service", "timeWindow", "budgetingMethod", "description"):
        assert again.get(key) == spec.get(key)
    assert exported["metadata"]["name"] == doc["metadata"]["name"]
    target = spec["objectives"][0].get("target", spec["objectives"][0].get("targetPercent", 0) / 100)
    written = again["objectives"][0]
    assert written.get("target", written.get("targetPercent", 0) / 100) == pytest.approx(target, rel=1e-15)
    for key in ("op", "value"):
        assert written.get(key) == spec["objectives"][0].get(key)
    # The same error ratio for every lookback: the PromQL the SLOReview and its rules run is identical.
    second = import_one(exported)
    for window in ("5m", "1h", "30d"):
        assert queries.error_ratio_query(SLOReviewSpec.model_validate(second["spec"]).sli, window) == (
            queries.error_ratio_query(SLOReviewSpec.model_validate(first["spec"]).sli, window)
        )
    if "bad" in spec["indicator"]["spec"].get("ratioMetric", {}):
        assert again["indicator"]["spec"] == spec["indicator"]["spec"]  # written as it was read


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_import_prints_yaml_or_json_and_warns_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["slo", "import", str(EXAMPLE), "-n", "shop"]) == 0
    captured = capsys.readouterr()
    docs = list(yaml.safe_load_all(captured.out))
    assert docs == openslo.import_text(EXAMPLE.read_text(), "shop").manifests
    assert captured.err.count("infragenius slo import: warning: ") == 2
    assert cli.main(["slo", "import", str(EXAMPLE), "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == [
        "checkout-availability",
        "checkout-latency",
    ]


def test_cli_refuses_with_exit_2_and_nothing_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calendar = slo()
    calendar["spec"]["timeWindow"] = [
        {"duration": "2M", "isRolling": False, "calendar": {"startTime": "2020-01-21 12:30:00", "timeZone": "UTC"}}
    ]
    path = tmp_path / "openslo.yaml"
    # The second SLO is fine: nothing is printed for it either, as a partial import would be applied as complete.
    path.write_text(yaml.safe_dump_all([slo("fine"), calendar]))
    cases = {
        "calendar": (
            "SLO checkout-availability: spec.timeWindow[0].duration: '2M' is not supported for a calendar window"
        ),
        "garbage": "is not valid YAML",
        "bomb": "YAML aliases",
        "missing": "cannot read",
        "binary": "is not UTF-8 text",
    }
    for case, message in cases.items():
        if case == "garbage":
            path.write_text("kind: SLO\n  metadata: [")
        elif case == "bomb":
            path.write_text("a: &a [x, x]\nb: &b [*a, *a]\n")
        elif case == "missing":
            path = tmp_path / "missing.yaml"
        elif case == "binary":
            path = tmp_path / "binary.yaml"
            path.write_bytes(b"\xff\xfe\x00")
        assert cli.main(["slo", "import", str(path)]) == 2, case
        captured = capsys.readouterr()
        assert captured.out == "" and message in captured.err, case


def test_cli_export_and_import_round_trip_through_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    source = ROOT / "examples" / "sloreview-ratio.yaml"
    assert cli.main(["slo", "export", "-f", str(source)]) == 0
    exported = capsys.readouterr().out
    assert [d["kind"] for d in yaml.safe_load_all(exported)] == ["Service", "SLO"]
    monkeypatch.setattr("sys.stdin", io.StringIO(exported))
    assert cli.main(["slo", "import", "-"]) == 0
    (imported,) = yaml.safe_load_all(capsys.readouterr().out)
    assert_same_review(yaml.safe_load(source.read_text()), imported)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(review("a", {"ratio": {"errorQuery": "rate(e[5m])", "totalQuery": "t"}})))
    assert cli.main(["slo", "export", "-f", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "spec.sli.ratio.errorQuery" in captured.err


@pytest.mark.parametrize("text", ["a\x85b", "\x85", "é ✓ 😀", "a\u2028b", "yes", "1.0", " lead", "q'uote\"", "x: y"])
def test_dump_yaml_reads_back_as_written(text: str) -> None:
    # U+0085 is a line break to a YAML reader: PyYAML's allow_unicode output lost it before _Dumper.
    doc = {"metadata": {"name": "a", "annotations": {"k": text}}, "spec": {"service": text}}
    assert yaml.safe_load(openslo.dump_yaml([doc])) == doc


def test_threshold_metric_in_a_separate_sli_document() -> None:
    sli = {
        "apiVersion": "openslo/v1",
        "kind": "SLI",
        "metadata": {"name": "lat"},
        "spec": {"thresholdMetric": prom('rpc_seconds_bucket{job="a"}')},
    }
    doc = slo(objectives=[{"op": "lte", "value": 0.5, "target": 0.9}])
    del doc["spec"]["indicator"]
    doc["spec"]["indicatorRef"] = "lat"
    sli_spec = import_one(sli, doc)["spec"]["sli"]
    assert sli_spec == {"latency": {"metric": "rpc_seconds", "thresholdSeconds": 0.5, "selector": 'job="a"'}}
    sli["spec"]["thresholdMetric"] = prom("rpc_seconds_sum")
    # The error points at the SLI document, where the query is written.
    assert "SLO checkout-availability: SLI lat: spec.thresholdMetric.metricSource.spec.query" in refusal(sli, doc)


# --- the OpenSLO v1 specification's own examples (github.com/OpenSLO/OpenSLO, README "Specification") --------
# Typed in from the specification text; where an example is a fragment (the ratioMetric, the calendar window,
# the objectives), it is set into an SLO with the general schema's fields around it.

SPEC_CALENDAR_WINDOW = """
timeWindow:
  - duration: 1M
    calendar:
      startTime: 2020-01-21 12:30:00
      timeZone: America/New_York
"""

SPEC_PROMETHEUS_RATIO = """
ratioMetric:
  counter: true
  good:
    metricSource:
      type: Prometheus
      metricSourceRef: prometheus-datasource
      spec:
        query: sum(localhost_server_requests{code=~"2xx|3xx",host="*",instance="127.0.0.1:9090"})
  total:
    metricSource:
      type: Prometheus
      metricSourceRef: prometheus-datasource
      spec:
        query: localhost_server_requests{code="total",host="*",instance="127.0.0.1:9090"}
"""

SPEC_ALERT_POLICY_INLINE = """
apiVersion: openslo/v1
kind: AlertPolicy
metadata:
  name: AlertPolicy
  displayName: Alert Policy
spec:
  description: Alert policy for cpu usage breaches, notifies on-call devops via email
  alertWhenBreaching: true
  alertWhenResolved: false
  conditions:
    - kind: AlertCondition
      metadata:
        name: cpu-usage-breach
        displayName: CPU Usage breaching
      spec:
        description: SLO burn rate for cpu-usage-breach exceeds 2
        severity: page
        condition:
          kind: burnrate
          op: lte
          threshold: 2
          lookbackWindow: 1h
          alertAfter: 5m
  notificationTargets:
    - targetRef: on-call-devops-mail-notification
"""

SPEC_DATADOG_SLO = """
apiVersion: openslo/v1
kind: SLO
metadata:
  name: foo-slo
  displayName: Foo SLO
spec:
  service: foo
  indicator:
    metadata:
      name: foo-error
      displayName: Foo Error
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            metricSourceRef: datadog-datasource
            type: Datadog
            spec:
              query: sum:trace.http.request.hits.by_http_status{http.status_code:200}.as_count()
        total:
          metricSource:
            metricSourceRef: datadog-datasource
            type: Datadog
            spec:
              query: sum:trace.http.request.hits.by_http_status{*}.as_count()
  objectives:
    - displayName: Foo Total Errors
      target: 0.98
"""


def specification_slo() -> dict[str, Any]:
    """The Prometheus ratioMetric and calendar window examples in an SLO, with the Objectives example's first."""
    return {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": "foo-slo", "displayName": "Foo SLO"},
        "spec": {
            "service": "foo",
            "indicator": {"metadata": {"name": "foo-error"}, "spec": yaml.safe_load(SPEC_PROMETHEUS_RATIO)},
            **yaml.safe_load(SPEC_CALENDAR_WINDOW),
            "budgetingMethod": "Occurrences",
            "objectives": [{"displayName": "Foo Total Errors", "target": 0.98}],
        },
    }


def test_specification_prometheus_ratio_with_a_calendar_window_imports() -> None:
    data_source = {
        "apiVersion": "openslo/v1",
        "kind": "DataSource",
        "metadata": {"name": "prometheus-datasource"},
        "spec": {"type": "Prometheus", "connectionDetails": {"url": "http://prometheus:9090"}},
    }
    result = openslo.import_documents([data_source, specification_slo()])
    (review,) = result.manifests
    spec = SLOReviewSpec.model_validate(review["spec"])
    assert spec.objective == 98.0
    assert spec.calendar is not None
    assert (spec.calendar.unit.value, spec.calendar.time_zone, spec.calendar.start_time) == (
        "Month",
        "America/New_York",
        "2020-01-21 12:30:00",
    )
    good = 'localhost_server_requests{code=~"2xx|3xx",host="*",instance="127.0.0.1:9090"}'
    total = 'localhost_server_requests{code="total",host="*",instance="127.0.0.1:9090"}'
    assert spec.sli.ratio is not None and spec.sli.ratio.total_query == total
    # errors = total - good, each increased per series over the lookback, then summed.
    assert spec.sli.ratio.error_query == f"sum(increase({total}[$window])) - sum(increase({good}[$window]))"
    assert any("sum(...) read as the counter selector" in w for w in result.warnings)
    # Export writes the calendar window back as the specification has it.
    exported = openslo.export_documents(result.manifests)[-1]
    assert exported["spec"]["timeWindow"] == [
        {
            "duration": "1M",
            "isRolling": False,
            "calendar": {"startTime": "2020-01-21 12:30:00", "timeZone": "America/New_York"},
        }
    ]


def test_specification_alert_policy_example_is_reported_not_imported() -> None:
    result = openslo.import_documents([yaml.safe_load(SPEC_ALERT_POLICY_INLINE), slo()])
    assert [m["metadata"]["name"] for m in result.manifests] == ["checkout-availability"]
    assert any("AlertPolicy AlertPolicy: not imported" in w for w in result.warnings), result.warnings


def test_specification_datadog_example_is_refused_naming_the_field() -> None:
    doc = yaml.safe_load(SPEC_DATADOG_SLO)
    # The example leaves out the window and budgeting method; with them, the source type is what is refused.
    assert "SLO foo-slo: spec.budgetingMethod: None is not supported" in refusal(doc)
    doc["spec"].update(yaml.safe_load(SPEC_CALENDAR_WINDOW), budgetingMethod="Occurrences")
    assert "SLO foo-slo: spec.indicator.spec.ratioMetric.good.metricSource.type: 'Datadog' is not supported" in refusal(
        doc
    )
