"""Kubernetes bearer tokens: a TokenReview says who the caller is, a SubjectAccessReview per call says
whether they may do it (the real verb on our resource, in the requested namespace).

The answers are reused for a few seconds at most, so a removed RoleBinding takes effect almost at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from kubernetes import client

from infragenius.models.api import GROUP
from infragenius.server.errors import ErrorCode, ServiceError
from infragenius.server.identity import AuthMethod, Identity

_CACHE_LIMIT = 10000


class KubernetesAuthenticator:
    def __init__(self, api: client.ApiClient, *, tier: str, cache_seconds: float) -> None:
        self._auth = client.AuthenticationV1Api(api)
        self._authz = client.AuthorizationV1Api(api)
        self._tier = tier
        self._cache_seconds = cache_seconds
        self._tokens: dict[bytes, tuple[float, Identity | None]] = {}
        self._decisions: dict[tuple[Any, ...], tuple[float, tuple[bool, str]]] = {}

    async def authenticate(self, token: str) -> Identity:
        # Cached by a hash: the token itself is never kept in memory longer than the request.
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        cached = self._tokens.get(digest)
        if cached and now - cached[0] < self._cache_seconds:
            identity = cached[1]
        else:
            identity = await asyncio.to_thread(self._review_token, token)
            if len(self._tokens) > _CACHE_LIMIT:
                self._tokens.clear()
            self._tokens[digest] = (now, identity)
        if identity is None:
            raise ServiceError(ErrorCode.unauthenticated, "the bearer token is not valid")
        return identity

    def _review_token(self, token: str) -> Identity | None:
        try:
            review = self._auth.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
        except client.ApiException as err:
            raise ServiceError(
                ErrorCode.unavailable, f"the API server refused the TokenReview ({err.status})"
            ) from None
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            return None
        user = status.user
        return Identity(
            principal=f"k8s:{user.username}",
            method=AuthMethod.kubernetes,
            tier=self._tier,
            username=user.username or "",
            groups=tuple(user.groups or ()),
            uid=user.uid or "",
            extra=tuple(sorted((k, tuple(v)) for k, v in (user.extra or {}).items())),
        )

    async def allowed(self, identity: Identity, verb: str, plural: str, namespace: str) -> tuple[bool, str]:
        """(allowed, the API server's reason) for ``verb`` on ``plural`` in ``namespace``."""
        key = (identity.username, identity.groups, identity.uid, identity.extra, verb, plural, namespace)
        now = time.monotonic()
        cached = self._decisions.get(key)
        if cached and now - cached[0] < self._cache_seconds:
            return cached[1]
        decision = await asyncio.to_thread(self._review_access, identity, verb, plural, namespace)
        if len(self._decisions) > _CACHE_LIMIT:
            self._decisions.clear()
        self._decisions[key] = (now, decision)
        return decision

    def _review_access(self, identity: Identity, verb: str, plural: str, namespace: str) -> tuple[bool, str]:
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=identity.username,
                groups=list(identity.groups),
                uid=identity.uid or None,
                extra={k: list(v) for k, v in identity.extra} or None,
                resource_attributes=client.V1ResourceAttributes(
                    group=GROUP, resource=plural, verb=verb, namespace=namespace
                ),
            )
        )
        try:
            answer = self._authz.create_subject_access_review(review)
        except client.ApiException as err:
            raise ServiceError(
                ErrorCode.unavailable, f"the API server refused the SubjectAccessReview ({err.status})"
            ) from None
        status = answer.status
        return bool(status and status.allowed), (status.reason or "") if status else ""
