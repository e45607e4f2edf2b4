"""CronJob problems: schedules that do not parse or never fire, suspended CronJobs, failing runs, unsafe
starting deadlines.

The schedule check follows the parser the CronJob controller uses (standard 5-field cron
with descriptors): minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC,
day of week 0-6 or SUN-SAT; lists, ranges, steps, ``*`` and ``?``; ``@hourly``-style
macros and ``@every <duration>``; an optional ``TZ=``/``CRON_TZ=`` prefix. Quartz
extensions (seconds field, ``L``, ``W``, ``#``) and day of week 7 are rejected there,
so they are rejected here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from infragenius.detectors.base import Problem
from infragenius.detectors.evidence import DOCS, event_evidence
from infragenius.kube.conditions import conditions_by_type, is_true
from infragenius.kube.meta import meta, name_of, ref_of, uid_of
from infragenius.kube.owners import controller_ref
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS = f"{DOCS}/concepts/workloads/controllers/cron-jobs/"
#: The controller syncs every 10 seconds; a shorter starting deadline can miss every run.
MIN_STARTING_DEADLINE = 10

_MONTHS = {
    name: i
    for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
_DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_FIELDS: tuple[tuple[str, int, int, dict[str, int] | None], ...] = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_UNIT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)"
_DURATION = re.compile(rf"[+-]?(?:0|(?:{_UNIT})+)")
_ZONE = re.compile(r"(?:[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*)?")
_INT = re.compile(r"[+-]?\d+")
#: Longest day of each month (February counts leap years: the 29th does come round).
_MONTH_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


class ScheduleError(ValueError):
    """A schedule the CronJob controller cannot parse."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the time zone prefix if any, and the field values (None for descriptors)."""

    zone: str | None
    values: tuple[frozenset[int], ...] | None = None
    dom_star: bool = False
    dow_star: bool = False

    def never_runs(self) -> bool:
        """True when no date ever matches (e.g. "0 0 31 2 *": February has no 31st).

        Day of month and day of week are ANDed when either is ``*``, else ORed; only the
        AND case with day of week ``*`` can rule out every day.
        """
        if self.values is None or self.dom_star or not self.dow_star:
            return False
        days, months = self.values[2], self.values[3]
        return not any(day <= _MONTH_DAYS[month] for day in days for month in months)


def _number(text: str, names: dict[str, int] | None) -> int:
    if names and text.lower() in names:
        return names[text.lower()]
    if not _INT.fullmatch(text):
        raise ScheduleError(f"failed to parse int from {text}")
    value = int(text)
    if value < 0:
        raise ScheduleError(f"negative number ({value}) not allowed: {text}")
    return value


def _field(text: str, label: str, low: int, high: int, names: dict[str, int] | None) -> tuple[frozenset[int], bool]:
    """Values of one field and whether it is a ``*`` (which changes day matching)."""
    values: set[int] = set()
    star = False
    parts = [p for p in text.split(",") if p]
    if not parts:
        raise ScheduleError(f"{label} field {text!r} has no values")
    for part in parts:
        range_step = part.split("/")
        if len(range_step) > 2:
            raise ScheduleError(f"too many slashes: {part}")
        bounds = range_step[0].split("-")
        if bounds[0] in ("*", "?"):
            start, end, is_star = low, high, True
        else:
            start = _number(bounds[0], names)
            if len(bounds) == 1:
                end = start
            elif len(bounds) == 2:
                end = _number(bounds[1], names)
            else:
                raise ScheduleError(f"too many hyphens: {part}")
            is_star = False
        step = 1
        if len(range_step) == 2:
            step = _number(range_step[1], None)
            if len(bounds) == 1:
                end = high  # "N/step" means "N-max/step"
            if step > 1:
                is_star = False
        if start < low:
            raise ScheduleError(f"{label}: beginning of range ({start}) below minimum ({low}): {part}")
        if end > high:
            raise ScheduleError(f"{label}: end of range ({end}) above maximum ({high}): {part}")
        if start > end:
            raise ScheduleError(f"{label}: beginning of range ({start}) beyond end of range ({end}): {part}")
        if step == 0:
            raise ScheduleError(f"{label}: step of range should be a positive number: {part}")
        values.update(range(start, end + 1, step))
        star = star or is_star
    return frozenset(values), star


