from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from media.g711 import decode_ulaw, encode_ulaw
from media.writer import FlacWriter
from tests.unit.media.helpers import tone

ROOT = Path(__file__).resolve().parents[3]
SECOND = 8000


def call_audio(seconds: int) -> npt.NDArray[np.int16]:
    """Two G.711 legs: caller 440 Hz, callee 1000 Hz with a pause, as the recorder hands them out."""
    n = seconds * SECOND
    caller = decode_ulaw(encode_ulaw(tone(440, n)))
    callee = decode_ulaw(encode_ulaw(tone(1000, n, amplitude=5000)))
    callee[SECOND : 2 * SECOND] = 0
    return np.stack([caller, callee], axis=1)


def streaminfo_total(path: Path) -> int:
    field = int.from_bytes(path.read_bytes()[18:26], "big")
    return field & ((1 << 36) - 1)


def test_file_grows_while_writing_and_is_readable_before_close(tmp_path: Path) -> None:
    audio = call_audio(6)
    path = tmp_path / "call.flac"
    writer = FlacWriter(path, channels=2, sample_rate=8000)
    sizes = []
    for second in range(6):
        writer.write(audio[second * SECOND : (second + 1) * SECOND])
        sizes.append(path.stat().st_size)
        # What a crash right now would leave behind: the file as it is on disk.
        snapshot = tmp_path / f"snapshot{second}.flac"
        shutil.copyfile(path, snapshot)
        data, rate = soundfile.read(snapshot, dtype="int16")
        assert rate == 8000
        assert len(data) == streaminfo_total(path)
        assert (second + 1) * SECOND - len(data) < 1153  # at most one FLAC block (level 0: 1152) is pending
        assert np.array_equal(data, audio[: len(data)])
    assert sizes == sorted(sizes)
    assert sizes[0] < sizes[-1]
    writer.close()
    info = soundfile.info(path)
    assert (info.frames, info.channels, info.samplerate, info.format) == (6 * SECOND, 2, 8000, "FLAC")
    data, _ = soundfile.read(path, dtype="int16")
    assert np.array_equal(data, audio)  # lossless


CRASHING_WRITER = """
import os, sys
import numpy as np
from media.writer import FlacWriter
from tests.unit.media.test_writer import call_audio
audio = call_audio(3)
writer = FlacWriter(sys.argv[1], channels=2, sample_rate=8000)
for start in range(0, len(audio), 1600):
    writer.write(audio[start : start + 1600])
os._exit(0)  # dies without closing: no final STREAMINFO, no MD5, libFLAC's buffered samples are gone
"""


def test_file_left_by_a_crashed_process_decodes_up_to_the_last_block(tmp_path: Path) -> None:
    path = tmp_path / "crashed.flac"
    subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(path)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    audio = call_audio(3)
    data, _ = soundfile.read(path, dtype="int16")
    block = 1152
    assert len(data) == (len(audio) - 1) // block * block  # every block libFLAC finished is there
    assert np.array_equal(data, audio[: len(data)])
    assert int.from_bytes(path.read_bytes()[26:42], "big") == 0  # MD5 unknown: decoders skip the check


def test_small_writes_below_one_block_leave_an_unknown_length(tmp_path: Path) -> None:
    path = tmp_path / "short.flac"
    writer = FlacWriter(path, channels=2, sample_rate=8000)
    writer.write(call_audio(1)[:1000])
    assert streaminfo_total(path) == 0  # nothing encoded yet: the header still says "unknown"
    writer.close()
    data, _ = soundfile.read(path, dtype="int16")
    assert len(data) == 1000


def test_wrong_shapes_and_writes_after_close_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.flac"
    writer = FlacWriter(path, channels=2, sample_rate=8000)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        writer.write(np.zeros(100, dtype=np.int16))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        writer.write(np.zeros((100, 1), dtype=np.int16))
    writer.write(np.zeros((0, 2), dtype=np.int16))
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write(np.zeros((10, 2), dtype=np.int16))
    assert writer.frames == 0
    assert not path.exists()  # nothing written: no (empty, non-FLAC) file is left behind


def test_flac_holds_one_to_eight_channels(tmp_path: Path) -> None:
    frames = np.tile(np.arange(-4000, 4000, dtype=np.int16)[:, None], (1, 8))
    writer = FlacWriter(tmp_path / "eight.flac", 8, 8000)
    writer.write(frames)
    writer.close()
    data, _ = soundfile.read(tmp_path / "eight.flac", dtype="int16")
    assert np.array_equal(data, frames)
    for channels in (0, 9):
        with pytest.raises(ValueError, match="1 to 8 channels"):
            FlacWriter(tmp_path / f"{channels}.flac", channels, 8000)
        assert not (tmp_path / f"{channels}.flac").exists()
