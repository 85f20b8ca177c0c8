"""SQL the lifecycle services share: a recording's retention facts, its active holds, and retention classes.

Every function runs on what it is given (a pool, or a connection inside the caller's transaction) and turns
driver errors into :class:`CatalogueError`. A recording is looked up within a :data:`storage.scope.TenantScope`:
a tenant sees only its own (another tenant's, and the unclaimed calls, are "not found"), ``None`` only the
calls no tenant claimed, and :data:`~storage.scope.ALL_TENANTS` (the operator) every recording.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .consent import RecordingConsent
from .errors import NotFoundError, translated
from .hold_rules import Hold
from .models import RecordingStatus
from .phone import DEFAULT_REGION, number_key
from .reference import normalize_reference
from .retention import RecordingRetention
from .retention_class import Basis, RetentionClass
from .scope import TenantScope, scope_args, scope_sql
from .tenant_lookup import find_tenant

__all__ = [
    "ACTIVE_HOLD_ON",
    "CLASS_COLUMNS",
    "FACT_COLUMNS",
    "HOLD_COVERS",
    "Lock",
    "RecordingFacts",
    "active_holds",
    "find_class",
    "find_recording",
    "number_for",
    "recording_facts",
    "tenant_options",
]


class Lock(enum.StrEnum):
    NONE = ""
    SHARE = "FOR SHARE OF r"  # keeps it from being deleted meanwhile
    UPDATE = "FOR UPDATE OF r"  # about to change or delete it


# Hold ``h`` covers recording row ``r`` (active or not): the test of the trigger recordings_refuse_held_delete
# (migration 0004) and of storage.hold_rules.covers. A hold without a tenant is the operator's: every tenant's.
HOLD_COVERS = """
    (h.tenant_id IS NULL OR h.tenant_id IS NOT DISTINCT FROM r.tenant_id)
    AND (h.recording_id = r.id
         OR (h.number = ANY (r.numbers)
             AND (h.from_at IS NULL OR r.started_at >= h.from_at)
             AND (h.until_at IS NULL OR r.started_at < h.until_at)))
"""
# An active hold covers recording row ``r``.
ACTIVE_HOLD_ON = f"EXISTS (SELECT 1 FROM holds h WHERE h.released_at IS NULL AND {HOLD_COVERS})"  # noqa: S608

CLASS_COLUMNS = "id, tenant_id, code, name, days, max_days, statutory, basis, source"
FACT_COLUMNS = f"""
    r.id, r.reference, r.tenant_id, r.status, r.started_at, r.ended_at, r.basis, r.expires_at, r.consent_state,
    r.numbers, r.file_path, {ACTIVE_HOLD_ON} AS held,
    c.id AS class_id, c.tenant_id AS class_tenant_id, c.code AS class_code, c.name AS class_name,
    c.days AS class_days, c.max_days AS class_max_days, c.statutory AS class_statutory,
    c.basis AS class_basis, c.source AS class_source
"""
_FACTS_BY = f"""
    SELECT {FACT_COLUMNS}
    FROM recordings r LEFT JOIN retention_classes c ON c.id = r.retention_class_id
    WHERE r.{{key}} = $1 AND {scope_sql("r.tenant_id", 2)}
"""  # noqa: S608 (constant fragments)
_ACTIVE_HOLDS = f"""
    SELECT h.* FROM holds h, recordings r
    WHERE r.id = $1 AND h.released_at IS NULL AND {HOLD_COVERS}
    ORDER BY h.placed_at, h.id
"""  # noqa: S608
_FIND_CLASS = f"""
    SELECT {CLASS_COLUMNS} FROM retention_classes
    WHERE code = $1 AND (tenant_id IS NULL OR tenant_id IS NOT DISTINCT FROM $2)
    ORDER BY tenant_id NULLS LAST LIMIT 1
