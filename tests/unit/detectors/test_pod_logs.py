"""Pod detector: gathered container logs end up in the matching finding's evidence (and only there)."""

from __future__ import annotations

from infragenius.detectors.pod import DETECTOR
from infragenius.snapshot import ContainerLog
from tests.unit.factories import NS, cstatus, deployment, ev, only, pod, replicaset, snap, terminated, web_pods

CRASH = [cstatus(waiting="CrashLoopBackOff", restarts=7, last=terminated("Error", 1))]
PY_LOG = ContainerLog(
    lines=("Traceback (most recent call last):", "RuntimeError: cannot reach db"), previous=True, errors_found=True
)


def test_crash_loop_finding_carries_the_previous_run_error_lines() -> None:
    pods = web_pods(2, statuses=CRASH, ready=False)
    # The gatherer reads one pod per controller; here the second one, not the example pod of the finding.
    found = DETECTOR.detect(
        snap(deployment("web"), replicaset("web-abc", "web"), pods, logs={(NS, "web-abc-1", "app"): PY_LOG})
    )
    f = only(found, "CrashLoopBackOff")
    assert ev(f)["log:app (previous run)"] == (
        "web-abc-1: Traceback (most recent call last):\nRuntimeError: cannot reach db"
    )


def test_oom_killed_finding_carries_the_killed_run_log() -> None:
    oom = pod("api", statuses=[cstatus(last=terminated("OOMKilled", 137), restarts=1)])
    log = ContainerLog(lines=("java.lang.OutOfMemoryError: Java heap space",), previous=True, errors_found=True)
    f = only(DETECTOR.detect(snap(oom, logs={(NS, "api", "app"): log})), "OOMKilled")
    assert ev(f)["log:app (previous run)"] == "java.lang.OutOfMemoryError: Java heap space"


def test_not_ready_finding_carries_the_current_log_and_says_when_no_error_was_found() -> None:
    unready = pod("api", statuses=[cstatus(ready=False)], ready=False)
    log = ContainerLog(lines=("waiting for db", "still waiting"), previous=False, errors_found=False)
    f = only(DETECTOR.detect(snap(unready, logs={(NS, "api", "app"): log})), "not Ready")
    assert ev(f)["log:app"] == "(no error lines; last lines) waiting for db\nstill waiting"


def test_an_unreadable_log_is_named_in_the_evidence() -> None:
    crashing = pod("api", statuses=CRASH, ready=False)
    log = ContainerLog(previous=True, error="500 Internal Server Error: dial tcp 10.0.0.9:10250: connect: refused")
    f = only(DETECTOR.detect(snap(crashing, logs={(NS, "api", "app"): log})), "CrashLoopBackOff")
    assert ev(f)["log:app (previous run)"] == f"unavailable: {log.error}"


def test_an_empty_log_says_so() -> None:
    crashing = pod("api", statuses=CRASH, ready=False)
    f = only(DETECTOR.detect(snap(crashing, logs={(NS, "api", "app"): ContainerLog(previous=True)})))
    assert ev(f)["log:app (previous run)"] == "(no output)"


def test_long_excerpts_keep_whole_lines_within_the_evidence_bound() -> None:
    crashing = pod("api", statuses=CRASH, ready=False)
    lines = tuple(f"ERROR {n:02d} " + "x" * 280 for n in range(10))
    log = ContainerLog(lines=lines, previous=True, errors_found=True)
    value = ev(only(DETECTOR.detect(snap(crashing, logs={(NS, "api", "app"): log}))))["log:app (previous run)"]
    kept = value.split("\n")
    assert kept == list(lines[: len(kept)]) and 1 < len(kept) < 10  # whole lines, as many as fit
    assert len(value) <= 1024


def test_logs_of_other_containers_or_pods_are_not_attached() -> None:
    crashing = pod("api", statuses=CRASH, ready=False)
    other = {(NS, "api", "sidecar"): PY_LOG, (NS, "other", "app"): PY_LOG}
    f = only(DETECTOR.detect(snap(crashing, logs=other)))
    assert not [e for e in f.evidence if e.source.startswith("log:")]
