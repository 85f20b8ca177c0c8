"""The receive path under garbage: a call records the same audio whatever else reaches its ports.

Each run records a three-stream call (a plain caller, an SRTP callee, a plain third party joining late) twice on
a fake clock: once with only the real packets, once with garbage interleaved on every port. The two recordings
must be identical sample for sample, and the clean one must be the sent audio.
"""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from media.recorder import CallRecorder, StreamSpec
from tests.unit.media.helpers import (
    T0,
    Packets,
    SrtpSrc,
    g711,
    pcmu,
    pcmu_stream,
    rtp,
    simulate,
    tone,
)

SECONDS = 20
END = T0 + SECONDS + 0.2  # the hang-up
SSRCS = (0xA1A1A1A1, 0xB2B2B2B2, 0xC3C3C3C3)


def jittered(packets: Packets, rng: random.Random) -> Packets:
    """Up to 30 ms of network jitter after the first packet, in arrival order (neighbours overtake)."""
    moved = [packets[0]] + [(a + rng.uniform(0, 0.03), d) for a, d in packets[1:]]
    return sorted(moved, key=lambda p: p[0])


def garbage(rng: random.Random, ssrc: int, seq: int, srtp: SrtpSrc | None) -> bytes:
    """One datagram of the kinds found on RTP ports: noise, strays, broken headers, forged or broken SRTP."""
    kind = rng.randrange(10)
    payload = rng.randbytes(rng.choice((0, 1, 20, 160, 320, 1000)))
    if kind == 0:  # noise of any length, up to what the receiver reads (2048 octets)
        return rng.randbytes(rng.choice((0, 1, 2, 7, 11, 12, 13, 100, 1499, 1500, 1501, 2048)))
    if kind == 1:  # a stray source: another call's RTP, the audio payload type, any SSRC
        return rtp(rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(32), payload, pt=0)
    if kind == 2:  # the stream's own SSRC with a payload type it never negotiated
        pt = rng.choice((8, 9, 18, 34, 96, 100, 110, 127))
        return rtp(rng.getrandbits(16), rng.getrandbits(32), ssrc, payload, pt=pt)
    if kind == 3:  # the stream's SSRC, a CSRC count the datagram cannot hold
        count = rng.randrange(1, 16)
        return struct.pack("!BBHII", 0x80 | count, 0, seq, 0, ssrc) + rng.randbytes(rng.randrange(4 * count))
    if kind == 4:  # a header extension whose length runs past the end
        return (
            struct.pack("!BBHIIHH", 0x90, 0, seq, 0, ssrc, 0xBEDE, rng.randrange(41, 65536)) + payload[:160]
        )
    if kind == 5:  # padding that claims more than there is, or zero
        body = struct.pack("!BBHII", 0xA0, 0, seq, 0, ssrc) + payload[:40]
        return body + bytes([rng.choice((0, 255))])
    if kind == 6:  # an RTCP-looking datagram with a random body
        return bytes([0x80 | rng.randrange(32), rng.randrange(192, 224)]) + rng.randbytes(
            rng.randrange(0, 80)
        )
    if kind == 7:  # version 0/1/3 headers
        return bytes([rng.choice((0x00, 0x40, 0xC0))]) + rng.randbytes(rng.randrange(11, 200))
    if kind == 8 and srtp is not None:  # SRTP from a source that has another key
        return SrtpSrc("AES_CM_128_HMAC_SHA1_80", seed=rng.getrandbits(16)).protect(
            [(0.0, rtp(seq, 0, ssrc, payload[:160]))]
        )[0][1]
    # an RTP header cut short
    return struct.pack("!BBHII", 0x80, 0, seq, 0, ssrc)[: rng.randrange(1, 12)]


