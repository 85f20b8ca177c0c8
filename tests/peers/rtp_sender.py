"""A small RTP sender for tests: G.711 packets of a tone (or given samples), paced in real time.

    python tests/peers/rtp_sender.py 127.0.0.1 40000 --duration 5 --tone 1000 --drop 0.05 --seed 7

Packets carry 20 ms of 8 kHz audio (RFC 3551 §4.5.14: PCMU is payload type 0, PCMA 8). Impairments are
planned up front from a seeded generator, so a test knows exactly which sequence numbers were dropped,
swapped, delayed or duplicated. The first and last packets are never impaired, so the stream's extent
stays well defined; a lost packet shows as a 20 ms gap of silence at its timestamp.

The G.711 coder here is written from ITU-T G.711 on purpose: test input must not come from the product's
own media package.
"""

from __future__ import annotations

import argparse
import enum
import json
import math
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 8000
PTIME = 0.020
SAMPLES_PER_PACKET = 160
RTP_VERSION = 2

Int16Array = npt.NDArray[np.int16]
UInt8Array = npt.NDArray[np.uint8]


class Codec(enum.IntEnum):
    """Static payload types of RFC 3551 §6."""

    PCMU = 0
    PCMA = 8


# -- G.711 -------------------------------------------------------------------------------------------


@cache
def _ulaw_encode_table() -> UInt8Array:
    # G.711 µ-law on the top 14 bits: bias 33, clip at 8159, 8 segments of 16 steps, bits inverted.
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), 8159) + 0x21
    segment = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), magnitude)
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    codes: UInt8Array = ((np.where(segment >= 8, 0x7F, code) ^ mask) & 0xFF).astype(np.uint8)
    return codes


@cache
def _alaw_encode_table() -> UInt8Array:
    # G.711 A-law on the top 13 bits; even bits inverted (XOR 0x55), sign bit set for positive values.
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    segment = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), magnitude)
    shift = np.where(segment < 2, 1, segment)
    code = (segment << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


@cache
def _ulaw_decode_table() -> Int16Array:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


@cache
def _alaw_decode_table() -> Int16Array:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code >> 4) & 0x07
    base = (code & 0x0F) << 4
    magnitude = np.where(segment == 0, base + 8, (base + 0x108) << np.maximum(segment - 1, 0))
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


def _as_int16(samples: npt.ArrayLike) -> Int16Array:
    array = np.asarray(samples)
    if array.dtype.kind == "f":
        array = np.round(np.clip(array, -1.0, 1.0) * 32767)
    return array.astype(np.int16)


def ulaw_encode(samples: npt.ArrayLike) -> UInt8Array:
    """int16 samples (or floats in [-1, 1]) to µ-law codes."""
    return _ulaw_encode_table()[_as_int16(samples).astype(np.int32) + 32768]


def alaw_encode(samples: npt.ArrayLike) -> UInt8Array:
    """int16 samples (or floats in [-1, 1]) to A-law codes."""
    return _alaw_encode_table()[_as_int16(samples).astype(np.int32) + 32768]


def ulaw_decode(codes: bytes | npt.ArrayLike) -> Int16Array:
    data = np.frombuffer(codes, dtype=np.uint8) if isinstance(codes, bytes) else np.asarray(codes, np.uint8)
    return _ulaw_decode_table()[data]


def alaw_decode(codes: bytes | npt.ArrayLike) -> Int16Array:
    data = np.frombuffer(codes, dtype=np.uint8) if isinstance(codes, bytes) else np.asarray(codes, np.uint8)
    return _alaw_decode_table()[data]


def encode(codec: Codec, samples: npt.ArrayLike) -> UInt8Array:
    return ulaw_encode(samples) if codec is Codec.PCMU else alaw_encode(samples)


def decode(codec: Codec, codes: bytes | npt.ArrayLike) -> Int16Array:
    return ulaw_decode(codes) if codec is Codec.PCMU else alaw_decode(codes)


