"""The notification dispatcher: drains the Postgres outbox to the sinks, off the analysis path.

For each claimed row: resolve the sink's Secret (registered by the platform team in the operator's
namespace, labelled, and allowed for the Analysis's namespace), check the host, apply the per-sink rate
limit and the per-finding cooldown, build the request, send it, and settle the row: sent, retried later
with backoff and jitter (5xx, 429, timeouts), or failed for good (other 4xx, too many attempts).
Afterwards each touched Analysis gets ``status.notifications`` (per sink: sent, pending, failed, last
error) and /metrics counts the outcomes.

A run never waits for any of this: a hanging receiver only delays its own sink's rows.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import ipaddress
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from kubernetes import client
from pydantic import ValidationError

from infragenius import kubeapi
from infragenius.history.outbox import Claimed, Outbox, Settlement
from infragenius.kube.time import rfc3339
from infragenius.models.analysis import (
    NOTIFICATION_NAMESPACES_ANNOTATION,
    NOTIFICATION_SECRET_LABEL,
    NotificationSink,
    SinkType,
)
from infragenius.models.api import ANALYSIS
from infragenius.models.common import parse_duration
from infragenius.notify import formats
from infragenius.notify.send import Delivery, Outcome, backoff, send
from infragenius.observability import metrics
from infragenius.settings import Settings

log = logging.getLogger(__name__)
BATCH = 200
SECRET_TTL_SECONDS = 10.0
REPORT_EVERY_SECONDS = 2.0  # status.notifications at most this often per Analysis
STATUS_POLICY = kubeapi.RetryPolicy(attempts=1, deadline=5.0)  # the next batch reports again


class SinkUnusable(Exception):
    """This sink cannot be used now (Secret missing or unlabelled, host refused); the text names no secret."""


@dataclass
class _Bucket:
    """Per-sink token bucket (ratePerMinute), refilled continuously."""

    rate_per_second: float
    tokens: float
    updated: float = field(default_factory=time.monotonic)

    def wait(self) -> float:
        """0 and a token taken, or the seconds until one is free."""
        now = time.monotonic()
        self.tokens = min(self.rate_per_second * 60, self.tokens + (now - self.updated) * self.rate_per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate_per_second


def host_allowed(url: str, patterns: Sequence[str]) -> bool:
    """Never link-local (cloud metadata) addresses; with patterns, only matching hosts."""
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        return False
    try:
        if ipaddress.ip_address(host).is_link_local:
            return False
    except ValueError:
        if host in ("metadata.google.internal", "metadata"):
            return False
    return not patterns or any(fnmatch.fnmatchcase(host, p.lower()) for p in patterns)


class Dispatcher:
    def __init__(self, outbox: Outbox, api: client.ApiClient, settings: Settings, http: aiohttp.ClientSession) -> None:
        self.outbox, self.api, self.settings, self.http = outbox, api, settings, http
        self.buckets: dict[tuple[str, str], _Bucket] = {}
        self.sending = asyncio.Semaphore(settings.notify_concurrency)
        # A batch of a hundred messages for one sink reads its Secret once; a rotated one is seen within seconds.
        self.secrets: dict[str, tuple[float, dict[str, Any]]] = {}
        self.reported: dict[str, float] = {}
        self.stale: set[tuple[str, str, str]] = set()  # reports skipped by the throttle, written when idle

    async def run(self) -> None:
        """Until cancelled; a failing round (Postgres away) is logged and retried."""
        while True:
            try:
                worked = await self.drain_once()
                if worked:  # an idle round changes nothing: new rows are claimed, and counted, next round
                    metrics.NOTIFY_PENDING.set(await self.outbox.pending())
            except asyncio.CancelledError:
                raise
            except Exception as err:  # Postgres down, API down: the rows stay in the outbox
                log.warning("notifications: outbox round failed: %s", str(err).splitlines()[0] if str(err) else err)
                worked = 0
            if not worked:
                await self.flush_reports()
                await asyncio.sleep(self.settings.notify_poll_seconds)

    async def drain_once(self) -> int:
        # Longer than one send and its settling; a row leased by a process that died is free after it.
        claimed = await self.outbox.claim(BATCH, self.settings.notify_timeout_seconds * 2 + 10)
        if not claimed:
            return 0
        settled = await asyncio.gather(*(self._deliver(row) for row in claimed))
        await self.outbox.settle(settled)
        for uid, namespace, name in {(r.resource_uid, r.namespace, r.analysis) for r in claimed}:
            await self._report(uid, namespace, name)
        return len(claimed)

    async def flush_reports(self) -> None:
        """The status reports the throttle held back, once the outbox is quiet."""
        for uid, namespace, name in list(self.stale):
            await self._report(uid, namespace, name, force=True)

    async def _deliver(self, row: Claimed) -> Settlement:
        async with self.sending:
            try:
                sink = NotificationSink.model_validate({**row.sink_config, "name": row.sink})
            except ValidationError as err:
                return self._settlement(
                    row, "Invalid", Outcome(Delivery.failed, None, f"invalid sink: {err.errors()[0]['msg']}")
                )
            wait = self._bucket(row, sink).wait()
            if wait > 0:  # over the sink's rate: later, without spending an attempt
                return Settlement(row.id, "pending", delay=wait, counted=False)
            if await self._cooling_down(row, sink):
                metrics.NOTIFICATIONS.labels(sink_type=sink.type.value, outcome="suppressed").inc()
                return Settlement(row.id, "suppressed", error=f"cooldown {sink.cooldown}")
            try:
                request = await self._request(row, sink)
            except (SinkUnusable, formats.FormatError) as err:
                return self._settlement(row, sink.type.value, Outcome(Delivery.retry, None, str(err)))
            outcome = await send(self.http, request, self.settings.notify_timeout_seconds)
            return self._settlement(row, sink.type.value, outcome)

    def _bucket(self, row: Claimed, sink: NotificationSink) -> _Bucket:
        key = (row.resource_uid, sink.name)
        rate = sink.rate_per_minute / 60
        bucket = self.buckets.get(key)
        if bucket is None or bucket.rate_per_second != rate:
            bucket = self.buckets[key] = _Bucket(rate, tokens=float(sink.rate_per_minute))
        return bucket

    async def _cooling_down(self, row: Claimed, sink: NotificationSink) -> bool:
        seconds = parse_duration(sink.cooldown).total_seconds()
        findings = row.message.get("findings") or []
        if seconds <= 0 or row.message.get("event") == "digest" or not findings:
            return False
        return await self.outbox.sent_within(row.resource_uid, sink.name, str(findings[0].get("id")), seconds)

    async def _request(self, row: Claimed, sink: NotificationSink) -> formats.HTTPRequest:
        secret = await self._secret(row.namespace, sink) if sink.secret_ref is not None else None
        if sink.type in (SinkType.webhook, SinkType.cloudevents):
            target = sink.url
        elif sink.type is SinkType.pagerduty:
            target = sink.url or formats.PAGERDUTY_EVENTS_URL
        else:  # Slack, Teams: the webhook URL is the secret
            target = secret
        if not target or not host_allowed(target, self.settings.notify_allowed_hosts):
            raise SinkUnusable(f"sink {sink.name}: host not allowed (INFRAGENIUS_NOTIFY_ALLOWED_HOSTS)")
        return formats.build(
            sink.type,
            sink.model_dump(by_alias=True, mode="json", exclude_none=True),
            row.message,
            secret,
            timestamp=int(time.time()),
            delivery=f"{row.resource_uid}-{row.id}",
        )

    async def _secret(self, namespace: str, sink: NotificationSink) -> str:
        """The sink's credential from a Secret in the operator's namespace: the platform team registers it
        (label infragenius.io/notification-secret=true) and names the namespaces that may use it
        (annotation infragenius.io/notification-namespaces: "shop,payments" or "*"). The operator never
        reads Secrets in tenants' namespaces."""
        ref = sink.secret_ref
        assert ref is not None
        home = self.settings.operator_namespace
        path = f"/api/v1/namespaces/{home}/secrets/{ref.name}"
        cached = self.secrets.get(path)
        if cached is not None and time.monotonic() - cached[0] < SECRET_TTL_SECONDS:
            body = cached[1]
        else:
            try:
                body = await asyncio.to_thread(kubeapi.request, self.api, "GET", path, timeout=(5.0, 10.0))
            except client.ApiException as err:
                raise SinkUnusable(f"sink {sink.name}: Secret {home}/{ref.name}: HTTP {err.status}") from None
            except kubeapi.TRANSPORT_ERRORS as err:  # the API server away: try again later, like a 5xx
                raise SinkUnusable(f"sink {sink.name}: Secret {home}/{ref.name}: {type(err).__name__}") from None
            self.secrets[path] = (time.monotonic(), body)
        metadata = body.get("metadata") or {}
        if (metadata.get("labels") or {}).get(NOTIFICATION_SECRET_LABEL) != "true":
            raise SinkUnusable(f"sink {sink.name}: Secret {ref.name} is not labelled {NOTIFICATION_SECRET_LABEL}=true")
        allowed = str((metadata.get("annotations") or {}).get(NOTIFICATION_NAMESPACES_ANNOTATION, ""))
        if "*" not in allowed.split(",") and namespace not in [n.strip() for n in allowed.split(",")]:
            raise SinkUnusable(
                f"sink {sink.name}: Secret {ref.name} is not for namespace {namespace} "
                f"(annotation {NOTIFICATION_NAMESPACES_ANNOTATION})"
            )
        encoded = (body.get("data") or {}).get(ref.key)
        if not encoded:
            raise SinkUnusable(f"sink {sink.name}: Secret {ref.name} has no key {ref.key}")
        try:
            return base64.b64decode(encoded).decode().strip()
        except (ValueError, UnicodeDecodeError):
            raise SinkUnusable(f"sink {sink.name}: Secret {ref.name} key {ref.key} is not text") from None

    def _settlement(self, row: Claimed, sink_type: str, outcome: Outcome) -> Settlement:
        metrics.NOTIFICATIONS.labels(sink_type=sink_type, outcome=outcome.delivery.value).inc()
        error = outcome.error[:512] if outcome.error else None
        if outcome.delivery is Delivery.sent:
            return Settlement(row.id, "sent", outcome.status)
        if outcome.delivery is Delivery.failed or row.attempts + 1 >= self.settings.notify_max_attempts:
            log.warning(
                "notifications: %s/%s sink %s: failed for good: %s", row.namespace, row.analysis, row.sink, error
            )
            return Settlement(row.id, "failed", outcome.status, error)
        delay = outcome.retry_after if outcome.retry_after is not None else backoff(row.attempts)
        return Settlement(row.id, "pending", outcome.status, error, delay)

    async def _report(self, uid: str, namespace: str, name: str, force: bool = False) -> None:
        """status.notifications of the Analysis (skipped if it is gone or was recreated); throttled."""
        now = time.monotonic()
        if not force and now - self.reported.get(uid, -REPORT_EVERY_SECONDS) < REPORT_EVERY_SECONDS:
            self.stale.add((uid, namespace, name))
            return
        self.reported[uid] = now
        self.stale.discard((uid, namespace, name))
        summary: list[dict[str, Any]] = []
        for entry in await self.outbox.delivery(uid):
            item = {k: entry[k] for k in ("sent", "pending", "failed")}
            item["sink"] = entry["sink"]
            if entry.get("last_sent_at") is not None:
                item["lastSentAt"] = rfc3339(entry["last_sent_at"])
            if entry.get("last_error"):
                item["lastError"] = str(entry["last_error"])[:512]
            summary.append(item)
        path = ANALYSIS.path(namespace, name) + "/status"
        body = {"metadata": {"uid": uid}, "status": {"notifications": summary}}
        try:
            await asyncio.to_thread(
                kubeapi.request,
                self.api,
                "PATCH",
                path,
                body=body,
                headers={"Content-Type": "application/merge-patch+json"},
                timeout=(5.0, 10.0),
                policy=STATUS_POLICY,
            )
        except client.ApiException as err:
            if err.status not in (404, 409):  # gone, or a new object under the same name
                log.warning("notifications: status of %s/%s not written: HTTP %s", namespace, name, err.status)
        except kubeapi.TRANSPORT_ERRORS as err:  # the API away: the next batch writes it
            log.warning("notifications: status of %s/%s not written: %s", namespace, name, type(err).__name__)
