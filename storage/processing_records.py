"""Records of processing activities (GDPR Art. 30) for call recording, one per tenant, from live data.

The tenant is the controller; the operator running Hangtár is its processor (Art. 28), named by text the
caller passes (configuration). What is recorded, why, on what basis and for how long comes from the
tenant's current policies, the retention classes they and its recordings use, and its numbers; the
categories and the technical and organisational measures are what the product does. Rendered as JSON
(:meth:`ProcessingRecord.to_json`) and Markdown (:func:`storage.processing_records_markdown.to_markdown`).

Recipients: the delivery of copies to recipients (CRM, SFTP) is not part of the product yet. A
``recipients`` lookup passed to :class:`ProcessingRecords` supplies them once it is; without one, the record
says there are none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from .audit import Actor, AuditEntry, AuditLog
from .errors import translated
from .models import format_timestamp
from .tenant_lookup import find_tenant
from .tenant_models import Tenant

__all__ = [
    "PolicyLine",
    "ProcessingRecord",
    "ProcessingRecords",
    "PurposeLine",
    "RecipientsOf",
    "RetentionLine",
    "build_record",
]

# The recipients of a tenant's recordings (delivery targets), as plain descriptions.
RecipientsOf = Callable[[UUID], Awaitable[Sequence[str]]]

_POLICIES = """
    SELECT p.id, p.version, p.tenant_id, p.direction, p.record, p.basis, p.statute, p.purpose, p.format,
           p.consent, n.kind AS number_kind, n.value AS number_value, rc.code AS retention_code
    FROM recording_policies p
    LEFT JOIN tenant_numbers n ON n.id = p.number_id
    LEFT JOIN retention_classes rc ON rc.id = p.retention_class_id
    WHERE p.superseded_at IS NULL AND (p.tenant_id = $1 OR p.tenant_id IS NULL)
    ORDER BY p.tenant_id NULLS FIRST, n.value NULLS FIRST, p.direction
"""
_KEPT_PURPOSES = """
    SELECT DISTINCT basis, statute, purpose FROM recordings
    WHERE tenant_id = $1 AND basis IS NOT NULL
"""
_RETENTION = """
    SELECT rc.code, rc.name, rc.days, rc.max_days, rc.statutory, rc.basis, rc.source, rc.tenant_id,
           o.position AS option_position
    FROM retention_classes rc
    LEFT JOIN tenant_retention_options o ON o.retention_class_id = rc.id AND o.tenant_id = $1
    WHERE rc.tenant_id = $1
       OR o.position IS NOT NULL
       OR rc.id IN (SELECT retention_class_id FROM recording_policies
                    WHERE superseded_at IS NULL AND (tenant_id = $1 OR tenant_id IS NULL))
       OR rc.id IN (SELECT DISTINCT retention_class_id FROM recordings WHERE tenant_id = $1)
    ORDER BY o.position NULLS LAST, rc.days, rc.code
"""
_NUMBERS = "SELECT kind, count(*) AS n FROM tenant_numbers WHERE tenant_id = $1 GROUP BY kind ORDER BY kind"
_RECORDINGS = """
    SELECT count(*) AS total,
           count(*) FILTER (WHERE file_path IS NOT NULL AND encryption IS NULL) AS unencrypted
    FROM recordings WHERE tenant_id = $1
