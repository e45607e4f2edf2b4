"""One client for our custom resources: it knows each kind's group, version and plural (``models.api``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes import client

from infragenius import kubeapi
from infragenius.kube.time import now_rfc3339
from infragenius.models.api import GROUP, VERSION, CustomResourceKind
from infragenius.runs.handled import Carried

LOG = logging.getLogger(__name__)
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
JSON = {"Content-Type": "application/json"}


class CustomResources:
    """Raw requests on one kind (blocking calls run in worker threads; kubeapi retries transient failures).

    Errors are the client's: ``ApiException`` with the HTTP status, or a transport error from ``kubeapi``.
    """

    def __init__(self, api: client.ApiClient, kind: CustomResourceKind, timeout: tuple[float, float] = (5, 15)) -> None:
        self.api, self.kind, self.timeout = api, kind, timeout

    async def _call(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Any:
        return await asyncio.to_thread(
            kubeapi.request, self.api, method, path, headers=dict(headers or {}), body=body, timeout=self.timeout
        )

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(await self._call("GET", self.kind.path(namespace, name)))

    async def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(await self._call("POST", self.kind.collection_path(namespace), dict(body), JSON))

    async def merge_patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> Any:
        return await self._call("PATCH", self.kind.path(namespace, name), dict(patch), MERGE_PATCH)

    async def merge_patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Any:
        path = self.kind.path(namespace, name) + "/status"
        return await self._call("PATCH", path, {"status": dict(status)}, MERGE_PATCH)


class StatusWriter:
    """Merge-patches one object's status subresource (lists such as findings are replaced whole).

    kubeapi retries conflicts, throttling, server errors and broken connections for a few
    seconds; what still fails becomes a TemporaryError, and Kopf runs the handler again in 5 s.
    """

    def __init__(
        self,
        api: client.ApiClient,
        kind: CustomResourceKind,
        namespace: str,
        name: str,
        handled: Carried | None = None,
    ) -> None:
        self.resources = CustomResources(api, kind, timeout=(5, 30))
        self.kind, self.namespace, self.name = kind, namespace, name
        self.handled = handled
        self._progress: asyncio.Task[None] | None = None
        self._progress_sent = False

    async def progress(self, status: Mapping[str, Any], after: float) -> None:
        """A progress write (Running) once the run has gone on for ``after`` seconds; right now when 0. The
        next write first cancels it, or waits for it when it is already on its way, so writes keep their order.
        A run that dies of an unexpected error leaves it to fire, as a Running written up front would be."""
        if after <= 0:
            await self._send(status)
            return
        self._progress = asyncio.create_task(self._progress_later(status, after))

    async def _progress_later(self, status: Mapping[str, Any], after: float) -> None:
        await asyncio.sleep(after)
        self._progress_sent = True
        # Only progress: if it cannot be written, the run still ends with its final write.
        with contextlib.suppress(kopf.TemporaryError):
            await self._send(status)

    async def _settle_progress(self) -> None:
        task, self._progress = self._progress, None
        if task is None:
            return
        if not self._progress_sent:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def patch(self, status: Mapping[str, Any]) -> None:
        """An intermediate write (Pending before a retry): the run is retried."""
        await self._settle_progress()
        await self._send(status)

    async def finish(self, status: Mapping[str, Any]) -> None:
        """The run's last write (Completed, or failed for good); it carries Kopf's record of the change
        being handled, when there is one (``runs.handled``), saving Kopf a PATCH of its own."""
        await self._settle_progress()
        if self.handled is None:
            await self._send(status)
        elif await self._send({**status, **self.handled.fragment()}):
            self.handled.landed()

    async def _send(self, status: Mapping[str, Any]) -> bool:
        """True when the object took the patch; False when it is gone."""
        try:
            await self.resources.merge_patch_status(self.namespace, self.name, status)
        except client.ApiException as err:
            if err.status == 404:
                return False  # deleted while running: nothing to report to
            raise _retry_run("could not write status", err) from err
        except kubeapi.TRANSPORT_ERRORS as err:
            raise _retry_run("could not write status", err) from err
        return True


def _retry_run(what: str, err: BaseException) -> kopf.TemporaryError:
    """What kubeapi's own retries could not get through: Kopf runs the handler again in 5 s."""
    if isinstance(err, client.ApiException):
        return kopf.TemporaryError(f"{what}: {err.status} {err.reason}", delay=5)
    return kopf.TemporaryError(f"{what}: {type(err).__name__}: {err}"[:300], delay=5)


async def post_run_event(
    api: client.ApiClient, kind: CustomResourceKind, obj: Mapping[str, Any], run_id: str, reason: str, message: str
) -> None:
    """The Normal event that says a run ended, named after the run: a run repeated after a crash or a failed
    status write gets 409 AlreadyExists instead of a second event. Posted before the final status write, a
    crash loses no event and repeats none. An API that cannot answer retries the run (TemporaryError); an
    event the API refuses for good (e.g. RBAC) is logged, and the run still completes."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    now = now_rfc3339()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name[:200]}.{run_id}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind.kind,
            "name": name,
            "namespace": namespace,
            "uid": meta.get("uid"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Normal",
        "source": {"component": "infragenius"},
        "reportingComponent": "infragenius",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    path = f"/api/v1/namespaces/{namespace}/events"
    try:
        await asyncio.to_thread(kubeapi.request, api, "POST", path, headers=JSON, body=event, timeout=(5, 15))
    except client.ApiException as err:
        if err.status == 409:
            return  # this run's event is there already
        if err.status in kubeapi.RETRIABLE_STATUSES:
            raise _retry_run("could not post event", err) from err
        LOG.warning("event %s for %s/%s refused: %s %s", reason, namespace, name, err.status, err.reason)
    except kubeapi.TRANSPORT_ERRORS as err:
        raise _retry_run("could not post event", err) from err
