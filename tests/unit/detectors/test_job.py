"""Job detector: failed Jobs (critical unless a later CronJob run succeeded), retries, suspended and endless Jobs."""

from __future__ import annotations

from infragenius.detectors.job import DETECTOR
from infragenius.models.findings import ResourceRef, Severity
from tests.unit.factories import (
    DAY,
    complete_job,
    cond,
    cronjob,
    ev,
    event,
    failed_job,
    healthy_objects,
    job,
    only,
    snap,
)


def test_contract() -> None:
    assert DETECTOR.name == "job"
    assert DETECTOR.kinds == frozenset({"Job", "CronJob"})


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(healthy_objects())) == []


def test_backoff_limit_exceeded_is_critical() -> None:
    events = [event("Job", "etl", "BackoffLimitExceeded", "Job has reached the specified backoff limit", count=1)]
    f = only(DETECTOR.detect(snap(failed_job("etl", failed=7), events=events)))
    assert f.severity is Severity.critical
    assert (f.resource.kind, f.resource.name) == ("Job", "etl")
    assert f.title == "Job etl failed (BackoffLimitExceeded): Job has reached the specified backoff limit"
    e = ev(f)
    assert e["status.conditions[Failed].reason"] == "BackoffLimitExceeded"
    assert e["status.failed"] == "7"
    assert e["spec.backoffLimit"] == "6"
    assert e["event:BackoffLimitExceeded"] == "count=1: Job has reached the specified backoff limit"
    assert "kubectl logs -n shop job/etl" in f.remediation
    assert f.owners == []
    # The id does not depend on the failure count.
    assert only(DETECTOR.detect(snap(failed_job("etl", failed=9)))).id == f.id


def test_deadline_exceeded_shows_the_deadline() -> None:
    f = only(DETECTOR.detect(snap(failed_job("etl", "DeadlineExceeded", active_deadline=600, failed=1))))
    assert f.severity is Severity.critical
    assert f.title == "Job etl failed (DeadlineExceeded): Job was active longer than specified deadline"
    assert ev(f)["spec.activeDeadlineSeconds"] == "600"
    assert f.docs and f.docs.endswith("#job-termination-and-cleanup")


def test_cronjob_run_keeps_the_job_as_resource_with_the_cronjob_as_owner() -> None:
    f = only(DETECTOR.detect(snap(cronjob("backup"), failed_job("backup-200", cronjob="backup"))))
    assert (f.resource.kind, f.resource.name) == ("Job", "backup-200")
    assert f.owners == [ResourceRef(kind="CronJob", name="backup", namespace="shop")]
    assert f.severity is Severity.critical


def test_failed_run_superseded_by_a_later_success_is_info() -> None:
    old_failure = failed_job("backup-100", cronjob="backup", started_ago=2 * DAY)
    later_ok = complete_job("backup-200", cronjob="backup", started_ago=DAY)
    f = only(DETECTOR.detect(snap(cronjob("backup"), old_failure, later_ok)))
    assert f.severity is Severity.info
    assert ev(f)["later run"] == "a newer Job of CronJob backup succeeded"
    # A success older than the failure does not help.
    older_ok = complete_job("backup-050", cronjob="backup", started_ago=3 * DAY)
    assert only(DETECTOR.detect(snap(cronjob("backup"), old_failure, older_ok))).severity is Severity.critical


def test_failure_target_counts_as_failed() -> None:
    j = job("etl",
            conditions=[cond("FailureTarget", "True", "BackoffLimitExceeded",
                             "Job has reached the specified backoff limit")],
            failed=7)  # fmt: skip
    f = only(DETECTOR.detect(snap(j)))
    assert f.severity is Severity.critical and f.id == only(DETECTOR.detect(snap(failed_job("etl")))).id


def test_retrying_job_is_a_warning() -> None:
    f = only(DETECTOR.detect(snap(job("etl", active=1, failed=3))))
    assert f.severity is Severity.warning
    assert f.title == "Job etl is retrying: 3 failed pod(s), backoffLimit 6"
    # One failure may be a flake.
    assert DETECTOR.detect(snap(job("etl", active=1, failed=1))) == []


def test_suspended_job_is_info() -> None:
    f = only(DETECTOR.detect(snap(job("etl", suspend=True))))
    assert f.severity is Severity.info
    assert f.title == "Job etl is suspended: no pods run until it is resumed"


def test_long_running_job_without_deadline_is_info() -> None:
    f = only(DETECTOR.detect(snap(job("etl", active=1, started_ago=2 * DAY))))
    assert f.severity is Severity.info
    assert f.title == "Job etl has been running for 2d with no activeDeadlineSeconds"
    assert DETECTOR.detect(snap(job("etl", active=1, started_ago=2 * DAY, active_deadline=3 * DAY))) == []
    assert DETECTOR.detect(snap(job("etl", active=1, started_ago=3600))) == []


def test_complete_and_unstarted_jobs_say_nothing() -> None:
    assert DETECTOR.detect(snap(complete_job("etl", failed=2))) == []
    fresh = job("etl")
    fresh["status"] = {}
    assert DETECTOR.detect(snap(fresh)) == []


def test_without_cronjobs_gathered_the_owner_is_still_named() -> None:
    f = only(DETECTOR.detect(snap(failed_job("backup-200", cronjob="backup"), without=("CronJob",))))
    assert f.owners == [ResourceRef(kind="CronJob", name="backup", namespace="shop")]


def test_same_snapshot_twice_gives_identical_findings() -> None:
    s = snap(failed_job("etl"), job("load", active=1, failed=2), job("sync", suspend=True))
    first, second = DETECTOR.detect(s), DETECTOR.detect(s)
    assert [f.severity for f in first] == [Severity.critical, Severity.warning, Severity.info]
    assert first == second
