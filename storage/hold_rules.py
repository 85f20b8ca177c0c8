"""Legal hold rules (GDPR Art. 18 restriction): what a hold covers and who may release it. Pure.

A hold targets one recording, or a number's calls (optionally only those started within ``[from_at,
until_at)``). A hold without a tenant is the operator's and covers every tenant's calls; a tenant's hold only
its own. While active it stops every deletion path; :func:`covers` is the same test as the database trigger
``recordings_refuse_held_delete`` (migration 0004), so a service can say why before the trigger refuses.
Release takes two people: one asks, a different one approves.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .errors import LifecycleError, TwoPersonRuleError
from .models import format_timestamp

__all__ = ["Hold", "HoldState", "check_approval", "check_release_request", "check_time_range", "covers"]


class HoldState(enum.StrEnum):
    ACTIVE = "active"
    RELEASE_REQUESTED = "release_requested"  # still active: nothing is deleted until a second person approves
    RELEASED = "released"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    id: UUID
    reason: str
    placed_by: str
    placed_at: datetime
    tenant_id: UUID | None = None  # None: the operator's hold, on every tenant's calls
    recording_id: UUID | None = None
    number: str | None = None  # E.164 (or dialled digits for an extension)
    from_at: datetime | None = None
    until_at: datetime | None = None
    release_requested_by: str | None = None
    release_requested_at: datetime | None = None
    released_by: str | None = None
    released_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.recording_id is None) == (self.number is None):
            raise ValueError("a hold targets either one recording or one number")
        if self.recording_id is not None and (self.from_at is not None or self.until_at is not None):
            raise ValueError("a time range applies only to a hold on a number")
        check_time_range(self.from_at, self.until_at)
        if not self.reason.strip():
            raise ValueError("a hold needs a reason")

    @property
    def state(self) -> HoldState:
        if self.released_at is not None:
            return HoldState.RELEASED
        if self.release_requested_by is not None:
            return HoldState.RELEASE_REQUESTED
        return HoldState.ACTIVE

    @property
    def active(self) -> bool:
        return self.released_at is None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Hold:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            recording_id=row["recording_id"],
            number=row["number"],
            from_at=row["from_at"],
            until_at=row["until_at"],
            reason=row["reason"],
            placed_by=row["placed_by"],
            placed_at=row["placed_at"],
            release_requested_by=row["release_requested_by"],
            release_requested_at=row["release_requested_at"],
            released_by=row["released_by"],
            released_at=row["released_at"],
        )

    def describe(self) -> str:
        """One line for a person: what it covers, why, who placed it and when."""
        if self.recording_id is not None:
            target = f"recording {self.recording_id}"
        else:
            window = ""
            if self.from_at is not None or self.until_at is not None:
                window = f" from {format_timestamp(self.from_at) or '…'} until {format_timestamp(self.until_at) or '…'}"
            target = f"number {self.number}{window}"
        return (
            f"hold {self.id} on {target}, placed by {self.placed_by} at {format_timestamp(self.placed_at)}: "
            f"{self.reason}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "state": self.state.value,
            "tenant_id": None if self.tenant_id is None else str(self.tenant_id),
            "recording_id": None if self.recording_id is None else str(self.recording_id),
            "number": self.number,
            "from_at": format_timestamp(self.from_at),
            "until_at": format_timestamp(self.until_at),
            "reason": self.reason,
            "placed_by": self.placed_by,
            "placed_at": format_timestamp(self.placed_at),
            "release_requested_by": self.release_requested_by,
            "release_requested_at": format_timestamp(self.release_requested_at),
            "released_by": self.released_by,
            "released_at": format_timestamp(self.released_at),
        }


def check_time_range(from_at: datetime | None, until_at: datetime | None) -> None:
    for value in (from_at, until_at):
        if value is not None and value.utcoffset() is None:
            raise ValueError("a hold's time range needs timezone-aware times")
    if from_at is not None and until_at is not None and not from_at < until_at:
        raise ValueError("a hold's time range must start before it ends")


def covers(
    hold: Hold,
    *,
    recording_id: UUID,
    tenant_id: UUID | None,
    numbers: Sequence[str],
    started_at: datetime,
) -> bool:
    """Whether ``hold`` restricts this recording now (the trigger's test)."""
    if not hold.active:
        return False
    if hold.tenant_id is not None and hold.tenant_id != tenant_id:
        return False
    if hold.recording_id is not None:
        return hold.recording_id == recording_id
    return (
        hold.number in numbers
        and (hold.from_at is None or started_at >= hold.from_at)
        and (hold.until_at is None or started_at < hold.until_at)
    )


def check_release_request(hold: Hold, requester: str) -> None:
    """The first of the two people: asks for the release of an active hold."""
    if not hold.active:
        raise LifecycleError(f"hold {hold.id} was already released by {hold.released_by}")
    if hold.release_requested_by is not None:
        raise LifecycleError(
            f"release of hold {hold.id} was already requested by {hold.release_requested_by}; "
            f"another person approves it"
        )
    if not requester.strip():
        raise ValueError("a release request needs the name of who asks")


def check_approval(hold: Hold, approver: str) -> None:
    """The second person: approves a requested release; never the one who asked (Art. 18 safeguard)."""
    if not hold.active:
        raise LifecycleError(f"hold {hold.id} was already released by {hold.released_by}")
    if hold.release_requested_by is None:
        raise LifecycleError(f"release of hold {hold.id} has not been requested; someone must ask first")
    if approver == hold.release_requested_by:
        raise TwoPersonRuleError(
            f"{approver} asked for the release of hold {hold.id}; a different person must approve it"
        )
