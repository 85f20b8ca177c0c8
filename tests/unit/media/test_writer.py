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
from media.writer import FlacWriter, restore_sample_count
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
from media.writer import FlacWriter, restore_sample_count
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


CRASHING_SPARSE_WRITER = """
import os, sys
from media.writer import FlacWriter
from tests.unit.media.test_writer import call_audio
audio = call_audio(6)
writer = FlacWriter(sys.argv[1], channels=2, sample_rate=8000, count_every=4.0)
for start in range(0, len(audio), 8000):
    writer.write(audio[start : start + 8000])
os._exit(0)
"""


def test_a_lagging_sample_count_is_brought_up_to_every_frame_by_recovery(tmp_path: Path) -> None:
    path = tmp_path / "crashed.flac"
    subprocess.run(
        [sys.executable, "-c", CRASHING_SPARSE_WRITER, str(path)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    audio = call_audio(6)
    block = 1152
    on_disk = (len(audio) - 1) // block * block
    # Updated at the first flush (1 s) and 4 s of audio later (5 s), not at the last (6 s).
    assert streaminfo_total(path) == (5 * SECOND - 1) // block * block
    with path.open("r+b") as file:
        assert restore_sample_count(file, lambda data, at: os.pwrite(file.fileno(), data, at)) == on_disk
    assert streaminfo_total(path) == on_disk
    data, _ = soundfile.read(path, dtype="int16")
    assert np.array_equal(data, audio[:on_disk])


def test_a_torn_last_frame_is_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "torn.flac"
    audio = call_audio(3)
    writer = FlacWriter(path, channels=2, sample_rate=8000)
    writer.write(audio)
    writer.close()
    whole = path.read_bytes()
    torn = tmp_path / "torn-copy.flac"
    torn.write_bytes(whole[: len(whole) - 300])  # the last frame cut short, as a crash mid-write leaves it
    with torn.open("r+b") as file:
        counted = restore_sample_count(file, lambda data, at: os.pwrite(file.fileno(), data, at))
    assert counted == len(audio) // 1152 * 1152  # 24000 samples: 20 whole blocks, the 21st (960) torn
    data, _ = soundfile.read(torn, dtype="int16")
    assert np.array_equal(data, audio[:counted])


def test_recovery_leaves_a_file_that_is_not_flac_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.bin"
    path.write_bytes(b"RIFF" + bytes(60))
    with path.open("r+b") as file:
        assert restore_sample_count(file, lambda data, at: os.pwrite(file.fileno(), data, at)) == 0
    assert path.read_bytes() == b"RIFF" + bytes(60)


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
