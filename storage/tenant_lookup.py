"""Finding a tenant: the one lookup every service and command uses, by id or by slug.

Runs on what it is given (a pool, or a connection inside the caller's transaction, where it may lock the row)
and returns the :class:`~storage.tenant_models.Tenant` value; a tenant that does not exist is
:class:`~storage.errors.NotFoundError`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .errors import NotFoundError, translated
from .tenant_models import Tenant

__all__ = ["TENANT_COLUMNS", "find_tenant"]

TENANT_COLUMNS = "id, slug, name, region, hints, created_at, updated_at"
_BY_ID = f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"  # noqa: S608 (constant column list)
_BY_SLUG = f"SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1"  # noqa: S608


async def find_tenant(db: Any, slug_or_id: str | UUID, *, for_update: bool = False) -> Tenant:
    """A tenant by its uuid (or the uuid written out) or its slug (``acme-kft``, in any case)."""
    text = str(slug_or_id).strip()
    key: UUID | None = slug_or_id if isinstance(slug_or_id, UUID) else None
    if key is None:
        try:
            key = UUID(text)
        except ValueError:
            key = None
    lock = " FOR UPDATE" if for_update else ""
    with translated("look up a tenant"):
        if key is not None:
            row = await db.fetchrow(_BY_ID + lock, key)
        else:
            row = await db.fetchrow(_BY_SLUG + lock, text.lower())
    if row is None:
        raise NotFoundError(f"no tenant {text!r}")
    return Tenant.from_row(row)
