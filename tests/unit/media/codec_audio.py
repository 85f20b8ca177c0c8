"""Real encoded audio for the codec tests: sines encoded with FFmpeg's encoders through PyAV, packetised."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame

Pcm = npt.NDArray[np.int16]


def sine(freqs: float | tuple[float, ...], rate: int, seconds: float, amplitude: float = 8000.0) -> Pcm:
    """A sum of sines (each at ``amplitude``), starting mid-phase like real audio."""
    t = np.arange(round(rate * seconds)) / rate
    freqs = freqs if isinstance(freqs, tuple) else (freqs,)
    total = sum(amplitude * np.sin(2 * np.pi * f * t + 0.3) for f in freqs)
    return np.round(np.asarray(total)).astype(np.int16)


def encode(
    codec: str, samples: Pcm, rate: int, frame: int, *, channels: int = 1, bit_rate: int = 0
) -> list[bytes]:
    """``samples`` (shape (n,) or (channels, n)) → one payload per ``frame`` samples, as an RTP sender sends."""
    context = av.CodecContext.create(codec, "w")
    assert isinstance(context, AudioCodecContext)
    context.sample_rate = rate
    context.layout = "stereo" if channels == 2 else "mono"
    context.format = "s16"
    if bit_rate:
        context.bit_rate = bit_rate
    if codec == "libopus":
        context.options = {"frame_duration": str(frame * 1000 / rate)}
    context.open()
    planes = samples.reshape(channels, -1)
    payloads: list[bytes] = []
    for start in range(0, planes.shape[1] - frame + 1, frame):
        packed = np.ascontiguousarray(planes[:, start : start + frame].T).reshape(1, -1)
        chunk = AudioFrame.from_ndarray(packed, format="s16", layout=context.layout.name)
        chunk.sample_rate = rate
        chunk.pts = start
        payloads += [bytes(packet) for packet in context.encode(chunk)]
    payloads += [bytes(packet) for packet in context.encode(None)]
    return payloads


def peaks(samples: npt.ArrayLike, rate: int, count: int = 1) -> list[float]:
    """The ``count`` strongest frequencies (Hz, to the FFT bin), strongest first."""
    x = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    bins = np.argsort(spectrum)[::-1]
    found: list[float] = []
    for b in bins:
        freq = b * rate / len(x)
        if all(abs(freq - f) > 50 for f in found):
            found.append(freq)
        if len(found) == count:
            break
    return found


def band_power_db(samples: npt.ArrayLike, rate: int, low: float, high: float) -> float:
    """Power in [low, high) Hz relative to the whole signal's power, in dB."""
    x = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    band = spectrum[(freqs >= low) & (freqs < high)].sum()
    return float(10 * np.log10(band / spectrum.sum() + 1e-30))
