"""What the catalogue holds about a data subject: the repository behind access requests (GDPR Art. 15).

Every query is scoped to one controller: a tenant, or (``tenant_id`` None) the calls no tenant claimed, which
the system policy recorded (:mod:`storage.scope`); there is no scope across tenants here. Numbers are compared
as the E.164 keys stored in ``recordings.numbers`` (its GIN index answers ``numbers @> ARRAY[key]``).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from .access_rules import SearchCriteria
from .catalogue import recording_from_row
from .consent import ConsentProof
from .errors import translated
from .models import Recording, format_timestamp
from .retention_class import RetentionClass
from .scope import tenant_sql

__all__ = ["SubjectData", "SubjectRecording"]

_WITH_LIFECYCLE = """
    SELECT rec.*, rp.version AS policy_version, rc.code AS retention_class,
           rc.id AS rc_id, rc.tenant_id AS rc_tenant_id, rc.code AS rc_code, rc.name AS rc_name,
           rc.days AS rc_days, rc.max_days AS rc_max_days, rc.statutory AS rc_statutory, rc.basis AS rc_basis,
           rc.source AS rc_source
    FROM recordings rec
    LEFT JOIN retention_classes rc ON rc.id = rec.retention_class_id
    LEFT JOIN recording_policies rp ON rp.id = rec.policy_id
"""
_TENANT_SCOPE = tenant_sql("rec.tenant_id", 1)
# The window narrows the number search; a reference finds its one recording wherever it lies.
_SEARCH = f"""
    {_WITH_LIFECYCLE}
    WHERE {_TENANT_SCOPE}
      AND (
        ($2::text IS NOT NULL AND rec.numbers @> ARRAY[$2::text]
            AND ($4::timestamptz IS NULL OR rec.started_at >= $4)
            AND ($5::timestamptz IS NULL OR rec.started_at < $5))
        OR ($3::text IS NOT NULL AND rec.reference = $3)
      )
    ORDER BY rec.started_at, rec.id
"""
_BY_IDS = f"""
    {_WITH_LIFECYCLE}
    WHERE {_TENANT_SCOPE} AND rec.id = ANY($2::uuid[])
    ORDER BY rec.started_at, rec.id
"""
_PROOFS = "SELECT * FROM consent_proofs WHERE recording_id = ANY($1::uuid[]) ORDER BY asked_at, id"


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectRecording:
    """A catalogue recording (which carries its basis, purpose, expiry and numbers) with the details of its
    retention class and the version of the policy that decided it."""

    recording: Recording
    retention: RetentionClass | None = None
    policy_version: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The short form a search prints: who, when, why and until when."""
        r = self.recording
        return {
            "id": str(r.id),
            "reference": r.reference,
            "status": r.status.value,
            "started_at": format_timestamp(r.started_at),
            "duration_seconds": r.duration_seconds,
            "numbers": list(r.numbers),
            "participants": [participant.to_json() for participant in r.participants],
            "basis": r.basis,
            "statute": r.statute,
            "purpose": r.purpose,
            "retention_class": r.retention_class,
            "expires_at": format_timestamp(r.expires_at),
            "consent_state": r.consent_state,
            "has_audio": bool(r.file_path),
        }


class SubjectData:
    """Reads for access requests; runs on a pool or on a connection inside the caller's transaction."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def search(
        self, tenant_id: UUID | None, criteria: SearchCriteria
    ) -> builtins.list[SubjectRecording]:
        """Every recording of the tenant matching the criteria, oldest first."""
        with translated("search recordings"):
            rows = await self._db.fetch(
                _SEARCH, tenant_id, criteria.number, criteria.reference, criteria.since, criteria.until
            )
        return [_subject_recording(row) for row in rows]

    async def by_ids(
        self, tenant_id: UUID | None, recording_ids: Sequence[UUID]
    ) -> builtins.list[SubjectRecording]:
        """The tenant's recordings among ``recording_ids`` (others' are left out), oldest first."""
        with translated("load recordings"):
            rows = await self._db.fetch(_BY_IDS, tenant_id, list(recording_ids))
        return [_subject_recording(row) for row in rows]

    async def consent_proofs(self, recording_ids: Sequence[UUID]) -> dict[UUID, builtins.list[ConsentProof]]:
        with translated("load consent proofs"):
            rows = await self._db.fetch(_PROOFS, list(recording_ids))
        proofs: dict[UUID, list[ConsentProof]] = {}
        for row in rows:
            proofs.setdefault(row["recording_id"], []).append(ConsentProof.from_row(row))
        return proofs


def _subject_recording(row: Mapping[str, Any]) -> SubjectRecording:
    retention = None if row["rc_id"] is None else RetentionClass.from_row(row, prefix="rc_")
    return SubjectRecording(
        recording=recording_from_row(row), retention=retention, policy_version=row["policy_version"]
    )
