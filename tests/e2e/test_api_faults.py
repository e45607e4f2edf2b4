"""API faults a real API server cannot produce on demand, injected with kmock.

The real operator (Kopf's runner with ``infragenius.handlers``) runs against kmock's
Kubernetes emulator (see kmock_support.py). Fault reactions answer chosen requests with
409, 429 or 5xx before they reach the emulated state, or cut a watch stream in the middle
of an event. Each test checks the status the emulator ends with, that the operator retried
(requests counted and timed as they arrived), and that no work was done twice: one
Completed status patch, one AnalysisCompleted event, one successful handler run.

No real cluster is needed, so these tests always run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from kopf.testing import KopfRunner

from infragenius.kubeapi import DEFAULT_POLICY
from infragenius.models.api import GROUP, VERSION
from tests.e2e.analysis_support import running_operator
from tests.e2e.kmock_support import (
    FaultyEmulator,
    ServedKmock,
    emulated_api,
    status_body,
    tear_connection,
)
from tests.e2e.support import wait_for

NS = "shop"
ANALYSES = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/analyses"
PODS = f"/api/v1/namespaces/{NS}/pods"
EVENTS = f"/api/v1/namespaces/{NS}/events"
SLACK = 0.5  # seconds of scheduling noise allowed on top of a chosen wait (2 cores, busy CI)


@pytest.fixture
def api() -> Iterator[ServedKmock[FaultyEmulator]]:
    with emulated_api() as served:
        served.handler.add_namespace(NS)
        # A crash-looping pod: its finding appears only if listing pods eventually worked.
        served.http("POST", PODS, crashlooping_pod("web-1"))
        # The emulator has no kubelet: it would answer pods/log with the pod's JSON. Serve a log instead.
        served.handler.faults[f"get {PODS}/web-1/log"] << CRASH_LOG
        yield served


CRASH_LOG = b"INFO starting\nFATAL config key db.url missing\n"


def crashlooping_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "shop/web:1.0"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": False,
                    "restartCount": 7,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting"}},
                    "lastState": {"terminated": {"reason": "Error", "exitCode": 1}},
                }
            ],
        },
    }


def operator(
    api: ServedKmock[FaultyEmulator], tmp_path: Path, **env: str
) -> contextlib.AbstractContextManager[KopfRunner]:
    """The real operator, in Kopf's test runner, talking to the emulator. Running is written before the work
    starts (not only for runs longer than a second), so faults hit both status writes of every run."""
    env = {"INFRAGENIUS_HEALTH_PORT": "0", "INFRAGENIUS_RUNNING_STATUS_AFTER_SECONDS": "0", **env}
    return running_operator(api.kubeconfig(tmp_path), **env)


def wait_until_watching(api: ServedKmock[FaultyEmulator]) -> None:
    """Wait for the operator's watch on analyses to be open.

    kmock's emulator subscribes a watch to changes only after replaying the existing objects, so
    a change made in between would be lost to that watch. (A real server resumes a watch from a
    resourceVersion and loses nothing.) Tests create their resources once the watch is open.
    """
    wait_for(lambda: api.handler.times("GET", f"/apis/{GROUP}/{VERSION}/analyses")[1:], timeout=15, what="the watch")
    time.sleep(0.5)


def create_analysis(api: ServedKmock[FaultyEmulator], name: str) -> None:
    api.http(
        "POST",
        ANALYSES,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Analysis",
            "metadata": {"name": name, "namespace": NS},
            "spec": {},
        },
    )


def completed(api: ServedKmock[FaultyEmulator], name: str, timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = api.http("GET", f"{ANALYSES}/{name}")
        return obj if (obj.get("status") or {}).get("phase") == "Completed" else None

    return wait_for(check, timeout=timeout, what=f"analysis {name} Completed")


def events_posted(emulator: FaultyEmulator, reason: str) -> list[dict[str, Any]]:
    return [r.data for r in emulator[f"post {EVENTS}"] if (r.data or {}).get("reason") == reason]


def the_one_completion_event(emulator: FaultyEmulator) -> dict[str, Any]:
    """Kopf posts events from a queue: wait for the first, then make sure no second one follows."""
    wait_for(lambda: events_posted(emulator, "AnalysisCompleted"), timeout=10, what="AnalysisCompleted event")
    time.sleep(1.0)
    posted = events_posted(emulator, "AnalysisCompleted")
    assert len(posted) == 1, posted
    assert posted[0]["type"] == "Normal"
    return posted[0]


def accepted_status_patches(emulator: FaultyEmulator, name: str) -> list[dict[str, Any]]:
    """Status patches that got past the faults and changed the emulated object."""
    return [r.data["status"] for r in emulator[f"patch {ANALYSES}/{name}/status"]]


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


def backoff_bounds(retry: int) -> tuple[float, float]:
    """The shortest and longest wait before retry number ``retry`` under the operator's policy."""
    full = min(DEFAULT_POLICY.max_delay, DEFAULT_POLICY.base * DEFAULT_POLICY.factor ** (retry - 1))
    return full * (1 - DEFAULT_POLICY.jitter), full + SLACK


