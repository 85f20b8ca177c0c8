"""The quick start's demo tenant: made once on an empty catalogue, never on one that has a tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from siprec_server.demo import DEMO_ADMIN, DEMO_NUMBER, DEMO_TENANT, ensure_demo
from storage import migrate, open_pool
from storage.audit import AuditLog
from storage.login_limit import LoginLimiter
from storage.passwords import Passwords
from storage.tenants import TenantStore
from storage.users import UserStore
from tests.pg import PgCluster, running_cluster, scratch_dir


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


@pytest.fixture
async def pool(pg: PgCluster) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(await pg.create_database("demo"), max_size=2)
    try:
        await migrate(pool)
        yield pool
    finally:
        await pool.close()


async def test_an_empty_install_gets_the_demo_tenant_its_number_and_an_admin(pool: asyncpg.Pool) -> None:
    login = await ensure_demo(pool)
    assert login is not None and login.email == DEMO_ADMIN
    tenants = TenantStore(pool, AuditLog())
    tenant = await tenants.get(DEMO_TENANT)
    assert [n.value for n in await tenants.numbers(tenant.id)] == [DEMO_NUMBER]
    users = UserStore(pool, AuditLog(), passwords=Passwords(), limiter=LoginLimiter(pool))
    admin = await users.authenticate(DEMO_ADMIN, login.password, "127.0.0.1")
    assert admin is not None and admin.role == "admin" and admin.must_change_password
    # The next start finds a tenant and changes nothing.
    assert await ensure_demo(pool) is None
    assert len(await tenants.list()) == 1
