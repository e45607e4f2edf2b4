"""Kopf handlers for SLOReview; all logic is in :mod:`infragenius.slo.reconcile`."""

from __future__ import annotations

from typing import Any

import kopf

from infragenius.models.api import GROUP, RERUN_ANNOTATION, SLO_REVIEW, TRIGGER_ANNOTATION, VERSION
from infragenius.observability.logs import HandlerLogger
from infragenius.slo import reconcile

RESOURCE = (GROUP, VERSION, SLO_REVIEW.plural)


@kopf.on.resume(*RESOURCE, when=lambda body, **_: reconcile.needs_review_on_resume(body))
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def slo_changed(body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, reason: str, **_: Any) -> None:
    triggered = reconcile.trigger_pending(body)
    await reconcile.review(body, memo.runtime, logger, reason=str(reason), triggered=triggered, rules=memo.slo_rules)


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", RERUN_ANNOTATION))
async def slo_rerun(body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, **_: Any) -> None:
    if reconcile.rerun_requested(body):
        await reconcile.review(body, memo.runtime, logger, reason="rerun annotation", rules=memo.slo_rules)


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", TRIGGER_ANNOTATION))
async def slo_triggered(body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, **_: Any) -> None:
    if reconcile.trigger_pending(body):
        await reconcile.review(body, memo.runtime, logger, reason="alert", triggered=True, rules=memo.slo_rules)


# Timers exist only for reviews with spec.interval; whether one is due is checked on every tick
# because `when` is evaluated on watch events only.
@kopf.timer(*RESOURCE, interval=15.0, initial_delay=15.0, when=lambda spec, **_: bool(spec.get("interval")))
async def slo_interval(body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, **_: Any) -> None:
    if reconcile.review_due(body):
        await reconcile.review(body, memo.runtime, logger, reason="interval", rules=memo.slo_rules)
