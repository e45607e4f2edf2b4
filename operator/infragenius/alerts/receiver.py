"""The Alertmanager webhook: authenticate, bound, parse, de-duplicate, then hand matched alerts to a sink.

Status codes follow Alertmanager's retry rule (5xx: retry, anything else: done): bad input of any kind gets
a 4xx with a JSON reason, and only a Kubernetes API outage gets a 503 so that the alert is delivered later.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import ssl
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from pydantic import SecretStr, ValidationError

from infragenius.alerts.incidents import IncidentUnavailable
from infragenius.alerts.incidents import matches as incident_matches
from infragenius.alerts.slo_triggers import TriggerUnavailable, UnknownSLO
from infragenius.kube.time import now_rfc3339
from infragenius.models.alertmanager import Alert, WebhookPayload
from infragenius.models.slo import AlertStatus, TriggerRecord
from infragenius.observability import metrics

PATH = "/alertmanager"
SUPPORTED_VERSION = "4"
MAX_LABELS = 16  # x 20 records: status stays small whatever the alerts carry
MAX_LABEL_VALUE = 128
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # RFC 1123 subdomain (object names)
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1123 label

logger = logging.getLogger(__name__)

# Incident outcomes refused by policy: answered 200 (a retry would be refused alike), with the reason.
_REFUSED = {
    "namespace-not-allowed": "alerts may not open IncidentReports here (INFRAGENIUS_INCIDENT_ALERT_NAMESPACES)",
    "over-limit": "too many IncidentReports in one request",
    "rate-limited": "too many IncidentReports for this namespace in the last minute",
}


class Sink(Protocol):
    async def deliver(self, namespace: str, name: str, record: TriggerRecord) -> str: ...


class IncidentSink(Protocol):
    async def create(self, namespace: str, alert: Alert) -> str: ...


@dataclass(frozen=True)
class WebhookOptions:
    token: SecretStr
    max_body_bytes: int = 1024 * 1024
    slo_label: str = "slo"
    namespace_label: str = "namespace"
    dedupe_size: int = 10000
    read_timeout: float = 10.0
    #: Firing alerts carrying all these labels create an IncidentReport (empty: none do).
    incident_labels: tuple[tuple[str, str], ...] = ()
    #: Namespaces alerts may open IncidentReports in; "*" allows any. Empty: none.
    incident_namespaces: frozenset[str] = frozenset()
    #: IncidentReports one request may create; the alerts past it are answered "over-limit".
    max_incidents_per_request: int = 20
    #: IncidentReports per namespace and minute (a token bucket per replica); past it: "rate-limited".
    incidents_per_minute: float = 30.0
    #: PEM files of the server certificate and key (mounted from a Secret); both unset: plain HTTP.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None


class TokenBuckets:
    """One token bucket per key, ``rate`` tokens a minute up to ``rate``; keys idle long enough are forgotten,
    so the map stays as small as the set of keys active within a minute."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.clock = per_minute / 60.0, clock
        self.capacity = max(1.0, per_minute)
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: Hashable) -> bool:
        now = self.clock()
        if len(self._buckets) > 1024:  # forget buckets that refilled completely
            full = [k for k, (t, w) in self._buckets.items() if t + (now - w) * self.rate >= self.capacity]
            for stale in full:
                del self._buckets[stale]
        tokens, when = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - when) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True


@dataclass
class _RequestBudget:
    """What one request may still do."""

    incidents: int


class RecentKeys:
    """A bounded LRU set: remembers the newest ``size`` keys."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """True when ``key`` is new (and now remembered); False for a repeat."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return True

    def discard(self, key: Hashable) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


def _reply(status: int, **body: Any) -> web.Response:
    return web.json_response(body, status=status)


def _error(status: int, error: str, reason: str) -> web.Response:
    return _reply(status, error=error, reason=reason[:500])


