"""One RTP stream placed on the recording's timeline by RTP timestamp, never by arrival order (sans-I/O).

Positions are sample indices at the codec's sample rate, counted from ``origin`` (a wall-clock time the
recorder shares between all streams of a call). The first packet of a source anchors it: its timestamp maps to
``(arrival - origin) * sample_rate``; later packets land at ``anchor + (ts - anchor_ts)`` scaled from the RTP
clock, with 32-bit wrap-around (RFC 3550 §5.1). A new SSRC re-anchors from arrival; so does a timestamp more
than one second away from what its arrival time says, once the next packet confirms the jump.

A new SSRC is on probation (:mod:`media.probation`) until it has proven itself: stray or forged datagrams
neither start the stream nor take it over, and a source sending alongside the current one never does.

Reordering needs no queue: placement is by timestamp, and the caller delays :meth:`StreamTimeline.take` by its
reorder window. Gaps (loss, DTX, pauses) stay silent. A packet whose place was already taken is late.

The common packet (version 2, no CSRC/extension/padding, no marker, the audio payload type, the current
anchored SSRC, in sequence, on time) costs a header unpack, a little integer arithmetic and two list appends;
everything else goes through :meth:`StreamTimeline._slow`. Decoding and placement run once per batch.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from media.codecs import Codec
from media.probation import Probation
from media.rtp import HEADER, RtpHeader, is_rtcp, parse_rtp
from media.samplebuffer import SampleBuffer
from media.sequence import MAX_DROPOUT, SequenceTracker
from media.stats import StreamStats

__all__ = ["StreamTimeline"]

Pcm = npt.NDArray[np.int16]

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
        "_codec",
        "_current_seen",
        "_decode",
        "_decoder",
        "_den",
        "_held",
        "_jump",
        "_num",
        "_pauses",
        "_probation",
        "_pt",
        "_seq",
        "_ssrc",
        "_te_pt",
        "origin",
        "sample_rate",
        "stats",
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
        self._decode = codec.decode
        self._codec = codec
        # Stateful codecs (G.722, G.729, Opus) decode through this stream's own decoder, in timestamp order.
        self._decoder = codec.new_decoder() if codec.stateful is not None else None
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
        self._buffer = SampleBuffer(codec.sample_rate)

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
        origin_pos = origin * sample_rate
        jump = self._jump
        num = self._num
        den = self._den
        unity = num == den
        tracker = self._seq
        seen_add = tracker.seen.add
        payloads: list[bytes] = []
        positions: list[int] = []
        append_payload = payloads.append
        append_position = positions.append
        unpack = HEADER.unpack_from
        n_slow = n_bytes = 0
        last_fast = 0.0
        # Hot-loop copies of the state; written back around every slow-path packet.
        fast_ssrc = self._ssrc if self._anchored else -1
        anchor_pos = self._anchor_pos
        shifted_pos = anchor_pos - _TS_HALF
        ts_shift = _TS_HALF - self._anchor_ts
        ext_max = tracker.ext_max
        received = tracker.received

        for arrival, data in packets:
            try:
                b0, b1, seq, ts, ssrc = unpack(data)
            except struct.error:
                b0 = -1
            if b0 == 0x80 and b1 == fast_pt and ssrc == fast_ssrc:
                delta = (seq - ext_max) & 0xFFFF
                rel = (ts + ts_shift) & 0xFFFFFFFF  # ts - anchor_ts + 2**31, wrap-around included
                pos = shifted_pos + rel if unity else anchor_pos + (rel - _TS_HALF) * num // den
                if (
                    0 < delta < MAX_DROPOUT
                    and pos >= floor
                    and -jump <= pos + origin_pos - arrival * sample_rate <= jump
                ):
                    ext_max += delta  # SequenceTracker.accept, in-order case
                    seen_add(ext_max)
                    received += 1
                    n_bytes += len(data)
                    last_fast = arrival
                    append_payload(data[12:])
                    append_position(pos)
                    continue
            n_slow += 1
            tracker.ext_max = ext_max
            tracker.received = received
            if last_fast and (self._current_seen is None or last_fast > self._current_seen):
                self._current_seen = last_fast  # the probation of another source asks when we last heard
            self._slow(arrival, data, checking, floor, payloads, positions)
            ext_max = tracker.ext_max
            received = tracker.received
            seen_add = tracker.seen.add
            fast_ssrc = self._ssrc if self._anchored else -1
            anchor_pos = self._anchor_pos
            shifted_pos = anchor_pos - _TS_HALF
            ts_shift = _TS_HALF - self._anchor_ts

        tracker.ext_max = ext_max
        tracker.received = received
        tracker.prune()
        stats = self.stats
        n_fast = len(packets) - n_slow
        if n_fast:
            stats.packets += n_fast
            stats.bytes += n_bytes
            stats.last_packet_at = max(stats.last_packet_at or last_fast, last_fast)
            self._current_seen = max(self._current_seen or last_fast, last_fast)
        stats.lost = tracker.lost
        if payloads:
            self._place(payloads, positions)

    def _slow(
        self,
        arrival: float,
        data: bytes,
        checking: bool,
        floor: int,
        payloads: list[bytes],
        positions: list[int],
    ) -> None:
        """Any packet the hot loop does not take, with every rule spelled out."""
        stats = self.stats
        if is_rtcp(data):  # RTCP on the RTP port (RFC 5761) or from the RTCP port
            stats.rtcp_packets += 1
            return
        header = parse_rtp(data)
        if header is None:
            stats.invalid += 1
            return
        if header.ssrc == self._ssrc:
            self._accept(arrival, data, header, checking, floor, payloads, positions)
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
                self._accept(held_arrival, held_data, held_header, checking, floor, payloads, positions)

    def _switch(self, arrival: float, header: RtpHeader) -> None:
        """A new source: restart sequence accounting (RFC 3550 A.1) and re-anchor from arrival."""
        stats = self.stats
        if self._ssrc == -1:
            stats.first_packet_at = arrival
        else:
            stats.ssrc_changes += 1
        stats.ssrc = self._ssrc = header.ssrc
        self._seq.start(header.sequence)
        self._anchored = False
        self._held = None

    def _accept(
        self,
        arrival: float,
        data: bytes,
        header: RtpHeader,
        checking: bool,
        floor: int,
        payloads: list[bytes],
        positions: list[int],
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
        fresh = self._seq.accept(header.sequence)
        if pt != self._pt:
            if not fresh:
                return  # e.g. the repeated final packet of a telephone event (RFC 4733 §2.5.1.4)
            if checking and self._paused_at(arrival):
                stats.suppressed += 1
            elif pt == self._te_pt:
                stats.telephone_events += 1
            else:
                stats.other_payload += (
                    1  # comfort noise (RFC 3389): part of the sequence, kept out of the audio
                )
            return
        if not fresh:
            stats.duplicated += 1
            return
        if checking and self._paused_at(arrival):
            stats.suppressed += 1
            return
        payload = data[header.payload_offset : header.payload_offset + header.payload_length]
        pos = self._position(arrival, header, payload, floor, payloads, positions)
        if pos is None:
            return
        if pos < floor:
            stats.late += 1
            return
        payloads.append(payload)
        positions.append(pos)

    def _position(
        self,
        arrival: float,
        header: RtpHeader,
        payload: bytes,
        floor: int,
        payloads: list[bytes],
        positions: list[int],
    ) -> int | None:
        """Where an audio packet goes, anchoring as needed; ``None`` while a timestamp jump is unconfirmed."""
        assert self.origin is not None
        arrival_pos = (arrival - self.origin) * self.sample_rate
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
            held_pos = round((held_arrival - self.origin) * self.sample_rate)
            pos = held_pos + self._scaled(ts - held_ts)
            if -self._jump <= pos - arrival_pos <= self._jump:
                self._held = None
                self.stats.invalid -= 1
                self.stats.timestamp_jumps += 1
                self._anchor(held_pos, held_ts)
                if held_pos >= floor:
                    payloads.append(held_payload)
                    positions.append(held_pos)
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
        return pos

    def _scaled(self, ts_delta: int) -> int:
        """A timestamp difference (taken as signed 32-bit) in samples."""
        rel = ((ts_delta + _TS_HALF) & 0xFFFFFFFF) - _TS_HALF
        return rel if self._num == self._den else rel * self._num // self._den

    def _paused_at(self, arrival: float) -> bool:
        return any(arrival >= p[0] and (len(p) == 1 or arrival < p[1]) for p in self._pauses)

    def _place(self, payloads: list[bytes], positions: list[int]) -> None:
        """Decode the batch in one call and copy it as runs of contiguous packets (usually one run)."""
        if self._decoder is not None:
            self._place_stateful(payloads, positions)
            return
        joined = b"".join(payloads)
        samples = self._decode(joined)
        total = len(samples)
        scaled = total != len(joined)
        counts = [len(p) * total // len(joined) if scaled else len(p) for p in payloads]
        self._write_runs(positions, samples, counts)

    def _place_stateful(self, payloads: list[bytes], positions: list[int]) -> None:
        """A decoder with memory needs its packets in timestamp order; each payload says how long it is."""
        assert self._decoder is not None
        order = sorted(range(len(positions)), key=positions.__getitem__)
        payloads = [payloads[i] for i in order]
        positions = [positions[i] for i in order]
        counts = [self._codec.samples_in(p) for p in payloads]
        samples = self._decoder.decode(payloads)
        expected = sum(counts)
        if (
            len(samples) != expected
        ):  # a decoder that returned more or less than the framing says: trust framing
            fitted = np.zeros(expected, dtype=np.int16)
            fitted[: min(expected, len(samples))] = samples[:expected]
            samples = fitted
        self._write_runs(positions, samples, counts)

    def _write_runs(self, positions: list[int], samples: npt.NDArray[np.int16], counts: list[int]) -> None:
        runs: list[tuple[int, int, int]] = []
        run_pos = next_pos = low = high = positions[0]
        run_off = offset = 0
        for pos, count in zip(positions, counts, strict=True):
            if pos != next_pos:
                runs.append((run_pos, run_off, offset))
                high = max(high, next_pos)
                low = min(low, pos)
                run_pos = pos
                run_off = offset
            offset += count
            next_pos = pos + count
        runs.append((run_pos, run_off, offset))
        high = max(high, next_pos)
        self._buffer.write(runs, samples, low, high)
