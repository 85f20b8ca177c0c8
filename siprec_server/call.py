"""One recording session's state and the pure helpers that derive media and SDP from it."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from media import MediaSession, StreamSpec, codec_for
from media.codecs import DECODABLE, WIDEBAND_RATE, recording_rate
from storage.decision import Decision

from .consent_live import LiveConsent
from .session_timer import Refresher, TimerAnswer, bye_deadline, refresh_deadline
from .sip import DialogId
from .siprec import ChannelLayout, NegotiatedStream, RecordingMetadata, SdpAnswer, SrtpPolicy

__all__ = [
    "Call",
    "answer_rate",
    "existing_file",
    "offerable_codecs",
    "stream_spec",
    "stream_specs",
    "takeable",
    "with_version",
]


@dataclass(slots=True, kw_only=True)
class Call:
    call_id: str
    recording_id: UUID
    reference: str
    started_at: datetime
    layout: ChannelLayout
    answer: SdpAnswer  # the latest answer we gave
    ports: dict[int, int]  # m-line index -> our RTP port, for the m-lines being received
    specs: dict[int, int]  # m-line index -> media stream index (kept after removal, for statistics)
    media: MediaSession
    path: str
    metadata: RecordingMetadata | None = None  # the merged metadata so far
    dialog_id: DialogId | None = None
    session_version: int = 1
    session_id: int = field(default_factory=lambda: random.getrandbits(31))
    ending: bool = False
    no_media_warned: bool = False
    media_checked: bool = False  # every stream delivered, or the silent ones were reported
    created_monotonic: float = field(default_factory=time.monotonic)
    timer_interval: int | None = None  # RFC 4028 session interval, None = no session timer
    refresher: Refresher | None = None
    refreshed_at: float = 0.0  # monotonic time of the last refresh (theirs or ours)
    srtp_policy: SrtpPolicy = SrtpPolicy.ALLOW  # of the listener the call came in on
    sample_rate: int = 8000  # of the recording file, fixed when it is opened
    decision: Decision | None = None  # what the recording policy decided at the INVITE (None: no policies)
    consent: LiveConsent | None = None  # the consent question, on a call whose policy has the consent basis
    discarded: bool = False  # deleted during the call (consent refused or withdrawn): nothing is recorded

    spec_count: int = 0  # media streams opened so far; the next one takes this index

    def next_spec(self) -> int:
        """A media stream index never used in this call (the result lists streams by it)."""
        self.spec_count += 1
        return self.spec_count - 1

    def mline_for(self, label: str | None, index: int) -> int | None:
        """The m-line of an earlier answer a re-offered m-line continues: same label, else same position
        (RFC 7866 §8.3 keeps labels stable; ports stay with them)."""
        if label is not None:
            for stream in self.answer.streams:
                if stream.label == label:
                    return stream.index
        return index if index < len(self.answer.streams) else None

    def apply_timer(self, timer: TimerAnswer, now: float) -> None:
        """A request that negotiated (or dropped) the session timer is a refresh (RFC 4028 §10)."""
        self.timer_interval, self.refresher, self.refreshed_at = timer.interval, timer.refresher, now

    def timer_due(self, now: float) -> str | None:
        """'bye' when the SRC's refreshes stopped, 'refresh' when it is our turn, else None."""
        if self.timer_interval is None or self.ending:
            return None
        if self.refresher is Refresher.UAC and now >= bye_deadline(self.refreshed_at, self.timer_interval):
            return "bye"
        if self.refresher is Refresher.UAS and now >= refresh_deadline(
            self.refreshed_at, self.timer_interval
        ):
            return "refresh"
        return None


def existing_file(path: str | None) -> Path | None:
    """The recording file if it was created (a call with no media may never have opened one)."""
    if not path:
        return None
    candidate = Path(path)
    return candidate if candidate.is_file() else None


def takeable(media: Any) -> bool:
    return bool(media.media == "audio" and media.port)


def stream_spec(stream: NegotiatedStream, index: int, channel: int, sample_rate: int) -> StreamSpec | None:
    """The media side of an answered m-line; None when it is not received (port 0, nothing decodable).
    A narrowband stream in a wideband recording is decoded and upsampled to the recording's rate."""
    codec = codec_for(stream.codec, stream.clock_rate) if stream.codec else None
    if not stream.port or codec is None or stream.payload_type is None:
        return None
    if codec.sample_rate != sample_rate:
        if not (codec.narrowband and sample_rate == WIDEBAND_RATE):
            return None  # a wideband stream cannot join a narrowband file opened earlier in the call
        codec = codec.upsampled()
    return StreamSpec(
        index=index,
        channel=channel,
        codec=codec,
        payload_type=stream.payload_type,
        telephone_event_pt=stream.telephone_event_pt,
        srtp=stream.srtp_key,
    )


def answer_rate(answer: SdpAnswer) -> int:
    """The recording's sample rate: 8 kHz when every received stream is narrowband, else 16 kHz."""
    codecs = [codec_for(s.codec, s.clock_rate) for s in answer.streams if s.port and s.codec]
    return recording_rate(c for c in codecs if c is not None)


def offerable_codecs(sample_rate: int) -> tuple[str, ...]:
    """What a re-answer may choose: every decodable codec for a wideband file, narrowband ones otherwise."""
    if sample_rate == WIDEBAND_RATE:
        return DECODABLE
    narrow = []
    for entry in DECODABLE:
        name, _, rest = entry.partition("/")
        codec = codec_for(name, int(rest.split("/")[0]) if rest else None)
        if codec is not None and codec.narrowband:
            narrow.append(entry)
    return tuple(narrow)


def stream_specs(
    answer: SdpAnswer, layout: ChannelLayout, sample_rate: int
) -> tuple[list[StreamSpec], list[int], dict[int, int]]:
    """Specs and ports for the m-lines an answer receives, and which spec each m-line got."""
    specs: list[StreamSpec] = []
    ports: list[int] = []
    spec_of: dict[int, int] = {}
    for stream in answer.streams:
        spec = stream_spec(stream, len(specs), layout.stream_channels[stream.index], sample_rate)
        if spec is None:
            continue
        spec_of[stream.index] = spec.index
        specs.append(spec)
        ports.append(stream.port)
    return specs, ports, spec_of


def with_version(body: bytes, version: int) -> bytes:
    """Bump the o= line's session version (RFC 3264 §8: a changed SDP gets a higher version)."""
    lines = body.split(b"\r\n")
    for i, line in enumerate(lines):
        if line.startswith(b"o="):
            fields = line.split(b" ")
            if len(fields) >= 3:
                fields[2] = str(version).encode()
                lines[i] = b" ".join(fields)
            break
    return b"\r\n".join(lines)