def assert_ends_right(obj: dict[str, Any]) -> None:
    status = obj["status"]
    generation = obj["metadata"]["generation"]
    assert status["phase"] == "Completed"
    assert status["observedGeneration"] == generation
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "AnalysisCompleted", generation)
    # Every source answered in the end: nothing is reported missing, and the pod's problem is found.
    assert status["missing"] == []
    crash = [
        f
        for f in status["findings"]
        if f["resource"]["kind"] == "Pod" and f["resource"]["name"] == "web-1" and "CrashLoopBackOff" in f["title"]
    ]
    assert crash, status["findings"]
    # With the crashed run's log: the operator read it (previous=true) and kept its error line.
    assert {"source": "log:app (previous run)", "value": "FATAL config key db.url missing"} in crash[0]["evidence"]


def handler_runs(runner: KopfRunner) -> tuple[int, int]:
    """(successful, temporarily failed) runs of the Analysis handler, from the operator's log."""
    ok = len(re.findall(r"Handler 'analysis_changed' succeeded", runner.output))
    failed = len(re.findall(r"Handler 'analysis_changed' failed temporarily", runner.output))
    return ok, failed


def test_conflicting_status_patches_are_retried_until_one_lands(
    api: ServedKmock[FaultyEmulator], tmp_path: Path
) -> None:
    emulator = api.handler
    status_path = f"{ANALYSES}/a1/status"
    conflict = status_body(409, "Conflict", "Operation cannot be fulfilled: the object has been modified")
    emulator.faults[f"patch {status_path}"][:3] << 409 << conflict

    with operator(api, tmp_path) as runner:
        wait_until_watching(api)
        create_analysis(api, "a1")
        obj = completed(api, "a1")
        event = the_one_completion_event(emulator)

    assert_ends_right(obj)
    assert event["involvedObject"]["name"] == "a1"
    # Three refusals, then Running and Completed landed; the refused patches changed nothing.
    assert len(emulator.faults[f"patch {status_path}"]) == 5
    landed = accepted_status_patches(emulator, "a1")
    assert [s["phase"] for s in landed] == ["Running", "Completed"]
    waits = gaps(emulator.times("PATCH", status_path)[:4])
    for retry, wait in enumerate(waits, start=1):
        low, high = backoff_bounds(retry)
        assert low <= wait <= high, (retry, waits)
    assert waits[2] > waits[0], waits  # the backoff grows
    assert handler_runs(runner) == (1, 0)  # all within one handler run: nothing repeated


