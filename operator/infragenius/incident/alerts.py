"""IncidentReports created by Alertmanager alerts (through the SLOReview webhook).

A firing alert whose labels match the configured ones (e.g. ``severity=critical``) and that names a
namespace gets one IncidentReport whose window starts ``lead`` minutes before ``startsAt``. The report's
name is derived from the alert's fingerprint and startsAt, and it is only ever created (never updated),
so the same alert never creates two, across retries, replicas and restarts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
from typing import Any, Mapping

from kubernetes import client

from infragenius import kubeapi
from infragenius.incident.timeline import parse_time, rfc3339
from infragenius.models.alertmanager import Alert, AlertState
from infragenius.models.analysis import GROUP, VERSION
from infragenius.models.incident import PLURAL, IncidentSeverity

FINGERPRINT_LABEL = "infragenius.io/alert-fingerprint"
ALERTNAME_ANNOTATION = "infragenius.io/alertname"
_SAFE = re.compile(r"[^a-z0-9-]+")
# Alert severities mapped onto the report's; anything else is SEV3.
SEVERITY_MAP = {"critical": IncidentSeverity.sev1, "page": IncidentSeverity.sev2, "error": IncidentSeverity.sev2,
                "warning": IncidentSeverity.sev3, "ticket": IncidentSeverity.sev3, "info": IncidentSeverity.sev4}


class IncidentUnavailable(Exception):
    """The Kubernetes API could not create the report; Alertmanager should retry."""


def matches(alert: Alert, wanted: Mapping[str, str]) -> bool:
    """A firing alert carrying every wanted label value (an empty selection matches nothing)."""
    return bool(wanted) and alert.status is AlertState.firing and all(alert.labels.get(k) == v for k, v in wanted.items())


def report_name(alert: Alert) -> str:
    """Deterministic per (fingerprint, startsAt): a repeat of the alert maps to the same object."""
    digest = hashlib.sha256(f"{alert.fingerprint}|{alert.starts_at}".encode()).hexdigest()[:10]
    base = _SAFE.sub("-", alert.labels.get("alertname", "alert").lower()).strip("-")[:40].strip("-") or "alert"
    return f"{base}-{digest}"


def report_for(alert: Alert, namespace: str, lead_minutes: float, now: dt.datetime) -> dict[str, Any]:
    starts = parse_time(alert.starts_at) or now
    start = starts - dt.timedelta(minutes=lead_minutes)
    end = max(now, starts + dt.timedelta(minutes=1))
    severity = SEVERITY_MAP.get(alert.labels.get("severity", "").lower(), IncidentSeverity.sev3)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IncidentReport",
        "metadata": {
            "name": report_name(alert),
            "namespace": namespace,
            "labels": {FINGERPRINT_LABEL: _SAFE.sub("-", alert.fingerprint.lower())[:63].strip("-") or "none"},
            "annotations": {ALERTNAME_ANNOTATION: alert.labels.get("alertname", "")[:253]},
        },
        "spec": {
            "start": rfc3339(start),
            "end": rfc3339(end),
            "severity": severity.value,
            "alert": {"name": alert.labels.get("alertname", "alert")[:253], "fingerprint": alert.fingerprint, "startsAt": rfc3339(starts)},
        },
    }


class KubeIncidentSink:
    """Creates the IncidentReport for an alert; 409 (already there) means this alert was handled."""

    def __init__(self, api: client.ApiClient, lead_minutes: float = 15) -> None:
        self.api, self.lead_minutes = api, lead_minutes

    async def create(self, namespace: str, alert: Alert) -> str:
        """'created' or 'duplicate'; raises IncidentUnavailable when the API cannot say (the webhook answers 503)."""
        body = report_for(alert, namespace, self.lead_minutes, dt.datetime.now(dt.timezone.utc))
        try:
            await asyncio.to_thread(
                kubeapi.request, self.api, "POST", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}",
                headers={"Content-Type": "application/json"},
                body=body, timeout=(5, 15),
            )
        except client.ApiException as err:
            if err.status == 409:
                return "duplicate"
            if err.status == 404:
                return "no-namespace"
            raise IncidentUnavailable(f"Kubernetes API: {err.status} {err.reason}") from err
        except Exception as err:  # connection errors from urllib3
            raise IncidentUnavailable(f"Kubernetes API: {type(err).__name__}: {err}"[:300]) from err
        return "created"
