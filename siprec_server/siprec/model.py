"""The normalised RFC 7865 metadata model every dialect is read into (see `dialects` for the dialects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .dialects import DialectInfo
from .facts import CallFacts
from .numbers import PhoneNumber
from .timestamps import parse_timestamp
from .vendor import VendorExtension
from .warning_kinds import MetadataWarning

__all__ = ["Participant", "RecordingMetadata", "StreamInfo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Participant:
    """A party of the recorded call; `send`/`recv` are stream ids.

    `aor` is the address as sent; `uri` the same address cleaned (`addresses.parse_address`) and `number`
    its user part read as a telephone number, when it is one. `left_at` is the `disassociate-time` of a
    party that left the communication session (RFC 7865 `participantsessionassoc`), as sent.
    """

    id: str
    aor: str | None
    name: str | None
    send: list[str]
    recv: list[str]
    associate_time: str | None
    uri: str | None = None
    number: PhoneNumber | None = None
    left_at: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamInfo:
    """A recorded stream; `label` matches the SDP `a=label` of its m-line (RFC 7865 §6.5)."""

    id: str
    label: str | None
    session_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingMetadata:
    """The normalised metadata of one document (or of several merged); `datamode` is `complete` or `partial`
    (RFC 7865 §6.1).

    `start_time` is the communication session's `start-time`, else the recording association's time.
    `sip_session_ids` are the `<sipSessionID>` values (RFC 7865 §6: the CS's RFC 7989 Session-ID).
    `extensions` are the vendor blocks, kept raw; `call` the call facts read from them and from the
    participants; `dialect` how the document was written.
    """

    datamode: str
    session_ids: list[str]
    group_ids: list[str]
    participants: list[Participant]
    streams: list[StreamInfo]
    warnings: list[MetadataWarning]
    start_time: str | None = None
    sip_session_ids: list[str] = field(default_factory=list)
    extensions: list[VendorExtension] = field(default_factory=list)
    call: CallFacts = field(default_factory=CallFacts)
    dialect: DialectInfo = field(default_factory=DialectInfo)

    @property
    def started_at(self) -> datetime | None:
        return parse_timestamp(self.start_time)

    def stream_for_label(self, label: str) -> StreamInfo | None:
        return next((stream for stream in self.streams if stream.label == label.strip()), None)

    def senders_of(self, stream_id: str) -> list[Participant]:
        return [participant for participant in self.participants if stream_id in participant.send]

    def call_facts_json(self) -> dict[str, Any]:
        """The catalogue's `call_facts`: the call facts plus the dialect."""
        return {**self.call.to_json(), "dialect": self.dialect.to_json()}
