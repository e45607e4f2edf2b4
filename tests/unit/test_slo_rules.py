"""Prometheus rules generated from SLOReviews: the rule text, the CLI, and promtool (check rules, test rules)."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infragenius import cli
from infragenius.models.slo import BURN_WINDOWS
from infragenius.slo import math as slo_math
from infragenius.slo import queries, rules

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
PERIODS = ("7d", "28d", "30d")

SLIS: dict[str, dict[str, Any]] = {
    "ratio": {
        "ratio": {
            "errorQuery": 'http_requests_total{service="checkout",code=~"5.."}',
            "totalQuery": 'http_requests_total{service="checkout"}',
        }
    },
    "latency": {"latency": {"metric": "http_request_duration_seconds", "thresholdSeconds": 0.3, "selector": 'job="a"'}},
    "raw": {"raw": {"errorRatioQuery": "sum(rate(errors_total[$window])) / sum(rate(requests_total[$window]))"}},
}


def manifest(
    name: str, sli: dict[str, Any], *, window: str = "30d", objective: float = 99.9, namespace: str | None = "shop"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "infragenius.io/v1alpha1",
        "kind": "SLOReview",
        "metadata": metadata,
        "spec": {"service": "checkout", "objective": objective, "window": window, "sli": sli},
    }


def source(name: str, sli: dict[str, Any], **kwargs: Any) -> rules.SLOSource:
    return rules.parse_document(manifest(name, sli, **kwargs), 1)


def every_rule_set() -> list[rules.SLOSource]:
    return [source(f"{kind}-{period}", sli, window=period) for kind, sli in SLIS.items() for period in PERIODS]


# --- the rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("kind", sorted(SLIS))
def test_recording_rules_are_the_review_queries(kind: str, period: str) -> None:
    src = source("checkout", SLIS[kind], window=period)
    group = rules.rule_group(src)
    assert group["name"] == "infragenius-slo/shop/checkout"
    records = [r for r in group["rules"] if "record" in r]
    windows = [*BURN_WINDOWS, period]
    assert [r["record"] for r in records] == [
        *(f"slo:sli_error:ratio_rate{w}" for w in windows),
        rules.BUDGET_REMAINING_RECORD,
    ]
    for rule, window in zip(records, windows, strict=False):
        # The very PromQL the SLOReview sends for that lookback: one definition of the SLI.
        assert rule["expr"] == queries.error_ratio_query(src.spec.sli, window)
        assert rule["labels"] == {"namespace": "shop", "service": "checkout", "slo": "checkout"}
    assert records[-1]["expr"] == (f'1 - slo:sli_error:ratio_rate{period}{{namespace="shop",slo="checkout"}} / 0.001')
    for rule in group["rules"]:
        assert METRIC_NAME.match(rule.get("record") or rule["alert"])
        assert all(LABEL_NAME.match(label) for label in rule["labels"])


@pytest.mark.parametrize("period", PERIODS)
def test_alerts_use_the_policies_and_factors_of_slo_math(period: str) -> None:
    src = source("checkout", SLIS["ratio"], window=period, objective=99.95)
    alerts = [r for r in rules.rule_group(src)["rules"] if "alert" in r]
    evaluations = slo_math.evaluate_alerts({}, slo_math.error_budget(99.95), slo_math.window_seconds(period))
    assert len(alerts) == len(slo_math.POLICIES) == len(evaluations)
    for alert, evaluation in zip(alerts, evaluations, strict=True):
        policy = evaluation.policy
        factor = repr(evaluation.factor)
        sel = '{namespace="shop",slo="checkout"}'
        assert alert["alert"] == "SLOErrorBudgetBurn"
        assert alert["expr"] == (
            f"(slo:sli_error:ratio_rate{policy.long_window}{sel} / 0.0005 > {factor})\nand\n"
            f"(slo:sli_error:ratio_rate{policy.short_window}{sel} / 0.0005 > {factor})"
        )
        assert alert["labels"] == {
            "namespace": "shop",
            "service": "checkout",
            "slo": "checkout",
            "severity": policy.severity.value,
            "slo_tier": "fast" if policy.severity.value == "page" else "slow",
            "slo_policy": policy.name,
            "long_window": policy.long_window,
            "short_window": policy.short_window,
        }
        annotations = alert["annotations"]
        assert f"{evaluation.factor:g}x" in annotations["summary"] and period in annotations["summary"]
        assert "{{ $value" in annotations["description"] and "budget 0.0005" in annotations["description"]
        assert annotations["sloreview"] == "SLOReview shop/checkout"
        assert "runbook_url" not in annotations
    if period == "30d":
        assert [repr(e.factor) for e in evaluations] == ["14.4", "6.0", "3.0", "1.0"]
    if period == "28d":
        assert "> 13.44)" in alerts[0]["expr"]


def test_runbook_from_the_annotation_or_the_template() -> None:
    doc = manifest("checkout", SLIS["ratio"])
    doc["metadata"]["annotations"] = {rules.RUNBOOK_ANNOTATION: "https://runbooks.internal/checkout"}
    annotated = rules.parse_document(doc, 1)
    plain = source("payments", SLIS["ratio"])
    template = "https://wiki.internal/slo/{namespace}/{name}#{policy}"
    groups = rules.rule_file([plain, annotated], runbook_template=template)["groups"]
    urls = [[r["annotations"]["runbook_url"] for r in g["rules"] if "alert" in r] for g in groups]
    assert urls[0] == ["https://runbooks.internal/checkout"] * 4  # the SLOReview's own beats the template
    assert urls[1][0] == "https://wiki.internal/slo/shop/payments#page-1h-5m"


def test_one_day_window_is_recorded_once() -> None:
    records = [r["record"] for r in rules.rule_group(source("c", SLIS["ratio"], window="1d"))["rules"] if "record" in r]
    assert len(records) == len(set(records)) == len(BURN_WINDOWS) + 1


def test_output_is_deterministic() -> None:
    sources = every_rule_set()
    text = rules.render(rules.rule_file(sources))
    shuffled = list(sources)
    random.Random(7).shuffle(shuffled)
    assert rules.render(rules.rule_file(shuffled)) == text
    names = [g["name"] for g in yaml.safe_load(text)["groups"]]
    assert names == sorted(names) and len(set(names)) == len(names)


def test_duplicate_and_default_namespace() -> None:
    assert source("c", SLIS["ratio"], namespace=None).namespace == "default"
    # Dashes in both a namespace and a name must not make two groups share a name (Prometheus refuses that).
    pair = [source("b-c", SLIS["ratio"], namespace="a"), source("c", SLIS["ratio"], namespace="a-b")]
    assert len({g["name"] for g in rules.rule_file(pair)["groups"]}) == 2
    with pytest.raises(rules.RuleInputError, match="defined twice"):
        rules.rule_file([source("c", SLIS["ratio"]), source("c", SLIS["raw"])])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["spec"].update(objective=100), "spec.objective"),
        (lambda d: d["spec"].update(window="12h"), "spec.window"),
        (lambda d: d["spec"]["sli"].update(raw={"errorRatioQuery": "x"}), "spec.sli"),
        (
            lambda d: d["spec"].update(sli={"latency": {"metric": "bad name", "thresholdSeconds": 1}}),
            "spec.sli.latency.metric",
        ),
        (lambda d: d["spec"].pop("service"), "spec.service"),
        (lambda d: d.update(kind="Analysis"), "kind"),
        (lambda d: d.update(apiVersion="v1"), "apiVersion"),
        (lambda d: d["metadata"].update(name="Not_Valid"), "metadata.name"),
        (lambda d: d["metadata"].update(namespace="a.b"), "metadata.namespace"),
        (lambda d: d["metadata"].update(annotations={rules.RUNBOOK_ANNOTATION: "ftp://x"}), "metadata.annotations"),
    ],
)
def test_invalid_documents_name_the_field(change: Any, field: str) -> None:
    doc = manifest("checkout", dict(SLIS["ratio"]))
    change(doc)
    with pytest.raises(rules.RuleInputError) as err:
        rules.parse_document(doc, 3)
    assert str(err.value).startswith("document 3") and f" {field}" in str(err.value)


def test_cli_prints_the_rule_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump_all([manifest("a", SLIS["latency"]), None, manifest("b", SLIS["raw"])]))
    assert cli.main(["slo", "rules", "-f", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == rules.render(rules.rule_file([source("a", SLIS["latency"]), source("b", SLIS["raw"])]))
    assert [g["name"] for g in yaml.safe_load(out)["groups"]] == ["infragenius-slo/shop/a", "infragenius-slo/shop/b"]


def test_cli_refuses_bad_input_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = manifest("checkout", SLIS["ratio"])
    bad["spec"]["objective"] = 120
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert cli.main(["slo", "rules", "-f", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "spec.objective" in captured.err
    path.write_text("spec: [unclosed")
    assert cli.main(["slo", "rules", "-f", str(path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    path.write_text("")
    assert cli.main(["slo", "rules", "-f", str(path)]) == 2
    assert "no SLOReview documents" in capsys.readouterr().err
    assert cli.main(["slo", "rules", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cli_module_does_not_import_the_rules_at_start_up() -> None:
    # Lazy imports keep `infragenius --help` fast; rules (and pydantic models) load only for `slo rules`.
    code = (
        "import sys, infragenius.cli; print(sorted(m for m in sys.modules if m.startswith(('infragenius.', 'yaml'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "infragenius.slo" not in out and "yaml" not in out


# --- promtool -------------------------------------------------------------------------------------


def promtool() -> str:
    """Debian's promtool (the `prometheus` package of `make install`); missing is a failure on CI."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not installed (CI=true): install the prometheus package")
        pytest.skip("promtool is not installed (the prometheus package); set CI=true to make this a failure")
    return path


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def calendar_source(name: str, unit: str) -> rules.SLOSource:
    document = manifest(name, SLIS["ratio"])
    document["spec"]["calendar"] = {"unit": unit, "timeZone": "Europe/Berlin"}
    return rules.parse_document(document, 1)


