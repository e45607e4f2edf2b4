"""Job problems: failed Jobs, Jobs burning through retries, suspended Jobs and Jobs running without an end.

A Job a CronJob created stays the finding's resource, with the CronJob as its owner.
"""

from __future__ import annotations

from typing import Any

from infragenius.detectors._controllers import int_or
from infragenius.detectors.base import Problem
from infragenius.detectors.evidence import DOCS, event_evidence, shorten
from infragenius.kube.conditions import conditions_by_type, is_true
from infragenius.kube.meta import meta, ref_of
from infragenius.kube.owners import controller_ref
from infragenius.kube.time import human_duration, seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS = f"{DOCS}/concepts/workloads/controllers/job/"
LONG_RUNNING_SECONDS = 86400.0
#: Failed pods of a still-running Job before it counts as degraded (one flaky failure is not).
RETRY_WARNING_FAILURES = 2


def job_finished(job: Obj) -> str | None:
    """ "Complete" or "Failed" once the Job is done (FailureTarget means failing, pods still stopping)."""
    conds = conditions_by_type(job)
    if is_true(conds.get("Complete")) or is_true(conds.get("SuccessCriteriaMet")):
        return "Complete"
    if is_true(conds.get("Failed")) or is_true(conds.get("FailureTarget")):
        return "Failed"
    return None


def job_started(job: Obj) -> str:
    """When a Job started, for ordering a CronJob's runs (RFC 3339 strings sort in time order)."""
    return (job.get("status") or {}).get("startTime") or meta(job).get("creationTimestamp") or ""


_FAILED_FIX = {
    "DeadlineExceeded": "raise spec.activeDeadlineSeconds or make the work faster",
    "BackoffLimitExceeded": "fix the cause of the pod failures (their logs say why), or raise spec.backoffLimit for "
    "flaky work",
}
_PROBLEMS: dict[str, Problem] = {
    "Failed": Problem(
        Severity.critical,
        "Job {name} failed ({reason}){message}",
        "Read the failed pods' output: kubectl logs -n {ns} job/{name}; then {fix}. A failed Job is not retried: "
        "delete and recreate it (or wait for the CronJob's next run).",
        f"{_DOCS}#pod-backoff-failure-policy",
    ),
    "Suspended": Problem(
        Severity.info,
        "Job {name} is suspended: no pods run until it is resumed",
        'Resume it: kubectl patch job -n {ns} {name} --type=merge -p \'{{"spec":{{"suspend":false}}}}\' (a '
        "queueing system such as Kueue may be holding it on purpose).",
        f"{_DOCS}#suspending-a-job",
    ),
    "Retrying": Problem(
        Severity.warning,
        "Job {name} is retrying: {failed} failed pod(s), backoffLimit {backoff}",
        "Read the failed pods' output (kubectl logs -n {ns} job/{name}); the Job fails for good after {backoff} "
        "failures.",
        f"{_DOCS}#pod-backoff-failure-policy",
    ),
    "LongRunning": Problem(
        Severity.info,
        "Job {name} has been running for {duration} with no activeDeadlineSeconds",
        "Check the Job is making progress (kubectl logs -n {ns} job/{name}); set spec.activeDeadlineSeconds so a "
        "hung run ends instead of holding resources (and, for a CronJob with concurrencyPolicy Forbid, blocking "
        "later runs).",
        f"{_DOCS}#job-termination-and-cleanup",
    ),
}


class _Job:
    """One Job and the evidence its findings share."""

    def __init__(self, snapshot: Snapshot, job: Obj) -> None:
        self.job = job
        self.spec, self.status = job.get("spec") or {}, job.get("status") or {}
        self.ref = ref_of(job, "Job")
        self.ns = self.ref.namespace or snapshot.namespace
        self.owners = snapshot.owner_chain(job)
        self.now = snapshot.taken_at
        self.conds = conditions_by_type(job)
        self.events = event_evidence(snapshot.events_for("Job", self.ref.name))
        self.failed = int_or(self.status.get("failed"))
        self.backoff = int_or(self.spec.get("backoffLimit"), 6)
        self.counts: list[tuple[str, object]] = [
            ("status.active", int_or(self.status.get("active"))),
            ("status.succeeded", int_or(self.status.get("succeeded"))),
            ("status.failed", self.failed),
            ("spec.backoffLimit", self.backoff),
        ]

    def finding(self, problem: str, evidence: list[tuple[str, object]], **fields: Any) -> Finding:
        rule = _PROBLEMS[problem]
        return rule.finding(JobDetector.name, problem, self.ref, evidence, self.owners, ns=self.ns, **fields)


