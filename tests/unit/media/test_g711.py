from __future__ import annotations

import warnings

import numpy as np
import pytest

from media.codecs import SUPPORTED, codec_for
from media.g711 import ALAW_TABLE, ULAW_TABLE, decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from tests.unit.media.helpers import tone

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the stdlib's independent G.711 implementation (Python ≤ 3.12), used as the reference


@pytest.mark.parametrize(
    ("octet", "value"),
    [(0xFF, 0), (0x7F, 0), (0x00, -32124), (0x80, 32124), (0xFE, 8), (0x7E, -8), (0xEF, 132), (0x8F, 16764)],
)
def test_ulaw_known_values(octet: int, value: int) -> None:
    assert ULAW_TABLE[octet] == value
    assert decode_ulaw(bytes([octet]))[0] == value


@pytest.mark.parametrize(
    ("octet", "value"),
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24), (0x80, 5504)],
)
def test_alaw_known_values(octet: int, value: int) -> None:
    assert ALAW_TABLE[octet] == value
    assert decode_alaw(bytes([octet]))[0] == value


def test_tables_match_the_reference_implementation() -> None:
    every_octet = bytes(range(256))
    assert np.array_equal(ULAW_TABLE, np.frombuffer(audioop.ulaw2lin(every_octet, 2), dtype=np.int16))
    assert np.array_equal(ALAW_TABLE, np.frombuffer(audioop.alaw2lin(every_octet, 2), dtype=np.int16))


def test_encoders_match_the_reference_for_every_16_bit_value() -> None:
    every_value = np.arange(-32768, 32768, dtype=np.int16)
    assert encode_ulaw(every_value) == audioop.lin2ulaw(every_value.tobytes(), 2)
    assert encode_alaw(every_value) == audioop.lin2alaw(every_value.tobytes(), 2)


def test_every_code_round_trips() -> None:
    codes = bytes(range(256))
    assert encode_alaw(decode_alaw(codes)) == codes
    ulaw = encode_ulaw(decode_ulaw(codes))
    # µ-law has two zeros; both decode to 0, which encodes as the positive one (0xFF).
    assert ulaw == codes.replace(b"\x7f", b"\xff")


def test_speech_level_tone_survives_with_g711_quality() -> None:
    signal = tone(1000, 8000, amplitude=10000)
    for encode, decode in ((encode_ulaw, decode_ulaw), (encode_alaw, decode_alaw)):
        decoded = decode(encode(signal))
        assert decoded.dtype == np.int16
        assert len(decoded) == len(signal)
        noise = decoded.astype(np.float64) - signal
        snr = 10 * np.log10(np.mean(signal.astype(np.float64) ** 2) / np.mean(noise**2))
        assert 33 < snr < 45  # G.711 gives about 38 dB SNR for speech-level signals


def test_decoding_a_batch_equals_decoding_each_packet() -> None:
    payloads = [encode_ulaw(tone(440, 160, phase=p)) for p in (0.0, 1.0, 2.0)]
    assert np.array_equal(decode_ulaw(b"".join(payloads)), np.concatenate([decode_ulaw(p) for p in payloads]))


def test_codec_registry() -> None:
    assert SUPPORTED == ("PCMU", "PCMA")
    pcmu = codec_for("pcmu")
    assert pcmu is not None
    assert (pcmu.name, pcmu.clock_rate, pcmu.sample_rate) == ("PCMU", 8000, 8000)
    pcma = codec_for("PCMA")
    assert pcma is not None
    assert pcma.decode(b"\xd5")[0] == 8
    assert codec_for("G723") is None  # not decodable here
    assert codec_for("telephone-event") is None