@pytest.mark.parametrize(("unit", "nominal"), [("Day", "1d"), ("Week", "7d"), ("Month", "30d"), ("Year", "365d")])
def test_calendar_slo_rules_use_the_units_nominal_length(unit: str, nominal: str) -> None:
    (group,) = rules.rule_file([calendar_source("cal", unit)], None)["groups"]
    budget = next(r for r in group["rules"] if r.get("record") == rules.BUDGET_REMAINING_RECORD)
    assert budget["expr"].startswith(f"1 - {rules.record_name(nominal)}{{")
    page = next(r for r in group["rules"] if r.get("alert") and r["labels"]["long_window"] == "1h")
    factor = slo_math.burn_factor(0.02, slo_math.window_seconds(nominal), 3600)
    assert f"> {factor:g}" in page["expr"] or f"> {factor}" in page["expr"], page["expr"]


def test_promtool_check_rules_accepts_every_rule_set(tmp_path: Path) -> None:
    calendars = [calendar_source(f"cal-{unit.lower()}", unit) for unit in ("Day", "Week", "Month", "Quarter", "Year")]
    doc = rules.rule_file(
        [*every_rule_set(), source("one-day", SLIS["ratio"], window="1d"), *calendars], "https://x/{name}"
    )
    (tmp_path / "rules.yaml").write_text(rules.render(doc))
    result = run_promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(g["rules"]) for g in doc["groups"])
    assert f"SUCCESS: {count} rules found" in result.stdout