def test_throttled_and_failing_lists_and_patches_are_retried(api: ServedKmock[FaultyEmulator], tmp_path: Path) -> None:
    emulator = api.handler
    status_path = f"{ANALYSES}/a2/status"
    throttled = status_body(429, "TooManyRequests", "too many requests, please try again later")
    emulator.faults[f"get {PODS}"][0:1] << 429 << {"Retry-After": "1"} << throttled
    emulator.faults[f"get {PODS}"][1:3] << 500 << status_body(500, "InternalError", "etcdserver: leader changed")
    (
        emulator.faults[f"patch {status_path}"][0:1]
        << 503
        << status_body(503, "ServiceUnavailable", "apiserver is shutting down")
    )
    (
        emulator.faults[f"patch {status_path}"][1:2]
        << 500
        << status_body(500, "InternalError", "etcdserver: request timed out")
    )

    with operator(api, tmp_path) as runner:
        wait_until_watching(api)
        create_analysis(api, "a2")
        obj = completed(api, "a2")
        the_one_completion_event(emulator)

    assert_ends_right(obj)
    # Pods: 429, 500, 500, then the list; the first wait is the server's Retry-After, then the backoff.
    assert len(emulator.faults[f"get {PODS}"]) == 4
    waits = gaps(emulator.times("GET", PODS))
    assert 1.0 <= waits[0] <= 1.0 + SLACK, waits
    for retry, wait in enumerate(waits[1:], start=2):
        low, high = backoff_bounds(retry)
        assert low <= wait <= high, (retry, waits)
    assert waits[2] > waits[1] - 0.05, waits
    # Status: 503, 500, then Running and Completed.
    assert len(emulator.faults[f"patch {status_path}"]) == 4
    assert [s["phase"] for s in accepted_status_patches(emulator, "a2")] == ["Running", "Completed"]
    assert handler_runs(runner) == (1, 0)


def test_when_retries_run_out_kopf_retries_the_handler_once(api: ServedKmock[FaultyEmulator], tmp_path: Path) -> None:
    emulator = api.handler
    status_path = f"{ANALYSES}/a3/status"
    failures = DEFAULT_POLICY.attempts + 1  # one more than a single call tries
    unavailable = status_body(500, "InternalError", "etcdserver: no leader")
    # Server errors, then connections dropped before any answer: the first call ends with a
    # broken connection, which must become Kopf's short TemporaryError, not its generic 60 s retry.
    emulator.faults[f"patch {status_path}"][0:3] << 500 << unavailable
    emulator.faults[f"patch {status_path}"][3:failures] << tear_connection

    with operator(api, tmp_path) as runner:
        wait_until_watching(api)
        create_analysis(api, "a3")
        obj = completed(api, "a3", timeout=40)
        the_one_completion_event(emulator)

    assert_ends_right(obj)
    times = emulator.times("PATCH", status_path)
    assert len(times) == failures + 2  # the failures, then Running and Completed
    waits = gaps(times)
    # The first call gave up after its attempts; Kopf ran the handler again 5 s later (StatusWriter's delay).
    for retry, wait in enumerate(waits[: DEFAULT_POLICY.attempts - 1], start=1):
        low, high = backoff_bounds(retry)
        assert low <= wait <= high, (retry, waits)
    assert 5.0 <= waits[DEFAULT_POLICY.attempts - 1] <= 5.0 + SLACK + 1, waits
    assert [s["phase"] for s in accepted_status_patches(emulator, "a3")] == ["Running", "Completed"]
    # The failed first run never got past marking itself Running, so nothing was gathered twice.
    assert len(emulator[f"get {PODS}"]) == 1
    assert handler_runs(runner) == (1, 1)
    assert "could not write status: ProtocolError" in runner.output


def test_a_torn_watch_stream_is_reopened_and_the_lost_event_is_seen(
    api: ServedKmock[FaultyEmulator], tmp_path: Path
) -> None:
    emulator = api.handler
    tear_now = asyncio.Event()  # set on the server's loop

    async def until_torn() -> None:
        await tear_now.wait()

    # The first watch of analyses: headers, then silence, then half an event, then the connection drops.
    half_event = b'{"type": "ADDED", "object": {"apiVersion": "infragenius.io/v1alpha1", "kind": "Anal'
    first_watch = emulator.faults[kmock.action.WATCH][kmock.resource(GROUP, VERSION, "analyses")][:1]
    first_watch << (b"", until_torn, half_event, tear_connection)
    watches = emulator.faults[kmock.action.WATCH][kmock.resource(GROUP, VERSION, "analyses")]

    with operator(api, tmp_path) as runner:
        wait_for(lambda: len(watches) == 1, timeout=10, what="the operator's watch on analyses")
        create_analysis(api, "a4")  # its ADDED event goes nowhere: this stream never delivers it
        time.sleep(1.0)
        assert "status" not in api.http("GET", f"{ANALYSES}/a4")
        torn_at = time.monotonic()
        api.call_soon(tear_now.set)
        obj = completed(api, "a4")
        the_one_completion_event(emulator)

    assert_ends_right(obj)
    reopened = [
        t for t, m, p in emulator.arrivals if m == "GET" and p == f"/apis/{GROUP}/{VERSION}/analyses" and t > torn_at
    ]
    assert reopened, "the operator did not reconnect"
    assert reopened[0] - torn_at < 2.0  # Kopf reconnects at once (0.1 s backoff)
    assert len(watches) >= 2
    assert [s["phase"] for s in accepted_status_patches(emulator, "a4")] == ["Running", "Completed"]
    assert handler_runs(runner) == (1, 0)


