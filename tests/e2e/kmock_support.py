"""An in-memory Kubernetes API (kmock's emulator) that can refuse or tear requests on demand.

The real API server cannot be made to answer 409, 429 or 500, or to cut a watch stream in
the middle of an event, when a test wants it. kmock's ``KubernetesEmulator`` keeps objects
in memory and serves discovery, LIST, WATCH, GET, POST and merge-PATCH; ``FaultyEmulator``
puts a second kmock handler, ``faults``, in front of it. A request that a fault reaction
matches is answered by that reaction and never reaches the emulated state (a refused
PATCH changes nothing, as with a real server); every other request passes through.

Kopf relies on a few server behaviours the plain emulator leaves out; ``FaultyEmulator``
adds them: a fresh ``resourceVersion`` on every write (Kopf tells its own patches' echoes
from older events by it), ``uid``, ``generation`` and ``creationTimestamp`` on create,
``generateName`` (Kopf's events use it), and 422 when a JSON patch's ``test`` fails.

The emulator runs on its own event loop in a thread, so that the operator (Kopf's runner,
another thread) and the synchronous test both talk to it over HTTP like real clients.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiohttp.web
import attrs
import jsonpatch
import kmock
import yaml

from infragenius.gather.kube import ENDPOINTS
from infragenius.models.api import GROUP, VERSION

H = TypeVar("H", bound=kmock.RawHandler)

OURS = {"analyses": "Analysis", "sloreviews": "SLOReview", "incidentreports": "IncidentReport"}
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


@attrs.define(kw_only=True)
class FaultyEmulator(kmock.KubernetesEmulator):
    """The emulator behind a table of faults; ``arrivals`` times every request as it comes in."""

    faults: kmock.RawHandler = attrs.field(factory=kmock.RawHandler)
    arrivals: list[tuple[float, str, str]] = attrs.field(factory=list)
    _version: int = attrs.field(default=0, init=False)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self.arrivals.append((time.monotonic(), raw_request.method, raw_request.path))
        try:
            # Not entered as a context manager, so "no reaction matched" comes back as an exception.
            return await self.faults(raw_request)
        except NotImplementedError:
            return await super().__call__(raw_request)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None and request.action in (kmock.action.CREATE, kmock.action.UPDATE):
            self._version += 1
            version = str(self._version)
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                meta = request.data.setdefault("metadata", {})
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("generation", 1)
                meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                meta["resourceVersion"] = version
            elif isinstance(request.data, dict):  # a merge patch
                request.data.setdefault("metadata", {})["resourceVersion"] = version
            elif isinstance(request.data, list):  # a JSON patch
                request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
        try:
            return await super()._handle(request)
        except jsonpatch.JsonPatchTestFailed as err:
            raise kmock.KubernetesError(
                status=422, reason="Invalid", message=f"the test operation failed: {err}"
            ) from err

    def add_namespace(self, name: str) -> None:
        """Answer GET for a namespace. (kmock reads "namespaces" in a path as a namespace scope,
        so Namespace objects cannot be stored and fetched like other kinds.)"""
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}}
        self[f"get /api/v1/namespaces/{name}"] << namespace

    def times(self, method: str, path: str) -> list[float]:
        """Arrival times of requests with this method and exact path, oldest first."""
        return [t for t, m, p in list(self.arrivals) if m == method.upper() and p == path]


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes ``Status`` object as the API server sends with errors."""
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


async def tear_connection() -> None:
    """A stream item that cuts the TCP connection where it stands, as a crashing server or proxy would.

    Cancelling the request's own task makes aiohttp drop the connection without ending the
    chunked body: the client gets an incomplete payload, not a clean end of stream or an error event.
    """
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    await asyncio.sleep(0)


def infragenius_emulator() -> FaultyEmulator:
    """An emulator that knows InfraGenius's resources and everything the gatherer lists."""
    emulator = FaultyEmulator()
    for plural, kind in OURS.items():
        emulator.resources[f"{GROUP}/{VERSION}/{plural}"] = kmock.ResourceInfo(
            kind=kind, namespaced=True, verbs=VERBS, subresources={"status"}
        )
    for endpoint in ENDPOINTS.values():
        emulator.resources[f"{endpoint.group_version}/{endpoint.plural}"] = kmock.ResourceInfo(
            kind=endpoint.kind, namespaced=endpoint.namespaced, verbs=VERBS
        )
    emulator.resources["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True, verbs=VERBS)
    # Kopf waits for these two in discovery before it watches anything.
    emulator.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False, verbs=VERBS)
    emulator.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs=VERBS
    )
    return emulator


class ServedKmock(Generic[H]):
    """Serves a kmock handler on 127.0.0.1 from a private event loop in a daemon thread."""

    def __init__(self, factory: Callable[[], H]) -> None:
        self._factory = factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kmock", daemon=True)
        self._stop: asyncio.Event | None = None
        self._serving: concurrent.futures.Future[None] | None = None
        self.handler: H
        self.url = ""

    def __enter__(self) -> ServedKmock[H]:
        self._thread.start()
        ready: concurrent.futures.Future[tuple[H, str]] = concurrent.futures.Future()
        self._serving = asyncio.run_coroutine_threadsafe(self._serve(ready), self._loop)
        self.handler, self.url = ready.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._serving is not None:
            self._serving.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self, ready: concurrent.futures.Future[tuple[H, str]]) -> None:
        # Created here, so that its asyncio primitives belong to this loop.
        self._stop = asyncio.Event()
        handler = self._factory()
        async with handler, kmock.Server(handler) as server:
            ready.set_result((handler, str(server.url).rstrip("/")))
            await self._stop.wait()

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the server's loop, e.g. to set an asyncio.Event a reaction waits for."""
        self._loop.call_soon_threadsafe(fn)

    # --- a small synchronous client for the test's own requests (never faulted by path) ---

    def http(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def kubeconfig(self, directory: Path) -> str:
        path = directory / "kmock.kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
                    "users": [{"name": "kmock", "user": {"token": "kmock"}}],
                    "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
                    "current-context": "kmock",
                }
            )
        )
        return str(path)


def emulated_api() -> ServedKmock[FaultyEmulator]:
    return ServedKmock(infragenius_emulator)
