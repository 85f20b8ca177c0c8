"""Builders for realistic RTP traffic and audio checks shared by the media tests."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pylibsrtp

from media.codecs import Codec, codec_for
from media.g711 import decode_ulaw, encode_ulaw
from media.ports import PortPool
from media.recorder import CallRecorder, StreamSpec
from media.session import MediaSession
from media.srtp import SrtpKey, key_salt_length
from media.udp_batch import BATCH, DatagramBatch
from media.writer import AudioWriter

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


SRTP_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


class SrtpSrc:
    """The SRC's side of SDES-keyed SRTP: protects what it sends with its own master key (RFC 4568)."""

    def __init__(self, suite: str, seed: int) -> None:
        self.key = SrtpKey(suite=suite, key_salt=random.Random(seed).randbytes(key_salt_length(suite)))
        policy = pylibsrtp.Policy(
            key=self.key.key_salt,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=SRTP_PROFILES[suite],
        )
        self._session = pylibsrtp.Session(policy=policy)

    def protect(self, packets: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
        return [(arrival, self._session.protect(data)) for arrival, data in packets]

    def protect_rtcp(self, data: bytes) -> bytes:
        return self._session.protect_rtcp(data)


Packets = list[tuple[float, bytes]]


def g711(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """What a recording holds for these samples: their G.711 µ-law rendition."""
    return decode_ulaw(encode_ulaw(samples))


def simulate(
    recorder: CallRecorder,
    legs: dict[int, Packets],
    *,
    start: float,
    end: float,
    events: Sequence[tuple[float, Callable[[float], None]]] = (),
    tick: float = 0.2,
    write_every: int = 5,
    writer: AudioWriter | None = None,
    batched: bool = False,
) -> npt.NDArray[np.int16]:
    """Drive ``recorder`` as MediaSession does, on a fake clock: every ``tick`` run the events that fell due
    (each at its own time), add what each leg received since the last tick, and every ``write_every`` ticks
    mix (and write); at ``end`` (the hang-up) mix the rest. Returns every frame handed out.

    ``batched`` hands each tick's datagrams over as a socket read would, in batches of at most
    :data:`~media.udp_batch.BATCH` (``add_batch``), instead of as a list (``add``)."""
    chunks: list[npt.NDArray[np.int16]] = []
    queue = sorted(events, key=lambda event: event[0])
    cursors = dict.fromkeys(legs, 0)
    k = 0
    while True:
        k += 1
        now = min(start + k * tick, end)
        while queue and queue[0][0] <= now:
            at, action = queue.pop(0)
            action(at)
        for index, packets in legs.items():
            first = last = cursors[index]
            while last < len(packets) and packets[last][0] < now:
                last += 1
            if not batched:
                recorder.add(index, packets[first:last])
            for at in range(first, last, BATCH) if batched else ():
                recorder.add_batch(index, DatagramBatch.of(packets[at : min(at + BATCH, last)]))
            cursors[index] = last
        if now >= end:
            frames = recorder.mix_final(end)
        elif k % write_every == 0:
            frames = recorder.mix(now)
        else:
            continue
        if frames is not None:
            chunks.append(frames)
            if writer is not None:
                writer.write(frames)
        if now >= end:
            break
    if writer is not None:
        writer.close()
    return np.concatenate(chunks) if chunks else np.zeros((0, 1), dtype=np.int16)


async def open_loopback_session(
    streams: Sequence[StreamSpec], path: Path, **options: Any
) -> tuple[MediaSession, list[int]]:
    """A two-channel :class:`MediaSession` on free loopback ports, one a stream (a random slice of the port
    space keeps parallel test runs apart); ``options`` go to :meth:`MediaSession.open`."""
    first = random.randrange(20000, 60000, 2)
    pool = PortPool(first, first + 199)
    for _ in range(20):
        ports = [pool.allocate() for _ in streams]
        try:
            return await MediaSession.open("127.0.0.1", ports, list(streams), 2, path, **options), ports
        except OSError:
            for port in ports:
                pool.release(port)  # taken by someone else: the next allocation is another port
    raise AssertionError("no free ports for a media session")
