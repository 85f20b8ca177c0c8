"""One RTP stream a generated call sends (RFC 3550 §5.1), and what it sent.

Each leg sends from a UDP socket, its own or one shared with other legs of the process (the SRS latches each
stream to its first source address, whatever the others use), and holds a pre-encoded second of its tone and
its header fields. Building packet ``n`` is one ``struct.pack`` and a concatenation; the pacer's fast lane
builds the packets of unimpaired legs from the same fields with array operations instead. A leg that changes
SSRC mid-call starts the new source with a new random SSRC, sequence and timestamp base, as a transfer or a
re-anchored media path does. RTCP sender reports (RFC 3550 §6.4.1) are built with aiortc.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket

from .impairments import LegImpairer
from .profile import PTIME
from .tones import FRAMES as _FRAMES

__all__ = ["RTCP_INTERVAL", "LegResult", "RtpLeg", "ntp_time"]

RTCP_INTERVAL = 5.0  # seconds between sender reports of one stream
_HEADER = struct.Struct("!BBHII")
_pack = _HEADER.pack
_VERSION = 0x80  # V=2, no padding, no extension, no CSRC
_MARKER = 0x80
_CLOCK_RATE = 8000  # RTP clock of G.711 and G.722 (RFC 3551 §4.5.2)
_TICKS = round(_CLOCK_RATE * PTIME)  # RTP clock ticks per packet
_NTP_EPOCH = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
_WALL_MINUS_MONOTONIC = time.time() - time.monotonic()  # read once: wall time of a monotonic instant


def ntp_time(monotonic: float) -> int:
    """The 64-bit NTP timestamp (RFC 3550 §4) of a ``time.monotonic()`` instant."""
    return round((monotonic + _WALL_MINUS_MONOTONIC + _NTP_EPOCH) * (1 << 32))


@dataclass(frozen=True, slots=True, kw_only=True)
class LegResult:
    """What one leg sent; times are monotonic seconds of the generator's host."""

    label: str
    frequency: int
    source: str  # "host:port" the leg sent from
    destination: str  # "host:port"
    ssrcs: tuple[int, ...]
    packets: int  # packets the leg had to carry (hold / ptime)
    sent: int  # datagrams sent, duplicates included
    dropped: int
    duplicated: int
    reordered: int
    longest_loss_run: int
    send_errors: int
    rtcp_sent: int
    first_sent_at: float | None
    last_sent_at: float | None
    delay_ms: float
    jitter_ms: float

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ssrcs"] = list(self.ssrcs)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LegResult:
        return cls(**{**data, "ssrcs": tuple(data["ssrcs"])})


