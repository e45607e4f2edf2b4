"""Putting the server together: connections, the service, both faces behind one authenticating gate, and the
health port. `serve` runs it until a signal; `build` is what tests and `serve` share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
import uvicorn
from kubernetes import client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infragenius.history.store import HistoryStore
from infragenius.runs.startup import api_client
from infragenius.server import http_face, mcp_face, metrics
from infragenius.server.apikeys import ApiKeyAuthenticator, looks_like_api_key
from infragenius.server.audit import AuditTrail
from infragenius.server.errors import HTTP_STATUS, ErrorCode, ServiceError
from infragenius.server.identity import Identity
from infragenius.server.kubeauth import KubernetesAuthenticator
from infragenius.server.ratelimit import LocalBuckets, RateLimiter
from infragenius.server.readers import WatchCache
from infragenius.server.service import Authorizer, InfraGeniusService
from infragenius.settings import Settings
from infragenius.stack.apply import endpoints

log = logging.getLogger(__name__)
IDENTITY_SCOPE_KEY = mcp_face.IDENTITY_SCOPE_KEY
assert IDENTITY_SCOPE_KEY == http_face.IDENTITY_SCOPE_KEY
UNAUTHENTICATED_RPC_CODE = -32001


class BodyTooLarge(Exception):
    pass


class Gatekeeper:
    """Pure ASGI middleware in front of /mcp and /v1: bounds the body, then authenticates the bearer token
    (an API key or a Kubernetes token) and leaves the identity in the scope. Nothing passes anonymously."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Callable[[str], Awaitable[Identity]],
        max_body_bytes: int,
        on_refusal: Callable[[str, str, float], None],
        failures_per_minute: int = 600,
    ) -> None:
        self._app = app
        self._authenticate = authenticate
        self._max_body = max_body_bytes
        self._on_refusal = on_refusal
        self._failures = LocalBuckets()
        self._failures_per_minute = failures_per_minute
        self._blocked_until: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        is_mcp = path == "/mcp" or path.startswith("/mcp/")
        if path == "/v1/openapi.json" or not (is_mcp or path.startswith("/v1/")):
            await self._app(scope, receive, send)
            return
        started = time.monotonic()
        face = "mcp" if is_mcp else "http"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        if declared > self._max_body:
            await self._refuse(send, is_mcp, ServiceError(ErrorCode.too_large, f"body over {self._max_body} bytes"))
            return
        try:
            body = await self._read_body(receive)
        except BodyTooLarge:
            await self._refuse(send, is_mcp, ServiceError(ErrorCode.too_large, f"body over {self._max_body} bytes"))
            return
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        client_address = (scope.get("client") or ("unknown", 0))[0]
        try:
            # Bad credentials cost a Postgres lookup or a TokenReview each: an address that keeps sending
            # them is refused before either, until its bucket of failures refills.
            blocked = self._blocked_until.get(client_address, 0.0) - time.monotonic()
            if blocked > 0:
                raise ServiceError(
                    ErrorCode.rate_limited, "too many failed authentications from this address", retry_after=blocked
                )
            if scheme.lower() != "bearer" or not token:
                raise ServiceError(
                    ErrorCode.unauthenticated, "send Authorization: Bearer <API key or Kubernetes token>"
                )
            identity = await self._authenticate(token)
        except ServiceError as err:
            if err.code is ErrorCode.unauthenticated:
                wait = self._failures.take(client_address, self._failures_per_minute)
                if wait > 0:
                    if len(self._blocked_until) > 100000:
                        self._blocked_until.clear()
                    self._blocked_until[client_address] = time.monotonic() + wait
            self._on_refusal(face, err.code.value, started)
            await self._refuse(send, is_mcp, err)
            return
        scope[IDENTITY_SCOPE_KEY] = identity
        await self._app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _refuse(self, send: Send, is_mcp: bool, err: ServiceError) -> None:
        status = HTTP_STATUS[err.code]
        if is_mcp:
            code = UNAUTHENTICATED_RPC_CODE if err.code is ErrorCode.unauthenticated else -32600
            payload: dict[str, Any] = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": err.message}}
        else:
            payload = {"error": err.as_dict()}
        body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if err.code is ErrorCode.unauthenticated:
            headers.append((b"www-authenticate", b'Bearer realm="infragenius"'))
        if err.code is ErrorCode.rate_limited:
            headers.append((b"retry-after", str(max(1, math.ceil(err.retry_after or 1))).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body was read to check its size and authenticate; hand it on once, then the real channel."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


@dataclass
class Built:
    app: ASGIApp
    health_app: ASGIApp
    service: InfraGeniusService
    cache: WatchCache
    audit: AuditTrail
    history: HistoryStore | None
    redis_client: redis.Redis | None
    api: client.ApiClient


def build(
    settings: Settings,
    *,
    api: client.ApiClient,
    history: HistoryStore | None,
    redis_client: redis.Redis | None,
    cache: WatchCache,
) -> Built:
    api_keys = ApiKeyAuthenticator(history.pool, cache_seconds=settings.server_auth_cache_seconds) if history else None
    kubernetes = KubernetesAuthenticator(
        api, tier=settings.server_kubernetes_tier, cache_seconds=settings.server_auth_cache_seconds
    )
    audit = AuditTrail(
        history.pool if history else None,
        batch=settings.server_audit_batch,
        queue_size=settings.server_audit_queue,
        retention_days=settings.server_audit_retention_days,
    )
    service = InfraGeniusService(
        reader=cache,
        api=api,
        history=history.pool if history else None,
        authorizer=Authorizer(kubernetes),
        limiter=RateLimiter(redis_client, settings.server_tier_limits),
        audit=audit,
        trigger_max_wait_seconds=settings.server_trigger_max_wait_seconds,
    )

    async def authenticate(token: str) -> Identity:
        if looks_like_api_key(token):
            if api_keys is None:
                raise ServiceError(ErrorCode.unauthenticated, "API keys need Postgres, which this server lacks")
            return await api_keys.authenticate(token)
        return await kubernetes.authenticate(token)

    mcp_server = mcp_face.build_mcp_server(service, face="mcp")
    for route in http_face.starlette_routes(service):
        mcp_server.custom_route(route.path, methods=sorted(route.methods or ["GET"]))(route.endpoint)
    # Stateless: any replica answers any request, so two processes behind one Service need no affinity.
    starlette_app = mcp_server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        max_request_body_size=settings.server_max_body_bytes,
        host=settings.server_host,
    )

    def on_refusal(face: str, outcome: str, started: float) -> None:
        service.record_refusal(face=face, operation="authenticate", outcome=outcome, started=started)

    gated = Gatekeeper(
        starlette_app,
        authenticate=authenticate,
        max_body_bytes=settings.server_max_body_bytes,
        on_refusal=on_refusal,
        failures_per_minute=settings.server_auth_failures_per_minute,
    )
    return Built(
        app=gated,
        health_app=health_app(cache, history),
        service=service,
        cache=cache,
        audit=audit,
        history=history,
        redis_client=redis_client,
        api=api,
    )


def health_app(cache: WatchCache, history: HistoryStore | None) -> Starlette:
    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_request: Request) -> Response:
        problems = []
        if not cache.ready():
            problems.append("the resource cache is loading")
        if history is not None and history.pool.closed:
            problems.append("the history pool is closed")
        if problems:
            return JSONResponse({"ready": False, "problems": problems}, status_code=503)
        return JSONResponse({"ready": True})

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ]
    )


