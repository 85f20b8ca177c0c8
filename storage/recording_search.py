"""Finding a tenant's recordings: search by number, reference, participant, time, status, class and direction,
newest first, a page at a time.

Every query is bound to one tenant (``recordings.tenant_id = $1``): another tenant's rows and the calls no
tenant claimed never appear. Numbers are written any way a person writes them (``06 1 234 5678``, ``+36 1 234
5678``, ``0036…``, ``tel:`` URIs) and read in the tenant's region into the key ``recordings.numbers`` stores
(:func:`storage.phone.number_key`), so the GIN index ``recordings_numbers_idx`` answers them; the list itself
walks ``recordings_tenant_started_idx`` (migration 0004), a participant is found by trigrams where PostgreSQL
has ``pg_trgm``, and the other filters have their own indexes (0007).

Pages are keyset pages on ``(started_at, id)``: a cursor names the last row of a page, so a recording
inserted meanwhile never shifts a page or repeats a row, and rows with equal start times are neither skipped
nor doubled. A cursor is opaque to callers: base64 of a version, the two values and a checksum, so a cut or
edited cursor is refused (:class:`ValueError`) instead of silently paging from elsewhere. It carries no
tenant: the query is scoped whatever the cursor says.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from .catalogue import recording_from_row
from .errors import translated
from .models import Recording, RecordingStatus
from .phone import number_key
from .reference import normalize_reference
from .tenant_lookup import find_tenant

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CallDirection",
    "RecordingPage",
    "RecordingQuery",
    "decode_cursor",
    "encode_cursor",
    "get_recording",
    "search",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_TEXT = 200  # longest participant or number text accepted

_SELECT = """
    SELECT r.*, c.code AS retention_class
    FROM recordings r LEFT JOIN retention_classes c ON c.id = r.retention_class_id
"""
# A class code names the tenant's own class first, else a preset (storage.lifecycle_rows.find_class); one id,
# so the (tenant_id, retention_class_id, started_at) index is walked in order.
_CLASS_ID = """
    (SELECT k.id FROM retention_classes k WHERE k.code = ${param} AND (k.tenant_id IS NULL OR k.tenant_id = $1)
     ORDER BY k.tenant_id NULLS LAST LIMIT 1)
"""
# The parties' names and addresses, lower-case, one per line (migration 0007): a trigram index answers a
# substring of three characters or more, and no pattern spans two lines (search text has no control characters).
_PARTICIPANT = "recording_party_text(r.participants) LIKE lower(${param})"
# The same expression as the index recordings_tenant_direction_idx (migration 0007).
_DIRECTION = "(r.call_facts #>> '{{direction,value}}') = ${param}"

_CURSOR = struct.Struct(">Bq16s")  # version, started_at in microseconds since the epoch, id
_CURSOR_VERSION = 1
_CHECK_SIZE = 4
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CallDirection(enum.StrEnum):
    """Seen from the tenant, as the recording metadata states it (``call_facts.direction``)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingQuery:
    """What to look for; every criterion given must hold (AND). Blank text counts as not given.

    - ``number``: a party's number in any written form, read in the tenant's region
    - ``reference``: the exact reference, in any case (``ht-7k3m-q9rx``; Crockford's O→0, I/L→1 apply)
    - ``participant``: a substring of one participant's display name or address (case-insensitive)
    - ``since`` (inclusive) / ``until`` (exclusive): when the call started, timezone-aware
    - ``status``, ``retention_class`` (a class code), ``direction``
    """

    number: str | None = None
    reference: str | None = None
    participant: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: RecordingStatus | None = None
    retention_class: str | None = None
    direction: CallDirection | None = None

    def __post_init__(self) -> None:
        for name in ("number", "reference", "participant", "retention_class"):
            value = getattr(self, name)
            value = value.strip() if isinstance(value, str) else value
            object.__setattr__(self, name, value or None)
            if value is not None and len(value) > MAX_TEXT:
                raise ValueError(f"{name} is longer than {MAX_TEXT} characters")
            if value is not None and any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
                raise ValueError(f"{name} contains a control character")
        if self.status is not None:
            object.__setattr__(self, "status", RecordingStatus(self.status))
        if self.direction is not None:
            object.__setattr__(self, "direction", CallDirection(self.direction))
        if self.retention_class is not None:
            object.__setattr__(self, "retention_class", self.retention_class.lower())
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
        if self.since is not None and self.until is not None and not self.since < self.until:
            raise ValueError("since must be earlier than until")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingPage:
    """One page, newest first; ``next_cursor`` fetches the next one (None: this is the last)."""

    items: tuple[Recording, ...]
    next_cursor: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))


