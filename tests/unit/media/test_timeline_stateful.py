"""Stateful codecs on the timeline: G.722 and Opus decoded per stream, in timestamp order, placed by timestamp."""

from __future__ import annotations

import random

import numpy as np

from media.codecs import codec_for
from media.timeline import StreamTimeline

from .codec_audio import encode, peaks, sine
from .helpers import rtp

T0 = 1_700_000_000.0


def packets(
    payloads: list[bytes], *, pt: int, ts_step: int, shuffle: bool = False
) -> list[tuple[float, bytes]]:
    """20 ms packets arriving in real time (optionally with neighbours swapped, as the network does)."""
    wire = [
        (T0 + 0.02 * i, rtp(100 + i, 8000 + i * ts_step, 0xBEEF, p, pt=pt)) for i, p in enumerate(payloads)
    ]
    if shuffle:
        rng = random.Random(3)
        for i in rng.sample(range(1, len(wire) - 2), 10):
            (a_at, a), (b_at, b) = wire[i], wire[i + 1]
            wire[i], wire[i + 1] = (a_at, b), (b_at, a)
    return wire


def test_g722_stream_is_decoded_at_16_khz_in_timestamp_order() -> None:
    g722 = codec_for("G722", 8000)
    assert g722 is not None and g722.sample_rate == 16000
    # RFC 3551 §4.5.2: G.722's RTP clock runs at 8000 Hz for 16 kHz audio: 160 ticks, 320 samples per 20 ms.
    payloads = encode("g722", sine(3000.0, 16000, 2.0), 16000, 320)
    line = StreamTimeline(codec=g722, payload_type=9, origin=T0)
    line.add(packets(payloads, pt=9, ts_step=160, shuffle=True))
    audio = line.take(line.end_pos)
    assert len(audio) == 320 * len(payloads)
    # 3 kHz is above what narrowband carries: only a wideband decode, in order, keeps it clean.
    assert abs(peaks(audio[1600:], 16000)[0] - 3000.0) < 10
    assert line.stats.lost == 0 and line.stats.late == 0


def test_opus_stream_comes_out_at_16_khz_with_the_right_length() -> None:
    opus = codec_for("opus", 48000)
    assert opus is not None and opus.sample_rate == 16000
    payloads = encode("libopus", sine(1000.0, 48000, 2.0), 48000, 960, bit_rate=24000)
    line = StreamTimeline(codec=opus, payload_type=111, origin=T0)
    line.add(packets(payloads, pt=111, ts_step=960))
    audio = line.take(line.end_pos)
    assert abs(len(audio) - 320 * len(payloads)) <= 320
    assert abs(peaks(audio[1600:], 16000)[0] - 1000.0) < 10
    assert np.abs(audio[1600:]).max() > 1000
