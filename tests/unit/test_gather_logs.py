"""Container logs as evidence: which containers are read, with which parameters, and what an unreadable
log becomes (served by kmock; the e2e counterpart on a real API server is tests/e2e/test_logs.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest
from kubernetes import client

from infragenius.gather.logs import CRASH, NOT_READY, SOURCE, LogOptions, LogTarget, gather_logs, log_targets
from infragenius.snapshot import GatherStatus
from tests.e2e.kmock_support import status_body
from tests.unit.factories import NOW, NS, cstatus, pod, terminated


def targets(*pods: dict[str, Any], limit: int = 10) -> list[tuple[str, str, bool, int]]:
    return [(t.pod, t.container, t.previous, t.why) for t in log_targets(pods, NOW, limit)]


# --- which containers, previous or current ------------------------------------------------------


def test_a_crash_looping_container_is_read_from_its_previous_run() -> None:
    crashing = pod("web-1", statuses=[cstatus(waiting="CrashLoopBackOff", last=terminated(), restarts=7)], ready=False)
    assert targets(crashing) == [("web-1", "app", True, CRASH)]


def test_a_crash_loop_without_a_finished_run_has_nothing_to_read() -> None:
    crashing = pod("web-1", statuses=[cstatus(waiting="CrashLoopBackOff", restarts=0)], ready=False)
    assert targets(crashing) == []


def test_oom_killed_running_again_reads_the_killed_run() -> None:
    oom = pod("web-1", statuses=[cstatus(last=terminated("OOMKilled", 137), restarts=1)])
    assert targets(oom) == [("web-1", "app", True, CRASH)]


def test_a_container_down_after_its_kill_is_read_from_the_current_run() -> None:
    """state.terminated: the kubelet serves that run as the current log; previous would be the run before it."""
    down = pod("web-1", statuses=[cstatus(terminated=terminated("OOMKilled", 137), restarts=3)], ready=False)
    failed_init = pod(
        "web-2", init_statuses=[cstatus("migrate", terminated=terminated("Error", 2))], statuses=[], ready=False
    )
    assert targets(down, failed_init) == [("web-1", "app", False, CRASH), ("web-2", "migrate", False, CRASH)]


def test_ready_seconds_after_a_crash_reads_the_crashed_run() -> None:
    """No readiness probe: the kubelet reports Ready between two crashes; the previous run is the crash."""
    between = pod(
        "web-1", statuses=[cstatus(restarts=2, ready=True, started_ago=2, last=terminated("Error", 1, ago=3))]
    )
    settled = pod(
        "web-2", statuses=[cstatus(restarts=2, ready=True, started_ago=300, last=terminated("Error", 1, ago=301))]
    )
    assert targets(between, settled) == [("web-1", "app", True, CRASH)]


def test_running_but_unready_is_read_from_the_current_run_after_the_grace() -> None:
    unready = pod("web-1", statuses=[cstatus(ready=False)], ready=False)
    starting = pod("web-2", statuses=[cstatus(ready=False)], ready=False, age=30)
    assert targets(unready, starting) == [("web-1", "app", False, NOT_READY)]


def test_healthy_finished_and_deleted_pods_are_not_read() -> None:
    healthy = pod("web-1")
    done = pod("job-1", phase="Succeeded", statuses=[cstatus(terminated=terminated("Completed", 0))])
    deleting = pod(
        "web-2",
        statuses=[cstatus(waiting="CrashLoopBackOff", last=terminated(), restarts=4)],
        deletionTimestamp="2025-01-15T11:59:00Z",
    )
    assert targets(healthy, done, deleting) == []


def test_one_pod_per_controller_and_crashes_before_unready_within_the_bound() -> None:
    crash = [cstatus(waiting="CrashLoopBackOff", last=terminated(), restarts=5)]
    pods = [
        pod("web-b", ("ReplicaSet", "web-1"), statuses=crash, ready=False),
        pod("web-a", ("ReplicaSet", "web-1"), statuses=crash, ready=False),
        pod("api-a", ("ReplicaSet", "api-1"), statuses=[cstatus(ready=False)], ready=False),
        pod("db-0", ("StatefulSet", "db"), statuses=crash, ready=False),
        pod("lone", statuses=crash, ready=False),
    ]
    chosen = targets(*pods)
    assert chosen[-1] == ("api-a", "app", False, NOT_READY)  # unready after every crash
    assert sorted(c[0] for c in chosen) == ["api-a", "db-0", "lone", "web-a"]  # web-b: same controller as web-a
    assert len(targets(*pods, limit=2)) == 2
    assert all(why == CRASH for *_rest, why in targets(*pods, limit=3))


def test_the_request_is_bounded_and_asks_for_the_previous_run_only_when_wanted() -> None:
    options = LogOptions(tail_lines=200, limit_bytes=65536)
    previous = LogTarget(NS, "web-1", "app", previous=True)
    current = LogTarget(NS, "web-1", "app", previous=False)
    assert previous.path == f"/api/v1/namespaces/{NS}/pods/web-1/log"
    assert previous.query(options) == [
        ("container", "app"),
        ("tailLines", 200),
        ("limitBytes", 65536),
        ("previous", "true"),
    ]
    assert ("previous", "true") not in current.query(options)


# --- against a served API -------------------------------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[tuple[kmock.RawHandler, client.ApiClient]]:
    async with kmock.RawHandler() as handler, kmock.Server(handler) as server:
        with client.ApiClient(client.Configuration(host=str(server.url).rstrip("/"))) as api:
            yield handler, api


def log_path(name: str) -> str:
    return f"/api/v1/namespaces/{NS}/pods/{name}/log"


TRACEBACK = b"""INFO start
Traceback (most recent call last):
  File "/app/main.py", line 3, in <module>
    connect()
