"""Opus RTP legs for tests (RFC 7587), with RFC 4733 key presses, as packets to replay or write to a pcap.

Audio is encoded with libopus through PyAV, the reference encoder (not the product's media package): 20 ms
frames, one per packet, on the 48000 Hz RTP clock RFC 7587 §4.1 fixes whatever the audio bandwidth (960
ticks a packet), in mono or stereo (§3.4: the ``/2`` of ``a=rtpmap:111 opus/48000/2`` is always there; what
the sender sends is its choice, announced with ``sprop-stereo``). A leg is a list of :class:`TimedPacket`:
when to send it (seconds from the leg's first packet) and the whole RTP packet.

A key press is sent the way RFC 4733 §2.5.1 describes and SIP phones do: every 20 ms a telephone-event packet
carrying the event's start timestamp and the duration so far, the first with the marker bit, the last with
the E bit, sent three times (§2.5.1.4); the audio packets that fall inside the event are not sent (the sender
plays no tone into the audio for it), and audio resumes after it on the same clock and sequence. The event
clock is the audio's, 48000 Hz (§2.1: telephone-event/48000 beside opus/48000).

:func:`send_paced` replays a leg in real time from a socket; :func:`datagrams` turns it into
:class:`tests.peers.pcap_writer.UdpDatagram` s for :func:`tests.peers.pcap_writer.write_pcap` (SIPp's
``play_pcap_audio``).
"""

from __future__ import annotations

import math
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt

from tests.peers.pcap_writer import UdpDatagram

__all__ = [
    "CLOCK_RATE",
    "DTMF_FREQUENCIES",
    "FRAME_SECONDS",
    "OPUS_PT",
    "TELEPHONE_EVENT_PT",
    "KeyPress",
    "OpusLeg",
    "SendResult",
    "TimedPacket",
    "datagrams",
    "encode_opus",
    "opus_leg",
    "send_paced",
    "tone",
]

CLOCK_RATE = 48000  # RFC 7587 §4.1
FRAME_SECONDS = 0.020
FRAME_TICKS = 960
OPUS_PT = 111  # dynamic payload types, as SBCs and WebRTC stacks number them
TELEPHONE_EVENT_PT = 101
EVENT_VOLUME = 10  # RFC 4733 §2.3.4: -10 dBm0
END_REPEATS = 3  # RFC 4733 §2.5.1.4
RTP_VERSION = 2
# RFC 4733 §3.2 event codes; the row and column frequencies of each DTMF digit (ITU-T Q.23).
EVENT_CODES = {digit: code for code, digit in enumerate("0123456789*#ABCD")}
_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
DTMF_FREQUENCIES: dict[str, tuple[float, float]] = {
    key: (_ROWS[row], _COLUMNS[column]) for row, keys in enumerate(_KEYPAD) for column, key in enumerate(keys)
}

Int16Array = npt.NDArray[np.int16]