def sine(
    frequency: float, seconds: float, *, amplitude: float = 0.3, sample_rate: int = SAMPLE_RATE
) -> Int16Array:
    """A phase-continuous sine tone as int16 samples."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return np.round(np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype(np.int16)


# -- RTP ---------------------------------------------------------------------------------------------


def rtp_packet(
    *, payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes, marker: bool
) -> bytes:
    """RFC 3550 §5.1 fixed header (no CSRCs, no extension, no padding) plus payload."""
    first = RTP_VERSION << 6
    second = (0x80 if marker else 0) | (payload_type & 0x7F)
    return struct.pack("!BBHII", first, second, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + payload


@dataclass(frozen=True, slots=True, kw_only=True)
class Impairments:
    """What to do to the stream. Fractions are of all packets; counts are exact."""

    drop: float = 0.0  # fraction dropped at random
    drop_indices: frozenset[int] = frozenset()  # packet indices always dropped (e.g. a burst)
    duplicate: float = 0.0  # fraction sent twice, back to back
    swap_pairs: int = 0  # adjacent pairs sent in swapped order
    delay_count: int = 0  # packets sent `delay_by` packets late
    delay_by: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0.0 <= self.drop < 1.0 and 0.0 <= self.duplicate < 1.0):
            raise ValueError("drop and duplicate are fractions in [0, 1)")
        if self.swap_pairs < 0 or self.delay_count < 0 or self.delay_by < 1:
            raise ValueError("swap_pairs and delay_count must be >= 0, delay_by >= 1")
        if any(index < 0 for index in self.drop_indices):
            raise ValueError("drop_indices must be packet indices (>= 0)")


@dataclass(frozen=True, slots=True, kw_only=True)
class WireItem:
    index: int  # packet index in the original stream (0-based; seq and timestamp follow from it)
    at: float  # seconds after the first packet at which it is sent
    duplicate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SendPlan:
    packet_count: int
    items: tuple[WireItem, ...]
    dropped: tuple[int, ...]
    swapped: tuple[tuple[int, int], ...]  # (earlier index, later index); the later one goes first
    delayed: tuple[int, ...]
    duplicated: tuple[int, ...]

    @property
    def wire_order(self) -> tuple[int, ...]:
        return tuple(item.index for item in self.items)


def plan_stream(packet_count: int, impairments: Impairments = Impairments()) -> SendPlan:
    """Decide, without sending anything, which packets go out when and in which order."""
    if packet_count < 1:
        raise ValueError("packet_count must be at least 1")
    if any(index >= packet_count for index in impairments.drop_indices):
        raise ValueError("drop_indices beyond the end of the stream")
    rng = np.random.default_rng(impairments.seed)

    def pick(pool: list[int], count: int) -> set[int]:
        count = min(len(pool), count)
        return {int(i) for i in rng.choice(pool, size=count, replace=False)} if count else set()

    forced = set(impairments.drop_indices)
    interior = [i for i in range(1, packet_count - 1) if i not in forced]
    dropped = forced | pick(interior, round(impairments.drop * packet_count))
    order = [i for i in range(packet_count) if i not in dropped]

    # Swap non-overlapping adjacent pairs; neither the first nor the last packet moves.
    swapped: list[tuple[int, int]] = []
    used: set[int] = set()
    for position in rng.permutation(np.arange(1, max(1, len(order) - 2))):
        if len(swapped) >= impairments.swap_pairs:
            break
        p = int(position)
        if {p - 1, p, p + 1, p + 2} & used:
            continue
        used.update((p, p + 1))
        swapped.append((order[p], order[p + 1]))
        order[p], order[p + 1] = order[p + 1], order[p]

    moved = {index for pair in swapped for index in pair}
    delayed = sorted(pick([i for i in order[1:-1] if i not in moved], impairments.delay_count))
    for index in delayed:
        position = order.index(index)
        del order[position]
        order.insert(min(position + impairments.delay_by, len(order) - 1), index)

    duplicated = pick(order[1:-1], round(impairments.duplicate * packet_count))

    # A packet goes out at its own slot time, or right after whatever went before it if that is later.
    items: list[WireItem] = []
    clock = 0.0
    for index in order:
        clock = max(clock, index * PTIME)
        items.append(WireItem(index=index, at=clock))
        if index in duplicated:
            items.append(WireItem(index=index, at=clock, duplicate=True))
    return SendPlan(
        packet_count=packet_count,
        items=tuple(items),
        dropped=tuple(sorted(dropped)),
        swapped=tuple(sorted(swapped)),
        delayed=tuple(delayed),
        duplicated=tuple(sorted(duplicated)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SendReport:
    plan: SendPlan
    codec: Codec
    ssrc: int
    first_seq: int
    first_timestamp: int
    source: tuple[str, int]
    destination: tuple[str, int]
    started_at: float  # wall clock (time.time()) of the first packet; 0.0 if none was sent
    datagrams_sent: int
    stopped_early: bool

    def seq(self, index: int) -> int:
        return (self.first_seq + index) & 0xFFFF

    def timestamp(self, index: int) -> int:
        return (self.first_timestamp + index * SAMPLES_PER_PACKET) & 0xFFFFFFFF

    @property
    def dropped_seqs(self) -> tuple[int, ...]:
        return tuple(self.seq(i) for i in self.plan.dropped)

    @property
    def sent_seqs(self) -> tuple[int, ...]:
        """Sequence numbers in the order they went out (duplicates included), up to an early stop."""
        return tuple(self.seq(item.index) for item in self.plan.items[: self.datagrams_sent])

    @property
    def unique_packets_sent(self) -> int:
        return len({item.index for item in self.plan.items[: self.datagrams_sent]})

    def as_json(self) -> dict[str, object]:
        return {
            "codec": self.codec.name,
            "ssrc": self.ssrc,
            "first_seq": self.first_seq,
            "first_timestamp": self.first_timestamp,
            "source": list(self.source),
            "destination": list(self.destination),
            "started_at": self.started_at,
            "packet_count": self.plan.packet_count,
            "datagrams_sent": self.datagrams_sent,
            "stopped_early": self.stopped_early,
            "dropped": list(self.dropped_seqs),
            "swapped": [[self.seq(a), self.seq(b)] for a, b in self.plan.swapped],
            "delayed": [self.seq(i) for i in self.plan.delayed],
            "duplicated": [self.seq(i) for i in self.plan.duplicated],
        }


@dataclass(kw_only=True)
class RtpSender:
    """Sends one RTP stream to ``destination``; ``run()`` blocks, ``start()``/``wait()`` use a thread.

    ``samples`` (int16 or float at 8 kHz) take precedence over ``tone_hz``; ``duration`` is then taken
    from the samples. The plan is fixed at construction, so tests can read it before sending.
    """

    destination: tuple[str, int]
    duration: float = 1.0
    tone_hz: float = 1000.0
    amplitude: float = 0.3
    samples: npt.ArrayLike | None = None
    codec: Codec = Codec.PCMU
    ssrc: int = 0x1234ABCD
    first_seq: int = 1000
    first_timestamp: int = 160_000
    start_delay: float = 0.0
    impairments: Impairments = field(default_factory=Impairments)
    bind: tuple[str, int] = ("", 0)
    sock: socket.socket | None = None
    plan: SendPlan = field(init=False)
    _payloads: list[bytes] = field(init=False, repr=False)
    _stop: threading.Event = field(init=False, repr=False, default_factory=threading.Event)
    _thread: threading.Thread | None = field(init=False, repr=False, default=None)
    _report: SendReport | None = field(init=False, repr=False, default=None)
    _error: BaseException | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise ValueError("ssrc is a 32-bit unsigned value")
        if self.samples is not None:
            audio = _as_int16(self.samples)
        else:
            if self.duration <= 0:
                raise ValueError("duration must be positive")
            audio = sine(self.tone_hz, self.duration, amplitude=self.amplitude)
        count = max(1, math.ceil(len(audio) / SAMPLES_PER_PACKET))
        padded = np.zeros(count * SAMPLES_PER_PACKET, dtype=np.int16)
        padded[: len(audio)] = audio
        codes = encode(self.codec, padded)
        self._payloads = [
            codes[i * SAMPLES_PER_PACKET : (i + 1) * SAMPLES_PER_PACKET].tobytes() for i in range(count)
        ]
        self.plan = plan_stream(count, self.impairments)

    def packet(self, index: int) -> bytes:
        return rtp_packet(
            payload_type=int(self.codec),
            seq=self.first_seq + index,
            timestamp=self.first_timestamp + index * SAMPLES_PER_PACKET,
            ssrc=self.ssrc,
            payload=self._payloads[index],
            marker=index == 0,  # RFC 3551 §4.1: first packet of a talkspurt
        )

    def run(self) -> SendReport:
        own_socket = self.sock is None
        sock = self.sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if own_socket:
                sock.bind(self.bind)
            source = sock.getsockname()
            sent = 0
            started_at = 0.0
            if self._stop.wait(self.start_delay):
                return self._finish(source, started_at, sent, stopped=True)
            base = time.perf_counter()
            for item in self.plan.items:
                delay = base + item.at - time.perf_counter()
                if delay > 0 and self._stop.wait(delay):  # real-time pacing, interruptible
                    return self._finish(source, started_at, sent, stopped=True)
                if self._stop.is_set():
                    return self._finish(source, started_at, sent, stopped=True)
                sock.sendto(self.packet(item.index), self.destination)
                if sent == 0:
                    started_at = time.time()
                sent += 1
            return self._finish(source, started_at, sent, stopped=False)
        finally:
            if own_socket:
                sock.close()

    def _finish(self, source: tuple[str, int], started_at: float, sent: int, *, stopped: bool) -> SendReport:
        self._report = SendReport(
            plan=self.plan,
            codec=self.codec,
            ssrc=self.ssrc,
            first_seq=self.first_seq & 0xFFFF,
            first_timestamp=self.first_timestamp & 0xFFFFFFFF,
            source=(str(source[0]), int(source[1])),
            destination=self.destination,
            started_at=started_at,
            datagrams_sent=sent,
            stopped_early=stopped,
        )
        return self._report

    def start(self) -> RtpSender:
        if self._thread is not None:
            raise RuntimeError("sender already started")

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # handed to wait()
                self._error = exc

        self._thread = threading.Thread(target=target, name="rtp-sender", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> SendReport:
        if self._thread is None:
            raise RuntimeError("sender not started")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("RTP sender still running")
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report


def _parse_indices(text: str) -> Iterable[int]:
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        yield from range(int(low), int(high or low) + 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send one G.711 RTP stream in real time.")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--tone", type=float, default=1000.0, help="Hz")
    parser.add_argument("--amplitude", type=float, default=0.3)
    parser.add_argument("--wav", type=Path, help="8 kHz mono audio file to send instead of a tone")
    parser.add_argument("--codec", choices=[c.name for c in Codec], default="PCMU")
    parser.add_argument("--ssrc", type=lambda v: int(v, 0), default=0x1234ABCD)
    parser.add_argument("--first-seq", type=int, default=1000)
    parser.add_argument("--first-timestamp", type=int, default=160_000)
    parser.add_argument("--start-delay", type=float, default=0.0)
    parser.add_argument("--drop", type=float, default=0.0, help="fraction of packets dropped at random")
    parser.add_argument("--drop-indices", default="", help="packet indices to drop, e.g. 50-59,120")
    parser.add_argument("--duplicate", type=float, default=0.0)
    parser.add_argument("--swap-pairs", type=int, default=0)
    parser.add_argument("--delay", type=int, default=0, help="number of packets sent late")
    parser.add_argument("--delay-by", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bind", default="", help="local address to send from")
    parser.add_argument("--bind-port", type=int, default=0)
    args = parser.parse_args(argv)

    samples = None
    if args.wav:
        import soundfile  # only the CLI reads files

        data, rate = soundfile.read(args.wav, dtype="int16", always_2d=True)
        if rate != SAMPLE_RATE:
            parser.error(f"{args.wav} is {rate} Hz; 8000 Hz is needed")
        samples = data[:, 0]
    sender = RtpSender(
        destination=(args.host, args.port),
        duration=args.duration,
        tone_hz=args.tone,
        amplitude=args.amplitude,
        samples=samples,
        codec=Codec[args.codec],
        ssrc=args.ssrc,
        first_seq=args.first_seq,
        first_timestamp=args.first_timestamp,
        start_delay=args.start_delay,
        impairments=Impairments(
            drop=args.drop,
            drop_indices=frozenset(_parse_indices(args.drop_indices)),
            duplicate=args.duplicate,
            swap_pairs=args.swap_pairs,
            delay_count=args.delay,
            delay_by=args.delay_by,
            seed=args.seed,
        ),
        bind=(args.bind, args.bind_port),
    )
    report = sender.run()
    sys.stdout.write(json.dumps(report.as_json()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
