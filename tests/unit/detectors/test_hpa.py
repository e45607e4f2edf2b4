"""HPA detector: missing target, pinned at max, unable to scale, utilization without requests; at-min is healthy."""

from __future__ import annotations

from infragenius.detectors.hpa import DETECTOR
from infragenius.models.findings import Severity
from tests.unit.factories import (
    cond,
    container,
    deployment,
    ev,
    event,
    healthy_objects,
    hpa,
    only,
    snap,
    statefulset,
)

NO_METRICS = (
    "the HPA was unable to compute the replica count: failed to get cpu utilization: "
    "unable to get metrics for resource cpu: no metrics returned from resource metrics API"
)


def conds(
    able: tuple[str, str] = ("True", "ReadyForNewScale"),
    active: tuple[str, str] = ("True", "ValidMetricFound"),
    limited: tuple[str, str] = ("False", "DesiredWithinRange"),
    message: str = "",
    ago: float = 3600,
) -> list[dict]:
    return [
        cond("AbleToScale", able[0], able[1], ago=ago),
        cond("ScalingActive", active[0], active[1], message if active[0] == "False" else "", ago=ago),
        cond("ScalingLimited", limited[0], limited[1], message if limited[0] == "True" else "", ago=ago),
    ]


def test_contract() -> None:
    assert DETECTOR.name == "hpa"
    assert {"HorizontalPodAutoscaler", "Deployment", "StatefulSet"} <= DETECTOR.kinds


def test_healthy_namespace_and_hpa_at_min_replicas_give_nothing() -> None:
    assert DETECTOR.detect(snap(healthy_objects())) == []
    message = "the desired replica count is less than the minimum replica count"
    at_min = hpa("web", current=2, min_replicas=2,
                 conditions=conds(limited=("True", "TooFewReplicas"), message=message))  # fmt: skip
    assert DETECTOR.detect(snap(deployment("web"), at_min)) == []


def test_missing_target_is_critical_only_when_its_kind_was_gathered() -> None:
    events = [
        event("HorizontalPodAutoscaler", "web", "FailedGetScale", 'deployments/scale.apps "webb" not found', count=30)
    ]
    orphan = hpa("web", target="webb", conditions=conds(able=("False", "FailedGetScale")))
    f = only(DETECTOR.detect(snap(deployment("web"), orphan, events=events)))
    assert f.severity is Severity.critical
    assert (f.resource.kind, f.resource.name) == ("HorizontalPodAutoscaler", "web")
    assert f.title == "HPA web scales Deployment/webb, which does not exist"
    assert ev(f)["spec.scaleTargetRef"] == "apps/v1 Deployment/webb"
    assert ev(f)["event:FailedGetScale"] == 'count=30: deployments/scale.apps "webb" not found'
    # Deployments not gathered: no "does not exist" claim, only what the HPA controller itself reports.
    g = only(DETECTOR.detect(snap(orphan, without=("Deployment",))))
    assert g.severity is Severity.warning
    assert g.title == "HPA web cannot scale Deployment/webb: FailedGetScale"
    assert g.id != f.id
    # A custom resource target (Argo Rollout) cannot be checked.
    assert DETECTOR.detect(snap(hpa("web", target="web", kind="Rollout", with_status=False))) == []


def test_statefulset_target_is_found() -> None:
    assert DETECTOR.detect(snap(statefulset("db"), hpa("db", target="db", kind="StatefulSet"))) == []