def tone(frequency: float, seconds: float, *, amplitude: float = 0.3, rate: int = CLOCK_RATE) -> Int16Array:
    """A phase-continuous sine tone, int16 mono."""
    t = np.arange(round(seconds * rate)) / rate
    return np.round(np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype(np.int16)


def encode_opus(
    samples: npt.ArrayLike, *, channels: int = 1, bitrate: int = 32000, application: str = "voip"
) -> list[bytes]:
    """One Opus payload per 20 ms frame of 48 kHz ``samples`` (mono: shape (n,); stereo: the mono signal in
    both channels, or shape (n, 2)); the last frame is padded with silence."""
    if channels not in (1, 2):
        raise ValueError("Opus RTP streams are mono or stereo")
    audio = np.asarray(samples, dtype=np.int16)
    if audio.ndim == 1:
        audio = np.repeat(audio[:, None], channels, axis=1)
    if audio.shape[1] != channels:
        raise ValueError(f"samples have {audio.shape[1]} channels, not {channels}")
    frames = max(1, -(-len(audio) // FRAME_TICKS))
    padded = np.zeros((frames * FRAME_TICKS, channels), dtype=np.int16)
    padded[: len(audio)] = audio
    context = av.CodecContext.create("libopus", "w")
    context.sample_rate = CLOCK_RATE
    context.layout = "stereo" if channels == 2 else "mono"
    context.format = "s16"
    context.bit_rate = bitrate
    context.options = {"application": application, "frame_duration": "20"}
    layout = context.layout.name
    payloads: list[bytes] = []
    for index in range(frames):
        block = padded[index * FRAME_TICKS : (index + 1) * FRAME_TICKS]
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = CLOCK_RATE
        frame.pts = index * FRAME_TICKS
        payloads += [bytes(packet) for packet in context.encode(frame)]
    payloads += [bytes(packet) for packet in context.encode(None)]
    # The encoder's look-ahead leaves its last packet to the flush: one payload per frame of input.
    return payloads[:frames]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPress:
    """A key pressed ``at`` seconds after the leg's first packet, held ``duration`` seconds."""

    at: float
    digit: str
    duration: float = 0.16

    def __post_init__(self) -> None:
        if self.digit not in EVENT_CODES:
            raise ValueError(f"{self.digit!r} is not a DTMF key")
        if self.at < 0 or self.duration < FRAME_SECONDS:
            raise ValueError("a press starts at or after 0 and lasts at least one packet")


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedPacket:
    at: float  # seconds after the leg's first packet
    data: bytes  # the whole RTP packet
    event: bool = False  # a telephone-event packet


@dataclass(frozen=True, slots=True, kw_only=True)
class OpusLeg:
    """One leg as sent: its packets, and where each key press landed (``press_ticks``: RTP timestamp of
    each press, in the order of ``presses``)."""

    packets: tuple[TimedPacket, ...]
    ssrc: int
    first_timestamp: int
    presses: tuple[KeyPress, ...] = ()
    press_ticks: tuple[int, ...] = ()

    @property
    def audio_packets(self) -> int:
        return sum(1 for packet in self.packets if not packet.event)

    @property
    def event_packets(self) -> int:
        return sum(1 for packet in self.packets if packet.event)

    @property
    def press_starts(self) -> tuple[float, ...]:
        """Where each press started, in seconds from the leg's first packet (on a frame boundary)."""
        return tuple((ticks - self.first_timestamp) / CLOCK_RATE for ticks in self.press_ticks)

    @property
    def seconds(self) -> float:
        """From the first packet to the end of the last one's audio."""
        return self.packets[-1].at + FRAME_SECONDS if self.packets else 0.0


def _rtp(*, payload_type: int, marker: bool, seq: int, timestamp: int, ssrc: int, payload: bytes) -> bytes:
    """RFC 3550 §5.1 fixed header, no CSRC, no extension."""
    second = (0x80 if marker else 0) | payload_type
    header = struct.pack("!BBHII", RTP_VERSION << 6, second, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    return header + payload


def opus_leg(
    payloads: Sequence[bytes],
    *,
    ssrc: int,
    first_seq: int = 4000,
    first_timestamp: int = 96_000,
    presses: Sequence[KeyPress] = (),
    payload_type: int = OPUS_PT,
    event_payload_type: int = TELEPHONE_EVENT_PT,
) -> OpusLeg:
    """The RTP packets of one leg: a payload every 20 ms, key presses sent in place of the audio they cover.

    A press starts on the frame boundary at or after its ``at`` and covers whole frames; its three end
    packets go out together."""
    ordered = sorted(presses, key=lambda press: press.at)
    spans: list[tuple[int, int]] = []  # [first frame, end frame) of each press
    for press in ordered:
        start = math.ceil(press.at / FRAME_SECONDS - 1e-9)
        end = start + max(1, round(press.duration / FRAME_SECONDS))
        if spans and start < spans[-1][1]:
            raise ValueError("key presses overlap")
        if end > len(payloads):
            raise ValueError("a key press runs past the end of the audio")
        spans.append((start, end))
    covered = {index: n for n, (start, end) in enumerate(spans) for index in range(start, end)}
    packets: list[TimedPacket] = []
    press_ticks = [first_timestamp + start * FRAME_TICKS for start, _ in spans]
    seq = first_seq
    for index, payload in enumerate(payloads):
        at = index * FRAME_SECONDS
        n = covered.get(index)
        if n is None:
            data = _rtp(  # RFC 3551 §4.1: the marker starts the first talkspurt only
                payload_type=payload_type,
                marker=index == 0,
                seq=seq,
                timestamp=first_timestamp + index * FRAME_TICKS,
                ssrc=ssrc,
                payload=payload,
            )
            packets.append(TimedPacket(at=at, data=data))
            seq += 1
            continue
        start, end = spans[n]
        last = index == end - 1
        duration = (index - start + 1) * FRAME_TICKS
        report = struct.pack(
            "!BBH", EVENT_CODES[ordered[n].digit], (0x80 if last else 0) | EVENT_VOLUME, duration
        )
        for _ in range(END_REPEATS if last else 1):
            data = _rtp(
                payload_type=event_payload_type,
                marker=index == start,  # RFC 4733 §2.5.1.1: the first packet of the event
                seq=seq,
                timestamp=press_ticks[n],
                ssrc=ssrc,
                payload=report,
            )
            packets.append(TimedPacket(at=at, data=data, event=True))
            seq += 1
    return OpusLeg(
        packets=tuple(packets),
        ssrc=ssrc,
        first_timestamp=first_timestamp,
        presses=tuple(ordered),
        press_ticks=tuple(press_ticks),
    )


def datagrams(leg: OpusLeg, *, source: tuple[str, int], destination: tuple[str, int]) -> list[UdpDatagram]:
    """The leg as UDP datagrams for a pcap file."""
    return [
        UdpDatagram(at=packet.at, source=source, destination=destination, payload=packet.data)
        for packet in leg.packets
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    sent: int
    started_at: float  # wall clock (time.time()) of the first packet; 0.0 if none went out
    stopped_early: bool


def send_paced(
    packets: Sequence[TimedPacket],
    destination: tuple[str, int],
    sock: socket.socket,
    stop: threading.Event | None = None,
) -> SendResult:
    """Send ``packets`` from ``sock`` at their times (real time, from now); blocks, ``stop`` ends it early."""
    stop = stop or threading.Event()
    base = time.perf_counter()
    started_at = 0.0
    for sent, packet in enumerate(packets):
        delay = base + packet.at - time.perf_counter()
        if (delay > 0 and stop.wait(delay)) or stop.is_set():
            return SendResult(sent=sent, started_at=started_at, stopped_early=True)
        sock.sendto(packet.data, destination)
        if sent == 0:
            started_at = time.time()
    return SendResult(sent=len(packets), started_at=started_at, stopped_early=False)
