"""Logs of a few failing containers (``pods/log``), reduced to their error lines for the findings' evidence.

Only containers whose state says something went wrong are read: crash-looping, OOM-killed, failed init
containers, and running containers that are not Ready. One container per controller and container name
(its pods crash alike), at most ``max_containers`` per run, a few at a time, each read bounded by
``tailLines``, ``limitBytes`` and a timeout. A restarted container's *previous* log is read: the current
one belongs to a run that has not crashed (yet).

Logs are often unreadable for reasons that are no fault of the operator (the node's kubelet is down, the
container is gone, nodes that run no kubelet at all), so those make the source ``no_data``; only an
authorisation failure (401/403, a setup problem) makes it ``error``. Either way the run goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from infragenius import kubeapi
from infragenius.gather import shared
from infragenius.gather.kube import describe_api_error
from infragenius.kube.logs import LogExcerpt, decode, error_lines
from infragenius.kube.meta import Obj, meta
from infragenius.kube.owners import controller_ref
from infragenius.kube.pods import between_crashes, is_starting, pod_ready
from infragenius.snapshot import ContainerLog, GatherResult, GatherStatus, MetricsKey

SOURCE = "pod-logs"
#: One retry at most: an unreachable kubelet does not come back within a read's timeout.
LOG_RETRY = kubeapi.RetryPolicy(attempts=2, base=0.25, max_delay=0.5, deadline=2.0)
#: Why a container's log is wanted, most telling first (this order spends the budget).
CRASH, NOT_READY = 0, 1


@dataclass(frozen=True)
class LogOptions:
    """The bounds of one run's log reads (from the operator's settings, or the CLI's defaults)."""

    max_containers: int = 10
    tail_lines: int = 200
    limit_bytes: int = 64 * 1024
    concurrency: int = 3
    timeout: float = 5.0


@dataclass(frozen=True)
class LogTarget:
    """One container whose log a run reads."""

    namespace: str
    pod: str
    container: str
    #: Read the log of the run before the current one (``previous=true``).
    previous: bool
    why: int = CRASH

    @property
    def key(self) -> MetricsKey:
        return (self.namespace, self.pod, self.container)

    def query(self, options: LogOptions) -> list[tuple[str, Any]]:
        query: list[tuple[str, Any]] = [
            ("container", self.container),
            ("tailLines", options.tail_lines),
            ("limitBytes", options.limit_bytes),
        ]
        if self.previous:
            query.append(("previous", "true"))
        return query

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}/log"


def _container_target(pod: Obj, cs: Obj, is_init: bool, now: dt.datetime) -> tuple[int, bool] | None:
    """(why, previous) when this container's log should be read, else None."""
    state = cs.get("state") or {}
    terminated = state.get("terminated") or {}
    waiting = state.get("waiting") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    # The kubelet serves the terminated run itself while a container is down; once it runs (or waits to run)
    # again, the crashed run is the previous one.
    previous = not terminated and bool(last)
    if terminated.get("reason") == "OOMKilled" or last.get("reason") == "OOMKilled":
        return CRASH, previous
    if waiting.get("reason") == "CrashLoopBackOff":
        return (CRASH, previous) if last else None  # no run yet: nothing to read
    if terminated and terminated.get("exitCode", 0) != 0:
        if is_init or (pod.get("spec") or {}).get("restartPolicy") == "Never" or (cs.get("restartCount") or 0) >= 1:
            return CRASH, False
        return None
    if not is_init and between_crashes(cs, now):
        return CRASH, True  # running again (Ready for want of a probe) seconds after crashing
    if "running" in state and not cs.get("ready") and not is_init:
        if last and last.get("exitCode", 0) != 0 and (cs.get("restartCount") or 0) >= 1:
            return CRASH, True  # between crashes: running again, not yet Ready
        if not pod_ready(pod) and not is_starting(pod, now):
            return NOT_READY, False
    return None


