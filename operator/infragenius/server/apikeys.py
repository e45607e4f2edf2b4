"""API keys: random, shown once, stored as a SHA-256 of the secret, compared in constant time.

A key reads ``igk_<key id>_<secret>``. The key id is public (it finds the row and names the key in
listings); the secret is 256 random bits, so a plain SHA-256 is enough: there is nothing to brute-force
that a slow hash would protect.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from infragenius.history import server_tables
from infragenius.server.errors import ErrorCode, ServiceError
from infragenius.server.identity import AuthMethod, Identity, Scope

KEY_PREFIX = "igk_"
_KEY_FORMAT = re.compile(r"^igk_([a-f0-9]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret_key: str  # the whole key, shown to its owner once and never stored


def generate_key() -> NewKey:
    key_id = secrets.token_hex(6)
    return NewKey(key_id=key_id, secret_key=f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}")


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_key(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = _KEY_FORMAT.fullmatch(presented)
    return (match.group(1), match.group(2)) if match else None


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


async def create_key(
    pool: AsyncConnectionPool,
    *,
    owner: str,
    tier: str,
    scopes: list[Scope],
    namespaces: list[str],
    expires_at: dt.datetime | None,
) -> NewKey:
    key = generate_key()
    _, secret = parse_key(key.secret_key) or ("", "")
    await server_tables.insert_api_key(
        pool,
        key_id=key.key_id,
        owner=owner,
        tier=tier,
        key_hash=hash_secret(secret),
        scopes=[s.value for s in scopes],
        namespaces=namespaces,
        expires_at=expires_at,
    )
    return key


class ApiKeyAuthenticator:
    """Checks presented keys against Postgres; a row is reused for ``cache_seconds`` at most (a few seconds),
    so an expiry or a revocation takes effect on the next request after that."""

    def __init__(self, pool: AsyncConnectionPool, *, cache_seconds: float) -> None:
        self._pool = pool
        self._cache_seconds = cache_seconds
        self._rows: dict[str, tuple[float, server_tables.StoredKey | None]] = {}

    async def _row(self, key_id: str) -> server_tables.StoredKey | None:
        now = time.monotonic()
        cached = self._rows.get(key_id)
        if cached and now - cached[0] < self._cache_seconds:
            return cached[1]
        try:
            row = await server_tables.find_api_key(self._pool, key_id)
        except Exception:  # psycopg raises many types; the caller only needs to know the check failed
            raise ServiceError(ErrorCode.unavailable, "the key store (Postgres) is unreachable; try again") from None
        if len(self._rows) > 10000:
            self._rows.clear()  # bounded memory: a flood of made-up key ids must not grow the cache
        self._rows[key_id] = (now, row)
        return row

    async def authenticate(self, presented: str) -> Identity:
        parsed = parse_key(presented)
        if parsed is None:
            raise ServiceError(ErrorCode.unauthenticated, "the API key is malformed")
        key_id, secret = parsed
        row = await self._row(key_id)
        # Compare even when the row is missing, so timing does not tell which key ids exist.
        expected = row.hash if row else hash_secret("")
        if not hmac.compare_digest(expected, hash_secret(secret)) or row is None:
            raise ServiceError(ErrorCode.unauthenticated, "the API key is not valid")
        if row.revoked_at is not None:
            raise ServiceError(ErrorCode.unauthenticated, f"API key {key_id} was revoked")
        if row.expires_at is not None and row.expires_at <= dt.datetime.now(dt.UTC):
            raise ServiceError(ErrorCode.unauthenticated, f"API key {key_id} expired")
        return Identity(
            principal=f"key:{row.owner}/{key_id}",
            method=AuthMethod.api_key,
            tier=row.tier,
            scopes=frozenset(Scope(s) for s in row.scopes),
            namespaces=frozenset(row.namespaces),
        )
