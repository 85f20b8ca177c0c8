"""RTCP compound packets from the SRC: sender reports, reception reports, SDES, BYE, APP (RFC 3550 §6; sans-I/O).

The sub-packets of a compound datagram are framed here (header, length, padding; RFC 3550 §6.4.1, A.2) and
each is decoded with aiortc's RTCP classes. They are imported with this module, not on the first RTCP
datagram: importing aiortc takes a few hundred milliseconds, which mid-call would stall the event loop and
make the packets of every call late.

Nothing here raises on peer input: a datagram that is cut short, has a bad version or length, or a
sub-packet aiortc rejects counts as malformed, and the sub-packets before the fault are kept (an SR followed
by a truncated SDES still carries its clock mapping).

:class:`RtcpTracker` keeps per stream what the rest of the pipeline reads: the latest sender report of each
SSRC (its NTP ↔ RTP timestamp mapping and the sender's packet and octet counts) and the latest reception
report block about each source, and counts what arrived in :class:`media.stats.StreamStats`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeVar

from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
)

from media.stats import StreamStats

__all__ = [
    "NTP_UNIX_OFFSET",
    "ReceptionReport",
    "RtcpContent",
    "RtcpTracker",
    "SenderReport",
    "parse_rtcp",
]

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from the NTP epoch (1900) to the Unix epoch (RFC 5905 §6)

_HEADER = struct.Struct("!BBH")
_SR, _RR, _SDES, _BYE, _APP = 200, 201, 202, 203, 204  # RFC 3550 §12.1
_REPORT_BLOCK = 24  # octets per reception report block (RFC 3550 §6.4.1)
_SENDER_INFO = 20
_CNAME = 1  # SDES item type (RFC 3550 §6.5.1)
_KEEP_SOURCES = 16  # SSRCs remembered per stream, for sender reports and report blocks alike


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderReport:
    """One SR's sender info (RFC 3550 §6.4.1): at NTP time ``ntp`` (64-bit fixed point, seconds since 1900
    in the upper 32 bits) the sender's RTP clock read ``rtp_timestamp``; it had sent ``packets``/``octets``."""

    ssrc: int
    ntp: int
    rtp_timestamp: int
    packets: int
    octets: int
    arrival: float

    @property
    def unix_time(self) -> float:
        """The NTP timestamp as Unix time (the SRC's clock, not ours)."""
        return self.ntp / 2**32 - NTP_UNIX_OFFSET


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceptionReport:
    """One report block (RFC 3550 §6.4.1): ``reporter`` says how it receives ``source``. ``jitter`` is in
    RTP timestamp units of ``source``; ``fraction_lost`` is the 8-bit fixed-point fraction over 256."""

    reporter: int
    source: int
    fraction_lost: float
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int
    delay_since_last_sr: int
    arrival: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcpContent:
    """What one datagram held; ``malformed`` when any part of it was not well-formed RTCP."""

    sender_reports: tuple[SenderReport, ...] = ()
    reception_reports: tuple[ReceptionReport, ...] = ()
    receiver_report_packets: int = 0
    cnames: tuple[tuple[int, str], ...] = ()
    byes: tuple[int, ...] = ()
    apps: int = 0
    other: int = 0
    malformed: bool = False


