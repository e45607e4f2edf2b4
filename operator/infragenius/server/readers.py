"""Where the server reads our three kinds from.

WatchCache: one LIST and then a WATCH per kind, cluster-wide, kept in memory; a request reads memory and
never makes its own LIST. DirectReader: namespaced GETs and LISTs with the caller's own credentials, for
`infragenius mcp --stdio` (one local user, who may not be allowed to list cluster-wide).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Protocol

from kubernetes import client, watch

from infragenius.models.api import ANALYSIS, GROUP, INCIDENT_REPORT, SLO_REVIEW, VERSION
from infragenius.server import metrics
from infragenius.server.errors import ErrorCode, ServiceError

log = logging.getLogger(__name__)
PLURALS = (ANALYSIS.plural, SLO_REVIEW.plural, INCIDENT_REPORT.plural)


class RunReader(Protocol):
    async def list(self, plural: str, namespace: str) -> list[dict[str, Any]]: ...

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def ready(self) -> bool: ...


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    """What the server answers from: managedFields and annotations cost memory and are never shown."""
    meta = obj.get("metadata") or {}
    return {
        "kind": obj.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "creationTimestamp": meta.get("creationTimestamp"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "spec": obj.get("spec") or {},
        "status": obj.get("status") or {},
    }


class WatchCache:
    """An informer without Kopf: a thread per kind lists once, then watches from that resourceVersion,
    relisting only when the API server says the version is too old (410 Gone)."""

    def __init__(self, api: client.ApiClient, *, watch_timeout_seconds: int = 300) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._store: dict[str, dict[tuple[str, str], dict[str, Any]]] = {p: {} for p in PLURALS}
        self._lock = threading.Lock()
        self._ready = {p: threading.Event() for p in PLURALS}
        self._stop = threading.Event()
        self._watch_timeout = watch_timeout_seconds
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for plural in PLURALS:
            thread = threading.Thread(target=self._run, args=(plural,), name=f"watch-{plural}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def ready(self) -> bool:
        return all(event.is_set() for event in self._ready.values())

    async def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ready() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return self.ready()

    async def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        self._require_ready(plural)
        with self._lock:
            return [obj for (ns, _), obj in self._store[plural].items() if ns == namespace]

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._require_ready(plural)
        with self._lock:
            return self._store[plural].get((namespace, name))

    def _require_ready(self, plural: str) -> None:
        if not self._ready[plural].is_set():
            raise ServiceError(ErrorCode.unavailable, f"the {plural} cache is still loading; try again shortly")

    def _put(self, plural: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        with self._lock:
            self._store[plural][(meta.get("namespace", ""), meta.get("name", ""))] = _slim(obj)

    def _run(self, plural: str) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                listing: Any = self._custom.list_cluster_custom_object(GROUP, VERSION, plural, _request_timeout=60)
                fresh = {}
                for obj in listing.get("items", []):
                    meta = obj.get("metadata") or {}
                    fresh[(meta.get("namespace", ""), meta.get("name", ""))] = _slim(obj)
                with self._lock:
                    self._store[plural] = fresh
                metrics.CACHE_OBJECTS.labels(plural).set(len(fresh))
                self._ready[plural].set()
                backoff = 1.0
                self._watch(plural, listing["metadata"]["resourceVersion"])
            except Exception as err:  # the API server away or refusing: retry with backoff, keep serving memory
                log.warning("watch %s: %s; retrying in %.0fs", plural, type(err).__name__, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _watch(self, plural: str, resource_version: str) -> None:
        """Watch until the version expires (then return to relist) or the stop flag is set."""
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                self._custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                plural,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self._watch_timeout,
                # The API server ends a watch after timeout_seconds; a connection silent well beyond that is
                # dead (a lost peer sends no FIN): give up on it and watch again.
                _request_timeout=self._watch_timeout + 30,
            )
            for event in stream:
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return
                    raise RuntimeError(f"watch error {obj.get('code')}")
                resource_version = (obj.get("metadata") or {}).get("resourceVersion", resource_version)
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    meta = obj.get("metadata") or {}
                    with self._lock:
                        self._store[plural].pop((meta.get("namespace", ""), meta.get("name", "")), None)
                else:
                    self._put(plural, obj)
                with self._lock:
                    metrics.CACHE_OBJECTS.labels(plural).set(len(self._store[plural]))
                if self._stop.is_set():
                    return


class DirectReader:
    """Reads with the caller's credentials; the API server decides what they may see."""

    def __init__(self, api: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api)

    def ready(self) -> bool:
        return True

    async def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        try:
            listing: Any = await asyncio.to_thread(
                self._custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural, _request_timeout=30
            )
        except client.ApiException as err:
            raise _api_error(err, f"list {plural} in {namespace}") from None
        return [_slim(obj) for obj in listing.get("items", [])]

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: Any = await asyncio.to_thread(
                self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, _request_timeout=30
            )
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise _api_error(err, f"get {plural}/{name} in {namespace}") from None
        return _slim(obj)


def _api_error(err: client.ApiException, what: str) -> ServiceError:
    if err.status in (401, 403):
        return ServiceError(ErrorCode.forbidden, f"the API server refused to {what} for your kubeconfig ({err.status})")
    return ServiceError(ErrorCode.unavailable, f"the API server could not {what} ({err.status})")
