"""Kopf handlers for IncidentReport; all logic is in :mod:`infragenius.incident.service`."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from infragenius.incident import service
from infragenius.models.analysis import GROUP, VERSION
from infragenius.models.incident import PLURAL, RERUN_ANNOTATION

RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.on.resume(*RESOURCE, when=lambda body, **_: service.needs_run_on_resume(body))
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def incident_changed(
    body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, retry: int, reason: str, **_: Any
) -> None:
    await service.run(body, memo.runtime, logger, retry=retry, reason=str(reason), cause="spec")


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", RERUN_ANNOTATION))
async def incident_rerun(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, retry: int, **_: Any) -> None:
    if service.rerun_requested(body):
        token = body["metadata"]["annotations"][RERUN_ANNOTATION]
        await service.run(body, memo.runtime, logger, retry=retry, reason="rerun annotation", cause=f"rerun:{token}")
