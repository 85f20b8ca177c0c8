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

Telephone events (RFC 4733) are placed by their timestamp like audio and kept as key presses, out of the audio;
:meth:`StreamTimeline.take_presses` hands each out once, as soon as its first packet is placed (the key held
down), for a caller that acts on keys during the call.

RTCP arriving with the packets is parsed off the hot path (:mod:`media.rtcp`). A sender report of the
current source whose RTP timestamp agrees with its arrival is offered to the recorder as a
:class:`media.clock_sync.SyncPoint`; the recorder may then :meth:`StreamTimeline.shift` the stream onto the
call's shared clock. The shift persists: later anchors from arrival (a new SSRC, a timestamp jump) keep it.

The common packet (version 2, no CSRC/extension/padding, no marker, the audio payload type, the current
anchored SSRC, in sequence, on time) costs a header unpack, a little integer arithmetic and three list
appends; everything else goes through the rules spelled out packet by packet (:mod:`media.packet_rules`).
Decoding, placement, jitter (:mod:`media.quality`) and gap accounting run once per batch or less.

:meth:`StreamTimeline.add_batch` takes a batch as the socket read left it (:mod:`media.udp_batch`). When every
datagram of it is such a common packet, of a table codec (G.711), with payloads of one length and timestamps
back to back, and no pause applies, the batch is checked and placed as a whole: one header unpack, a few
comparisons, one table lookup from the receive buffer into the timeline. Any other batch is copied out and
goes through :meth:`StreamTimeline.add`, with the same result.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from media.clock_sync import SyncPoint
from media.codecs import Codec
from media.packet_rules import NEVER, TS_HALF, DtmfMark, PacketRules
from media.placement import Placement
from media.probation import Probation
from media.quality import InterarrivalJitter
from media.rtcp import RtcpTracker
from media.rtp import HEADER
from media.sequence import SequenceTracker
from media.stats import StreamStats
from media.telephone_event import TelephoneEventReceiver
from media.udp_batch import MAX_DATAGRAM, DatagramBatch
from media.weak_method import weakly

__all__ = ["DtmfMark", "StreamTimeline"]


Pcm = npt.NDArray[np.int16]

_JUMP_SECONDS = 1.0
_HEADER = HEADER.size
_MASK32 = 0xFFFFFFFF


