"""Audio codecs the recorder can decode, by RTP encoding name and clock rate (RFC 3551 §6 for the static ones).

Each stream decodes through its own ``codec.new_decoder()``: ``decode(payloads)`` takes a batch of payloads
of one stream, in timestamp order, and returns their samples at ``sample_rate`` back to back, exactly
``codec.samples_in(p)`` of them for each payload ``p``. G.711 and L16 are stateless (their decoder is a shared
table lookup over the joined batch, and they keep the older ``codec.decode(joined_octets)`` form, a fixed
number of samples per octet); G.722, G.729 and Opus carry state from packet to packet, so each stream needs
its own decoder. Opus payloads differ in duration: ``samples_in`` reads it from the payload (RFC 6716 §3.1).

A recording runs at :func:`recording_rate`: 8 kHz when every stream is narrowband, else 16 kHz, with the
narrowband streams brought up by ``codec.upsampled()`` (a proper low-pass, :mod:`media.resample`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

import numpy as np
import numpy.typing as npt

from media.g711 import ALAW_TABLE, ULAW_TABLE, decode_alaw, decode_ulaw
from media.l16 import decode_l16
from media.resample import Upsampler2x, upsample_2x

__all__ = [
    "DECODABLE",
    "NARROWBAND_RATE",
    "SUPPORTED",
    "WIDEBAND_RATE",
    "Codec",
    "StreamDecoder",
    "codec_for",
    "recording_rate",
]

Pcm = npt.NDArray[np.int16]

NARROWBAND_RATE = 8000
WIDEBAND_RATE = 16000


class StreamDecoder(Protocol):
    """Decodes the payloads of one stream, batch by batch, in timestamp order."""

    def decode(self, payloads: Sequence[bytes], /) -> Pcm: ...


@dataclass(frozen=True, slots=True)
class _Joined:
    """A stateless codec as a stream decoder: one call over the joined batch."""

    function: Callable[[bytes], Pcm]

    def decode(self, payloads: Sequence[bytes], /) -> Pcm:
        return self.function(b"".join(payloads))


class _Upsampled:
    """Another stream decoder's 8 kHz output at 16 kHz, with the filter history of this stream."""

    __slots__ = ("_inner", "_upsampler")

    def __init__(self, inner: StreamDecoder) -> None:
        self._inner = inner
        self._upsampler = Upsampler2x()

    def decode(self, payloads: Sequence[bytes], /) -> Pcm:
        return self._upsampler.process(self._inner.decode(payloads))


@dataclass(frozen=True, slots=True, kw_only=True)
class Codec:
    """An RTP audio codec: ``clock_rate`` is the RTP timestamp rate, ``sample_rate`` the decoded rate.

    ``decode`` maps payload octets to samples with fresh state: for a stateless codec (``stateful`` is
    ``None``) it is the whole decoder and concatenable; otherwise it decodes one payload alone, and streams
    use ``new_decoder()``. ``samples_per_octet`` is ``None`` for codecs whose payloads are framed
    (``payload_samples`` then gives each payload's sample count). ``table`` is the 256-entry lookup table of a
    codec that decodes one octet to one sample (G.711): the timeline then decodes a plain batch straight out
    of the receive buffer.
    """

    name: str
    clock_rate: int
    sample_rate: int
    decode: Callable[[bytes], Pcm]
    samples_per_octet: Fraction | None = Fraction(1)
    payload_samples: Callable[[bytes], int] | None = None
    stateful: Callable[[], StreamDecoder] | None = field(default=None, repr=False)
    table: Pcm | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.clock_rate <= 0 or self.sample_rate <= 0:
            raise ValueError(f"codec {self.name}: rates must be positive")
        if (self.samples_per_octet is None) == (self.payload_samples is None):
            raise ValueError(f"codec {self.name}: give exactly one of samples_per_octet and payload_samples")
        if self.table is not None and (
            self.table.shape != (256,) or self.samples_per_octet != 1 or self.stateful is not None
        ):
            raise ValueError(f"codec {self.name}: a lookup table maps each octet to one sample, statelessly")

    @property
    def narrowband(self) -> bool:
        return self.sample_rate <= NARROWBAND_RATE

    def samples_in(self, payload: bytes) -> int:
        """Samples (at ``sample_rate``) that ``payload`` decodes to."""
        if self.payload_samples is not None:
            return self.payload_samples(payload)
        assert self.samples_per_octet is not None
        return int(len(payload) * self.samples_per_octet)

    def new_decoder(self) -> StreamDecoder:
        """A decoder for one stream (stateless codecs share the table lookup)."""
        return _Joined(self.decode) if self.stateful is None else self.stateful()

    def upsampled(self) -> Codec:
        """This 8 kHz codec decoding to 16 kHz, for a stream mixed into a wideband recording."""
        if self.sample_rate != NARROWBAND_RATE:
            raise ValueError(f"codec {self.name} decodes at {self.sample_rate} Hz, not {NARROWBAND_RATE}")
        per_octet = self.samples_per_octet
        payload_samples = self.payload_samples
        decode = self.decode
        return Codec(
            name=self.name,
            clock_rate=self.clock_rate,
            sample_rate=WIDEBAND_RATE,
            decode=lambda payload: upsample_2x(decode(payload)),
            samples_per_octet=None if per_octet is None else per_octet * 2,
            payload_samples=None if payload_samples is None else (lambda p: 2 * payload_samples(p)),
            stateful=lambda: _Upsampled(self.new_decoder()),
        )


