"""One pure tone per leg, encoded once per frequency, so sending a packet is a header and a slice.

Call ``k`` sends ``caller_hz(k) = 300 + 20·(k mod 75)`` Hz on the caller's leg and ``1800 + 20·(k mod 75)`` Hz
on the callee's: the two ranges never meet (300–1780 and 1800–3280 Hz, inside the 4 kHz narrowband limit), and
neighbouring calls are 20 Hz apart, which an FFT over a recording of a second or more separates cleanly. So a
recording whose channels carry other tones than its call's was crossed with another call's media.

An integer frequency repeats every second, so 50 frames of 20 ms make the whole signal: packet ``n`` carries
frame ``n mod 50``. The encoders are FFmpeg's (PyAV), not the product's; G.722 is stateful, so its second
encoded second is kept, whose predictor state already follows the periodic signal across the wrap.
"""

from __future__ import annotations

from functools import cache
from typing import cast

import av
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext

from .profile import PTIME, Codec

__all__ = ["AMPLITUDE", "FRAMES", "PAYLOAD_BYTES", "TONE_SLOTS", "callee_hz", "caller_hz", "encoded_frames"]

TONE_SLOTS = 75
FRAMES = round(1.0 / PTIME)  # frames in one second: the period of every integer-frequency tone
AMPLITUDE = 0.3  # of full scale: about -10 dBFS, far from clipping in every codec
# G.711: one byte per 8 kHz sample; G.722: 64 kbit/s, four bits per 16 kHz sample (RFC 3551 §4.5.2).
PAYLOAD_BYTES = round(8000 * PTIME)


def caller_hz(index: int) -> int:
    return 300 + 20 * (index % TONE_SLOTS)


def callee_hz(index: int) -> int:
    return 1800 + 20 * (index % TONE_SLOTS)


@cache
def encoded_frames(codec: Codec, frequency: int) -> tuple[bytes, ...]:
    """The 50 payloads of one second of ``frequency`` Hz in ``codec``."""
    if not 0 < frequency < codec.sample_rate // 2:
        raise ValueError(f"{frequency} Hz cannot be carried at {codec.sample_rate} Hz")
    rate = codec.sample_rate
    samples = np.arange(2 * rate) / rate
    pcm = np.round(AMPLITUDE * 32767 * np.sin(2 * np.pi * frequency * samples)).astype(np.int16)
    encoded = _encode(codec, pcm)
    frame_bytes = len(encoded) // (2 * FRAMES)
    second = encoded[FRAMES * frame_bytes :]
    return tuple(second[i * frame_bytes : (i + 1) * frame_bytes] for i in range(FRAMES))


def _encode(codec: Codec, pcm: npt.NDArray[np.int16]) -> bytes:
    context = cast(AudioCodecContext, av.CodecContext.create(codec.encoder, "w"))
    context.sample_rate = codec.sample_rate
    context.format = "s16"
    context.layout = "mono"
    context.open()
    step = round(codec.sample_rate * PTIME)
    out = bytearray()
    for start in range(0, len(pcm), step):
        frame = av.AudioFrame.from_ndarray(
            pcm[start : start + step].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = codec.sample_rate
        frame.pts = start
        for packet in context.encode(frame):
            out += bytes(packet)
    for packet in context.encode(None):
        out += bytes(packet)
    expected = 2 * FRAMES * PAYLOAD_BYTES
    if len(out) != expected:
        raise RuntimeError(f"{codec.encoder} made {len(out)} bytes for 2 s, expected {expected}")
    return bytes(out)
