"""What the FLAC writer hands its sink: the FLAC frames of one write in one piece, in order, header patches
by ``pwrite``, nothing but int16 audio accepted."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile

from media.writer import FlacWriter
from storage.sealed import open_plain
from storage.sealed_format import DEFAULT_CHUNK_SIZE
from tests.unit.media.test_writer import call_audio
from tests.unit.media.test_writer_sealed import CountingSink

SECOND = 8000
KEY = bytes(range(32))


class RecordingSink(CountingSink):
    """A sealed file (in the default chunks) that notes every call the writer makes on it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, DEFAULT_CHUNK_SIZE)
        self.calls: list[tuple[str, int]] = []  # (method, octets or offset)

    def write(self, data: bytes, /) -> int:
        self.calls.append(("write", len(data)))
        return super().write(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        self.calls.append(("seek", offset))
        return super().seek(offset, whence)

    def pwrite(self, data: bytes, offset: int, /) -> int:
        self.calls.append(("pwrite", offset))
        return super().pwrite(data, offset)

    def flush(self) -> None:
        self.calls.append(("flush", self.inner.plaintext_size))
        super().flush()


def test_each_write_reaches_the_sink_in_one_piece_before_its_flush(tmp_path: Path) -> None:
    audio = call_audio(12)
    sink = RecordingSink(tmp_path / "call.flac.sealed")
    writer = FlacWriter(sink, channels=2, sample_rate=8000, count_every=5.0)
    per_write = []
    for start in range(0, len(audio), SECOND):
        before = len(sink.calls)
        writer.write(audio[start : start + SECOND])
        per_write.append([name for name, _ in sink.calls[before:]])
    # libFLAC makes about seven frames of a second of audio; the sink gets them as one write, then the flush.
    # The first write also carries the header; the count goes in at the first flush and 5 s of audio later.
    assert per_write[0] == ["write", "flush", "pwrite", "flush"]
    assert all(calls[:2] == ["write", "flush"] for calls in per_write)
    assert [i for i, calls in enumerate(per_write) if "pwrite" in calls] == [0, 5, 10]
    flushed = [size for name, size in sink.calls if name == "flush"]
    assert flushed == sorted(flushed)
    writer.close()
    # libFLAC went back into the header to finish STREAMINFO at close ("fLaC", then the 34-octet block at 8).
    assert any(name == "seek" and offset < 42 for name, offset in sink.calls)

    plain = tmp_path / "call.flac"
    reference = FlacWriter(plain, channels=2, sample_rate=8000)
    for start in range(0, len(audio), SECOND):
        reference.write(audio[start : start + SECOND])
    reference.close()
    with open_plain(Path(sink.name), KEY) as source:
        assert source.read() == plain.read_bytes()  # the same stream, final STREAMINFO included


def test_small_writes_hand_over_finished_frames_only(tmp_path: Path) -> None:
    audio = call_audio(2)
    sink = RecordingSink(tmp_path / "small.flac.sealed")
    writer = FlacWriter(sink, channels=2, sample_rate=8000, flush_every=1.0)
    written = []
    for start in range(0, len(audio), 160):  # 20 ms at a time: most writes finish no FLAC frame
        writer.write(audio[start : start + 160])
        written.append(sum(size for name, size in sink.calls if name == "write"))
    steps = sum(1 for a, b in itertools.pairwise(written) if b > a)
    assert steps == (len(audio) - 1) // 1152  # a hand-over per finished frame (1152 samples), not per write
    writer.close()
    with open_plain(Path(sink.name), KEY) as source:
        data, rate = soundfile.read(source, dtype="int16")
    assert rate == 8000 and np.array_equal(data, audio)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.uint8])
def test_only_int16_frames_are_accepted(tmp_path: Path, dtype: type[np.generic]) -> None:
    path = tmp_path / "call.flac"
    writer = FlacWriter(path, channels=2, sample_rate=8000)
    frames = call_audio(1).astype(dtype)
    with pytest.raises(ValueError, match="int16"):
        writer.write(frames)
    writer.write(call_audio(1)[::-1])  # a reversed view: int16, not contiguous, still written in order
    writer.close()
    data, _ = soundfile.read(path, dtype="int16")
    assert np.array_equal(data, call_audio(1)[::-1])