"""

_BASIS = {
    "legal_obligation": "legal obligation (Art. 6(1)(c))",
    "consent": "consent (Art. 6(1)(a))",
    "legitimate_interest": "legitimate interests (Art. 6(1)(f))",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyLine:
    """A current recording policy that applies to the tenant's calls."""

    scope: str  # "tenant", "number +3612345678" (or "range", "extension"), "system"
    version: int
    direction: str
    record: bool
    basis: str | None
    statute: str | None
    purpose: str | None
    retention_class: str | None
    format: str
    consent: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "version": self.version,
            "direction": self.direction,
            "record": self.record,
            "basis": self.basis,
            "statute": self.statute,
            "purpose": self.purpose,
            "retention_class": self.retention_class,
            "format": self.format,
            "consent": None if self.consent is None else dict(self.consent),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PurposeLine:
    purpose: str
    basis: str
    statute: str | None
    current: bool  # a current policy records for it; else only recordings made earlier are kept for it

    def to_json(self) -> dict[str, Any]:
        return {
            "purpose": self.purpose,
            "basis": self.basis,
            "basis_text": _BASIS.get(self.basis, self.basis),
            "statute": self.statute,
            "current": self.current,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionLine:
    code: str
    name: str
    days: int
    max_days: int | None
    statutory: bool
    basis: str
    source: str
    option_position: int | None  # 0: the tenant's default; 1-4 its other choices

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.code,
            "name": self.name,
            "days": self.days,
            "max_days": self.max_days,
            "statutory": self.statutory,
            "basis": self.basis,
            "source": self.source,
            "option_position": self.option_position,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessingRecord:
    generated_at: datetime
    controller: Tenant
    processor: str
    policies: tuple[PolicyLine, ...]
    purposes: tuple[PurposeLine, ...]
    retention: tuple[RetentionLine, ...]
    numbers: Mapping[str, int]  # kind → count
    recordings: int
    unencrypted: int  # recordings stored before encryption at rest
    recipients: tuple[str, ...]
    data_subjects: tuple[str, ...]
    data_categories: tuple[str, ...]
    measures: tuple[str, ...]
    transfers: str
    erasure: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "generated_at": format_timestamp(self.generated_at),
            "controller": {
                "id": str(self.controller.id),
                "slug": self.controller.slug,
                "name": self.controller.name,
            },
            "processor": self.processor,
            "activity": "recording of telephone calls (SIPREC session recording)",
            "purposes": [line.to_json() for line in self.purposes],
            "policies": [line.to_json() for line in self.policies],
            "data_subjects": list(self.data_subjects),
            "data_categories": list(self.data_categories),
            "recipients": list(self.recipients),
            "transfers": self.transfers,
            "retention": [line.to_json() for line in self.retention],
            "erasure": list(self.erasure),
            "measures": list(self.measures),
            "numbers": dict(self.numbers),
            "recordings": {"total": self.recordings, "unencrypted": self.unencrypted},
        }


def build_record(
    *,
    controller: Tenant,
    processor: str,
    generated_at: datetime,
    policies: Sequence[PolicyLine],
    kept_purposes: Sequence[tuple[str | None, str | None, str | None]],
    retention: Sequence[RetentionLine],
    numbers: Mapping[str, int],
    recordings: int,
    unencrypted: int,
    recipients: Sequence[str] = (),
    dtmf_digits: bool = False,
) -> ProcessingRecord:
    """The record from loaded facts (pure). ``kept_purposes``: (basis, statute, purpose) of recordings kept."""
    purposes: dict[tuple[str, str, str | None], PurposeLine] = {}
    for policy in policies:
        if policy.record and policy.basis:
            key = (policy.purpose or "unspecified", policy.basis, policy.statute)
            purposes[key] = PurposeLine(purpose=key[0], basis=key[1], statute=key[2], current=True)
    for basis, statute, purpose in kept_purposes:
        if basis is None:
            continue
        key = (purpose or "unspecified", basis, statute)
        purposes.setdefault(key, PurposeLine(purpose=key[0], basis=basis, statute=statute, current=False))
    consent = any(line.basis == "consent" for line in purposes.values())
    categories = [
        "recordings of the conversation: the voices of every party to the call",
        "phone numbers and SIP addresses of the parties",
        "names of the parties as the phone system shows them",
        "time, length and direction of the call; the unique recording reference",
        "technical call data: codecs, network addresses of the phone system, stream quality statistics",
        "times of key presses" + (" and the digits pressed" if dtmf_digits else " (not the digits)"),
    ]
    if consent:
        categories.append("proof of consent: the prompt version asked, the key pressed, the time and number")
    measures = [
        "encryption at rest: AES-256-GCM, a random key per recording, wrapped by a key of the controller; "
        "destroying a recording's key makes every copy of it unreadable, backups included",
        "encryption in transit: SIP over TLS and SRTP media where the phone system offers them",
        "integrity: a SHA-256 hash of every stored file, re-checked on demand (hangtar verify)",
        "accountability: an append-only, hash-chained audit trail of every search, play, download, export, "
        "policy and retention change, hold and deletion, with who, when and from where "
        "(hangtar audit verify)",
        "access control: each controller's recordings, rules and requests are kept apart; administration "
        "only by named users through the server's command line and API",
        "storage limitation: automatic deletion when the retention period ends; calls with no legal basis "
        "are not recorded at all",
        "restriction: a legal hold stops every deletion at once, and releasing it takes two different people",
        "data minimisation: the digits of key presses are not stored unless configured",
    ]
    if unencrypted:
        measures.append(
            f"note: {unencrypted} recording(s) made before encryption at rest was enabled are stored unencrypted"
        )
    return ProcessingRecord(
        generated_at=generated_at,
        controller=controller,
        processor=processor,
        policies=tuple(policies),
        purposes=tuple(purposes.values()),
        retention=tuple(retention),
        numbers=dict(numbers),
        recordings=recordings,
        unencrypted=unencrypted,
        recipients=tuple(recipients),
        data_subjects=(
            "callers and called parties on the controller's numbers (customers, members of the public, "
            "business partners)",
            "the controller's staff who make or take the calls",
            "other parties joined to a call by transfer or conference",
        ),
        data_categories=tuple(categories),
        measures=tuple(measures),
        transfers="none: the recording system does not transfer recordings to a third country or an "
        "international organisation",
        erasure=(
            "each recording is deleted when its retention period ends (the periods above), with its keys, "
            "files and derived data; a disposal log without personal data is kept",
            "statutory periods are a floor: such recordings are not erased earlier (Art. 17(3)(b))",
            "consent-based recordings are also deleted when the person withdraws consent (Art. 7(3))",
            "recordings under a legal hold (Art. 18) are kept until the hold is released",
        ),
    )