def kopf_patches(emulator: FaultyEmulator, name: str) -> list[Any]:
    """PATCHes of the object itself (not its status): Kopf's own bookkeeping writes."""
    return [r.data for r in emulator[f"patch {ANALYSES}/{name}"]]


def test_a_quick_run_writes_its_status_once(api: ServedKmock[FaultyEmulator], tmp_path: Path) -> None:
    """With the default settings a run quicker than a second goes straight to Completed, and that one write
    carries Kopf's record of the handled change: no Running write, no PATCH of Kopf's own."""
    emulator = api.handler
    with operator(api, tmp_path, INFRAGENIUS_RUNNING_STATUS_AFTER_SECONDS="1") as runner:
        wait_until_watching(api)
        create_analysis(api, "a6")
        obj = completed(api, "a6")
        the_one_completion_event(emulator)
        time.sleep(2.0)  # the events of that write come back: none may start the run again

    assert_ends_right(obj)
    assert [s["phase"] for s in accepted_status_patches(emulator, "a6")] == ["Completed"]
    assert kopf_patches(emulator, "a6") == []
    record = json.loads(obj["status"]["lastHandledConfiguration"])
    assert record["spec"] == {} or "spec" not in record
    assert handler_runs(runner) == (1, 0)


def test_a_run_longer_than_a_second_shows_running_first(api: ServedKmock[FaultyEmulator], tmp_path: Path) -> None:
    emulator = api.handler
    throttled = status_body(429, "TooManyRequests", "too many requests, please try again later")
    emulator.faults[f"get {PODS}"][0:1] << 429 << {"Retry-After": "2"} << throttled  # the run takes 2 s or more

    with operator(api, tmp_path, INFRAGENIUS_RUNNING_STATUS_AFTER_SECONDS="1") as runner:
        wait_until_watching(api)
        create_analysis(api, "a7")
        obj = completed(api, "a7")
        the_one_completion_event(emulator)

    assert_ends_right(obj)
    landed = accepted_status_patches(emulator, "a7")
    assert [s["phase"] for s in landed] == ["Running", "Completed"]
    assert "lastHandledConfiguration" not in landed[0]  # only the final write records the change as handled
    assert "lastHandledConfiguration" in landed[1]
    assert kopf_patches(emulator, "a7") == []
    assert handler_runs(runner) == (1, 0)


def test_a_run_repeated_after_its_event_posts_no_second_event(api: ServedKmock[FaultyEmulator], tmp_path: Path) -> None:
    """The Completed write fails for longer than one call retries: Kopf runs the handler again, the same run
    posts its event again under the same name, and the API keeps one (AlreadyExists for the repeat)."""
    emulator = api.handler
    status_path = f"{ANALYSES}/a8/status"
    unavailable = status_body(500, "InternalError", "etcdserver: no leader")
    # Patch 0 is Running; then every attempt of the first Completed write fails.
    emulator.faults[f"patch {status_path}"][1 : DEFAULT_POLICY.attempts + 1] << 500 << unavailable

    with operator(api, tmp_path) as runner:
        wait_until_watching(api)
        create_analysis(api, "a8")
        obj = completed(api, "a8", timeout=40)
        time.sleep(1.0)

    assert_ends_right(obj)
    posted = events_posted(emulator, "AnalysisCompleted")
    assert len(posted) == 2 and posted[0]["metadata"]["name"] == posted[1]["metadata"]["name"]
    stored = [e for e in api.http("GET", EVENTS).get("items", []) if e.get("reason") == "AnalysisCompleted"]
    assert len(stored) == 1, stored
    assert handler_runs(runner) == (1, 1)
