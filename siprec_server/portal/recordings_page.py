"""``/recordings``: the tenant's recordings, newest first, 50 a page, with one search box and filters.

The search box takes a phone number in any written form (``06 1 234 5678``, ``+36 1 234 5678``), a
reference (``HT-7K3M-Q9RX``, in any case) or part of a participant's name or address; it guesses which
(the "search in" selector overrides the guess). Filters: a window of days (Budapest time), status, retention
class, direction. The list is the keyset search of :mod:`storage.recording_search` (the same as
``GET /api/v1/recordings``): one indexed query per page and no count, so a page costs the same on the
100,000th recording as on the first; the "older" link carries the cursor.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from storage.access_rules import DEADLINE_ZONE
from storage.models import ParticipantRecord, Recording, RecordingStatus
from storage.phone import number_key
from storage.principal import Permission
from storage.recording_search import DEFAULT_LIMIT, CallDirection, RecordingQuery, search
from storage.reference import normalize_reference

from .errors import PortalRoute
from .guard import portal_state, signed_in
from .i18n import Message, Translator
from .web import Formatter, page, page_url, translator

__all__ = ["SearchField", "call_direction", "day_window", "party_label", "router", "search_terms"]

router = APIRouter(route_class=PortalRoute)

_CODE = re.compile(r"^[A-Za-z0-9_]{1,40}$")
_REFERENCE = re.compile(r"^\s*HT[\s-]*[0-9A-Za-z]{4}[\s-]*[0-9A-Za-z]{4}\s*$", re.IGNORECASE)
_PHONE = re.compile(r"^\s*(tel:)?[\s\d+()./-]+$", re.IGNORECASE)


class SearchField(enum.StrEnum):
    AUTO = "auto"
    NUMBER = "number"
    REFERENCE = "reference"
    PARTICIPANT = "participant"


def search_terms(text: str, field: SearchField, region: str) -> tuple[SearchField | None, dict[str, str]]:
    """What the search box means: the field searched and the query's keyword for it (nothing for blank)."""
    text = text.strip()
    if not text:
        return None, {}
    if field is SearchField.AUTO:
        if _REFERENCE.match(text) and normalize_reference(text) is not None:
            field = SearchField.REFERENCE
        elif _PHONE.match(text) and number_key(text, region) is not None:
            field = SearchField.NUMBER
        else:
            field = SearchField.PARTICIPANT
    return field, {field.value: text}


def day_window(since: str, until: str) -> tuple[datetime | None, datetime | None]:
    """Calls started on ``since`` … ``until`` (ISO days, both included, Budapest time); ValueError for a day
    that is not one."""
    start = _midnight(date.fromisoformat(since)) if since else None
    end = _midnight(date.fromisoformat(until) + timedelta(days=1)) if until else None
    return start, end


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=DEADLINE_ZONE)


def party_label(party: ParticipantRecord) -> str:
    """A participant as a person reads it: the name, and the number (or address) without ``sip:``/host."""
    address = party.aor or ""
    if ":" in address[:5]:
        address = address.split(":", 1)[1]
    user, at, _host = address.partition("@")
    number = user if at and user else address
    if party.name and number:
        return f"{party.name} ({number})"
    return party.name or number or "—"


def call_direction(r: Recording) -> str | None:
    value = (r.call_facts.get("direction") or {}).get("value")
    return value if value in {d.value for d in CallDirection} else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListFilters:
    q: str = ""
    field: str = SearchField.AUTO.value
    since: str = ""
    until: str = ""
    status: str = ""
    retention_class: str = ""
    direction: str = ""

    def query_string(self) -> dict[str, str | None]:
        return {
            "q": self.q,
            "field": None if self.field == SearchField.AUTO.value else self.field,
            "since": self.since,
            "until": self.until,
            "status": self.status,
            "class": self.retention_class,
            "direction": self.direction,
        }


def _filters(request: Request) -> ListFilters:
    params = request.query_params
    return ListFilters(
        q=params.get("q", "")[:300],
        field=params.get("field", SearchField.AUTO.value),
        since=params.get("since", "").strip(),
        until=params.get("until", "").strip(),
        status=params.get("status", ""),
        retention_class=params.get("class", "").strip(),
        direction=params.get("direction", ""),
    )


def _query(filters: ListFilters, region: str) -> tuple[RecordingQuery, SearchField | None]:
    """The storage query of the filters; ValueError (with a message for the reader) for unusable ones."""
    field = SearchField(filters.field) if filters.field in set(SearchField) else SearchField.AUTO
    searched, terms = search_terms(filters.q, field, region)
    try:
        since, until = day_window(filters.since, filters.until)
    except ValueError:
        raise ValueError("bad_date") from None
    code = filters.retention_class
    if code and not _CODE.match(code):
        raise ValueError(f"{code!r} is not a retention class code")
    query = RecordingQuery(
        **terms,
        since=since,
        until=until,
        status=RecordingStatus(filters.status) if filters.status in set(RecordingStatus) else None,
        retention_class=code or None,
        direction=CallDirection(filters.direction) if filters.direction in set(CallDirection) else None,
    )
    return query, searched


def row(r: Recording, class_names: dict[str, str], t: Translator, fmt: Formatter) -> dict[str, Any]:
    """One line of the list, its text ready: a page renders 50 of them, so the template only places it."""
    return {
        "reference": r.reference,
        "started": fmt.time(r.started_at),
        "started_iso": fmt.iso(r.started_at),
        "duration": fmt.duration(r.duration_seconds),
        "direction": t(f"direction.{call_direction(r) or 'unknown'}"),
        "parties": [party_label(p) for p in r.participants],
        "status": r.status.value,
        "status_text": t(f"status.{r.status.value}"),
        "retention": class_names.get(r.retention_class or "", r.retention_class) or "—",
        "expires": fmt.day(r.expires_at) if r.expires_at else None,
        "expires_iso": fmt.iso(r.expires_at),
    }


@router.get("/recordings")
async def recordings(request: Request) -> Response:
    user = await signed_in(request, Permission.VIEW)
    api = portal_state(request).services
    tenant_id = user.principal.tenant_id
    tenant = await api.tenants.get(tenant_id)
    classes = await api.retention.classes(tenant_id)
    filters = _filters(request)
    cursor = request.query_params.get("cursor") or None
    error: Message | None = None
    items: tuple[Recording, ...] = ()
    next_cursor: str | None = None
    searched: SearchField | None = None
    try:
        query, searched = _query(filters, tenant.region)
        found = await search(api.pool, tenant_id, query, cursor=cursor, limit=DEFAULT_LIMIT)
        items, next_cursor = found.items, found.next_cursor
    except ValueError as exc:
        reason = str(exc)
        if reason == "bad_date":
            error = Message.of("recordings.bad_date")
        elif "cursor" in reason:
            error = Message.of("recordings.bad_cursor")
        else:
            error = Message.of("recordings.bad_search", detail=reason)
    names = {c.code: c.name for c in classes}
    keep = filters.query_string()
    t = translator(request)
    fmt = Formatter(t.language)
    return page(
        request,
        "recordings.html",
        status=200 if error is None else 422,
        filters=filters,
        searched=None if searched is None else searched.value,
        rows=[row(r, names, t, fmt) for r in items],
        error=error,
        older_url=None if next_cursor is None else page_url("/recordings", **keep, cursor=next_cursor),
        newest_url=page_url("/recordings", **keep) if cursor else None,
        statuses=[s.value for s in RecordingStatus],
        directions=[d.value for d in CallDirection],
        classes=classes,
        fields=[f.value for f in SearchField],
    )
