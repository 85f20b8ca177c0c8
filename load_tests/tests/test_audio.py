"""The tones the generator sends, decoded by FFmpeg as a receiver would, and what the audio checks read in a
recording-shaped FLAC file: frequency per channel, where sound starts and ends, the longest silence."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from av.audio.codeccontext import AudioCodecContext

from load_tests.loadgen import Codec, analyse_file, callee_hz, caller_hz, dominant_frequency, encoded_frames

Pcm = npt.NDArray[np.int16]


def _decode(codec: Codec, payloads: list[bytes]) -> Pcm:
    """FFmpeg's decoder, fed packet by packet across the one-second wrap (stateful for G.722)."""
    context = cast(AudioCodecContext, av.CodecContext.create(codec.encoder, "r"))
    context.sample_rate = codec.sample_rate
    context.layout = "mono"
    out = []
    for payload in payloads:
        for frame in context.decode(av.Packet(payload)):
            out.append(frame.to_ndarray().reshape(-1).astype(np.int16))
    return np.concatenate(out)


def test_tones_of_neighbouring_calls_are_20_hz_apart_and_ranges_never_meet() -> None:
    assert [caller_hz(k) for k in (0, 1, 74, 75)] == [300, 320, 1780, 300]
    assert [callee_hz(k) for k in (0, 1, 74, 75)] == [1800, 1820, 3280, 1800]


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize("frequency", [300, 1780, 3280])
def test_encoded_frames_decode_to_the_tone_without_a_click_at_the_wrap(codec: Codec, frequency: int) -> None:
    frames = encoded_frames(codec, frequency)
    assert len(frames) == 50 and {len(f) for f in frames} == {160}
    pcm = _decode(codec, list(frames) * 3)  # three seconds: the second-to-second wraps included
    rate = codec.sample_rate
    steady = pcm[rate // 2 :]
    peak = dominant_frequency(steady, rate)
    assert peak == pytest.approx(frequency, abs=1.0)
    level = np.sqrt(np.mean(steady.astype(np.float64) ** 2)) / 32768
    assert level == pytest.approx(0.3 / np.sqrt(2), rel=0.1)
    # A click would be a jump far beyond the largest step of the sine itself.
    largest_step = 0.3 * 32767 * 2 * np.pi * frequency / rate
    assert np.max(np.abs(np.diff(steady.astype(np.int32)))) < 1.3 * largest_step + 200


def test_a_frequency_a_codec_cannot_carry_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be carried"):
        encoded_frames(Codec.PCMU, 4000)


def test_recording_shaped_file_is_read_channel_by_channel(tmp_path: Path) -> None:
    rate = 8000
    left = _decode(Codec.PCMU, list(encoded_frames(Codec.PCMU, 460)) * 4)
    right = _decode(Codec.PCMU, list(encoded_frames(Codec.PCMU, 1960)) * 4)
    audio = np.zeros((rate * 4 + 1600, 2), dtype=np.int16)
    audio[: len(left), 0] = left
    audio[1600 : 1600 + len(right), 1] = right  # the callee leg arrives 200 ms late
    audio[8000:8480, 1] = 0  # three packets of the right channel lost: 60 ms of silence at 1.0 s
    audio[16000:16160, 0] = 0  # one packet of the left channel lost at 2.0 s
    path = tmp_path / "call.flac"
    soundfile.write(path, audio, rate, subtype="PCM_16")
    facts = analyse_file(str(path))
    assert facts.sample_rate == rate and facts.frames == len(audio)
    assert facts.duration == pytest.approx(4.2)
    first, second = facts.channels
    assert first.peak_hz == pytest.approx(460, abs=1) and second.peak_hz == pytest.approx(1960, abs=1)
    assert first.first_sound == pytest.approx(0.0, abs=0.001)
    assert first.last_sound == pytest.approx(4.0, abs=0.001)
    assert second.first_sound == pytest.approx(0.2, abs=0.001)
    assert second.last_sound == pytest.approx(4.2, abs=0.001)
    assert (first.longest_gap, first.gap_at) == pytest.approx((0.020, 2.0), abs=0.001)
    assert (second.longest_gap, second.gap_at) == pytest.approx((0.060, 1.0), abs=0.001)


def test_a_silent_channel_has_no_frequency(tmp_path: Path) -> None:
    audio = np.zeros((8000, 2), dtype=np.int16)
    audio[:, 0] = _decode(Codec.PCMA, list(encoded_frames(Codec.PCMA, 700)))
    path = tmp_path / "one_way.flac"
    soundfile.write(path, audio, 8000, subtype="PCM_16")
    left, right = analyse_file(str(path)).channels
    assert left.peak_hz == pytest.approx(700, abs=1)
    assert right.peak_hz is None and right.first_sound is None and right.longest_gap == 0.0
