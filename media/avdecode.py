"""Per-stream decoders backed by FFmpeg through PyAV: G.722 and G.729 here, Opus in :mod:`media.opus`.

These codecs carry state from packet to packet (ADPCM predictors, LPC memories), so each stream owns one
decoder and feeds it its payloads in timestamp order. A decoder always returns exactly the number of samples
its payloads stand for (``Codec.samples_in``); what FFmpeg cannot decode becomes silence of that length, so a
corrupt packet costs its own duration and never shifts the rest of the stream. FFmpeg never sees an empty
packet: to it that means end of stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import av
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext

__all__ = ["G722Decoder", "G729Decoder", "g729_samples"]

Pcm = npt.NDArray[np.int16]
_EMPTY: Pcm = np.zeros(0, dtype=np.int16)

_G729_FRAME = 10  # RFC 3551 §4.5.6: 80 bits per 10 ms frame
_G729_SID = 2  # Annex B comfort-noise frame, at most one, last in the payload
_G729_SAMPLES = 80


class AvDecoder:
    """One FFmpeg decoding context producing mono int16 at ``sample_rate``."""

    __slots__ = ("_context", "sample_rate")

    def __init__(self, codec: str, sample_rate: int) -> None:
        context = cast(AudioCodecContext, av.CodecContext.create(codec, "r"))
        context.sample_rate = sample_rate
        context.layout = "mono"  # a stereo stream is downmixed by the decoder
        context.format = "s16"
        self._context = context
        self.sample_rate = sample_rate

    def _run(self, packet: bytes, expected: int) -> Pcm:
        """Decode one FFmpeg packet to exactly ``expected`` int16 samples (silence for what fails)."""
        if not packet or expected <= 0:
            return np.zeros(max(expected, 0), dtype=np.int16)
        try:
            frames = self._context.decode(av.Packet(packet))
        except (av.FFmpegError, ValueError):
            return np.zeros(expected, dtype=np.int16)
        parts = [_mono_int16(frame.to_ndarray()) for frame in frames]
        samples = np.concatenate(parts) if parts else _EMPTY
        if len(samples) == expected:
            return samples
        fitted = np.zeros(expected, dtype=np.int16)
        fitted[: min(expected, len(samples))] = samples[:expected]
        return fitted


def _mono_int16(array: np.ndarray[Any, Any]) -> Pcm:
    """An FFmpeg frame as one channel of int16: packed s16 as is, float scaled and clipped."""
    first = array[0] if array.ndim == 2 else array
    if first.dtype == np.int16:
        return cast(Pcm, first)
    scaled = np.asarray(first, dtype=np.float32) * np.float32(32768.0)
    return cast(Pcm, np.clip(np.rint(scaled), -32768, 32767).astype(np.int16))


class G722Decoder(AvDecoder):
    """G.722 for one stream: each octet is two 16 kHz samples (RFC 3551 §4.5.2), decoded as one run."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("g722", 16000)

    def decode(self, payloads: Sequence[bytes]) -> Pcm:
        joined = b"".join(payloads)  # a G.722 payload is a plain octet stream: packets concatenate
        return self._run(joined, 2 * len(joined))


def g729_samples(payload: bytes) -> int:
    """8 kHz samples in a G.729 payload: 80 per 10-octet frame, 80 for a trailing 2-octet SID frame."""
    frames, rest = divmod(len(payload), _G729_FRAME)
    return (frames + (rest == _G729_SID)) * _G729_SAMPLES


class G729Decoder(AvDecoder):
    """G.729 / G.729A for one stream (RFC 3551 §4.5.6), 8 kHz.

    FFmpeg has no Annex B comfort-noise generator, so a SID frame becomes 10 ms of silence; octets that are
    neither whole frames nor a SID frame are ignored.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("g729", 8000)

    def decode(self, payloads: Sequence[bytes]) -> Pcm:
        voiced = [p[: len(p) - len(p) % _G729_FRAME] for p in payloads]
        if all(len(p) % _G729_FRAME != _G729_SID for p in payloads):
            joined = b"".join(voiced)  # whole frames only: the batch is one run of frames
            return self._run(joined, len(joined) // _G729_FRAME * _G729_SAMPLES)
        parts: list[Pcm] = []
        for payload, frames in zip(payloads, voiced, strict=True):
            parts.append(self._run(frames, len(frames) // _G729_FRAME * _G729_SAMPLES))
            if len(payload) % _G729_FRAME == _G729_SID:
                parts.append(np.zeros(_G729_SAMPLES, dtype=np.int16))
        return np.concatenate(parts)
