"""Keep an SLOReview's Prometheus rules in the cluster (the I/O edge of :mod:`infragenius.slo.rules`).

The rules go into the SLOReview's own namespace, never another: a ``PrometheusRule`` when the Prometheus
Operator's CRD is served (found by discovery, cached), else a ConfigMap holding the rule file under
``<name>.rules.yaml``. Either is owned by the SLOReview (controller reference), so deleting the review
deletes its rules. Writes are server-side applies with the operator's field manager: a repeat changes
nothing, a spec change replaces the groups. An object of that name the SLOReview does not control is
never taken over. Failures come back as an outcome for status, never as exceptions.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from infragenius import kubeapi
from infragenius.models.api import API_VERSION, GROUP, SLO_REVIEW, Reason
from infragenius.models.slo import RulesKind, RulesStatus, SLOReviewSpec
from infragenius.slo import rules

FIELD_MANAGER = "infragenius-operator"
PROMETHEUS_RULE_GROUP = "monitoring.coreos.com"
PROMETHEUS_RULE_API_VERSION = f"{PROMETHEUS_RULE_GROUP}/v1"
#: On the rules object: the sha256 of the rule file it holds (what status.rules.hash reports).
HASH_ANNOTATION = f"{GROUP}/rules-hash"
MANAGED_BY = {"app.kubernetes.io/managed-by": "infragenius-operator"}
NAME_SUFFIX = "-slo-rules"
MAX_NAME = 253
# Installing the Prometheus Operator later is noticed within this long (and at once after a restart).
DISCOVERY_TTL_SECONDS = 300.0
# Transient API failures are retried briefly: the review waits for its rules, and a failure is only reported.
RETRY = kubeapi.RetryPolicy(attempts=3, deadline=10.0)
_URL = re.compile(r"^https?://\S+$")
logger = logging.getLogger(__name__)


def object_name(review: str) -> str:
    """``<review>-slo-rules``; a name too long for that is shortened with a hash, so it stays unique."""
    name = f"{review}{NAME_SUFFIX}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(review.encode()).hexdigest()[:8]
    return f"{review[: MAX_NAME - len(NAME_SUFFIX) - 9].rstrip('.-')}-{digest}{NAME_SUFFIX}"


def config_map_key(review: str) -> str:
    """``<review>.rules.yaml``, or the shortened object name's when that would be too long for a key."""
    key = f"{review}.rules.yaml"
    return key if len(key) <= MAX_NAME else f"{object_name(review)[: MAX_NAME - 11]}.rules.yaml"


def rules_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def source_of(body: Mapping[str, Any], spec: SLOReviewSpec) -> rules.SLOSource:
    """The review as the rule generator reads it; a runbook annotation that is not an http(s) URL is ignored."""
    meta = body["metadata"]
    runbook = (meta.get("annotations") or {}).get(rules.RUNBOOK_ANNOTATION)
    runbook = runbook if isinstance(runbook, str) and _URL.match(runbook) else None
    return rules.SLOSource(namespace=meta["namespace"], name=meta["name"], spec=spec, runbook_url=runbook)


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    """The SLOReview as controller: the garbage collector deletes the rules with it. No blockOwnerDeletion,
    which would need update rights on sloreviews/finalizers."""
    meta = body["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": SLO_REVIEW.kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }


@dataclass(frozen=True)
class Desired:
    """The object to apply and what status will say about it."""

    kind: RulesKind
    body: dict[str, Any]
    hash: str
    key: str | None

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])


def desired(
    kind: RulesKind,
    body: Mapping[str, Any],
    spec: SLOReviewSpec,
    labels: Mapping[str, str] | None = None,
    enabled: bool = True,
) -> Desired:
    """The rules object for one SLOReview (disabled: the same object without groups). Pure."""
    source = source_of(body, spec)
    document: dict[str, Any] = rules.rule_file([source]) if enabled else {"groups": []}
    text = rules.render(document) if document["groups"] else "groups: []\n"
    digest = rules_hash(text)
    metadata = {
        "name": object_name(source.name),
        "namespace": source.namespace,  # always the review's own: a tenant's rules stay in its namespace
        "labels": {**dict(labels or {}), **MANAGED_BY},
        "annotations": {HASH_ANNOTATION: digest},
        "ownerReferences": [owner_reference(body)],
    }
    if kind is RulesKind.prometheus_rule:
        obj = {
            "apiVersion": PROMETHEUS_RULE_API_VERSION,
            "kind": "PrometheusRule",
            "metadata": metadata,
            "spec": {"groups": document["groups"]},
        }
        return Desired(kind, obj, digest, None)
    key = config_map_key(source.name)
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {key: text}}
    return Desired(kind, obj, digest, key)


def object_path(kind: RulesKind, namespace: str, name: str) -> str:
    if kind is RulesKind.prometheus_rule:
        return f"/apis/{PROMETHEUS_RULE_API_VERSION}/namespaces/{namespace}/prometheusrules/{name}"
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


