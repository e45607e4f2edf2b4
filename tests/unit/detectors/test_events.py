from infragenius.detectors.events import DETECTOR, EXPLAINED_REASONS
from infragenius.models.findings import ResourceRef, Severity, finding_id
from tests.unit.factories import (
    NS,
    app_pod,
    configmap,
    deployment_with_pods,
    event,
    healthy_events,
    healthy_namespace,
    snap,
)


def ev_id(kind: str, name: str, reason: str) -> str:
    return finding_id("events", ResourceRef(kind=kind, name=name, namespace=NS), reason)


def test_contract() -> None:
    assert DETECTOR.name == "events"
    assert "Pod" in DETECTOR.kinds


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events())) == []


def test_warning_events_roll_up_and_sum_counts() -> None:
    deploy, rs, pods = deployment_with_pods("web", 3)
    events = [
        event(
            "Pod",
            pods[0]["metadata"]["name"],
            "FailedMount",
            'MountVolume.SetUp failed for volume "certs": secret "web-tls" not found',
            count=12,
            ago=30,
        ),
        event(
            "Pod",
            pods[1]["metadata"]["name"],
            "FailedMount",
            'MountVolume.SetUp failed for volume "certs": secret "web-tls" not found',
            count=5,
            ago=300,
        ),
        event(
            "Pod",
            pods[2]["metadata"]["name"],
            "FailedMount",
            "Unable to attach or mount volumes: timed out",
            series_count=4,
            ago=90,
        ),
    ]
    findings = DETECTOR.detect(snap(deploy, rs, *pods, events=events))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.warning
    assert f.id == ev_id("Deployment", "web", "FailedMount")
    assert f.resource == ResourceRef(kind="Deployment", name="web", namespace=NS)
    assert f.affected == 3
    assert (
        f.title
        == 'Deployment web: FailedMount x21 - MountVolume.SetUp failed for volume "certs": secret "web-tls" not found'
    )
    ev = [(e.source, e.value) for e in f.evidence]
    assert ev[0] == (
        "event:FailedMount",
        'x21, last seen 30s ago: MountVolume.SetUp failed for volume "certs": secret "web-tls" not found',
    )
    assert ("event:FailedMount", "Unable to attach or mount volumes: timed out") in ev
    assert ("involvedObject (Pod)", ", ".join(p["metadata"]["name"] for p in pods)) in ev
    assert "kubectl -n shop describe pod web-7d9f8b-00000" in f.remediation


def test_reasons_grouped_separately() -> None:
    p = app_pod("solo")
    events = [
        event("Pod", "solo", "FailedCreatePodSandBox", "failed to setup network for sandbox"),
        event("Pod", "solo", "FailedKillPod", "error killing pod"),
    ]
    ids = sorted(f.id for f in DETECTOR.detect(snap(p, events=events)))
    assert ids == sorted([ev_id("Pod", "solo", "FailedCreatePodSandBox"), ev_id("Pod", "solo", "FailedKillPod")])


def test_explained_reasons_and_normal_events_are_skipped() -> None:
    p = app_pod("solo")
    events = [event("Pod", "solo", reason, "whatever", count=50) for reason in sorted(EXPLAINED_REASONS)]
    events.append(event("Pod", "solo", "Pulled", "Successfully pulled image", type_="Normal"))
    assert DETECTOR.detect(snap(p, events=events)) == []
    assert {
        "BackOff",
        "Unhealthy",
        "FailedScheduling",
        "ProvisioningFailed",
        "NodeNotReady",
        "OOMKilling",
    } <= EXPLAINED_REASONS


def test_old_one_off_events_are_skipped_but_old_repeating_ones_are_not() -> None:
    p = app_pod("solo")
    once = event("Pod", "solo", "FailedMount", "blip", count=1, ago=4000)
    assert DETECTOR.detect(snap(p, events=[once])) == []
    repeated = event("Pod", "solo", "FailedMount", "keeps failing", count=9, ago=4000)
    assert [f.id for f in DETECTOR.detect(snap(p, events=[repeated]))] == [ev_id("Pod", "solo", "FailedMount")]
    recent_once = event("Pod", "solo", "FailedMount", "just now", count=1, ago=60)
    assert len(DETECTOR.detect(snap(p, events=[recent_once]))) == 1


def test_events_about_deleted_objects_are_reported_on_the_named_object() -> None:
    events = [event("Pod", "web-gone-1", "FailedAttachVolume", "Multi-Attach error for volume pvc-1", count=3)]
    findings = DETECTOR.detect(snap(events=events))
    assert [(f.resource.kind, f.resource.name) for f in findings] == [("Pod", "web-gone-1")]


def test_missing_configmap_mounts_are_left_to_the_configmap_detector() -> None:
    p = app_pod("solo")
    msg = 'MountVolume.SetUp failed for volume "config" : configmap "app-config" not found'
    events = [event("Pod", "solo", "FailedMount", msg, count=4)]
    assert DETECTOR.detect(snap(p, events=events)) == []
    # Once the ConfigMap exists (or ConfigMaps were not gathered), the event stands on its own.
    assert len(DETECTOR.detect(snap(p, configmap("app-config"), events=events))) == 1
    assert len(DETECTOR.detect(snap(p, events=events, without=["ConfigMap"]))) == 1


def test_events_of_other_namespaces_are_ignored() -> None:
    events = [event("Pod", "x", "FailedMount", "boom", count=3, namespace="other")]
    assert DETECTOR.detect(snap(events=events)) == []


def test_missing_pod_kind_reports_on_the_pod() -> None:
    deploy, rs, pods = deployment_with_pods("web", 1)
    events = [event("Pod", pods[0]["metadata"]["name"], "FailedMount", "boom", count=3)]
    findings = DETECTOR.detect(snap(deploy, rs, events=events, without=["Pod"]))
    assert [(f.resource.kind, f.resource.name) for f in findings] == [("Pod", "web-7d9f8b-00000")]


def test_id_stable_when_counts_change() -> None:
    p = app_pod("solo")
    a = DETECTOR.detect(snap(p, events=[event("Pod", "solo", "FailedMount", "boom", count=3)]))
    b = DETECTOR.detect(snap(p, events=[event("Pod", "solo", "FailedMount", "boom", count=30)]))
    assert a == DETECTOR.detect(snap(p, events=[event("Pod", "solo", "FailedMount", "boom", count=3)]))
    assert a[0].id == b[0].id and "x30" in b[0].title


def test_events_about_our_own_resources_are_ignored() -> None:
    own = event("Analysis", "diagnose", "InvalidSpec", "invalid spec: interval must be at least 60s", count=3)
    own["involvedObject"]["apiVersion"] = "infragenius.io/v1alpha1"
    assert DETECTOR.detect(snap(events=[own])) == []
