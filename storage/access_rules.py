"""Rules for access requests (GDPR Art. 15), free of I/O so they can be property-tested.

- Deadline (Art. 12(3)): one calendar month from receipt. As EU time periods are counted (Regulation
  1182/71 Art. 3(2)(c)), the period ends at the end of the day in the next month with the same date as the
  day of receipt, or of that month's last day when it has no such date (received 31 January: due 28 or 29
  February). Days are the controller's local days (Europe/Budapest by default).
- Extension (Art. 12(3)): "by two further months where necessary, taking into account the complexity and
  number of the requests"; the person must be told, with the reasons, within one month of receipt. So an
  unanswered case may be extended once, by one or two months, before its first deadline, and only with a
  reason; the new deadline is counted like the first, from the day of receipt (two or three calendar months).
- Status: ``open`` → ``exported`` (a copy was made; may be made again) → ``delivered`` (the copy was handed
  over) → ``closed``; a case may be closed from any state (the person withdrew the request, or it was
  answered). Nothing else moves.
- Criteria: a phone number (any written form, compared as its E.164 key) and/or a recording reference, with
  an optional time window. A request is never asked for, nor filtered by, its reason.
"""

from __future__ import annotations

import calendar
import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from .errors import LifecycleError
from .phone import DEFAULT_REGION, number_key
from .reference import normalize_reference

__all__ = [
    "DEADLINE_ZONE",
    "TRANSITIONS",
    "AccessRequestStatus",
    "CaseAction",
    "SearchCriteria",
    "add_calendar_month",
    "due_at",
    "extended_due_at",
    "is_overdue",
    "next_status",
    "parse_criteria",
]

DEADLINE_ZONE = ZoneInfo("Europe/Budapest")


class AccessRequestStatus(enum.StrEnum):
    OPEN = "open"  # received, not answered yet
    EXPORTED = "exported"  # the copy (bundle) is made
    DELIVERED = "delivered"  # the copy was handed over: the request is answered
    CLOSED = "closed"


class CaseAction(enum.StrEnum):
    EXPORT = "export"
    DELIVER = "deliver"
    CLOSE = "close"


_S, _A = AccessRequestStatus, CaseAction
TRANSITIONS: dict[tuple[AccessRequestStatus, CaseAction], AccessRequestStatus] = {
    (_S.OPEN, _A.EXPORT): _S.EXPORTED,
    (_S.EXPORTED, _A.EXPORT): _S.EXPORTED,  # made again: recordings added since, or the copy was lost
    (_S.EXPORTED, _A.DELIVER): _S.DELIVERED,
    (_S.OPEN, _A.CLOSE): _S.CLOSED,
    (_S.EXPORTED, _A.CLOSE): _S.CLOSED,
    (_S.DELIVERED, _A.CLOSE): _S.CLOSED,
}
_UNANSWERED = frozenset({_S.OPEN, _S.EXPORTED})
_PAST = {_A.EXPORT: "exported", _A.DELIVER: "delivered", _A.CLOSE: "closed"}


def next_status(status: AccessRequestStatus, action: CaseAction) -> AccessRequestStatus:
    """The status after ``action``; :class:`LifecycleError` saying why when the case cannot take it."""
    after = TRANSITIONS.get((status, action))
    if after is None:
        if action is CaseAction.DELIVER and status is AccessRequestStatus.OPEN:
            raise LifecycleError("nothing to deliver yet: export the copy first")
        raise LifecycleError(f"an access request that is {status.value} cannot be {_PAST[action]}")
    return after


def add_calendar_month(day: date) -> date:
    """The same date in the next month, or that month's last day when it has no such date."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_at(received_at: datetime, zone: ZoneInfo = DEADLINE_ZONE, *, months: int = 1) -> datetime:
    """The last moment (UTC) to answer a request received at ``received_at`` (Art. 12(3)), ``months`` calendar
    months after receipt (1; 2 or 3 once extended)."""
    if received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    last_day = received_at.astimezone(zone).date()
    received_day = last_day.day
    for _ in range(months):
        last_day = add_calendar_month(last_day)
        # Counted from the day of receipt, not month by month: 31 January + 2 months is 31 March.
        month_days = calendar.monthrange(last_day.year, last_day.month)[1]
        last_day = last_day.replace(day=min(received_day, month_days))
    return datetime.combine(last_day, time.max, tzinfo=zone).astimezone(UTC)


MAX_EXTENSION_MONTHS = 2


def extended_due_at(
    *,
    status: AccessRequestStatus,
    received_at: datetime,
    due: datetime,
    now: datetime,
    months: int,
    reason: str,
    zone: ZoneInfo = DEADLINE_ZONE,
) -> datetime:
    """The deadline after extending by ``months``; :class:`LifecycleError` (or ValueError for bad input) when
    the case cannot be extended, saying why."""
    if not 1 <= months <= MAX_EXTENSION_MONTHS:
        raise ValueError(f"an extension is 1 or {MAX_EXTENSION_MONTHS} months (Art. 12(3))")
    if not reason.strip():
        raise ValueError("give the reason for the extension: the person must be told it (Art. 12(3))")
    if status not in _UNANSWERED:
        raise LifecycleError(f"an access request that is {status.value} needs no more time")
    first = due_at(received_at, zone)
    if due != first:
        raise LifecycleError("the deadline was extended already; Art. 12(3) allows one extension")
    if now > first:
        raise LifecycleError(
            "too late to extend: the person must be told of an extension within one month of receipt"
        )
    return due_at(received_at, zone, months=1 + months)


def is_overdue(status: AccessRequestStatus, due: datetime, now: datetime) -> bool:
    """Unanswered (open or exported but not delivered) after its deadline."""
    return status in _UNANSWERED and now > due


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchCriteria:
    """What identifies the person's recordings: a number key and/or a reference, within an optional window
    (``since`` inclusive, ``until`` exclusive, on the time the call started). The window narrows the number
    search; a reference names one recording and finds it wherever it lies."""

    number: str | None = None  # storage.phone.number_key: E.164, or dialled digits for an extension
    reference: str | None = None  # canonical, e.g. "HT-7K3M-Q9RX"
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.number is None and self.reference is None:
            raise ValueError("give a phone number or a recording reference")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("the time window ends before it starts")


def parse_criteria(
    *,
    number: str | None = None,
    reference: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    region: str = DEFAULT_REGION,
) -> SearchCriteria:
    """Criteria from what a person wrote: ``+36 1 234 5678``, ``06-1-234-5678`` and ``3612345678`` are one
    number; ``ht-7k3m-q9rx`` and ``HT 7K3M Q9RX`` one reference. ValueError names what is not usable."""
    key = None
    if number is not None and number.strip():
        key = number_key(number, region)
        if key is None:
            raise ValueError(f"{number!r} is not a phone number")
    canonical = None
    if reference is not None and reference.strip():
        canonical = normalize_reference(reference)
        if canonical is None:
            raise ValueError(f"{reference!r} is not a recording reference (like HT-7K3M-Q9RX)")
    return SearchCriteria(number=key, reference=canonical, since=since, until=until)
