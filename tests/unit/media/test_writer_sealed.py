"""FLAC encoded straight into the encrypted container (storage.sealed.SealedWriter as the writer's sink): the
same stream as a plain file, the sample count kept current, flushed at the writer's cadence, recoverable after
a crash, and no plaintext on disk at any moment."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from media.g711 import decode_ulaw, encode_ulaw
from media.recorder import StreamSpec
from media.writer import FlacWriter, RandomAccessSink, recorded_duration
from storage.sealed import SealedReader, SealedWriter, finish_unfinished, open_plain
from tests.unit.media.helpers import (
    PTIME,
    SAMPLES,
    dominant_frequency,
    open_loopback_session,
    pcmu,
    rtp,
    tone,
)
from tests.unit.media.test_writer import call_audio

ROOT = Path(__file__).resolve().parents[3]
SECOND = 8000
BLOCK = 1152  # FLAC level 0
KEY = bytes(range(32))
HOST = "127.0.0.1"


def streaminfo_total(flac: bytes) -> int:
    return int.from_bytes(flac[18:26], "big") & ((1 << 36) - 1)


def plaintext(path: Path, key: bytes = KEY) -> bytes:
    with open_plain(path, key) as source:
        return source.read()


def after_a_crash(path: Path, into: Path) -> bytes:
    """What crash recovery would make of the file as it is on disk right now (a copy is finished)."""
    shutil.copyfile(path, into)
    finish_unfinished(into, KEY)
    return plaintext(into)


def decode(flac: bytes) -> npt.NDArray[np.int16]:
    data, rate = soundfile.read(io.BytesIO(flac), dtype="int16")
    assert rate == 8000
    return np.asarray(data, dtype=np.int16)


def leaks(raw: bytes, flac: bytes, audio: npt.NDArray[np.int16]) -> list[str]:
    """Plaintext found in the bytes of a file on disk: the FLAC marker, any 32-octet run of the FLAC stream,
    any 32-octet run of the PCM (as int16, as G.711 µ-law)."""
    found = ["fLaC marker"] if b"fLaC" in raw else []
    found += [f"FLAC octets {i}" for i in range(0, len(flac) - 32, 32) if flac[i : i + 32] in raw]
    for name, pcm in (("PCM", audio.tobytes()), ("µ-law", encode_ulaw(audio[:, 0]))):
        found += [f"{name} octets {i}" for i in range(0, len(pcm) - 32, 997) if pcm[i : i + 32] in raw]
    return found


class CountingSink:
    """A SealedWriter that counts its flushes and what was on disk after each."""

    def __init__(self, path: Path, chunk_size: int = 65536) -> None:
        self.inner = SealedWriter(path, KEY, chunk_size=chunk_size)
        self.flushes: list[int] = []  # plaintext octets at each flush

    @property
    def name(self) -> str:
        return self.inner.name

    def write(self, data: bytes, /) -> int:
        return self.inner.write(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()

    def pread(self, size: int, offset: int, /) -> bytes:
        return self.inner.pread(size, offset)

    def pwrite(self, data: bytes, offset: int, /) -> int:
        return self.inner.pwrite(data, offset)

    def flush(self) -> None:
        self.inner.flush()
        self.flushes.append(self.inner.plaintext_size)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("chunk_size", [65536, 4096, 1000])
def test_an_encrypted_file_decrypts_to_the_same_flac_as_a_plain_write(
    tmp_path: Path, chunk_size: int
) -> None:
    audio = call_audio(20)
    plain, sealed = tmp_path / "call.flac", tmp_path / "call.flac.sealed"
    for target in (plain, SealedWriter(sealed, KEY, chunk_size=chunk_size)):
        writer = FlacWriter(target, channels=2, sample_rate=8000)
        for start in range(0, len(audio), SECOND):
            writer.write(audio[start : start + SECOND])
        writer.close()
    raw = sealed.read_bytes()
    flac = plaintext(sealed)
    assert flac == plain.read_bytes()  # byte for byte: STREAMINFO with its final count and MD5 included
    assert np.array_equal(decode(flac), audio)
    assert streaminfo_total(flac) == len(audio)
    assert leaks(raw, flac, audio) == []
    with open_plain(sealed, KEY) as source:
        assert recorded_duration(source) == 20.0


def test_the_sample_count_on_disk_follows_every_flush(tmp_path: Path) -> None:
    audio = call_audio(12)
    path = tmp_path / "call.flac.sealed"
    writer = FlacWriter(SealedWriter(path, KEY), channels=2, sample_rate=8000)
    for second in range(12):
        writer.write(audio[second * SECOND : (second + 1) * SECOND])
        # A crash right now: the file as it is on disk, finished by recovery.
        flac = after_a_crash(path, tmp_path / f"snapshot{second}.sealed")
        data = decode(flac)
        written = (second + 1) * SECOND
        assert streaminfo_total(flac) == len(data) == (written - 1) // BLOCK * BLOCK
        assert np.array_equal(data, audio[: len(data)])
        assert leaks(path.read_bytes(), flac, audio[:written]) == []
    writer.close()
    assert np.array_equal(decode(plaintext(path)), audio)


def test_the_sink_is_flushed_after_every_write_or_every_few_seconds(tmp_path: Path) -> None:
    audio = call_audio(10)
    every_write = CountingSink(tmp_path / "a.sealed")
    writer = FlacWriter(every_write, channels=2, sample_rate=8000)
    for start in range(0, len(audio), SECOND):
        writer.write(audio[start : start + SECOND])
    # One flush per write (each with a second one after the header update, which finds nothing left to do
    # once the first chunk is on disk).
    assert len(set(every_write.flushes)) == 10 and every_write.flushes == sorted(every_write.flushes)
    writer.close()

    sparse = CountingSink(tmp_path / "b.sealed", chunk_size=1 << 20)  # no chunk fills up between flushes
    writer = FlacWriter(sparse, channels=2, sample_rate=8000, flush_every=3.0)
    sizes_on_disk = []
    for start in range(0, len(audio), SECOND // 2):  # half a second per write
        writer.write(audio[start : start + SECOND // 2])
        sizes_on_disk.append(len(after_a_crash(Path(sparse.name), tmp_path / "snap.sealed")))
    # Flushed at 3, 6 and 9 seconds of audio (each with its header update), not in between.
    assert sorted(set(sparse.flushes)) == sorted(set(sizes_on_disk) - {0})
    assert len(set(sparse.flushes)) == 3
    steps = [i for i in range(1, len(sizes_on_disk)) if sizes_on_disk[i] > sizes_on_disk[i - 1]]
    assert steps == [5, 11, 17]
    writer.close()
    assert np.array_equal(decode(plaintext(Path(sparse.name))), audio)


CRASHING_WRITER = """
import os, sys
from media.writer import FlacWriter
from storage.sealed import SealedWriter
from tests.unit.media.test_writer import call_audio
audio = call_audio(7)
writer = FlacWriter(SealedWriter(sys.argv[1], bytes(range(32))), 2, 8000, flush_every=2.0)
for start in range(0, len(audio), 8000):
    writer.write(audio[start : start + 8000])