def test_pinned_at_max_replicas() -> None:
    message = "the desired replica count is more than the maximum replica count"
    pinned = hpa("web", current=10, desired=10, max_replicas=10,
                 conditions=conds(limited=("True", "TooManyReplicas"), message=message))  # fmt: skip
    pinned["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] = 180
    f = only(DETECTOR.detect(snap(deployment("web", 10), pinned)))
    assert f.severity is Severity.warning
    assert f.title == "HPA web is pinned at maxReplicas=10: Deployment/web wants more replicas"
    e = ev(f)
    assert e["status.conditions[ScalingLimited].reason"] == "TooManyReplicas"
    assert e["status.currentMetrics[cpu].current.averageUtilization"] == "180%"
    assert e["status.currentReplicas"] == "10"
    # Stable id as replicas move.
    pinned["status"]["currentReplicas"] = 12
    pinned["spec"]["maxReplicas"] = 12
    assert only(DETECTOR.detect(snap(deployment("web", 12), pinned))).id == f.id


def test_scaling_inactive_is_a_warning_after_a_grace_period() -> None:
    broken = hpa("web", conditions=conds(active=("False", "FailedGetResourceMetric"), message=NO_METRICS))
    f = only(DETECTOR.detect(snap(deployment("web"), broken)))
    assert f.severity is Severity.warning
    assert f.title.startswith("HPA web cannot scale Deployment/web: FailedGetResourceMetric: the HPA was unable")
    assert ev(f)["status.conditions[ScalingActive].message"] == NO_METRICS
    fresh = hpa("web", conditions=conds(active=("False", "FailedGetResourceMetric"), message=NO_METRICS, ago=60))
    assert DETECTOR.detect(snap(deployment("web"), fresh)) == []
    # Target scaled to zero on purpose.
    disabled = hpa(
        "web",
        conditions=conds(
            active=("False", "ScalingDisabled"),
            message="scaling is disabled since the replica count of the target is zero",
        ),
    )
    assert DETECTOR.detect(snap(deployment("web", 0, available=0), disabled)) == []


def test_unable_to_scale_is_a_warning() -> None:
    broken = hpa("web", conditions=conds(able=("False", "FailedUpdateScale")))
    f = only(DETECTOR.detect(snap(deployment("web"), broken)))
    assert f.severity is Severity.warning
    assert f.title == "HPA web cannot scale Deployment/web: FailedUpdateScale"


def test_utilization_metric_without_requests() -> None:
    no_requests = deployment(
        "web",
        containers=[
            container(resources={}),
            container("proxy", image="envoy:1", resources={"requests": {"cpu": "50m"}}),
        ],
    )
    f = only(DETECTOR.detect(snap(no_requests, hpa("web", with_status=False))))
    assert f.severity is Severity.warning
    assert f.title == "HPA web scales on cpu utilization but Deployment/web containers app set no cpu request"
    assert ev(f)["Deployment/web.spec.template.spec.containers[app].resources.requests.cpu"] == "not set"
    assert ev(f)["spec.metrics[0].resource"] == "cpu Utilization target"
    # A limit is defaulted into the request by the API server.
    limits_only = deployment("web", containers=[container(resources={"limits": {"cpu": "1"}})])
    assert DETECTOR.detect(snap(limits_only, hpa("web", with_status=False))) == []
    # A working HPA proves requests exist (a LimitRange may fill them in).
    assert DETECTOR.detect(snap(no_requests, hpa("web"))) == []


def test_missing_requests_replaces_the_generic_scaling_inactive_finding() -> None:
    no_requests = deployment("web", containers=[container(resources={})])
    msg = "failed to get cpu utilization: missing request for cpu in container app of Pod web-abc-0"
    broken = hpa("web", conditions=conds(active=("False", "FailedGetResourceMetric"), message=msg))
    f = only(DETECTOR.detect(snap(no_requests, broken)))
    assert "set no cpu request" in f.title
    assert ev(f)["status.conditions[ScalingActive].message"] == msg


def test_container_resource_metric_checks_only_that_container() -> None:
    metric = [{"type": "ContainerResource", "containerResource": {"name": "memory", "container": "proxy",
               "target": {"type": "Utilization", "averageUtilization": 80}}}]  # fmt: skip
    target = deployment("web", containers=[container(resources={}), container("proxy", resources={})])
    f = only(DETECTOR.detect(snap(target, hpa("web", metrics=metric, with_status=False))))
    assert f.title == "HPA web scales on memory utilization but Deployment/web containers proxy set no memory request"


def test_empty_status_says_nothing() -> None:
    assert DETECTOR.detect(snap(deployment("web"), hpa("web", with_status=False))) == []


def test_same_snapshot_twice_gives_identical_findings() -> None:
    pinned = hpa("web", current=10, max_replicas=10,
                 conditions=conds(active=("False", "FailedGetPodsMetric"),
                                  limited=("True", "TooManyReplicas")))  # fmt: skip
    s = snap(deployment("web", 10), pinned)
    first, second = DETECTOR.detect(s), DETECTOR.detect(s)
    assert [f.title.split(":")[0] for f in first] == [
        "HPA web cannot scale Deployment/web",
        "HPA web is pinned at maxReplicas=10",
    ]
    assert first == second