class RtpLeg:
    __slots__ = (
        "_frames",
        "_next_report",
        "_owns_socket",
        "_pt",
        "_report",
        "_rtcp_octets",
        "_rtcp_packets",
        "_source_address",
        "_sources",
        "change_at",
        "closed",
        "delay_ms",
        "destination",
        "first_sent_at",
        "frequency",
        "held",
        "impairer",
        "in_flight",
        "jitter_ms",
        "label",
        "last_sent_at",
        "next_n",
        "next_rtcp",
        "rtcp_destination",
        "rtcp_sent",
        "send_errors",
        "sent",
        "sock",
        "start",
        "total",
    )

    def __init__(
        self,
        *,
        label: str,
        frequency: int,
        frames: tuple[bytes, ...],
        payload_type: int,
        total: int,
        change_at: int | None,
        impairer: LegImpairer | None,
        rng: random.Random,
        local_host: str,
        sock: socket.socket | None = None,
        delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
    ) -> None:
        """``sock``: a socket shared with other legs (unconnected, non-blocking); by default the leg opens its
        own on ``local_host``."""
        if total < 2 or (change_at is not None and not 2 <= change_at <= total - 2):
            raise ValueError("a leg needs two packets, and an SSRC change inside it")
        self.label = label
        self.frequency = frequency
        self._frames = frames
        self._pt = payload_type
        if len(frames) != _FRAMES:
            raise ValueError(f"a leg needs {_FRAMES} frames (one second), not {len(frames)}")
        self.total = total
        self.change_at = change_at
        self.impairer = impairer
        self.delay_ms, self.jitter_ms = delay_ms, jitter_ms
        # (ssrc, first sequence number, first timestamp) of each source, the second from change_at on
        self._sources = [(rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32))]
        if change_at is not None:
            self._sources.append((rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)))
        self._owns_socket = sock is None
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((local_host, 0))
        self.sock = sock
        self._source_address = f"{local_host}:{sock.getsockname()[1]}"
        self.destination: tuple[str, int] | None = None
        self.rtcp_destination: tuple[str, int] | None = None
        self.start = 0.0  # nominal send time of packet 0 (monotonic)
        self.next_n = 0  # next packet to plan
        self.in_flight = 0  # packets planned but waiting in the pacer's queue
        self.held: bytes | None = None  # a packet to send after its successor
        self.next_rtcp = 0.0
        self._next_report = 0.0
        self._report: bytes | None = None  # a sender report waiting out the leg's delay
        self.sent = self.send_errors = self.rtcp_sent = 0
        self._rtcp_packets = self._rtcp_octets = 0
        self.first_sent_at: float | None = None
        self.last_sent_at: float | None = None
        self.closed = False

    @property
    def local_port(self) -> int:
        return int(self._source_address.rpartition(":")[2])

    @property
    def sources(self) -> tuple[tuple[int, int, int], ...]:
        """(SSRC, first sequence number, first RTP timestamp) of each source; the second from ``change_at``."""
        return tuple(self._sources)

    @property
    def payload_type(self) -> int:
        return self._pt

    @property
    def frames(self) -> tuple[bytes, ...]:
        return self._frames

    def absorb(
        self,
        *,
        next_n: int,
        sent: int,
        send_errors: int,
        first_sent_at: float | None,
        last_sent_at: float | None,
        rtcp_counts: tuple[int, int],
    ) -> None:
        """Take over the counters of a leg sent by the pacer's fast lane (which keeps them in arrays)."""
        self.next_n, self.sent, self.send_errors = next_n, sent, send_errors
        self.first_sent_at, self.last_sent_at = first_sent_at, last_sent_at
        self._rtcp_packets, self._rtcp_octets = rtcp_counts

    def begin(self, destination: tuple[str, int], start: float) -> None:
        self.destination = destination
        self.rtcp_destination = (destination[0], destination[1] + 1)  # RFC 3550 §11: RTCP on the next port
        self.start = start
        self.next_rtcp = start + RTCP_INTERVAL / 2  # RFC 3550 §6.2: the first report after half the interval

    def protected(self) -> set[int]:
        """Packets the impairments must leave alone (see :mod:`load_tests.loadgen.impairments`)."""
        keep = {0, 1, self.total - 1}
        if self.change_at is not None:
            keep |= {self.change_at - 1, self.change_at, self.change_at + 1}
        return keep

    def packet(self, n: int) -> bytes:
        change = self.change_at
        if change is None or n < change:
            ssrc, seq0, ts0 = self._sources[0]
            k = n
        else:
            ssrc, seq0, ts0 = self._sources[1]
            k = n - change
            if k == 0:
                self._rtcp_packets = self._rtcp_octets = 0  # RFC 3550 §6.4.1: a new source counts from zero
        marker = _MARKER if k == 0 else 0  # RFC 3551 §4.1: first packet of a talkspurt
        header = _pack(
            _VERSION, marker | self._pt, (seq0 + k) & 0xFFFF, (ts0 + k * _TICKS) & 0xFFFFFFFF, ssrc
        )
        return header + self._frames[n % _FRAMES]

    def send(self, data: bytes, now: float) -> bool:
        """Send one datagram now; whether it went out."""
        if self.closed or self.destination is None:
            return False
        try:
            self.sock.sendto(data, self.destination)
        except OSError:
            self.send_errors += 1
            return False
        self.sent += 1
        self._rtcp_packets += 1
        self._rtcp_octets += len(data) - 12
        if self.first_sent_at is None:
            self.first_sent_at = now
        self.last_sent_at = now
        return True

    def rtcp(self, now: float) -> None:
        """Sender report time (the pacer calls this once ``now`` reaches :attr:`next_rtcp`): build a report, or
        send one that waited out the leg's one-way delay (a delayed path delays its RTCP too)."""
        if self._report is not None:
            self._send_rtcp(self._report)
            self._report = None
            self.next_rtcp = self._next_report
            return
        self._next_report = now + RTCP_INTERVAL
        self.next_rtcp = self._next_report
        report = self._sender_report(now)
        if report is None:
            return
        if self.delay_ms:
            self._report = report
            self.next_rtcp = now + self.delay_ms / 1000
        else:
            self._send_rtcp(report)

    def _sender_report(self, now: float) -> bytes | None:
        """RFC 3550 §6.4.1: the current source's RTP timestamp for the instant ``now`` (its sampling clock runs
        from the nominal time of its first packet), with the NTP time of the same instant."""
        if self.next_n == 0:
            return None
        change = self.change_at
        if change is not None and self.next_n > change:
            (ssrc, _, ts0), epoch_start = self._sources[1], self.start + change * PTIME
        else:
            (ssrc, _, ts0), epoch_start = self._sources[0], self.start
        report = RtcpSrPacket(
            ssrc=ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp_time(now),
                rtp_timestamp=(ts0 + round((now - epoch_start) * _CLOCK_RATE)) & 0xFFFFFFFF,
                packet_count=self._rtcp_packets & 0xFFFFFFFF,
                octet_count=self._rtcp_octets & 0xFFFFFFFF,
            ),
        )
        return bytes(report)

    def _send_rtcp(self, report: bytes) -> None:
        if self.closed or self.rtcp_destination is None:
            return
        try:
            self.sock.sendto(report, self.rtcp_destination)
        except OSError:
            self.send_errors += 1
            return
        self.rtcp_sent += 1

    def close(self) -> None:
        """Stop sending (the call is over) and release its own socket; queued packets are discarded."""
        self.closed = True
        if self._owns_socket:
            self.sock.close()

    def result(self) -> LegResult:
        impairer = self.impairer
        host, port = self.destination or ("", 0)
        return LegResult(
            label=self.label,
            frequency=self.frequency,
            source=self._source_address,
            destination=f"{host}:{port}",
            ssrcs=tuple(source[0] for source in self._sources),
            packets=self.total,
            sent=self.sent,
            dropped=impairer.dropped if impairer else 0,
            duplicated=impairer.duplicated if impairer else 0,
            reordered=impairer.reordered if impairer else 0,
            longest_loss_run=impairer.longest_loss_run if impairer else 0,
            send_errors=self.send_errors,
            rtcp_sent=self.rtcp_sent,
            first_sent_at=self.first_sent_at,
            last_sent_at=self.last_sent_at,
            delay_ms=self.delay_ms,
            jitter_ms=self.jitter_ms,
        )
