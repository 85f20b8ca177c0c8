"""SQL the lifecycle services share: a recording's retention facts, its active holds, tenants and classes.

Every function runs on what it is given (a pool, or a connection inside the caller's transaction) and turns
driver errors into :class:`CatalogueError`. ``tenant_id`` scopes a lookup: a tenant sees only its own rows
(another tenant's are "not found"); None is the operator, who sees every tenant's rows.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .errors import NotFoundError, translated
from .hold_rules import Hold
from .models import RecordingStatus
from .phone import DEFAULT_REGION, number_key
from .reference import normalize_reference
from .retention import Basis, RecordingRetention, RetentionClass

__all__ = [
    "ACTIVE_HOLD_ON",
    "CLASS_COLUMNS",
    "FACT_COLUMNS",
    "ConsentState",
    "Lock",
    "RecordingFacts",
    "TenantRef",
    "active_holds",
    "find_class",
    "find_recording",
    "find_tenant",
    "number_for",
    "recording_facts",
    "retention_class",
    "tenant_options",
]


class ConsentState(enum.StrEnum):
    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    GIVEN = "given"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"  # Art. 7(3): erased as soon as no hold keeps it


class Lock(enum.StrEnum):
    NONE = ""
    SHARE = "FOR SHARE OF r"  # keeps it from being deleted meanwhile
    UPDATE = "FOR UPDATE OF r"  # about to change or delete it


# An active hold covering recording row ``r``: the test of the trigger recordings_refuse_held_delete.
ACTIVE_HOLD_ON = """
    EXISTS (
        SELECT 1 FROM holds h
        WHERE h.released_at IS NULL
          AND (h.tenant_id IS NULL OR h.tenant_id IS NOT DISTINCT FROM r.tenant_id)
          AND (h.recording_id = r.id
               OR (h.number = ANY (r.numbers)
                   AND (h.from_at IS NULL OR r.started_at >= h.from_at)
                   AND (h.until_at IS NULL OR r.started_at < h.until_at)))
    )
"""

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
    WHERE r.{{key}} = $1 AND ($2::uuid IS NULL OR r.tenant_id = $2)
"""  # noqa: S608 (constant fragments)
_ACTIVE_HOLDS = """
    SELECT h.* FROM holds h, recordings r
    WHERE r.id = $1 AND h.released_at IS NULL
      AND (h.tenant_id IS NULL OR h.tenant_id IS NOT DISTINCT FROM r.tenant_id)
      AND (h.recording_id = r.id
           OR (h.number = ANY (r.numbers)
               AND (h.from_at IS NULL OR r.started_at >= h.from_at)
               AND (h.until_at IS NULL OR r.started_at < h.until_at)))
    ORDER BY h.placed_at, h.id
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
    consent_state: ConsentState
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
        retention = None
        if row["class_id"] is not None:
            retention = RetentionClass(
                id=row["class_id"],
                tenant_id=row["class_tenant_id"],
                code=row["class_code"],
                name=row["class_name"],
                days=row["class_days"],
                max_days=row["class_max_days"],
                statutory=row["class_statutory"],
                basis=Basis(row["class_basis"]),
                source=row["class_source"],
            )
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
            consent_state=ConsentState(row["consent_state"]),
            numbers=tuple(row["numbers"]),
            file_path=row["file_path"],
            held=bool(row["held"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantRef:
    id: UUID
    slug: str
    region: str  # numbers written without a country code are read in this region


def retention_class(row: Mapping[str, Any]) -> RetentionClass:
    return RetentionClass(
        id=row["id"],
        tenant_id=row["tenant_id"],
        code=row["code"],
        name=row["name"],
        days=row["days"],
        max_days=row["max_days"],
        statutory=row["statutory"],
        basis=Basis(row["basis"]),
        source=row["source"],
    )


async def recording_facts(
    db: Any, tenant_id: UUID | None, recording_id: UUID, *, lock: Lock = Lock.NONE
) -> RecordingFacts:
    """The recording in the tenant's scope, optionally locked; :class:`NotFoundError` if it is not there."""
    with translated("look up a recording"):
        row = await db.fetchrow(f"{_FACTS_BY.format(key='id')} {lock.value}", recording_id, tenant_id)
    if row is None:
        raise NotFoundError(f"no recording {recording_id}")
    return RecordingFacts.from_row(row)