os._exit(0)  # killed mid-call: no final chunk, no final STREAMINFO, the last second never flushed
"""


def test_a_file_left_by_a_killed_process_recovers_up_to_the_last_flush(tmp_path: Path) -> None:
    path = tmp_path / "crashed.flac.sealed"
    subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(path)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    with pytest.raises(Exception, match="final chunk"):
        SealedReader(path, KEY)  # unfinished: strict readers refuse it
    audio = call_audio(7)
    assert leaks(path.read_bytes(), b"", audio) == []
    size = finish_unfinished(path, KEY)
    flac = plaintext(path)
    assert len(flac) == size
    data = decode(flac)
    assert len(data) == (6 * SECOND - 1) // BLOCK * BLOCK  # flushed at 2, 4 and 6 s; the 7th second is lost
    assert np.array_equal(data, audio[: len(data)])
    with open_plain(path, KEY) as source:
        assert recorded_duration(source) == len(data) / 8000


class FailingSink(CountingSink):
    """A disk that fills up after ``room`` octets."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(path)
        self.room = room

    def write(self, data: bytes, /) -> int:
        if self.inner.tell() + len(data) > self.room:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_a_failing_sink_raises_its_own_error_from_write_and_close(tmp_path: Path) -> None:
    audio = call_audio(8)
    sink = FailingSink(tmp_path / "full.sealed", room=20_000)
    writer = FlacWriter(sink, channels=2, sample_rate=8000)
    writer.write(audio[:SECOND])
    with pytest.raises(OSError, match="No space left") as raised:
        for start in range(SECOND, len(audio), SECOND):
            writer.write(audio[start : start + SECOND])
    assert raised.value.errno == 28
    with pytest.raises(OSError, match="No space left"):  # the stream could not be finished either
        writer.write(audio[:SECOND])
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    assert sink.inner.closed  # the sink is closed all the same
    flac = plaintext(tmp_path / "full.sealed")
    assert 0 < len(decode(flac)) < len(audio)  # what reached the disk still plays