def log_targets(pods: Iterable[Obj], now: dt.datetime, max_containers: int) -> list[LogTarget]:
    """The containers worth reading, most telling first: one per (controller, container, why), at most
    ``max_containers``. Pure: reads the pods' status only."""
    found: list[tuple[int, str, str, LogTarget]] = []
    for pod in pods:
        pod_meta = meta(pod)
        status = pod.get("status") or {}
        if pod_meta.get("deletionTimestamp") or status.get("phase") == "Succeeded":
            continue
        namespace, name = pod_meta.get("namespace") or "", pod_meta.get("name") or ""
        if not namespace or not name:
            continue
        group = (controller_ref(pod) or {}).get("uid") or f"{namespace}/{name}"
        for list_field, is_init in (("initContainerStatuses", True), ("containerStatuses", False)):
            for cs in status.get(list_field) or ():
                wanted = _container_target(pod, cs, is_init, now)
                if wanted is not None and cs.get("name"):
                    why, previous = wanted
                    target = LogTarget(namespace, name, cs["name"], previous, why)
                    found.append((why, group, name, target))
    found.sort(key=lambda item: (item[0], item[1], item[2], item[3].container))
    chosen: list[LogTarget] = []
    seen: set[tuple[str, str, int]] = set()
    for why, group, _name, target in found:
        if (group, target.container, why) in seen:
            continue  # another pod of the same controller: its log says the same
        seen.add((group, target.container, why))
        chosen.append(target)
        if len(chosen) >= max_containers:
            break
    return chosen


def _read(api: client.ApiClient, target: LogTarget, options: LogOptions) -> bytes:
    data: bytes = kubeapi.request(
        api,
        "GET",
        target.path,
        query=target.query(options),
        headers={"Accept": "text/plain, */*"},
        timeout=(min(5.0, options.timeout), options.timeout),
        policy=LOG_RETRY,
        raw=True,
    )
    return data[: options.limit_bytes]  # the server's limitBytes, enforced here too


def _read_excerpt(api: client.ApiClient, target: LogTarget, options: LogOptions) -> LogExcerpt:
    """Read and reduce in the worker thread: scanning up to ``limit_bytes`` of text stays off the event loop."""
    return error_lines(decode(_read(api, target, options)))


async def _one(
    api: client.ApiClient, target: LogTarget, options: LogOptions, limit: asyncio.Semaphore
) -> tuple[ContainerLog, int | None]:
    """The container's log, or why it is missing with the HTTP status (None: no answer at all)."""
    async with limit:
        try:
            # The read timeout bounds the worker thread; this bounds the wait for it, retries included.
            excerpt = await asyncio.wait_for(
                asyncio.to_thread(_read_excerpt, api, target, options), options.timeout + LOG_RETRY.deadline + 1
            )
        except client.ApiException as err:
            return ContainerLog(previous=target.previous, error=describe_api_error(err)[:300]), err.status
        except Exception as err:  # timeouts and connection errors come in many types; all are data here
            return ContainerLog(previous=target.previous, error=f"{type(err).__name__}: {err}"[:300]), None
    return ContainerLog(lines=excerpt.lines, previous=target.previous, errors_found=excerpt.errors_found), None


async def gather_logs(
    api: client.ApiClient, targets: list[LogTarget], options: LogOptions, not_before: float | None = None
) -> tuple[dict[MetricsKey, ContainerLog], GatherResult]:
    """Read the targets' logs concurrently; never raises. Failures are kept per container and summed up.

    ``not_before`` as for the LISTs (:mod:`infragenius.gather.shared`): a read of the same log with the same
    bounds that started since then is shared (the analyses of one broken namespace read the same logs).
    """
    started = time.perf_counter()
    limit = asyncio.Semaphore(options.concurrency)
    reads = shared.for_client(api) if not_before is not None else None

    async def one(target: LogTarget) -> tuple[ContainerLog, int | None]:
        if reads is None:
            return await _one(api, target, options, limit)
        key = ("LOG", target.path, tuple(target.query(options)), options.timeout)
        answer: tuple[ContainerLog, int | None] = await reads.read(
            key, lambda: _one(api, target, options, limit), not_before
        )
        return answer

    answers = await asyncio.gather(*(one(t) for t in targets))
    logs = {t.key: log for t, (log, _status) in zip(targets, answers, strict=True)}
    failed = [(t, log, code) for t, (log, code) in zip(targets, answers, strict=True) if log.error is not None]
    seconds = time.perf_counter() - started
    read = len(targets) - len(failed)
    if not failed:
        return logs, GatherResult(SOURCE, GatherStatus.ok, count=read, seconds=seconds)
    forbidden = [f for f in failed if f[2] in (401, 403)]
    target, log, _code = (forbidden or failed)[0]
    message = (
        f"{len(failed)} of {len(targets)} container logs unavailable, e.g. "
        f"{target.namespace}/{target.pod}/{target.container}: {log.error}"
    )
    status = GatherStatus.error if forbidden else GatherStatus.no_data
    return logs, GatherResult(SOURCE, status, count=read, seconds=seconds, error=message[:500])
