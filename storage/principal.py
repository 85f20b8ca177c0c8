"""Who is calling the API: a tenant's user (by session) or a machine (by API key), with one role.

Every caller acts for exactly one tenant; what it may do is its role's :data:`ROLE_PERMISSIONS`. The matrix
is data, so the API, the portal and the tests read the same table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from uuid import UUID

from .audit import Actor

__all__ = ["ROLE_PERMISSIONS", "Permission", "Principal", "Role"]


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"  # listens to and downloads calls
    DPO = "dpo"  # data-protection officer: access requests, holds, erasure
    AUDITOR = "auditor"  # reads the audit log
    VIEWER = "viewer"


class Permission(enum.StrEnum):
    VIEW = "view"  # list/search recordings, recording detail and its quality, own retention options
    LISTEN = "listen"  # play, download, export a copy (audited)
    RETENTION = "retention"  # change a call's retention class
    HOLD = "hold"  # place holds, request/approve release
    ACCESS_REQUEST = "access_request"  # access-request cases, export bundles
    ERASE = "erase"  # erasure, consent withdrawal
    AUDIT = "audit"  # read the audit log
    SETTINGS = "settings"  # policies, retention options, numbers
    USERS = "users"  # users and API keys


_P = Permission
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.ADMIN: frozenset(Permission),
        Role.SUPERVISOR: frozenset({_P.VIEW, _P.LISTEN, _P.RETENTION}),
        Role.DPO: frozenset(
            {_P.VIEW, _P.LISTEN, _P.RETENTION, _P.HOLD, _P.ACCESS_REQUEST, _P.ERASE, _P.AUDIT}
        ),
        Role.AUDITOR: frozenset({_P.VIEW, _P.AUDIT}),
        Role.VIEWER: frozenset({_P.VIEW}),
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    tenant_id: UUID  # every API caller acts for exactly one tenant
    role: Role
    name: str  # the user's e-mail, or "api-key:<key name>"
    user_id: UUID | None = None
    api_key_id: UUID | None = None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def actor(self, origin: str | None) -> Actor:
        """The audit trail's name for this caller, acting from ``origin`` (the client address)."""
        return Actor(name=self.name, origin=origin)
