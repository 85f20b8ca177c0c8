"""Users, login sessions and API keys on the real catalogue: what is stored (hashes only), what expires,
what is audited, and tenant isolation."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import pytest
from argon2 import PasswordHasher

from storage.api_keys import ApiKeyStore
from storage.audit import Actor, AuditLog
from storage.errors import ConflictError, NotFoundError
from storage.login_limit import LoginLimiter, LoginLimits
from storage.login_sessions import LoginSessions, SessionLimits
from storage.passwords import Passwords, check_new_password
from storage.principal import ROLE_PERMISSIONS, Permission, Principal, Role
from storage.tenant_models import Tenant
from storage.tenants import TenantStore
from storage.users import User, UserStore

OPERATOR = Actor(name="cli:operator", origin="cli")
ADDRESS = "198.51.100.23"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
START_TENANT = UUID("7d1f0c8e-3b7a-4c1e-9a53-2f6d8e1b4c90")


class Clock:
    def __init__(self) -> None:
        self.current = START

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def cheap() -> Passwords:
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


class Accounts:
    def __init__(self, pool: asyncpg.Pool, clock: Clock, passwords: Passwords | None = None) -> None:
        self.audit = AuditLog(clock=clock)
        self.limiter = LoginLimiter(pool, limits=LoginLimits(), clock=clock)
        self.users = UserStore(
            pool, self.audit, passwords=passwords or cheap(), limiter=self.limiter, clock=clock
        )
        self.sessions = LoginSessions(pool, self.audit, limits=SessionLimits(), clock=clock)
        self.keys = ApiKeyStore(pool, self.audit, clock=clock)
        self.tenants = TenantStore(pool, self.audit, clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def accounts(pool: asyncpg.Pool, clock: Clock) -> Accounts:
    await pool.execute("TRUNCATE login_failures")
    return Accounts(pool, clock)


@pytest.fixture
async def acme(accounts: Accounts) -> Tenant:
    return await accounts.tenants.create(slug="acme", name="Acme Kft.", actor=OPERATOR)


@pytest.fixture
async def globex(accounts: Accounts) -> Tenant:
    return await accounts.tenants.create(slug="globex", name="Globex Zrt.", actor=OPERATOR)


async def audit_rows(pool: asyncpg.Pool) -> list[dict[str, object]]:
    return [dict(row) for row in await pool.fetch("SELECT * FROM audit_log ORDER BY seq")]


async def ready_user(accounts: Accounts, tenant: Tenant, email: str, role: Role, password: str) -> User:
    user, one_time = await accounts.users.create(tenant.id, email, role, OPERATOR)
    return await accounts.users.change_password(tenant.id, user.id, one_time, password, OPERATOR)


# -- the permission matrix ----------------------------------------------------------------------------------------
def test_the_role_matrix_is_the_contracts() -> None:
    p = Permission
    assert dict(ROLE_PERMISSIONS) == {
        Role.ADMIN: set(Permission),
        Role.SUPERVISOR: {p.VIEW, p.LISTEN, p.RETENTION},
        Role.DPO: {p.VIEW, p.LISTEN, p.RETENTION, p.HOLD, p.ACCESS_REQUEST, p.ERASE, p.AUDIT},
        Role.AUDITOR: {p.VIEW, p.AUDIT},
        Role.VIEWER: {p.VIEW},
    }
    auditor = Principal(
        tenant_id=START_TENANT, role=Role.AUDITOR, name="eva@acme.example", user_id=START_TENANT
    )
    assert auditor.can(Permission.AUDIT) and not auditor.can(Permission.LISTEN)
    actor = auditor.actor("192.0.2.1")
    assert (actor.name, actor.origin) == ("eva@acme.example", "192.0.2.1")


# -- users and passwords ------------------------------------------------------------------------------------------
async def test_a_new_user_has_only_an_argon2_hash_of_a_one_time_password(
    accounts: Accounts, acme: Tenant, pool: asyncpg.Pool
) -> None:
    user, one_time = await accounts.users.create(
        acme.id, "  Kovacs.Eva@Acme.Example ", Role.SUPERVISOR, OPERATOR
    )
    assert user.email == "kovacs.eva@acme.example"
    assert user.must_change_password and user.active and user.role is Role.SUPERVISOR
    assert len(one_time) >= 16
    row = await pool.fetchrow("SELECT * FROM users WHERE id = $1", user.id)
    assert row["password_hash"].startswith("$argon2id$")
    assert one_time not in json.dumps({k: str(v) for k, v in dict(row).items()})
    assert await accounts.users.authenticate("KOVACS.EVA@acme.example", one_time, ADDRESS) == user
    created = [e for e in await audit_rows(pool) if e["action"] == "user.create"]
    assert created[0]["details"] == {"email": "kovacs.eva@acme.example", "role": "supervisor"}
    assert (created[0]["actor"], created[0]["tenant_id"]) == ("cli:operator", acme.id)
    assert one_time not in json.dumps([str(e) for e in await audit_rows(pool)])


async def test_an_e_mail_is_unique_across_tenants_whatever_its_case(
    accounts: Accounts, acme: Tenant, globex: Tenant
) -> None:
    await accounts.users.create(acme.id, "anna@example.hu", Role.ADMIN, OPERATOR)
    with pytest.raises(ConflictError, match="already exists"):
        await accounts.users.create(globex.id, "Anna@Example.HU", Role.VIEWER, OPERATOR)
    with pytest.raises(ValueError, match="e-mail"):
        await accounts.users.create(acme.id, "anna at example.hu", Role.VIEWER, OPERATOR)


async def test_a_password_change_checks_the_current_one_and_the_new_ones_length(
    accounts: Accounts, acme: Tenant, pool: asyncpg.Pool
) -> None:
    user, one_time = await accounts.users.create(acme.id, "eva@acme.example", Role.VIEWER, OPERATOR)
    with pytest.raises(ValueError, match="at least 12"):
        await accounts.users.change_password(acme.id, user.id, one_time, "short", OPERATOR)
    with pytest.raises(ValueError, match="differ"):
        await accounts.users.change_password(acme.id, user.id, one_time, one_time, OPERATOR)
    with pytest.raises(ValueError, match="not correct"):
        await accounts.users.change_password(
            acme.id, user.id, "guessed wrongly", "Tavaszi szel vizet araszt", OPERATOR
        )
    changed = await accounts.users.change_password(
        acme.id, user.id, one_time, "Tavaszi szel vizet araszt", OPERATOR
    )
    assert not changed.must_change_password
    assert await accounts.users.authenticate("eva@acme.example", one_time, ADDRESS) is None
    assert (
        await accounts.users.authenticate("eva@acme.example", "Tavaszi szel vizet araszt", ADDRESS) == changed
    )
    actions = [e["action"] for e in await audit_rows(pool)]
    assert actions.count("user.password_change") == 1
    with pytest.raises(ValueError, match="at most"):
        check_new_password("x" * 1025)


async def test_a_hash_of_older_cost_is_replaced_at_the_next_login(
    pool: asyncpg.Pool, clock: Clock, acme: Tenant
) -> None:
    weak = Accounts(pool, clock)  # argon2id at a low cost
    user = await ready_user(weak, acme, "eva@acme.example", Role.VIEWER, "Tavaszi szel vizet araszt")
    old_hash = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    assert "m=1024,t=1,p=1" in old_hash
    current = Accounts(pool, clock, Passwords())  # argon2-cffi's defaults
    assert await current.users.authenticate("eva@acme.example", "Tavaszi szel vizet araszt", ADDRESS) == user
    new_hash = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    assert new_hash.startswith("$argon2id$") and "m=65536,t=3,p=4" in new_hash
    assert not Passwords().needs_rehash(new_hash) and Passwords().needs_rehash(old_hash)
    assert await current.users.authenticate("eva@acme.example", "Tavaszi szel vizet araszt", ADDRESS) == user


async def test_failed_logins_are_audited_without_what_was_typed(
    accounts: Accounts, acme: Tenant, pool: asyncpg.Pool
) -> None:
    await ready_user(accounts, acme, "eva@acme.example", Role.VIEWER, "Tavaszi szel vizet araszt")
    assert await accounts.users.authenticate("eva@acme.example", "Tavaszi szel vizet", ADDRESS) is None
    # A password typed into the e-mail field names no account: it is not recorded.
    assert await accounts.users.authenticate("Tavaszi szel vizet araszt", "x", ADDRESS) is None
    failed = [e for e in await audit_rows(pool) if e["action"] == "session.login_failed"]
    assert [(e["actor"], e["origin"], e["tenant_id"], e["details"]) for e in failed] == [
        ("eva@acme.example", ADDRESS, acme.id, {"reason": "wrong_password"}),
        ("anonymous", ADDRESS, None, {"reason": "unknown_account"}),
    ]
    text = json.dumps([{k: str(v) for k, v in e.items()} for e in await audit_rows(pool)])
    assert "Tavaszi szel vizet" not in text


async def test_roles_change_and_the_last_admin_stays(
    accounts: Accounts, acme: Tenant, pool: asyncpg.Pool
) -> None:
    anna, _ = await accounts.users.create(acme.id, "anna@acme.example", Role.ADMIN, OPERATOR)
    bela, _ = await accounts.users.create(acme.id, "bela@acme.example", Role.ADMIN, OPERATOR)
    demoted = await accounts.users.set_role(acme.id, bela.id, Role.DPO, OPERATOR)
    assert demoted.role is Role.DPO
    with pytest.raises(ConflictError, match="last active admin"):
        await accounts.users.set_role(acme.id, anna.id, Role.VIEWER, OPERATOR)
    with pytest.raises(ConflictError, match="last active admin"):
        await accounts.users.disable(acme.id, anna.id, OPERATOR)
    changes = [e["details"] for e in await audit_rows(pool) if e["action"] == "user.role_change"]
    assert changes == [{"old": "admin", "new": "dpo"}]


async def test_another_tenants_user_is_not_found(accounts: Accounts, acme: Tenant, globex: Tenant) -> None:
    user, _ = await accounts.users.create(globex.id, "eva@globex.example", Role.VIEWER, OPERATOR)
    for call in (
        accounts.users.get(acme.id, user.id),
        accounts.users.set_role(acme.id, user.id, Role.ADMIN, OPERATOR),
        accounts.users.disable(acme.id, user.id, OPERATOR),
        accounts.users.find(acme.id, "eva@globex.example"),
    ):
        with pytest.raises(NotFoundError, match="no such user"):
            await call
    assert await accounts.users.list(acme.id) == []
    assert (await accounts.users.get(globex.id, user.id)).active


async def test_users_list_by_e_mail_in_pages(accounts: Accounts, acme: Tenant) -> None:
    for name in ("dora", "anna", "csaba", "bela", "eva"):
        await accounts.users.create(acme.id, f"{name}@acme.example", Role.VIEWER, OPERATOR)
    first = await accounts.users.list(acme.id, limit=2)
    rest = await accounts.users.list(acme.id, after=first[-1].email)
    assert [u.email.split("@")[0] for u in first + rest] == ["anna", "bela", "csaba", "dora", "eva"]


# -- login sessions -----------------------------------------------------------------------------------------------
async def test_a_session_token_is_stored_only_as_its_digest(
    accounts: Accounts, acme: Tenant, pool: asyncpg.Pool
) -> None:
    user = await ready_user(accounts, acme, "eva@acme.example", Role.DPO, "Tavaszi szel vizet araszt")
    token, csrf = await accounts.sessions.create(user, origin=ADDRESS)
    assert token != csrf and len(token) >= 43 and len(csrf) >= 43
    row = await pool.fetchrow("SELECT * FROM login_sessions")
    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    assert bytes(row["csrf_hash"]) == hashlib.sha256(csrf.encode()).digest()
    stored = json.dumps({k: str(v) for k, v in dict(row).items()})
    assert token not in stored and csrf not in stored
    session = await accounts.sessions.resolve_session(token)
    assert session is not None
    assert session.principal == Principal(tenant_id=acme.id, role=Role.DPO, name=user.email, user_id=user.id)
    assert session.csrf_matches(csrf)
    assert not session.csrf_matches(csrf[:-1] + ("A" if csrf[-1] != "A" else "B"))
    assert not session.csrf_matches(None) and not session.csrf_matches("")
    assert await accounts.sessions.resolve("not-a-token") is None
    logins = [e for e in await audit_rows(pool) if e["action"] == "session.login"]
    assert logins[0]["details"] == {"session_id": str(row["id"]), "role": "dpo"}
    assert token not in json.dumps([{k: str(v) for k, v in e.items()} for e in await audit_rows(pool)])


async def test_sessions_end_when_idle_at_their_absolute_expiry_and_at_logout(
    accounts: Accounts, acme: Tenant, clock: Clock, pool: asyncpg.Pool
) -> None:
    user = await ready_user(accounts, acme, "eva@acme.example", Role.VIEWER, "Tavaszi szel vizet araszt")
    idle_token, _ = await accounts.sessions.create(user)
    busy_token, _ = await accounts.sessions.create(user)
    for _ in range(35):  # every 20 minutes for 11 h 40 min: never idle
        clock.advance(timedelta(minutes=20))
        assert await accounts.sessions.resolve(busy_token) is not None
        if _ == 1:
            assert await accounts.sessions.resolve(idle_token) is None  # 40 minutes without a request
    clock.advance(timedelta(minutes=20))  # 12 h after login
    assert await accounts.sessions.resolve(busy_token) is None

    token, _ = await accounts.sessions.create(user, origin=ADDRESS)
    assert await accounts.sessions.revoke(token, origin=ADDRESS)
    assert await accounts.sessions.resolve(token) is None
    assert not await accounts.sessions.revoke(token)
    logouts = [e for e in await audit_rows(pool) if e["action"] == "session.logout"]
    assert [(e["actor"], e["origin"]) for e in logouts] == [("eva@acme.example", ADDRESS)]


async def test_disabling_a_user_ends_their_sessions_and_logins(
    accounts: Accounts, acme: Tenant, pool: asyncpg.Pool
) -> None:
    await ready_user(accounts, acme, "anna@acme.example", Role.ADMIN, "Anna jelszava hosszu")
    user = await ready_user(accounts, acme, "eva@acme.example", Role.SUPERVISOR, "Tavaszi szel vizet araszt")
    token, _ = await accounts.sessions.create(user)
    disabled = await accounts.users.disable(acme.id, user.id, OPERATOR)
    assert disabled.disabled_at is not None
    assert await accounts.sessions.resolve(token) is None
    assert await accounts.users.authenticate("eva@acme.example", "Tavaszi szel vizet araszt", ADDRESS) is None
    entries = await audit_rows(pool)
    assert [e["details"] for e in entries if e["action"] == "user.disable"] == [{"sessions_ended": 1}]
    assert entries[-1]["details"] == {"reason": "disabled"}
    assert await accounts.users.disable(acme.id, user.id, OPERATOR) == disabled  # no second entry
    assert [e["action"] for e in await audit_rows(pool)].count("user.disable") == 1


async def test_a_role_change_applies_to_a_live_session(accounts: Accounts, acme: Tenant) -> None:
    await ready_user(accounts, acme, "anna@acme.example", Role.ADMIN, "Anna jelszava hosszu")
    user = await ready_user(accounts, acme, "eva@acme.example", Role.SUPERVISOR, "Tavaszi szel vizet araszt")
    token, _ = await accounts.sessions.create(user)
    await accounts.users.set_role(acme.id, user.id, Role.VIEWER, OPERATOR)
    principal = await accounts.sessions.resolve(token)
    assert principal is not None and principal.role is Role.VIEWER


# -- API keys -----------------------------------------------------------------------------------------------------
async def test_an_api_key_is_shown_once_and_stored_as_its_digest(
    accounts: Accounts, acme: Tenant, pool: asyncpg.Pool
) -> None:
    key, secret = await accounts.keys.create(acme.id, "CRM integration", Role.SUPERVISOR, OPERATOR)
    match = re.fullmatch(r"htk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})", secret)
    assert match is not None and match[1] == key.prefix
    row = await pool.fetchrow("SELECT * FROM api_keys WHERE id = $1", key.id)
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    assert match[2] not in json.dumps({k: str(v) for k, v in dict(row).items()})
    principal = await accounts.keys.resolve(secret)
    assert principal == Principal(
        tenant_id=acme.id, role=Role.SUPERVISOR, name="api-key:CRM integration", api_key_id=key.id
    )
    assert (await accounts.keys.get(acme.id, key.id)).last_used_at == START
    created = [e for e in await audit_rows(pool) if e["action"] == "api_key.create"]
    assert created[0]["details"] == {"name": "CRM integration", "role": "supervisor", "prefix": key.prefix}
    assert match[2] not in json.dumps([{k: str(v) for k, v in e.items()} for e in await audit_rows(pool)])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"),  # one character of the secret wrong
        lambda s: "htk_00000000" + s[12:],  # another prefix
        lambda s: s.upper(),
        lambda s: s + "x",
        lambda s: s[4:],  # without htk_
        lambda s: "",
    ],
)
async def test_a_mangled_key_is_not_accepted(accounts: Accounts, acme: Tenant, mangle: object) -> None:
    _, secret = await accounts.keys.create(acme.id, "CRM integration", Role.ADMIN, OPERATOR)
    assert callable(mangle)
    assert await accounts.keys.resolve(mangle(secret)) is None


async def test_a_revoked_key_stops_working_and_names_can_be_reused(
    accounts: Accounts, acme: Tenant, globex: Tenant, pool: asyncpg.Pool
) -> None:
    key, secret = await accounts.keys.create(acme.id, "CRM integration", Role.VIEWER, OPERATOR)
    with pytest.raises(ConflictError, match="already exists"):
        await accounts.keys.create(acme.id, "CRM  integration", Role.VIEWER, OPERATOR)
    with pytest.raises(NotFoundError):
        await accounts.keys.revoke(globex.id, key.id, OPERATOR)
    with pytest.raises(NotFoundError):
        await accounts.keys.find(globex.id, key.prefix)
    assert await accounts.keys.resolve(secret) is not None
    revoked = await accounts.keys.revoke(acme.id, key.id, OPERATOR)
    assert revoked.revoked_at == START and not revoked.active
    assert await accounts.keys.resolve(secret) is None
    assert await accounts.keys.revoke(acme.id, key.id, OPERATOR) == revoked
    again, _ = await accounts.keys.create(acme.id, "CRM integration", Role.VIEWER, OPERATOR)
    assert {k.id for k in await accounts.keys.list(acme.id)} == {key.id, again.id}
    assert await accounts.keys.find(acme.id, f"htk_{key.prefix}_") == revoked
    actions = [e["action"] for e in await audit_rows(pool)]
    assert actions.count("api_key.revoke") == 1 and actions.count("api_key.create") == 2
