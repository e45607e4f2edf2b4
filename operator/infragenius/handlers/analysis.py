"""Kopf handlers for Analysis; all logic is in :mod:`infragenius.analysis.reconcile`."""

from __future__ import annotations

from typing import Any

import kopf

from infragenius.analysis import reconcile
from infragenius.models.api import ANALYSIS, GROUP, RERUN_ANNOTATION, VERSION
from infragenius.observability.logs import HandlerLogger
from infragenius.runs.lifecycle import needs_run_on_resume, rerun_requested

RESOURCE = (GROUP, VERSION, ANALYSIS.plural)


@kopf.on.resume(*RESOURCE, when=lambda body, **_: needs_run_on_resume(body))
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def analysis_changed(
    body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, retry: int, reason: str, **_: Any
) -> None:
    await reconcile.run(body, memo.runtime, logger, retry=retry, reason=str(reason), cause="spec")


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", RERUN_ANNOTATION))
async def analysis_rerun(body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, retry: int, **_: Any) -> None:
    if rerun_requested(body):
        token = body["metadata"]["annotations"][RERUN_ANNOTATION]
        await reconcile.run(body, memo.runtime, logger, retry=retry, reason="rerun annotation", cause=f"rerun:{token}")


# Timers exist only for analyses with spec.interval (Kopf starts and stops them as the spec changes);
# `when` is evaluated on watch events only, so whether a run is due is checked on every tick.
@kopf.timer(*RESOURCE, interval=15.0, initial_delay=15.0, when=lambda spec, **_: bool(spec.get("interval")))
async def analysis_interval(body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, **_: Any) -> None:
    if reconcile.rerun_due(body):
        # One interval run per previous completion, however often the timer fires.
        previous = (body.get("status") or {}).get("completedAt")
        await reconcile.run(body, memo.runtime, logger, reason="interval", cause=f"interval:{previous}")


# optional: no finalizer; a missed delete only leaves a stale gauge until the operator restarts.
@kopf.on.delete(*RESOURCE, optional=True)
async def analysis_deleted(body: kopf.Body, **_: Any) -> None:
    reconcile.forget(body)