class StreamTimeline(PacketRules):
    """Sans-I/O placement of one stream's packets; see the module docstring for the rules."""

    __slots__ = (  # and those of PacketRules
        "__weakref__",  # its placement calls back through one (media.weak_method)
        "_buffer",
        "_gaps",
        "_held_taken",
        "_jitter",
        "_marks_taken",
        "_relocated",
        "_table",
        "_word",
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
        self._pt = payload_type
        self._word = 0x8000 | payload_type  # first two octets of a plain packet: version 2, nothing else set
        self._te_pt = -1 if telephone_event_pt is None else telephone_event_pt
        ratio = Fraction(codec.sample_rate, codec.clock_rate)
        self._num = ratio.numerator
        self._den = ratio.denominator
        self._jump = _JUMP_SECONDS * codec.sample_rate
        # A plain batch is decoded straight from the receive buffer when a timestamp tick is a sample.
        self._table = codec.table if self._num == self._den else None
        self._ssrc = -1
        self._seq = SequenceTracker()
        self._anchored = False  # anchor_ts (RTP clock) sits at anchor_pos (samples)
        self._anchor_pos = 0
        self._anchor_ts = 0
        self._held: tuple[float, int, bytes] | None = None  # a packet whose timestamp jumped, unconfirmed
        self._probation = Probation()
        self._current_seen: float | None = None  # arrival of the current source's latest packet
        self._pauses: list[list[float]] = []
        self._placement = Placement(codec, weakly(self._paused_spans, default=[]))
        self._buffer = self._placement.buffer
        self._offset = 0  # samples every placement is moved by (alignment onto the call's clock)
        self._realigned = NEVER  # reordered packets up to this extended sequence number predate a shift
        self._relocated = 0  # the part of the offset moved before any output (it cost nothing)
        self._dtmf = TelephoneEventReceiver()
        self._dtmf_marks: list[DtmfMark] = []
        self._marks_taken = 0  # _dtmf_marks[:_marks_taken] went out through take_presses()
        self._held_taken: int | None = None  # start of the press in progress take_presses() reported
        self._jitter = InterarrivalJitter(codec.sample_rate)
        self.stats.jitter = self._jitter
        self._gaps = self._placement.gaps
        self._rtcp = RtcpTracker(self.stats, codec.clock_rate)
        self._sync: tuple[int, int] | None = None  # accepted SR of the current anchor: (NTP, RTP timestamp)
        self._sync_candidate: tuple[int, int] | None = None  # a newer SR waiting for the recorder's verdict
        self.sync_offered = False  # True while a candidate waits

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
        floor = NEVER if emitted is None else emitted
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
        shifted_pos = anchor_pos - TS_HALF
        ts_shift = TS_HALF - self._anchor_ts
        expect = (tracker.ext_max + 1) & 0xFFFF  # the sequence number of the next packet in order
        mark = 0  # arrivals[mark:] are in-order packets not yet counted by the tracker

        for arrival, data in packets:
            try:
                b0, b1, seq, ts, ssrc = unpack(data)
            except struct.error:
                b0 = -1
            if b0 == 0x80 and b1 == fast_pt and ssrc == fast_ssrc and seq == expect:
                rel = (ts + ts_shift) & 0xFFFFFFFF  # ts - anchor_ts + 2**31, wrap-around included
                pos = shifted_pos + rel if unity else anchor_pos + (rel - TS_HALF) * num // den
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
            shifted_pos = anchor_pos - TS_HALF
            ts_shift = TS_HALF - self._anchor_ts

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

    def add_batch(self, batch: DatagramBatch) -> None:
        """Place a batch read from a socket (valid during the call): the same as :meth:`add` of its datagrams,
        in one step when the batch is plain (see the module docstring)."""
        count = batch.count
        if not count:
            return
        size = batch.lengths[0]
        pauses = self._pauses
        if (
            self._table is None
            or not self._anchored
            or self.origin is None
            or not _HEADER < size <= MAX_DATAGRAM
            or batch.lengths.count(size) != count
            or (pauses and (len(pauses[-1]) == 1 or batch.arrivals[0] < pauses[-1][1]))
            or not self._place_plain(batch, size - _HEADER)
        ):
            self.add(batch.datagrams())

    def _place_plain(self, batch: DatagramBatch, payload: int) -> bool:
        """Place a batch of one payload length if each of its packets would take the hot loop of :meth:`add`
        and together they run back to back; False (nothing done) if not."""
        assert self._table is not None and self.origin is not None
        count = batch.count
        heads = batch.headers()  # per packet: first two octets, sequence number, timestamp, SSRC
        tracker = self._seq
        expect = (tracker.ext_max + 1) & 0xFFFF
        ts = heads[2]
        # A sequence number or timestamp that wraps inside the batch fails the comparison with its range.
        if (
            heads[0::4].count(self._word) != count
            or heads[3::4].count(self._ssrc) != count
            or heads[1::4] != tuple(range(expect, expect + count))
            or heads[2::4] != tuple(range(ts, ts + count * payload, payload))
        ):
            return False
        rel = (ts + TS_HALF - self._anchor_ts) & _MASK32  # RFC 3550 §5.1: wrap-around as in add()
        if rel + (count - 1) * payload > _MASK32:
            return False
        first = self._anchor_pos - TS_HALF + rel
        last = first + (count - 1) * payload
        emitted = self._buffer.emitted
        if emitted is not None and first < emitted:
            return False  # late packets are counted one by one
        rate = self.sample_rate
        origin_pos = self.origin * rate - self._offset
        arrivals = batch.arrivals
        # Each packet within a second of where its arrival puts it. Float rounding is monotonic, so the bounds
        # (first position against the latest arrival, last against the earliest) hold for every packet's
        # difference as add() computes it; a batch that spans much time (a late drain) is checked packet by
        # packet when they do not settle it.
        jump = self._jump
        if (
            first + origin_pos - max(arrivals) * rate < -jump
            or last + origin_pos - min(arrivals) * rate > jump
        ):
            off = [
                pos + origin_pos - arrival * rate
                for pos, arrival in zip(range(first, last + 1, payload), arrivals, strict=True)
            ]
            if min(off) < -jump or max(off) > jump:
                return False
        tracker.ext_max += count
        tracker.received += count
        stats = self.stats
        stats.packets += count
        stats.bytes += count * (payload + _HEADER)
        latest = arrivals[-1]
        stats.last_packet_at = max(stats.last_packet_at or latest, latest)
        self._current_seen = max(self._current_seen or latest, latest)
        # Expected and received grow alike: the loss stays what it was (RFC 3550 A.3).
        stats.expected = tracker.expected
        self._placement.place_octets(first, batch.payloads(payload), self._table)
        self._jitter.push_run(arrivals, first, payload)
        stats.gap_seconds = self._gaps.samples / rate
        return True

    def take_presses(self) -> list[DtmfMark]:
        """RFC 4733 key presses not taken before, each once, as soon as its start is known: those completed
        since the last call and the key held down now (``samples``: its duration so far). A press taken while
        held is not taken again when it completes."""
        taken: list[DtmfMark] = []
        for mark in self._dtmf_marks[self._marks_taken :]:
            if mark.event.start == self._held_taken:
                self._held_taken = None  # reported when it went down
            else:
                taken.append(mark)
        self._marks_taken = len(self._dtmf_marks)
        held = self._dtmf.started()
        if held is not None and held.start != self._held_taken:
            self._held_taken = held.start
            taken.append(self._press_mark(held, self.stats.last_packet_at or 0.0))
        return taken

    def dtmf(self, *, final: bool = False) -> list[DtmfMark]:
        """RFC 4733 key presses so far, on this stream's timeline; ``final`` also closes one whose end
        packets never came (end of the stream)."""
        if final:
            for event in self._dtmf.flush():
                self._mark(event, self.stats.last_packet_at or 0.0)
        return list(self._dtmf_marks)
