"""G.711 µ-law (PCMU) and A-law (PCMA) as 256-entry lookup tables built from the ITU-T G.711 formulas.

Decoding is one table lookup over a whole batch of payload bytes. The encoders are vectorised versions of the
reference segment search; they exist for tests and the load generator, not for the recording path.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["ALAW_TABLE", "ULAW_TABLE", "decode_alaw", "decode_ulaw", "encode_alaw", "encode_ulaw"]

Pcm = npt.NDArray[np.int16]

_ULAW_BIAS = 0x21  # µ-law bias on the 14-bit magnitude (0x84 on the 16-bit scale)
_ULAW_CLIP = 8159  # largest 14-bit magnitude


def _ulaw_table() -> Pcm:
    code = ~np.arange(256, dtype=np.int32) & 0xFF  # G.711: µ-law octets are transmitted inverted
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> Pcm:
    code = np.arange(256, dtype=np.int32) ^ 0x55  # G.711: even bits of A-law octets are inverted
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)  # A-law: sign bit set = positive


#: Linear 16-bit value of every µ-law octet (0xFF → 0, 0x00 → -32124).
ULAW_TABLE: Pcm = _ulaw_table()
#: Linear 16-bit value of every A-law octet (0xD5 → 8, 0x55 → -8).
ALAW_TABLE: Pcm = _alaw_table()
ULAW_TABLE.flags.writeable = False
ALAW_TABLE.flags.writeable = False


def decode_ulaw(payload: bytes) -> Pcm:
    """PCMU payload octets → int16 samples (one per octet)."""
    return ULAW_TABLE.take(np.frombuffer(payload, dtype=np.uint8))


def decode_alaw(payload: bytes) -> Pcm:
    """PCMA payload octets → int16 samples (one per octet)."""
    return ALAW_TABLE.take(np.frombuffer(payload, dtype=np.uint8))


def _segment(value: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Index of the highest set bit (value ≥ 1)."""
    return np.frexp(value.astype(np.float64))[1].astype(np.int32) - 1


def encode_ulaw(samples: npt.ArrayLike) -> bytes:
    """int16 samples → PCMU octets (G.711 µ-law segment encoding on the 14-bit magnitude)."""
    x = np.clip(np.asarray(samples, dtype=np.int32), -32768, 32767) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    biased = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    segment = _segment(biased) - 5
    code = (np.minimum(segment, 7) << 4) | ((biased >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8).tobytes()


def encode_alaw(samples: npt.ArrayLike) -> bytes:
    """int16 samples → PCMA octets (G.711 A-law segment encoding on the 13-bit magnitude)."""
    x = np.clip(np.asarray(samples, dtype=np.int32), -32768, 32767) >> 3
    negative = x < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -x - 1, x)
    segment = np.where(magnitude < 32, 0, _segment(np.maximum(magnitude, 1)) - 4)
    overflow = segment >= 8
    segment = np.minimum(segment, 7)
    shift = np.where(segment < 2, 1, segment)
    code = (segment << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(overflow, 0x7F, code)
    return ((code ^ mask) & 0xFF).astype(np.uint8).tobytes()
