"""The pure parts of an analysis: spec validation, ranking, filtering, summaries, re-run decisions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from infragenius.analysis import engine
from infragenius.analysis.reconcile import rerun_due
from infragenius.detectors.base import finding
from infragenius.detectors.registry import DETECTORS, kinds_needed, select
from infragenius.gather.kube import ENDPOINTS
from infragenius.models.analysis import AnalysisSpec, AnalysisStatus
from infragenius.models.api import ConditionType, Reason
from infragenius.models.common import ConditionStatus, parse_duration
from infragenius.models.findings import Finding, ResourceRef, Severity
from infragenius.rbac import render_rules
from infragenius.runs.conditions import set_condition
from infragenius.runs.lifecycle import needs_run_on_resume, rerun_requested
from infragenius.snapshot import GatherResult, GatherStatus, Snapshot

ROOT = Path(__file__).resolve().parents[2]


def make(severity: Severity, name: str, problem: str = "P", affected: int = 1, kind: str = "Deployment") -> Finding:
    return finding(
        detector="test",
        severity=severity,
        resource=ResourceRef(kind=kind, name=name, namespace="shop"),
        problem=problem,
        title=f"{name} {problem}",
        evidence=[("status.x", 1)],
        remediation="fix it",
        affected=affected,
    )


class Fixed:
    def __init__(self, name: str, found: Iterable[Finding], kinds: frozenset[str] = frozenset()) -> None:
        self.name, self._found, self.kinds = name, list(found), kinds

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        return self._found


class Broken:
    name = "broken"
    kinds = frozenset({"Pod"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        raise KeyError("status")


EMPTY = Snapshot.build(namespace="shop", objects={})


def test_spec_defaults_and_camel_case() -> None:
    spec = AnalysisSpec.model_validate({})
    assert spec.min_severity is Severity.info and spec.max_findings == 50 and spec.llm.enabled is False
    spec = AnalysisSpec.model_validate({"targetNamespace": "shop", "minSeverity": "warning", "interval": "5m"})
    assert (spec.target_namespace, spec.min_severity, spec.interval) == ("shop", Severity.warning, "5m")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"interval": "30s"}, "interval must be at least 60s"),
        ({"interval": "5 minutes"}, "String should match pattern"),
        ({"targetNamespace": "Shop_1"}, "String should match pattern"),
        ({"detectors": {"include": ["pod"], "exclude": ["pod"]}}, "detectors both included and excluded: pod"),
        ({"detectors": {"include": ["nope"]}}, "Input should be 'pod'"),
        ({"maxFindings": 0}, "greater than or equal to 1"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_specs_are_rejected_with_a_reason(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AnalysisSpec.model_validate(spec)


def test_parse_duration() -> None:
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("2d") == dt.timedelta(days=2)
    for bad in ("", "5", "1h 30m", "m5"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_detectors_are_ranked_deduplicated_and_isolated() -> None:
    warn_a, crit_b = make(Severity.warning, "a", affected=3), make(Severity.critical, "b")
    info_c, warn_d = make(Severity.info, "c"), make(Severity.warning, "d", affected=9)
    result = engine.run_detectors(
        EMPTY, [Fixed("one", [warn_a, info_c]), Broken(), Fixed("two", [crit_b, warn_d, warn_a])]
    )
    assert [f.resource.name for f in result.findings] == ["b", "d", "a", "c"]
    assert [f.source for f in result.failures] == ["detector:broken"]
    assert result.failures[0].error == "KeyError: 'status'"


def test_filter_by_severity_and_kind() -> None:
    items = [make(Severity.critical, "a"), make(Severity.warning, "b", kind="Service"), make(Severity.info, "c")]
    assert [f.resource.name for f in engine.filter_findings(items, Severity.warning)] == ["a", "b"]
    assert [f.resource.name for f in engine.filter_findings(items, Severity.info, ["Service"])] == ["b"]


def test_summary_lines() -> None:
    missing = [GatherResult("prometheus", GatherStatus.error, error="refused")]
    assert engine.summarise([], "shop", []) == "No problems in shop"
    assert engine.summarise([make(Severity.info, "x")], "shop", missing) == (
        "No problems in shop (1 info); could not read prometheus"
    )
    line = engine.summarise(
        [make(Severity.critical, "a"), make(Severity.warning, "b"), make(Severity.warning, "c")], "shop", []
    )
    assert line == "1 critical, 2 warnings: a P"


def test_status_model_round_trips_findings() -> None:
    status = AnalysisStatus(
        findings=[make(Severity.critical, "a")], counts=engine.count([make(Severity.critical, "a")])
    )
    dumped = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert dumped["counts"] == {"critical": 1, "warning": 0, "info": 0}
    assert AnalysisStatus.model_validate(dumped).findings[0].id == make(Severity.critical, "a").id


def test_registry_selection_and_kinds() -> None:
    assert [d.name for d in select(["pod", "service"])] == ["pod", "service"]
    assert "pod" not in [d.name for d in select(exclude=["pod"])]
    assert len(select()) == len(DETECTORS) == 20
    assert kinds_needed(select(["service"])) >= {"Pod", "Service", "EndpointSlice"}
    assert "Secret" not in ENDPOINTS  # RBAC cannot grant list on secrets without their data


def test_rerun_decisions() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    done = {"phase": "Completed", "completedAt": "2026-01-01T11:54:00Z", "observedGeneration": 1}
    body = {"metadata": {"generation": 1}, "spec": {"interval": "5m"}, "status": done}
    assert rerun_due(body, now) is True
    assert rerun_due({**body, "spec": {"interval": "10m"}}, now) is False
    assert rerun_due({**body, "spec": {}}, now) is False
    assert rerun_due({**body, "status": {**done, "phase": "Running"}}, now) is False

    assert needs_run_on_resume({"metadata": {"generation": 1}, "status": {"phase": "Running"}}) is True
    assert needs_run_on_resume({"metadata": {"generation": 1}, "status": {}}) is True
    assert needs_run_on_resume(body) is False
    assert needs_run_on_resume({**body, "metadata": {"generation": 2}}) is True
    assert (
        needs_run_on_resume({"metadata": {"generation": 2}, "status": {"phase": "Failed", "observedGeneration": 1}})
        is False
    )

    annotated = {"metadata": {"annotations": {"infragenius.io/rerun": "7"}}, "status": {"rerunToken": "6"}}
    assert rerun_requested(annotated) is True
    assert rerun_requested({**annotated, "status": {"rerunToken": "7"}}) is False
    assert rerun_requested({"metadata": {}, "status": {}}) is False


def test_conditions_keep_transition_time_until_status_changes() -> None:
    first = set_condition([], ConditionType.ready, ConditionStatus.false, Reason.running, "go", 1)
    stamp = first[0]["lastTransitionTime"]
    again = set_condition(
        [{**first[0], "lastTransitionTime": "2020-01-01T00:00:00Z"}],
        ConditionType.ready,
        ConditionStatus.false,
        Reason.running,
        "still",
        2,
    )
    assert again[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z" and again[0]["observedGeneration"] == 2
    flipped = set_condition(again, ConditionType.ready, ConditionStatus.true, Reason.analysis_completed, "done", 2)
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z" and flipped[0]["status"] == "True"
    assert stamp.endswith("Z") and len(flipped) == 1


def test_chart_rbac_rules_match_the_gatherers() -> None:
    path = ROOT / "charts" / "infragenius-operator" / "files" / "clusterrole-rules.yaml"
    assert path.read_text() == render_rules(), "run `infragenius rbac`"
    rules = yaml.safe_load(path.read_text())
    for rule in rules:
        assert "secrets" not in rule["resources"]
        ours = rule["apiGroups"] == ["infragenius.io"] or rule["resources"] == ["events"]
        if rule["apiGroups"] == ["kopf.dev"]:  # HA peering: only Kopf's own liveness records are written
            assert rule["resources"] == ["clusterkopfpeerings", "kopfpeerings"] and "create" not in rule["verbs"], rule
            continue
        if rule["resources"] in (["configmaps"], ["prometheusrules"]):  # SLO rules: written, never listed or deleted
            assert rule["verbs"] == ["get", "create", "patch"], rule
            continue
        if not ours:
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    readable = {r for rule in rules for r in rule["resources"]}
    assert {e.plural for e in ENDPOINTS.values()} <= readable
