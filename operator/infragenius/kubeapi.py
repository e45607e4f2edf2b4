"""Raw Kubernetes API requests through the official client's auth, TLS and connection pool.

Used where the typed APIs would cost too much (large LISTs decoded into models)
or cannot express the request (metadata-only lists, merge-patching status).

Transient failures are retried here, a few times within seconds, with exponential
backoff and jitter: 409 Conflict (except on create, where it means AlreadyExists),
429 Too Many Requests (honouring Retry-After), 500/502/503/504, and connections
refused, reset or torn mid-response. Anything else (400, 401, 403, 404, 422, ...)
is raised at once. When the attempts run out, the last error is raised as before,
and the caller's slower retry (Kopf's TemporaryError, a degraded source) takes over.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client

logger = logging.getLogger(__name__)

RETRIABLE_STATUSES = frozenset({409, 429, 500, 502, 503, 504})

# Connections refused (NewConnectionError is a TimeoutError), reset, timed out, or closed in the
# middle of a response. TLS errors are not here: they are raised as ApiException(status=0).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.TimeoutError,
    ConnectionError,
)

RETRIED_ERRORS: tuple[type[BaseException], ...] = (client.ApiException, *TRANSPORT_ERRORS)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one request is repeated.

    The n-th retry waits ``base * factor**(n-1)`` seconds (at most ``max_delay``), shortened by
    up to ``jitter`` of itself at random so that many clients do not retry in step. With
    ``jitter <= 1 - 1/factor`` the waits never shrink from one retry to the next. A Retry-After
    header longer than that wait is obeyed, up to ``max_retry_after``. No retry starts after
    ``deadline`` seconds since the first attempt.
    """

    attempts: int = 5
    base: float = 0.25
    factor: float = 2.0
    max_delay: float = 4.0
    jitter: float = 0.5
    max_retry_after: float = 5.0
    deadline: float = 30.0

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        delay = min(self.max_delay, self.base * self.factor ** (retry - 1))
        return delay * (1 - self.jitter * rand())

    def delay(self, retry: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float:
        wait = self.backoff(retry, rand)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


DEFAULT_POLICY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)


def retriable(method: str, err: BaseException) -> bool:
    """Whether repeating the same request may succeed."""
    if isinstance(err, client.ApiException):
        if err.status == 409:
            return method != "POST"  # on create, 409 is AlreadyExists: an answer, not a race
        return err.status in RETRIABLE_STATUSES
    return isinstance(err, TRANSPORT_ERRORS)


def retry_after_seconds(err: BaseException, now: Callable[[], float] = time.time) -> float | None:
    """The server's Retry-After (seconds or an HTTP date) on an ApiException, if any."""
    headers = getattr(err, "headers", None)
    value = headers.get("Retry-After") if headers else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: Sequence[tuple[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    timeout: tuple[float, float] = (5.0, 60.0),
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    raw: bool = False,
) -> Any:
    """Send one request, retrying transient failures; return the decoded JSON (``raw``: the body's bytes,
    for answers that are not JSON, such as a container's log).

    Raises ``client.ApiException`` for a non-2xx answer (with the response headers), or the
    transport error, once ``policy`` gives up.
    """
    serialized = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=list(query),
        header_params={"Accept": "application/json", **(headers or {})},
        body=body,
        auth_settings=["BearerToken"],
    )
    method_, url, header_params, body_, _ = serialized
    started = clock()
    attempt = 1
    while True:
        try:
            return _send(api, method_, url, header_params, body_, timeout, raw)
        except RETRIED_ERRORS as err:
            if attempt >= policy.attempts or not retriable(method_, err):
                raise
            wait = policy.delay(attempt, retry_after_seconds(err))
            if clock() - started + wait > policy.deadline:
                raise
            logger.warning(
                "%s %s failed (%s); retry %d/%d in %.2fs",
                method_,
                path,
                _describe(err),
                attempt,
                policy.attempts - 1,
                wait,
            )
            sleep(wait)
            attempt += 1


def _send(
    api: client.ApiClient,
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any,
    timeout: tuple[float, float],
    raw: bool = False,
) -> Any:
    """One attempt, through the client's pool but without urllib3's own retries.

    (The client's default urllib3 policy would repeat 429 and 503 answers itself, sleeping for
    as long as their Retry-After says, however long, before the policy above saw them.)
    """
    headers = dict(headers)
    payload: str | bytes | None = None
    if isinstance(body, (str, bytes)):
        payload = body  # already serialized, as the client would send it
    elif body is not None:
        payload = json.dumps(body)  # JSON is also valid YAML, for server-side apply
    if payload is not None:
        headers.setdefault("Content-Type", "application/json")
    try:
        response = api.rest_client.pool_manager.request(
            method,
            url,
            body=payload,
            headers=headers,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            retries=False,
            preload_content=True,
        )
    except urllib3.exceptions.SSLError as tls:  # as the client reports it: a bad certificate does not heal
        raise client.ApiException(status=0, reason=f"SSLError: {tls}") from tls
    data = response.data
    if not 200 <= response.status <= 299:
        failure = client.ApiException(
            status=response.status, reason=response.reason, body=data.decode(errors="replace")
        )
        failure.headers = response.headers
        raise failure
    if raw:
        return data
    return json.loads(data) if data else None


def _describe(err: BaseException) -> str:
    if isinstance(err, client.ApiException):
        return f"{err.status} {err.reason}"
    return f"{type(err).__name__}: {err}"[:200]