"""  # noqa: S608
_OPTIONS = """
    SELECT c.id, c.tenant_id, c.code, c.name, c.days, c.max_days, c.statutory, c.basis, c.source
    FROM tenant_retention_options o JOIN retention_classes c ON c.id = o.retention_class_id
    WHERE o.tenant_id = $1 ORDER BY o.position
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFacts:
    """A recording as the lifecycle sees it: no audio, no metadata, just what the rules decide on."""

    id: UUID
    reference: str
    tenant_id: UUID | None
    status: RecordingStatus
    started_at: datetime
    ended_at: datetime | None
    basis: Basis | None
    retention_class: RetentionClass | None
    expires_at: datetime | None
    consent_state: RecordingConsent
    numbers: tuple[str, ...]
    file_path: str | None
    held: bool

    @property
    def finished(self) -> bool:
        return self.status is not RecordingStatus.RECORDING

    def retention(self) -> RecordingRetention:
        return RecordingRetention(
            reference=self.reference,
            started_at=self.started_at,
            ended_at=self.ended_at,
            basis=self.basis,
            retention_class=self.retention_class,
            expires_at=self.expires_at,
            held=self.held,
            finished=self.finished,
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RecordingFacts:
        """From a row of :data:`FACT_COLUMNS`."""
        retention = None if row["class_id"] is None else RetentionClass.from_row(row, prefix="class_")
        return cls(
            id=row["id"],
            reference=row["reference"],
            tenant_id=row["tenant_id"],
            status=RecordingStatus(row["status"]),
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            basis=None if row["basis"] is None else Basis(row["basis"]),
            retention_class=retention,
            expires_at=row["expires_at"],
            consent_state=RecordingConsent(row["consent_state"]),
            numbers=tuple(row["numbers"]),
            file_path=row["file_path"],
            held=bool(row["held"]),
        )


async def recording_facts(
    db: Any, scope: TenantScope, recording_id: UUID, *, lock: Lock = Lock.NONE
) -> RecordingFacts:
    """The recording in ``scope``, optionally locked; :class:`NotFoundError` if it is not there."""
    return await _facts_by(db, "id", recording_id, scope, lock)


async def find_recording(
    db: Any, scope: TenantScope, id_or_reference: str | UUID, *, lock: Lock = Lock.NONE
) -> RecordingFacts:
    """By uuid or by the reference as a person typed it (``ht-7k3m-q9rx``)."""
    if isinstance(id_or_reference, UUID):
        return await recording_facts(db, scope, id_or_reference, lock=lock)
    text = id_or_reference.strip()
    try:
        as_uuid = UUID(text)
    except ValueError:
        pass
    else:
        return await recording_facts(db, scope, as_uuid, lock=lock)
    reference = normalize_reference(text)
    if reference is None:
        raise NotFoundError(f"{text!r} is neither a recording id nor a reference")
    return await _facts_by(db, "reference", reference, scope, lock)


async def _facts_by(db: Any, key: str, value: UUID | str, scope: TenantScope, lock: Lock) -> RecordingFacts:
    with translated("look up a recording"):
        row = await db.fetchrow(f"{_FACTS_BY.format(key=key)} {lock.value}", value, *scope_args(scope))
    if row is None:
        raise NotFoundError(f"no recording {value}")
    return RecordingFacts.from_row(row)


async def active_holds(db: Any, recording_id: UUID) -> list[Hold]:
    """The active holds restricting a recording, oldest first."""
    with translated("look up legal holds"):
        rows = await db.fetch(_ACTIVE_HOLDS, recording_id)
    return [Hold.from_row(row) for row in rows]


async def number_for(db: Any, scope: TenantScope, number: str) -> str:
    """The stored key of a number as written (E.164, or the digits of an extension), read in the region of the
    scope's tenant (the default region for the unclaimed calls and across tenants); ``ValueError`` when it
    holds no number."""
    region = DEFAULT_REGION
    if isinstance(scope, UUID):
        region = (await find_tenant(db, scope)).region
    key = number_key(number, region)
    if key is None:
        raise ValueError(f"{number!r} is not a phone number")
    return key


async def find_class(db: Any, tenant_id: UUID | None, code: str) -> RetentionClass:
    """A class by code: the tenant's own first, else a preset (``tenant_id`` None: the presets only)."""
    with translated("look up a retention class"):
        row = await db.fetchrow(_FIND_CLASS, code.strip().lower(), tenant_id)
    if row is None:
        raise NotFoundError(f"no retention class {code!r} (a preset or the tenant's own)")
    return RetentionClass.from_row(row)


async def tenant_options(db: Any, tenant_id: UUID) -> list[RetentionClass]:
    """The tenant's selectable classes, default first; empty when it has not chosen any."""
    with translated("look up retention options"):
        rows = await db.fetch(_OPTIONS, tenant_id)
    return [RetentionClass.from_row(row) for row in rows]