def call(seed: int) -> tuple[dict[int, Packets], dict[int, Packets], SrtpSrc, list[np.ndarray]]:
    rng = random.Random(seed)
    audio = [tone(440, SECONDS * 8000), tone(1000, SECONDS * 8000, amplitude=6000), tone(700, 5 * 8000)]
    srtp = SrtpSrc("AES_CM_128_HMAC_SHA1_80", seed=seed)
    clean = {
        0: jittered(pcmu_stream(audio[0], ssrc=SSRCS[0], seq0=65000, ts0=1, start=T0), rng),
        1: srtp.protect(jittered(pcmu_stream(audio[1], ssrc=SSRCS[1], seq0=1, ts0=5, start=T0 + 0.2), rng)),
        2: jittered(pcmu_stream(audio[2], ssrc=SSRCS[2], seq0=77, ts0=9, start=T0 + 10), rng),
    }
    dirty: dict[int, Packets] = {}
    for index, packets in clean.items():
        mixed = list(packets)
        first, last = packets[0][0] - 0.5, min(packets[-1][0] + 0.5, END)  # fed to the recorder until END
        for _ in range(len(packets)):  # as many garbage datagrams as real ones, spread over the call
            at = rng.uniform(first, last)
            seq = rng.getrandbits(16)
            mixed.append((at, garbage(rng, SSRCS[index], seq, srtp if index == 1 else None)))
        dirty[index] = sorted(mixed, key=lambda p: p[0])
    return clean, dirty, srtp, audio


def record(srtp: SrtpSrc, legs: dict[int, Packets]) -> tuple[np.ndarray, CallRecorder]:
    streams = [
        StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0, telephone_event_pt=101),
        StreamSpec(index=1, channel=1, codec=pcmu(), payload_type=0, telephone_event_pt=101, srtp=srtp.key),
    ]
    recorder = CallRecorder(streams=streams, channels=3)
    third = StreamSpec(index=2, channel=2, codec=pcmu(), payload_type=0)
    out = simulate(
        recorder,
        legs,
        start=T0,
        end=END,
        events=[(T0 + 9, lambda at: recorder.add_stream(third, at))],
    )
    return out, recorder


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_garbage_on_every_port_leaves_the_recording_intact(seed: int) -> None:
    clean, dirty, srtp, audio = call(seed)
    want, clean_recorder = record(srtp, clean)
    got, dirty_recorder = record(srtp, dirty)
    assert got.shape == want.shape == (round((SECONDS + 0.2) * 8000), 3)
    assert np.array_equal(got, want)
    assert np.array_equal(want[: len(audio[0]), 0], g711(audio[0]))
    assert np.array_equal(want[1600:, 1], g711(audio[1]))
    assert np.array_equal(want[80_000:120_000, 2], g711(audio[2]))
    for good, bad, packets in zip(
        clean_recorder.result().streams, dirty_recorder.result().streams, clean.values(), strict=True
    ):
        assert (good.lost, good.late, good.duplicated) == (0, 0, 0)
        assert (bad.lost, bad.late, bad.duplicated, bad.ssrc_changes) == (0, 0, 0, 0)
        assert bad.ssrc == good.ssrc
        assert bad.first_packet_at == good.first_packet_at == packets[0][0]
        garbage_count = len(packets)
        assert bad.invalid + bad.rtcp_packets + bad.other_payload + bad.srtp_failures >= garbage_count // 2
    assert dirty_recorder.result().streams[1].srtp_failures == len(clean[1])  # every garbage datagram there


def test_a_flood_between_two_real_packets_changes_nothing() -> None:
    audio = tone(440, 2 * 8000)
    packets = pcmu_stream(audio, ssrc=SSRCS[0], seq0=10, ts0=10, start=T0)
    rng = random.Random(9)
    flood = [(T0 + 1.0 + k * 1e-6, garbage(rng, SSRCS[0], rng.getrandbits(16), None)) for k in range(5000)]
    legs = {0: sorted([*packets, *flood], key=lambda p: p[0])}
    recorder = CallRecorder(
        streams=[StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0)], channels=1
    )
    out = simulate(recorder, legs, start=T0, end=T0 + 2)
    assert np.array_equal(out[:, 0], g711(audio))
    assert recorder.result().streams[0].packets - recorder.result().streams[0].other_payload == 100
