"""The real API on the real catalogue: a fresh, migrated database per test, the app `build_api` makes, two
tenants, a user of each role and an API key of each role in the first, an admin in the second.

- `app`, `api_services`, `clock` (a settable UTC clock every service reads), `tenant`, `other_tenant`;
- `accounts[role]`: an `Account` (e-mail, password, user) whose one-time password was already changed;
- `api_keys[role]`: the secret of a live key of that role;
- `make_client()`: an anonymous `httpx.AsyncClient` on the app (https, client address 203.0.113.7);
- `await as_user(role)`: a client logged in as that role's user, sending its CSRF token on every request;
- `await as_key(role)`: a client sending that role's API key;
- `await as_other_admin()`: a client logged in as the other tenant's admin.

Passwords are hashed with argon2id at a low cost, so a test logs in quickly; the production cost is
argon2-cffi's default (tests/unit/storage/test_accounts.py checks rehashing from one to the other).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from siprec_server.api import ApiServices, build_api, make_services
from siprec_server.api.deps import CSRF_HEADER
from siprec_server.sealing import RecordingCrypto
from storage import FileBlobStore, migrate, open_pool
from storage.audit import Actor
from storage.keyfile import KeyFileProvider
from storage.login_limit import LoginLimits
from storage.login_sessions import SessionLimits
from storage.passwords import Passwords
from storage.principal import Role
from storage.tenant_models import Tenant
from storage.users import User
from tests.pg import PgCluster, reset_catalogue, running_cluster, scratch_dir

BASE_URL = "https://hangtar.test"
CLIENT_ADDRESS = ("203.0.113.7", 50123)
OPERATOR = Actor(name="cli:operator", origin="cli")
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LOGIN_LIMITS = LoginLimits(
    per_email=5, per_address=20, window=timedelta(minutes=15), lockout=timedelta(minutes=15)
)
SESSION_LIMITS = SessionLimits(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


def cheap_passwords() -> Passwords:
    """argon2id with a small cost (the parameters are in each hash, so verifying needs nothing else)."""
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


class Clock:
    """UTC time the test sets; every service of the app reads it."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> datetime:
        self.current += delta
        return self.current


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    email: str
    password: str
    user: User
    tenant: Tenant


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


@pytest.fixture
async def pool(pg: PgCluster) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(pg.dsn, max_size=6)
    try:
        await migrate(pool)
        await reset_catalogue(pool)  # users, sessions and keys go with their tenants
        await pool.execute("TRUNCATE login_failures")
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api_services(pool: asyncpg.Pool, clock: Clock, tmp_path: Path) -> ApiServices:
    blobs = FileBlobStore(tmp_path / "recordings")
    crypto = RecordingCrypto(pool, KeyFileProvider(tmp_path / "keys.json"))
    return make_services(
        pool,
        blobs=blobs,
        bundle_dir=tmp_path / "access_requests",
        crypto=crypto,
        clock=clock,
        passwords=cheap_passwords(),
        login_limits=LOGIN_LIMITS,
        session_limits=SESSION_LIMITS,
    )


@pytest.fixture
def app(api_services: ApiServices) -> FastAPI:
    return build_api(api_services)


@pytest.fixture
async def tenant(api_services: ApiServices) -> Tenant:
    return await api_services.tenants.create(slug="acme", name="Acme Kft.", actor=OPERATOR)


@pytest.fixture
async def other_tenant(api_services: ApiServices) -> Tenant:
    return await api_services.tenants.create(slug="globex", name="Globex Zrt.", actor=OPERATOR)


async def new_account(api: ApiServices, tenant: Tenant, email: str, role: Role) -> Account:
    """A user of ``tenant`` whose one-time password is already replaced by a known one."""
    user, one_time = await api.users.create(tenant.id, email, role, OPERATOR)
    password = f"Correct horse battery {role.value}"
    user = await api.users.change_password(tenant.id, user.id, one_time, password, OPERATOR)
    return Account(email=email, password=password, user=user, tenant=tenant)


@pytest.fixture
async def accounts(api_services: ApiServices, tenant: Tenant) -> dict[Role, Account]:
    return {
        role: await new_account(api_services, tenant, f"{role.value}@acme.example", role) for role in Role
    }


@pytest.fixture
async def api_keys(api_services: ApiServices, tenant: Tenant) -> dict[Role, str]:
    keys = {}
    for role in Role:
        _key, secret = await api_services.api_keys.create(
            tenant.id, f"{role.value} integration", role, OPERATOR
        )
        keys[role] = secret
    return keys


@pytest.fixture
async def other_admin(api_services: ApiServices, other_tenant: Tenant) -> Account:
    return await new_account(api_services, other_tenant, "admin@globex.example", Role.ADMIN)


@pytest.fixture
async def make_client(app: FastAPI) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=CLIENT_ADDRESS)
        client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


async def log_in(client: httpx.AsyncClient, email: str, password: str) -> str:
    """Log in on ``client`` (it keeps the cookies) and send the CSRF token from now on; returns the token."""
    response = await client.post("/api/v1/session", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    csrf: str = response.json()["csrf_token"]
    client.headers[CSRF_HEADER] = csrf
    return csrf


@pytest.fixture
def as_user(
    make_client: Callable[[], httpx.AsyncClient], accounts: dict[Role, Account]
) -> Callable[[Role], Awaitable[httpx.AsyncClient]]:
    async def logged_in(role: Role) -> httpx.AsyncClient:
        client = make_client()
        await log_in(client, accounts[role].email, accounts[role].password)
        return client

    return logged_in


@pytest.fixture
def as_key(
    make_client: Callable[[], httpx.AsyncClient], api_keys: dict[Role, str]
) -> Callable[[Role], Awaitable[httpx.AsyncClient]]:
    async def with_key(role: Role) -> httpx.AsyncClient:
        client = make_client()
        client.headers["Authorization"] = f"Bearer {api_keys[role]}"
        return client

    return with_key


@pytest.fixture
def as_other_admin(
    make_client: Callable[[], httpx.AsyncClient], other_admin: Account
) -> Callable[[], Awaitable[httpx.AsyncClient]]:
    async def logged_in() -> httpx.AsyncClient:
        client = make_client()
        await log_in(client, other_admin.email, other_admin.password)
        return client

    return logged_in
