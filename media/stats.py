"""Per-stream receive statistics: mutable counters owned by one timeline, frozen snapshots for the rest."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol

__all__ = ["JitterEstimate", "StreamStats", "StreamStatsSnapshot"]


class JitterEstimate(Protocol):
    """What keeps a stream's interarrival jitter (RFC 3550 §6.4.1): :class:`media.quality.InterarrivalJitter`."""

    @property
    def milliseconds(self) -> float: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatsSnapshot:
    """A point-in-time copy of :class:`StreamStats`; see there for the meaning of each field.

    ``loss_fraction`` is ``lost / expected`` (0.0 before anything was expected).
    """

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
    expected: int = 0
    reordered: int = 0
    comfort_noise: int = 0
    comfort_noise_level: int | None = None
    jitter_ms: float = 0.0
    gap_seconds: float = 0.0
    alignments: int = 0
    alignment_seconds: float = 0.0
    rtcp_sender_reports: int = 0
    rtcp_receiver_reports: int = 0
    rtcp_byes: int = 0
    rtcp_malformed: int = 0
    rtcp_sr_rejected: int = 0
    sender_packets: int | None = None
    sender_octets: int | None = None
    reported_fraction_lost: float | None = None
    reported_lost: int | None = None
    reported_jitter_ms: float | None = None
    cname: str | None = None
    loss_fraction: float = 0.0


@dataclass(slots=True, kw_only=True)
class StreamStats:
    """Counters for one received RTP stream.

    ``packets``/``bytes`` count valid RTP datagrams (audio, telephone-event, comfort-noise and other payload
    types) and their UDP payload octets. ``lost`` is RFC 3550 Appendix A.3 expected − received over extended
    sequence numbers, summed over SSRCs and sequence restarts, and ``expected`` the matching count of packets
    expected; duplicates do not count as received, so loss is never negative. Only the audio,
    telephone-event and comfort-noise payload types take part in it; packets of other payload types are
    counted in ``other_payload`` and otherwise ignored (RFC 3550 §5.1). ``comfort_noise`` counts RFC 3389
    packets (payload type 13): they are never decoded as audio, their DTX gap stays silence, and
    ``comfort_noise_level`` keeps the noise level the latest one signalled (−dBov, RFC 3389 §3.1).

    ``late`` packets arrived after their place on the timeline was written (dropped); ``reordered`` arrived
    behind a higher sequence number but in time, and were placed; ``suppressed`` arrived while the recording
    was paused. ``timestamp_jumps`` counts re-anchors: a timestamp more than 1 s away from what the arrival
    time says, confirmed by the next packet. ``invalid`` counts datagrams that are neither RTP nor RTCP, RTP
    packets of a source that never proved itself (a new SSRC needs a second packet in sequence before it is
    recorded; not in ``packets``), plus lone RTP packets whose timestamp contradicted the stream (also in
    ``packets``). ``srtp_failures`` counts datagrams of an SRTP stream that failed authentication or the
    replay check (RFC 3711 §3.3): wrong key, garbage, or a duplicate; they never reach the timeline.

    Quality: ``jitter_ms`` is the RFC 3550 A.8 interarrival jitter of the placed audio packets;
    ``gap_seconds`` the silence the timeline filled inside the stream's span for loss, DTX, late packets
    and source changes, pauses excluded. ``alignments`` counts moves of the stream onto the call's shared
    clock (:mod:`media.clock_sync`) and ``alignment_seconds`` sums them: negative is audio dropped to move
    earlier, positive silence padded to move later.

    RTCP: ``rtcp_packets`` counts RTCP datagrams, ``rtcp_malformed`` those not (entirely) well-formed;
    ``rtcp_sender_reports``/``rtcp_receiver_reports``/``rtcp_byes`` the SR and RR packets and BYE sources
    in them. ``sender_packets``/``sender_octets`` are the counts of the current source's latest accepted SR;
    ``rtcp_sr_rejected`` counts SRs not used for alignment because their clock contradicted the stream or the
    call. ``reported_*`` come from the latest reception report block (RFC 3550 §6.4.1) and ``cname`` from
    SDES. Times are wall-clock seconds; ``remote`` is the first source address (latched).

    ``jitter_ms`` is folded in every thousand packets or so (:mod:`media.quality`); :meth:`snapshot` brings it
    up to date from ``jitter``, the owning timeline's estimator.
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
    expected: int = 0
    reordered: int = 0
    comfort_noise: int = 0
    comfort_noise_level: int | None = None
    jitter_ms: float = 0.0
    gap_seconds: float = 0.0
    alignments: int = 0
    alignment_seconds: float = 0.0
    rtcp_sender_reports: int = 0
    rtcp_receiver_reports: int = 0
    rtcp_byes: int = 0
    rtcp_malformed: int = 0
    rtcp_sr_rejected: int = 0
    sender_packets: int | None = None
    sender_octets: int | None = None
    reported_fraction_lost: float | None = None
    reported_lost: int | None = None
    reported_jitter_ms: float | None = None
    cname: str | None = None
    jitter: JitterEstimate | None = field(default=None, repr=False, compare=False)

    @property
    def loss_fraction(self) -> float:
        """``lost / expected``, 0.0 before any packet was expected."""
        return self.lost / self.expected if self.expected > 0 else 0.0

    def snapshot(self) -> StreamStatsSnapshot:
        if self.jitter is not None:
            self.jitter_ms = self.jitter.milliseconds
        return StreamStatsSnapshot(
            **{name: getattr(self, name) for name in _COPIED}, loss_fraction=self.loss_fraction
        )


_COPIED = tuple(f.name for f in fields(StreamStatsSnapshot) if f.name != "loss_fraction")
