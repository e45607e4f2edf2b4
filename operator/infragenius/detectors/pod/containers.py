"""Container-level problems of one pod: cannot start, crash loops, OOM kills, failed init containers,
restarts."""

from __future__ import annotations

import datetime as dt

from infragenius.detectors.evidence import shorten
from infragenius.detectors.pod.problems import (
    CRASH_MIN_RESTARTS,
    CRASH_RECENT_SECONDS,
    HIGH_RESTARTS,
    RECENT_OOM_SECONDS,
    RECENT_RESTART_SECONDS,
    WAITING_PROBLEMS,
    Details,
    Hit,
    fixed,
)
from infragenius.kube.pods import between_crashes
from infragenius.kube.time import human_duration, seconds_since
from infragenius.models.findings import Severity
from infragenius.snapshot import Obj, Snapshot


def probe_summary(probe: Obj | None) -> str:
    """One line describing a probe, so the reader sees what is being checked."""
    if not probe:
        return "none"
    if "httpGet" in probe:
        get = probe["httpGet"]
        what = f"httpGet {get.get('scheme', 'HTTP')} :{get.get('port')}{get.get('path', '/')}"
    elif "tcpSocket" in probe:
        what = f"tcpSocket :{probe['tcpSocket'].get('port')}"
    elif "grpc" in probe:
        what = f"grpc :{probe['grpc'].get('port')}"
    elif "exec" in probe:
        what = "exec " + " ".join(probe["exec"].get("command") or ())
    else:
        what = "unknown handler"
    return (
        f"{what} period={probe.get('periodSeconds', 10)}s timeout={probe.get('timeoutSeconds', 1)}s "
        f"failureThreshold={probe.get('failureThreshold', 3)}"
    )


def spec_containers(pod: Obj) -> dict[str, Obj]:
    spec = pod.get("spec") or {}
    return {c.get("name", ""): c for c in (*(spec.get("initContainers") or ()), *(spec.get("containers") or ()))}


def container_path(pod: Obj, container: str) -> str:
    spec = pod.get("spec") or {}
    if any(c.get("name") == container for c in spec.get("initContainers") or ()):
        return f"spec.initContainers[{container}]"
    return f"spec.containers[{container}]"


def container_hits(pod: Obj, snapshot: Snapshot, now: dt.datetime) -> list[Hit]:
    status = pod["status"]
    by_problem: dict[str, Hit] = {}
    for list_field, is_init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for cs in status.get(list_field) or ():
            hit = _container_hit(pod, cs, list_field, is_init, snapshot, now)
            if hit is None:
                continue
            first = by_problem.get(hit.problem)
            if first is None:
                by_problem[hit.problem] = hit
            else:  # several containers of one pod with the same problem: one hit, all names
                first.extra.append(hit.container)
                if hit.severity.rank < first.severity.rank:
                    first.severity = hit.severity
    return list(by_problem.values())


def _container_hit(
    pod: Obj, cs: Obj, list_field: str, is_init: bool, snapshot: Snapshot, now: dt.datetime
) -> Hit | None:
    name = cs.get("name", "?")
    state = cs.get("state") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    restarts = cs.get("restartCount") or 0
    reason = waiting.get("reason")
    path = f"status.{list_field}[{name}]"
    oom_last = last.get("reason") == "OOMKilled"

    # A crash loop caused by OOM kills is reported as OOMKilled: the root cause, and the same
    # key whether the container is backing off or briefly running between kills.
    if reason in WAITING_PROBLEMS and not (reason == "CrashLoopBackOff" and oom_last):
        return _waiting_hit(pod, cs, path, reason, waiting, last, restarts, is_init)
    if terminated.get("reason") == "OOMKilled":
        return _oom_hit(pod, cs, path, "state", terminated, snapshot, now, running=False)
    if oom_last:
        return _oom_hit(pod, cs, path, "lastState", last, snapshot, now, running="running" in state)
    if is_init and terminated and terminated.get("exitCode", 0) != 0:
        code = terminated.get("exitCode")
        evidence = [
            (f"{path}.state.terminated.reason", terminated.get("reason", "")),
            (f"{path}.state.terminated.exitCode", code),
        ]
        if terminated.get("message"):
            evidence.append((f"{path}.state.terminated.message", terminated["message"]))
        evidence.append((f"{path}.restartCount", restarts))
        fact = f"init container {name} failed ({terminated.get('reason', 'Error')}, exit code {code})"
        return Hit("InitContainerFailed", Severity.critical, fixed(fact, evidence), name)
    crash = _crash_hit(pod, cs, path, state, last, restarts, now)
    if crash is not None:
        return crash
    if "running" in state and restarts >= HIGH_RESTARTS:
        return _restart_hit(pod, cs, path, last, restarts, snapshot, now)
    return None


