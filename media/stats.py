"""Per-stream receive statistics: mutable counters owned by one timeline, frozen snapshots for the rest."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["StreamStats", "StreamStatsSnapshot"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatsSnapshot:
    """A point-in-time copy of :class:`StreamStats`; see there for the meaning of each field."""

    packets: int
    bytes: int
    lost: int
    late: int
    duplicated: int
    telephone_events: int
    other_payload: int
    rtcp_packets: int
    invalid: int
    suppressed: int
    srtp_failures: int
    ssrc: int | None
    ssrc_changes: int
    timestamp_jumps: int
    first_packet_at: float | None
    last_packet_at: float | None
    remote: tuple[str, int] | None


@dataclass(slots=True, kw_only=True)
class StreamStats:
    """Counters for one received RTP stream.

    ``packets``/``bytes`` count valid RTP datagrams (audio, telephone-event and other payload types) and
    their UDP payload octets. ``lost`` is RFC 3550 Appendix A.3 expected − received over extended sequence
    numbers, summed over SSRCs and sequence restarts; duplicates do not count as received, so it is never
    negative. Only the audio, telephone-event and comfort-noise payload types take part in it; packets of
    other payload types are counted in ``other_payload`` and otherwise ignored (RFC 3550 §5.1).
    ``late`` packets arrived after their place on the timeline was written; ``suppressed`` arrived while the
    recording was paused. ``timestamp_jumps`` counts re-anchors: a timestamp more than 1 s away from what the
    arrival time says, confirmed by the next packet. ``invalid`` counts datagrams that are neither RTP nor
    RTCP, RTP packets of a source that never proved itself (a new SSRC needs a second packet in sequence before
    it is recorded; not in ``packets``), plus lone RTP packets whose timestamp contradicted the stream (also in
    ``packets``). ``srtp_failures`` counts datagrams of an SRTP stream that failed authentication or the replay
    check (RFC 3711 §3.3): wrong key, garbage, or a duplicate; they never reach the timeline. Times are
    wall-clock seconds; ``remote`` is the first source address (latched).
    """

    packets: int = 0
    bytes: int = 0
    lost: int = 0
    late: int = 0
    duplicated: int = 0
    telephone_events: int = 0
    other_payload: int = 0
    rtcp_packets: int = 0
    invalid: int = 0
    suppressed: int = 0
    srtp_failures: int = 0
    ssrc: int | None = None
    ssrc_changes: int = 0
    timestamp_jumps: int = 0
    first_packet_at: float | None = None
    last_packet_at: float | None = None
    remote: tuple[str, int] | None = None

    def snapshot(self) -> StreamStatsSnapshot:
        return StreamStatsSnapshot(**asdict(self))
