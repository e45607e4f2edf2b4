"""Start-up and clean-up: settings and clients are created once (``runs.startup``) and shared through ``memo``;
the Alertmanager receiver starts once they exist."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from infragenius.alerts.setup import start_receiver
from infragenius.observability import metrics
from infragenius.observability.logs import HandlerLogger
from infragenius.observability.server import HealthServer, HealthState
from infragenius.runs import startup
from infragenius.runs.handled import HandledInStatus
from infragenius.settings import Settings
from infragenius.slo.gate import ROUTE, SLOGate
from infragenius.slo.publish import RulesPublisher

# Not "infragenius.io": Kopf ignores annotations under its own prefix, and users set infragenius.io/rerun.
PREFIX = "kopf.infragenius.io"


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # Kopf's parsers read KUBECONFIG when called; the client library's default froze it at import time.
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: HandlerLogger, **_: Any) -> None:
    # Retry progress lives in our own annotations. The record of the last handled change lives in status, where
    # a run's final write carries it (runs.handled); the annotation earlier versions wrote is still read.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    legacy = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX, key="last-handled-configuration")
    memo.handled = HandledInStatus(PREFIX, legacy=legacy)
    settings.persistence.diffbase_storage = memo.handled
    settings.posting.level = logging.WARNING  # we post our own events; Kopf's INFO logs would flood them
    # An API server restart (down, then 403s while its authorizer warms up) can outlast Kopf's ~54 s of
    # retries, and the completion events queued meanwhile were lost: retry them for about four minutes,
    # never more than 30 s apart, so they arrive soon after the server is back.
    settings.posting.default_backoffs = (1, 1, 2, 3, 5, 5, 5, 10, 10, 10, 10, 20, 20, 30, 30, 30, 30)
    settings.watching.server_timeout = 300
    ours = Settings()
    # Peering is switched on by `infragenius operator` (or kopf run --peering); these tune it.
    settings.peering.lifetime = ours.peering_lifetime_seconds
    settings.peering.stealth = True  # keep-alives every minute would bury the useful lines
    metrics.STARTED.set_to_current_time()
    memo.health = HealthState()
    gate = SLOGate(ours)
    routes = [] if ours.slo_rollout_gate == "off" else [(ROUTE, gate.handle)]
    memo.health_server = HealthServer(memo.health, routes)
    # A port in use is a configuration error: fail the start-up rather than run without probes.
    port = await memo.health_server.start("0.0.0.0", ours.health_port)
    gate_note = f", {ROUTE} ({ours.slo_rollout_gate})" if routes else ""
    logger.info("health and metrics on :%d (/healthz, /readyz, /metrics%s)", port, gate_note)
    memo.started = await startup.start(ours, logger)
    memo.runtime = memo.started.runtime
    gate.api = memo.runtime.api
    # None: the operator writes no rules; the SLO handlers pass it on.
    memo.slo_rules = RulesPublisher(memo.runtime.api, ours.slo_rule_labels) if ours.slo_rules_enabled else None
    memo.webhook = await start_receiver(memo.runtime, logger)
    memo.health.mark_ready()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    webhook = getattr(memo, "webhook", None)
    if webhook is not None:
        await webhook.stop()
    server = getattr(memo, "health_server", None)
    if server is not None:
        await server.stop()
    started = getattr(memo, "started", None)
    if started is not None:
        await startup.stop(started)
