"""IncidentReport cause ranking under decoys and through dependencies (issue 20).

Every case names its expected top cause and the least score gap to the next one. Minutes count back
from NOW; the failing workload's first symptom is 8 minutes ago in every case.
"""

from __future__ import annotations

import datetime as dt

from infragenius.incident import causes, postmortem, timeline
from infragenius.snapshot import Snapshot
from tests.unit import factories as f
from tests.unit.factories import NOW

Obj = f.Obj
WINDOW = (NOW - dt.timedelta(minutes=30), NOW)
FIRST_SYMPTOM = 8  # minutes ago


def template(app: str, image: str, **container: object) -> Obj:
    return f.template([f.container("app", image, **container)], {"app": app})


def deployment(app: str, tmpl: Obj, *revisions: tuple[int, float, str]) -> list[Obj]:
    """A Deployment whose current template is ``tmpl``, with ReplicaSets (revision, minutes ago, image)."""
    deploy = f.deployment(app)
    deploy["spec"]["template"] = tmpl
    replicasets = []
    for revision, minutes_ago, image in revisions:
        rs_template = {
            **tmpl,
            "spec": {**tmpl["spec"], "containers": [{**tmpl["spec"]["containers"][0], "image": image}]},
        }
        replicasets.append(
            f.replicaset(
                f"{app}-r{revision}", app, 2, revision=revision, age=minutes_ago * 60, pod_template=rs_template
            )
        )
    return [deploy, *replicasets]


def failing_pods(app: str, rs: str) -> tuple[list[Obj], list[Obj]]:
    """Two crash-looping pods and their BackOff events, first seen FIRST_SYMPTOM minutes ago."""
    last = f.terminated("Error", 1, ago=FIRST_SYMPTOM * 60 - 30)
    pods = [
        f.pod(f"{rs}-{i}", ("ReplicaSet", rs), labels={"app": app}, ready=False,
              statuses=[f.cstatus("app", waiting="CrashLoopBackOff", last=last, restarts=4)])
        for i in range(2)
    ]  # fmt: skip
    events = [
        f.event("Pod", f"{rs}-{i}", "BackOff", "Back-off restarting failed container app", 6, ago=30,
                first_ago=FIRST_SYMPTOM * 60)
        for i in range(2)
    ]  # fmt: skip
    return pods, events


def healthy_pods(app: str, rs: str) -> list[Obj]:
    return [f.pod(f"{rs}-{i}", ("ReplicaSet", rs), labels={"app": app}) for i in range(2)]


def decoy(minutes_ago: float) -> list[Obj]:
    """Deployment catalog rolled out ``minutes_ago`` and stayed healthy; nothing calls it."""
    objs = deployment("catalog", template("catalog", "shop/catalog:2"), (1, 300, "shop/catalog:1"),
                      (2, minutes_ago, "shop/catalog:2"))  # fmt: skip
    return [*objs, *healthy_pods("catalog", "catalog-r2"), f.service("catalog", {"app": "catalog"})]


def written(obj: Obj, minutes_ago: float, fields: Obj, manager: str = "kubectl-edit") -> Obj:
    """Record a write of ``fields`` ``minutes_ago`` in managedFields, as the API server does."""
    obj["metadata"]["managedFields"] = [
        {"manager": "helm", "operation": "Update", "time": f.ts(86400), "fieldsV1": fields},
        {"manager": manager, "operation": "Update", "time": f.ts(minutes_ago * 60), "fieldsV1": fields},
    ]
    return obj


def ranked(*objs: Obj, events: list[Obj]) -> list[causes.Cause]:
    return causes.rank(timeline.build(f.snap(*objs, events=events), *WINDOW))


def assert_top(result: list[causes.Cause], title_part: str, gap: float) -> causes.Cause:
    top = result[0]
    assert title_part in top.title, [(c.title, round(c.score, 3)) for c in result]
    assert len(result) > 1 and top.score - result[1].score >= gap, [(c.title, round(c.score, 3)) for c in result]
    return top


# --- a healthy decoy -----------------------------------------------------------------------------------


def test_a_healthy_decoy_rollout_ranks_low_and_says_it_stayed_healthy() -> None:
    objs = deployment("checkout", template("checkout", "shop/checkout:2"), (1, 300, "shop/checkout:1"),
                      (2, 10, "shop/checkout:2"))  # fmt: skip
    pods, events = failing_pods("checkout", "checkout-r2")
    result = ranked(*objs, *pods, *decoy(FIRST_SYMPTOM + 1), events=events)
    top = assert_top(result, "Rollout of Deployment checkout", gap=0.6)
    assert top.score > 0.85
    bystander = next(c for c in result if "catalog" in c.title)
    assert bystander.score <= 0.15 and bystander.rule == "healthy change elsewhere"
    assert "stayed healthy" in bystander.why and "Deployment checkout" in bystander.why


