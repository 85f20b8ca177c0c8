"""The sealed writer's chunking: new files in 16 KiB chunks, files in any other chunk size (the 64 KiB of
files already stored) still read and seek, the chunks one write fills go out together, and a write the disk
refuses leaves the writer as it was."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from media.writer import FlacWriter
from storage.sealed import (
    SealedReader,
    SealedWriter,
    finish_unfinished,
    open_plain,
    sealed_size,
    verify_sealed,
)
from storage.sealed_format import DEFAULT_CHUNK_SIZE, HEADER_SIZE, Header
from tests.unit.storage.test_sealed import RATE, Int16, phone_call

FORMER_CHUNK_SIZE = 65536  # the default until recordings were flushed in smaller chunks


def record(target: Path | SealedWriter, audio: Int16) -> None:
    """As the server records: a write a second, the sink flushed after each."""
    writer = FlacWriter(target, 2, RATE, count_every=10.0)
    for start in range(0, len(audio), RATE):
        writer.write(audio[start : start + RATE])
    writer.close()


@pytest.fixture(scope="module")
def call() -> Int16:
    return phone_call(20.0, seed=11)


@pytest.fixture(scope="module")
def plain(call: Int16, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("plain") / "call.flac"
    record(path, call)
    return path.read_bytes()


@pytest.mark.parametrize("chunk_size", [None, FORMER_CHUNK_SIZE, 4096])
def test_a_recording_reads_and_seeks_whatever_its_chunk_size(
    call: Int16, plain: bytes, tmp_path: Path, chunk_size: int | None
) -> None:
    key = os.urandom(32)
    path = tmp_path / "call.flac.sealed"
    record(
        SealedWriter(path, key) if chunk_size is None else SealedWriter(path, key, chunk_size=chunk_size),
        call,
    )
    expected_chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    assert Header.parse(path.read_bytes()[:HEADER_SIZE]).chunk_size == expected_chunk
    assert path.stat().st_size == sealed_size(len(plain), expected_chunk)
    assert len(plain) > 3 * expected_chunk  # many chunks, re-sealed at every flush as the file grew
    assert verify_sealed(path, key) == len(plain)
    with open_plain(path, key) as source:
        assert source.read() == plain
    with SealedReader(path, key) as reader, soundfile.SoundFile(reader) as flac:
        assert flac.frames == len(call)
        for frame in (len(call) // 3, 17, len(call) - RATE, 0):
            flac.seek(frame)
            assert np.array_equal(flac.read(RATE // 2, dtype="int16"), call[frame : frame + RATE // 2])


class Syscalls:
    """Counts (and can fail) the writes the sealed writer makes to its file."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int, int]] = []  # (call, octets, offset)
        self.fail_next = False
        for name in ("pwrite", "pwritev"):
            monkeypatch.setattr(os, name, self._wrap(name, getattr(os, name)))

    def _wrap(self, name: str, real: Callable[..., int]) -> Callable[..., int]:
        def call(fd: int, data: Any, offset: int) -> int:
            size = sum(map(len, data)) if name == "pwritev" else len(data)
            self.calls.append((name, size, offset))
            if self.fail_next:
                self.fail_next = False
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, data, offset)

        return call


def test_the_chunks_one_write_fills_go_to_disk_with_one_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    syscalls = Syscalls(monkeypatch)
    key, chunk = os.urandom(32), 1024
    data = os.urandom(10 * chunk + 300)
    path = tmp_path / "f.sealed"
    writer = SealedWriter(path, key, chunk_size=chunk)
    writer.write(data[:700])  # a partial chunk: stays in memory
    writer.write(data[700 : 6 * chunk + 100])  # fills chunks 0-5
    writer.write(data[6 * chunk + 100 :])  # fills 6-9, leaves 300 octets
    stride = chunk + 28
    assert syscalls.calls == [
        ("pwrite", HEADER_SIZE, 0),
        ("pwritev", 6 * stride, HEADER_SIZE),
        ("pwritev", 4 * stride, HEADER_SIZE + 6 * stride),
    ]
    writer.flush()
    assert syscalls.calls[-1] == ("pwrite", 300 + 28, HEADER_SIZE + 10 * stride)
    writer.close()
    with open_plain(path, key) as source:
        assert source.read() == data


def test_a_write_the_disk_refuses_leaves_the_writer_as_it_was(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    syscalls = Syscalls(monkeypatch)
    key, chunk = os.urandom(32), 4096
    first, second = os.urandom(3000), os.urandom(3 * chunk)
    path = tmp_path / "full.sealed"
    writer = SealedWriter(path, key, chunk_size=chunk)
    writer.write(first)
    writer.flush()
    syscalls.fail_next = True
    with pytest.raises(OSError, match="No space left"):
        writer.write(second)
    assert (writer.tell(), writer.plaintext_size) == (len(first), len(first))
    assert writer.pread(len(first) + 10, 0) == first
    # A crash now: what the last flush put on disk is all there is, intact.
    crashed = tmp_path / "crashed.sealed"
    shutil.copyfile(path, crashed)
    assert finish_unfinished(crashed, key) == len(first)
    writer.write(second)  # room again: the same write goes through
    writer.close()
    with open_plain(path, key) as source:
        assert source.read() == first + second