def _crash_hit(pod: Obj, cs: Obj, path: str, state: Obj, last: Obj, restarts: int, now: dt.datetime) -> Hit | None:
    """A crash loop seen from restarts and the last termination alone, before or between CrashLoopBackOff.

    Down now after an error exit, restarted before (at least the second crash); or running again but
    not Ready, restarted twice or more, the last error exit within ``CRASH_RECENT_SECONDS``. Same
    problem key as CrashLoopBackOff, so the finding keeps its id as the kubelet flips between states.
    """
    if (pod.get("spec") or {}).get("restartPolicy") == "Never" or (pod.get("status") or {}).get("phase") != "Running":
        return None
    current = state.get("terminated") or {}
    if current:
        which, term, crashed = "state", current, restarts >= 1
    else:
        age = seconds_since(now, last.get("finishedAt"))
        recent = age is None or age <= CRASH_RECENT_SECONDS
        which, term = "lastState", last
        # Without a readiness probe a container is Ready the moment it runs: one that started seconds
        # ago, after crashing again, is still crash-looping (the real kubelet shows this between back-offs).
        crashed = (
            "running" in state
            and (cs.get("ready") is not True or between_crashes(cs, now))
            and restarts >= CRASH_MIN_RESTARTS
            and recent
        )
    if not crashed or not term or term.get("exitCode", 0) == 0:
        return None
    name = cs.get("name", "?")
    evidence: list[tuple[str, object]] = [
        (f"{path}.{which}.terminated.reason", term.get("reason", "")),
        (f"{path}.{which}.terminated.exitCode", term.get("exitCode", "")),
    ]
    if term.get("finishedAt"):
        evidence.append((f"{path}.{which}.terminated.finishedAt", term["finishedAt"]))
    evidence.append((f"{path}.restartCount", restarts))
    if which == "lastState":
        evidence.append((f"{path}.ready", "False"))
    down = "down after" if which == "state" else "running again after"
    fact = (
        f"container {name} keeps crashing ({restarts} restarts, {down} exit {term.get('reason', 'Error')} "
        f"code {term.get('exitCode')}; not yet reported as CrashLoopBackOff)"
    )
    return Hit("CrashLoopBackOff", Severity.critical, fixed(fact, evidence), name)


def _waiting_hit(
    pod: Obj, cs: Obj, path: str, reason: str, waiting: Obj, last: Obj, restarts: int, is_init: bool
) -> Hit:
    name = cs.get("name", "?")
    key = WAITING_PROBLEMS[reason]
    # Init containers block the whole pod; same problem key family, distinct from app containers.
    problem = "Init" + key if is_init else key
    return Hit(
        problem,
        Severity.critical,
        lambda: _waiting_details(pod, cs, path, reason, key, waiting, last, restarts, is_init),
        name,
    )


def _waiting_details(
    pod: Obj, cs: Obj, path: str, reason: str, problem: str, waiting: Obj, last: Obj, restarts: int, is_init: bool
) -> Details:
    name = cs.get("name", "?")
    message = waiting.get("message") or ""
    image = cs.get("image") or spec_containers(pod).get(name, {}).get("image", "")
    evidence: list[tuple[str, object]] = [(f"{path}.state.waiting.reason", reason)]
    if message:
        evidence.append((f"{path}.state.waiting.message", message))
    evidence.append((f"{path}.restartCount", restarts))
    if last:
        evidence.append((f"{path}.lastState.terminated.reason", last.get("reason", "")))
        evidence.append((f"{path}.lastState.terminated.exitCode", last.get("exitCode", "")))
        if last.get("finishedAt"):
            evidence.append((f"{path}.lastState.terminated.finishedAt", last["finishedAt"]))
    if problem in ("ImagePull", "InvalidImageName"):
        evidence.append((f"{container_path(pod, name)}.image", image))

    kind = "init container" if is_init else "container"
    if problem == "CrashLoopBackOff":
        exit_part = f", last exit {last.get('reason', 'Error')} code {last.get('exitCode')}" if last else ""
        fact = f"{kind} {name} is in CrashLoopBackOff ({restarts} restarts{exit_part})"
    elif problem == "ImagePull":
        fact = f"{kind} {name} cannot pull image {image} ({reason})"
    elif problem == "InvalidImageName":
        fact = f"{kind} {name} has an invalid image name {image!r}"
    else:
        fact = f"{kind} {name} cannot start: {reason}" + (f": {shorten(message, 120)}" if message else "")
    return fact, evidence


