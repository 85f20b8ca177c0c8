"""A tiny libpcap file writer and reader for UDP datagrams, enough for SIPp's ``play_pcap_audio``.

The classic pcap format (https://www.tcpdump.org/manpages/pcap-savefile.5.html): a 24-octet global header
(magic ``0xa1b2c3d4``, version 2.4, snap length, link type), then per packet a 16-octet record header (seconds,
microseconds, captured and original length) and the frame. Frames here are Ethernet II (link type 1, one of
the two SIPp reads) carrying IPv4 (RFC 791, header checksum filled in) and UDP (RFC 768, checksum over the
pseudo-header filled in), so Wireshark and tcpdump read the file as a real capture.

What SIPp does with it (``prepare_pcap.c`` and ``send_packets.c``): it keeps each UDP datagram and the time
stamp of its record, sends the first at once and each next one after the time-stamp gap to the one before,
and rewrites the ports: the lowest destination port in the file (its *base*) becomes the port the answer gave
for the first ``m=audio`` line, and a datagram to ``base + n`` goes to that port ``+ n``; the source port
becomes SIPp's ``[media_port]`` ``+ n``. The addresses in the file do not matter.

:func:`read_pcap` reads back what :func:`write_pcap` writes (either byte order, Ethernet + IPv4 + UDP only),
so a test can replay a leg from the same kind of file with :func:`tests.peers.opus_rtp.send_paced`.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PcapError", "UdpDatagram", "read_pcap", "write_pcap"]

MAGIC = 0xA1B2C3D4  # microsecond time stamps
VERSION = (2, 4)
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535
ETHERTYPE_IPV4 = 0x0800
IPPROTO_UDP = 17
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_ETHERNET = struct.Struct("!6s6sH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_SOURCE_MAC = bytes.fromhex("020000000001")  # locally administered addresses
_DESTINATION_MAC = bytes.fromhex("020000000002")
MAX_PAYLOAD = 1500 - _IPV4.size - _UDP.size  # one Ethernet frame (SIPp takes up to 1500 octets of UDP)


class PcapError(ValueError):
    """Not a pcap file this module writes, or a datagram it cannot hold."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UdpDatagram:
    """One UDP datagram, ``at`` seconds after the capture's first."""

    at: float
    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes

    def __post_init__(self) -> None:
        if self.at < 0:
            raise PcapError("time stamps start at 0")
        if len(self.payload) > MAX_PAYLOAD:
            raise PcapError(f"a {len(self.payload)}-octet payload does not fit one Ethernet frame")
        for _, port in (self.source, self.destination):
            if not 0 <= port <= 0xFFFF:
                raise PcapError(f"port {port} out of range")


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's-complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(datagram: UdpDatagram, identification: int) -> bytes:
    source = ipaddress.IPv4Address(datagram.source[0]).packed
    destination = ipaddress.IPv4Address(datagram.destination[0]).packed
    udp_length = _UDP.size + len(datagram.payload)
    pseudo = source + destination + struct.pack("!BBH", 0, IPPROTO_UDP, udp_length)
    bare = _UDP.pack(datagram.source[1], datagram.destination[1], udp_length, 0) + datagram.payload
    udp_sum = _checksum(pseudo + bare) or 0xFFFF  # RFC 768: a computed zero is sent as all ones
    udp = _UDP.pack(datagram.source[1], datagram.destination[1], udp_length, udp_sum) + datagram.payload
    fields = [0x45, 0, _IPV4.size + udp_length, identification & 0xFFFF, 0x4000, 64, IPPROTO_UDP, 0]
    header = _IPV4.pack(*fields, source, destination)
    fields[-1] = _checksum(header)
    ip = _IPV4.pack(*fields, source, destination)
    return _ETHERNET.pack(_DESTINATION_MAC, _SOURCE_MAC, ETHERTYPE_IPV4) + ip + udp


def write_pcap(path: Path, datagrams: Iterable[UdpDatagram], *, epoch: float = 1_700_000_000.0) -> int:
    """Write ``datagrams`` (in time order) as a pcap file; the first is stamped ``epoch``. Returns the count."""
    count = 0
    previous = 0.0
    with path.open("wb") as out:
        out.write(_GLOBAL.pack(MAGIC, *VERSION, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        for datagram in datagrams:
            if datagram.at < previous:
                raise PcapError("datagrams must be in time order (SIPp sends each after the one before)")
            previous = datagram.at
            frame = _frame(datagram, count)
            micros = round((epoch + datagram.at) * 1_000_000)
            seconds, fraction = divmod(micros, 1_000_000)
            out.write(_RECORD.pack(seconds, fraction, len(frame), len(frame)))
            out.write(frame)
            count += 1
    return count


def read_pcap(path: Path) -> list[UdpDatagram]:
    """The UDP datagrams of a pcap file (Ethernet, IPv4), times relative to the first record."""
    data = path.read_bytes()
    if len(data) < _GLOBAL.size:
        raise PcapError("shorter than a pcap header")
    magic_le = struct.unpack_from("<I", data)[0]
    order = "<" if magic_le == MAGIC else ">" if struct.unpack_from(">I", data)[0] == MAGIC else ""
    if not order:
        raise PcapError(f"magic {magic_le:#010x} is not a microsecond pcap file's")
    linktype = struct.unpack_from(order + "I", data, 20)[0]
    if linktype != LINKTYPE_ETHERNET:
        raise PcapError(f"link type {linktype} is not Ethernet")
    record = struct.Struct(order + "IIII")
    offset = _GLOBAL.size
    first: int | None = None
    datagrams = []
    while offset < len(data):
        if offset + record.size > len(data):
            raise PcapError("truncated record header")
        seconds, micros, captured, length = record.unpack_from(data, offset)
        offset += record.size
        frame = data[offset : offset + captured]
        offset += captured
        if len(frame) != captured or captured != length:
            raise PcapError("truncated packet")
        stamp = seconds * 1_000_000 + micros
        first = stamp if first is None else first
        datagram = _parse_frame(frame, (stamp - first) / 1_000_000)
        if datagram is not None:
            datagrams.append(datagram)
    return datagrams


def _parse_frame(frame: bytes, at: float) -> UdpDatagram | None:
    _, _, ethertype = _ETHERNET.unpack_from(frame)
    ip = frame[_ETHERNET.size :]
    if ethertype != ETHERTYPE_IPV4 or len(ip) < _IPV4.size or ip[0] >> 4 != 4 or ip[9] != IPPROTO_UDP:
        return None
    header_length = (ip[0] & 0x0F) * 4
    source, destination = ip[12:16], ip[16:20]
    sport, dport, length, _ = _UDP.unpack_from(ip, header_length)
    payload = ip[header_length + _UDP.size : header_length + length]
    return UdpDatagram(
        at=at,
        source=(str(ipaddress.IPv4Address(source)), sport),
        destination=(str(ipaddress.IPv4Address(destination)), dport),
        payload=payload,
    )
