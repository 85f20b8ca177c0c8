"""The mono mix of a multichannel master: summed at recorded level, saturated, streamed in blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from media.mixdown import write_mono_mix
from media.writer import FlacWriter
from tests.unit.media.helpers import tone


def master(path: Path, frames: np.ndarray) -> Path:
    writer = FlacWriter(path, frames.shape[1], 8000)
    for start in range(0, len(frames), 8000):  # written as a call writes it, a second at a time
        writer.write(frames[start : start + 8000])
    writer.close()
    return path


def test_conference_master_mixes_to_the_sum_of_its_parties(tmp_path: Path) -> None:
    # Five parties taking turns of 2 s each over 10 s, the last one talking over the first at the end.
    frames = np.zeros((100_000, 5), dtype=np.int16)
    for party in range(5):
        frames[party * 16_000 : (party + 1) * 16_000, party] = tone(300 + 100 * party, 16_000, amplitude=9000)
    frames[90_000:, 0] = tone(250, 10_000, amplitude=9000)
    out = tmp_path / "mono.flac"
    assert write_mono_mix(master(tmp_path / "conf.flac", frames), out) == 100_000
    mono, rate = soundfile.read(out, dtype="int16", always_2d=True)
    assert (rate, mono.shape) == (8000, (100_000, 1))
    assert np.array_equal(mono[:, 0], frames.astype(np.int32).sum(axis=1).astype(np.int16))
    assert np.array_equal(mono[:16_000, 0], frames[:16_000, 0])  # one talker: exactly their level


def test_loud_overlap_saturates_instead_of_wrapping(tmp_path: Path) -> None:
    loud = np.full((70_000, 8), 20_000, dtype=np.int16)  # longer than one read block
    loud[:, 1::2] = -32768
    loud[60_000:, 1::2] = 20_000
    out = tmp_path / "mono.flac"
    write_mono_mix(master(tmp_path / "eight.flac", loud), out)
    mono, _ = soundfile.read(out, dtype="int16")
    assert set(np.unique(mono[:60_000])) == {-32768}
    assert set(np.unique(mono[60_000:])) == {32767}


def test_mono_master_is_copied_and_an_empty_one_gives_no_file(tmp_path: Path) -> None:
    voice = tone(440, 12_345)[:, None]
    out = tmp_path / "copy.flac"
    assert write_mono_mix(master(tmp_path / "mono.flac", voice), out) == 12_345
    copied, _ = soundfile.read(out, dtype="int16", always_2d=True)
    assert np.array_equal(copied, voice)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 2), dtype=np.int16), 8000, subtype="PCM_16")
    assert write_mono_mix(empty, tmp_path / "none.flac") == 0
    assert not (tmp_path / "none.flac").exists()


def test_unreadable_master_raises_and_leaves_no_output(tmp_path: Path) -> None:
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"fLaC" + bytes(100))
    with pytest.raises(soundfile.LibsndfileError):
        write_mono_mix(broken, tmp_path / "out.flac")
    assert not (tmp_path / "out.flac").exists()