RuntimeError: cannot reach db
"""


async def test_logs_are_read_with_bounded_parameters_and_reduced_to_error_lines(served) -> None:
    handler, api = served
    handler[f"get {log_path('web-1')}"] << TRACEBACK
    options = LogOptions(tail_lines=50, limit_bytes=4096)

    logs, report = await gather_logs(api, [LogTarget(NS, "web-1", "app", previous=True)], options)

    (request,) = list(handler[f"get {log_path('web-1')}"])
    assert dict(request.params) == {"container": "app", "tailLines": "50", "limitBytes": "4096", "previous": "true"}
    log = logs[(NS, "web-1", "app")]
    assert log.lines == (
        "Traceback (most recent call last):",
        '  File "/app/main.py", line 3, in <module>',
        "RuntimeError: cannot reach db",
    )
    assert log.previous and log.errors_found and log.error is None
    assert (report.source, report.status, report.count) == (SOURCE, GatherStatus.ok, 1)


async def test_unreachable_kubelets_and_gone_containers_are_no_data_not_a_failed_run(served) -> None:
    handler, api = served
    dial = 'Get "https://10.0.0.9:10250/containerLogs/ns/web-2/app": dial tcp 10.0.0.9:10250: connect: refused'
    handler[f"get {log_path('web-1')}"] << b"ERROR boom\n"
    handler[f"get {log_path('web-2')}"] << 500 << status_body(500, "InternalError", dial)
    handler[f"get {log_path('web-3')}"] << 404 << status_body(404, "NotFound", 'pods "web-3" not found')
    (
        handler[f"get {log_path('web-4')}"]
        << 400
        << status_body(400, "BadRequest", "previous terminated container not found")
    )
    wanted = [LogTarget(NS, f"web-{n}", "app", previous=False) for n in (1, 2, 3, 4)]

    logs, report = await gather_logs(api, wanted, LogOptions())

    assert logs[(NS, "web-1", "app")].lines == ("ERROR boom",)
    assert logs[(NS, "web-2", "app")].error == f"500 Internal Server Error: {dial}"
    assert logs[(NS, "web-3", "app")].error is not None and logs[(NS, "web-3", "app")].error.startswith("404")
    assert logs[(NS, "web-4", "app")].error is not None and "previous terminated" in logs[(NS, "web-4", "app")].error
    assert report.status is GatherStatus.no_data and report.count == 1
    assert report.error is not None and report.error.startswith(
        f"3 of 4 container logs unavailable, e.g. {NS}/web-2/app: 500"
    )


async def test_forbidden_logs_make_the_source_an_error(served) -> None:
    handler, api = served
    forbidden = 'pods "web-1" is forbidden: User "system:serviceaccount:x:op" cannot get resource "pods/log"'
    handler[f"get {log_path('web-1')}"] << 403 << status_body(403, "Forbidden", forbidden)

    logs, report = await gather_logs(api, [LogTarget(NS, "web-1", "app", previous=True)], LogOptions())

    assert logs[(NS, "web-1", "app")].error == f"403 Forbidden: {forbidden}"
    assert report.status is GatherStatus.error and report.count == 0
    assert report.error == f"1 of 1 container logs unavailable, e.g. {NS}/web-1/app: 403 Forbidden: {forbidden}"


async def test_a_slow_log_times_out_while_the_others_are_read(served) -> None:
    handler, api = served

    async def slow(request: kmock.Request) -> bytes:
        await asyncio.sleep(5)
        return b"ERROR too late\n"

    handler[f"get {log_path('web-1')}"] << slow
    handler[f"get {log_path('web-2')}"] << b"FATAL disk full\n"
    wanted = [LogTarget(NS, "web-1", "app", previous=False), LogTarget(NS, "web-2", "app", previous=False)]

    started = time.monotonic()
    logs, report = await gather_logs(api, wanted, LogOptions(timeout=0.5))
    elapsed = time.monotonic() - started

    assert logs[(NS, "web-2", "app")].lines == ("FATAL disk full",)
    assert logs[(NS, "web-1", "app")].error is not None and "Timeout" in logs[(NS, "web-1", "app")].error
    assert report.status is GatherStatus.no_data
    assert elapsed < 4, elapsed  # bounded by the timeout and one retry, not by the slow server


async def test_reads_run_concurrently_up_to_the_limit(served) -> None:
    handler, api = served
    in_flight = 0
    peak = 0

    async def answer(request: kmock.Request) -> bytes:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.2)
        in_flight -= 1
        return b"ERROR x\n"

    for n in range(6):
        handler[f"get {log_path(f'web-{n}')}"] << answer
    wanted = [LogTarget(NS, f"web-{n}", "app", previous=False) for n in range(6)]

    logs, report = await gather_logs(api, wanted, LogOptions(concurrency=2))

    assert report.status is GatherStatus.ok and report.count == 6 and len(logs) == 6
    assert peak == 2


# --- settings -------------------------------------------------------------------------------------


def test_settings_give_the_bounds_and_can_turn_log_reading_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from infragenius.runs.lifecycle import Runtime
    from infragenius.settings import Settings

    def runtime() -> Runtime:
        return Runtime(settings=Settings(), api=client.ApiClient(), slots=asyncio.Semaphore(1))

    assert runtime().log_options() == LogOptions(
        max_containers=10, tail_lines=200, limit_bytes=64 * 1024, concurrency=3, timeout=5.0
    )
    monkeypatch.setenv("INFRAGENIUS_CONTAINER_LOGS_MAX", "2")
    monkeypatch.setenv("INFRAGENIUS_CONTAINER_LOG_TAIL_LINES", "50")
    monkeypatch.setenv("INFRAGENIUS_CONTAINER_LOG_TIMEOUT_SECONDS", "1.5")
    options = runtime().log_options()
    assert options is not None and (options.max_containers, options.tail_lines, options.timeout) == (2, 50, 1.5)
    monkeypatch.setenv("INFRAGENIUS_GATHER_CONTAINER_LOGS", "false")
    assert runtime().log_options() is None  # and analyze(logs=None) never calls pods/log (test_analysis_logs.py)


async def test_runs_close_together_share_a_log_read_that_started_after_their_requests(served) -> None:
    handler, api = served
    handler[f"get {log_path('web-1')}"] << TRACEBACK
    wanted = [LogTarget(NS, "web-1", "app", previous=True)]
    asked = time.monotonic()  # both runs' requests were observed before either read started

    first, second = await asyncio.gather(
        gather_logs(api, wanted, LogOptions(), not_before=asked),
        gather_logs(api, wanted, LogOptions(), not_before=asked),
    )
    # A run whose request came after that read started reads the log again.
    third, _ = await gather_logs(api, wanted, LogOptions(), not_before=time.monotonic() + 1)

    assert first[0] == second[0] == third
    assert len(list(handler[f"get {log_path('web-1')}"])) == 2
