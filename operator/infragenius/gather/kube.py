"""Gather Kubernetes objects for a snapshot: parallel, paginated LIST calls; errors become data.

Responses are parsed straight from JSON (``_preload_content=False``): building
client model objects for thousands of pods would cost more than the analysis.
ConfigMaps are listed as metadata only, so their data never leaves the API
server. Secrets are not listed at all: RBAC cannot grant "list secrets" without
also granting their data, and a diagnostic tool should not hold that right.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import re
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from infragenius import kubeapi
from infragenius.gather import compact, shared
from infragenius.kube.events import event_recency
from infragenius.snapshot import GatherResult, GatherStatus, Obj

PAGE_SIZE = 500
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


class TargetNamespaceMissing(Exception):
    """The namespace to analyse does not exist; re-running will not help until it is created."""


class ApiUnavailable(Exception):
    """The Kubernetes API could not answer at all; worth retrying."""


@dataclass(frozen=True)
class KindEndpoint:
    kind: str
    group_version: str  # "v1" for the core group
    plural: str
    namespaced: bool = True
    metadata_only: bool = False
    #: Whether a user's label selector narrows this kind (workload-like objects carry app labels).
    selectable: bool = False

    def path(self, namespace: str | None) -> str:
        prefix = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        if self.namespaced and namespace:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"


ENDPOINTS: dict[str, KindEndpoint] = {
    e.kind: e
    for e in (
        KindEndpoint("Pod", "v1", "pods", selectable=True),
        KindEndpoint("Deployment", "apps/v1", "deployments", selectable=True),
        KindEndpoint("ReplicaSet", "apps/v1", "replicasets", selectable=True),
        KindEndpoint("ControllerRevision", "apps/v1", "controllerrevisions", selectable=True),
        KindEndpoint("StatefulSet", "apps/v1", "statefulsets", selectable=True),
        KindEndpoint("DaemonSet", "apps/v1", "daemonsets", selectable=True),
        KindEndpoint("Job", "batch/v1", "jobs", selectable=True),
        KindEndpoint("CronJob", "batch/v1", "cronjobs", selectable=True),
        KindEndpoint("Service", "v1", "services", selectable=True),
        KindEndpoint("EndpointSlice", "discovery.k8s.io/v1", "endpointslices"),
        KindEndpoint("Ingress", "networking.k8s.io/v1", "ingresses", selectable=True),
        KindEndpoint("IngressClass", "networking.k8s.io/v1", "ingressclasses", namespaced=False),
        KindEndpoint("PersistentVolumeClaim", "v1", "persistentvolumeclaims", selectable=True),
        KindEndpoint("StorageClass", "storage.k8s.io/v1", "storageclasses", namespaced=False),
        KindEndpoint("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", selectable=True),
        KindEndpoint("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", selectable=True),
        KindEndpoint("Node", "v1", "nodes", namespaced=False),
        KindEndpoint("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies"),
        KindEndpoint("ResourceQuota", "v1", "resourcequotas"),
        KindEndpoint(
            "ValidatingWebhookConfiguration",
            "admissionregistration.k8s.io/v1",
            "validatingwebhookconfigurations",
            namespaced=False,
        ),
        KindEndpoint(
            "MutatingWebhookConfiguration",
            "admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations",
            namespaced=False,
        ),
        KindEndpoint("ConfigMap", "v1", "configmaps", metadata_only=True),
    )
}


class KubeGatherer:
    """Lists objects through one ApiClient; every call runs in a worker thread."""

    def __init__(
        self, api: client.ApiClient, *, event_cap: int = 500, concurrency: int = 8, not_before: float | None = None
    ) -> None:
        self.api = api
        self.event_cap = event_cap
        self._limit = asyncio.Semaphore(concurrency)
        #: When the request being served was observed (time.monotonic()); set, identical reads that
        #: started since then are shared with other analyses (infragenius.gather.shared).
        self.not_before = not_before

    def _get(self, path: str, query: list[tuple[str, Any]], accept: str = "application/json") -> dict[str, Any]:
        data = self._fetch(path, query, accept)
        with compact.gc_paused():
            return self._decode(data, path, query, accept)

    def _fetch(self, path: str, query: list[tuple[str, Any]], accept: str) -> bytes:
        data: bytes = kubeapi.request(
            self.api, "GET", path, query=query, headers={"Accept": accept}, timeout=(5, 60), raw=True
        )
        return data

    def _decode(self, data: bytes, path: str, query: list[tuple[str, Any]], accept: str) -> dict[str, Any]:
        try:
            body: dict[str, Any] = compact.decode(data) if data else {}
        except ValueError:
            # Bytes that are not UTF-8 (a proxy, a webhook-mutated object, an old etcd record), or lone
            # surrogate escapes, must not cost the whole kind: read the page again and decode it with
            # replacement characters.
            return _get_lenient(self.api, path, query, accept)
        return body

    def _list_sync(self, endpoint: KindEndpoint, namespace: str | None, query: list[tuple[str, Any]]) -> list[Obj]:
        items: list[Obj] = []
        accept = METADATA_ONLY if endpoint.metadata_only else "application/json"
        path = endpoint.path(namespace)
        compactor = compact.Compactor()  # one per LIST: values are shared across its pages

        def fetch(token: str | None) -> bytes:
            page = [*query, ("limit", PAGE_SIZE)] + ([("continue", token)] if token else [])
            return self._fetch(path, page, accept)

        token: str | None = None
        data = fetch(None)
        with ExitStack() as stack:
            prefetch: ThreadPoolExecutor | None = None
            while True:
                # The next page is requested before this one is decoded, so that the API server encodes it
                # while this process decodes (its continue token comes before the items in the bytes).
                guess = _continue_token(data)
                ahead: Future[bytes] | None = None
                if guess:
                    if prefetch is None:
                        prefetch = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="list-ahead"))
                    ahead = prefetch.submit(fetch, guess)
                page = [*query, ("limit", PAGE_SIZE)] + ([("continue", token)] if token else [])
                # Decoded, slimmed and compacted page by page: only the compact form of earlier pages is held.
                with compact.gc_paused():
                    body = self._decode(data, path, page, accept)
                    del data
                    raw_items = _slim(body.get("items") or [], endpoint.kind in KEEP_WRITES)
                    items.extend(compactor.objects(raw_items, endpoint.kind))
                    del raw_items
                if endpoint.kind == "Event":
                    # Events are only ever wanted newest first up to the cap: trimming each page as it arrives
                    # bounds memory by the cap, not by how many events the namespace holds (equivalent to one
                    # sort of everything: nlargest is a stable sorted(..., reverse=True)[:n]).
                    items = heapq.nlargest(self.event_cap, items, key=event_recency)
                token = (body.get("metadata") or {}).get("continue")
                if not token:
                    return items
                # The decoded token is the one that counts; the early read is used only when it matches.
                data = ahead.result() if ahead is not None and guess == token else fetch(token)

    async def _list(self, endpoint: KindEndpoint, namespace: str | None, query: list[tuple[str, Any]]) -> list[Obj]:
        """One paginated LIST in a worker thread, shared when ``not_before`` allows (callers must not mutate it)."""

        def fetch() -> Any:
            return asyncio.to_thread(self._list_sync, endpoint, namespace, query)

        if self.not_before is None:
            return await fetch()
        cap = self.event_cap if endpoint.kind == "Event" else None  # events come back trimmed to the cap
        key = ("LIST", endpoint.path(namespace), endpoint.metadata_only, cap, tuple(query))
        return await shared.for_client(self.api).read(key, fetch, self.not_before)

    async def list_kind(
        self, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> tuple[list[Obj], GatherResult]:
        """All objects of a kind; failures come back as a GatherResult with status error."""
        endpoint = ENDPOINTS[kind]
        query: list[tuple[str, Any]] = []
        if label_selector and endpoint.selectable:
            query.append(("labelSelector", label_selector))
        started = time.perf_counter()
        async with self._limit:
            try:
                items = await self._list(endpoint, namespace, query)
            except client.ApiException as err:
                return [], GatherResult(
                    kind, GatherStatus.error, seconds=time.perf_counter() - started, error=describe_api_error(err)
                )
            except Exception as err:  # network errors come in many urllib3 types; all are data here
                return [], GatherResult(
                    kind,
                    GatherStatus.error,
                    seconds=time.perf_counter() - started,
                    error=f"{type(err).__name__}: {err}"[:500],
                )
        return items, GatherResult(kind, GatherStatus.ok, count=len(items), seconds=time.perf_counter() - started)

    async def warning_events(self, namespace: str | None) -> tuple[list[Obj], GatherResult]:
        """Warning events, newest first, at most ``event_cap``."""
        endpoint = KindEndpoint("Event", "v1", "events")
        started = time.perf_counter()
        async with self._limit:
            try:
                events = await self._list(endpoint, namespace, [("fieldSelector", "type=Warning")])
            except Exception as err:
                message = (
                    describe_api_error(err) if isinstance(err, client.ApiException) else f"{type(err).__name__}: {err}"
                )
                return [], GatherResult(
                    "events", GatherStatus.error, seconds=time.perf_counter() - started, error=message[:500]
                )
        kept = sorted(events, key=event_recency, reverse=True)[: self.event_cap]  # a copy: the list may be shared
        return kept, GatherResult("events", GatherStatus.ok, count=len(kept), seconds=time.perf_counter() - started)

    async def events(self, namespace: str | None, field_selector: str, source: str) -> tuple[list[Obj], GatherResult]:
        """Events matching ``field_selector`` (e.g. ``reason=ScalingReplicaSet``), newest first, capped."""
        endpoint = KindEndpoint("Event", "v1", "events")
        started = time.perf_counter()
        async with self._limit:
            try:
                events = await self._list(endpoint, namespace, [("fieldSelector", field_selector)])
            except Exception as err:
                message = (
                    describe_api_error(err) if isinstance(err, client.ApiException) else f"{type(err).__name__}: {err}"
                )
                return [], GatherResult(
                    source, GatherStatus.error, seconds=time.perf_counter() - started, error=message[:500]
                )
        kept = sorted(events, key=event_recency, reverse=True)[: self.event_cap]  # a copy: the list may be shared
        return kept, GatherResult(source, GatherStatus.ok, count=len(kept), seconds=time.perf_counter() - started)

    async def namespace_exists(self, namespace: str) -> bool | None:
        """True/False when known; None when the API could not say (the caller retries)."""
        try:
            path = f"/api/v1/namespaces/{namespace}"
            if self.not_before is None:
                await asyncio.to_thread(self._get, path, [])
            else:
                await shared.for_client(self.api).read(
                    ("GET", path), lambda: asyncio.to_thread(self._get, path, []), self.not_before
                )
        except client.ApiException as err:
            if err.status == 404:
                return False
            if err.status == 403:
                return True  # not allowed to read namespaces; listing will tell us more
            return None
        except Exception:
            return None
        return True

    async def require_namespace(self, namespace: str) -> None:
        """Raise TargetNamespaceMissing (permanent) or ApiUnavailable (retry) unless the namespace exists."""
        exists = await self.namespace_exists(namespace)
        if exists is False:
            raise TargetNamespaceMissing(f"target namespace {namespace!r} does not exist")
        if exists is None:
            raise ApiUnavailable("the Kubernetes API did not answer while checking the target namespace")

    async def gather(
        self, kinds: Iterable[str], namespace: str | None, label_selector: str | None = None
    ) -> tuple[dict[str, list[Obj]], list[Obj], list[GatherResult]]:
        """LIST every kind and the warning events in parallel."""
        kinds = sorted(set(kinds))
        tasks = [self.list_kind(kind, namespace, label_selector) for kind in kinds]
        results = await asyncio.gather(*tasks, self.warning_events(namespace))
        objects: dict[str, list[Obj]] = {}
        reports: list[GatherResult] = []
        for kind, (items, report) in zip(kinds, results[:-1], strict=True):
            reports.append(report)
            if report.status is GatherStatus.ok:
                objects[kind] = items
        events, event_report = results[-1]
        reports.append(event_report)
        return objects, events, reports


_CONTINUE = re.compile(rb'"continue":"([^"\\]+)"')


def _continue_token(data: bytes) -> str | None:
    """The continue token of a List's bytes, read before decoding them: the List's metadata comes before
    its items, so only the bytes before ``"items":`` are searched (an object's fields cannot match)."""
    end = data.find(b'"items":')
    found = _CONTINUE.search(data, 0, end if end >= 0 else min(len(data), 4096))
    return found.group(1).decode("ascii", "replace") if found else None


def require_some_answer(reports: list[GatherResult]) -> None:
    """Raise ApiUnavailable when every LIST failed: there is nothing to analyse, and a retry may help."""
    if reports and all(r.status is GatherStatus.error for r in reports):
        raise ApiUnavailable(f"every LIST call failed, e.g. {reports[0].error}")


def events_in_scope(events: list[Obj], objects: dict[str, list[Obj]]) -> list[Obj]:
    """With a label selector, keep only events about objects that the selector let in."""
    names = {(kind, o["metadata"]["name"]) for kind, items in objects.items() for o in items}
    return [e for e in events if (_involved(e).get("kind"), _involved(e).get("name")) in names]


def _involved(event: Obj) -> dict[str, Any]:
    return event.get("involvedObject") or {}


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


#: Kinds whose writes an incident timeline dates from managedFields (a Service's selector, a ConfigMap's data,
#: a NetworkPolicy's spec): their entries are kept, cut to when, who, and the top two levels of fields.
KEEP_WRITES = frozenset({"Service", "ConfigMap", "NetworkPolicy"})


def _slim(items: list[Obj], keep_writes: bool = False) -> list[Obj]:
    """Drop what no reader needs and what costs the most memory: ``managedFields`` (about 45% of a pod as
    Python objects; for ``keep_writes`` kinds only their outline stays) and kubectl's last-applied copy."""
    for item in items:
        meta = item.get("metadata")
        if meta:
            writes = meta.pop("managedFields", None)
            if keep_writes and writes:
                meta["managedFields"] = [_write_outline(w) for w in writes if isinstance(w, dict)]
            annotations = meta.get("annotations")
            if annotations and LAST_APPLIED in annotations:
                del annotations[LAST_APPLIED]
    return items


def _write_outline(write: dict[str, Any]) -> dict[str, Any]:
    raw = write.get("fieldsV1")
    fields: dict[str, Any] = raw if isinstance(raw, dict) else {}
    outline: dict[str, dict[str, Any]] = {
        top: {key: {} for key in inner} if isinstance(inner, dict) else {} for top, inner in fields.items()
    }
    return {
        "manager": write.get("manager"),
        "operation": write.get("operation"),
        "time": write.get("time"),
        "fieldsV1": outline,
    }


# A \uXXXX escape of a surrogate that has no partner: valid JSON, but the text cannot be encoded again.
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _get_lenient(api: client.ApiClient, path: str, query: list[tuple[str, Any]], accept: str) -> dict[str, Any]:
    """GET and decode invalid UTF-8 and lone surrogate escapes as U+FFFD instead of failing."""
    method, url, headers, body, post_params = api.param_serialize(
        method="GET",
        resource_path=path,
        query_params=list(query),
        header_params={"Accept": accept},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(
        method, url, header_params=headers, body=body, post_params=post_params, _request_timeout=(5, 60)
    )
    data = response.read()
    if not 200 <= response.status <= 299:
        raise client.ApiException(status=response.status, reason=response.reason, body=data.decode(errors="replace"))
    return json.loads(_LONE_SURROGATE.sub(rb"\\ufffd", data).decode("utf-8", errors="replace"))


def describe_api_error(err: client.ApiException) -> str:
    """``<status> <reason>: <the Status message>``, bounded: how a failed read is reported as data."""
    try:
        message = json.loads(err.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{err.status} {err.reason}: {message or err.body or ''}"[:500]
