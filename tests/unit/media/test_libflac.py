"""libFLAC called directly: the same audio as libsndfile would store, no MD5 signature, sink errors raised,
and the writer's fallback to libsndfile where libFLAC is missing."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from media import libflac, writer
from media.writer import FlacWriter, restore_sample_count

RATE = 8000


def call_audio(seconds: float) -> npt.NDArray[np.int16]:
    """Two parties' tones with µ-law-like noise, as a recorded G.711 call sounds."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(7)
    voices = np.stack([np.sin(2 * np.pi * 440 * t) * 9000, np.sin(2 * np.pi * 1000 * t) * 6000], axis=1)
    return (voices + rng.normal(0, 200, voices.shape)).astype(np.int16)


def test_libflac_is_there_where_the_tests_run() -> None:
    assert libflac.available()  # tests/system-packages.sh installs it


def test_the_stream_decodes_to_the_samples_and_carries_no_md5() -> None:
    audio = call_audio(3.3)
    out = io.BytesIO()
    encoder = libflac.StreamEncoder(out.write, out.seek, out.tell, channels=2, sample_rate=RATE)
    for start in range(0, len(audio), RATE):
        encoder.encode(audio[start : start + RATE])
    encoder.finish()
    data = out.getvalue()
    assert data[:4] == b"fLaC"
    assert data[26:42] == bytes(16)  # RFC 9639 §8.2: MD5 all zero, "not computed"
    assert int.from_bytes(data[21:26], "big") & ((1 << 36) - 1) == len(audio)  # finish() set the count
    decoded, rate = soundfile.read(io.BytesIO(data), dtype="int16")
    assert rate == RATE and np.array_equal(decoded, audio)
    with av.open(io.BytesIO(data), "r", format="flac") as container:
        assert sum(frame.samples for frame in container.decode(audio=0)) == len(audio)


def test_a_sink_error_is_raised_from_encode() -> None:
    def full_disk(data: bytes) -> None:
        if len(data) > 100:  # the header went in; the first audio frame does not
            raise OSError(28, "No space left on device")

    encoder = libflac.StreamEncoder(full_disk, lambda _: None, lambda: 0, channels=2, sample_rate=RATE)
    with pytest.raises(OSError, match="No space left"):
        encoder.encode(call_audio(1))
    encoder.finish()


def test_refused_settings_are_an_error() -> None:
    with pytest.raises(RuntimeError, match="could not start"):
        libflac.StreamEncoder(
            io.BytesIO().write, io.BytesIO().seek, io.BytesIO().tell, channels=9, sample_rate=RATE
        )


@pytest.mark.parametrize("direct", [True, False])
def test_the_writer_stores_the_same_audio_either_way(
    direct: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not direct:
        monkeypatch.setattr(writer.libflac, "available", lambda: False)
    audio = call_audio(4)
    path = tmp_path / "call.flac"
    flac = FlacWriter(path, channels=2, sample_rate=RATE, count_every=1.0)
    for start in range(0, len(audio), RATE):
        flac.write(audio[start : start + RATE])
    flac.close()
    decoded, _ = soundfile.read(str(path), dtype="int16")
    assert np.array_equal(decoded, audio)
    md5 = path.read_bytes()[26:42]
    assert (md5 == bytes(16)) is direct  # libsndfile always signs
    with path.open("r+b") as file:
        assert restore_sample_count(file, lambda data, offset: None) == len(audio)
