"""Whose rows a lifecycle call may touch: one tenant's, the calls no tenant claimed, or every tenant's.

A :data:`TenantScope` is one of

- a tenant's id: that tenant's rows only; another tenant's, and the unclaimed calls, are "not found";
- ``None``: the calls no tenant claimed (recorded under the system policy), and nothing of any tenant;
- :data:`ALL_TENANTS`: the operator, acting across every tenant and the unclaimed calls.

A method that acts for one controller takes ``tenant_id: UUID | None``; one the operator may also run across
tenants takes ``scope: TenantScope``. The types keep them apart: :data:`ALL_TENANTS` where only one
controller's rows may be touched is a type error under ``mypy --strict``, and ``None`` never means "everyone".
In SQL, :func:`tenant_sql` and :func:`scope_sql` are the one way each is tested.
"""

from __future__ import annotations

import enum
from typing import Final
from uuid import UUID

__all__ = [
    "ALL_TENANTS",
    "AllTenants",
    "TenantScope",
    "scope_args",
    "scope_sql",
    "tenant_sql",
    "tenant_within",
]


class AllTenants(enum.Enum):
    """The operator's scope: every tenant's rows and the unclaimed ones (one member, :data:`ALL_TENANTS`)."""

    ALL_TENANTS = "all_tenants"

    def __repr__(self) -> str:
        return "ALL_TENANTS"


ALL_TENANTS: Final = AllTenants.ALL_TENANTS

TenantScope = UUID | None | AllTenants


def tenant_sql(column: str, param: int) -> str:
    """SQL true where ``column`` is the tenant bound to ``$param`` (a uuid, or NULL: the unclaimed calls)."""
    return f"({column} = ${param}::uuid OR ({column} IS NULL AND ${param}::uuid IS NULL))"


def scope_sql(column: str, first: int) -> str:
    """SQL true where ``column`` lies in the scope :func:`scope_args` binds to ``$first`` and ``$first + 1``."""
    return f"(${first}::boolean OR {tenant_sql(column, first + 1)})"


def scope_args(scope: TenantScope) -> tuple[bool, UUID | None]:
    """The two parameters of :func:`scope_sql`: (every tenant?, the tenant or None for the unclaimed calls)."""
    if scope is ALL_TENANTS:
        return True, None
    return False, scope


def tenant_within(scope: TenantScope, tenant_id: UUID | None) -> bool:
    """Does a row of ``tenant_id`` (None: an unclaimed call) lie in ``scope``?"""
    return scope is ALL_TENANTS or scope == tenant_id