def encode_cursor(started_at: datetime, recording_id: UUID) -> str:
    """The cursor that continues after the row ``(started_at, recording_id)``."""
    if started_at.utcoffset() is None:
        raise ValueError("started_at must be timezone-aware")
    micros = (started_at - _EPOCH) // timedelta(microseconds=1)
    payload = _CURSOR.pack(_CURSOR_VERSION, micros, recording_id.bytes)
    return base64.urlsafe_b64encode(payload + _check(payload)).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """``(started_at, id)`` of a cursor :func:`encode_cursor` made; :class:`ValueError` for anything else."""
    refused = ValueError("the cursor is malformed or was altered; start again from the first page")
    text = cursor.strip()
    if not text or len(text) > 64 or not text.isascii():
        raise refused
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise refused from None
    payload, check = raw[: _CURSOR.size], raw[_CURSOR.size :]
    if len(payload) != _CURSOR.size or check != _check(payload):
        raise refused
    version, micros, id_bytes = _CURSOR.unpack(payload)
    if version != _CURSOR_VERSION:
        raise refused
    try:
        started_at = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise refused from None
    return started_at, UUID(bytes=id_bytes)


def _check(payload: bytes) -> bytes:
    return hashlib.sha256(b"hangtar-cursor\n" + payload).digest()[:_CHECK_SIZE]


class _Where:
    """Conditions and their parameters, numbered in order ($1 is the tenant)."""

    def __init__(self, tenant_id: UUID) -> None:
        self.conditions = ["r.tenant_id = $1"]
        self.args: list[Any] = [tenant_id]

    def add(self, template: str, *values: Any) -> None:
        """``template`` names its parameters ``{param}``, ``{param2}``, … in the order of ``values``."""
        names = {}
        for offset, value in enumerate(values):
            self.args.append(value)
            names["param" if offset == 0 else f"param{offset + 1}"] = len(self.args)
        self.conditions.append(template.format(**names).strip())


async def search(
    conn_or_pool: Any,
    tenant_id: UUID,
    query: RecordingQuery,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> RecordingPage:
    """The tenant's recordings matching ``query``, newest first, ``limit`` at a time after ``cursor``.

    :class:`ValueError` for a limit outside 1–:data:`MAX_LIMIT`, a malformed cursor or a number that holds no
    number; :class:`~storage.errors.NotFoundError` for a tenant that does not exist (when a number is given).
    A reference that cannot be one matches nothing."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    after = None if cursor is None else decode_cursor(cursor)
    where = _Where(tenant_id)
    if query.reference is not None:
        reference = normalize_reference(query.reference)
        if reference is None:
            return RecordingPage(items=())
        where.add("r.reference = ${param}", reference)
    if query.number is not None:
        region = (await find_tenant(conn_or_pool, tenant_id)).region
        key = number_key(query.number, region)
        if key is None:
            raise ValueError(f"{query.number!r} is not a phone number")
        where.add("r.numbers @> ARRAY[${param}::text]", key)
    if query.participant is not None:
        where.add(_PARTICIPANT, f"%{_escape_like(query.participant)}%")
    if query.since is not None:
        where.add("r.started_at >= ${param}", query.since)
    if query.until is not None:
        where.add("r.started_at < ${param}", query.until)
    if query.status is not None:
        where.add("r.status = ${param}", query.status.value)
    if query.retention_class is not None:
        where.add(f"r.retention_class_id = {_CLASS_ID}", query.retention_class)
    if query.direction is not None:
        where.add(_DIRECTION, query.direction.value)
    if after is not None:
        where.add("(r.started_at, r.id) < (${param}, ${param2})", *after)
    sql = (
        f"{_SELECT} WHERE {' AND '.join(where.conditions)} "
        f"ORDER BY r.started_at DESC, r.id DESC LIMIT {limit + 1}"
    )
    with translated("search recordings"):
        rows = await conn_or_pool.fetch(sql, *where.args)
    items = [recording_from_row(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last.started_at, last.id)
    return RecordingPage(items=tuple(items), next_cursor=next_cursor)


async def get_recording(conn_or_pool: Any, tenant_id: UUID, id_or_reference: str | UUID) -> Recording | None:
    """One of the tenant's recordings by uuid or by its reference as a person typed it; None when the tenant
    has none such (another tenant's recording is "none such" too)."""
    key: UUID | str
    if isinstance(id_or_reference, UUID):
        column, key = "id", id_or_reference
    else:
        text = id_or_reference.strip()
        try:
            column, key = "id", UUID(text)
        except ValueError:
            reference = normalize_reference(text)
            if reference is None:
                return None
            column, key = "reference", reference
    with translated("look up a recording"):
        sql = f"{_SELECT} WHERE r.{column} = $1 AND r.tenant_id = $2"
        row = await conn_or_pool.fetchrow(sql, key, tenant_id)
    return None if row is None else recording_from_row(row)


def _escape_like(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern (backslash is PostgreSQL's default escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