@dataclass(frozen=True)
class Outcome:
    """What one write did: the status.rules value and the RulesReady condition."""

    ok: bool
    reason: Reason
    message: str
    status: RulesStatus | None

    def status_value(self) -> dict[str, Any] | None:
        # Nulls kept: in status's merge patch they remove what the previous object had (a ConfigMap's key).
        return None if self.status is None else self.status.model_dump(by_alias=True, mode="json")


def stale(previous: Mapping[str, Any] | None) -> RulesStatus | None:
    """The last written rules, no longer current (a write failed: the object still holds the older rules)."""
    if not previous:
        return None
    try:
        return RulesStatus.model_validate({**previous, "current": False})
    except ValueError:
        return None


def _controlled_by(existing: Mapping[str, Any], uid: str) -> bool:
    refs = (existing.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


def _describe(err: BaseException) -> str:
    if isinstance(err, client.ApiException):
        return f"{err.status} {err.reason}"
    return f"{type(err).__name__}: {err}"[:300]


class RulesPublisher:
    """Writes rules with one API client; remembers for a while whether PrometheusRule is served."""

    def __init__(
        self, api: client.ApiClient, labels: Mapping[str, str] | None = None, timeout: tuple[float, float] = (5, 15)
    ) -> None:
        self.api, self.labels, self.timeout = api, dict(labels or {}), timeout
        self._discovered: tuple[float, bool] | None = None
        self._lock = asyncio.Lock()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(
            kubeapi.request, self.api, method, path, timeout=self.timeout, policy=RETRY, **kwargs
        )

    async def prometheus_rule_served(self) -> bool:
        """Discovery of monitoring.coreos.com/v1, at most once per DISCOVERY_TTL_SECONDS (errors are not cached)."""
        async with self._lock:
            now = time.monotonic()
            if self._discovered is not None and now - self._discovered[0] < DISCOVERY_TTL_SECONDS:
                return self._discovered[1]
            try:
                found = await self._request("GET", f"/apis/{PROMETHEUS_RULE_API_VERSION}")
                served = any(r.get("name") == "prometheusrules" for r in (found or {}).get("resources") or [])
            except client.ApiException as err:
                if err.status != 404:
                    raise
                served = False
            self._discovered = (now, served)
            return served

    def forget_discovery(self) -> None:
        self._discovered = None

    async def publish(
        self, body: Mapping[str, Any], spec: SLOReviewSpec, previous: Mapping[str, Any] | None
    ) -> Outcome:
        """Apply the review's rules; ``previous`` is status.rules. Never raises."""
        meta = body["metadata"]
        generation = int(meta.get("generation") or 1)
        enabled = spec.rules.enabled
        if not enabled and not previous:
            # Nothing was ever written: nothing to empty, and no object to create.
            return Outcome(False, Reason.rules_disabled, "spec.rules.enabled is false: no rules are written", None)
        kind: RulesKind | None = None
        try:
            if not enabled and previous:
                kind = RulesKind(previous["kind"])  # empty the object that exists, wherever it is
            else:
                kind = RulesKind.prometheus_rule if await self.prometheus_rule_served() else RulesKind.config_map
            want = desired(kind, body, spec, self.labels, enabled=enabled)
            where = f"{kind.value} {want.namespace}/{want.name}"
            path = object_path(kind, want.namespace, want.name)
            try:
                existing = await self._request("GET", path)
            except client.ApiException as err:
                if err.status != 404:
                    raise
                existing = None
            if existing is not None and not _controlled_by(existing, str(meta["uid"])):
                message = f"{where} exists and is not controlled by this SLOReview; not taking it over"
                return Outcome(False, Reason.rules_conflict, message, stale(previous))
            # force: fields another manager took (kubectl edit) are set back; the object is ours (checked above).
            await self._request(
                "PATCH",
                path,
                query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                headers={"Content-Type": "application/apply-patch+yaml"},
                body=want.body,
            )
        except client.ApiException as err:
            if err.status == 404 and kind is RulesKind.prometheus_rule:
                self.forget_discovery()  # the CRD went away since discovery: look again next time
            reason = Reason.rules_forbidden if err.status == 403 else Reason.rules_write_failed
            return Outcome(False, reason, f"could not write the rules: {_describe(err)}", stale(previous))
        except kubeapi.TRANSPORT_ERRORS as err:
            return Outcome(
                False, Reason.rules_write_failed, f"could not write the rules: {_describe(err)}", stale(previous)
            )
        except Exception as err:  # the rules are an extra: nothing in writing them may fail the review itself
            logger.exception("slo rules: unexpected error")
            return Outcome(
                False, Reason.rules_write_failed, f"could not write the rules: {_describe(err)}", stale(previous)
            )
        status = RulesStatus(
            kind=kind,
            name=want.name,
            key=want.key,
            generation=generation,
            hash=want.hash,
            current=True,
            enabled=enabled,
        )
        if not enabled:
            message = f"spec.rules.enabled is false: {where} holds no rules"
            return Outcome(False, Reason.rules_disabled, message, status)
        return Outcome(True, Reason.rules_written, f"rules of generation {generation} are in {where}", status)
