from infragenius.detectors.pvc import DETECTOR
from infragenius.models.findings import ResourceRef, Severity, finding_id
from tests.unit.factories import (
    NS,
    event,
    healthy_events,
    healthy_namespace,
    pvc,
    snap,
    storage_class,
    ts,
)


def pvc_id(name: str, problem: str) -> str:
    return finding_id("pvc", ResourceRef(kind="PersistentVolumeClaim", name=name, namespace=NS), problem)


def test_contract() -> None:
    assert DETECTOR.name == "pvc"
    assert DETECTOR.kinds == {"PersistentVolumeClaim", "StorageClass"}


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(*healthy_namespace(), events=healthy_events())) == []


def test_pending_claim_is_a_warning() -> None:
    findings = DETECTOR.detect(snap(pvc("data", phase="Pending", age=900), storage_class("standard")))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.warning and f.id == pvc_id("data", "Pending")
    assert (
        f.title
        == "PersistentVolumeClaim data is Pending: no volume has been provisioned or bound; pods using it cannot start"
    )
    ev = {e.source: e.value for e in f.evidence}
    assert ev["status.phase"] == "Pending" and ev["spec.storageClassName"] == "standard"
    assert ev["metadata.creationTimestamp"] == "15m ago"


def test_provisioning_failed_events_make_it_critical() -> None:
    events = [
        event(
            "PersistentVolumeClaim", "data", "ProvisioningFailed", "failed to provision volume: quota exceeded", count=7
        )
    ]
    findings = DETECTOR.detect(snap(pvc("data", phase="Pending", age=30), storage_class("standard"), events=events))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.critical and f.id == pvc_id("data", "Pending")
    assert "volume provisioning failed" in f.title
    assert ("event:ProvisioningFailed", "x7: failed to provision volume: quota exceeded") in [
        (e.source, e.value) for e in f.evidence
    ]


def test_missing_storage_class_is_critical() -> None:
    findings = DETECTOR.detect(
        snap(pvc("data", phase="Pending", storage_class="fast-ssd", age=30), storage_class("standard"))
    )
    assert [f.severity for f in findings] == [Severity.critical]
    assert "its StorageClass fast-ssd does not exist" in findings[0].title
    assert ("StorageClass", "fast-ssd not found") in [(e.source, e.value) for e in findings[0].evidence]


def test_unset_class_uses_the_default_class() -> None:
    claim = pvc("data", phase="Pending", storage_class=None, age=900)
    findings = DETECTOR.detect(snap(claim, storage_class("standard", default=True)))
    assert [f.severity for f in findings] == [Severity.warning]
    assert ("spec.storageClassName", "<unset; default: standard>") in [
        (e.source, e.value) for e in findings[0].evidence
    ]
    no_default = DETECTOR.detect(snap(claim, storage_class("standard")))
    assert "has no StorageClass and waits for a matching pre-provisioned PersistentVolume" in no_default[0].title


def test_wait_for_first_consumer_and_fresh_claims_are_normal() -> None:
    wffc = storage_class("standard", binding="WaitForFirstConsumer")
    assert DETECTOR.detect(snap(pvc("data", phase="Pending", age=86400), wffc)) == []
    assert DETECTOR.detect(snap(pvc("data", phase="Pending", age=20), storage_class("standard"))) == []
    # Once the scheduler picked a node, WaitForFirstConsumer is no excuse any more.
    picked = pvc("data", phase="Pending", age=900, annotations={"volume.kubernetes.io/selected-node": "node-1"})
    assert [f.severity for f in DETECTOR.detect(snap(picked, wffc))] == [Severity.warning]


def test_lost_claim_is_critical() -> None:
    findings = DETECTOR.detect(snap(pvc("data", phase="Lost", volume="pv-42"), storage_class()))
    assert len(findings) == 1
    f = findings[0]
    assert f.severity is Severity.critical and f.id == pvc_id("data", "Lost")
    assert "PersistentVolume pv-42 no longer exists" in f.title
    assert ("spec.volumeName", "pv-42") in [(e.source, e.value) for e in f.evidence]


def test_long_resize_is_info_short_one_is_not() -> None:
    def resizing(ago: float) -> dict:
        return pvc(
            "data",
            conditions=[
                {
                    "type": "FileSystemResizePending",
                    "status": "True",
                    "lastTransitionTime": ts(ago),
                    "message": "Waiting for user to (re-)start a pod to finish file system resize",
                }
            ],
        )

    findings = DETECTOR.detect(snap(resizing(3600), storage_class()))
    assert [(f.severity, f.id) for f in findings] == [(Severity.info, pvc_id("data", "FileSystemResizePending"))]
    assert findings[0].title == "PersistentVolumeClaim data has been FileSystemResizePending for 60m"
    assert DETECTOR.detect(snap(resizing(60), storage_class())) == []


def test_missing_storage_class_kind_draws_no_conclusions() -> None:
    # Without StorageClasses, a Pending claim may just be waiting for its consumer.
    assert DETECTOR.detect(snap(pvc("data", phase="Pending", age=900), without=["StorageClass"])) == []
    # ProvisioningFailed is evidence on its own.
    events = [event("PersistentVolumeClaim", "data", "ProvisioningFailed", "no provisioner")]
    findings = DETECTOR.detect(snap(pvc("data", phase="Pending", age=900), events=events, without=["StorageClass"]))
    assert [f.severity for f in findings] == [Severity.critical]


def test_id_stable_when_severity_inputs_change() -> None:
    s = snap(pvc("data", phase="Pending", age=900), storage_class())
    events = [event("PersistentVolumeClaim", "data", "ProvisioningFailed", "boom", count=3)]
    s2 = snap(pvc("data", phase="Pending", age=900), storage_class(), events=events)
    assert DETECTOR.detect(s) == DETECTOR.detect(s)
    assert DETECTOR.detect(s)[0].id == DETECTOR.detect(s2)[0].id
