"""kubeapi.request's retry policy, against a real HTTP server (kmock) answering with scripted faults.

Waits are recorded instead of slept, so the exact delays chosen can be checked quickly; the
operator-level tests in tests/e2e/test_api_faults.py measure them for real.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import socket
from collections.abc import Iterator

import kmock
import pytest
import urllib3
from kubernetes import client

from infragenius import kubeapi
from infragenius.kubeapi import RetryPolicy
from tests.e2e.kmock_support import ServedKmock, status_body, tear_connection

POLICY = kubeapi.DEFAULT_POLICY


@pytest.fixture
def server() -> Iterator[ServedKmock[kmock.RawHandler]]:
    with ServedKmock(kmock.RawHandler) as served:
        yield served


@pytest.fixture
def api(server: ServedKmock[kmock.RawHandler]) -> Iterator[client.ApiClient]:
    configuration = client.Configuration(host=server.url)
    with client.ApiClient(configuration) as api_client:
        yield api_client


def refuse(code: int, reason: str) -> dict:
    return status_body(code, reason, f"scripted {code}")


class Clock:
    """Records the waits instead of sleeping, and lets the time they would take pass."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def call(
    api: client.ApiClient, method: str = "GET", path: str = "/things", policy: RetryPolicy = POLICY
) -> tuple[object, list[float]]:
    clock = Clock()
    body = {"status": {"phase": "Completed"}} if method != "GET" else None
    headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else None
    result = kubeapi.request(
        api, method, path, body=body, headers=headers, policy=policy, sleep=clock.sleep, clock=clock.monotonic
    )
    return result, clock.waits


def within_schedule(waits: list[float], policy: RetryPolicy = POLICY) -> None:
    for retry, wait in enumerate(waits, start=1):
        full = min(policy.max_delay, policy.base * policy.factor ** (retry - 1))
        assert full * (1 - policy.jitter) <= wait <= full, (retry, wait)
    assert waits == sorted(waits), waits


def test_server_errors_are_retried_with_growing_jittered_waits(server, api) -> None:
    h = server.handler
    # Slices count the requests this filter has seen: the n-th request gets the n-th answer.
    h["get /things"][0:1] << 500 << refuse(500, "InternalError")
    h["get /things"][1:2] << 502 << b"bad gateway"
    h["get /things"][2:3] << 503 << refuse(503, "ServiceUnavailable")
    h["get /things"][3:4] << 504 << refuse(504, "Timeout")
    h["get /things"] << {"items": [{"metadata": {"name": "a"}}]}

    result, waits = call(api)

    assert result == {"items": [{"metadata": {"name": "a"}}]}
    assert len(h["get /things"]) == 5
    assert len(waits) == 4
    within_schedule(waits)


def test_too_many_requests_waits_as_long_as_retry_after_says(server, api) -> None:
    h = server.handler
    h["get /things"][:1] << 429 << {"Retry-After": "2"} << refuse(429, "TooManyRequests")
    h["get /things"][1:2] << 429 << {"Retry-After": "3600"} << refuse(429, "TooManyRequests")
    h["get /things"] << {"items": []}

    result, waits = call(api)

    assert result == {"items": []}
    assert len(h["get /things"]) == 3
    assert waits[0] == 2.0  # longer than the backoff (at most 0.25 s): the server's word wins
    assert waits[1] == POLICY.max_retry_after  # an hour is capped: Kopf's own retry is the slower path


def test_conflicts_on_patches_are_retried(server, api) -> None:
    h = server.handler
    path = "/apis/infragenius.io/v1alpha1/namespaces/ns/analyses/a/status"
    h[f"patch {path}"][:3] << 409 << refuse(409, "Conflict")
    h[f"patch {path}"] << {"status": {"phase": "Completed"}}

    result, waits = call(api, "PATCH", path)

    assert result == {"status": {"phase": "Completed"}}
    assert len(h[f"patch {path}"]) == 4
    assert len(waits) == 3
    within_schedule(waits)


def test_conflict_on_create_means_already_exists_and_is_not_retried(server, api) -> None:
    h = server.handler
    h["post /things"] << 409 << refuse(409, "AlreadyExists")

    with pytest.raises(client.ApiException) as caught:
        call(api, "POST")

    assert caught.value.status == 409
    assert len(h["post /things"]) == 1


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(server, api, code: int) -> None:
    h = server.handler
    h["patch /things/a"] << code << refuse(code, "Refused")

    with pytest.raises(client.ApiException) as caught:
        call(api, "PATCH", "/things/a")

    assert caught.value.status == code
    assert len(h["patch /things/a"]) == 1


