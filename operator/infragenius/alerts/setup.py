"""The receiver as the operator runs it: configured from settings, its sinks writing through the runtime's client."""

from __future__ import annotations

from infragenius.alerts.incidents import KubeIncidentSink
from infragenius.alerts.receiver import PATH, AlertWebhook, WebhookOptions
from infragenius.alerts.slo_triggers import KubeTriggerSink
from infragenius.observability.logs import HandlerLogger
from infragenius.runs.lifecycle import Runtime


async def start_receiver(runtime: Runtime, logger: HandlerLogger) -> AlertWebhook | None:
    """Listen for Alertmanager when a token is configured; None when the receiver is off."""
    settings = runtime.settings
    if settings.webhook_token is None or not settings.webhook_token.get_secret_value():
        logger.info("Alertmanager webhook off: INFRAGENIUS_WEBHOOK_TOKEN is not set")
        return None
    options = WebhookOptions(
        token=settings.webhook_token,
        max_body_bytes=settings.webhook_max_body_bytes,
        slo_label=settings.webhook_slo_label,
        namespace_label=settings.webhook_namespace_label,
        dedupe_size=settings.webhook_dedupe_size,
        incident_labels=tuple(sorted(settings.incident_alert_labels.items())),
        incident_namespaces=frozenset(settings.incident_alert_namespaces),
        max_incidents_per_request=settings.incident_alert_max_per_request,
        incidents_per_minute=settings.incident_alert_per_minute,
        tls_cert_file=settings.webhook_tls_cert_file,
        tls_key_file=settings.webhook_tls_key_file,
    )
    if settings.incident_alert_labels and not settings.incident_alert_namespaces:
        logger.warning(
            "alerts match INFRAGENIUS_INCIDENT_ALERT_LABELS, but no namespace may get IncidentReports: "
            "set INFRAGENIUS_INCIDENT_ALERT_NAMESPACES"
        )
    incidents = None
    if settings.incident_alert_labels:
        incidents = KubeIncidentSink(runtime.api, settings.incident_lead_minutes)
    webhook = AlertWebhook(options, KubeTriggerSink(runtime.api), incidents)
    # A port in use is a configuration error: fail the start-up rather than run without the endpoint.
    port = await webhook.start(settings.webhook_host, settings.webhook_port)
    scheme = "https" if settings.webhook_tls_cert_file else "http"
    logger.info("Alertmanager webhook listening on %s://%s:%d%s", scheme, settings.webhook_host, port, PATH)
    return webhook
