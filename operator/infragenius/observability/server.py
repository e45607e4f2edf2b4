"""``/healthz``, ``/readyz`` and ``/metrics`` on the health port, for probes and Prometheus.

It starts first in the start-up handler, so liveness answers while the rest of start-up
(stack, model pull, migrations) is still running, and readiness turns true when it is done.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infragenius.observability.metrics import REGISTRY


@dataclass
class HealthState:
    """What the probes report; handlers flip ``ready`` and may list what is not ready yet."""

    ready: bool = False
    waiting_for: list[str] = field(default_factory=lambda: ["start-up"])

    def mark_ready(self) -> None:
        self.ready, self.waiting_for = True, []


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HealthServer:
    """``routes``: more GET endpoints (path, handler) from layers above, such as the SLO rollout gate."""

    def __init__(self, state: HealthState, routes: Sequence[tuple[str, Handler]] = ()) -> None:
        self.state = state
        self.routes = list(routes)
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        for path, handler in self.routes:
            app.router.add_get(path, handler)
        return app

    async def _healthz(self, _: web.Request) -> web.Response:
        # Answering at all proves the event loop is not blocked, which is what liveness is for.
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.state.ready:
            return web.json_response({"status": "ready"})
        body = {"status": "not ready", "waitingFor": self.state.waiting_for}
        return web.Response(status=503, text=json.dumps(body), content_type="application/json")

    async def _metrics(self, _: web.Request) -> web.Response:
        payload = generate_latest(REGISTRY)
        response = web.Response(body=payload)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def start(self, host: str, port: int) -> int:
        """Listen and return the bound port (``port=0`` picks a free one)."""
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, reuse_address=True).start()
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
