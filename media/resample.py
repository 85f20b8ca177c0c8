"""Integer-ratio resampling for the recording: 8 kHz → 16 kHz (×2) and 48 kHz → 16 kHz (÷3), sans-I/O.

Both are windowed-sinc FIR filters (Kaiser window, about 80 dB stop-band) run in polyphase form as one
matrix product over the input windows: only the output samples that exist are computed. The streaming
classes keep their filter history between blocks, so a stream resampled block by block equals the stream
resampled at once; they are causal and delay the audio by a constant group delay (:data:`UPSAMPLE_DELAY`,
:data:`DECIMATE_DELAY` output samples, under 2 ms). :func:`upsample_2x` is the one-shot form for a whole
block, with that delay taken out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["DECIMATE_DELAY", "UPSAMPLE_DELAY", "Decimator3", "Upsampler2x", "upsample_2x"]

Pcm = npt.NDArray[np.int16]
_Float = npt.NDArray[np.float32]


def lowpass(taps: int, cutoff: float, beta: float = 7.86) -> npt.NDArray[np.float64]:
    """A linear-phase low-pass FIR: ``cutoff`` in cycles per sample (0.5 = Nyquist), unity DC gain.

    ``beta`` 7.86 is the Kaiser window for 80 dB attenuation (Kaiser's formula 0.1102·(A − 8.7)).
    """
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, beta)
    return np.asarray(h / h.sum(), dtype=np.float64)


# ×2: 63 taps at 16 kHz, -6 dB at 4 kHz (the old Nyquist), transition about 3.35-4.65 kHz: the telephone band
# (≤ 3.4 kHz) passes, its images above 4.65 kHz are gone. Padded to an even length for two equal phases.
_UP_TAPS = 63
_UP = np.append(lowpass(_UP_TAPS, 0.25) * 2, 0.0)  # × 2: each phase sees half the samples
# Column 0 makes the even outputs, column 1 the odd ones, each from the same window of inputs.
_UP_PHASES = np.stack((_UP[0::2][::-1], _UP[1::2][::-1]), axis=1).astype(np.float32)
_UP_HISTORY = len(_UP) // 2 - 1
#: Delay of :class:`Upsampler2x`, in 16 kHz samples (1.9 ms).
UPSAMPLE_DELAY = (_UP_TAPS - 1) // 2

# ÷3: 79 taps at 48 kHz, -6 dB at 8 kHz (the new Nyquist), transition about 6.4-9.6 kHz, so nothing above
# 9.6 kHz folds into the band below 6.4 kHz.
_DOWN_TAPS = 79
_DOWN = lowpass(_DOWN_TAPS, 8000 / 48000)[::-1].astype(np.float32)
#: Delay of :class:`Decimator3`, in 16 kHz samples (0.8 ms).
DECIMATE_DELAY = (_DOWN_TAPS - 1) // 2 // 3


_CHUNK = 4096  # input samples per matrix product: the copied windows stay in cache


def _to_pcm(values: _Float) -> Pcm:
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


class Upsampler2x:
    """8 kHz → 16 kHz for one stream, block by block: ``n`` samples in, ``2n`` out, history kept."""

    __slots__ = ("_history",)

    def __init__(self) -> None:
        self._history = np.zeros(_UP_HISTORY, dtype=np.float32)

    def process(self, samples: npt.ArrayLike) -> Pcm:
        x = np.asarray(samples, dtype=np.float32).ravel()
        if len(x) > _CHUNK:
            return np.concatenate([self.process(x[i : i + _CHUNK]) for i in range(0, len(x), _CHUNK)])
        if not len(x):
            return np.zeros(0, dtype=np.int16)
        buffer = np.concatenate((self._history, x))
        self._history = buffer[len(buffer) - _UP_HISTORY :]
        # A contiguous copy of the windows lets the product run in BLAS: 3× faster than the strided view.
        windows = np.ascontiguousarray(sliding_window_view(buffer, _UP_HISTORY + 1))
        return _to_pcm((windows @ _UP_PHASES).ravel())


class Decimator3:
    """48 kHz → 16 kHz for one stream, block by block: ``3n`` samples in, ``n`` out, history kept."""

    __slots__ = ("_history",)

    def __init__(self) -> None:
        self._history = np.zeros(_DOWN_TAPS - 1, dtype=np.float32)

    def process(self, samples: npt.ArrayLike) -> Pcm:
        x = np.asarray(samples, dtype=np.float32).ravel()
        if len(x) % 3:
            raise ValueError(f"{len(x)} samples is not a whole number of 16 kHz samples")
        if len(x) > 3 * _CHUNK:
            return np.concatenate([self.process(x[i : i + 3 * _CHUNK]) for i in range(0, len(x), 3 * _CHUNK)])
        if not len(x):
            return np.zeros(0, dtype=np.int16)
        buffer = np.concatenate((self._history, x))
        self._history = buffer[len(buffer) - (_DOWN_TAPS - 1) :]
        return _to_pcm(np.ascontiguousarray(sliding_window_view(buffer, _DOWN_TAPS)[::3]) @ _DOWN)


def upsample_2x(samples: npt.ArrayLike) -> Pcm:
    """A whole 8 kHz block → 16 kHz, twice as many samples, time-aligned (the filter delay removed).

    For a stream arriving block by block use one :class:`Upsampler2x` per stream instead: this function
    starts from silence at every call, which would blur each block's first and last 2 ms.
    """
    x = np.asarray(samples, dtype=np.int16).ravel()
    padded = np.concatenate((x, np.zeros((UPSAMPLE_DELAY + 1) // 2, dtype=np.int16)))
    out = Upsampler2x().process(padded)
    return out[UPSAMPLE_DELAY : UPSAMPLE_DELAY + 2 * len(x)]
