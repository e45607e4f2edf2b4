"""Who is calling, as authentication established it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AuthMethod(StrEnum):
    api_key = "api_key"
    kubernetes = "kubernetes"
    #: `infragenius mcp --stdio`: the caller's own kubeconfig; the API server decides what it may do.
    local = "local"


class Scope(StrEnum):
    read = "read"
    run = "run"


@dataclass(frozen=True)
class Identity:
    """``principal`` names the caller in the audit trail and keys its rate limit.

    For an API key, ``scopes`` and ``namespaces`` bound what it may do ("*" in namespaces: any); a
    Kubernetes identity carries neither: each call is put to the API server as a SubjectAccessReview.
    """

    principal: str
    method: AuthMethod
    tier: str
    scopes: frozenset[Scope] = frozenset()
    namespaces: frozenset[str] = frozenset()
    #: For Kubernetes identities, what the SubjectAccessReview needs (from the TokenReview).
    username: str = ""
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
