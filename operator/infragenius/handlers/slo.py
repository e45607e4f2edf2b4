"""Kopf handlers for SLOReview; all logic is in :mod:`infragenius.slo.reconcile`."""

from __future__ import annotations

from typing import Any

import kopf

from infragenius.models.api import GROUP, SLO_REVIEW, VERSION
from infragenius.observability.logs import HandlerLogger
from infragenius.slo import reconcile

RESOURCE = (GROUP, VERSION, SLO_REVIEW.plural)


# One change handler, as for the other kinds: it decides what the change asks for (new spec, an alert, a
# rerun, nothing), and the review's final status write carries Kopf's record of the change (runs.handled).
@kopf.on.resume(*RESOURCE, when=lambda body, **_: reconcile.needs_review_on_resume(body))
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
async def slo_changed(body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, reason: str, **_: Any) -> None:
    asked = reconcile.review_request(body, str(reason))
    if asked is not None:
        why, triggered = asked
        handled = memo.handled.carry(body)
        await reconcile.review(
            body, memo.runtime, logger, reason=why, triggered=triggered, rules=memo.slo_rules, handled=handled
        )


# Timers exist only for reviews with spec.interval; whether one is due is checked on every tick
# because `when` is evaluated on watch events only.
@kopf.timer(*RESOURCE, interval=15.0, initial_delay=15.0, when=lambda spec, **_: bool(spec.get("interval")))
async def slo_interval(body: kopf.Body, memo: kopf.Memo, logger: HandlerLogger, **_: Any) -> None:
    if reconcile.review_due(body):
        await reconcile.review(body, memo.runtime, logger, reason="interval", rules=memo.slo_rules)
