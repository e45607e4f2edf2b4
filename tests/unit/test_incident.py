"""IncidentReport's pure parts over hand-built snapshots: timeline, causes, impact and postmortem."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

from infragenius.incident import causes, postmortem, timeline
from infragenius.incident.reconcile import bounded_timeline, report, window_for
from infragenius.models.incident import IncidentReportSpec
from infragenius.snapshot import Snapshot
from tests.unit import factories as f
from tests.unit.factories import NOW, NS


def ts(minutes_ago: float) -> str:
    """These tests count in minutes; the factories' clock counts in seconds."""
    return f.ts(minutes_ago * 60)


def template(image: str, env: str = "1", memory: str = "256Mi") -> dict:
    app = f.container(
        "app", image, env=[{"name": "MODE", "value": env}, {"name": "DB_PASSWORD", "value": env}],
        resources={"limits": {"memory": memory}},
    )  # fmt: skip
    return f.template([app], {"app": "checkout"})


def replicaset(name: str, revision: int, created_minutes_ago: float, tmpl: dict) -> dict:
    return f.replicaset(name, "checkout", 2, revision=revision, age=created_minutes_ago * 60, pod_template=tmpl)


def pod(
    name: str,
    rs: str,
    node: str,
    *,
    finished_minutes_ago: float | None = None,
    reason: str = "Error",
    restarts: int = 3,
) -> dict:
    if finished_minutes_ago is None:
        status = f.cstatus("app", image="registry.example/app:2.0")
    else:
        last = f.terminated(reason, 1, ago=finished_minutes_ago * 60)
        status = f.cstatus("app", image="registry.example/app:2.0", waiting="CrashLoopBackOff", last=last,
                           restarts=restarts)  # fmt: skip
    return f.pod(name, ("ReplicaSet", rs), node=node, statuses=[status])


def node(name: str, ready: str = "True", changed_minutes_ago: float = 600) -> dict:
    reason = "KubeletReady" if ready == "True" else "KubeletNotReady"
    return f.node(name, ready=ready, reason=reason, ready_changed_ago=changed_minutes_ago * 60)


def event(kind: str, name: str, reason: str, message: str, first: float, last: float | None = None) -> dict:
    """A warning event first and last seen the given minutes ago."""
    return f.event(kind, name, reason, message, 4, ago=(first if last is None else last) * 60, first_ago=first * 60)


def rollout_snapshot() -> Snapshot:
    return f.snap(
        f.deployment("checkout", 2),
        replicaset("checkout-old", 1, 300, template("registry.example/app:1.0", "1", "256Mi")),
        replicaset("checkout-new", 2, 10, template("registry.example/app:2.0", "2", "512Mi")),
        pod("checkout-old-a", "checkout-old", "node-1"),
        pod("checkout-new-a", "checkout-new", "node-2", finished_minutes_ago=8),
        node("node-1"),
        node("node-2"),
        events=[event("Pod", "checkout-new-a", "BackOff", "Back-off restarting failed container", 9, 1)],
    )


def test_rollout_entry_with_diff_precedes_the_failures() -> None:
    built = timeline.build(rollout_snapshot(), NOW - dt.timedelta(minutes=30), NOW)
    kinds = [e.kind for e in built.entries]
    assert kinds == ["Rollout", "Event", "Restart"]  # the first revision (300m ago) is outside the window
    rollout = built.entries[0]
    assert rollout.revision == 2 and rollout.previous_revision == 1
    assert "image registry.example/app:1.0 -> registry.example/app:2.0 (container app)" in rollout.changes
    assert "env MODE: 1 -> 2 (container app)" in rollout.changes
    assert "env DB_PASSWORD: [REDACTED] -> [REDACTED] (container app)" in rollout.changes
    assert "resources limits.memory: 256Mi -> 512Mi (container app)" in rollout.changes
    assert built.first_symptom is not None and built.first_symptom.kind == "Event"
    assert [e.time for e in built.entries] == sorted(e.time for e in built.entries)
    # Workloads roll up to the Deployment through the ReplicaSet.
    assert built.entries[2].workload is not None and built.entries[2].workload.name == "checkout"


def test_rollout_in_the_failing_workload_ranks_first_with_evidence() -> None:
    built = timeline.build(rollout_snapshot(), NOW - dt.timedelta(minutes=30), NOW)
    ranked = causes.rank(built)
    top = ranked[0]
    assert top.rank == 1 and top.resource.kind == "Deployment" and top.resource.name == "checkout"
    assert ("change", "image registry.example/app:1.0 -> registry.example/app:2.0 (container app)") in top.evidence
    assert "before the first symptom" in top.why and top.why.startswith("ranked 1 of")
    assert top.score == pytest.approx(0.5 + 0.45 * causes.closeness(60), abs=1e-6)


