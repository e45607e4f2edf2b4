"""Findings followed across runs: New, Open, Resolved, Reopened, Flapping; silences; bounded memory."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

from infragenius.analysis import lifecycle
from infragenius.analysis.reconcile import lifecycle_summary
from infragenius.detectors.base import finding
from infragenius.models.analysis import MAX_TRACKED, AnalysisSpec, LifecycleSpec, Silence
from infragenius.models.findings import Finding, FindingState, ResourceRef, Severity

T0 = dt.datetime(2026, 12, 2, 10, tzinfo=dt.UTC)
SPEC = LifecycleSpec(quiet_period="1h", flap_threshold=3)


def crash(name: str = "checkout-1", severity: Severity = Severity.critical, detector: str = "pod") -> Finding:
    return finding(
        detector=detector,
        severity=severity,
        resource=ResourceRef(kind="Pod", name=name, namespace="shop"),
        problem="crashloop",
        title=f"{name} is crash looping",
        evidence=[("restartCount", 7)],
        remediation="Read the logs.",
    )


class Runs:
    """One Analysis run after another, each starting from the memory the previous one left."""

    def __init__(
        self, spec: LifecycleSpec = SPEC, silences: list[Silence] | None = None, max_findings: int = 2
    ) -> None:
        self.memory: dict[str, Any] = {}
        self.spec, self.silences, self.max_findings = spec, silences or [], max_findings

    def run(self, at: dt.datetime, *findings: Finding) -> lifecycle.LifecycleResult:
        result = lifecycle.advance(self.memory, list(findings), at, self.spec, self.silences)
        # Through status, as the operator writes it: kept findings carry their lifecycle, tracked the rest.
        kept = result.findings[: self.max_findings]
        memory = lifecycle.status_memory(result.status.tracked, kept)
        status = {
            "findings": [f.model_dump(by_alias=True, mode="json", exclude_none=True) for f in kept],
            "lifecycle": result.status.model_copy(update={"tracked": memory}).model_dump(by_alias=True, mode="json"),
        }
        self.memory = lifecycle.previous_tracked(json.loads(json.dumps(status)))
        return result


def states(result: lifecycle.LifecycleResult) -> list[str]:
    return [f.lifecycle.state.value for f in result.findings if f.lifecycle is not None]


def changes(result: lifecycle.LifecycleResult) -> list[tuple[str | None, str]]:
    return [(t.previous.value if t.previous else None, t.state.value) for t in result.transitions]


def test_new_open_resolved_reopened_and_new_again_after_the_quiet_period() -> None:
    runs, minute = Runs(), dt.timedelta(minutes=1)
    first = runs.run(T0, crash())
    assert states(first) == ["New"] and changes(first) == [(None, "New")]
    assert first.status.counts.new == 1
    for n in range(1, 4):  # persists: open, no change to tell anyone about
        again = runs.run(T0 + n * minute, crash())
        assert states(again) == ["Open"] and changes(again) == []
    lc = again.findings[0].lifecycle
    assert lc is not None and (lc.occurrences, lc.first_seen) == (4, "2026-12-02T10:00:00Z")
    fixed = runs.run(T0 + 5 * minute)
    assert changes(fixed) == [("Open", "Resolved")] and fixed.status.counts.resolved == 1
    assert fixed.findings == [] and fixed.status.tracked[0].resolved_at == "2026-12-02T10:05:00Z"
    back = runs.run(T0 + 30 * minute, crash())
    assert states(back) == ["Reopened"] and changes(back) == [("Resolved", "Reopened")]
    assert back.findings[0].lifecycle is not None and back.findings[0].lifecycle.first_seen == "2026-12-02T10:00:00Z"
    runs.run(T0 + 31 * minute)  # resolved again
    later = runs.run(T0 + 31 * minute + dt.timedelta(hours=2), crash())  # past the quiet period
    assert states(later) == ["New"] and changes(later) == [("Resolved", "New")]
    assert later.findings[0].lifecycle is not None and later.findings[0].lifecycle.occurrences == 1


def test_resolved_findings_are_forgotten_after_the_quiet_period() -> None:
    runs = Runs()
    runs.run(T0, crash())
    runs.run(T0 + dt.timedelta(minutes=1))
    assert len(runs.memory) == 1
    gone = runs.run(T0 + dt.timedelta(hours=2))
    assert gone.status.tracked == [] and gone.transitions == []


def test_a_flapping_finding_is_reported_as_flapping_not_reopened_each_time() -> None:
    runs, minute = Runs(), dt.timedelta(minutes=1)
    seen: list[tuple[str | None, str]] = []
    for n in range(10):  # present, absent, present, ... every minute
        result = runs.run(T0 + n * minute, *([crash()] if n % 2 == 0 else []))
        seen += changes(result)
    assert seen[:5] == [
        (None, "New"),
        ("New", "Resolved"),
        ("Resolved", "Reopened"),
        ("Reopened", "Resolved"),
        ("Resolved", "Reopened"),
    ]
    assert ("Resolved", "Flapping") in seen
    notified = [
        (t.previous, t.state)
        for n in range(10, 14)
        for t in runs.run(T0 + n * minute, *([crash()] if n % 2 == 0 else [])).transitions
        if t.notifiable
    ]
    # Once flapping: its reopens stay Flapping (no change) and its resolves are not news.
    assert notified == [], notified


def test_flapping_ends_once_it_stays_for_a_quiet_period() -> None:
    runs, minute = Runs(), dt.timedelta(minutes=1)
    for n in range(9):  # ends present
        runs.run(T0 + n * minute, *([crash()] if n % 2 == 0 else []))
    assert runs.memory[crash().id].state is FindingState.flapping
    steady = runs.run(T0 + dt.timedelta(hours=3), crash())
    assert states(steady) == ["Open"] and changes(steady) == []


def test_silenced_findings_keep_their_state_but_count_only_as_silenced() -> None:
    silences = [
        Silence(
            detector="pod", resource="Pod/checkout-*", expires="2026-12-02T11:00:00Z", reason="known, fix on Monday"
        ),
        Silence(finding_id=crash("cart-0").id, expires="2026-12-01T00:00:00Z", reason="expired"),
    ]
    runs = Runs(silences=silences)
    result = runs.run(
        T0, crash("checkout-1"), crash("checkout-2"), crash("cart-0"), crash("web-0", detector="deployment")
    )
    by_name = {f.resource.name: f.lifecycle for f in result.findings}
    assert by_name["checkout-1"] is not None and by_name["checkout-1"].silenced
    assert by_name["cart-0"] is not None and not by_name["cart-0"].silenced  # its silence expired
    assert by_name["web-0"] is not None and not by_name["web-0"].silenced  # another detector
    assert (result.status.counts.new, result.status.counts.silenced) == (2, 2)
    assert [t.notifiable for t in result.transitions] == [False, False, True, True]
    assert lifecycle.open_by_severity(result) == {"critical": 2}
    # After it expires the same finding counts again (as Open: it never went away).
    after = runs.run(T0 + dt.timedelta(hours=2), crash("checkout-1"))
    assert after.status.counts.open == 1 and after.status.counts.silenced == 0


def test_memory_is_bounded_open_and_severe_first() -> None:
    many = [crash(f"p-{i}", severity=Severity.info) for i in range(MAX_TRACKED + 50)]
    result = Runs().run(T0, crash("important"), *many)
    assert len(result.status.tracked) == MAX_TRACKED and result.status.dropped == 51
    assert result.status.tracked[0].resource == "Pod/shop/important"


def test_garbage_in_the_previous_status_is_forgotten_not_fatal() -> None:
    good = Runs()
    good.run(T0, crash())
    status = {
        "lifecycle": {
            "tracked": [
                {"id": "not-an-id", "state": "Open"},
                {**next(iter(good.memory.values())).model_dump(by_alias=True, mode="json")},
                "garbage",
            ]
        }
    }
    memory = lifecycle.previous_tracked(status)
    assert list(memory) == [crash().id]
    assert lifecycle.previous_tracked({"lifecycle": "nonsense"}) == {}
    assert lifecycle.previous_tracked({}) == {}


def test_time_to_resolve_goes_to_metrics() -> None:
    runs = Runs()
    runs.run(T0, crash())
    fixed = runs.run(T0 + dt.timedelta(minutes=42))
    assert lifecycle.metric_changes(fixed) == [("Resolved", "critical", 42 * 60.0)]


def test_summary_says_what_changed() -> None:
    runs = Runs()
    result = runs.run(T0, crash("a"), crash("b"))
    assert lifecycle_summary(result.status.counts) == " (2 new)"
    result = runs.run(T0 + dt.timedelta(minutes=1), crash("a"))
    assert lifecycle_summary(result.status.counts) == " (1 resolved)"
    assert lifecycle_summary(runs.run(T0 + dt.timedelta(minutes=2), crash("a")).status.counts) == ""


@pytest.mark.parametrize(
    ("silence", "message"),
    [
        ({"expires": "2027-01-01T00:00:00Z", "reason": "x"}, "set findingId or detector"),
        ({"detector": "pod", "expires": "2027-01-01T00:00:00Z", "reason": " "}, "reason"),
        ({"detector": "pod", "expires": "tomorrow", "reason": "x"}, "expires"),
        ({"findingId": "XYZ", "expires": "2027-01-01T00:00:00Z", "reason": "x"}, "findingId"),
        ({"detector": "pod", "resource": "Pod/../etc", "expires": "2027-01-01T00:00:00Z", "reason": "x"}, "resource"),
        ({"detector": "nope", "expires": "2027-01-01T00:00:00Z", "reason": "x"}, "detector"),
    ],
)
def test_invalid_silences_are_refused(silence: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AnalysisSpec.model_validate({"silences": [silence]})


def test_notifications_keep_names_but_never_secrets() -> None:
    from infragenius.analysis.reconcile import transition_rows

    leaky = finding(
        detector="pod",
        severity=Severity.critical,
        resource=ResourceRef(kind="Pod", name="checkout-1", namespace="shop"),
        problem="crashloop",
        title="checkout-1 exits: password=hunter2xyz Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789",
        evidence=[],
        remediation="x",
    )
    (row,) = transition_rows(Runs().run(T0, leaky))
    assert row["title"].startswith("checkout-1 exits:")  # names are kept: the message goes to the team
    assert "hunter2xyz" not in row["title"] and "abcdefghijklmnopqrstuvwxyz0123456789" not in row["title"]


def test_status_stays_within_its_budget_however_much_is_followed() -> None:
    from infragenius.analysis.reconcile import STATUS_BUDGET_BYTES, _within_budget

    tracked = [
        {"id": f"{i:016x}", "state": "Resolved", "title": "x" * 128, "resource": "Pod/shop/" + "p" * 60}
        for i in range(MAX_TRACKED)
    ]
    status: dict[str, Any] = {
        "findings": [{"title": "y" * 256, "evidence": ["z" * 300]} for _ in range(300)],
        "lifecycle": {"tracked": tracked, "dropped": 3},
    }
    _within_budget(status)
    assert len(json.dumps(status, separators=(",", ":"))) <= STATUS_BUDGET_BYTES
    kept = len(status["lifecycle"]["tracked"])
    assert 0 < kept < MAX_TRACKED and status["lifecycle"]["dropped"] == 3 + MAX_TRACKED - kept
