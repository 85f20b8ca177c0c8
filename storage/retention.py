"""Retention rules: how long a recording is kept, how its period may change, and when it may be erased.

Pure functions over value objects; the services in :mod:`storage.retention_service`, :mod:`storage.erasure`
and :mod:`storage.sweeper` load the facts, call these rules and write the outcome. Invariants (GUIDE §3):

- A recording expires ``days`` after it started; a class of 0 days ("not kept") expires at hang-up.
- A statutory class is a floor (GDPR Art. 17(3)(b)): before ``started_at + days`` a recording in it is never
  given an earlier expiry, never moved to a class that would let it go sooner, and never erased. It may be
  extended only as far as the law allows (``max_days``, e.g. MiFID II: 5 years, 7 on the supervisor's request).
- A non-statutory class may move either way; a recording under a legal hold only ever moves later (Art. 18).
- A statutory class applies only to a recording made under a legal obligation (Art. 6(1)(c)).
- A tenant offers its users a default class and up to four more; when it has chosen them, a call moves only
  to one of them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from .errors import LifecycleError, StatutoryFloorError, UnderHoldError
from .models import format_timestamp
from .retention_class import CLASS_CODE, Basis, RetentionClass

__all__ = [
    "MAX_EXTRA_OPTIONS",
    "MAX_TENANT_CLASS_DAYS",
    "ErasureDecision",
    "ErasureRefusal",
    "RecordingRetention",
    "check_extra_options",
    "erasure_decision",
    "expiry",
    "plan_change",
    "validate_options",
    "validate_tenant_class",
]

MAX_EXTRA_OPTIONS = 4  # besides the default (GUIDE §3: "a default plus four selectable periods")
MAX_TENANT_CLASS_DAYS = 3653  # ten years: longer than any limitation period a tenant could rely on
SUPERVISORY_AUTHORITY = (
    "the Hungarian National Authority for Data Protection and Freedom of Information (NAIH, naih.hu)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingRetention:
    """What the rules need to know about one recording."""

    reference: str
    started_at: datetime
    ended_at: datetime | None = None
    basis: Basis | None = None
    retention_class: RetentionClass | None = None
    expires_at: datetime | None = None  # None: not decided yet, kept until it is
    held: bool = False
    finished: bool = True


def expiry(started_at: datetime, days: int, *, ended_at: datetime | None = None) -> datetime:
    """When a recording kept ``days`` days expires; 0 days: at hang-up (at the start while the call lasts)."""
    if days < 0:
        raise ValueError("a retention period cannot be negative")
    if days == 0:
        return ended_at if ended_at is not None else started_at
    return started_at + timedelta(days=days)


def plan_change(
    recording: RecordingRetention,
    *,
    now: datetime,
    target: RetentionClass | None = None,
    days: int | None = None,
    selectable: Sequence[RetentionClass] = (),
) -> datetime:
    """The new ``expires_at`` when ``recording`` moves to class ``target`` or to ``days`` in its own class.

    ``selectable`` is the tenant's options (empty: any class the tenant can see). Raises
    :class:`StatutoryFloorError`, :class:`UnderHoldError` or :class:`LifecycleError` naming the rule that refuses
    it, and ``ValueError`` for a malformed request."""
    if (target is None) == (days is None):
        raise ValueError("give either a retention class or a number of days")
    current = recording.retention_class
    if target is not None:
        offered = {option.id for option in selectable} | ({current.id} if current is not None else set())
        if selectable and target.id not in offered:
            codes = ", ".join(option.code for option in selectable)
            raise LifecycleError(
                f"{target.code} is not one of the retention periods this tenant offers ({codes})"
            )
        if target.statutory and recording.basis is not Basis.LEGAL_OBLIGATION:
            raise LifecycleError(
                f"{target.code} is a statutory period ({target.source}); it applies only to recordings made "
                f"under that legal obligation, and {recording.reference} was not"
            )
        new_days = target.days
    else:
        assert days is not None
        if current is None:
            raise LifecycleError(f"{recording.reference} has no retention class yet; choose one by its code")
        if days < 0:
            raise ValueError("a retention period cannot be negative")
        if current.statutory:
            if days < current.days:
                raise StatutoryFloorError(_floor_message(recording, current, "shortened"))
            longest = current.longest_days
            if longest is not None and days > longest:
                raise LifecycleError(
                    f"{current.code} ({current.source}) allows keeping {recording.reference} at most "
                    f"{longest} days"
                )
        new_days = days
    new_expiry = expiry(recording.started_at, new_days, ended_at=recording.ended_at)
    # Art. 17(3)(b): before the floor, neither an earlier expiry nor a class without that protection.
    floor = current.floor(recording.started_at) if current is not None else None
    unprotected = target is not None and not target.statutory
    if current is not None and floor is not None and now < floor and (new_expiry < floor or unprotected):
        raise StatutoryFloorError(_floor_message(recording, current, "shortened or moved out of it"))
    # Art. 18: a restricted recording is kept at least as long as it was going to be.
    if recording.held and (recording.expires_at is None or new_expiry < recording.expires_at):
        raise UnderHoldError(
            f"{recording.reference} is under a legal hold (GDPR Art. 18): its retention may only be extended"
        )
    return new_expiry


class ErasureRefusal(enum.StrEnum):
    HELD = "held"  # Art. 18 restriction / legal hold
    STATUTORY = "statutory"  # Art. 17(3)(b)
    IN_PROGRESS = "in_progress"  # the call is still being recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class ErasureDecision:
    allowed: bool
    refusal: ErasureRefusal | None = None
    message: str = ""


def erasure_decision(recording: RecordingRetention, *, now: datetime) -> ErasureDecision:
    """May ``recording`` be erased on request now? Holds first (Art. 18), then statutory floors (Art. 17(3)(b))."""
    if recording.held:
        return ErasureDecision(
            allowed=False,
            refusal=ErasureRefusal.HELD,
            message=(
                f"{recording.reference} is restricted by a legal hold (GDPR Art. 18) and cannot be erased "
                f"until the hold is released"
            ),
        )
    current = recording.retention_class
    floor = current.floor(recording.started_at) if current is not None else None
    if current is not None and floor is not None and now < floor:
        return ErasureDecision(
            allowed=False,
            refusal=ErasureRefusal.STATUTORY,
            message=(
                f"Erasure of {recording.reference} is refused under GDPR Art. 17(3)(b): {current.source} "
                f"requires keeping it ({current.name}) until {format_timestamp(floor)}. The person may lodge "
                f"a complaint with {SUPERVISORY_AUTHORITY} or go to court (GDPR Art. 77 and 79)."
            ),
        )
    if not recording.finished:
        return ErasureDecision(
            allowed=False,
            refusal=ErasureRefusal.IN_PROGRESS,
            message=f"{recording.reference} is still being recorded; erase it once the call has ended",
        )
    return ErasureDecision(allowed=True)


def check_extra_options(count: int) -> None:
    """A tenant offers its default and at most :data:`MAX_EXTRA_OPTIONS` more; ``ValueError`` beyond."""
    if count > MAX_EXTRA_OPTIONS:
        raise ValueError(
            f"a tenant offers its default and at most {MAX_EXTRA_OPTIONS} more retention periods"
        )


def validate_options(
    tenant_id: UUID, default: RetentionClass, others: Sequence[RetentionClass]
) -> tuple[RetentionClass, ...]:
    """The tenant's selectable classes, default first; raises ``ValueError`` when they break the rules."""
    check_extra_options(len(others))
    chosen = (default, *others)
    seen: set[int] = set()
    for option in chosen:
        if option.tenant_id is not None and option.tenant_id != tenant_id:
            raise ValueError(f"retention class {option.code} belongs to another tenant")
        if option.id in seen:
            raise ValueError(f"retention class {option.code} is offered twice")
        seen.add(option.id)
    return chosen