def test_a_sink_is_closed_and_removed_when_the_writer_cannot_start_or_gets_no_frames(tmp_path: Path) -> None:
    for channels in (0, 9):
        sink = SealedWriter(tmp_path / f"{channels}.sealed", KEY)
        with pytest.raises(ValueError, match="1 to 8 channels"):
            FlacWriter(sink, channels, 8000)
        assert sink.closed and not (tmp_path / f"{channels}.sealed").exists()
    sink = SealedWriter(tmp_path / "silent.sealed", KEY)
    writer = FlacWriter(sink, 2, 8000)
    writer.write(np.zeros((0, 2), dtype=np.int16))
    writer.close()
    assert sink.closed and not (tmp_path / "silent.sealed").exists()  # no media, no file


def test_a_plain_file_sink_keeps_the_count_current_too(tmp_path: Path) -> None:
    audio = call_audio(4)
    path = tmp_path / "plain.flac"
    writer = FlacWriter(path, channels=2, sample_rate=8000, flush_every=2.0)
    for second in range(4):
        writer.write(audio[second * SECOND : (second + 1) * SECOND])
        expected = 0 if second == 0 else ((second + 1) // 2 * 2 * SECOND - 1) // BLOCK * BLOCK
        assert streaminfo_total(path.read_bytes()) == expected
    writer.close()
    assert writer.path == str(path)
    assert recorded_duration(path) == 4.0


# -- a media session writing through the encrypting sink ---------------------------------------------------------
async def test_a_media_session_records_into_the_encrypted_file_with_no_plaintext_on_disk(
    tmp_path: Path, sender: socket.socket
) -> None:
    seconds = 3
    caller_audio, callee_audio = tone(440, 50 * seconds * SAMPLES), tone(1000, 50 * seconds * SAMPLES)
    streams = [
        StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0, telephone_event_pt=101),
        StreamSpec(index=1, channel=1, codec=pcmu(), payload_type=0, telephone_event_pt=101),
    ]
    path = tmp_path / "call.flac.sealed"
    opened: list[str] = []

    def open_sink(name: str) -> RandomAccessSink:
        opened.append(name)
        return SealedWriter(name, KEY)

    session, ports = await open_loopback_session(
        streams, path, tick=0.05, write_interval=0.2, open_sink=open_sink
    )
    assert opened == [str(path)]

    loop = asyncio.get_running_loop()
    began = loop.time()
    payloads = encode_ulaw(caller_audio), encode_ulaw(callee_audio)
    snapshots: list[bytes] = []
    for i in range(50 * seconds):
        delay = began + i * PTIME - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # real-time pacing, as a SRC sends
        chunk = slice(i * SAMPLES, (i + 1) * SAMPLES)
        sender.sendto(rtp(100 + i, i * SAMPLES, 0xCA11E7, payloads[0][chunk]), (HOST, ports[0]))
        sender.sendto(rtp(900 + i, i * SAMPLES, 0xCA11EE, payloads[1][chunk]), (HOST, ports[1]))
        if i % 25 == 24:
            snapshots.append(path.read_bytes())  # the file as it lies on disk during the call
    async with asyncio.timeout(5):
        while sum(s.packets for s in session.stats()) < 2 * 50 * seconds:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.01)
    result = await session.close()

    flac = plaintext(path)
    data = decode(flac)
    assert len(data) == result.frames > 0
    assert dominant_frequency(data[:, 0]) == pytest.approx(440, abs=3)
    assert dominant_frequency(data[:, 1]) == pytest.approx(1000, abs=3)
    pcm = np.stack([decode_ulaw(payloads[0]), decode_ulaw(payloads[1])], axis=1)
    assert len(snapshots[-1]) > 32 + 28  # audio reached the disk during the call, flushed
    for raw in [*snapshots, path.read_bytes()]:
        assert leaks(raw, flac, pcm) == []