def counter(*segments: tuple[float, int]) -> str:
    """promtool series values for a counter: (increase per minute, minutes), one sample a minute from 0."""
    tokens, value = ["0"], 0.0
    for per_minute, minutes in segments:
        tokens.append(f"{value + per_minute:g}+{per_minute:g}x{minutes - 1}")
        value += per_minute * minutes
    return " ".join(tokens)


def firing(src: rules.SLOSource, *policies: str) -> list[dict[str, Any]]:
    alerts = [r for r in rules.rule_group(src)["rules"] if "alert" in r]
    return [{"exp_labels": a["labels"]} for a in alerts if a["labels"]["slo_policy"] in policies]


def promtool_test(tmp_path: Path, sources: list[rules.SLOSource], tests: list[dict[str, Any]]) -> None:
    doc = rules.rule_file(sources)
    # promtool compares annotations exactly and the description holds the burn rate ($value); the
    # annotations are checked by `promtool check rules` and the unit tests above, the firing here.
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(rules.render(doc))
    spec = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run_promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


RATIO_SLI = {"ratio": {"errorQuery": 'requests_total{code="500"}', "totalQuery": "requests_total"}}
DAY_MINUTES = 1440


def requests(good: str, bad: str) -> list[dict[str, str]]:
    return [
        {"series": 'requests_total{code="200"}', "values": good},
        {"series": 'requests_total{code="500"}', "values": bad},
    ]