def test_two_changes_close_together_the_one_in_the_failing_workload_wins() -> None:
    # The decoy rolled out closer to the first symptom (1 minute before it) than the failing workload (3).
    objs = deployment("checkout", template("checkout", "shop/checkout:2"), (1, 300, "shop/checkout:1"),
                      (2, FIRST_SYMPTOM + 3, "shop/checkout:2"))  # fmt: skip
    pods, events = failing_pods("checkout", "checkout-r2")
    result = ranked(*objs, *pods, *decoy(FIRST_SYMPTOM + 1), events=events)
    assert_top(result, "Rollout of Deployment checkout", gap=0.6)


def test_a_rollout_of_what_the_failing_workload_calls_is_not_a_decoy() -> None:
    """web calls Service db; db's pods are the Deployment db, which rolled out and shows no symptom itself."""
    web = deployment("web", template("web", "shop/web:1", env=[{"name": "DB_URL", "value": "postgres://db:5432/shop"}]),
                     (1, 300, "shop/web:1"))  # fmt: skip
    db = deployment("db", template("db", "shop/db:2"), (1, 300, "shop/db:1"), (2, 12, "shop/db:2"))
    pods, events = failing_pods("web", "web-r1")
    result = ranked(*web, *db, f.service("db", {"app": "db"}), *healthy_pods("db", "db-r2"), *pods, *decoy(10),
                    events=events)  # fmt: skip
    top = assert_top(result, "Rollout of Deployment db", gap=0.5)
    assert "Deployment web calls Service db, which selects the pods of Deployment db" in top.why


# --- the failing workload did not change; something it depends on did -----------------------------------


def unchanged_api(**container: object) -> tuple[list[Obj], list[Obj]]:
    objs = deployment("api", template("api", "shop/api:1", **container), (1, 300, "shop/api:1"))
    pods, events = failing_pods("api", "api-r1")
    return [*objs, *pods], events


def test_a_configmap_the_failing_workload_mounts_changed() -> None:
    api, events = unchanged_api(envFrom=[{"configMapRef": {"name": "api-env"}}])
    cm = written(f.configmap("api-env"), FIRST_SYMPTOM + 2, {"f:data": {"f:DATABASE_HOST": {}}})
    other = written(f.configmap("catalog-env"), FIRST_SYMPTOM + 1, {"f:data": {"f:X": {}}})
    result = ranked(*api, cm, other, *decoy(FIRST_SYMPTOM + 1), events=events)
    top = assert_top(result, "ConfigMap api-env changed (DATABASE_HOST) by kubectl-edit", gap=0.6)
    assert top.rule == "dependency change" and top.score > 0.8
    assert ("depends on it", "Deployment api mounts or reads ConfigMap api-env") in top.evidence
    assert not any("catalog-env" in c.title for c in result)  # nothing failing reads it
    assert any(item.startswith("Restore the previous ConfigMap api-env") for item in postmortem.action_items(result))


def test_a_service_selector_the_failing_workload_calls_changed() -> None:
    api, events = unchanged_api(args=["--backend=http://payments.shop.svc.cluster.local:8080"])
    svc = written(f.service("payments", {"app": "payments-v2"}), FIRST_SYMPTOM + 2, {"f:spec": {"f:selector": {}}})
    result = ranked(*api, svc, *decoy(FIRST_SYMPTOM + 1), events=events)
    top = assert_top(result, "Service payments changed (selector) by kubectl-edit", gap=0.6)
    assert ("now", "selector app=payments-v2") in top.evidence
    assert "Deployment api calls Service payments" in top.why


def test_a_network_policy_that_selects_the_failing_workload_was_created() -> None:
    api, events = unchanged_api()
    policy = f.network_policy("lockdown", {"matchLabels": {"app": "api"}}, types=["Ingress", "Egress"])
    policy["metadata"]["creationTimestamp"] = f.ts((FIRST_SYMPTOM + 3) * 60)
    unrelated = f.network_policy("catalog-only", {"matchLabels": {"app": "catalog"}})
    unrelated["metadata"]["creationTimestamp"] = f.ts((FIRST_SYMPTOM + 1) * 60)
    result = ranked(*api, policy, unrelated, *decoy(FIRST_SYMPTOM + 1), events=events)
    top = assert_top(result, "NetworkPolicy lockdown created", gap=0.6)
    assert "Deployment api is selected by NetworkPolicy lockdown" in top.why
    assert ("now", "policyTypes Ingress, Egress") in top.evidence


