"""One RTP stream placed on the recording's timeline by RTP timestamp, never by arrival order (sans-I/O).

Positions are sample indices at the codec's sample rate, counted from ``origin`` (a wall-clock time the
recorder shares between all streams of a call). The first packet of a source anchors it: its timestamp maps to
``(arrival - origin) * sample_rate``; later packets land at ``anchor + (ts - anchor_ts)`` scaled from the RTP
clock, with 32-bit wrap-around (RFC 3550 §5.1). A new SSRC re-anchors from arrival; so does a timestamp more
than one second away from what its arrival time says, once the next packet confirms the jump.

A new SSRC is on probation (:mod:`media.probation`) until it has proven itself: stray or forged datagrams
neither start the stream nor take it over, and a source sending alongside the current one never does.

Reordering needs no queue: placement is by timestamp, and the caller delays :meth:`StreamTimeline.take` by its
reorder window. A packet whose place was already taken is late (counted, dropped). Gaps stay silent: loss
(no concealment: a lost packet is silence, never a repeat), DTX, pauses. A marker bit (RFC 3551 §4.1: the
first packet of a talkspurt after DTX) changes nothing: the timestamp says where the talkspurt goes and the
gap before it stays silence. Comfort noise (RFC 3389, payload type 13) is counted, never decoded, and its
gap stays silence too: the recording keeps what was said, not synthesised noise.

RTCP arriving with the packets is parsed off the hot path (:mod:`media.rtcp`). A sender report of the
current source whose RTP timestamp agrees with its arrival is offered to the recorder as a
:class:`media.clock_sync.SyncPoint`; the recorder may then :meth:`StreamTimeline.shift` the stream onto the
call's shared clock. The shift persists: later anchors from arrival (a new SSRC, a timestamp jump) keep it.

The common packet (version 2, no CSRC/extension/padding, no marker, the audio payload type, the current
anchored SSRC, in sequence, on time) costs a header unpack, a little integer arithmetic and three list
appends; everything else goes through :meth:`StreamTimeline._slow`. Decoding, placement, jitter
(:mod:`media.quality`) and gap accounting run once per batch or less.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from media.clock_sync import SyncPoint
from media.codecs import Codec
from media.dtmf import DtmfEvent
from media.placement import Placement
from media.probation import Probation
from media.quality import InterarrivalJitter
from media.rtcp import RtcpTracker, SenderReport
from media.rtp import HEADER, RtpHeader, is_rtcp, parse_rtp
from media.sequence import SequenceTracker
from media.stats import StreamStats
from media.telephone_event import TelephoneEventReceiver

__all__ = ["DtmfMark", "StreamTimeline"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfMark:
    """A key press on a stream's timeline: ``position`` and ``samples`` at the stream's sample rate."""

    position: int
    samples: int
    event: DtmfEvent


Pcm = npt.NDArray[np.int16]
_Batch = tuple[list[bytes], list[int], list[float]]  # what a batch places: payloads, positions, arrivals

_TS_HALF = 1 << 31
_JUMP_SECONDS = 1.0
_COMFORT_NOISE = 13  # RFC 3551 §6 static payload type CN (RFC 3389)
_NEVER = -(1 << 62)


class StreamTimeline:
    """Sans-I/O placement of one stream's packets; see the module docstring for the rules."""

    __slots__ = (
        "_anchor_pos",
        "_anchor_ts",
        "_anchored",
        "_buffer",
        "_current_seen",
        "_den",
        "_dtmf",
        "_dtmf_marks",
        "_gaps",
        "_held",
        "_jitter",
        "_jump",
        "_num",
        "_offset",
        "_pauses",
        "_placement",
        "_probation",
        "_pt",
        "_realigned",
        "_relocated",
        "_rtcp",
        "_seq",
        "_ssrc",
        "_sync",
        "_sync_candidate",
        "_te_pt",
        "origin",
        "sample_rate",
        "stats",
        "sync_offered",
    )

    def __init__(
        self,
        *,
        codec: Codec,
        payload_type: int,
        telephone_event_pt: int | None = None,
        origin: float | None = None,
        stats: StreamStats | None = None,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type {payload_type} out of range")
        self.origin = origin
        self.sample_rate = codec.sample_rate
        self.stats = stats if stats is not None else StreamStats()
        self.stats.refresh = self.refresh_stats
        self._pt = payload_type
        self._te_pt = -1 if telephone_event_pt is None else telephone_event_pt
        ratio = Fraction(codec.sample_rate, codec.clock_rate)
        self._num = ratio.numerator
        self._den = ratio.denominator
        self._jump = _JUMP_SECONDS * codec.sample_rate
        self._ssrc = -1
        self._seq = SequenceTracker()
        self._anchored = False  # anchor_ts (RTP clock) sits at anchor_pos (samples)
        self._anchor_pos = 0
        self._anchor_ts = 0
        self._held: tuple[float, int, bytes] | None = None  # a packet whose timestamp jumped, unconfirmed
        self._probation = Probation()
        self._current_seen: float | None = None  # arrival of the current source's latest packet
        self._pauses: list[list[float]] = []
        self._placement = Placement(codec, self._paused_spans)
        self._buffer = self._placement.buffer
        self._offset = 0  # samples every placement is moved by (alignment onto the call's clock)
        self._realigned = _NEVER  # reordered packets up to this extended sequence number predate a shift
        self._relocated = 0  # the part of the offset moved before any output (it cost nothing)
        self._dtmf = TelephoneEventReceiver()
        self._dtmf_marks: list[DtmfMark] = []
        self._jitter = InterarrivalJitter(codec.sample_rate)
        self._gaps = self._placement.gaps
        self._rtcp = RtcpTracker(self.stats, codec.clock_rate)
        self._sync: tuple[int, int] | None = None  # accepted SR of the current anchor: (NTP, RTP timestamp)
        self._sync_candidate: tuple[int, int] | None = None  # a newer SR waiting for the recorder's verdict
        self.sync_offered = False  # True while a candidate waits

    def refresh_stats(self) -> None:
        """Fold the packets collected for the jitter estimate into ``stats`` (their ``refresh``)."""
        self.stats.jitter_ms = self._jitter.milliseconds

    @property
    def offset(self) -> int:
        """Samples by which alignment has moved this stream so far (negative: earlier)."""
        return self._offset

    @property
    def offset_since_output(self) -> int:
        """The part of :attr:`offset` moved after output started (what dropped or padded audio)."""
        return self._offset - self._relocated

    @property
    def emitted_pos(self) -> int | None:
        """Position up to which samples have been taken; ``None`` before the first take or seek."""
        return self._buffer.emitted

    @property
    def start_pos(self) -> int | None:
        """Position of the earliest sample ever placed, ``None`` before the first audio packet."""
        return self._buffer.start

    @property
    def end_pos(self) -> int | None:
        """Position just past the last sample of the latest placed packet."""
        return self._buffer.end

    def seek(self, pos: int) -> None:
        """Start emission at ``pos`` (the recorder's common start), or move it forward, discarding samples."""
        self._buffer.seek(pos)

    def take(self, until_pos: int) -> Pcm:
        """Samples ``[emitted_pos, until_pos)``, zeros where nothing was placed; advances ``emitted_pos``.

        Before the first take or seek, emission starts at :attr:`start_pos`.
        """
        return self._buffer.take(until_pos)

    def pause(self, at: float) -> None:
        """Drop audio and telephone events arriving from wall time ``at`` on (the timeline stays: silence)."""
        if not self._pauses or len(self._pauses[-1]) == 2:
            self._pauses.append([at])

    def resume(self, at: float) -> None:
        """Accept packets again from wall time ``at`` on."""
        if self._pauses and len(self._pauses[-1]) == 1:
            self._pauses[-1].append(at)

    def sync_point(self) -> SyncPoint | None:
        """The accepted sender report of the current source on the timeline, if any."""
        return self._point(self._sync)

    def sync_candidate(self) -> SyncPoint | None:
        """A newer sender report waiting for :meth:`settle_sync` (``sync_offered`` is True then)."""
        return self._point(self._sync_candidate)

    def settle_sync(self, accept: bool) -> None:
        """The recorder's verdict on the candidate: use it from now on, or count it as rejected."""
        if self._sync_candidate is not None:
            if accept:
                self._sync = self._sync_candidate
            else:
                self.stats.rtcp_sr_rejected += 1
        self._sync_candidate = None
        self.sync_offered = False

    def shift(self, samples: int) -> None:
        """Place this stream's packets ``samples`` later from now on (negative: earlier), for good.

        Before anything was handed out, the audio placed so far moves with the stream: nothing is lost.
        After that it stays: moving earlier overwrites up to ``-samples`` of it once (dropped), moving later
        leaves a silence of ``samples``. Reordered packets sent before the move are late.
        """
        if not samples:
            return
        if self._buffer.emitted is None:
            self._buffer.relocate(samples)
            self._relocated += samples
        self._offset += samples
        if self._anchored:
            self._anchor_pos += samples
        self._jitter.shift(samples)
        self._gaps.shift(samples)
        self._realigned = self._seq.ext_max
        self.stats.alignments += 1
        self.stats.alignment_seconds += samples / self.sample_rate

    def add(self, packets: Sequence[tuple[float, bytes]]) -> None:
        """Place a batch of ``(arrival wall time, datagram)`` pairs, in arrival order."""
        if not packets:
            return
        origin = self.origin
        if origin is None:
            raise RuntimeError("StreamTimeline.origin must be set before packets are added")
        emitted = self._buffer.emitted
        floor = _NEVER if emitted is None else emitted
        pauses = self._pauses
        # Arrivals only grow: once a batch starts after the last resume, no pause applies to it.
        checking = bool(pauses) and (len(pauses[-1]) == 1 or packets[0][0] < pauses[-1][1])
        fast_pt = -1 if checking else self._pt
        sample_rate = self.sample_rate
        origin_pos = origin * sample_rate - self._offset  # arrival * rate - origin_pos: where arrival says
        jump = self._jump
        num = self._num
        den = self._den
        unity = num == den
        tracker = self._seq
        payloads: list[bytes] = []
        positions: list[int] = []
        arrivals: list[float] = []
        append_payload = payloads.append
        append_position = positions.append
        append_arrival = arrivals.append
        unpack = HEADER.unpack_from
        n_slow = n_bytes = 0
        # Hot-loop copies of the state; written back around every slow-path packet.
        fast_ssrc = self._ssrc if self._anchored else -1
        anchor_pos = self._anchor_pos
        shifted_pos = anchor_pos - _TS_HALF
        ts_shift = _TS_HALF - self._anchor_ts
        expect = (tracker.ext_max + 1) & 0xFFFF  # the sequence number of the next packet in order
        mark = 0  # arrivals[mark:] are in-order packets not yet counted by the tracker

        for arrival, data in packets:
            try:
                b0, b1, seq, ts, ssrc = unpack(data)
            except struct.error:
                b0 = -1
            if b0 == 0x80 and b1 == fast_pt and ssrc == fast_ssrc and seq == expect:
                rel = (ts + ts_shift) & 0xFFFFFFFF  # ts - anchor_ts + 2**31, wrap-around included
                pos = shifted_pos + rel if unity else anchor_pos + (rel - _TS_HALF) * num // den
                if pos >= floor and -jump <= pos + origin_pos - arrival * sample_rate <= jump:
                    expect = (seq + 1) & 0xFFFF
                    n_bytes += len(data)
                    append_arrival(arrival)
                    append_payload(data[12:])
                    append_position(pos)
                    continue
            n_slow += 1
            in_order = len(arrivals) - mark  # SequenceTracker.accept of each, the next number
            tracker.ext_max += in_order
            tracker.received += in_order
            if arrivals and (self._current_seen is None or arrivals[-1] > self._current_seen):
                self._current_seen = arrivals[-1]  # the probation of another source asks when we last heard
            self._slow(arrival, data, checking, floor, (payloads, positions, arrivals))
            mark = len(arrivals)
            expect = (tracker.ext_max + 1) & 0xFFFF
            fast_ssrc = self._ssrc if self._anchored else -1
            anchor_pos = self._anchor_pos
            shifted_pos = anchor_pos - _TS_HALF
            ts_shift = _TS_HALF - self._anchor_ts

        in_order = len(arrivals) - mark
        tracker.ext_max += in_order
        tracker.received += in_order
        stats = self.stats
        n_fast = len(packets) - n_slow
        if n_fast:
            last = arrivals[-1]
            stats.packets += n_fast
            stats.bytes += n_bytes
            stats.last_packet_at = max(stats.last_packet_at or last, last)
            self._current_seen = max(self._current_seen or last, last)
        stats.lost = tracker.lost
        stats.expected = tracker.expected
        if payloads:
            self._placement.place(payloads, positions)
            self._jitter.push(arrivals, positions)
            stats.gap_seconds = self._gaps.samples / sample_rate

    def _slow(self, arrival: float, data: bytes, checking: bool, floor: int, batch: _Batch) -> None:
        """Any packet the hot loop does not take, with every rule spelled out."""
        stats = self.stats
        if is_rtcp(data):  # RTCP on the RTP port (RFC 5761) or from the RTCP port
            stats.rtcp_packets += 1
            for report in self._rtcp.feed(arrival, data):
                self._sender_report(report)
            return
        header = parse_rtp(data)
        if header is None:
            stats.invalid += 1
            return
        if header.ssrc == self._ssrc:
            self._accept(arrival, data, header, checking, floor, batch)
            return
        stats.invalid += 1  # until its source is proven
        pt = header.payload_type
        if pt != self._pt and pt != self._te_pt and pt != _COMFORT_NOISE:
            return  # a payload type this stream never carries proves no source
        proven = self._probation.offer(arrival, data, header, self._current_seen)
        if proven:
            stats.invalid -= len(proven)
            self._switch(proven[0][0], proven[0][2])
            for held_arrival, held_data, held_header in proven:
                self._accept(held_arrival, held_data, held_header, checking, floor, batch)

    def _switch(self, arrival: float, header: RtpHeader) -> None:
        """A new source: restart sequence accounting (RFC 3550 A.1) and re-anchor from arrival."""
        stats = self.stats
        if self._ssrc == -1:
            stats.first_packet_at = arrival
        else:
            stats.ssrc_changes += 1
            for event in self._dtmf.flush():  # a key press of the old source: placed on its clock
                self._mark(event, arrival)
            self._dtmf = TelephoneEventReceiver()
        stats.ssrc = self._ssrc = header.ssrc
        self._seq.start(header.sequence)
        self._anchored = False
        self._held = None
        self._realigned = _NEVER
        self._sync = self._sync_candidate = None  # the old source's clock mapping is of no use
        stats.sender_packets = stats.sender_octets = None

    def _accept(
        self, arrival: float, data: bytes, header: RtpHeader, checking: bool, floor: int, batch: _Batch
    ) -> None:
        """An RTP packet of the current source: count it, then place it unless it is not audio for us."""
        stats = self.stats
        stats.packets += 1
        stats.bytes += len(data)
        stats.last_packet_at = arrival
        self._current_seen = arrival
        pt = header.payload_type
        if pt != self._pt and pt != self._te_pt and pt != _COMFORT_NOISE:
            # RFC 3550 §5.1: a payload type we do not understand is ignored, also by the sequence accounting,
            # so a stray or forged packet cannot take the place of an audio packet's sequence number.
            if checking and self._paused_at(arrival):
                stats.suppressed += 1
            else:
                stats.other_payload += 1
            return
        tracker = self._seq
        behind = tracker.behind(header.sequence)
        fresh = tracker.accept(header.sequence)
        if pt != self._pt:
            if not fresh:
                return  # e.g. the repeated final packet of a telephone event (RFC 4733 §2.5.1.4)
            if checking and self._paused_at(arrival):
                stats.suppressed += 1
            elif pt == self._te_pt:
                stats.telephone_events += 1
                payload = data[header.payload_offset : header.payload_offset + header.payload_length]
                for event in self._dtmf.feed(header.timestamp, payload, header.marker):
                    self._mark(event, arrival)
            else:  # comfort noise (RFC 3389): part of the sequence, never decoded; its gap stays silence
                stats.comfort_noise += 1
                if header.payload_length:
                    stats.comfort_noise_level = data[header.payload_offset] & 0x7F  # −dBov (RFC 3389 §3.1)
            return
        if not fresh:
            stats.duplicated += 1
            return
        if checking and self._paused_at(arrival):
            stats.suppressed += 1
            return
        if behind and tracker.ext_max - behind <= self._realigned:
            stats.late += 1  # sent before the stream was moved onto the call's clock: its place is gone
            return
        payload = data[header.payload_offset : header.payload_offset + header.payload_length]
        pos = self._position(arrival, header, payload, floor, batch)
        if pos is None:
            return
        if pos < floor:
            stats.late += 1
            return
        if behind:
            stats.reordered += 1
        batch[0].append(payload)
        batch[1].append(pos)
        batch[2].append(arrival)

    def _position(
        self, arrival: float, header: RtpHeader, payload: bytes, floor: int, batch: _Batch
    ) -> int | None:
        """Where an audio packet goes, anchoring as needed; ``None`` while a timestamp jump is unconfirmed."""
        assert self.origin is not None
        arrival_pos = (arrival - self.origin) * self.sample_rate + self._offset
        ts = header.timestamp
        if not self._anchored:
            return self._anchor(round(arrival_pos), ts)
        pos = self._anchor_pos + self._scaled(ts - self._anchor_ts)
        if -self._jump <= pos - arrival_pos <= self._jump:
            return pos
        # The timestamp disagrees with the arrival time. Like a sequence jump (RFC 3550 A.1) it counts once the
        # next packet confirms it; a lone stray packet stays held back and is dropped.
        held = self._held
        if held is not None:
            held_arrival, held_ts, held_payload = held
            held_pos = round((held_arrival - self.origin) * self.sample_rate) + self._offset
            pos = held_pos + self._scaled(ts - held_ts)
            if -self._jump <= pos - arrival_pos <= self._jump:
                self._held = None
                self.stats.invalid -= 1
                self.stats.timestamp_jumps += 1
                self._anchor(held_pos, held_ts)
                if held_pos >= floor:
                    batch[0].append(held_payload)
                    batch[1].append(held_pos)
                    batch[2].append(held_arrival)
                else:
                    self.stats.late += 1
                return pos
        self._held = (arrival, ts, payload)
        self.stats.invalid += 1
        return None

    def _anchor(self, pos: int, ts: int) -> int:
        self._anchored = True
        self._anchor_pos = pos
        self._anchor_ts = ts
        self._sync = self._sync_candidate = None  # a new anchor (a timestamp jump) breaks the SR mapping
        self.sync_offered = False
        return pos

    def _sender_report(self, report: SenderReport) -> None:
        """An SR of the current source becomes a sync candidate if its RTP timestamp agrees with its arrival
        (as a media packet's must); one that does not is counted as rejected. NTP 0 means the sender has no
        wall clock (RFC 3550 §6.4.1): nothing to align with."""
        stats = self.stats
        if report.ssrc != self._ssrc or not self._anchored or report.ntp == 0:
            return
        assert self.origin is not None
        pos = self._anchor_pos + self._scaled(report.rtp_timestamp - self._anchor_ts)
        arrival_pos = (report.arrival - self.origin) * self.sample_rate + self._offset
        if abs(pos - arrival_pos) > self._jump:
            stats.rtcp_sr_rejected += 1
            return
        stats.sender_packets = report.packets
        stats.sender_octets = report.octets
        self._sync_candidate = (report.ntp, report.rtp_timestamp)
        self.sync_offered = True

    def _point(self, mapping: tuple[int, int] | None) -> SyncPoint | None:
        if mapping is None or not self._anchored:
            return None
        ntp, ts = mapping
        return SyncPoint(ntp=ntp, position=self._anchor_pos + self._scaled(ts - self._anchor_ts))

    def dtmf(self, *, final: bool = False) -> list[DtmfMark]:
        """RFC 4733 key presses so far, on this stream's timeline; ``final`` also closes one whose end
        packets never came (end of the stream)."""
        if final:
            for event in self._dtmf.flush():
                self._mark(event, self.stats.last_packet_at or 0.0)
        return list(self._dtmf_marks)

    def _mark(self, event: DtmfEvent, arrival: float) -> None:
        """Place a completed key press by its RTP timestamp (by arrival before the first audio packet)."""
        if self._anchored:
            pos = self._anchor_pos + self._scaled(event.start - self._anchor_ts)
        else:
            assert self.origin is not None
            pos = round((arrival - self.origin) * self.sample_rate) + self._offset
        self._dtmf_marks.append(DtmfMark(position=pos, samples=self._scaled(event.duration), event=event))

    def _scaled(self, ts_delta: int) -> int:
        """A timestamp difference (taken as signed 32-bit) in samples."""
        rel = ((ts_delta + _TS_HALF) & 0xFFFFFFFF) - _TS_HALF
        return rel if self._num == self._den else rel * self._num // self._den

    def _paused_at(self, arrival: float) -> bool:
        return any(arrival >= p[0] and (len(p) == 1 or arrival < p[1]) for p in self._pauses)

    def _paused_spans(self) -> list[tuple[int, int]]:
        """The pauses as timeline positions (an open one runs to the end of time)."""
        if not self._pauses:
            return []
        assert self.origin is not None
        origin, rate, offset = self.origin, self.sample_rate, self._offset
        return [
            (
                round((p[0] - origin) * rate) + offset,
                round((p[1] - origin) * rate) + offset if len(p) == 2 else -_NEVER,
            )
            for p in self._pauses
        ]
