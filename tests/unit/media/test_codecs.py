"""Codec registry and per-stream decoders: real G.722 and Opus audio from FFmpeg's encoders, L16, G.729."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from media.avdecode import G729Decoder, g729_samples
from media.codecs import DECODABLE, SUPPORTED, Codec, codec_for, recording_rate
from media.g711 import decode_ulaw, encode_ulaw
from media.l16 import decode_l16, encode_l16
from media.opus import opus_samples

from .codec_audio import band_power_db, encode, peaks, sine


def codec(name: str, clock_rate: int | None = None) -> Codec:
    found = codec_for(name, clock_rate)
    assert found is not None, name
    return found


def batches(payloads: list[bytes], sizes: tuple[int, ...] = (1, 7, 3, 12)) -> list[list[bytes]]:
    """The payloads cut into batches of varying size, as the recorder's ticks would."""
    out: list[list[bytes]] = []
    i = k = 0
    while i < len(payloads):
        size = sizes[k % len(sizes)]
        out.append(payloads[i : i + size])
        i += size
        k += 1
    return out


# --- registry -----------------------------------------------------------------------------------------------


def test_every_decodable_entry_resolves_to_a_codec_with_its_clock() -> None:
    for entry in DECODABLE:
        name, clock, *_ = entry.split("/")
        found = codec(name, int(clock))
        assert found.clock_rate == int(clock)
    assert set(SUPPORTED) <= {entry.split("/")[0] for entry in DECODABLE}


@pytest.mark.parametrize(
    ("name", "clock", "rate", "narrowband"),
    [
        ("PCMU", 8000, 8000, True),
        ("pcma", 8000, 8000, True),
        ("L16", 8000, 8000, True),
        ("l16", 16000, 16000, False),
        ("G722", 8000, 16000, False),  # RFC 3551 §4.5.2: 16 kHz audio on an 8000 Hz clock
        ("G729", 8000, 8000, True),
        ("OPUS", 48000, 16000, False),  # decoded at 48 kHz, recorded at 16 kHz
    ],
)
def test_rates_by_name_and_clock(name: str, clock: int, rate: int, narrowband: bool) -> None:
    found = codec(name, clock)
    assert (found.clock_rate, found.sample_rate, found.narrowband) == (clock, rate, narrowband)


def test_lookup_refuses_what_we_do_not_decode_or_cannot_tell() -> None:
    assert codec_for("L16") is None  # 8 or 16 kHz: the clock decides
    assert codec_for("L16", 44100) is None  # RFC 3551 static PT 10/11 rate, not a telephony rate
    assert codec_for("G722", 16000) is None
    assert codec_for("opus", 8000) is None
    assert codec_for("telephone-event", 8000) is None
    assert codec_for("G723") is None
    assert codec("g722").name == "G722"  # unambiguous without a clock


def test_recording_rate_is_wideband_as_soon_as_one_stream_is() -> None:
    assert recording_rate([]) == 8000
    assert recording_rate([codec("PCMU"), codec("PCMA"), codec("G729")]) == 8000
    assert recording_rate([codec("PCMU"), codec("G722")]) == 16000
    assert recording_rate([codec("opus")]) == 16000
    assert recording_rate([codec("L16", 8000), codec("L16", 16000)]) == 16000


def test_codec_validation() -> None:
    with pytest.raises(ValueError, match="rates"):
        Codec(name="X", clock_rate=0, sample_rate=8000, decode=decode_ulaw)
    with pytest.raises(ValueError, match="exactly one"):
        Codec(name="X", clock_rate=8000, sample_rate=8000, decode=decode_ulaw, samples_per_octet=None)
    with pytest.raises(ValueError, match="exactly one"):
        Codec(name="X", clock_rate=8000, sample_rate=8000, decode=decode_ulaw, payload_samples=len)


def test_g711_stream_decoder_is_the_table_lookup_over_the_batch() -> None:
    pcmu = codec("PCMU")
    audio = sine(440, 8000, 0.1)
    payloads = [encode_ulaw(audio[i : i + 160]) for i in range(0, 800, 160)]
    decoder = pcmu.new_decoder()
    assert np.array_equal(decoder.decode(payloads), decode_ulaw(b"".join(payloads)))
    assert pcmu.samples_in(payloads[0]) == 160
    assert len(decoder.decode([])) == 0


# --- L16 ------------------------------------------------------------------------------------------------------


def test_l16_is_big_endian_two_octets_per_sample() -> None:
    assert decode_l16(b"\x01\x02\xff\xfe\x80\x00\x7f\xff").tolist() == [258, -2, -32768, 32767]
    assert decode_l16(b"\x01\x02\x03").tolist() == [258]  # a stray odd octet is no sample
    assert decode_l16(b"").dtype == np.int16
    audio = sine(1000, 16000, 0.02)
    assert encode_l16(audio)[:2] == int(audio[0]).to_bytes(2, "big", signed=True)
    assert np.array_equal(decode_l16(encode_l16(audio)), audio)