def test_closer_change_scores_higher_and_later_change_is_a_reaction() -> None:
    first = causes.closeness(30)
    later = causes.closeness(3600)
    assert first > later
    snap = rollout_snapshot()
    # Symptom long before the rollout: the rollout is a reaction.
    early = Snapshot.build(
        NS,
        dict(snap.objects),
        events=[event("Pod", "checkout-new-a", "BackOff", "Back-off", 25)],
        taken_at=NOW,
    )
    built = timeline.build(early, NOW - dt.timedelta(minutes=30), NOW)
    rollout = next(c for c in causes.rank(built) if "Rollout" in c.title)
    assert rollout.score == pytest.approx(0.15) and "reaction" in rollout.why


def test_node_not_ready_ranks_first() -> None:
    snap = f.snap(
        f.deployment("checkout", 2),
        replicaset("checkout-old", 1, 300, template("registry.example/app:1.0")),
        pod("checkout-old-a", "checkout-old", "node-1"),
        pod("checkout-old-b", "checkout-old", "node-2"),
        node("node-1", "False", 5),
        node("node-2"),
    )
    built = timeline.build(snap, NOW - dt.timedelta(minutes=30), NOW)
    assert [e.kind for e in built.entries] == ["NodeCondition"]
    assert built.entries[0].summary == "node node-1 became NotReady (False)"
    ranked = causes.rank(built)
    assert ranked[0].title == "Node node-1 NotReady" and ranked[0].resource.name == "node-1"
    figures = postmortem.impact(snap, built)
    assert figures.pods_affected == 1 and [w.name for w in figures.workloads] == ["checkout"]


