"""Catalogue value objects: what the server writes about a recording and what the CLI and API read back.

Timestamps are timezone-aware; in JSON they are ISO 8601 UTC strings with microseconds and a ``Z``
(``2026-11-28T14:03:07.250000Z``). Sequences given as lists are stored as tuples, so every object is hashable.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

__all__ = [
    "MetadataSnapshot",
    "NewRecording",
    "ParticipantRecord",
    "ParticipantRole",
    "PauseRecord",
    "Recording",
    "RecordingStatus",
    "StreamRecord",
    "format_timestamp",
    "parse_timestamp",
]


class RecordingStatus(enum.StrEnum):
    RECORDING = "recording"  # INVITE accepted; the only unfinished state
    UPLOADING = "uploading"  # finished, its outcome waiting until the object store confirms its file
    COMPLETE = "complete"  # every answered stream delivered media
    NO_MEDIA = "no_media"  # the session ended without a single RTP packet
    ONE_WAY = "one_way"  # some streams delivered media, others none
    FAILED = "failed"  # the recording could not be made or kept
    INTERRUPTED = "interrupted"  # the recorder stopped mid-call; the audio written so far is kept


class ParticipantRole(enum.StrEnum):
    CALLER = "caller"
    CALLEE = "callee"
    OTHER = "other"


def format_timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.utcoffset() is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return parsed


def _optional_timestamp(value: str | None) -> datetime | None:
    return None if value is None else parse_timestamp(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantRecord:
    """A party of the recorded call, from the RFC 7865 metadata, with the role the server inferred."""

    aor: str | None = None  # e.g. "sip:+3612345678@pbx.example.hu"
    name: str | None = None
    role: ParticipantRole = ParticipantRole.OTHER  # a plain "caller"/"callee"/"other" is accepted too
    participant_id: str | None = None  # the metadata's participant_id

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", ParticipantRole(self.role))

    def to_json(self) -> dict[str, Any]:
        return {
            "aor": self.aor,
            "name": self.name,
            "role": self.role.value,
            "participant_id": self.participant_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParticipantRecord:
        return cls(
            aor=data.get("aor"),
            name=data.get("name"),
            role=ParticipantRole(data.get("role", ParticipantRole.OTHER)),
            participant_id=data.get("participant_id"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfRecord:
    """A key press sent on a stream as an RFC 4733 event: seconds from the start of the audio, its length,
    and the digit — ``None`` when digits are not kept (the default: they may be card numbers or PINs)."""

    at: float
    duration: float
    digit: str | None = None

    def __post_init__(self) -> None:
        if self.duration < 0:
            raise ValueError("a key press cannot last a negative time")
        if self.digit is not None and (len(self.digit) != 1 or self.digit not in "0123456789*#ABCD"):
            raise ValueError(f"{self.digit!r} is not a DTMF digit")

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "duration": self.duration, "digit": self.digit}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DtmfRecord:
        return cls(at=data["at"], duration=data["duration"], digit=data.get("digit"))


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamRecord:
    """One answered m-line: how it was mapped and (once finished) its RFC 3550 receive statistics."""

    label: str | None  # SDP a=label (RFC 4574), the key the metadata uses for the stream
    codec: str | None  # e.g. "PCMA"; None for an m-line answered with port 0
    payload_type: int | None
    ssrc: int | None = None
    channel: int | None = None  # output channel the stream was mixed into
    packets: int = 0
    lost: int = 0
    late: int = 0
    duplicated: int = 0
    telephone_events: int = 0  # RFC 4733 events seen
    first_packet_at: datetime | None = None
    last_packet_at: datetime | None = None
    remote: str | None = None  # where the RTP came from, "host:port"
    # Quality (RFC 3550 §6.4.1, A.3, A.8): loss as a fraction of the packets expected, interarrival jitter,
    # packets that arrived out of order but in time, seconds of silence filled for gaps inside the stream,
    # comfort-noise packets, how far RTCP alignment moved the stream, and what the sender's reports said.
    loss_fraction: float = 0.0
    jitter_ms: float = 0.0
    reordered: int = 0
    gap_seconds: float = 0.0
    comfort_noise: int = 0
    alignment_seconds: float = 0.0
    rtcp_sender_reports: int = 0
    sender_packets: int | None = None
    dtmf: Sequence[DtmfRecord] = ()  # RFC 4733 key presses, kept out of the audio

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtmf", tuple(self.dtmf))
        if self.payload_type is not None and not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload type {self.payload_type} out of range")
        if self.ssrc is not None and not 0 <= self.ssrc < 2**32:
            raise ValueError(f"SSRC {self.ssrc} out of range")
        for counter in (
            self.packets,
            self.lost,
            self.late,
            self.duplicated,
            self.telephone_events,
            self.reordered,
            self.comfort_noise,
            self.rtcp_sender_reports,
        ):
            if counter < 0:
                raise ValueError("stream counters cannot be negative")
        _aware(self.first_packet_at, "first_packet_at")
        _aware(self.last_packet_at, "last_packet_at")

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "codec": self.codec,
            "payload_type": self.payload_type,
            "ssrc": self.ssrc,
            "channel": self.channel,
            "packets": self.packets,
            "lost": self.lost,
            "late": self.late,
            "duplicated": self.duplicated,
            "telephone_events": self.telephone_events,
            "first_packet_at": format_timestamp(self.first_packet_at),
            "last_packet_at": format_timestamp(self.last_packet_at),
            "remote": self.remote,
            "loss_fraction": self.loss_fraction,
            "jitter_ms": self.jitter_ms,
            "reordered": self.reordered,
            "gap_seconds": self.gap_seconds,
            "comfort_noise": self.comfort_noise,
            "alignment_seconds": self.alignment_seconds,
            "rtcp_sender_reports": self.rtcp_sender_reports,
            "sender_packets": self.sender_packets,
            "dtmf": [press.to_json() for press in self.dtmf],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamRecord:
        return cls(
            label=data.get("label"),
            codec=data.get("codec"),
            payload_type=data.get("payload_type"),
            ssrc=data.get("ssrc"),
            channel=data.get("channel"),
            packets=data.get("packets", 0),
            lost=data.get("lost", 0),
            late=data.get("late", 0),
            duplicated=data.get("duplicated", 0),
            telephone_events=data.get("telephone_events", 0),
            first_packet_at=_optional_timestamp(data.get("first_packet_at")),
            last_packet_at=_optional_timestamp(data.get("last_packet_at")),
            remote=data.get("remote"),
            loss_fraction=data.get("loss_fraction", 0.0),
            jitter_ms=data.get("jitter_ms", 0.0),
            reordered=data.get("reordered", 0),
            gap_seconds=data.get("gap_seconds", 0.0),
            comfort_noise=data.get("comfort_noise", 0),
            alignment_seconds=data.get("alignment_seconds", 0.0),
            rtcp_sender_reports=data.get("rtcp_sender_reports", 0),
            sender_packets=data.get("sender_packets"),
            dtmf=[DtmfRecord.from_json(press) for press in data.get("dtmf", ())],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseRecord:
    """A pause (hold, `a=inactive`, API pause): seconds from the start of the audio; the audio keeps the
    timeline, so the pause is silence of exactly this length. ``end`` is None while the pause is open."""

    start: float
    end: float | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.end is not None and self.end < self.start):
            raise ValueError(f"pause {self.start}-{self.end} is not an interval of the recording")

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PauseRecord:
        return cls(start=float(data["start"]), end=None if data.get("end") is None else float(data["end"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class MetadataSnapshot:
    """A recording metadata document received after the first one (re-INVITE or UPDATE)."""

    received_at: datetime
    xml: str

    def __post_init__(self) -> None:
        _aware(self.received_at, "received_at")

    def to_json(self) -> dict[str, Any]:
        return {"received_at": format_timestamp(self.received_at), "xml": self.xml}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetadataSnapshot:
        return cls(received_at=parse_timestamp(data["received_at"]), xml=data["xml"])


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRecording:
    """What is known when the INVITE is accepted. The id may be chosen first, to name the audio file."""

    call_id: str
    started_at: datetime
    id: UUID = field(default_factory=uuid4)
    session_ids: Sequence[str] = ()
    group_ids: Sequence[str] = ()
    participants: Sequence[ParticipantRecord] = ()
    streams: Sequence[StreamRecord] = ()
    channels: int | None = None
    sample_rate: int | None = None
    file_path: str | None = None
    format: str | None = None  # e.g. "flac"
    raw_metadata: str | None = None  # the metadata XML exactly as received
    source_address: str | None = None  # e.g. "udp:192.0.2.10:5060"
    # normalised numbers, direction and dialect from the metadata
    call_facts: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # What the recording policy decided at call setup (GDPR Art. 6 basis, Art. 5(1)(e) retention).
    tenant_id: UUID | None = None
    policy_id: int | None = None
    basis: str | None = None  # legal_obligation | consent | legitimate_interest
    statute: str | None = None
    purpose: str | None = None
    retention_class_id: int | None = None
    expires_at: datetime | None = None
    consent_state: str = "not_required"  # not_required | pending | given | refused | withdrawn
    numbers: Sequence[str] = ()  # every party's number as storage.phone.number_key gives it
    encryption: str | None = None  # storage.sealed container format; None: a plain file
    node: str | None = None  # the node recording it (storage.nodes)

    def __post_init__(self) -> None:
        if not self.call_id:
            raise ValueError("a recording needs the Call-ID of its recording session")
        _aware(self.started_at, "started_at")
        _aware(self.expires_at, "expires_at")
        _positive(self.channels, "channels")
        _positive(self.sample_rate, "sample_rate")
        for name in ("session_ids", "group_ids", "participants", "streams", "numbers"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Recording:
    """A catalogue row."""

    id: UUID
    reference: str
    call_id: str
    status: RecordingStatus
    started_at: datetime
    session_ids: Sequence[str] = ()
    group_ids: Sequence[str] = ()
    media_started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    participants: Sequence[ParticipantRecord] = ()
    streams: Sequence[StreamRecord] = ()
    channels: int | None = None
    sample_rate: int | None = None
    file_path: str | None = None
    format: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    raw_metadata: str | None = None
    metadata_history: Sequence[MetadataSnapshot] = ()
    source_address: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    conversation_id: UUID | None = None
    duplicate_of: UUID | None = None
    pauses: Sequence[PauseRecord] = ()
    call_facts: Mapping[str, Any] = field(default_factory=dict, hash=False)
    tenant_id: UUID | None = None
    policy_id: int | None = None
    basis: str | None = None
    statute: str | None = None
    purpose: str | None = None
    retention_class_id: int | None = None
    retention_class: str | None = None  # the class's code, e.g. "quality_60d"
    expires_at: datetime | None = None
    consent_state: str = "not_required"
    numbers: Sequence[str] = ()
    encryption: str | None = None
    node: str | None = None
    object_key: str | None = None  # the object store's copy, once confirmed; None: the file on disk only
    pending_status: RecordingStatus | None = None  # while 'uploading': the outcome it takes once confirmed

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RecordingStatus(self.status))
        _aware(self.started_at, "started_at")
        for name in (
            "session_ids",
            "group_ids",
            "participants",
            "streams",
            "metadata_history",
            "pauses",
            "numbers",
        ):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def finished(self) -> bool:
        return self.status is not RecordingStatus.RECORDING

    @property
    def settled(self) -> bool:
        """Finished, and its file where it stays (an object store has confirmed it)."""
        return self.status not in (RecordingStatus.RECORDING, RecordingStatus.UPLOADING)

    def to_json(self, *, detailed: bool = False) -> dict[str, Any]:
        """The stable JSON shape printed by the CLI and served by the API; every key is always present.

        Unknown values are null. Fields:
        - ``id`` (uuid string), ``reference`` ("HT-7K3M-Q9RX"), ``call_id``
        - ``session_ids``, ``group_ids``: lists of the RFC 7865 ids
        - ``status``: recording | uploading | complete | no_media | one_way | failed | interrupted (uploading:
          finished, waiting until the object store confirms its file)
        - ``started_at`` (INVITE accepted), ``media_started_at`` (first RTP), ``ended_at``: ISO 8601 UTC
        - ``duration_seconds`` (float), ``channels``, ``sample_rate`` (Hz), ``format`` ("flac"),
          ``size_bytes``, ``sha256`` (hex of the audio file), ``file_path``, ``source_address``
        - ``participants``: [{aor, name, role: caller|callee|other, participant_id}]
        - ``streams``: [{label, codec, payload_type, ssrc, channel, packets, lost, late, duplicated,
          telephone_events, first_packet_at, last_packet_at, remote}]
        - ``conversation_id`` (uuid: recordings sharing an RFC 7865 group or session id), ``duplicate_of``
          (uuid of an earlier recording of the same communication session, or null)
        - ``pauses``: [{start, end}] seconds from the start of the audio
        - ``call_facts``: normalised call facts from the metadata ({} when none), e.g.
          {"calling_number": {"value", "raw", "source"}, "direction": {...}, "dialect": {...}}
        - ``tenant_id`` (uuid or null: no tenant claimed the call), ``basis`` (legal_obligation | consent |
          legitimate_interest), ``statute``, ``purpose``, ``retention_class`` (code), ``expires_at``,
          ``consent_state`` (not_required | pending | given | refused | withdrawn), ``numbers`` (the parties'
          numbers in E.164 where they are phone numbers), ``encrypted`` (bool), ``object_key`` (its object in
          the object store once confirmed, else null)
        With ``detailed=True`` also ``raw_metadata`` (the first metadata XML as received),
        ``metadata_history`` ([{received_at, xml}] for later ones), ``created_at`` and ``updated_at``.
        """
        data: dict[str, Any] = {
            "id": str(self.id),
            "reference": self.reference,
            "call_id": self.call_id,
            "session_ids": list(self.session_ids),
            "group_ids": list(self.group_ids),
            "status": self.status.value,
            "started_at": format_timestamp(self.started_at),
            "media_started_at": format_timestamp(self.media_started_at),
            "ended_at": format_timestamp(self.ended_at),
            "duration_seconds": self.duration_seconds,
            "channels": self.channels,
            "sample_rate": self.sample_rate,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "file_path": self.file_path,
            "source_address": self.source_address,
            "participants": [participant.to_json() for participant in self.participants],
            "streams": [stream.to_json() for stream in self.streams],
            "conversation_id": None if self.conversation_id is None else str(self.conversation_id),
            "duplicate_of": None if self.duplicate_of is None else str(self.duplicate_of),
            "pauses": [pause.to_json() for pause in self.pauses],
            "call_facts": dict(self.call_facts),
            "tenant_id": None if self.tenant_id is None else str(self.tenant_id),
            "basis": self.basis,
            "statute": self.statute,
            "purpose": self.purpose,
            "retention_class": self.retention_class,
            "expires_at": format_timestamp(self.expires_at),
            "consent_state": self.consent_state,
            "numbers": list(self.numbers),
            "encrypted": self.encryption is not None,
            "object_key": self.object_key,
        }
        if detailed:
            data["raw_metadata"] = self.raw_metadata
            data["metadata_history"] = [snapshot.to_json() for snapshot in self.metadata_history]
            data["created_at"] = format_timestamp(self.created_at)
            data["updated_at"] = format_timestamp(self.updated_at)
        return data


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


def _positive(value: int | None, name: str) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be positive")
