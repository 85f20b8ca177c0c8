"""A tenant's recordings: search, detail, playback with byte ranges, download, retention and holds.

Handlers are thin: they look the recording up within the caller's tenant (another tenant's is 404, exactly
like a missing one, and the attempt is audited as ``recording.access_denied``), call one storage service and
shape its answer. Audio is the plaintext of the stored file, decrypted on the fly a range at a time
(:mod:`storage.audio_range`); each playback is audited once (``recording.play``, on a request without a Range
or one from byte 0, not on every seek) and each download (``recording.download``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from storage.audio_range import (
    RangeNotSatisfiableError,
    file_extension,
    parse_range,
)
from storage.audit import AuditEntry
from storage.errors import NotFoundError
from storage.hold_rules import Hold, HoldState
from storage.lifecycle_rows import active_holds, find_class
from storage.models import ParticipantRole, Recording, RecordingStatus, StreamRecord
from storage.principal import Permission, Principal
from storage.recording_search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CallDirection,
    RecordingQuery,
    get_recording,
    search,
)
from storage.reference import normalize_reference
from storage.retention_class import Basis, RetentionClass

from .audio_response import NO_STORE, audio_response, open_recording_audio
from .deps import client_origin, require, services
from .fields import Moment
from .problems import PROBLEM_JSON, ApiProblem, not_found
from .services import ApiServices

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["recordings"])

Api = Annotated[ApiServices, Depends(services)]
Viewer = Annotated[Principal, Depends(require(Permission.VIEW))]
Listener = Annotated[Principal, Depends(require(Permission.LISTEN))]
Keeper = Annotated[Principal, Depends(require(Permission.RETENTION))]
Holder = Annotated[Principal, Depends(require(Permission.HOLD))]
Ref = Annotated[
    str, Path(max_length=100, description="the recording's uuid or its reference (HT-7K3M-Q9RX, in any case)")
]

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}, "description": "a problem document (RFC 9457)"}
_ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys((401, 403, 404, 409, 422), _PROBLEM)
_AUDIO_ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys((401, 403, 404, 409, 410, 416), _PROBLEM)
_AUDIO: dict[str, Any] = {"content": {t: {} for t in ("audio/flac", "audio/wav", "audio/ogg", "audio/mpeg")}}
_DIRECTIONS = frozenset(d.value for d in CallDirection)
_CODE = r"^[A-Za-z0-9_]{1,40}$"  # a retention class code (storage.retention_class.CLASS_CODE), in any case


# -- answers --------------------------------------------------------------------------------------------------------
class Participant(BaseModel):
    aor: str | None
    name: str | None
    role: ParticipantRole


class StreamQuality(BaseModel):
    """One received stream and its RFC 3550 receive statistics."""

    label: str | None
    codec: str | None
    payload_type: int | None
    ssrc: int | None
    channel: int | None
    packets: int
    lost: int
    loss_fraction: float
    late: int
    duplicated: int
    reordered: int
    jitter_ms: float
    gap_seconds: float
    comfort_noise: int
    telephone_events: int
    first_packet_at: datetime | None
    last_packet_at: datetime | None

    @classmethod
    def of(cls, s: StreamRecord) -> StreamQuality:
        return cls(**{name: getattr(s, name) for name in cls.model_fields})


class RecordingSummary(BaseModel):
    id: UUID
    reference: str
    status: RecordingStatus
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: float | None
    direction: CallDirection | None
    numbers: list[str]
    participants: list[Participant]
    retention_class: str | None
    expires_at: datetime | None
    consent_state: str
    format: str | None
    has_audio: bool

    @classmethod
    def of(cls, r: Recording) -> RecordingSummary:
        return cls(**_summary_fields(r))


class RecordingPage(BaseModel):
    items: list[RecordingSummary]
    next_cursor: str | None


class RetentionClassOut(BaseModel):
    code: str
    name: str
    days: int = Field(description="0: not kept after the call")
    max_days: int | None
    statutory: bool = Field(description="a legal floor: never shortened, erasure refused (Art. 17(3)(b))")
    basis: Basis
    source: str

    @classmethod
    def of(cls, c: RetentionClass) -> RetentionClassOut:
        return cls(**{name: getattr(c, name) for name in cls.model_fields})


class HoldOut(BaseModel):
    id: UUID
    state: HoldState
    recording_id: UUID | None
    number: str | None
    from_at: datetime | None
    until_at: datetime | None
    reason: str
    placed_by: str
    placed_at: datetime
    release_requested_by: str | None
    release_requested_at: datetime | None

    @classmethod
    def of(cls, h: Hold) -> HoldOut:
        return cls(state=h.state, **{name: getattr(h, name) for name in cls.model_fields if name != "state"})


class RecordingDetail(RecordingSummary):
    media_started_at: datetime | None
    channels: int | None
    sample_rate: int | None
    sha256: str | None = Field(description="SHA-256 of the audio (the plaintext, as played and downloaded)")
    encrypted: bool
    basis: Basis | None = Field(description="the lawful basis (GDPR Art. 6(1))")
    statute: str | None
    purpose: str | None
    retention: RetentionClassOut | None
    streams: list[StreamQuality]
    held: bool
    holds: list[HoldOut] = Field(description="the active legal holds restricting it (GDPR Art. 18)")


class RetentionChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retention_class: str = Field(pattern=_CODE, description="a class code, e.g. quality_60d")


class RetentionChangeOut(BaseModel):
    reference: str
    old_class: str | None
    new_class: str | None
    old_expires_at: datetime | None
    expires_at: datetime


class RetentionOptionsOut(BaseModel):
    default: RetentionClassOut | None = Field(description="null: the tenant has not chosen its options")
    others: list[RetentionClassOut]
    selectable: list[RetentionClassOut] = Field(description="what a call may move to: the options, else all")


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=1000, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")


def _summary_fields(r: Recording) -> dict[str, Any]:
    direction = (r.call_facts.get("direction") or {}).get("value")
    return {
        "id": r.id,
        "reference": r.reference,
        "status": r.status,
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "duration_seconds": r.duration_seconds,
        "direction": direction if direction in _DIRECTIONS else None,
        "numbers": list(r.numbers),
        "participants": [Participant(aor=p.aor, name=p.name, role=p.role) for p in r.participants],
        "retention_class": r.retention_class,
        "expires_at": r.expires_at,
        "consent_state": r.consent_state,
        "format": r.format,
        "has_audio": bool(r.file_path),
    }


# -- finding the caller's recording ---------------------------------------------------------------------------------
async def _recording(
    api: ApiServices, principal: Principal, request: Request, id_or_reference: str
) -> Recording:
    """The caller's tenant's recording, else 404 — audited, since it may be another tenant's (the entry is the
    caller's tenant's and does not say whether the recording exists elsewhere)."""
    found = await get_recording(api.pool, principal.tenant_id, id_or_reference)
    if found is not None:
        return found
    requested = _printable(id_or_reference.strip()[:100])
    details = {"requested": requested, "path": _printable(request.url.path[:200])}
    await _audit(api, principal, request, "recording.access_denied", _canonical(requested), details)
    raise not_found("recording")


def _printable(text: str) -> str:
    """Text for the audit trail: control characters (NUL included, which jsonb refuses) as U+FFFD."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def _canonical(text: str) -> str:
    try:
        return str(UUID(text))
    except ValueError:
        return normalize_reference(text) or text