def test_statefulset_controller_revisions_and_alert() -> None:
    def revision(n: int, image: str, created: str) -> dict:
        return {
            "metadata": {
                "name": f"db-{n}",
                "namespace": NS,
                "creationTimestamp": created,
                "ownerReferences": [{"kind": "StatefulSet", "name": "db", "uid": "s1", "controller": True}],
            },
            "revision": n,
            "data": {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": image}]}}}},
        }

    snap = Snapshot.build(
        NS, {"ControllerRevision": [revision(1, "pg:15", ts(100)), revision(2, "pg:16", ts(20))]}, taken_at=NOW
    )
    alert = timeline.AlertInfo(name="DBDown", starts_at=NOW - dt.timedelta(minutes=15), fingerprint="abc")
    built = timeline.build(snap, NOW - dt.timedelta(minutes=30), NOW, alert=alert)
    assert [e.kind for e in built.entries] == ["Rollout", "Alert"]
    assert built.entries[0].changes == ("image pg:15 -> pg:16 (container db)",)
    top = causes.rank(built)[0]
    assert top.resource.kind == "StatefulSet" and top.resource.name == "db"


def test_quota_and_fallback_causes() -> None:
    snap = Snapshot.build(
        NS,
        {},
        events=[event("ReplicaSet", "x", "FailedCreate", 'pods "x" is forbidden: exceeded quota: compute', 4)],
        taken_at=NOW,
    )
    built = timeline.build(snap, NOW - dt.timedelta(minutes=30), NOW)
    assert causes.rank(built)[0].title == "ResourceQuota exhausted"
    snap = Snapshot.build(NS, {}, events=[event("Pod", "p", "Unhealthy", "probe failed", 4)], taken_at=NOW)
    ranked = causes.rank(timeline.build(snap, NOW - dt.timedelta(minutes=30), NOW))
    assert ranked[0].score == 0.2 and "Unhealthy" in ranked[0].title


def test_postmortem_has_every_section_and_is_bounded() -> None:
    spec = IncidentReportSpec.model_validate({"since": "30m", "severity": "SEV2"})
    built, ranked, figures, summary, markdown = report(
        rollout_snapshot(), spec, (NOW - dt.timedelta(minutes=30), NOW), title="checkout"
    )
    for section in ("## Summary", "## Impact", "## Timeline", "## Suspected root cause", "## Action items"):
        assert section in markdown
    assert "registry.example/app:1.0 -> registry.example/app:2.0" in markdown
    assert "kubectl rollout undo deployment/checkout" in markdown
    assert figures.restarts == 3 and figures.pods_affected == 1
    copy = postmortem.bounded(markdown, 200)
    assert copy["truncated"] is True and len(copy["markdown"]) < 300 and copy["totalChars"] == len(markdown)
    assert postmortem.bounded(markdown, 100000) == {
        "markdown": markdown,
        "truncated": False,
        "totalChars": len(markdown),
    }


def test_spec_window_forms() -> None:
    with pytest.raises(ValidationError):
        IncidentReportSpec.model_validate({})
    with pytest.raises(ValidationError):
        IncidentReportSpec.model_validate({"since": "1h", "start": ts(60), "end": ts(0)})
    with pytest.raises(ValidationError):
        IncidentReportSpec.model_validate({"start": ts(60)})
    spec = IncidentReportSpec.model_validate({"start": ts(60), "end": ts(0)})
    assert window_for(spec, NOW) == (NOW - dt.timedelta(minutes=60), NOW)
    assert window_for(IncidentReportSpec.model_validate({"since": "2h"}), NOW)[0] == NOW - dt.timedelta(hours=2)


def test_bounded_timeline_keeps_changes_and_order() -> None:
    snap = rollout_snapshot()
    many = [event("Pod", "checkout-new-a", "BackOff", f"b{i}", 9 - i * 0.01) for i in range(300)]
    built = timeline.build(
        Snapshot.build(NS, dict(snap.objects), events=many, taken_at=NOW), NOW - dt.timedelta(minutes=30), NOW
    )
    kept = bounded_timeline(built.entries, 50)
    assert len(kept) == 50 and kept[0].kind == "Rollout"
    assert [e.time for e in kept] == sorted(e.time for e in kept)


# --- alert-triggered reports ------------------------------------------------------------------------

from infragenius.alerts import incidents as alerts  # noqa: E402
from infragenius.models.alertmanager import Alert  # noqa: E402


def _alert(severity: str = "critical", status: str = "firing", fingerprint: str = "fp1") -> Alert:
    return Alert.model_validate(
        {
            "status": status,
            "labels": {"alertname": "Checkout Down!", "namespace": NS, "severity": severity},
            "startsAt": "2025-01-15T11:50:00.123456789Z",
            "fingerprint": fingerprint,
        }
    )


def test_alert_matching_name_and_window() -> None:
    assert alerts.matches(_alert(), {"severity": "critical"})
    assert not alerts.matches(_alert("warning"), {"severity": "critical"})
    assert not alerts.matches(_alert(status="resolved"), {"severity": "critical"})
    assert not alerts.matches(_alert(), {})
    name = alerts.report_name(_alert())
    assert name == alerts.report_name(_alert()) and name.startswith("checkout-down-") and len(name) <= 63
    assert name != alerts.report_name(_alert(fingerprint="fp2"))
    body = alerts.report_for(_alert(), NS, 15, NOW)
    spec = IncidentReportSpec.model_validate(body["spec"])
    assert (spec.start, spec.end, spec.severity.value) == ("2025-01-15T11:35:00Z", "2025-01-15T12:00:00Z", "SEV1")
    assert spec.alert is not None and spec.alert.starts_at == "2025-01-15T11:50:00Z"


class _FakeIncidents:
    def __init__(self) -> None:
        self.created: set[tuple[str, str]] = set()

    async def create(self, namespace: str, alert: Alert) -> str:
        key = (namespace, alerts.report_name(alert))
        if key in self.created:
            return "duplicate"
        self.created.add(key)
        return "created"


async def test_webhook_creates_one_report_per_alert() -> None:
    from pydantic import SecretStr

    from infragenius.alerts.receiver import AlertWebhook, WebhookOptions
    from infragenius.models.alertmanager import WebhookPayload

    sink = _FakeIncidents()
    hook = AlertWebhook(
        WebhookOptions(
            token=SecretStr("t"), incident_labels=(("severity", "critical"),), incident_namespaces=frozenset({"*"})
        ),
        sink=None,
        incidents=sink,  # type: ignore[arg-type]
    )
    body = {"version": "4", "alerts": [_alert().model_dump(by_alias=True, mode="json")]}
    first = json.loads((await hook._process(WebhookPayload.model_validate(body))).text)
    assert first["results"][0]["incident"] == "created" and first["results"][0]["action"] == "incident"
    hook.recent = type(hook.recent)(10)  # as after a restart: the sink (the API server) still says duplicate
    second = json.loads((await hook._process(WebhookPayload.model_validate(body))).text)
    assert second["results"][0]["incident"] == "duplicate" and len(sink.created) == 1
    body["alerts"][0]["labels"]["severity"] = "warning"
    third = await hook._process(WebhookPayload.model_validate(body))
    assert third.status == 422 and len(sink.created) == 1


# --- metric anomalies --------------------------------------------------------------------------------

from infragenius.incident import anomalies as metrics  # noqa: E402
from infragenius.models.incident import MetricKind, MetricQuery  # noqa: E402


def _series(values: list[float]) -> metrics.Samples:
    return [(NOW - dt.timedelta(minutes=len(values) - i), v) for i, v in enumerate(values)]


def test_step_detection() -> None:
    samples = _series([0.001] * 20 + [0.02] * 10)
    step = metrics.detect_step(samples)
    assert step is not None and step.time == samples[20][0] and step.rising
    assert step.before == pytest.approx(0.001) and step.after == pytest.approx(0.02)
    assert metrics.detect_step(_series([0.01, 0.011, 0.009] * 10)) is None  # noise is no step
    assert metrics.detect_step(samples, min_change=0.05) is None  # below the query's minChange
    assert metrics.detect_step(_series([1.0] * 5)) is None  # too short
    drop = metrics.detect_step(_series([100.0] * 10 + [10.0] * 10))
    assert drop is not None and not drop.rising


def test_metric_anomaly_enters_the_timeline_and_impact() -> None:
    query = MetricQuery(
        name="checkout-errors", query="sum(rate(errors[5m]))/sum(rate(total[5m]))", kind=MetricKind.error_rate
    )
    step = metrics.detect_step(_series([0.001] * 20 + [0.02] * 9))
    assert step is not None
    entry = metrics.anomaly_entry(query, step, NS)
    assert entry.kind == "MetricAnomaly" and entry.severity == "critical"
    assert entry.summary == "checkout-errors rose from 0.1% to 2%"
    spec = IncidentReportSpec.model_validate({"since": "30m"})
    built, ranked, figures, _, markdown = report(
        rollout_snapshot(),
        spec,
        (NOW - dt.timedelta(minutes=30), NOW),
        title="t",
        metric_entries=[entry],
        error_rate=0.02,
    )
    assert "MetricAnomaly" in [e.kind for e in built.entries] and figures.error_rate == 0.02
    assert "Error rate: 2.00%" in markdown
    assert ranked[0].resource.name == "checkout"  # the rollout still precedes every symptom


def _hook(**options: Any) -> tuple[Any, _FakeIncidents]:
    from pydantic import SecretStr

    from infragenius.alerts.receiver import AlertWebhook, WebhookOptions

    sink = _FakeIncidents()
    settings = {"incident_labels": (("severity", "critical"),), "incident_namespaces": frozenset({NS}), **options}
    hook = AlertWebhook(WebhookOptions(token=SecretStr("t"), **settings), sink=None, incidents=sink)  # type: ignore[arg-type]
    return hook, sink


async def _send(hook: Any, *alert_list: Alert) -> tuple[int, list[dict[str, Any]]]:
    from infragenius.models.alertmanager import WebhookPayload

    body = {"version": "4", "alerts": [a.model_dump(by_alias=True, mode="json") for a in alert_list]}
    reply = await hook._process(WebhookPayload.model_validate(body))
    return reply.status, json.loads(reply.text)["results"]


async def test_alerts_open_reports_only_in_allowed_namespaces() -> None:
    hook, sink = _hook()
    foreign = _alert()
    foreign.labels["namespace"] = "team-b"
    status, results = await _send(hook, foreign)
    assert status == 200 and results[0]["incident"] == "namespace-not-allowed" and results[0]["action"] == "refused"
    assert sink.created == set()
    nothing_allowed, sink = _hook(incident_namespaces=frozenset())
    status, results = await _send(nothing_allowed, _alert())
    assert results[0]["incident"] == "namespace-not-allowed" and sink.created == set()
    anywhere, sink = _hook(incident_namespaces=frozenset({"*"}))
    status, results = await _send(anywhere, foreign)
    assert results[0]["incident"] == "created" and sink.created == {("team-b", alerts.report_name(foreign))}


async def test_one_request_opens_a_bounded_number_of_reports() -> None:
    hook, sink = _hook(max_incidents_per_request=3)
    many = [_alert(fingerprint=f"fp{i}") for i in range(5000)]
    status, results = await _send(hook, *many)
    assert status == 200 and len(sink.created) == 3
    assert [r["incident"] for r in results].count("over-limit") == 4997
    # Refused alerts were not remembered as handled: a later delivery may still open them.
    status, results = await _send(hook, many[3])
    assert results[0]["incident"] == "created"


async def test_reports_per_namespace_are_rate_limited() -> None:
    hook, sink = _hook(incidents_per_minute=2)
    first = await _send(hook, _alert(fingerprint="a"), _alert(fingerprint="b"), _alert(fingerprint="c"))
    assert [r["incident"] for r in first[1]] == ["created", "created", "rate-limited"]
    assert len(sink.created) == 2


def test_token_buckets_refill_and_forget_idle_keys() -> None:
    from infragenius.alerts.receiver import TokenBuckets

    now = [0.0]
    buckets = TokenBuckets(per_minute=2, clock=lambda: now[0])
    assert [buckets.take("ns") for _ in range(3)] == [True, True, False]
    now[0] += 30  # one token back after half a minute at 2 a minute
    assert buckets.take("ns") and not buckets.take("ns")
    for i in range(3000):
        buckets.take(f"ns-{i}")
    now[0] += 120
    buckets.take("again")
    assert len(buckets._buckets) < 100  # idle, refilled buckets are dropped
