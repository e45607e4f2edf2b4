"""Alerts that name an SLOReview: recorded in ``status.triggers``, and a firing one asks for a review
through the trigger annotation that the SLOReview handler watches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from kubernetes import client

from infragenius.models.api import SLO_REVIEW, TRIGGER_ANNOTATION
from infragenius.models.slo import MAX_TRIGGERS, AlertStatus, TriggerRecord
from infragenius.runs.resources import CustomResources


class UnknownSLO(Exception):
    """The alert names an SLOReview that does not exist."""


class TriggerUnavailable(Exception):
    """The Kubernetes API could not record the alert; Alertmanager should retry (the webhook answers 503)."""


class KubeTriggerSink:
    """Records alerts in ``status.triggers`` and sets the trigger annotation the review handler watches."""

    def __init__(self, api: client.ApiClient, history: int = MAX_TRIGGERS) -> None:
        self.reviews = CustomResources(api, SLO_REVIEW)
        self.history = history
        # (lock, users): a lock lives while someone holds or waits for it, so the map stays as small as the
        # number of SLOs receiving alerts at this moment, whatever names alerts carry.
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @property
    def locks_held(self) -> int:
        """SLOs with a delivery in progress or waiting: 0 when idle, however many SLOs alerts named."""
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def _lock(self, namespace: str, name: str) -> AsyncIterator[None]:
        key = (namespace, name)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _call(self, name: str, request: Any) -> Any:
        try:
            return await request
        except client.ApiException as err:
            if err.status == 404:
                raise UnknownSLO(name) from err
            raise TriggerUnavailable(f"Kubernetes API: {err.status} {err.reason}") from err
        except Exception as err:  # connection errors from urllib3
            raise TriggerUnavailable(f"Kubernetes API: {type(err).__name__}: {err}"[:300]) from err

    async def deliver(self, namespace: str, name: str, record: TriggerRecord) -> str:
        """Record the alert; a firing one also asks for a review. Returns triggered, recorded or duplicate."""
        # One writer per SLO: status.triggers is replaced whole, so concurrent appends would lose records.
        async with self._lock(namespace, name):
            obj = await self._call(name, self.reviews.get(namespace, name))
            triggers: list[dict[str, Any]] = list((obj.get("status") or {}).get("triggers") or [])
            annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(TRIGGER_ANNOTATION)
            if any(_key(t) == record.key for t in triggers):
                firing = record.status is AlertStatus.firing
                if firing and annotation != record.token and _newest_firing(triggers) == record.key:
                    # Recorded earlier but the annotation patch failed: finish the job.
                    await self._annotate(namespace, name, record.token)
                    return "triggered"
                return "duplicate"
            triggers = [*triggers, record.model_dump(by_alias=True, mode="json")][-self.history :]
            # Status first: when the review starts, it finds the alert it was triggered by.
            await self._call(name, self.reviews.merge_patch_status(namespace, name, {"triggers": triggers}))
            if record.status is not AlertStatus.firing:
                return "recorded"
            await self._annotate(namespace, name, record.token)
            return "triggered"

    async def _annotate(self, namespace: str, name: str, token: str) -> None:
        patch = {"metadata": {"annotations": {TRIGGER_ANNOTATION: token}}}
        await self._call(name, self.reviews.merge_patch(namespace, name, patch))


def _key(raw: dict[str, Any]) -> tuple[str, str, str]:
    return (str(raw.get("fingerprint")), str(raw.get("startsAt")), str(raw.get("status")))


def _newest_firing(triggers: Sequence[dict[str, Any]]) -> tuple[str, str, str] | None:
    firing = [t for t in triggers if t.get("status") == AlertStatus.firing.value]
    return _key(firing[-1]) if firing else None
