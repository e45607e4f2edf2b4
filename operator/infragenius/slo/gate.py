"""The rollout gate: ``GET /v1/slo/<namespace>/<name>/gate`` answers from an SLOReview's status.

No Prometheus query happens in the request path: the answer is what the last review wrote, read from the
API server (so every replica answers alike, active or standby). The health port has no authentication,
so by default only SLOReviews annotated ``infragenius.io/rollout-gate: "true"`` are answered for; any other
gets the same 404 as a missing one, which tells a caller nothing about what exists.

``pass`` fails closed: it is true only when the last review succeeded for the current spec and the verdict
is Healthy or AtRisk (no page alert holds and budget is left); ``?maxAge=10m`` also requires that review
to have completed within that long.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from kubernetes import client

from infragenius import kubeapi
from infragenius.kube.time import parse_time, rfc3339
from infragenius.models.api import ROLLOUT_GATE_ANNOTATION, SLO_REVIEW, ConditionType, Phase
from infragenius.models.common import parse_duration
from infragenius.models.slo import Verdict
from infragenius.observability import metrics
from infragenius.settings import Settings

ROUTE = "/v1/slo/{namespace}/{name}/gate"
PASSING = frozenset({Verdict.healthy.value, Verdict.at_risk.value})
# API reads in flight at once: the port is unauthenticated, so its load on the API server is bounded.
MAX_IN_FLIGHT = 4
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def valid_names(namespace: str, name: str) -> bool:
    """A namespace is a DNS-1123 label, an SLOReview's name a DNS-1123 subdomain."""
    return bool(_DNS_LABEL.fullmatch(namespace) and _DNS_SUBDOMAIN.fullmatch(name))


def gate_open(body: Mapping[str, Any], mode: str) -> bool:
    """Whether this SLOReview may be answered for on the unauthenticated port."""
    if mode == "all":
        return True
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return mode == "annotated" and annotations.get(ROLLOUT_GATE_ANNOTATION) == "true"


def verdict(
    body: Mapping[str, Any], max_age: dt.timedelta | None = None, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The gate's answer for one SLOReview, from its status alone (pure)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    ready: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == ConditionType.ready.value), {}
    )
    completed = (status.get("lastReview") or {}).get("completedAt")
    reasons = []
    if status.get("observedGeneration") != meta.get("generation") or status.get("phase") != Phase.completed.value:
        reasons.append("no completed review of the current spec")
    elif ready.get("status") != "True":
        reasons.append(f"last review: {ready.get('reason') or 'not ready'}")
    if status.get("verdict") not in PASSING:
        reasons.append(f"verdict {status.get('verdict') or 'unknown'}")
    age = None
    finished = parse_time(completed) if completed else None
    if finished is not None:
        age = ((now or dt.datetime.now(dt.UTC)) - finished).total_seconds()
    if max_age is not None and (age is None or age > max_age.total_seconds()):
        reasons.append(f"last review older than {int(max_age.total_seconds())}s")
    budget = status.get("errorBudget") or {}
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "verdict": status.get("verdict"),
        "budgetRemainingPercent": budget.get("remainingPercent"),
        "burnRates": status.get("burnRates") or {},
        "firing": [a.get("name") for a in status.get("alerts") or [] if a.get("firing")],
        "observedAt": status.get("evaluatedAt"),
        "reviewedAt": completed,
        "ageSeconds": None if age is None else round(age, 1),
        "pass": not reasons,
        "reasons": reasons,
    }


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


class SLOGate:
    """The gate's HTTP handler; ``api`` is set once start-up has a client (503 until then)."""

    def __init__(self, settings: Settings, api: client.ApiClient | None = None) -> None:
        self.mode, self.namespaces = settings.slo_rollout_gate, frozenset(settings.namespaces)
        self.api = api
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def _read(self, namespace: str, name: str) -> dict[str, Any] | None:
        assert self.api is not None
        path = SLO_REVIEW.path(namespace, name)
        try:
            return await asyncio.to_thread(
                kubeapi.request, self.api, "GET", path, timeout=(3.0, 5.0), policy=kubeapi.NO_RETRY
            )
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    async def handle(self, request: web.Request) -> web.Response:
        response = await self._answer(request)
        metrics.GATE_REQUESTS.labels(code=str(response.status)).inc()
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if not valid_names(namespace, name):
            return _error(400, "invalid_name", "namespace must be a DNS-1123 label and name a DNS-1123 subdomain")
        max_age = None
        if "maxAge" in request.query:
            try:
                max_age = parse_duration(request.query["maxAge"])
            except ValueError as err:
                return _error(400, "invalid_max_age", str(err))
        not_found = _error(404, "not_found", f"no rollout gate for SLOReview {namespace}/{name}")
        if self.mode == "off" or (self.namespaces and namespace not in self.namespaces):
            return not_found
        if self.api is None:
            return _error(503, "starting", "the operator is starting")
        if self._slots.locked():
            response = _error(503, "busy", "too many gate requests in flight")
            response.headers["Retry-After"] = "1"
            return response
        async with self._slots:
            try:
                body = await self._read(namespace, name)
            except kubeapi.RETRIED_ERRORS as err:
                return _error(503, "api_unavailable", f"could not read the SLOReview: {type(err).__name__}")
        if body is None or not gate_open(body, self.mode):
            return not_found
        answer = verdict(body, max_age)
        answer["answeredAt"] = rfc3339(dt.datetime.now(dt.UTC))
        return web.json_response(answer)