def validate_tenant_class(
    *, code: str, name: str, days: int, basis: Basis, source: str, preset_codes: Sequence[str]
) -> None:
    """A tenant's own class: never statutory (only the law makes a floor), and not named like a preset."""
    if not CLASS_CODE.match(code):
        raise ValueError(f"retention class code {code!r} is not 1-40 of a-z, 0-9 and _")
    if code in preset_codes:
        raise ValueError(f"{code} is the code of a preset retention class; choose another")
    if not name.strip():
        raise ValueError("a retention class needs a name")
    if not source.strip():
        raise ValueError("a retention class needs its source: the reasoning behind the period")
    if not 0 <= days <= MAX_TENANT_CLASS_DAYS:
        raise ValueError(f"a tenant's retention period is 0 to {MAX_TENANT_CLASS_DAYS} days")
    if Basis(basis) is Basis.LEGAL_OBLIGATION:
        raise ValueError(
            "a legal-obligation period is a statutory preset; a tenant's own class cannot be one"
        )


def _floor_message(recording: RecordingRetention, current: RetentionClass, what: str) -> str:
    floor = current.floor(recording.started_at)
    return (
        f"{recording.reference} is kept under {current.source} ({current.name}) until at least "
        f"{format_timestamp(floor)}: a statutory period cannot be {what} (GDPR Art. 17(3)(b))"
    )
