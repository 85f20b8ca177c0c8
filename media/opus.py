"""Opus (RFC 6716, RTP payload RFC 7587) for one stream, recorded at 16 kHz.

FFmpeg decodes Opus at 48 kHz whatever the stream's bandwidth; :class:`~media.resample.Decimator3` brings it
to 16 kHz, the wideband rate of our recordings. A payload's duration comes from its table-of-contents octet
(RFC 6716 §3.1), so the timeline knows each packet's length before decoding. A payload without a valid TOC
stands for no audio and is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import av
import numpy as np
import numpy.typing as npt

from media.avdecode import AvDecoder
from media.resample import Decimator3

__all__ = ["OpusDecoder", "opus_samples"]

Pcm = npt.NDArray[np.int16]

# RFC 6716 §3.1 Table 2: frame size by configuration number, in 48 kHz samples (2.5 ms = 120).
_FRAME_48K = (
    (480, 960, 1920, 2880) * 3  # 0-11 SILK-only: 10, 20, 40, 60 ms
    + (480, 960) * 2  # 12-15 hybrid: 10, 20 ms
    + (120, 240, 480, 960) * 4  # 16-31 CELT-only: 2.5, 5, 10, 20 ms
)
_MAX_48K = 5760  # RFC 6716 §3.4 [R5]: at most 120 ms per packet
_RATIO = 3  # 48 kHz → 16 kHz


def _samples_48k(payload: bytes) -> int:
    if not payload:
        return 0  # RFC 6716 §3.4 [R1]: at least one octet
    toc = payload[0]
    frame = _FRAME_48K[toc >> 3]
    code = toc & 0x03
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:  # code 3: the frame count is the low six bits of the next octet (§3.2.5)
        if len(payload) < 2:
            return 0
        count = payload[1] & 0x3F
    total = frame * count
    return total if total <= _MAX_48K else 0


def opus_samples(payload: bytes) -> int:
    """16 kHz samples a payload stands for (0 when its TOC is missing or invalid)."""
    return _samples_48k(payload) // _RATIO


class OpusDecoder(AvDecoder):
    """Opus for one stream: payloads in timestamp order → mono int16 at 16 kHz (stereo packets downmixed)."""

    __slots__ = ("_decimator",)

    def __init__(self) -> None:
        # libopus, the reference decoder, when this FFmpeg has it; FFmpeg's own decoder otherwise.
        super().__init__("libopus" if "libopus" in av.codecs_available else "opus", 48000)
        self._decimator = Decimator3()

    def decode(self, payloads: Sequence[bytes]) -> Pcm:
        parts = [self._run(payload, _samples_48k(payload)) for payload in payloads]
        wide = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        return self._decimator.process(wide)