def test_promtool_fast_burn_pages_within_minutes_and_does_not_ticket(tmp_path: Path) -> None:
    # 99.9% over 30d, 1000 requests a minute: three clean days (the 3d lookback full), then 10% errors (burn
    # 100).
    # The 1h ratio passes 14.4 x 0.001 after 0.0144 / 0.1 x 60 = 8.6 minutes; the 6h one passes 6 x 0.001
    # after 21.6 minutes. The 1d and 3d ratios stay under 3x and 1x: no ticket.
    src = source("fast", RATIO_SLI)
    clean = 3 * DAY_MINUTES
    series = requests(counter((1000, clean), (900, 60)), counter((0, clean), (100, 60)))
    start = clean  # the last clean sample

    def at(minutes: int, *policies: str) -> dict[str, Any]:
        return {"eval_time": f"{start + minutes}m", "alertname": rules.ALERT_NAME, "exp_alerts": firing(src, *policies)}

    checks = [at(0), at(8), at(9, "page-1h-5m"), at(21, "page-1h-5m"), at(23, "page-1h-5m", "page-6h-30m")]
    checks.append(at(30, "page-1h-5m", "page-6h-30m"))
    promtool_test(tmp_path, [src], [{"interval": "1m", "input_series": series, "alert_rule_test": checks}])


def test_promtool_slow_burn_tickets_and_does_not_page(tmp_path: Path) -> None:
    # 0.4% errors (burn 4) from the start: above 3 (1d/2h) and 1 (3d/6h), below 6 and 14.4.
    src = source("slow", RATIO_SLI)
    series = requests(counter((996, 360)), counter((4, 360)))
    tickets = ("ticket-1d-2h", "ticket-3d-6h")
    checks = [
        {"eval_time": f"{m}m", "alertname": rules.ALERT_NAME, "exp_alerts": firing(src, *tickets)}
        for m in (30, 180, 359)
    ]
    promtool_test(tmp_path, [src], [{"interval": "1m", "input_series": series, "alert_rule_test": checks}])


def test_promtool_healthy_service_fires_nothing_even_with_a_blip(tmp_path: Path) -> None:
    # 0.05% errors (burn 0.5) for a day, a 5-minute blip of 10% errors, then 0.05% again: the short
    # lookbacks burn, the long ones do not, so no alert holds (what the multi-window pairs are for).
    src = source("healthy", RATIO_SLI)
    good = counter((999.5, DAY_MINUTES), (900, 5), (999.5, 120))
    bad = counter((0.5, DAY_MINUTES), (100, 5), (0.5, 120))
    checks = [
        {"eval_time": f"{m}m", "alertname": rules.ALERT_NAME, "exp_alerts": []}
        for m in (60, 720, DAY_MINUTES - 1, DAY_MINUTES + 2, DAY_MINUTES + 5, DAY_MINUTES + 30, DAY_MINUTES + 120)
    ]
    promtool_test(tmp_path, [src], [{"interval": "1m", "input_series": requests(good, bad), "alert_rule_test": checks}])


