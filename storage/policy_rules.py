"""Recording policies as values, and the rules a policy must obey before it may decide a call (GDPR Art. 6).

A policy says, for one scope (the system, a tenant, or one of its numbers) and one direction, whether calls
are recorded and on what terms: the legal basis (Art. 6(1)(a) consent, (c) legal obligation, (f) legitimate
interest), the statute for a legal obligation, the purpose, the retention class, the output format and, for
consent, the terms of the question asked at call start. `validate_policy` states every rule a policy breaks:

- recording needs a basis, a purpose and a retention class (Art. 5(1)(b), 6(1));
- a legal obligation names its statute, and only a legal obligation does;
- consent needs the consent terms and a retention class made for consent (deleted on withdrawal, Art. 7(3));
- a statutory retention class (a legal floor) only serves a legal obligation;
- a policy that records nothing carries no basis, purpose, class or consent terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from .consent_terms import ConsentTerms
from .errors import PolicyRuleError
from .retention_class import Basis, RetentionClass

__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "CallDirection",
    "Policy",
    "PolicyDirection",
    "PolicySpec",
    "ScopeKind",
    "validate_policy",
]

FORMATS = ("flac", "wav", "opus", "mp3")
DEFAULT_FORMAT = "flac"
_MAX_TEXT = 500


class CallDirection(StrEnum):
    """Seen from the tenant: a call from outside is inbound."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class PolicyDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    BOTH = "both"


class ScopeKind(StrEnum):
    SYSTEM = "system"  # calls no tenant claims
    TENANT = "tenant"
    NUMBER = "number"  # one number (DID, range or extension) of a tenant


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySpec:
    """A policy as an operator asks for it; ``retention`` is a class code (a preset or the tenant's own)."""

    direction: PolicyDirection = PolicyDirection.BOTH
    record: bool = True
    basis: Basis | None = None
    statute: str | None = None
    purpose: str | None = None
    retention: str | None = None
    format: str = DEFAULT_FORMAT
    consent: ConsentTerms | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction.value,
            "record": self.record,
            "basis": None if self.basis is None else self.basis.value,
            "statute": self.statute,
            "purpose": self.purpose,
            "retention": self.retention,
            "format": self.format,
            "consent": None if self.consent is None else self.consent.to_json(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """One stored version. Never edited: a change is a new version; ``superseded_at`` ends this one."""

    id: int
    version: int
    direction: PolicyDirection
    record: bool
    created_by: str
    tenant_id: UUID | None = None
    number_id: int | None = None
    basis: Basis | None = None
    statute: str | None = None
    purpose: str | None = None
    retention_class_id: int | None = None
    format: str = DEFAULT_FORMAT
    consent: ConsentTerms | None = None
    created_at: datetime | None = None
    superseded_at: datetime | None = None
    retention_code: str | None = field(default=None, compare=False)  # for display, when loaded with it

    @property
    def scope(self) -> ScopeKind:
        if self.tenant_id is None:
            return ScopeKind.SYSTEM
        return ScopeKind.TENANT if self.number_id is None else ScopeKind.NUMBER

    @property
    def current(self) -> bool:
        return self.superseded_at is None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Policy:
        keys = set(row.keys())
        return cls(
            id=row["id"],
            version=row["version"],
            direction=PolicyDirection(row["direction"]),
            record=row["record"],
            created_by=row["created_by"],
            tenant_id=row["tenant_id"],
            number_id=row["number_id"],
            basis=None if row["basis"] is None else Basis(row["basis"]),
            statute=row["statute"],
            purpose=row["purpose"],
            retention_class_id=row["retention_class_id"],
            format=row["format"],
            consent=None if row["consent"] is None else ConsentTerms.from_json(row["consent"]),
            created_at=row["created_at"],
            superseded_at=row["superseded_at"],
            retention_code=row["retention_code"] if "retention_code" in keys else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "scope": self.scope.value,
            "tenant_id": None if self.tenant_id is None else str(self.tenant_id),
            "number_id": self.number_id,
            "direction": self.direction.value,
            "record": self.record,
            "basis": None if self.basis is None else self.basis.value,
            "statute": self.statute,
            "purpose": self.purpose,
            "retention_class_id": self.retention_class_id,
            "retention": self.retention_code,
            "format": self.format,
            "consent": None if self.consent is None else self.consent.to_json(),
            "created_at": None if self.created_at is None else self.created_at.isoformat(),
            "created_by": self.created_by,
            "superseded_at": None if self.superseded_at is None else self.superseded_at.isoformat(),
        }


def validate_policy(spec: PolicySpec, retention_class: RetentionClass | None) -> None:
    """Raise :class:`PolicyRuleError` naming every rule ``spec`` breaks; ``retention_class`` is the class its
    ``retention`` code resolved to (None when no code was given)."""
    problems = [*_shape_problems(spec)]
    if not spec.record:
        extras = [
            name
            for name, value in (
                ("a basis", spec.basis),
                ("a statute", spec.statute),
                ("a purpose", spec.purpose),
                ("a retention class", spec.retention),
                ("consent terms", spec.consent),
            )
            if value is not None
        ]
        if extras:
            problems.append(f"a policy that records nothing takes no {', '.join(extras)}")
        if problems:
            raise PolicyRuleError(tuple(problems))
        return
    if spec.basis is None:
        problems.append(
            "recording needs a legal basis (GDPR Art. 6(1)): legal_obligation, consent or legitimate_interest"
        )
    if spec.purpose is None:
        problems.append("recording needs a purpose (GDPR Art. 5(1)(b)), e.g. 'quality assurance'")
    if spec.retention is None:
        problems.append("recording needs a retention class (GDPR Art. 5(1)(e)), e.g. quality_60d")
    if spec.basis is Basis.LEGAL_OBLIGATION and not spec.statute:
        problems.append("a legal obligation must name the statute that requires the recording")
    if spec.statute and spec.basis is not Basis.LEGAL_OBLIGATION:
        problems.append("a statute is given only for a legal obligation basis")
    if spec.basis is Basis.CONSENT and spec.consent is None:
        problems.append("a consent basis needs consent terms (keys, window, prompt version)")
    if spec.consent is not None and spec.basis is not Basis.CONSENT:
        problems.append("consent terms are given only with a consent basis")
    if retention_class is not None:
        if spec.basis is Basis.CONSENT and retention_class.basis is not Basis.CONSENT:
            problems.append(
                f"a consent basis needs a consent retention class (deleted on withdrawal, Art. 7(3)); "
                f"{retention_class.code} is for {retention_class.basis.value}"
            )
        if retention_class.statutory and spec.basis is not Basis.LEGAL_OBLIGATION:
            problems.append(
                f"{retention_class.code} is a statutory retention class ({retention_class.source}): "
                f"it serves only a legal obligation basis"
            )
    if problems:
        raise PolicyRuleError(tuple(problems))


def _shape_problems(spec: PolicySpec) -> list[str]:
    problems = []
    if spec.format not in FORMATS:
        problems.append(f"format {spec.format!r} is not one of {', '.join(FORMATS)}")
    for name, text in (("statute", spec.statute), ("purpose", spec.purpose)):
        if text is not None and (not text.strip() or len(text) > _MAX_TEXT):
            problems.append(f"the {name} must be 1-{_MAX_TEXT} characters of text")
    return problems
