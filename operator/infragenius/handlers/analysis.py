"""Kopf handlers for Analysis; all logic is in :mod:`infragenius.analysis.reconcile`."""

from __future__ import annotations

from typing import Any

import kopf

from infragenius.analysis import reconcile
from infragenius.models.api import ANALYSIS, GROUP, VERSION
from infragenius.observability.logs import HandlerLogger
from infragenius.runs.lifecycle import change_request, needs_run_on_resume

RESOURCE = (GROUP, VERSION, ANALYSIS.plural)


# One change handler per kind: it decides what the change asks for (new spec, rerun, nothing), and its
# run's final status write carries Kopf's record of the change (runs.handled), saving Kopf's own PATCH.
@kopf.on.resume(*RESOURCE, when=lambda body, **_: needs_run_on_resume(body))
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
async def analysis_changed(
    body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, retry: int, reason: str, **_: Any
) -> None:
    asked = change_request(body, str(reason))
    if asked is not None:
        cause, why = asked
        handled = memo.handled.carry(body)
        await reconcile.run(body, memo.runtime, logger, retry=retry, reason=why, cause=cause, handled=handled)


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