def test_after_the_last_attempt_the_error_is_raised_with_its_headers(server, api) -> None:
    h = server.handler
    h["get /things"] << 503 << {"Retry-After": "1"} << refuse(503, "ServiceUnavailable")

    with pytest.raises(client.ApiException) as caught:
        call(api)

    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "1"
    assert len(h["get /things"]) == POLICY.attempts
    assert len(h["get /things"]) == 5


def test_no_retry_starts_past_the_deadline(server, api) -> None:
    h = server.handler
    h["get /things"] << 429 << {"Retry-After": "4"} << refuse(429, "TooManyRequests")
    policy = RetryPolicy(attempts=10, deadline=9.0)

    with pytest.raises(client.ApiException):
        call(api, policy=policy)

    # 4 + 4 s of waiting fit in 9 s; a third wait of 4 s would not.
    assert len(h["get /things"]) == 3


def test_a_connection_torn_before_the_answer_is_retried(server, api) -> None:
    h = server.handler
    h["patch /things/a"][:1] << tear_connection
    h["patch /things/a"] << {"ok": True}

    result, waits = call(api, "PATCH", "/things/a")

    assert result == {"ok": True}
    assert len(h["patch /things/a"]) == 2
    assert len(waits) == 1


def test_a_body_torn_in_the_middle_is_retried(server, api) -> None:
    h = server.handler
    h["get /things"][:1] << (b'{"items": [{"metadata": ', tear_connection)
    h["get /things"] << {"items": []}

    result, waits = call(api)

    assert result == {"items": []}
    assert len(h["get /things"]) == 2
    assert len(waits) == 1


def test_a_refused_connection_is_retried_then_raised() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
    clock = Clock()
    with client.ApiClient(configuration) as api_client, pytest.raises(urllib3.exceptions.NewConnectionError):
        kubeapi.request(api_client, "GET", "/things", sleep=clock.sleep, clock=clock.monotonic)
    assert len(clock.waits) == POLICY.attempts - 1
    within_schedule(clock.waits)


def test_bodies_are_sent_as_json_unless_already_serialized(server, api) -> None:
    h = server.handler
    h["post /things"] << {"ok": True}

    kubeapi.request(api, "POST", "/things", body={"metadata": {"name": "a"}})
    kubeapi.request(
        api, "POST", "/things", body="kind: Thing\n", headers={"Content-Type": "application/apply-patch+yaml"}
    )

    first, second = h["post /things"]
    assert first.data == {"metadata": {"name": "a"}}
    assert first.headers["Content-Type"] == "application/json"
    assert second.body == b"kind: Thing\n"
    assert second.headers["Content-Type"] == "application/apply-patch+yaml"


def test_waits_never_shrink_and_stay_within_bounds() -> None:
    policy = RetryPolicy(attempts=8, base=0.25, factor=2.0, max_delay=4.0, jitter=0.5)
    for rand in (lambda: 0.0, lambda: 0.999999, lambda: 0.5):
        waits = [policy.backoff(n, rand) for n in range(1, 8)]
        assert waits == sorted(waits)
        assert all(0.125 <= w <= 4.0 for w in waits)
    # With the worst draws (full wait, then the shortest), the waits still do not shrink.
    assert policy.backoff(1, lambda: 0.0) <= policy.backoff(2, lambda: 0.999999)
    assert policy.backoff(7, lambda: 0.0) == 4.0


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    def error(value: str | None) -> client.ApiException:
        err = client.ApiException(status=429, reason="TooManyRequests")
        err.headers = {"Retry-After": value} if value is not None else {}
        return err

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    later = email.utils.format_datetime(now + dt.timedelta(seconds=7), usegmt=True)
    assert kubeapi.retry_after_seconds(error("3")) == 3.0
    assert kubeapi.retry_after_seconds(error("1.5")) == 1.5
    assert kubeapi.retry_after_seconds(error(later), now=now.timestamp) == 7.0
    assert kubeapi.retry_after_seconds(error("soon")) is None
    assert kubeapi.retry_after_seconds(error(None)) is None
    assert kubeapi.retry_after_seconds(ValueError("no headers")) is None
