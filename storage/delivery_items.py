"""The delivery outbox's values: an item (one recording or notice for one target) and a logged attempt.

An item moves ``pending`` → ``sending`` (claimed under a lease by one node) → ``delivered``, or back to
``pending`` to be retried later, or to ``dead`` after the target's last attempt or a failure no retry can fix;
a person may replay a dead one (``pending`` again, attempts from zero). Its idempotency key is stable for the
target, the recording and the kind, so a receiver can recognise a second sending of the same thing.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .models import format_timestamp

__all__ = [
    "IDEMPOTENCY_KEY_SQL",
    "AttemptResult",
    "DeliveryAttempt",
    "DeliveryItem",
    "DeliveryKind",
    "DeliveryStatus",
    "idempotency_key",
]


class DeliveryKind(enum.StrEnum):
    RECORDING = "recording"  # the audio and its metadata
    ERASED = "erased"  # notices about a delivered copy (GDPR Art. 19)
    RESTRICTED = "restricted"
    UNRESTRICTED = "unrestricted"

    @property
    def notice(self) -> bool:
        return self is not DeliveryKind.RECORDING


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
    SENDING = "sending"  # a node holds it under a lease
    DELIVERED = "delivered"
    DEAD = "dead"  # given up: last_error says why; `replay` sends it again


class AttemptResult(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # failed; tried again later
    DEAD = "dead"  # failed for good
    ABANDONED = "abandoned"  # the node's lease ran out mid-attempt (it died or stalled)


def idempotency_key(target_id: UUID, recording_id: UUID, kind: DeliveryKind) -> str:
    """32 hex digits, the same every time for the target, the recording and the kind (as the SQL computes it)."""
    text = f"{target_id}:{recording_id}:{DeliveryKind(kind).value}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# The same in SQL, for rows made by INSERT ... SELECT: {target}, {recording}, {kind} are SQL expressions.
IDEMPOTENCY_KEY_SQL = (
    "left(encode(sha256(convert_to({target}::text || ':' || {recording}::text || ':' || {kind}, 'UTF8')), "
    "'hex'), 32)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryItem:
    id: int
    target_id: UUID
    tenant_id: UUID
    recording_id: UUID
    reference: str
    kind: DeliveryKind
    status: DeliveryStatus
    attempts: int  # every attempt so far, replays included (the delivery log numbers them)
    max_attempts: int  # the target's, when the item was read
    next_attempt_at: datetime
    idempotency_key: str
    created_at: datetime
    lease_owner: str | None = None
    lease_until: datetime | None = None
    remote_path: str | None = None  # the copy; for a notice not yet written, the copy it is about
    bytes: int | None = None
    sha256: str | None = None
    last_error: str | None = None
    event_at: datetime | None = None  # a notice: when it happened
    reason: str | None = None  # a notice: why (the disposal reason, "legal_hold", "hold_released")
    copy_state: str | None = None  # delete-after-delivery: "erased" or "kept"
    copy_note: str | None = None
    delivered_at: datetime | None = None
    attempt_floor: int = 0  # attempts before the last replay: max_attempts counts from here

    @property
    def failures(self) -> int:
        """Attempts since the last replay (the current one included, once claimed)."""
        return self.attempts - self.attempt_floor

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", DeliveryKind(self.kind))
        object.__setattr__(self, "status", DeliveryStatus(self.status))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DeliveryItem:
        return cls(
            id=row["id"],
            target_id=row["target_id"],
            tenant_id=row["tenant_id"],
            recording_id=row["recording_id"],
            reference=row["reference"],
            kind=DeliveryKind(row["kind"]),
            status=DeliveryStatus(row["status"]),
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            next_attempt_at=row["next_attempt_at"],
            idempotency_key=row["idempotency_key"],
            created_at=row["created_at"],
            lease_owner=row["lease_owner"],
            lease_until=row["lease_until"],
            remote_path=row["remote_path"],
            bytes=row["bytes"],
            sha256=row["sha256"],
            last_error=row["last_error"],
            event_at=row["event_at"],
            reason=row["reason"],
            copy_state=row["copy_state"],
            copy_note=row["copy_note"],
            delivered_at=row["delivered_at"],
            attempt_floor=row["attempt_floor"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target_id": str(self.target_id),
            "tenant_id": str(self.tenant_id),
            "recording_id": str(self.recording_id),
            "reference": self.reference,
            "kind": self.kind.value,
            "status": self.status.value,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "next_attempt_at": format_timestamp(self.next_attempt_at),
            "idempotency_key": self.idempotency_key,
            "remote_path": self.remote_path,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "last_error": self.last_error,
            "event_at": format_timestamp(self.event_at),
            "reason": self.reason,
            "copy_state": self.copy_state,
            "copy_note": self.copy_note,
            "created_at": format_timestamp(self.created_at),
            "delivered_at": format_timestamp(self.delivered_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryAttempt:
    """One line of the delivery log."""

    delivery_id: int
    attempt: int
    target_id: UUID
    target_name: str
    recording_id: UUID
    reference: str
    kind: DeliveryKind
    node: str
    started_at: datetime
    ended_at: datetime | None
    result: AttemptResult | None  # None: still running
    error: str | None = None
    remote_path: str | None = None
    bytes: int | None = None
    sha256: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DeliveryAttempt:
        return cls(
            delivery_id=row["delivery_id"],
            attempt=row["attempt"],
            target_id=row["target_id"],
            target_name=row["target_name"],
            recording_id=row["recording_id"],
            reference=row["reference"],
            kind=DeliveryKind(row["kind"]),
            node=row["node"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            result=None if row["result"] is None else AttemptResult(row["result"]),
            error=row["error"],
            remote_path=row["remote_path"],
            bytes=row["bytes"],
            sha256=row["sha256"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "attempt": self.attempt,
            "target_id": str(self.target_id),
            "target": self.target_name,
            "recording_id": str(self.recording_id),
            "reference": self.reference,
            "kind": self.kind.value,
            "node": self.node,
            "started_at": format_timestamp(self.started_at),
            "ended_at": format_timestamp(self.ended_at),
            "result": None if self.result is None else self.result.value,
            "error": self.error,
            "remote_path": self.remote_path,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }
