"""L16: linear 16-bit PCM in network byte order (RFC 3551 §4.5.11), mono at 8 or 16 kHz.

Stateless and concatenable: two octets per sample, most significant first. A stray odd octet at the end of a
payload cannot be a sample and is ignored.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["decode_l16", "encode_l16"]

Pcm = npt.NDArray[np.int16]
_BIG_ENDIAN = np.dtype(">i2")


def decode_l16(payload: bytes) -> Pcm:
    """L16 payload octets → int16 samples (one per two octets)."""
    usable = len(payload) & ~1
    return np.frombuffer(payload, dtype=_BIG_ENDIAN, count=usable // 2).astype(np.int16)


def encode_l16(samples: npt.ArrayLike) -> bytes:
    """int16 samples → L16 payload octets (for tests and the load generator)."""
    return np.asarray(samples, dtype=np.int16).astype(_BIG_ENDIAN).tobytes()
