"""Audio codecs the recorder can decode, by their RTP encoding name (RFC 3551 §6 for the static ones).

A codec's ``decode`` maps payload octets to int16 samples at ``sample_rate`` and must be stateless and
concatenable: decoding two payloads joined equals joining their decodings, with a fixed number of samples per
octet. The timeline relies on that to decode a whole batch of packets in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from media.g711 import decode_alaw, decode_ulaw

__all__ = ["SUPPORTED", "Codec", "codec_for"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Codec:
    """An RTP audio codec: ``clock_rate`` is the RTP timestamp rate, ``sample_rate`` the decoded rate."""

    name: str
    clock_rate: int
    sample_rate: int
    decode: Callable[[bytes], npt.NDArray[np.int16]]

    def __post_init__(self) -> None:
        if self.clock_rate <= 0 or self.sample_rate <= 0:
            raise ValueError(f"codec {self.name}: rates must be positive")


_REGISTRY: dict[str, Codec] = {
    # RFC 3551 §4.5.14: static payload types 0 and 8, 8000 Hz clock
    "PCMU": Codec(name="PCMU", clock_rate=8000, sample_rate=8000, decode=decode_ulaw),
    "PCMA": Codec(name="PCMA", clock_rate=8000, sample_rate=8000, decode=decode_alaw),
}

#: Encoding names the recorder accepts in an SDP offer, in order of preference.
SUPPORTED: tuple[str, ...] = ("PCMU", "PCMA")


def codec_for(name: str) -> Codec | None:
    """The codec for an SDP ``a=rtpmap`` encoding name (case-insensitive, RFC 4566 §6), or ``None``."""
    return _REGISTRY.get(name.upper())
