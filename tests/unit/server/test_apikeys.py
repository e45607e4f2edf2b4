"""API keys against a real Postgres: shown once, stored as a hash, expiry and revocation seen on the next call."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from infragenius.history import server_tables
from infragenius.history.store import HistoryStore
from infragenius.server.apikeys import ApiKeyAuthenticator, create_key, generate_key, hash_secret, parse_key
from infragenius.server.errors import ErrorCode, ServiceError
from infragenius.server.identity import AuthMethod, Scope


def test_keys_are_random_well_formed_and_parse_back() -> None:
    first, second = generate_key(), generate_key()
    assert first.secret_key != second.secret_key
    parsed = parse_key(first.secret_key)
    assert parsed is not None and parsed[0] == first.key_id
    # 32 random bytes in base64url: 43 characters of secret.
    assert len(parsed[1]) == 43


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "igk_",
        "igk_short_x",
        "Bearer igk_0123456789ab_" + "a" * 43,
        "igk_0123456789ab_" + "a" * 42,
        "igk_0123456789ab_" + "é" * 43,
    ],
)
def test_malformed_keys_do_not_parse(presented: str) -> None:
    assert parse_key(presented) is None


async def _key(history: HistoryStore, **overrides: object) -> str:
    values: dict[str, object] = {
        "owner": "alice",
        "tier": "free",
        "scopes": [Scope.read],
        "namespaces": ["team-a"],
        "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    }
    values.update(overrides)
    return (await create_key(history.pool, **values)).secret_key  # type: ignore[arg-type]


async def test_only_the_hash_is_stored_and_the_key_authenticates(history: HistoryStore) -> None:
    secret_key = await _key(history)
    key_id, secret = parse_key(secret_key) or ("", "")
    row = await server_tables.find_api_key(history.pool, key_id)
    assert row is not None and row.hash == hash_secret(secret) and secret.encode() not in row.hash
    identity = await ApiKeyAuthenticator(history.pool, cache_seconds=0).authenticate(secret_key)
    assert identity.method is AuthMethod.api_key
    assert identity.principal == f"key:alice/{key_id}"
    assert identity.scopes == {Scope.read} and identity.namespaces == {"team-a"} and identity.tier == "free"


async def test_wrong_secret_unknown_id_and_malformed_keys_are_refused(history: HistoryStore) -> None:
    secret_key = await _key(history)
    authenticator = ApiKeyAuthenticator(history.pool, cache_seconds=0)
    tampered = secret_key[:-1] + ("A" if secret_key[-1] != "A" else "B")
    unknown = "igk_000000000000_" + "a" * 43
    for presented in (tampered, unknown, "igk_nonsense"):
        with pytest.raises(ServiceError) as refused:
            await authenticator.authenticate(presented)
        assert refused.value.code is ErrorCode.unauthenticated


async def test_revocation_and_expiry_take_effect_after_the_cache_window(history: HistoryStore) -> None:
    secret_key = await _key(history)
    authenticator = ApiKeyAuthenticator(history.pool, cache_seconds=1.0)
    await authenticator.authenticate(secret_key)
    key_id = secret_key.split("_")[1]
    assert await server_tables.revoke_api_key(history.pool, key_id)
    assert not await server_tables.revoke_api_key(history.pool, key_id)
    await asyncio.sleep(1.1)
    with pytest.raises(ServiceError, match="revoked"):
        await authenticator.authenticate(secret_key)

    expired = await _key(history, expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    with pytest.raises(ServiceError, match="expired"):
        await authenticator.authenticate(expired)


async def test_listing_never_shows_a_secret(history: HistoryStore) -> None:
    secret_key = await _key(history, owner="bob", scopes=[Scope.read, Scope.run], namespaces=["*"])
    rows = await server_tables.list_api_keys(history.pool, "bob")
    assert [r.key_id for r in rows] == [secret_key.split("_")[1]]
    assert secret_key.rsplit("_", 1)[1] not in repr(rows)
    assert set(rows[0].scopes) == {"read", "run"}