async def _audit(
    api: ApiServices,
    principal: Principal,
    request: Request,
    action: str,
    object_id: str,
    details: dict[str, Any],
) -> None:
    actor = principal.actor(client_origin(request))
    entry = AuditEntry(
        actor=actor,
        action=action,
        tenant_id=principal.tenant_id,
        object_kind="recording",
        object_id=object_id,
        details=details,
    )
    await api.audit.record(api.pool, entry)


def _audited_use(r: Recording) -> tuple[str, dict[str, Any]]:
    return str(r.id), {"reference": r.reference, "format": r.format}


# -- search and detail ----------------------------------------------------------------------------------------------
@router.get("/recordings", response_model=RecordingPage, responses=_ERRORS)
async def list_recordings(
    api: Api,
    principal: Viewer,
    response: Response,
    number: Annotated[str | None, Query(max_length=200, description="as written: 06 1 234 5678")] = None,
    reference: Annotated[str | None, Query(max_length=40)] = None,
    participant: Annotated[str | None, Query(max_length=200, description="part of a name or address")] = None,
    since: Annotated[Moment | None, Query(description="started at or after")] = None,
    until: Annotated[Moment | None, Query(description="started before")] = None,
    status: RecordingStatus | None = None,
    retention_class: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_]{0,40}$")] = None,
    direction: CallDirection | None = None,
    cursor: Annotated[str | None, Query(max_length=100, description="the last page's next_cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> RecordingPage:
    """The tenant's recordings, newest first; every filter given must match."""
    query = RecordingQuery(
        number=number,
        reference=reference,
        participant=participant,
        since=since,
        until=until,
        status=status,
        retention_class=retention_class,
        direction=direction,
    )
    page = await search(api.pool, principal.tenant_id, query, cursor=cursor, limit=limit)
    response.headers.update(NO_STORE)
    return RecordingPage(items=[RecordingSummary.of(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/recordings/{id_or_reference}", response_model=RecordingDetail, responses=_ERRORS)
async def recording_detail(
    api: Api, principal: Viewer, request: Request, response: Response, id_or_reference: Ref
) -> RecordingDetail:
    r = await _recording(api, principal, request, id_or_reference)
    holds = await active_holds(api.pool, r.id)
    retention = None
    if r.retention_class is not None:
        retention = RetentionClassOut.of(await find_class(api.pool, r.tenant_id, r.retention_class))
    response.headers.update(NO_STORE)
    return RecordingDetail(
        **_summary_fields(r),
        media_started_at=r.media_started_at,
        channels=r.channels,
        sample_rate=r.sample_rate,
        sha256=r.sha256,
        encrypted=r.encryption is not None,
        basis=None if r.basis is None else Basis(r.basis),
        statute=r.statute,
        purpose=r.purpose,
        retention=retention,
        streams=[StreamQuality.of(s) for s in r.streams],
        held=bool(holds),
        holds=[HoldOut.of(h) for h in holds],
    )


# -- audio ----------------------------------------------------------------------------------------------------------
def _etag(r: Recording) -> str | None:
    """A strong validator: the hash of the audio itself, the same whatever key seals the file."""
    return None if r.sha256 is None else f'"{r.sha256}"'


def _range_applies(request: Request, etag: str | None) -> bool:
    """RFC 9110 §13.1.5: with If-Range, a Range counts only if the entity-tag still matches (strongly); we
    send no Last-Modified, so a date never matches."""
    condition = request.headers.get("if-range")
    return condition is None or (etag is not None and condition.strip() == etag)


@router.get(
    "/recordings/{id_or_reference}/audio",
    response_class=StreamingResponse,
    responses={200: _AUDIO, 206: {**_AUDIO, "description": "the requested range"}, **_AUDIO_ERRORS},
)
async def play(api: Api, principal: Listener, request: Request, id_or_reference: Ref) -> Response:
    """The audio for a player: byte ranges (RFC 9110 §14), the media type of its format."""
    r = await _recording(api, principal, request, id_or_reference)
    stream = await open_recording_audio(api, r)
    etag = _etag(r)
    try:
        header = request.headers.get("range") if _range_applies(request, etag) else None
        byte_range = parse_range(header, stream.size)
        if byte_range is None or byte_range.start == 0:  # a playback starts; seeking within it is not another
            await _audit(api, principal, request, "recording.play", *_audited_use(r))
    except RangeNotSatisfiableError as exc:
        stream.close()
        raise ApiProblem(416, str(exc), headers={"Content-Range": f"bytes */{exc.size}"}) from None
    except BaseException:
        stream.close()
        raise
    return audio_response(stream, byte_range, sha256=r.sha256)


@router.get(
    "/recordings/{id_or_reference}/download",
    response_class=StreamingResponse,
    responses={200: _AUDIO, **_AUDIO_ERRORS},
)
async def download(api: Api, principal: Listener, request: Request, id_or_reference: Ref) -> Response:
    """The whole audio as a file named by reference and start time; the same bytes as
    ``hangtar recordings export``."""
    r = await _recording(api, principal, request, id_or_reference)
    stream = await open_recording_audio(api, r)
    try:
        await _audit(api, principal, request, "recording.download", *_audited_use(r))
    except BaseException:
        stream.close()
        raise
    started = r.started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{r.reference}_{started}.{file_extension(r.format)}"
    return audio_response(
        stream,
        None,
        sha256=r.sha256,
        ranges=False,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- retention and holds --------------------------------------------------------------------------------------------
@router.put("/recordings/{id_or_reference}/retention", response_model=RetentionChangeOut, responses=_ERRORS)
async def change_retention(
    api: Api, principal: Keeper, request: Request, id_or_reference: Ref, body: RetentionChangeIn
) -> RetentionChangeOut:
    """Keep the call for another of the tenant's periods; a statutory floor or a legal hold refuses it (409)."""
    r = await _recording(api, principal, request, id_or_reference)
    try:
        change = await api.retention.change_retention(
            principal.tenant_id,
            r.id,
            actor=principal.actor(client_origin(request)),
            class_code=body.retention_class,
        )
    except NotFoundError as exc:  # the recording was found above: it is the class that is unknown
        raise ApiProblem(422, str(exc)) from None
    return RetentionChangeOut(
        reference=change.reference,
        old_class=change.old_class,
        new_class=change.new_class,
        old_expires_at=change.old_expires_at,
        expires_at=change.new_expires_at,
    )


@router.get("/retention-options", response_model=RetentionOptionsOut, responses=_ERRORS)
async def retention_options(api: Api, principal: Viewer) -> RetentionOptionsOut:
    """The tenant's default period and the others its users may pick for a call."""
    options = await api.retention.options(principal.tenant_id)
    selectable = options.all or tuple(await api.retention.classes(principal.tenant_id))
    return RetentionOptionsOut(
        default=None if options.default is None else RetentionClassOut.of(options.default),
        others=[RetentionClassOut.of(c) for c in options.others],
        selectable=[RetentionClassOut.of(c) for c in selectable],
    )


@router.post(
    "/recordings/{id_or_reference}/holds", status_code=201, response_model=HoldOut, responses=_ERRORS
)
async def place_hold(
    api: Api, principal: Holder, request: Request, id_or_reference: Ref, body: HoldIn
) -> HoldOut:
    """Restrict the recording (GDPR Art. 18): nothing deletes it until two people release the hold."""
    r = await _recording(api, principal, request, id_or_reference)
    placement = await api.holds.place_on_recording(
        principal.tenant_id, r.id, reason=body.reason, actor=principal.actor(client_origin(request))
    )
    return HoldOut.of(placement.hold)
