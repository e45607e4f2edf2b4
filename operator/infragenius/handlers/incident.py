"""Kopf handlers for IncidentReport; all logic is in :mod:`infragenius.incident.reconcile`."""

from __future__ import annotations

from typing import Any

import kopf

from infragenius.incident import reconcile
from infragenius.models.api import GROUP, INCIDENT_REPORT, RERUN_ANNOTATION, VERSION
from infragenius.observability.logs import HandlerLogger
from infragenius.runs.lifecycle import needs_run_on_resume, rerun_requested

RESOURCE = (GROUP, VERSION, INCIDENT_REPORT.plural)


@kopf.on.resume(*RESOURCE, when=lambda body, **_: needs_run_on_resume(body))
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def incident_changed(
    body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, retry: int, reason: str, **_: Any
) -> None:
    await reconcile.run(body, memo.runtime, logger, retry=retry, reason=str(reason), cause="spec")


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", RERUN_ANNOTATION))
async def incident_rerun(body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, retry: int, **_: Any) -> None:
    if rerun_requested(body):
        token = body["metadata"]["annotations"][RERUN_ANNOTATION]
        await reconcile.run(body, memo.runtime, logger, retry=retry, reason="rerun annotation", cause=f"rerun:{token}")
