"""One real embedded PostgreSQL for the storage tests; a migrated, freshly truncated catalogue per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from storage import Catalogue, migrate, open_pool
from tests.pg import PgCluster, reset_catalogue, running_cluster, scratch_dir


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


@pytest.fixture
async def pool(pg: PgCluster) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(pg.dsn, max_size=4)
    try:
        await migrate(pool)
        await reset_catalogue(pool)
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def catalogue(pool: asyncpg.Pool) -> Catalogue:
    return Catalogue(pool)