@pytest.mark.parametrize("clock", [8000, 16000])
def test_l16_stream_decodes_batches_to_the_original(clock: int) -> None:
    l16 = codec("L16", clock)
    audio = sine(1000, clock, 1.0)
    step = clock // 50
    payloads = [encode_l16(audio[i : i + step]) for i in range(0, len(audio), step)]
    decoder = l16.new_decoder()
    out = np.concatenate([decoder.decode(batch) for batch in batches(payloads)])
    assert np.array_equal(out, audio)
    assert l16.samples_in(payloads[0]) == step == len(l16.decode(payloads[0]))


# --- G.722 ------------------------------------------------------------------------------------------------


def test_g722_decodes_real_audio_at_16_khz_batch_by_batch() -> None:
    g722 = codec("G722", 8000)
    audio = sine(1000, 16000, 1.0)
    payloads = encode("g722", audio, 16000, 320)  # 20 ms: 160 octets, 160 RTP clock ticks
    assert {len(p) for p in payloads} == {160}
    assert g722.samples_in(payloads[0]) == 320
    decoder = g722.new_decoder()
    out = np.concatenate([decoder.decode(batch) for batch in batches(payloads)])
    assert out.dtype == np.int16 and len(out) == 16000
    assert peaks(out[800:], 16000) == pytest.approx([1000], abs=2)
    assert np.sqrt(np.mean(out[800:].astype(float) ** 2)) == pytest.approx(8000 / np.sqrt(2), rel=0.1)
    # State is carried from batch to batch: batching changes nothing.
    assert np.array_equal(out, g722.new_decoder().decode(payloads))


def test_g722_streams_keep_their_own_state() -> None:
    g722 = codec("G722")
    a = encode("g722", sine(1000, 16000, 0.4), 16000, 320)
    b = encode("g722", sine(3000, 16000, 0.4, amplitude=12000), 16000, 320)
    alone_a = g722.new_decoder().decode(a)
    alone_b = g722.new_decoder().decode(b)
    first, second = g722.new_decoder(), g722.new_decoder()
    mixed_a, mixed_b = [], []
    for pa, pb in zip(a, b, strict=True):  # two calls' packets interleaved on one worker
        mixed_a.append(first.decode([pa]))
        mixed_b.append(second.decode([pb]))
    assert np.array_equal(np.concatenate(mixed_a), alone_a)
    assert np.array_equal(np.concatenate(mixed_b), alone_b)
    # Sharing one state between the two would corrupt both: the adaptive predictor needs its own history.
    shared = g722.new_decoder()
    corrupted = np.concatenate([shared.decode([pa]) for pa, _ in zip(a, b, strict=True) for _ in (0, 1)])
    assert not np.array_equal(corrupted[: len(alone_a)], alone_a)


def test_g722_legacy_decode_is_one_payload_with_fresh_state() -> None:
    g722 = codec("G722")
    payloads = encode("g722", sine(1000, 16000, 0.1), 16000, 320)
    assert np.array_equal(g722.decode(payloads[0]), g722.new_decoder().decode(payloads[:1]))
    assert len(g722.decode(b"")) == 0


# --- G.729 ------------------------------------------------------------------------------------------------


def frames(count: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, 10 * count, dtype=np.uint8).tobytes()


def test_g729_payload_sizes() -> None:
    assert [g729_samples(b"\0" * n) for n in (0, 2, 10, 12, 20, 22, 7, 15)] == [
        0,
        80,
        80,
        160,
        160,
        240,
        0,
        80,
    ]
    assert codec("G729").samples_in(b"\0" * 20) == 160


def test_g729_batch_equals_packet_by_packet_and_keeps_state() -> None:
    g729 = codec("G729")
    payloads = [frames(2, seed) for seed in range(40)]  # 20 ms packets, two frames each
    whole = g729.new_decoder().decode(payloads)
    assert len(whole) == 40 * 160 and whole.dtype == np.int16
    decoder = g729.new_decoder()
    assert np.array_equal(np.concatenate([decoder.decode(batch) for batch in batches(payloads)]), whole)
    decoder = g729.new_decoder()
    assert np.array_equal(np.concatenate([decoder.decode([p]) for p in payloads]), whole)
    assert not np.array_equal(g729.new_decoder().decode(payloads[5:6]), whole[5 * 160 : 6 * 160])


def test_g729_sid_and_malformed_payloads_keep_their_duration() -> None:
    decoder = G729Decoder()
    payloads = [frames(2, 1), frames(1, 2) + b"\x12\x34", b"\x55\x66", b"", b"\x01" * 7, frames(2, 3)]
    out = decoder.decode(payloads)
    assert len(out) == sum(g729_samples(p) for p in payloads) == 160 + 160 + 80 + 0 + 0 + 160
    assert not out[160 + 80 : 160 + 160].any()  # the SID frame: 10 ms of silence
    assert not out[320:400].any()
    # An empty payload never reached FFmpeg as end-of-stream: the decoder still decodes.
    assert len(decoder.decode([frames(1, 4)])) == 80