def test_promtool_exactly_at_the_factor_does_not_fire(tmp_path: Path) -> None:
    # Strictly greater, like AlertEvaluation.firing. Objective 96.875 makes the budget 1/32, so the ratio
    # 0.45 is a burn of exactly 14.4 in float64 too (0.0144 / 0.001 is 14.399999999999999, no test).
    boundary = source("boundary", {"raw": {"errorRatioQuery": "max_over_time(ratio_gauge[$window])"}}, objective=96.875)
    above = source("above", {"raw": {"errorRatioQuery": "max_over_time(above_gauge[$window])"}}, objective=96.875)
    assert 0.45 / slo_math.error_budget(96.875) == 14.4
    review = slo_math.evaluate(96.875, "30d", 0.45, dict.fromkeys(BURN_WINDOWS, 0.45))
    assert [a.firing for a in review.alerts] == [False, True, True, True]  # 14.4 > 6, 3, 1
    series = [{"series": "ratio_gauge", "values": "0.45x120"}, {"series": "above_gauge", "values": "0.4500001x120"}]
    others = ("page-6h-30m", "ticket-1d-2h", "ticket-3d-6h")
    checks = [
        {
            "eval_time": "90m",
            "alertname": rules.ALERT_NAME,
            "exp_alerts": firing(above, "page-1h-5m", *others) + firing(boundary, *others),
        },
    ]
    promtool_test(tmp_path, [boundary, above], [{"interval": "1m", "input_series": series, "alert_rule_test": checks}])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yes",
        "No",
        "1",
        "1h",
        "a: b",
        "#x",
        " lead",
        "trail ",
        'q"uote',
        "back\\slash",
        "é ✓ 😀",
        "a\u2028b",
        "t\tab",
    ]
    + ["two\nlines", "  indented\n  lines", "a\n\nb", "end\n", "- item", "{x}", "null", "~", "0x1F", ".inf"],
)
def test_render_reads_back_as_written(text: str) -> None:
    doc = {"groups": [{"name": text or "g", "rules": [{"record": "r", "expr": text, "labels": {"service": text}}]}]}
    assert yaml.safe_load(rules.render(doc)) == doc


def test_render_of_every_rule_set_reads_back() -> None:
    weird = manifest("weird", {"raw": {"errorRatioQuery": "sum(rate(e[$window]))\n  /\nsum(rate(t[$window]))"}})
    weird["spec"]["service"] = 'check"out: yes ✓'
    doc = rules.rule_file([*every_rule_set(), rules.parse_document(weird, 1)])
    assert yaml.safe_load(rules.render(doc)) == doc


def test_cli_namespace_for_manifests_without_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump_all([manifest("a", SLIS["ratio"], namespace=None), manifest("b", SLIS["raw"])]))
    assert cli.main(["slo", "rules", "-f", str(path), "-n", "team"]) == 0
    groups = [g["name"] for g in yaml.safe_load(capsys.readouterr().out)["groups"]]
    assert groups == ["infragenius-slo/shop/b", "infragenius-slo/team/a"]  # an explicit namespace wins
    assert cli.main(["slo", "rules", "-f", str(path), "-n", "Bad_NS"]) == 2
    assert "namespace: 'Bad_NS'" in capsys.readouterr().err


def test_bad_runbook_template_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for template in ("https://x/{team}", "https://x/{", "https://x/{0}"):
        with pytest.raises(rules.RuleInputError, match="runbook URL template"):
            rules.rule_file([source("c", SLIS["ratio"])], runbook_template=template)
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump(manifest("c", SLIS["ratio"])))
    assert cli.main(["slo", "rules", "-f", str(path), "--runbook-url-template", "https://x/{team}"]) == 2
    assert "placeholders: namespace, name" in capsys.readouterr().err
    with pytest.raises(rules.RuleInputError, match="metadata.namespace"):
        source("c", SLIS["ratio"], namespace="shop\n")