def _oom_hit(
    pod: Obj,
    cs: Obj,
    path: str,
    which: str,
    term: Obj,
    snapshot: Snapshot,
    now: dt.datetime,
    running: bool,
) -> Hit:
    name = cs.get("name", "?")
    spec = spec_containers(pod).get(name, {})
    limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    finished_age = seconds_since(now, term.get("finishedAt"))
    # Broken now: killed within the hour, or kept down by the kills (crash loop). A pod that ran on
    # after an old kill, or a dead pod from long ago, is a risk or history rather than an outage.
    crash_looping = not running and (pod.get("status") or {}).get("phase") != "Failed"
    if finished_age is None or finished_age <= RECENT_OOM_SECONDS or crash_looping:
        severity = Severity.critical
    elif finished_age <= RECENT_RESTART_SECONDS:
        severity = Severity.warning
    else:
        severity = Severity.info

    def render() -> Details:
        return _oom_details(pod, cs, path, which, term, snapshot, limit, finished_age)

    return Hit("OOMKilled", severity, render, name)


def _oom_details(
    pod: Obj,
    cs: Obj,
    path: str,
    which: str,
    term: Obj,
    snapshot: Snapshot,
    limit: str | None,
    finished_age: float | None,
) -> Details:
    name = cs.get("name", "?")
    evidence: list[tuple[str, object]] = [
        (f"{path}.{which}.terminated.reason", "OOMKilled"),
        (f"{path}.{which}.terminated.exitCode", term.get("exitCode", 137)),
    ]
    if term.get("finishedAt"):
        evidence.append((f"{path}.{which}.terminated.finishedAt", term["finishedAt"]))
    evidence.append((f"{path}.restartCount", cs.get("restartCount") or 0))
    evidence.append((f"{container_path(pod, name)}.resources.limits.memory", limit or "not set"))
    meta = pod.get("metadata") or {}
    metrics = snapshot.metrics.get((meta.get("namespace") or snapshot.namespace, meta.get("name", ""), name))
    if metrics and metrics.memory_working_set_bytes is not None:
        evidence.append(
            ("metric:container_memory_working_set_bytes", f"{metrics.memory_working_set_bytes / 2**20:.0f}Mi")
        )
    if metrics and metrics.memory_limit_bytes:
        evidence.append(("metric:container_spec_memory_limit_bytes", f"{metrics.memory_limit_bytes / 2**20:.0f}Mi"))
    when = f", {human_duration(finished_age)} ago" if finished_age is not None else ""
    fact = f"container {name} was OOMKilled (memory limit {limit or 'not set'}{when})"
    return fact, evidence


def _restart_hit(pod: Obj, cs: Obj, path: str, last: Obj, restarts: int, snapshot: Snapshot, now: dt.datetime) -> Hit:
    name = cs.get("name", "?")
    meta = pod.get("metadata") or {}
    metrics = snapshot.metrics.get((meta.get("namespace") or snapshot.namespace, meta.get("name", ""), name))
    window_restarts = metrics.restarts if metrics else None
    if window_restarts is not None:
        still_restarting = window_restarts > 0
    else:
        last_age = seconds_since(now, last.get("finishedAt"))
        still_restarting = last_age is None or last_age <= RECENT_RESTART_SECONDS
    # Restarts that stopped long ago are hygiene, not a degradation happening now.
    severity = Severity.warning if still_restarting else Severity.info

    def render() -> Details:
        evidence: list[tuple[str, object]] = [(f"{path}.restartCount", restarts)]
        if last:
            evidence.append((f"{path}.lastState.terminated.reason", last.get("reason", "")))
            evidence.append((f"{path}.lastState.terminated.exitCode", last.get("exitCode", "")))
            if last.get("finishedAt"):
                evidence.append((f"{path}.lastState.terminated.finishedAt", last["finishedAt"]))
        if window_restarts is not None:
            evidence.append(
                (
                    "metric:kube_pod_container_status_restarts_total",
                    f"+{window_restarts:g} in {snapshot.metrics_window}",
                )
            )
        exit_part = f"; last exit {last.get('reason', 'Error')} code {last.get('exitCode')}" if last else ""
        return f"container {name} has restarted {restarts} times{exit_part}", evidence

    return Hit("Restarts", severity, render, name)