def parse_schedule(schedule: str) -> Schedule:
    """Parse a CronJob schedule as the controller does; raises ScheduleError when it cannot."""
    spec = schedule
    if not spec:
        raise ScheduleError("empty spec string")
    zone: str | None = None
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        space = spec.find(" ")
        if space < 0:
            raise ScheduleError("time zone prefix is not followed by a schedule")
        zone = spec[spec.find("=") + 1 : space]
        if not _ZONE.fullmatch(zone):
            raise ScheduleError(f"provided bad location {zone}")
        spec = spec[space:].strip()
    if spec.startswith("@"):
        if spec in _MACROS:
            return Schedule(zone)
        if spec.startswith("@every "):
            if not _DURATION.fullmatch(spec[len("@every ") :]):
                raise ScheduleError(f"failed to parse duration {spec}")
            return Schedule(zone)
        raise ScheduleError(f"unrecognized descriptor: {spec}")
    fields = spec.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: {spec}")
    parsed = [
        _field(text, label, low, high, names) for text, (label, low, high, names) in zip(fields, _FIELDS, strict=True)
    ]
    return Schedule(
        zone,
        tuple(values for values, _ in parsed),
        dom_star=parsed[2][1],
        dow_star=parsed[4][1],
    )


_PROBLEMS: dict[str, Problem] = {
    "InvalidSchedule": Problem(
        Severity.critical,
        "CronJob {name} never runs: schedule {schedule!r} is invalid ({error})",
        "Use five fields: minute hour day-of-month month day-of-week (e.g. '*/15 * * * *', '0 3 * * MON-FRI') or a "
        "macro such as @hourly; no seconds field and no Quartz L/W/#. Put the time zone in spec.timeZone. "
        "kubectl edit cronjob -n {ns} {name}",
        f"{_DOCS}#schedule-syntax",
    ),
    "ScheduleNeverRuns": Problem(
        Severity.critical,
        "CronJob {name} never runs: schedule {schedule!r} names a day that no selected month has",
        "Pick a day of month every selected month has (e.g. 28 for February). kubectl edit cronjob -n {ns} {name}",
        f"{_DOCS}#schedule-syntax",
    ),
    "TimeZoneInSchedule": Problem(
        Severity.info,
        "CronJob {name} sets its time zone inside the schedule ({schedule!r}), which Kubernetes does not support",
        "Move the zone to spec.timeZone (e.g. timeZone: {zone}) and drop the TZ=/CRON_TZ= prefix; newer API "
        "servers reject such schedules on update.",
        f"{_DOCS}#time-zones",
    ),
    "Suspended": Problem(
        Severity.info,
        "CronJob {name} is suspended: no new runs are scheduled",
        "Resume it when intended: kubectl patch cronjob -n {ns} {name} --type=merge -p "
        '\'{{"spec":{{"suspend":false}}}}\'',
        _DOCS,
    ),
    "StartingDeadlineTooShort": Problem(
        Severity.warning,
        "CronJob {name} has startingDeadlineSeconds={deadline}: runs may never be scheduled",
        "The controller checks CronJobs every 10 seconds, so a shorter deadline can make it skip runs. Set it to at "
        "least 10 (or remove it): kubectl patch cronjob -n {ns} {name} --type=merge -p "
        '\'{{"spec":{{"startingDeadlineSeconds":60}}}}\'',
        f"{_DOCS}#job-creation",
    ),
    "LastRunFailed": Problem(
        Severity.warning,
        "CronJob {name}: last run {job} failed ({reason})",
        "Read the failed run's output: kubectl logs -n {ns} job/{job}; fix the cause. Test a run now with: "
        "kubectl create job -n {ns} --from=cronjob/{name} {name}-manual",
        f"{_DOCS}#jobs-history-limits",
    ),
}


class _Cron:
    """One CronJob and what its checks share."""

    def __init__(self, snapshot: Snapshot, cron: Obj) -> None:
        self.spec, self.status = cron.get("spec") or {}, cron.get("status") or {}
        self.ref = ref_of(cron, "CronJob")
        self.ns = self.ref.namespace or snapshot.namespace
        self.owners = snapshot.owner_chain(cron)
        self.schedule = self.spec.get("schedule", "")
        self.events = event_evidence(snapshot.events_for("CronJob", self.ref.name))

    def finding(self, problem: str, evidence: list[tuple[str, object]], **fields: Any) -> Finding:
        rule = _PROBLEMS[problem]
        return rule.finding(
            CronJobDetector.name, problem, self.ref, evidence, self.owners, ns=self.ns, schedule=self.schedule, **fields
        )


