"""Real Postgres and Redis (Debian's packages, on free ports) for the server's unit tests."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from infragenius.history.store import HistoryStore
from infragenius_devtools.devcluster import DevClusterError
from infragenius_devtools.devcluster.services import LocalPostgres, LocalRedis


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    try:
        server = LocalPostgres().init().start()
    except DevClusterError as err:
        pytest.skip(f"Postgres: {err}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    try:
        server = LocalRedis().start()
    except DevClusterError as err:
        pytest.skip(f"Redis: {err}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def history(postgres_server: LocalPostgres) -> AsyncIterator[HistoryStore]:
    """A migrated store with the server's tables emptied, so each test starts from nothing."""
    store = HistoryStore(postgres_server.url)
    await store.open(wait=True, timeout=20)
    await asyncio.wait_for(store.migrate(), timeout=20)
    async with store.pool.connection() as conn:
        await conn.execute("TRUNCATE api_requests, api_keys, users, requests CASCADE")
    try:
        yield store
    finally:
        await store.close()
