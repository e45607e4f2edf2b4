"""CronJob detector and its schedule parser."""

from __future__ import annotations

import pytest

from infragenius.detectors.cronjob import DETECTOR, ScheduleError, parse_schedule
from infragenius.models.findings import Severity
from tests.unit.factories import (
    DAY,
    complete_job,
    cronjob,
    ev,
    event,
    failed_job,
    healthy_objects,
    job,
    only,
    snap,
)

VALID = [
    "*/15 * * * *",
    "0 3 * * MON-FRI",
    "0 3 * * mon,wed,fri",
    "0 0 1 JAN,JUL *",
    "5/10 * * * *",
    "0 0 * * ?",
    "0-59/5 0-23 1-31 1-12 0-6",
    "30 2 1,15 * *",
    "0 9 * * SUN",
    "@hourly",
    "@daily",
    "@annually",
    "@every 1h30m",
    "TZ=Europe/Berlin 0 3 * * *",
    "CRON_TZ=UTC 0 3 * * *",
    "0 0 29 2 *",
]

INVALID = [
    ("", "empty spec string"),
    ("* * * *", "expected exactly 5 fields, found 4"),
    ("0 0 * * * *", "expected exactly 5 fields, found 6"),
    ("60 * * * *", "minute: end of range (60) above maximum (59)"),
    ("0 24 * * *", "hour: end of range (24) above maximum (23)"),
    ("0 0 0 * *", "day of month: beginning of range (0) below minimum (1)"),
    ("0 0 * 13 *", "month: end of range (13) above maximum (12)"),
    ("0 0 * * 7", "day of week: end of range (7) above maximum (6)"),
    ("0 0 L * *", "failed to parse int from L"),
    ("0 0 * * MON#2", "failed to parse int from MON#2"),
    ("0 0 ? * 1W", "failed to parse int from 1W"),
    ("*/0 * * * *", "step of range should be a positive number"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1)"),
    ("1-2-3 * * * *", "too many hyphens"),
    ("*/5/2 * * * *", "too many slashes"),
    ("-1 * * * *", "failed to parse int from "),
    ("0 0 * * FOO", "failed to parse int from FOO"),
    ("0 0 * JANUARY *", "failed to parse int from JANUARY"),
    ("@fortnightly", "unrecognized descriptor"),
    ("@every soon", "failed to parse duration"),
    ("TZ=Europe/Berlin", "time zone prefix is not followed by a schedule"),
    ("TZ=Bad Zone!! 0 * * * *", "expected exactly 5 fields"),
    ("0 0 , * *", "has no values"),
]


def test_contract() -> None:
    assert DETECTOR.name == "cronjob"
    assert DETECTOR.kinds == frozenset({"CronJob", "Job"})


@pytest.mark.parametrize("schedule", VALID)
def test_valid_schedules_parse(schedule: str) -> None:
    parsed = parse_schedule(schedule)
    assert not parsed.never_runs()


@pytest.mark.parametrize(("schedule", "error"), INVALID)
def test_invalid_schedules_are_rejected(schedule: str, error: str) -> None:
    with pytest.raises(ScheduleError) as exc:
        parse_schedule(schedule)
    assert error in str(exc.value)


def test_parser_values() -> None:
    parsed = parse_schedule("TZ=America/New_York 0,30 9-17/4 * * MON-FRI")
    assert parsed.zone == "America/New_York"
    assert parsed.values is not None
    assert parsed.values[0] == {0, 30}
    assert parsed.values[1] == {9, 13, 17}
    assert parsed.values[4] == {1, 2, 3, 4, 5}
    assert parsed.dom_star and not parsed.dow_star
    assert parse_schedule("5/20 * * * *").values[0] == {5, 25, 45}  # type: ignore[index]


def test_healthy_namespace_gives_nothing() -> None:
    assert DETECTOR.detect(snap(healthy_objects())) == []


def test_invalid_schedule_is_critical() -> None:
    events = [event("CronJob", "backup", "UnparseableSchedule", 'unparseable schedule: "0 0 * * 7"', count=12)]
    f = only(DETECTOR.detect(snap(cronjob("backup", "0 0 * * 7"), events=events)))
    assert f.severity is Severity.critical
    assert (f.resource.kind, f.resource.name) == ("CronJob", "backup")
    assert f.title == (
        "CronJob backup never runs: schedule '0 0 * * 7' is invalid "
        "(day of week: end of range (7) above maximum (6): 7)"
    )
    assert ev(f)["spec.schedule"] == "0 0 * * 7"
    assert ev(f)["event:UnparseableSchedule"] == 'count=12: unparseable schedule: "0 0 * * 7"'
    # Same id whatever the broken schedule is.
    assert only(DETECTOR.detect(snap(cronjob("backup", "0 0 0 0 0 0")))).id == f.id


