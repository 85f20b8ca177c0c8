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

from .session_timer import Refresher, TimerAnswer, bye_deadline, refresh_deadline
from .sip import DialogId
from .siprec import ChannelLayout, RecordingMetadata, SdpAnswer

__all__ = ["Call", "existing_file", "stream_specs", "takeable", "with_version"]


@dataclass(slots=True, kw_only=True)
class Call:
    call_id: str
    recording_id: UUID
    reference: str
    started_at: datetime
    layout: ChannelLayout
    answer: SdpAnswer
    ports: list[int]
    media: MediaSession
    path: str
    metadata: RecordingMetadata | None = None  # the merged metadata so far
    dialog_id: DialogId | None = None
    session_version: int = 1
    session_id: int = field(default_factory=lambda: random.getrandbits(31))
    ending: bool = False
    no_media_warned: bool = False
    created_monotonic: float = field(default_factory=time.monotonic)
    timer_interval: int | None = None  # RFC 4028 session interval, None = no session timer
    refresher: Refresher | None = None
    refreshed_at: float = 0.0  # monotonic time of the last refresh (theirs or ours)

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


def stream_specs(answer: SdpAnswer, layout: ChannelLayout) -> tuple[list[StreamSpec], list[int]]:
    specs: list[StreamSpec] = []
    ports: list[int] = []
    for stream in answer.streams:
        codec = codec_for(stream.codec) if stream.codec else None
        if not stream.port or codec is None or stream.payload_type is None:
            continue
        specs.append(
            StreamSpec(
                index=len(specs),
                channel=layout.stream_channels[stream.index],
                codec=codec,
                payload_type=stream.payload_type,
                telephone_event_pt=stream.telephone_event_pt,
            )
        )
        ports.append(stream.port)
    return specs, ports


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
