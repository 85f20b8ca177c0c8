"""The lawful basis of a recording (GDPR Art. 6(1)) and the retention class it is kept under, as values.

One definition for every user: the policy rules, the decision at call setup, the retention rules and
services, the subject-access reads and the announcements. A class is a preset every tenant may use
(``tenant_id`` None; GUIDE §3) or a tenant's own; construction checks what the ``retention_classes`` table's
constraints check, so a class in memory is always one the catalogue could hold.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

__all__ = ["CLASS_CODE", "Basis", "RetentionClass"]

CLASS_CODE = re.compile(r"^[a-z0-9_]{1,40}$")  # the table's CHECK retention_classes_code_format


class Basis(enum.StrEnum):
    """The lawful basis of processing (GDPR Art. 6(1))."""

    LEGAL_OBLIGATION = "legal_obligation"  # (c)
    CONSENT = "consent"  # (a)
    LEGITIMATE_INTEREST = "legitimate_interest"  # (f)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionClass:
    """A retention class: a preset every tenant may use (``tenant_id`` None) or a tenant's own."""

    id: int
    code: str
    name: str
    days: int  # 0: not kept after hang-up
    basis: Basis
    source: str  # the statute, or the reasoning behind the period
    statutory: bool = False  # a legal floor: never shortened, erasure refused (Art. 17(3)(b))
    max_days: int | None = None  # how far a statutory period may be extended on request
    tenant_id: UUID | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "basis", Basis(self.basis))
        if not CLASS_CODE.match(self.code):
            raise ValueError(f"retention class code {self.code!r} is not 1-40 of a-z, 0-9 and _")
        if self.days < 0:
            raise ValueError("a retention period cannot be negative")
        if self.max_days is not None and self.max_days < self.days:
            raise ValueError("a retention class's maximum cannot be shorter than its period")
        if self.statutory and self.basis is not Basis.LEGAL_OBLIGATION:
            raise ValueError("only a legal obligation makes a retention period statutory")

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, prefix: str = "") -> RetentionClass:
        """From a ``retention_classes`` row, or from its columns selected as ``<prefix><column>``."""
        return cls(
            id=row[f"{prefix}id"],
            tenant_id=row[f"{prefix}tenant_id"],
            code=row[f"{prefix}code"],
            name=row[f"{prefix}name"],
            days=row[f"{prefix}days"],
            max_days=row[f"{prefix}max_days"],
            statutory=row[f"{prefix}statutory"],
            basis=Basis(row[f"{prefix}basis"]),
            source=row[f"{prefix}source"],
        )

    @property
    def preset(self) -> bool:
        return self.tenant_id is None

    @property
    def not_kept(self) -> bool:
        return self.days == 0

    @property
    def longest_days(self) -> int | None:
        """The most days a recording in this class may be given; None: no limit (non-statutory)."""
        if not self.statutory:
            return None
        return self.max_days if self.max_days is not None else self.days

    def floor(self, started_at: datetime) -> datetime | None:
        """Before this time a recording in a statutory class is neither shortened nor erased."""
        return started_at + timedelta(days=self.days) if self.statutory else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "code": self.code,
            "name": self.name,
            "days": self.days,
            "max_days": self.max_days,
            "statutory": self.statutory,
            "basis": self.basis.value,
            "source": self.source,
            "tenant_id": None if self.tenant_id is None else str(self.tenant_id),
        }