def test_tz_prefix_with_time_zone_field_is_invalid_and_alone_is_info() -> None:
    both = only(DETECTOR.detect(snap(cronjob("backup", "TZ=UTC 0 3 * * *", time_zone="Europe/Paris"))))
    assert both.severity is Severity.critical and "cannot use both" in both.title
    alone = only(DETECTOR.detect(snap(cronjob("backup", "CRON_TZ=Europe/Paris 0 3 * * *"))))
    assert alone.severity is Severity.info
    assert "timeZone: Europe/Paris" in alone.remediation


def test_schedule_that_never_fires_is_critical() -> None:
    f = only(DETECTOR.detect(snap(cronjob("backup", "0 0 30 2 *"))))
    assert f.severity is Severity.critical
    assert f.title == "CronJob backup never runs: schedule '0 0 30 2 *' names a day that no selected month has"
    # With a day of week too, the fields are ORed: it runs on Mondays in February.
    assert DETECTOR.detect(snap(cronjob("backup", "0 0 30 2 MON"))) == []
    assert DETECTOR.detect(snap(cronjob("backup", "0 0 31 1,2 *"))) == []


def test_suspended_is_info() -> None:
    f = only(DETECTOR.detect(snap(cronjob("backup", suspend=True))))
    assert f.severity is Severity.info
    assert f.title == "CronJob backup is suspended: no new runs are scheduled"


def test_short_starting_deadline_is_a_warning() -> None:
    f = only(DETECTOR.detect(snap(cronjob("backup", starting_deadline=5))))
    assert f.severity is Severity.warning
    assert f.title == "CronJob backup has startingDeadlineSeconds=5: runs may never be scheduled"
    assert ev(f)["spec.startingDeadlineSeconds"] == "5"
    assert only(DETECTOR.detect(snap(cronjob("backup", starting_deadline=3)))).id == f.id
    assert DETECTOR.detect(snap(cronjob("backup", starting_deadline=10))) == []


def test_last_run_failed_is_a_warning() -> None:
    runs = [complete_job("backup-100", cronjob="backup", started_ago=2 * DAY),
            failed_job("backup-200", cronjob="backup", started_ago=DAY)]  # fmt: skip
    f = only(DETECTOR.detect(snap(cronjob("backup"), runs)))
    assert f.severity is Severity.warning
    assert f.title == "CronJob backup: last run backup-200 failed (BackoffLimitExceeded)"
    assert ev(f)["Job/backup-200.status.conditions[Failed].message"] == "Job has reached the specified backoff limit"
    # The id survives the next failed run (a new Job name).
    runs2 = [*runs, failed_job("backup-300", cronjob="backup", started_ago=3600)]
    assert only(DETECTOR.detect(snap(cronjob("backup"), runs2))).id == f.id


def test_last_run_recovered_or_running_is_fine() -> None:
    recovered = [failed_job("backup-100", cronjob="backup", started_ago=2 * DAY),
                 complete_job("backup-200", cronjob="backup", started_ago=DAY)]  # fmt: skip
    assert DETECTOR.detect(snap(cronjob("backup"), recovered)) == []
    # A run in progress is not judged; the newest finished one succeeded.
    running = [*recovered, job("backup-300", cronjob="backup", active=1, started_ago=60)]
    assert DETECTOR.detect(snap(cronjob("backup"), running)) == []


def test_without_jobs_gathered_runs_are_not_judged() -> None:
    s = snap(cronjob("backup"), failed_job("backup-200", cronjob="backup"), without=("Job",))
    assert DETECTOR.detect(s) == []


def test_same_snapshot_twice_gives_identical_findings() -> None:
    s = snap(
        cronjob("backup", "0 0 * * 7", suspend=True, starting_deadline=1), failed_job("backup-1", cronjob="backup")
    )
    first, second = DETECTOR.detect(s), DETECTOR.detect(s)
    assert [f.severity for f in first] == [Severity.critical, Severity.info, Severity.warning, Severity.warning]
    assert first == second
