"""Renditions made from a FLAC master: decoded back (libsndfile and FFmpeg) and measured, never trusted."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from media.g711 import decode_ulaw, encode_ulaw
from media.transcode import EncodeSettings, OutputFormat, TranscodeError, transcode
from media.writer import FlacWriter
from tests.audio import peak_frequency, read_audio, silent_spans

Pcm = npt.NDArray[np.int16]


def g711_tone(freq: float, seconds: float, rate: int, *, amplitude: float = 9000.0) -> Pcm:
    """A tone as it arrives from a G.711 leg: µ-law quantised (and, above 8 kHz, as the recorder stores it)."""
    t = np.arange(round(seconds * rate)) / rate
    pcm = np.round(amplitude * np.sin(2 * np.pi * freq * t + 0.4)).astype(np.int16)
    return decode_ulaw(encode_ulaw(pcm))


def conversation(freqs: list[float], seconds: float, rate: int) -> Pcm:
    """One party per channel, each talking in turn for half a second with real silence between."""
    frames = np.stack([g711_tone(f, seconds, rate) for f in freqs], axis=1)
    turn = (np.arange(len(frames)) // (rate // 2)) % len(freqs)
    for channel in range(len(freqs)):
        frames[turn != channel, channel] = 0
    return frames


def master(path: Path, frames: Pcm, rate: int) -> Path:
    """A master written the way a call writes it: a block per tick through the product's FLAC writer."""
    writer = FlacWriter(path, frames.shape[1], rate)
    for start in range(0, len(frames), rate // 50):
        writer.write(frames[start : start + rate // 50])
    writer.close()
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def av_decode(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """FFmpeg's reading of the file: (frames, channels) float, and the rate it decodes at."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        pieces = [frame.to_ndarray() for frame in container.decode(stream)]
        rate = stream.codec_context.sample_rate
        assert stream.codec_context.format.is_planar  # Opus and MP3 decode to planar float
    return np.concatenate(pieces, axis=1).T, rate


def opus_head(path: Path) -> tuple[int, int, int, int]:
    """RFC 7845 §5.1 ID header of the first Ogg page: (channels, pre-skip, input rate, mapping family)."""
    data = path.read_bytes()
    assert data[:4] == b"OggS"
    at = data.index(b"OpusHead")
    channels, pre_skip, rate, _gain, family = struct.unpack_from("<BHIhB", data, at + 9)
    return channels, pre_skip, rate, family


def test_wav_is_the_master_sample_for_sample(tmp_path: Path) -> None:
    frames = conversation([440, 1000], 3.0, 8000)
    result = transcode(master(tmp_path / "m.flac", frames, 8000), tmp_path / "call.wav", "wav")
    wav = tmp_path / "call.wav"
    info = soundfile.info(str(wav))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 8000, 2)
    decoded, _ = soundfile.read(str(wav), dtype="int16", always_2d=True)
    assert np.array_equal(decoded, frames)
    assert result.format is OutputFormat.WAV and result.frames == len(frames) and result.duration == 3.0
    assert result.size_bytes == wav.stat().st_size == 44 + frames.nbytes
    assert result.sha256 == sha256(wav)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


@pytest.mark.parametrize(("rate", "freqs"), [(8000, [440, 1000]), (16000, [440, 3000]), (8000, [700])])
def test_opus_keeps_length_channels_and_each_partys_tone(
    tmp_path: Path, rate: int, freqs: list[float]
) -> None:
    frames = conversation(freqs, 6.0, rate)
    out = tmp_path / "call.opus"
    result = transcode(master(tmp_path / "m.flac", frames, rate), out, OutputFormat.OPUS)
    channels, pre_skip, input_rate, family = opus_head(out)
    # No resampling: libopus codes the rate natively. One discrete stream per party (family 255), mono as is.
    assert (channels, input_rate, family) == (len(freqs), rate, 0 if len(freqs) == 1 else 255)
    assert pre_skip > 0
    # libsndfile decodes at the input rate, FFmpeg at 48 kHz (RFC 7845 §5.1): both trimmed to the master.
    audio = read_audio(out)
    assert (audio.channels, audio.sample_rate, audio.frames) == (len(freqs), rate, len(frames))
    decoded, decoded_rate = av_decode(out)
    assert decoded_rate == 48000 and decoded.shape == (len(frames) * 48000 // rate, len(freqs))
    for channel, freq in enumerate(freqs):
        assert abs(peak_frequency(audio.channel(channel), rate) - freq) < 3
        assert abs(peak_frequency(decoded[:, channel], 48000) - freq) < 3
    # While one party talks the other's channel stays silent: no bleed between channels, no comfort noise.
    if len(freqs) == 2:
        for channel in (0, 1):
            quiet = silent_spans(audio.channel(channel), rate, threshold_dbfs=-60, min_duration=0.4)
            assert len(quiet) == 6, (channel, quiet)
    # 24 kbit/s for two channels, 12 for one; VBR spends less on silence and little on a steady tone.
    assert result.size_bytes <= 24000 * len(freqs) / 2 * 6.0 / 8 * 1.1
    assert result.sha256 == sha256(out) and result.size_bytes == out.stat().st_size


def test_opus_conference_keeps_every_party_on_its_own_channel(tmp_path: Path) -> None:
    freqs = [300, 500, 700, 900, 1100, 1300, 1700, 2100]
    frames = np.stack([g711_tone(f, 2.0, 8000) for f in freqs], axis=1)
    out = tmp_path / "conference.opus"
    transcode(master(tmp_path / "m.flac", frames, 8000), out, "opus")
    channels, _, _, family = opus_head(out)
    assert (channels, family) == (8, 255)  # discrete channels: no surround reordering or downmix
    audio = read_audio(out)
    assert audio.frames == len(frames)
    assert [round(peak_frequency(audio.channel(c), 8000)) for c in range(8)] == freqs


def test_opus_bit_rate_follows_the_settings(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)  # broadband noise makes VBR spend its whole budget
    noise = np.clip(rng.normal(0, 6000, size=(80000, 2)), -32768, 32767).astype(np.int16)
    source = master(tmp_path / "m.flac", noise, 8000)
    low = transcode(source, tmp_path / "low.opus", "opus", EncodeSettings(opus_bitrate=16000)).size_bytes
    high = transcode(source, tmp_path / "high.opus", "opus", EncodeSettings(opus_bitrate=48000)).size_bytes
    # VBR stays a little under its target (measured: 11.9 and 45.8 kbit/s with the Ogg pages).
    assert 0.7 * 16000 < low * 8 / 10 < 1.1 * 16000
    assert 0.7 * 48000 < high * 8 / 10 < 1.1 * 48000
    assert high > 3 * low


def test_opus_resamples_a_rate_it_does_not_code_natively(tmp_path: Path) -> None:
    frames = np.stack([g711_tone(440, 2.0, 44100), g711_tone(2500, 2.0, 44100)], axis=1)
    out = tmp_path / "cd.opus"
    transcode(master(tmp_path / "m.flac", frames, 44100), out, "opus")
    assert opus_head(out)[2] == 48000
    audio = read_audio(out)
    assert audio.sample_rate == 48000 and abs(audio.duration - 2.0) < 0.002
    assert abs(peak_frequency(audio.channel(0), 48000) - 440) < 3
    assert abs(peak_frequency(audio.channel(1), 48000) - 2500) < 3


@pytest.mark.parametrize("rate", [8000, 16000])
def test_mp3_is_constant_bit_rate_and_trimmed_to_the_master(tmp_path: Path, rate: int) -> None:
    frames = conversation([440, 1000], 10.0, rate)
    out = tmp_path / "call.mp3"
    result = transcode(master(tmp_path / "m.flac", frames, rate), out, "mp3")
    assert out.read_bytes()[:3] == b"ID3"
    # 32 kbit/s constant, whatever the content: silence and tone cost the same.
    assert abs(result.size_bytes - 32000 * 10 / 8) < 32000 * 10 / 8 * 0.03
    audio = read_audio(out)
    assert (audio.channels, audio.sample_rate, audio.frames) == (2, rate, len(frames))  # LAME tag trimming
    decoded, decoded_rate = av_decode(out)
    assert decoded_rate == rate and abs(len(decoded) - len(frames)) <= 1
    for channel, freq in enumerate([440, 1000]):
        assert abs(peak_frequency(audio.channel(channel), rate) - freq) < 3
        assert abs(peak_frequency(decoded[:, channel], rate) - freq) < 3


def test_mp3_refuses_a_conference_and_leaves_the_target_alone(tmp_path: Path) -> None:
    frames = np.stack([g711_tone(f, 1.0, 8000) for f in (300, 500, 700)], axis=1)
    out = tmp_path / "conference.mp3"
    out.write_bytes(b"earlier export")
    with pytest.raises(TranscodeError, match="one or two channels"):
        transcode(master(tmp_path / "m.flac", frames, 8000), out, "mp3")
    assert out.read_bytes() == b"earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conference.mp3", "m.flac"]


def test_an_existing_rendition_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "call.wav"
    out.write_bytes(b"RIFF stale")
    frames = conversation([440, 1000], 1.0, 8000)
    transcode(master(tmp_path / "m.flac", frames, 8000), out, "wav")
    assert np.array_equal(soundfile.read(str(out), dtype="int16")[0], frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.wav", "m.flac"]


def test_a_master_a_crash_left_behind_renders_to_its_recorded_length(tmp_path: Path) -> None:
    # The writer keeps STREAMINFO's sample count current, so a master never closed still has a length.
    frames = conversation([440, 1000], 4.0, 8000)
    path = tmp_path / "crashed.flac"
    writer = FlacWriter(path, 2, 8000)
    for start in range(0, len(frames), 160):
        writer.write(frames[start : start + 160])
    kept = soundfile.info(str(path)).frames  # what reached the disk; the writer is never closed
    assert 0 < kept < len(frames)
    copy = tmp_path / "as-left.flac"
    copy.write_bytes(path.read_bytes())
    result = transcode(copy, tmp_path / "crashed.wav", "wav")
    assert result.frames == kept
    assert np.array_equal(soundfile.read(str(tmp_path / "crashed.wav"), dtype="int16")[0], frames[:kept])
    writer.close()


@pytest.mark.parametrize("fmt", ["wav", "opus", "mp3"])
def test_damaged_missing_or_empty_masters_are_refused(tmp_path: Path, fmt: str) -> None:
    good = master(tmp_path / "good.flac", conversation([440, 1000], 2.0, 8000), 8000)
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"fLaC" + bytes(200))
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(good.read_bytes()[:60])  # the header without any audio frame
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros((0, 2), dtype=np.int16), 8000, subtype="PCM_16")
    for source in (garbage, truncated, empty, tmp_path / "missing.flac"):
        with pytest.raises(TranscodeError):
            transcode(source, tmp_path / f"out.{fmt}", fmt)
        assert not (tmp_path / f"out.{fmt}").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_flac_is_not_a_rendition_and_settings_are_checked(tmp_path: Path) -> None:
    source = master(tmp_path / "m.flac", conversation([440], 1.0, 8000), 8000)
    with pytest.raises(TranscodeError, match="FLAC already"):
        transcode(source, tmp_path / "again.flac", "flac")
    with pytest.raises(ValueError, match="ogg"):
        transcode(source, tmp_path / "x.ogg", "ogg")
    with pytest.raises(ValueError, match="MP3 bit rate"):
        EncodeSettings(mp3_bitrate=33000)
    with pytest.raises(ValueError, match="complexity"):
        EncodeSettings(opus_complexity=11)
    assert EncodeSettings().opus_rate_for(1) == 12000 and EncodeSettings().opus_rate_for(8) == 96000
