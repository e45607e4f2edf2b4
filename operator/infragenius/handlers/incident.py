"""Kopf handlers for IncidentReport; all logic is in :mod:`infragenius.incident.reconcile`."""

from __future__ import annotations

from typing import Any

import kopf

from infragenius.incident import reconcile
from infragenius.models.api import GROUP, INCIDENT_REPORT, VERSION
from infragenius.observability.logs import HandlerLogger
from infragenius.runs.lifecycle import change_request, needs_run_on_resume

RESOURCE = (GROUP, VERSION, INCIDENT_REPORT.plural)


# One change handler per kind: it decides what the change asks for (new spec, rerun, nothing), and its
# run's final status write carries Kopf's record of the change (runs.handled), saving Kopf's own PATCH.
@kopf.on.resume(*RESOURCE, when=lambda body, **_: needs_run_on_resume(body))
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
async def incident_changed(
    body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, retry: int, reason: str, **_: Any
) -> None:
    asked = change_request(body, str(reason))
    if asked is not None:
        cause, why = asked
        handled = memo.handled.carry(body)
        await reconcile.run(body, memo.runtime, logger, retry=retry, reason=why, cause=cause, handled=handled)
