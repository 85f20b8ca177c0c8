"""The portal through the app the server runs (the API with the portal mounted), on the real catalogue,
without a browser: fixtures and a browser-like client shared by the test modules that use them.

- `pg` (per module): an embedded PostgreSQL; `services` (per test): the API's services over a freshly
  migrated, emptied catalogue; `app`: the API with the portal mounted;
- `acme`, `globex`: two tenants; `account()`: a user of a tenant and role, password already replaced;
- `reader`: ``await reader(services, tenant, role)`` is a :class:`Reader` logged in as a new such user.

conftest.py re-exports the fixtures for every module of the directory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from siprec_server.api import ApiServices, build_api, make_services
from siprec_server.portal import mount_portal
from siprec_server.sealing import RecordingCrypto
from storage import FileBlobStore, migrate, open_pool
from storage.audit import Actor
from storage.keyfile import KeyFileProvider
from storage.principal import Role
from storage.tenant_models import Tenant
from tests.pg import PgCluster, reset_catalogue, running_cluster, scratch_dir
from tests.unit.api.conftest import cheap_passwords

OPERATOR = Actor(name="cli:operator", origin="cli")
PASSWORD = "Correct horse battery staple"
BASE = "https://hangtar.test"


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


@pytest.fixture
async def services(pg: PgCluster, tmp_path: Path) -> AsyncIterator[ApiServices]:
    pool = await open_pool(pg.dsn, max_size=6)
    try:
        await migrate(pool)
        await reset_catalogue(pool)
        await pool.execute("TRUNCATE login_failures")
        yield make_services(
            pool,
            blobs=FileBlobStore(tmp_path / "recordings"),
            bundle_dir=tmp_path / "access_requests",
            crypto=RecordingCrypto(pool, KeyFileProvider(tmp_path / "keys.json")),
            passwords=cheap_passwords(),
        )
    finally:
        await pool.close()


@pytest.fixture
def app(services: ApiServices) -> FastAPI:
    return mount_portal(build_api(services), services)


@pytest.fixture
async def acme(services: ApiServices) -> Tenant:
    return await services.tenants.create(slug="acme", name="Acme Kft.", actor=OPERATOR)


@pytest.fixture
async def globex(services: ApiServices) -> Tenant:
    return await services.tenants.create(slug="globex", name="Globex Zrt.", actor=OPERATOR)


async def account(
    api: ApiServices, tenant: Tenant, role: Role, *, change: bool = True, name: str | None = None
) -> tuple[str, str]:
    """A user of ``tenant`` (``name``, else the role's name, at the tenant's domain): e-mail and password."""
    email = f"{name or role.value}@{tenant.slug}.example"
    user, one_time = await api.users.create(tenant.id, email, role, OPERATOR)
    if change:
        await api.users.change_password(tenant.id, user.id, one_time, PASSWORD, OPERATOR)
    return email, PASSWORD if change else one_time


class Reader:
    """A browser-like client of the app: keeps cookies, reads the CSRF token out of the pages' forms."""

    def __init__(self, app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
        self.http = httpx.AsyncClient(transport=transport, base_url=BASE, headers={"Accept-Language": "en"})

    async def log_in(self, email: str, password: str) -> httpx.Response:
        form = await self.http.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        return await self.http.post(
            "/login", data={"email": email, "password": password, "login_token": token.group(1)}
        )

    @property
    def csrf(self) -> str:
        return str(self.http.cookies.get("hangtar_csrf"))

    async def post(self, path: str, **fields: str) -> httpx.Response:
        return await self.http.post(path, data={"csrf_token": self.csrf, **fields})


@pytest.fixture
async def reader(app: FastAPI) -> AsyncIterator[Any]:
    opened: list[Reader] = []

    async def make(api: ApiServices, tenant: Tenant, role: Role, name: str | None = None) -> Reader:
        client = Reader(app)
        opened.append(client)
        email, password = await account(api, tenant, role, name=name)
        logged_in = await client.log_in(email, password)
        assert logged_in.status_code == 303 and logged_in.headers["location"] == "/recordings"
        return client

    yield make
    for client in opened:
        await client.http.aclose()