def _record(alert: Alert, options: WebhookOptions) -> TriggerRecord:
    # Bounded: the record is kept in status, which must stay small.
    priority = {"alertname", options.slo_label, options.namespace_label, "severity"}
    names = sorted(alert.labels, key=lambda k: (k not in priority, k))[:MAX_LABELS]
    return TriggerRecord(
        alertname=alert.labels.get("alertname", "")[:253],
        fingerprint=alert.fingerprint,
        starts_at=alert.starts_at,
        status=AlertStatus(alert.status.value),
        labels={k[:MAX_LABEL_VALUE]: alert.labels[k][:MAX_LABEL_VALUE] for k in names},
        received_at=now_rfc3339(),
    )


class AlertWebhook:
    """An aiohttp app serving POST /alertmanager and GET /healthz."""

    def __init__(self, options: WebhookOptions, sink: Sink, incidents: IncidentSink | None = None) -> None:
        self.options, self.sink, self.incidents = options, sink, incidents
        self.recent = RecentKeys(options.dedupe_size)
        self.incident_rate = TokenBuckets(options.incidents_per_minute)
        self.replies: Counter[int] = Counter()  # status code -> count, for logs and tests
        self._token = options.token.get_secret_value().encode()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # --- the HTTP surface -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.options.max_body_bytes, middlewares=[self._json_errors])
        app.router.add_post(PATH, self.handle)
        app.router.add_get("/healthz", self.healthz)
        return app

    @web.middleware
    async def _json_errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as err:  # aiohttp's own 404/405/413: same JSON shape as ours
            response = _error(err.status, err.reason.lower().replace(" ", "_"), err.text or err.reason)
        except Exception:  # a bug must not take the server down; Alertmanager retries 5xx
            logger.exception("webhook: unexpected error")
            response = _error(500, "internal_error", "unexpected error; see the operator log")
        self.replies[response.status] += 1
        metrics.WEBHOOK_REQUESTS.labels(code=str(response.status)).inc()
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        return _reply(200, ok=True)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # compare_digest: the time taken does not reveal how much of the token matched. aiohttp decodes
        # header bytes that are not UTF-8 as surrogates; surrogateescape turns them back into those bytes.
        offered = given.strip().encode("utf-8", "surrogateescape")
        return scheme.lower() == "bearer" and hmac.compare_digest(offered, self._token)

    async def handle(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            response = _error(401, "unauthorized", "missing or wrong bearer token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="infragenius"'
            return response
        limit = self.options.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return _error(413, "too_large", f"body is {request.content_length} bytes; the limit is {limit}")
        try:
            raw = await asyncio.wait_for(request.read(), self.options.read_timeout)
        except TimeoutError:
            return _error(408, "timeout", f"body not received within {self.options.read_timeout:g}s")
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", f"body exceeds {limit} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as err:  # bad UTF-8 is a ValueError too; deep nesting a RecursionError
            return _error(400, "malformed_json", f"body is not JSON: {str(err)[:200] or type(err).__name__}")
        if not isinstance(data, dict):
            return _error(400, "invalid_payload", "body must be a JSON object (Alertmanager webhook version 4)")
        if str(data.get("version")) != SUPPORTED_VERSION:
            return _error(400, "unsupported_version", f"version {data.get('version')!r}; only {SUPPORTED_VERSION!r}")
        try:
            payload = WebhookPayload.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return _error(400, "invalid_payload", f"{where}: {first['msg']} ({err.error_count()} error(s))")
        return await self._process(payload)

    # --- matching and de-duplication --------------------------------------------------------------

    def _target(self, alert: Alert) -> tuple[str, str] | str:
        """(namespace, name) the alert names, or why it names none."""
        name = alert.labels.get(self.options.slo_label)
        namespace = alert.labels.get(self.options.namespace_label)
        if not name or not namespace:
            return f"no {self.options.slo_label!r} and {self.options.namespace_label!r} labels"
        if not _NAME.match(name) or not _NAMESPACE.match(namespace):
            return f"{namespace}/{name} is not a valid SLOReview name"
        return namespace, name

    async def _incident(self, alert: Alert, budget: _RequestBudget) -> str | None:
        """Create the alert's IncidentReport when its labels match: created, duplicate, unavailable or None."""
        wanted = dict(self.options.incident_labels)
        if self.incidents is None or not incident_matches(alert, wanted):
            return None
        namespace = alert.labels.get(self.options.namespace_label, "")
        if not _NAMESPACE.match(namespace):
            return "no-namespace"
        allowed = self.options.incident_namespaces
        if "*" not in allowed and namespace not in allowed:
            return "namespace-not-allowed"
        key = ("incident", namespace, alert.fingerprint, alert.starts_at)
        if not self.recent.add(key):
            return "duplicate"
        if budget.incidents <= 0 or not self.incident_rate.take(namespace):
            self.recent.discard(key)  # not handled: a later delivery may still open it
            return "over-limit" if budget.incidents <= 0 else "rate-limited"
        budget.incidents -= 1
        try:
            outcome = await self.incidents.create(namespace, alert)
        except IncidentUnavailable as err:
            self.recent.discard(key)  # let Alertmanager's retry through
            logger.warning("webhook: could not create the incident report for %s: %s", alert.fingerprint, err)
            return "unavailable"
        if outcome == "no-namespace":
            self.recent.discard(key)
        elif outcome == "created":
            logger.info(
                "webhook: alert %s (%s) opened an incident report in %s",
                alert.labels.get("alertname"),
                alert.fingerprint,
                namespace,
            )
        return outcome

    async def _process(self, payload: WebhookPayload) -> web.Response:
        results: list[dict[str, Any]] = []
        budget = _RequestBudget(incidents=self.options.max_incidents_per_request)
        for alert in payload.alerts:
            result: dict[str, Any] = {"fingerprint": alert.fingerprint, "status": alert.status.value}
            results.append(result)
            incident = await self._incident(alert, budget)
            if incident is not None:
                result["incident"] = incident
            target = self._target(alert)
            if isinstance(target, str):
                if incident in ("created", "duplicate"):
                    result["action"] = "incident"
                elif incident in _REFUSED:
                    result.update(action="refused", reason=_REFUSED[incident])
                else:
                    result.update(action="unmatched", reason=target)
                continue
            namespace, name = target
            record = _record(alert, self.options)
            result["slo"] = f"{namespace}/{name}"
            key = (namespace, name, *record.key)
            # Claimed before the first await: concurrent deliveries of one alert cannot both pass.
            if not self.recent.add(key):
                result["action"] = "duplicate"
                continue
            try:
                result["action"] = await self.sink.deliver(namespace, name, record)
            except UnknownSLO:
                self.recent.discard(key)  # it may be created later
                result.update(action="unknown", reason=f"no SLOReview {namespace}/{name}")
            except TriggerUnavailable as err:
                self.recent.discard(key)  # let Alertmanager's retry through
                result.update(action="unavailable", reason=str(err)[:300])
            if result["action"] == "triggered":
                logger.info(
                    "webhook: alert %s (%s) triggers a review of %s/%s",
                    record.alertname,
                    record.fingerprint,
                    namespace,
                    name,
                )
        actions = {r["action"] for r in results}
        if "unavailable" in actions or any(r.get("incident") == "unavailable" for r in results):
            return _reply(503, error="unavailable", reason="could not record every alert; retry", results=results)
        if actions & {"triggered", "recorded", "duplicate", "incident", "refused"}:
            return _reply(200, results=results)
        if "unknown" in actions:
            return _reply(404, error="unknown_slo", reason="no alert names an existing SLOReview", results=results)
        return _reply(
            422,
            error="unmatched",
            reason=f"no alert carries the {self.options.slo_label!r} and {self.options.namespace_label!r} labels",
            results=results,
        )

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); returns the port."""
        tls = self._tls()  # a half-configured TLS fails here, before anything listens
        # No access log: a flood of bad requests must not become a flood of log lines.
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True, ssl_context=tls)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    def _tls(self) -> ssl.SSLContext | None:
        cert, key = self.options.tls_cert_file, self.options.tls_key_file
        if not cert and not key:
            return None
        if not cert or not key:
            raise ValueError("webhook TLS needs both a certificate and a key file")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        return context

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
