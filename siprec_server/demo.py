"""A demo tenant and its admin on a fresh install, for the quick start (``hangtar serve --demo``, ``make run``).

Only when the catalogue has no tenant at all: an install that has one (a real subscriber, or the demo made on an
earlier start) is never touched, so ``--demo`` is harmless on a restart. The admin gets a one-time password,
printed once with the portal's address; the first login asks for a new one. The tenant owns the example number
``+3612345678`` so a test call to it is attributed to the demo tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.audit import Actor, AuditLog
from storage.login_limit import LoginLimiter
from storage.passwords import Passwords
from storage.principal import Role
from storage.tenants import TenantStore
from storage.users import UserStore

__all__ = ["DEMO_ADMIN", "DEMO_NUMBER", "DEMO_TENANT", "DemoLogin", "ensure_demo"]

DEMO_TENANT = "demo"
DEMO_ADMIN = "admin@demo.example"
DEMO_NUMBER = "+3612345678"
_ACTOR = Actor(name="system:demo", origin="server")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoLogin:
    email: str
    password: str  # one-time: shown once, changed at the first login


async def ensure_demo(pool: Any) -> DemoLogin | None:
    """Create the demo tenant, its number and admin if there is no tenant yet; the admin's login, or None."""
    if await pool.fetchval("SELECT EXISTS (SELECT 1 FROM tenants)"):
        return None
    audit = AuditLog()
    tenants = TenantStore(pool, audit)
    tenant = await tenants.create(slug=DEMO_TENANT, name="Demo Kft.", actor=_ACTOR)
    await tenants.add_number(tenant.id, DEMO_NUMBER, actor=_ACTOR, label="demo line")
    users = UserStore(pool, audit, passwords=Passwords(), limiter=LoginLimiter(pool))
    _, password = await users.create(tenant.id, DEMO_ADMIN, Role.ADMIN, _ACTOR)
    return DemoLogin(email=DEMO_ADMIN, password=password)
