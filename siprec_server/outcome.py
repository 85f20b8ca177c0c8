"""Pure mapping from a finished (or starting) SIPREC session to catalogue values: roles, stream rows, status."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from media import RecordingResult
from media.stats import StreamStatsSnapshot
from storage import DtmfRecord, ParticipantRecord, ParticipantRole, RecordingStatus, StreamRecord

from .siprec import ChannelLayout, RecordingMetadata, SdpAnswer

__all__ = ["participants_for", "recording_status", "stream_records", "wall_time"]

_ROLES = (ParticipantRole.CALLER, ParticipantRole.CALLEE)


def participants_for(metadata: RecordingMetadata | None, layout: ChannelLayout) -> list[ParticipantRecord]:
    """Participants with their role: the channel-0 party is the caller, channel 1 the callee, others 'other'."""
    if metadata is None:
        return []
    roles: dict[str, ParticipantRole] = {}
    for channel, aor in enumerate(layout.participants):
        if aor is not None and channel < len(_ROLES) and layout.channels > 1:
            roles.setdefault(aor, _ROLES[channel])
    records = []
    for participant in metadata.participants:
        role = roles.get(participant.aor or "", ParticipantRole.OTHER)
        records.append(
            ParticipantRecord(
                participant_id=participant.id,
                aor=participant.aor,
                name=participant.name,
                role=role,
            )
        )
    return records


def stream_records(
    answer: SdpAnswer,
    layout: ChannelLayout,
    result: RecordingResult | None,
    spec_of: Mapping[int, int],
    *,
    keep_digits: bool = False,
) -> list[StreamRecord]:
    """One row per answered m-line, with its RTP statistics once the recording is finished; ``spec_of`` maps
    an m-line to its media stream (the result lists streams by their index)."""
    stats = list(result.streams) if result is not None else []
    records = []
    for stream in answer.streams:
        spec = spec_of.get(stream.index)
        snapshot = stats[spec] if spec is not None and spec < len(stats) else None
        records.append(
            StreamRecord(
                label=stream.label,
                codec=stream.codec,
                payload_type=stream.payload_type,
                channel=layout.stream_channels[stream.index] if spec is not None else None,
                ssrc=snapshot.ssrc if snapshot else None,
                packets=snapshot.packets if snapshot else 0,
                lost=snapshot.lost if snapshot else 0,
                late=snapshot.late if snapshot else 0,
                duplicated=snapshot.duplicated if snapshot else 0,
                telephone_events=snapshot.telephone_events if snapshot else 0,
                first_packet_at=wall_time(snapshot.first_packet_at) if snapshot else None,
                last_packet_at=wall_time(snapshot.last_packet_at) if snapshot else None,
                remote=_remote(snapshot.remote) if snapshot else None,
                **(_quality(snapshot) if snapshot else {}),
                dtmf=[
                    DtmfRecord(at=p.at, duration=p.duration, digit=p.digit if keep_digits else None)
                    for p in (result.dtmf if result is not None else ())
                    if p.stream == spec
                ],
            )
        )
    return records


def _quality(snapshot: StreamStatsSnapshot) -> dict[str, Any]:
    return {
        "loss_fraction": round(snapshot.loss_fraction, 6),
        "jitter_ms": round(snapshot.jitter_ms, 3),
        "reordered": snapshot.reordered,
        "gap_seconds": round(snapshot.gap_seconds, 3),
        "comfort_noise": snapshot.comfort_noise,
        "alignment_seconds": round(snapshot.alignment_seconds, 4),
        "rtcp_sender_reports": snapshot.rtcp_sender_reports,
        "sender_packets": snapshot.sender_packets,
    }


def recording_status(answer: SdpAnswer, result: RecordingResult) -> RecordingStatus:
    """complete: every recorded stream delivered; one_way: some did; no_media: none did (GUIDE §2.8)."""
    expected = [s for s in answer.streams if s.port and s.codec and s.direction != "inactive"]
    delivered = sum(1 for s in result.streams if s.packets > 0)
    if not expected or delivered == 0:
        return RecordingStatus.NO_MEDIA
    if delivered < len(expected):
        return RecordingStatus.ONE_WAY
    return RecordingStatus.COMPLETE


def wall_time(timestamp: float | None) -> datetime | None:
    """A media-layer wall-clock float (``time.time()``) as an aware UTC datetime."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def _remote(address: tuple[str, int] | None) -> str | None:
    return None if address is None else f"{address[0]}:{address[1]}"