class ProcessingRecords:
    def __init__(
        self,
        pool: Any,
        *,
        audit: AuditLog,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        recipients: RecipientsOf | None = None,
        dtmf_digits: bool = False,
    ) -> None:
        self._pool = pool
        self._audit = audit
        self._clock = clock
        self._recipients = recipients
        self._dtmf_digits = dtmf_digits

    async def build(self, tenant_id: UUID, *, processor: str, actor: Actor) -> ProcessingRecord:
        """The tenant's record as of now; its generation is audited (``ropa.export``)."""
        controller = await find_tenant(self._pool, tenant_id)
        with translated("read the records of processing"):
            policy_rows = await self._pool.fetch(_POLICIES, tenant_id)
            kept = await self._pool.fetch(_KEPT_PURPOSES, tenant_id)
            retention_rows = await self._pool.fetch(_RETENTION, tenant_id)
            number_rows = await self._pool.fetch(_NUMBERS, tenant_id)
            counts = await self._pool.fetchrow(_RECORDINGS, tenant_id)
        recipients = () if self._recipients is None else tuple(await self._recipients(tenant_id))
        record = build_record(
            controller=controller,
            processor=processor,
            generated_at=self._clock().astimezone(UTC),
            policies=_applicable(policy_rows),
            kept_purposes=[(row["basis"], row["statute"], row["purpose"]) for row in kept],
            retention=[
                RetentionLine(
                    code=row["code"],
                    name=row["name"],
                    days=row["days"],
                    max_days=row["max_days"],
                    statutory=row["statutory"],
                    basis=row["basis"],
                    source=row["source"],
                    option_position=row["option_position"],
                )
                for row in retention_rows
            ],
            numbers={row["kind"]: int(row["n"]) for row in number_rows},
            recordings=int(counts["total"]),
            unencrypted=int(counts["unencrypted"]),
            recipients=recipients,
            dtmf_digits=self._dtmf_digits,
        )
        await self._audit.record(
            self._pool,
            AuditEntry(
                actor=actor,
                action="ropa.export",
                tenant_id=tenant_id,
                object_kind="tenant",
                object_id=str(tenant_id),
                details={"policies": len(record.policies), "purposes": len(record.purposes)},
            ),
        )
        return record


def _applicable(rows: Sequence[Mapping[str, Any]]) -> list[PolicyLine]:
    """The tenant's own policies; the system's too where the tenant has no tenant-wide policy of its own
    (its calls outside number-scoped policies then follow the system policy)."""
    own = [row for row in rows if row["tenant_id"] is not None]
    tenant_wide = any(row["number_value"] is None for row in own)
    chosen = own if tenant_wide else [*[row for row in rows if row["tenant_id"] is None], *own]
    lines = []
    for row in chosen:
        if row["tenant_id"] is None:
            scope = "system"
        elif row["number_value"] is None:
            scope = "tenant"
        else:
            scope = f"{row['number_kind']} {row['number_value']}"
        lines.append(
            PolicyLine(
                scope=scope,
                version=row["version"],
                direction=row["direction"],
                record=row["record"],
                basis=row["basis"],
                statute=row["statute"],
                purpose=row["purpose"],
                retention_class=row["retention_code"],
                format=row["format"],
                consent=row["consent"],
            )
        )
    return lines