# --- Opus -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "samples"),
    [
        (b"", 0),  # RFC 6716 §3.4 [R1]
        (bytes([1 << 3]), 320),  # SILK NB 20 ms, one frame (a DTX packet: TOC only)
        (bytes([3 << 3 | 1, 0, 0]), 1920),  # SILK NB 60 ms, two frames: 120 ms
        (bytes([12 << 3 | 2, 1, 0]), 320),  # hybrid SWB 10 ms, two frames of different sizes
        (bytes([16 << 3 | 3, 4]), 160),  # CELT 2.5 ms, code 3 with four frames
        (bytes([31 << 3 | 4]), 320),  # CELT FB 20 ms stereo
        (bytes([16 << 3 | 3, 49]), 0),  # 49 × 2.5 ms > 120 ms: invalid (§3.4 [R5])
        (bytes([16 << 3 | 3, 0]), 0),  # code 3 with no frames
        (bytes([16 << 3 | 3]), 0),  # code 3 without its count octet
        (bytes([3 << 3 | 3, 3]), 0),  # 3 × 60 ms
    ],
)
def test_opus_duration_from_the_toc(payload: bytes, samples: int) -> None:
    assert opus_samples(payload) == samples == codec("opus", 48000).samples_in(payload)


@pytest.mark.parametrize(
    ("frame_ms", "bit_rate"),
    [(20, 24000), (10, 64000), (60, 16000)],
)
def test_opus_decodes_real_audio_at_16_khz(frame_ms: int, bit_rate: int) -> None:
    opus = codec("opus", 48000)
    payloads = encode("libopus", sine(1000, 48000, 1.0), 48000, 48 * frame_ms, bit_rate=bit_rate)
    assert opus.samples_in(payloads[0]) == 16 * frame_ms
    decoder = opus.new_decoder()
    out = np.concatenate([decoder.decode(batch) for batch in batches(payloads)])
    assert len(out) == sum(opus.samples_in(p) for p in payloads) >= 16000
    assert peaks(out[1600:16000], 16000) == pytest.approx([1000], abs=2)
    assert np.sqrt(np.mean(out[1600:16000].astype(float) ** 2)) == pytest.approx(8000 / np.sqrt(2), rel=0.15)
    assert band_power_db(out[1600:16000], 16000, 1200, 8000) < -30


def test_opus_stereo_stream_is_downmixed_to_mono() -> None:
    left, right = sine(700, 48000, 0.6), sine(2500, 48000, 0.6)
    payloads = encode("libopus", np.stack([left, right]), 48000, 960, channels=2, bit_rate=64000)
    assert payloads[0][0] & 0x04  # the TOC's stereo flag
    out = codec("opus", 48000).new_decoder().decode(payloads)
    assert len(out) == 16000 * 0.02 * len(payloads)
    assert sorted(peaks(out[1600:9600], 16000, 2)) == pytest.approx([700, 2500], abs=3)


def test_opus_corrupt_and_empty_payloads() -> None:
    opus = codec("opus", 48000)
    good = encode("libopus", sine(1000, 48000, 0.2), 48000, 960, bit_rate=24000)
    garbage = bytes([31 << 3]) + bytes(range(200, 256)) * 3  # a valid TOC, a body FFmpeg may refuse
    payloads = [*good[:4], b"", garbage, bytes([16 << 3 | 3, 60]), *good[4:]]
    decoder = opus.new_decoder()
    out = decoder.decode(payloads)
    assert len(out) == sum(opus.samples_in(p) for p in payloads) == 320 * (len(good) + 1)
    assert len(decoder.decode(good[:2])) == 640  # still decoding


def test_opus_legacy_decode_takes_one_whole_payload() -> None:
    opus = codec("opus")
    payload = encode("libopus", sine(1000, 48000, 0.1), 48000, 960)[2]
    assert len(opus.decode(payload)) == 320


# --- narrowband into a wideband recording --------------------------------------------------------------------


def test_upsampled_pcmu_decodes_at_16_khz_with_one_filter_history_per_stream() -> None:
    wide = codec("PCMU").upsampled()
    assert (wide.name, wide.clock_rate, wide.sample_rate, wide.narrowband) == ("PCMU", 8000, 16000, False)
    assert wide.samples_per_octet == Fraction(2)
    audio = sine(1000, 8000, 1.0)
    payloads = [encode_ulaw(audio[i : i + 160]) for i in range(0, 8000, 160)]
    assert wide.samples_in(payloads[0]) == 320
    decoder = wide.new_decoder()
    out = np.concatenate([decoder.decode(batch) for batch in batches(payloads)])
    assert np.array_equal(out, wide.new_decoder().decode(payloads))  # blocks join seamlessly
    assert len(out) == 16000
    assert peaks(out[400:], 16000) == pytest.approx([1000], abs=2)
    assert band_power_db(out[400:], 16000, 4500, 8000) < -60  # the 7 kHz image is filtered out
    assert len(wide.decode(payloads[0])) == 320


def test_upsampled_g729_counts_payloads_at_16_khz() -> None:
    wide = codec("G729").upsampled()
    payload = frames(2, 9) + b"\x01\x02"
    assert wide.samples_in(payload) == 480
    assert len(wide.new_decoder().decode([payload])) == 480


def test_only_8_khz_codecs_upsample() -> None:
    with pytest.raises(ValueError, match="16000 Hz"):
        codec("G722").upsampled()
