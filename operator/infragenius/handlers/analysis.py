"""Kopf handlers for Analysis; all logic is in :mod:`infragenius.analysis.service`."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from infragenius.analysis import service
from infragenius.models.analysis import GROUP, PLURAL, RERUN_ANNOTATION, VERSION

RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.on.resume(*RESOURCE, when=lambda body, **_: service.needs_run_on_resume(body))
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def analysis_changed(
    body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, retry: int, reason: str, **_: Any
) -> None:
    await service.run(body, memo.runtime, logger, retry=retry, reason=str(reason), cause="spec")


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", RERUN_ANNOTATION))
async def analysis_rerun(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, retry: int, **_: Any) -> None:
    if service.rerun_requested(body):
        token = body["metadata"]["annotations"][RERUN_ANNOTATION]
        await service.run(body, memo.runtime, logger, retry=retry, reason="rerun annotation", cause=f"rerun:{token}")


# Timers exist only for analyses with spec.interval (Kopf starts and stops them as the spec changes);
# `when` is evaluated on watch events only, so whether a run is due is checked on every tick.
@kopf.timer(*RESOURCE, interval=15.0, initial_delay=15.0, when=lambda spec, **_: bool(spec.get("interval")))
async def analysis_interval(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    if service.rerun_due(body):
        # One interval run per previous completion, however often the timer fires.
        previous = (body.get("status") or {}).get("completedAt")
        await service.run(body, memo.runtime, logger, reason="interval", cause=f"interval:{previous}")
