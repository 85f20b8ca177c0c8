"""What the catalogue holds about a data subject: the repository behind access requests (GDPR Art. 15).

Every query is scoped to one tenant (the controller); ``tenant_id`` None means the calls no tenant claimed,
which the system policy recorded. Numbers are compared as the E.164 keys stored in ``recordings.numbers``
(its GIN index answers ``numbers @> ARRAY[key]``).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .access_rules import SearchCriteria
from .catalogue import _recording as recording_from_row
from .errors import NotFoundError, translated
from .models import Recording, format_timestamp
from .phone import DEFAULT_REGION

__all__ = ["ConsentProof", "RetentionFacts", "SubjectData", "SubjectRecording", "TenantRef"]

_WITH_LIFECYCLE = """
    SELECT rec.*, rp.version AS policy_version, rc.code AS retention_class,
           rc.code AS rc_code, rc.name AS rc_name, rc.days AS rc_days, rc.max_days AS rc_max_days,
           rc.statutory AS rc_statutory, rc.basis AS rc_basis, rc.source AS rc_source
    FROM recordings rec
    LEFT JOIN retention_classes rc ON rc.id = rec.retention_class_id
    LEFT JOIN recording_policies rp ON rp.id = rec.policy_id
"""
_TENANT_SCOPE = "(($1::uuid IS NULL AND rec.tenant_id IS NULL) OR rec.tenant_id = $1)"
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
_PROOFS = """
    SELECT recording_id, number, prompt_version, asked_at, answered_at, digit, outcome
    FROM consent_proofs WHERE recording_id = ANY($1::uuid[]) ORDER BY asked_at, id
"""
_TENANT_BY_ID = "SELECT id, slug, name, region FROM tenants WHERE id = $1"
_TENANT_BY_SLUG = "SELECT id, slug, name, region FROM tenants WHERE slug = lower($1)"


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantRef:
    """The controller a request is addressed to."""

    id: UUID
    slug: str
    name: str
    region: str = DEFAULT_REGION  # numbers written without a country code are read in it


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionFacts:
    """The retention class a recording is kept under."""

    id: int
    code: str
    name: str
    days: int
    max_days: int | None
    statutory: bool
    basis: str
    source: str  # the statute or the reasoning

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.code,
            "name": self.name,
            "days": self.days,
            "max_days": self.max_days,
            "statutory": self.statutory,
            "basis": self.basis,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectRecording:
    """A catalogue recording (which carries its basis, purpose, expiry and numbers) with the details of its
    retention class and the version of the policy that decided it."""

    recording: Recording
    retention: RetentionFacts | None = None
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


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentProof:
    """Proof of consent (Art. 7(1)): what was asked of which number, when, and the answer."""

    number: str | None
    prompt_version: str
    asked_at: datetime
    answered_at: datetime | None
    digit: str | None
    outcome: str  # given | refused | no_answer | stopped

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "prompt_version": self.prompt_version,
            "asked_at": format_timestamp(self.asked_at),
            "answered_at": format_timestamp(self.answered_at),
            "digit": self.digit,
            "outcome": self.outcome,
        }


class SubjectData:
    """Reads for access requests; runs on a pool or on a connection inside the caller's transaction."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def tenant(self, tenant_id: UUID) -> TenantRef:
        with translated("look up a tenant"):
            row = await self._db.fetchrow(_TENANT_BY_ID, tenant_id)
        if row is None:
            raise NotFoundError(f"no tenant {tenant_id}")
        return _tenant(row)

    async def find_tenant(self, slug_or_id: str) -> TenantRef:
        """A tenant by its slug (``acme-kft``) or its uuid."""
        text = slug_or_id.strip()
        try:
            tenant_id = UUID(text)
        except ValueError:
            tenant_id = None
        if tenant_id is not None:
            return await self.tenant(tenant_id)
        with translated("look up a tenant"):
            row = await self._db.fetchrow(_TENANT_BY_SLUG, text)
        if row is None:
            raise NotFoundError(f"no tenant {text!r}")
        return _tenant(row)

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
            proofs.setdefault(row["recording_id"], []).append(
                ConsentProof(
                    number=row["number"],
                    prompt_version=row["prompt_version"],
                    asked_at=row["asked_at"],
                    answered_at=row["answered_at"],
                    digit=row["digit"],
                    outcome=row["outcome"],
                )
            )
        return proofs


def _tenant(row: Mapping[str, Any]) -> TenantRef:
    return TenantRef(id=row["id"], slug=row["slug"], name=row["name"], region=row["region"])


def _subject_recording(row: Mapping[str, Any]) -> SubjectRecording:
    retention = None
    if row["retention_class_id"] is not None:
        retention = RetentionFacts(
            id=row["retention_class_id"],
            code=row["rc_code"],
            name=row["rc_name"],
            days=row["rc_days"],
            max_days=row["rc_max_days"],
            statutory=row["rc_statutory"],
            basis=row["rc_basis"],
            source=row["rc_source"],
        )
    return SubjectRecording(
        recording=recording_from_row(row), retention=retention, policy_version=row["policy_version"]
    )