def test_a_dependency_changed_after_the_first_symptom_is_a_reaction() -> None:
    api, events = unchanged_api(envFrom=[{"configMapRef": {"name": "api-env"}}])
    cm = written(f.configmap("api-env"), FIRST_SYMPTOM - 3, {"f:data": {"f:DATABASE_HOST": {}}})
    change = next(c for c in ranked(*api, cm, events=events) if "api-env" in c.title)
    assert change.score == 0.15 and "reaction" in change.why


def test_a_rollout_and_a_change_of_its_configmap_together_the_rollout_leads() -> None:
    """A release that changes the template and its ConfigMap at once: both are suspects, the rollout first."""
    objs = deployment("api", template("api", "shop/api:2", envFrom=[{"configMapRef": {"name": "api-env"}}]),
                      (1, 300, "shop/api:1"), (2, FIRST_SYMPTOM + 2, "shop/api:2"))  # fmt: skip
    pods, events = failing_pods("api", "api-r2")
    cm = written(f.configmap("api-env"), FIRST_SYMPTOM + 2, {"f:data": {"f:MODE": {}}}, manager="helm")
    result = ranked(*objs, *pods, cm, events=events)
    assert_top(result, "Rollout of Deployment api", gap=0.04)
    assert result[1].rule == "dependency change" and result[1].score > 0.8


# --- when dependencies cannot be judged --------------------------------------------------------------------


def test_without_services_gathered_another_rollout_is_not_called_healthy() -> None:
    objs = deployment("checkout", template("checkout", "shop/checkout:2"), (1, 300, "shop/checkout:1"),
                      (2, 10, "shop/checkout:2"))  # fmt: skip
    pods, events = failing_pods("checkout", "checkout-r2")
    everything = f.snap(*objs, *pods, *decoy(FIRST_SYMPTOM + 1), events=events)
    partial = Snapshot.build(
        f.NS, {k: v for k, v in everything.objects.items() if k not in ("Service", "ConfigMap", "NetworkPolicy")},
        events=events, taken_at=NOW,
    )  # fmt: skip
    result = causes.rank(timeline.build(partial, *WINDOW))
    assert_top(result, "Rollout of Deployment checkout", gap=0.15)
    other = next(c for c in result if "catalog" in c.title)
    assert "stayed healthy" not in other.why and "unknown" in other.why and other.score > 0.5


def test_with_only_an_alert_a_dependency_change_is_a_suspect_but_an_unused_object_is_not() -> None:
    api = deployment("api", template("api", "shop/api:1", envFrom=[{"configMapRef": {"name": "api-env"}}]),
                     (1, 300, "shop/api:1"))  # fmt: skip
    cm = written(f.configmap("api-env"), 5, {"f:data": {"f:MODE": {}}})
    unused = f.configmap("kube-root-ca.crt")
    unused["metadata"]["creationTimestamp"] = f.ts(4 * 60)
    alert = timeline.AlertInfo(name="APIDown", starts_at=NOW - dt.timedelta(minutes=2))
    built = timeline.build(f.snap(*api, cm, unused), *WINDOW, alert=alert)
    result = causes.rank(built)
    assert "ConfigMap api-env changed (MODE)" in result[0].title and result[0].score > 0.6
    assert not any("kube-root-ca.crt" in c.title for c in result)


def test_a_timeline_with_a_dependency_change_fits_the_status_model() -> None:
    # The entry kind "Change" was unknown to the status model: every such report failed validation.
    from infragenius.models.incident import TimelineEntry

    api, events = unchanged_api(envFrom=[{"configMapRef": {"name": "api-env"}}])
    cm = written(f.configmap("api-env"), FIRST_SYMPTOM + 2, {"f:data": {"f:DATABASE_HOST": {}}})
    built = timeline.build(f.snap(*api, cm, events=events), *WINDOW)
    entries = [TimelineEntry.model_validate(e.to_status()) for e in built.entries]
    assert any(e.kind.value == "Change" for e in entries)
    for cause in causes.rank(built):
        cause.to_status()  # the suspected causes serialise too
