"""The rules for one RTP or RTCP packet of a stream that the timeline's hot paths do not take (sans-I/O).

:class:`PacketRules` is the part of :class:`media.timeline.StreamTimeline` that spells out, packet by packet,
what the module docstring of :mod:`media.timeline` describes: RTCP (RFC 5761 demultiplexing, sender reports
offered as sync points), a new SSRC on probation (RFC 3550 §6.2.1, A.1) and the switch to it, duplicates,
reordering and late packets, payload types other than the stream's audio (RFC 3550 §5.1), telephone events
(RFC 4733) and comfort noise (RFC 3389), anchoring and confirmed timestamp jumps, and pauses. It holds no
state of its own: the attributes are the timeline's.
"""

from __future__ import annotations

from dataclasses import dataclass

from media.clock_sync import SyncPoint
from media.dtmf import DtmfEvent
from media.placement import Placement
from media.probation import Probation
from media.rtcp import RtcpTracker, SenderReport
from media.rtp import RtpHeader, is_rtcp, parse_rtp
from media.sequence import SequenceTracker
from media.stats import StreamStats
from media.telephone_event import TelephoneEventReceiver

__all__ = ["DtmfMark", "PacketRules"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfMark:
    """A key press on a stream's timeline: ``position`` and ``samples`` at the stream's sample rate."""

    position: int
    samples: int
    event: DtmfEvent


Batch = tuple[list[bytes], list[int], list[float]]  # what a batch places: payloads, positions, arrivals

TS_HALF = 1 << 31
COMFORT_NOISE = 13  # RFC 3551 §6 static payload type CN (RFC 3389)
NEVER = -(1 << 62)


class PacketRules:
    """Per-packet rules of a stream's timeline; mixed into :class:`media.timeline.StreamTimeline`."""

    __slots__ = (
        "_anchor_pos",
        "_anchor_ts",
        "_anchored",
        "_current_seen",
        "_den",
        "_dtmf",
        "_dtmf_marks",
        "_held",
        "_jump",
        "_num",
        "_offset",
        "_pauses",
        "_placement",
        "_probation",
        "_pt",
        "_realigned",
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

    # The timeline's state these rules read and change (set up by StreamTimeline.__init__).
    origin: float | None
    sample_rate: int
    stats: StreamStats
    sync_offered: bool
    _pt: int
    _te_pt: int
    _num: int
    _den: int
    _jump: float
    _ssrc: int
    _seq: SequenceTracker
    _anchored: bool
    _anchor_pos: int
    _anchor_ts: int
    _held: tuple[float, int, bytes] | None
    _probation: Probation
    _current_seen: float | None
    _pauses: list[list[float]]
    _placement: Placement
    _offset: int
    _realigned: int
    _dtmf: TelephoneEventReceiver
    _dtmf_marks: list[DtmfMark]
    _rtcp: RtcpTracker
    _sync: tuple[int, int] | None
    _sync_candidate: tuple[int, int] | None

    def _slow(self, arrival: float, data: bytes, checking: bool, floor: int, batch: Batch) -> None:
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
        if pt != self._pt and pt != self._te_pt and pt != COMFORT_NOISE:
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
        self._realigned = NEVER
        self._sync = self._sync_candidate = None  # the old source's clock mapping is of no use
        stats.sender_packets = stats.sender_octets = None

    def _accept(
        self, arrival: float, data: bytes, header: RtpHeader, checking: bool, floor: int, batch: Batch
    ) -> None:
        """An RTP packet of the current source: count it, then place it unless it is not audio for us."""
        stats = self.stats
        stats.packets += 1
        stats.bytes += len(data)
        stats.last_packet_at = arrival
        self._current_seen = arrival
        pt = header.payload_type
        if pt != self._pt and pt != self._te_pt and pt != COMFORT_NOISE:
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
        self, arrival: float, header: RtpHeader, payload: bytes, floor: int, batch: Batch
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

    def _mark(self, event: DtmfEvent, arrival: float) -> None:
        """Keep a completed key press, placed by :meth:`_press_mark`."""
        self._dtmf_marks.append(self._press_mark(event, arrival))

    def _press_mark(self, event: DtmfEvent, arrival: float) -> DtmfMark:
        """A key press placed by its RTP timestamp (by arrival before the first audio packet)."""
        if self._anchored:
            pos = self._anchor_pos + self._scaled(event.start - self._anchor_ts)
        else:
            assert self.origin is not None
            pos = round((arrival - self.origin) * self.sample_rate) + self._offset
        return DtmfMark(position=pos, samples=self._scaled(event.duration), event=event)

    def _scaled(self, ts_delta: int) -> int:
        """A timestamp difference (taken as signed 32-bit) in samples."""
        rel = ((ts_delta + TS_HALF) & 0xFFFFFFFF) - TS_HALF
        return rel if self._num == self._den else rel * self._num // self._den

    def _paused_at(self, arrival: float) -> bool:
        return any(arrival >= p[0] and (len(p) == 1 or arrival < p[1]) for p in self._pauses)

    def _paused_spans(self) -> list[tuple[int, int]]:
        """The spans the gap count leaves out, as timeline positions: pauses (an open one runs to the end of
        time), and completed key presses, during which a sender may send RFC 4733 events instead of audio."""
        spans = [(mark.position, mark.position + mark.samples) for mark in self._dtmf_marks]
        if not self._pauses:
            return spans
        assert self.origin is not None
        origin, rate, offset = self.origin, self.sample_rate, self._offset
        return spans + [
            (
                round((p[0] - origin) * rate) + offset,
                round((p[1] - origin) * rate) + offset if len(p) == 2 else -NEVER,
            )
            for p in self._pauses
        ]