class CronJobDetector:
    name = "cronjob"
    kinds = frozenset({"CronJob", "Job"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        runs: dict[str, list[Obj]] = {}
        for job in snapshot.items("Job"):
            ref = controller_ref(job)
            if ref and ref.get("kind") == "CronJob":
                runs.setdefault(ref.get("uid") or ref.get("name", ""), []).append(job)
        findings: list[Finding] = []
        for cron in snapshot.items("CronJob"):
            jobs = runs.get(uid_of(cron), []) or runs.get(name_of(cron), [])
            findings.extend(self._check(snapshot, _Cron(snapshot, cron), jobs))
        return findings

    def _check(self, snapshot: Snapshot, c: _Cron, jobs: list[Obj]) -> list[Finding]:
        out = _schedule(c)
        if c.spec.get("suspend"):
            last = c.status.get("lastScheduleTime") or "never"
            out.append(c.finding("Suspended", [("spec.suspend", "true"), ("status.lastScheduleTime", last)]))
        deadline = c.spec.get("startingDeadlineSeconds")
        if isinstance(deadline, int) and deadline < MIN_STARTING_DEADLINE:
            evidence: list[tuple[str, object]] = [("spec.startingDeadlineSeconds", deadline)]
            out.append(c.finding("StartingDeadlineTooShort", evidence, deadline=deadline))
        if snapshot.has("Job"):
            out.extend(_last_run(c, jobs))
        return out


def _schedule(c: _Cron) -> list[Finding]:
    """At most one finding about the schedule: invalid, never firing, or a zone in the wrong place."""
    try:
        parsed = parse_schedule(c.schedule)
    except ScheduleError as exc:
        return [_invalid(c, str(exc))]
    if parsed.zone is not None and c.spec.get("timeZone"):
        return [_invalid(c, "cannot use both the timeZone field and TZ or CRON_TZ in the schedule")]
    if parsed.never_runs() and parsed.values is not None:
        evidence: list[tuple[str, object]] = [
            ("spec.schedule", c.schedule),
            ("day of month", ",".join(map(str, sorted(parsed.values[2])))),
            ("month", ",".join(map(str, sorted(parsed.values[3])))),
        ]
        return [c.finding("ScheduleNeverRuns", evidence)]
    if parsed.zone is not None:
        evidence = [("spec.schedule", c.schedule), ("spec.timeZone", c.spec.get("timeZone") or "not set")]
        return [c.finding("TimeZoneInSchedule", evidence, zone=parsed.zone or "Etc/UTC")]
    return []


def _invalid(c: _Cron, error: str) -> Finding:
    evidence = [("spec.schedule", c.schedule), ("schedule parse error", error), *c.events]
    return c.finding("InvalidSchedule", evidence, error=error)


def _last_run(c: _Cron, jobs: list[Obj]) -> list[Finding]:
    failed = _last_run_failed(jobs)
    if failed is None:
        return []
    job, cond = failed
    name = name_of(job)
    evidence: list[tuple[str, object]] = [
        ("job", name),
        (f"Job/{name}.status.conditions[{cond.get('type')}].reason", cond.get("reason", "")),
        (f"Job/{name}.status.conditions[{cond.get('type')}].message", cond.get("message", "")),
        ("status.lastScheduleTime", c.status.get("lastScheduleTime") or ""),
        ("status.lastSuccessfulTime", c.status.get("lastSuccessfulTime") or "never"),
        *c.events,
    ]
    return [c.finding("LastRunFailed", evidence, job=name, reason=cond.get("reason", "Failed"))]


def _last_run_failed(jobs: list[Obj]) -> tuple[Obj, Obj] | None:
    """The newest finished run, if it failed (a run still going says nothing yet)."""
    newest: tuple[str, Obj, Obj | None] | None = None
    for job in jobs:
        conds = conditions_by_type(job)
        failed = next((conds[t] for t in ("Failed", "FailureTarget") if is_true(conds.get(t))), None)
        complete = is_true(conds.get("Complete")) or is_true(conds.get("SuccessCriteriaMet"))
        if not failed and not complete:
            continue
        started = (job.get("status") or {}).get("startTime") or meta(job).get("creationTimestamp") or ""
        if newest is None or started > newest[0]:
            newest = (started, job, failed)
    if newest is None or newest[2] is None:
        return None
    return newest[1], newest[2]


DETECTOR = CronJobDetector()
