"""Job problems: failed Jobs, Jobs burning through retries, suspended Jobs and Jobs running without an end.

A Job a CronJob created stays the finding's resource, with the CronJob as its owner.
"""

from __future__ import annotations

from infragenius.detectors._controllers import int_or
from infragenius.detectors.base import finding
from infragenius.detectors.evidence import DOCS, event_evidence, shorten
from infragenius.kube.conditions import conditions_by_type, is_true
from infragenius.kube.meta import ref_of
from infragenius.kube.owners import controller_ref
from infragenius.kube.time import human_duration, seconds_since
from infragenius.models.findings import Finding, Severity
from infragenius.snapshot import Obj, Snapshot

_DOCS = f"{DOCS}/concepts/workloads/controllers/job/"
LONG_RUNNING_SECONDS = 86400.0
#: Failed pods of a still-running Job before it counts as degraded (one flaky failure is not).
RETRY_WARNING_FAILURES = 2


def job_finished(job: Obj) -> str | None:
    """"Complete" or "Failed" once the Job is done (FailureTarget means failing, pods still stopping)."""
    conds = conditions_by_type(job)
    if is_true(conds.get("Complete")) or is_true(conds.get("SuccessCriteriaMet")):
        return "Complete"
    if is_true(conds.get("Failed")) or is_true(conds.get("FailureTarget")):
        return "Failed"
    return None


def job_started(job: Obj) -> str:
    """When a Job started, for ordering a CronJob's runs (RFC 3339 strings sort in time order)."""
    status = job.get("status") or {}
    return status.get("startTime") or (job.get("metadata") or {}).get("creationTimestamp") or ""


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
            findings.extend(self._check(snapshot, job, last_success))
        return findings

    def _check(self, snapshot: Snapshot, job: Obj, last_success: dict[str, str]) -> list[Finding]:
        status = job.get("status") or {}
        spec = job.get("spec") or {}
        ref = ref_of(job, "Job")
        ns = ref.namespace or snapshot.namespace
        owners = snapshot.owner_chain(job)
        conds = conditions_by_type(job)
        events = event_evidence(snapshot.events_for("Job", ref.name))
        failed_pods = int_or(status.get("failed"))
        backoff = int_or(spec.get("backoffLimit"), 6)
        counts: list[tuple[str, object]] = [
            ("status.active", int_or(status.get("active"))),
            ("status.succeeded", int_or(status.get("succeeded"))),
            ("status.failed", failed_pods),
            ("spec.backoffLimit", backoff),
        ]
        done = job_finished(job)

        if done == "Failed":
            cond = conds.get("Failed") if is_true(conds.get("Failed")) else conds.get("FailureTarget")
            reason = cond.get("reason") or "Failed"
            message = cond.get("message") or ""
            cron = controller_ref(job)
            superseded = False
            if cron and cron.get("kind") == "CronJob":
                newest_ok = last_success.get(cron.get("uid") or cron.get("name", ""), "")
                superseded = newest_ok > job_started(job)
            evidence: list[tuple[str, object]] = [
                (f"status.conditions[{cond.get('type')}].reason", reason),
                (f"status.conditions[{cond.get('type')}].message", message),
                *counts,
            ]
            if reason == "DeadlineExceeded" and spec.get("activeDeadlineSeconds") is not None:
                evidence.append(("spec.activeDeadlineSeconds", spec["activeDeadlineSeconds"]))
            evidence.extend(events)
            if superseded:
                evidence.append(("later run", f"a newer Job of CronJob {cron.get('name')} succeeded"))
            if reason == "DeadlineExceeded":
                fix = "raise spec.activeDeadlineSeconds or make the work faster"
            elif reason == "BackoffLimitExceeded":
                fix = "fix the cause of the pod failures (their logs say why), or raise spec.backoffLimit for flaky work"
            else:
                fix = "fix the cause in the condition message"
            out_title = f"Job {ref.name} failed ({reason})" + (f": {shorten(message, 150)}" if message else "")
            return [
                finding(
                    detector=self.name,
                    # Superseded runs of a CronJob are kept for inspection; the CronJob now works.
                    severity=Severity.info if superseded else Severity.critical,
                    resource=ref,
                    problem="Failed",
                    title=out_title,
                    evidence=evidence,
                    remediation=f"Read the failed pods' output: kubectl logs -n {ns} job/{ref.name}; then {fix}. "
                    "A failed Job is not retried: delete and recreate it (or wait for the CronJob's next run).",
                    docs=f"{_DOCS}#pod-backoff-failure-policy"
                    if reason != "DeadlineExceeded"
                    else f"{_DOCS}#job-termination-and-cleanup",
                    owners=owners,
                )
            ]
        if done == "Complete":
            return []

        out: list[Finding] = []
        if spec.get("suspend") or is_true(conds.get("Suspended")):
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.info,
                    resource=ref,
                    problem="Suspended",
                    title=f"Job {ref.name} is suspended: no pods run until it is resumed",
                    evidence=[("spec.suspend", "true"), *counts[:1]],
                    remediation=f"Resume it: kubectl patch job -n {ns} {ref.name} --type=merge -p "
                    "'{\"spec\":{\"suspend\":false}}' (a queueing system such as Kueue may be holding it on purpose).",
                    docs=f"{_DOCS}#suspending-a-job",
                    owners=owners,
                )
            )
            return out
        if failed_pods >= RETRY_WARNING_FAILURES:
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.warning,
                    resource=ref,
                    problem="Retrying",
                    title=f"Job {ref.name} is retrying: {failed_pods} failed pod(s), backoffLimit {backoff}",
                    evidence=[*counts, *events],
                    remediation=f"Read the failed pods' output (kubectl logs -n {ns} job/{ref.name}); the Job fails "
                    f"for good after {backoff} failures.",
                    docs=f"{_DOCS}#pod-backoff-failure-policy",
                    owners=owners,
                )
            )
        running_for = seconds_since(snapshot.taken_at, status.get("startTime"))
        if (
            int_or(status.get("active")) > 0
            and spec.get("activeDeadlineSeconds") is None
            and running_for is not None
            and running_for > LONG_RUNNING_SECONDS
        ):
            out.append(
                finding(
                    detector=self.name,
                    severity=Severity.info,
                    resource=ref,
                    problem="LongRunning",
                    title=f"Job {ref.name} has been running for {human_duration(running_for)} with no activeDeadlineSeconds",
                    evidence=[
                        ("status.startTime", status.get("startTime")),
                        *counts[:1],
                        ("spec.activeDeadlineSeconds", "not set"),
                    ],
                    remediation="Check the Job is making progress (kubectl logs -n "
                    f"{ns} job/{ref.name}); set spec.activeDeadlineSeconds so a hung run ends instead of holding "
                    "resources (and, for a CronJob with concurrencyPolicy Forbid, blocking later runs).",
                    docs=f"{_DOCS}#job-termination-and-cleanup",
                    owners=owners,
                )
            )
        return out


DETECTOR = JobDetector()
