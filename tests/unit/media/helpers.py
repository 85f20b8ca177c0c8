"""Builders for realistic RTP traffic and audio checks shared by the media tests."""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from media.codecs import Codec, codec_for
from media.g711 import encode_ulaw

SAMPLE_RATE = 8000
PTIME = 0.02
SAMPLES = 160  # one 20 ms G.711 packet
T0 = 1_767_225_600.0  # a wall-clock origin (2026-01-01T00:00:00Z)


def pcmu() -> Codec:
    codec = codec_for("PCMU")
    assert codec is not None
    return codec


def tone(freq: float, count: int, *, amplitude: float = 8000.0, phase: float = 0.5) -> npt.NDArray[np.int16]:
    t = np.arange(count) / SAMPLE_RATE
    return np.round(amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.int16)


def rtp(
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    *,
    pt: int = 0,
    marker: bool = False,
    csrcs: tuple[int, ...] = (),
    extension: tuple[int, bytes] | None = None,
    padding: int = 0,
) -> bytes:
    """An RTP packet as a real sender would build it (RFC 3550 §5.1, §5.3.1 extension, P bit padding)."""
    b0 = 0x80 | len(csrcs)
    if extension is not None:
        b0 |= 0x10
    if padding:
        b0 |= 0x20
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        profile, body = extension
        assert len(body) % 4 == 0
        out += struct.pack("!HH", profile, len(body) // 4) + body
    out += payload
    if padding:
        out += bytes(padding - 1) + bytes([padding])
    return out


def pcmu_stream(
    samples: npt.NDArray[np.int16],
    *,
    ssrc: int,
    seq0: int,
    ts0: int,
    start: float,
    pt: int = 0,
) -> list[tuple[float, bytes]]:
    """``(arrival, datagram)`` pairs of a 20 ms PCMU stream arriving exactly on time; marker on the first."""
    payload = encode_ulaw(samples)
    return [
        (
            start + i * PTIME,
            rtp(
                seq0 + i,
                ts0 + i * SAMPLES,
                ssrc,
                payload[i * SAMPLES : (i + 1) * SAMPLES],
                pt=pt,
                marker=i == 0,
            ),
        )
        for i in range(len(payload) // SAMPLES)
    ]


def dominant_frequency(signal: npt.NDArray[np.int16], sample_rate: int = SAMPLE_RATE) -> float:
    x = signal.astype(np.float64) * np.hanning(len(signal))
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(signal), 1 / sample_rate)[int(np.argmax(spectrum))])


def rtcp_receiver_report(ssrc: int) -> bytes:
    """An RTCP RR without report blocks and an SDES CNAME: a minimal compound packet (RFC 3550 §6.1)."""
    rr = struct.pack("!BBHI", 0x80, 201, 1, ssrc)
    cname = b"hangtar@192.0.2.10"
    item = bytes([1, len(cname)]) + cname
    chunk = struct.pack("!I", ssrc) + item + b"\x00" * (4 - (len(item) % 4))
    sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    return rr + sdes


def telephone_event(event: int, *, end: bool, volume: int = 10, duration: int = 800) -> bytes:
    """An RFC 4733 §2.3 named-event payload."""
    return struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)
