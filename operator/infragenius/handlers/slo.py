"""Kopf handlers for SLOReview; all logic is in :mod:`infragenius.slo.service`."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from infragenius.models.analysis import GROUP, VERSION
from infragenius.models.slo import PLURAL, RERUN_ANNOTATION, TRIGGER_ANNOTATION
from infragenius.slo import service

RESOURCE = (GROUP, VERSION, PLURAL)


@kopf.on.resume(*RESOURCE, when=lambda body, **_: service.needs_review_on_resume(body))
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
async def slo_changed(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, reason: str, **_: Any) -> None:
    await service.review(body, memo.runtime, logger, reason=str(reason), triggered=service.trigger_pending(body))


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", RERUN_ANNOTATION))
async def slo_rerun(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    if service.rerun_requested(body):
        await service.review(body, memo.runtime, logger, reason="rerun annotation")


@kopf.on.field(*RESOURCE, field=("metadata", "annotations", TRIGGER_ANNOTATION))
async def slo_triggered(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    if service.trigger_pending(body):
        await service.review(body, memo.runtime, logger, reason="alert", triggered=True)


# Timers exist only for reviews with spec.interval; whether one is due is checked on every tick
# because `when` is evaluated on watch events only.
@kopf.timer(*RESOURCE, interval=15.0, initial_delay=15.0, when=lambda spec, **_: bool(spec.get("interval")))
async def slo_interval(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    if service.review_due(body):
        await service.review(body, memo.runtime, logger, reason="interval")