class JobDetector:
    name = "job"
    kinds = frozenset({"Job", "CronJob"})

    def detect(self, snapshot: Snapshot) -> list[Finding]:
        jobs = snapshot.items("Job")
        # Newest successful run per CronJob: a failed run older than it is history, not an outage.
        last_success: dict[str, str] = {}
        for job in jobs:
            ref = controller_ref(job)
            if ref and ref.get("kind") == "CronJob" and job_finished(job) == "Complete":
                key = ref.get("uid") or ref.get("name", "")
                last_success[key] = max(last_success.get(key, ""), job_started(job))
        findings: list[Finding] = []
        for job in jobs:
            findings.extend(self._check(_Job(snapshot, job), last_success))
        return findings

    def _check(self, j: _Job, last_success: dict[str, str]) -> list[Finding]:
        done = job_finished(j.job)
        if done == "Failed":
            return [_failed(j, last_success)]
        if done == "Complete":
            return []
        if j.spec.get("suspend") or is_true(j.conds.get("Suspended")):
            return [j.finding("Suspended", [("spec.suspend", "true"), *j.counts[:1]])]
        out: list[Finding] = []
        if j.failed >= RETRY_WARNING_FAILURES:
            out.append(j.finding("Retrying", [*j.counts, *j.events], failed=j.failed, backoff=j.backoff))
        out.extend(_long_running(j))
        return out


def _failed(j: _Job, last_success: dict[str, str]) -> Finding:
    cond = j.conds.get("Failed") if is_true(j.conds.get("Failed")) else j.conds.get("FailureTarget")
    cond = cond or {}
    reason = cond.get("reason") or "Failed"
    message = cond.get("message") or ""
    cron = controller_ref(j.job)
    superseded = False
    if cron and cron.get("kind") == "CronJob":
        superseded = last_success.get(cron.get("uid") or cron.get("name", ""), "") > job_started(j.job)
    evidence: list[tuple[str, object]] = [
        (f"status.conditions[{cond.get('type')}].reason", reason),
        (f"status.conditions[{cond.get('type')}].message", message),
        *j.counts,
    ]
    if reason == "DeadlineExceeded" and j.spec.get("activeDeadlineSeconds") is not None:
        evidence.append(("spec.activeDeadlineSeconds", j.spec["activeDeadlineSeconds"]))
    evidence.extend(j.events)
    if superseded and cron:
        evidence.append(("later run", f"a newer Job of CronJob {cron.get('name')} succeeded"))
    return j.finding(
        "Failed",
        evidence,
        # Superseded runs of a CronJob are kept for inspection; the CronJob now works.
        severity=Severity.info if superseded else None,
        docs=f"{_DOCS}#job-termination-and-cleanup" if reason == "DeadlineExceeded" else None,
        reason=reason,
        message=f": {shorten(message, 150)}" if message else "",
        fix=_FAILED_FIX.get(reason, "fix the cause in the condition message"),
    )


def _long_running(j: _Job) -> list[Finding]:
    running_for = seconds_since(j.now, j.status.get("startTime"))
    if int_or(j.status.get("active")) <= 0 or j.spec.get("activeDeadlineSeconds") is not None:
        return []
    if running_for is None or running_for <= LONG_RUNNING_SECONDS:
        return []
    evidence: list[tuple[str, object]] = [
        ("status.startTime", j.status.get("startTime")),
        *j.counts[:1],
        ("spec.activeDeadlineSeconds", "not set"),
    ]
    return [j.finding("LongRunning", evidence, duration=human_duration(running_for))]


DETECTOR = JobDetector()