async def connect(
    settings: Settings, stack: AsyncExitStack
) -> tuple[client.ApiClient, HistoryStore | None, redis.Redis | None]:
    api = api_client(settings)
    stack.callback(api.close)
    urls = await asyncio.to_thread(endpoints, settings, api)
    history = None
    if urls.postgres:
        history = HistoryStore(urls.postgres, reconnect_max_seconds=settings.history_reconnect_max_seconds)
        await history.open(wait=True, timeout=30)
        stack.push_async_callback(history.close)
        applied = await asyncio.wait_for(history.migrate(), timeout=30)
        if applied:
            log.info("history: applied migrations %s", applied)
    else:
        log.warning("serve: no Postgres: API keys, history search and the audit trail are off")
    redis_client = None
    if urls.redis:
        # Short timeouts: a Redis outage must cost a call milliseconds before the in-memory limit takes over.
        redis_client = redis.Redis.from_url(urls.redis, socket_timeout=0.5, socket_connect_timeout=0.5)
        stack.push_async_callback(redis_client.aclose)
    else:
        log.warning("serve: no Redis: rate limits are per replica, in memory")
    return api, history, redis_client


async def serve(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        api, history, redis_client = await connect(settings, stack)
        cache = WatchCache(api)
        cache.start()
        stack.callback(cache.stop)
        built = build(settings, api=api, history=history, redis_client=redis_client, cache=cache)
        built.audit.start()
        stack.push_async_callback(built.audit.stop)
        main = _Uvicorn(
            uvicorn.Config(
                built.app,
                host=settings.server_host,
                port=settings.server_port,
                log_level="warning",
                access_log=False,
                server_header=False,
            )
        )
        health = _Uvicorn(
            uvicorn.Config(
                built.health_app,
                host=settings.server_host,
                port=settings.server_health_port,
                log_level="warning",
                access_log=False,
                server_header=False,
                lifespan="off",
            )
        )
        # One handler stops both servers; then the exit stack flushes the audit trail and closes the pools.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, _stop_all, main, health)
        log.info("serve: /mcp and /v1 on port %d, health on %d", settings.server_port, settings.server_health_port)
        await asyncio.gather(main.serve(), health.serve())
        log.info("serve: stopped")


def _stop_all(*servers: uvicorn.Server) -> None:
    for server in servers:
        server.should_exit = True


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: it re-raises a caught SIGTERM after shutting down, which
    would kill the process before the audit trail is flushed; serve() handles the signals instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