def recording_rate(codecs: Iterable[Codec]) -> int:
    """8000 when every stream's codec is narrowband (or there is none), else 16000."""
    return NARROWBAND_RATE if all(codec.narrowband for codec in codecs) else WIDEBAND_RATE


def _g722() -> StreamDecoder:
    from media.avdecode import G722Decoder  # FFmpeg is loaded only when a stream needs it

    return G722Decoder()


def _g729() -> StreamDecoder:
    from media.avdecode import G729Decoder

    return G729Decoder()


def _opus() -> StreamDecoder:
    from media.opus import OpusDecoder

    return OpusDecoder()


def _g729_samples(payload: bytes) -> int:
    from media.avdecode import g729_samples

    return g729_samples(payload)


def _opus_samples(payload: bytes) -> int:
    from media.opus import opus_samples

    return opus_samples(payload)


def _alone(factory: Callable[[], StreamDecoder]) -> Callable[[bytes], Pcm]:
    return lambda payload: factory().decode([payload])


_CODECS = (
    # RFC 3551 §4.5.14: static payload types 0 and 8, 8000 Hz clock
    Codec(name="PCMU", clock_rate=8000, sample_rate=8000, decode=decode_ulaw, table=ULAW_TABLE),
    Codec(name="PCMA", clock_rate=8000, sample_rate=8000, decode=decode_alaw, table=ALAW_TABLE),
    # RFC 3551 §4.5.11: L16 at any rate; we take mono at the two telephony rates
    Codec(name="L16", clock_rate=8000, sample_rate=8000, decode=decode_l16, samples_per_octet=Fraction(1, 2)),
    Codec(
        name="L16", clock_rate=16000, sample_rate=16000, decode=decode_l16, samples_per_octet=Fraction(1, 2)
    ),
    # RFC 3551 §4.5.2: G.722 is 16 kHz audio on an 8000 Hz RTP clock (kept so by erratum), two samples per octet
    Codec(
        name="G722",
        clock_rate=8000,
        sample_rate=16000,
        decode=_alone(_g722),
        samples_per_octet=Fraction(2),
        stateful=_g722,
    ),
    # RFC 3551 §4.5.6: 10-octet frames of 10 ms, optionally a trailing 2-octet Annex B SID frame
    Codec(
        name="G729",
        clock_rate=8000,
        sample_rate=8000,
        decode=_alone(_g729),
        samples_per_octet=None,
        payload_samples=_g729_samples,
        stateful=_g729,
    ),
    # RFC 7587 §4.1: the RTP clock is always 48000 Hz; recorded at 16 kHz
    Codec(
        name="opus",
        clock_rate=48000,
        sample_rate=16000,
        decode=_alone(_opus),
        samples_per_octet=None,
        payload_samples=_opus_samples,
        stateful=_opus,
    ),
)
_REGISTRY: dict[tuple[str, int], Codec] = {(c.name.upper(), c.clock_rate): c for c in _CODECS}

#: What the recording path takes today, as `build_answer` codec entries: G.711, whose 8 kHz matches the fixed
#: recording rate and whose decoding needs no per-stream state.
SUPPORTED: tuple[str, ...] = ("PCMU", "PCMA")

#: Everything :func:`codec_for` decodes, best quality first, as `build_answer` codec entries (name/clock
#: [/channels]): for the answer once streams decode through ``new_decoder()`` at :func:`recording_rate`.
DECODABLE: tuple[str, ...] = (
    "opus/48000",  # RFC 7587 §7 says opus/48000/2; mono and stereo streams alike, so any channel count
    "G722/8000",
    "L16/16000/1",
    "PCMU/8000",
    "PCMA/8000",
    "L16/8000/1",
    "G729/8000",
)


def codec_for(name: str, clock_rate: int | None = None) -> Codec | None:
    """The codec for an SDP ``a=rtpmap`` encoding name (case-insensitive, RFC 4566 §6) and RTP clock rate.

    Without ``clock_rate`` a name only resolves when it is unambiguous (not ``L16``).
    """
    key = name.upper()
    if clock_rate is not None:
        return _REGISTRY.get((key, clock_rate))
    matches = [codec for (codec_name, _), codec in _REGISTRY.items() if codec_name == key]
    return matches[0] if len(matches) == 1 else None
