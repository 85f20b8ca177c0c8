"""RTP fixed header parsing (RFC 3550 §5.1) and RTP/RTCP demultiplexing (RFC 5761 §4).

The parser validates what a receiver must check before trusting offsets: version 2, and that the CSRC list,
the header extension (§5.3.1) and the padding count (§5.1, P bit) fit inside the datagram. Anything else is
garbage and yields ``None``; the parser never raises on peer input.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["HEADER", "RtpHeader", "build_rtp", "is_rtcp", "parse_rtp"]

#: First 12 octets: V/P/X/CC, M/PT, sequence number, timestamp, SSRC (RFC 3550 §5.1).
HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")

_RTCP_FIRST = 192  # RFC 5761 §4: second octets 192-223 are RTCP packet types (RTP PTs 64-95 are excluded)
_RTCP_LAST = 223


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpHeader:
    """The fields of one RTP packet the media pipeline uses; the payload is ``data[offset:offset+length]``."""

    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload_offset: int
    payload_length: int


def parse_rtp(data: bytes) -> RtpHeader | None:
    """Parse an RTP header; ``None`` for anything that is not a well-formed RTP version 2 packet.

    RTCP is not rejected here: demultiplex with :func:`is_rtcp` first.
    """
    size = len(data)
    if size < HEADER.size:
        return None
    b0, b1, sequence, timestamp, ssrc = HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        return None
    offset = HEADER.size + 4 * (b0 & 0x0F)  # CSRC list, 0-15 entries
    if offset > size:
        return None
    if b0 & 0x10:  # header extension: 16-bit profile, 16-bit length in 32-bit words (§5.3.1)
        if offset + _EXTENSION.size > size:
            return None
        _profile, words = _EXTENSION.unpack_from(data, offset)
        offset += _EXTENSION.size + 4 * words
        if offset > size:
            return None
    end = size
    if b0 & 0x20:  # padding: the last octet counts the padding octets, itself included (§5.1)
        padding = data[-1]
        if padding == 0 or offset + padding > size:
            return None
        end -= padding
    return RtpHeader(
        payload_type=b1 & 0x7F,
        marker=bool(b1 & 0x80),
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload_offset=offset,
        payload_length=end - offset,
    )


def is_rtcp(data: bytes) -> bool:
    """True for a datagram that is RTCP rather than RTP on a shared port (RFC 5761 §4)."""
    return len(data) >= 8 and data[0] >> 6 == 2 and _RTCP_FIRST <= data[1] <= _RTCP_LAST


def build_rtp(
    *, payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False
) -> bytes:
    """A minimal RTP packet (no CSRC, extension or padding), for senders such as load generators."""
    b1 = (0x80 if marker else 0) | (payload_type & 0x7F)
    return HEADER.pack(0x80, b1, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF) + payload