async def find_recording(
    db: Any, tenant_id: UUID | None, id_or_reference: str | UUID, *, lock: Lock = Lock.NONE
) -> RecordingFacts:
    """By uuid or by the reference as a person typed it (``ht-7k3m-q9rx``)."""
    if isinstance(id_or_reference, UUID):
        return await recording_facts(db, tenant_id, id_or_reference, lock=lock)
    text = id_or_reference.strip()
    try:
        as_uuid = UUID(text)
    except ValueError:
        pass
    else:
        return await recording_facts(db, tenant_id, as_uuid, lock=lock)
    reference = normalize_reference(text)
    if reference is None:
        raise NotFoundError(f"{text!r} is neither a recording id nor a reference")
    with translated("look up a recording"):
        row = await db.fetchrow(f"{_FACTS_BY.format(key='reference')} {lock.value}", reference, tenant_id)
    if row is None:
        raise NotFoundError(f"no recording {reference}")
    return RecordingFacts.from_row(row)


async def active_holds(db: Any, recording_id: UUID) -> list[Hold]:
    """The active holds restricting a recording, oldest first."""
    with translated("look up legal holds"):
        rows = await db.fetch(_ACTIVE_HOLDS, recording_id)
    return [Hold.from_row(row) for row in rows]


async def find_tenant(db: Any, slug_or_id: str | UUID) -> TenantRef:
    """A tenant by its uuid or slug."""
    key: UUID | None = slug_or_id if isinstance(slug_or_id, UUID) else None
    if key is None:
        try:
            key = UUID(str(slug_or_id).strip())
        except ValueError:
            key = None
    with translated("look up a tenant"):
        if key is not None:
            row = await db.fetchrow("SELECT id, slug, region FROM tenants WHERE id = $1", key)
        else:
            row = await db.fetchrow(
                "SELECT id, slug, region FROM tenants WHERE slug = $1", str(slug_or_id).strip().lower()
            )
    if row is None:
        raise NotFoundError(f"no tenant {slug_or_id}")
    return TenantRef(id=row["id"], slug=row["slug"], region=row["region"])


async def number_for(db: Any, tenant_id: UUID | None, number: str) -> str:
    """The stored key of a number as written (E.164, or the digits of an extension), read in the tenant's
    region; ``ValueError`` when it holds no number."""
    region = DEFAULT_REGION
    if tenant_id is not None:
        region = (await find_tenant(db, tenant_id)).region
    key = number_key(number, region)
    if key is None:
        raise ValueError(f"{number!r} is not a phone number")
    return key


async def find_class(db: Any, tenant_id: UUID | None, code: str) -> RetentionClass:
    """A preset or the tenant's own class, by code."""
    with translated("look up a retention class"):
        row = await db.fetchrow(
            f"""
            SELECT {CLASS_COLUMNS} FROM retention_classes
            WHERE code = $1 AND (tenant_id IS NULL OR tenant_id IS NOT DISTINCT FROM $2)
            ORDER BY tenant_id NULLS LAST LIMIT 1
            """,  # noqa: S608
            code.strip().lower(),
            tenant_id,
        )
    if row is None:
        raise NotFoundError(f"no retention class {code!r}")
    return retention_class(row)


async def tenant_options(db: Any, tenant_id: UUID) -> list[RetentionClass]:
    """The tenant's selectable classes, default first; empty when it has not chosen any."""
    with translated("look up retention options"):
        rows = await db.fetch(
            """
            SELECT c.id, c.tenant_id, c.code, c.name, c.days, c.max_days, c.statutory, c.basis, c.source
            FROM tenant_retention_options o JOIN retention_classes c ON c.id = o.retention_class_id
            WHERE o.tenant_id = $1 ORDER BY o.position
            """,
            tenant_id,
        )
    return [retention_class(row) for row in rows]
