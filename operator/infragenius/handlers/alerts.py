"""Start and stop the Alertmanager receiver with the operator (the server: :mod:`infragenius.alerts.receiver`)."""

from __future__ import annotations

from typing import Any

import kopf

from infragenius.alerts.incidents import KubeIncidentSink
from infragenius.alerts.receiver import AlertWebhook, WebhookOptions
from infragenius.alerts.slo_triggers import KubeTriggerSink
from infragenius.observability.logs import HandlerLogger


@kopf.on.startup()
async def start_webhook(memo: kopf.Memo, logger: HandlerLogger, **_: Any) -> None:
    runtime = getattr(memo, "runtime", None)
    if runtime is None:  # the lifecycle start-up handler creates it; wait for it
        raise kopf.TemporaryError("runtime not ready", delay=1)
    settings = runtime.settings
    if settings.webhook_token is None or not settings.webhook_token.get_secret_value():
        logger.info("Alertmanager webhook off: INFRAGENIUS_WEBHOOK_TOKEN is not set")
        return
    webhook = AlertWebhook(
        WebhookOptions(
            token=settings.webhook_token,
            max_body_bytes=settings.webhook_max_body_bytes,
            slo_label=settings.webhook_slo_label,
            namespace_label=settings.webhook_namespace_label,
            dedupe_size=settings.webhook_dedupe_size,
            incident_labels=tuple(sorted(settings.incident_alert_labels.items())),
        ),
        KubeTriggerSink(runtime.api),
        KubeIncidentSink(runtime.api, settings.incident_lead_minutes) if settings.incident_alert_labels else None,
    )
    # A port in use is a configuration error: fail the start-up rather than run without the endpoint.
    port = await webhook.start(settings.webhook_host, settings.webhook_port)
    memo.webhook = webhook
    logger.info("Alertmanager webhook listening on %s:%d/alertmanager", settings.webhook_host, port)


@kopf.on.cleanup()
async def stop_webhook(memo: kopf.Memo, **_: Any) -> None:
    webhook = getattr(memo, "webhook", None)
    if webhook is not None:
        await webhook.stop()