def parse_rtcp(data: bytes, arrival: float) -> RtcpContent:
    """Frame a compound RTCP datagram and decode its SR, RR, SDES and BYE packets; count APP and the rest."""
    srs: list[SenderReport] = []
    blocks: list[ReceptionReport] = []
    cnames: list[tuple[int, str]] = []
    byes: list[int] = []
    rr_packets = apps = other = 0
    size = len(data)
    malformed = size == 0
    pos = 0
    while pos < size:
        if pos + _HEADER.size > size:
            malformed = True
            break
        first, packet_type, length = _HEADER.unpack_from(data, pos)
        end = pos + 4 * (length + 1)
        if first >> 6 != 2 or end > size:
            malformed = True
            break
        packet = _trim_extension(data[pos:end], first, packet_type)
        pos = end
        if packet_type == _APP:  # RFC 3550 §6.7: SSRC and a 4-character name at least; nothing we use
            apps += 1
            malformed |= length < 2
            continue
        if packet_type not in (_SR, _RR, _SDES, _BYE):
            other += 1  # feedback (RFC 4585), XR (RFC 3611), ...: counted, not used
            continue
        try:
            decoded = RtcpPacket.parse(packet)
        except (ValueError, struct.error, IndexError):
            malformed = True
            continue
        for item in decoded:
            if isinstance(item, RtcpSrPacket):
                info = item.sender_info
                srs.append(
                    SenderReport(
                        ssrc=item.ssrc,
                        ntp=info.ntp_timestamp,
                        rtp_timestamp=info.rtp_timestamp,
                        packets=info.packet_count,
                        octets=info.octet_count,
                        arrival=arrival,
                    )
                )
                blocks.extend(_blocks(item.ssrc, item.reports, arrival))
            elif isinstance(item, RtcpRrPacket):
                rr_packets += 1
                blocks.extend(_blocks(item.ssrc, item.reports, arrival))
            elif isinstance(item, RtcpSdesPacket):
                for chunk in item.chunks:
                    for kind, value in chunk.items:
                        if kind == _CNAME:
                            cnames.append((chunk.ssrc, value.decode("utf-8", "replace")))
            elif isinstance(item, RtcpByePacket):
                byes.extend(item.sources)
    return RtcpContent(
        sender_reports=tuple(srs),
        reception_reports=tuple(blocks),
        receiver_report_packets=rr_packets,
        cnames=tuple(cnames),
        byes=tuple(byes),
        apps=apps,
        other=other,
        malformed=malformed,
    )


def _trim_extension(packet: bytes, first: int, packet_type: int) -> bytes:
    """An SR or RR without its profile-specific extension (RFC 3550 §6.4.1), which aiortc does not accept."""
    if packet_type not in (_SR, _RR) or first & 0x20:
        return packet
    fixed = 4 + 4 + (_SENDER_INFO if packet_type == _SR else 0) + _REPORT_BLOCK * (first & 0x1F)
    if len(packet) <= fixed:
        return packet
    return _HEADER.pack(first, packet_type, fixed // 4 - 1) + packet[4:fixed]


def _blocks(reporter: int, reports: list[RtcpReceiverInfo], arrival: float) -> list[ReceptionReport]:
    return [
        ReceptionReport(
            reporter=reporter,
            source=block.ssrc,
            fraction_lost=block.fraction_lost / 256,
            cumulative_lost=block.packets_lost,
            highest_sequence=block.highest_sequence,
            jitter=block.jitter,
            last_sr=block.lsr,
            delay_since_last_sr=block.dlsr,
            arrival=arrival,
        )
        for block in reports
    ]


class RtcpTracker:
    """The RTCP of one received stream: the latest SR per SSRC and report block per source, and counters.

    ``clock_rate`` converts reported interarrival jitter (RTP timestamp units) to milliseconds.
    """

    __slots__ = ("_clock_rate", "_stats", "reception_reports", "sender_reports")

    def __init__(self, stats: StreamStats, clock_rate: int) -> None:
        self._stats = stats
        self._clock_rate = clock_rate
        self.sender_reports: dict[int, SenderReport] = {}
        self.reception_reports: dict[int, ReceptionReport] = {}

    def feed(self, arrival: float, data: bytes) -> tuple[SenderReport, ...]:
        """Take one RTCP datagram; returns the sender reports it carried."""
        content = parse_rtcp(data, arrival)
        stats = self._stats
        stats.rtcp_sender_reports += len(content.sender_reports)
        stats.rtcp_receiver_reports += content.receiver_report_packets
        stats.rtcp_byes += len(content.byes)
        stats.rtcp_malformed += content.malformed
        for report in content.sender_reports:
            _remember(self.sender_reports, report.ssrc, report)
        for block in content.reception_reports:
            _remember(self.reception_reports, block.source, block)
            stats.reported_fraction_lost = block.fraction_lost
            stats.reported_lost = block.cumulative_lost
            stats.reported_jitter_ms = block.jitter * 1000 / self._clock_rate
        if content.cnames:
            stats.cname = content.cnames[-1][1][:255]
        return content.sender_reports


_T = TypeVar("_T")


def _remember(table: dict[int, _T], key: int, value: _T) -> None:
    table.pop(key, None)
    table[key] = value
    if len(table) > _KEEP_SOURCES:
        del table[next(iter(table))]
