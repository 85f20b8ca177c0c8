"""Recordings encrypted at rest: FLAC through the sealed writer and reader, seeking, tampering, crashes."""

from __future__ import annotations

import gc
import hashlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from media.g711 import decode_ulaw, encode_ulaw
from storage.errors import IntegrityError
from storage.sealed import (
    SealedReader,
    SealedWriter,
    finish_unfinished,
    is_sealed,
    open_plain,
    patch_sealed,
    seal_file,
    sealed_size,
    verify_sealed,
)
from storage.sealed_format import DEFAULT_CHUNK_SIZE, HEADER_SIZE, NONCE_SIZE, OVERHEAD, TAG_SIZE, Header

RATE = 8000
BLOCK = 160  # 20 ms, as the recorder writes
REPO = Path(__file__).resolve().parents[3]
Int16 = npt.NDArray[np.int16]


def phone_call(seconds: float, seed: int = 5) -> Int16:
    """Two parties taking turns, voiced speech (pitch harmonics under formants, syllables, breath noise),
    each channel through G.711 µ-law as a PBX delivers it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    channels = []
    for pitch, first in ((120.0, True), (210.0, False)):
        phase = 2 * np.pi * np.cumsum(pitch * (1 + 0.06 * np.sin(2 * np.pi * 0.8 * t))) / RATE
        voice = sum(
            (np.exp(-(((k * pitch - 650) / 260) ** 2)) + 0.5 * np.exp(-(((k * pitch - 1750) / 420) ** 2)))
            / k
            * np.sin(k * phase)
            for k in range(1, 25)
        )
        syllables = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None)
        turn = (np.floor(t / 2.5) % 2 == 0) == first
        signal = voice / np.abs(voice).max() * 11000 * syllables * turn + rng.normal(0, 40, t.size)
        channels.append(decode_ulaw(encode_ulaw(np.clip(signal, -32768, 32767))))
    return np.stack(channels, axis=1).astype(np.int16)


def write_flac(target: Any, audio: Int16) -> None:
    """Encode as the recorder does: 16-bit stereo FLAC, 20 ms at a time."""
    with soundfile.SoundFile(
        target, "w", samplerate=RATE, channels=audio.shape[1], format="FLAC", subtype="PCM_16"
    ) as flac:
        for start in range(0, len(audio), BLOCK):
            flac.write(audio[start : start + BLOCK])


def read_all(path: Path, key: bytes, **options: Any) -> bytes:
    with SealedReader(path, key, **options) as reader:
        return reader.read()


@contextmanager
def swallowed_callback_errors() -> Iterator[list[Any]]:
    """Collect what libsndfile's I/O callbacks raise (cffi reports it as unraisable, then carries on)."""
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        yield seen
    finally:
        sys.unraisablehook = previous


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture(scope="module")
def call() -> Int16:
    return phone_call(12.0)


@pytest.fixture(scope="module")
def plain_flac(call: Int16, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plain") / "call.flac"
    write_flac(str(path), call)
    return path


@pytest.fixture
def sealed_flac(call: Int16, key: bytes, tmp_path: Path) -> Path:
    path = tmp_path / "call.flac.sealed"
    with SealedWriter(path, key) as writer:
        write_flac(writer, call)
    return path


def test_flac_written_through_the_writer_decrypts_to_the_same_flac(
    sealed_flac: Path, plain_flac: Path, call: Int16, key: bytes
) -> None:
    plain = plain_flac.read_bytes()
    assert (
        len(plain) > 2 * DEFAULT_CHUNK_SIZE
    )  # STREAMINFO's chunk was sealed long before libsndfile rewrote it
    assert read_all(sealed_flac, key) == plain
    assert sealed_flac.stat().st_size == sealed_size(len(plain))
    with SealedReader(sealed_flac, key) as reader:
        assert reader.plaintext_size == len(plain) and reader.finished
        samples, rate = soundfile.read(reader, dtype="int16", always_2d=True)
    assert rate == RATE
    assert np.array_equal(samples, call)


def test_ffmpeg_decodes_the_sealed_flac(sealed_flac: Path, call: Int16, key: bytes) -> None:
    with SealedReader(sealed_flac, key) as reader, av.open(reader) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.rate, stream.channels) == ("flac", RATE, 2)
        decoded = np.concatenate([frame.to_ndarray().reshape(-1, 2) for frame in container.decode(stream)])
    assert np.array_equal(decoded, call)


def test_playback_starts_mid_file(sealed_flac: Path, plain_flac: Path, call: Int16, key: bytes) -> None:
    with SealedReader(sealed_flac, key) as reader, soundfile.SoundFile(reader) as flac:
        assert flac.frames == len(call)
        flac.seek(len(call) // 2)
        middle = flac.read(RATE, dtype="int16")
        flac.seek(-RATE, soundfile.SEEK_END)
        end = flac.read(dtype="int16")
    assert np.array_equal(middle, call[len(call) // 2 : len(call) // 2 + RATE])
    assert np.array_equal(end, call[-RATE:])

    plain = plain_flac.read_bytes()
    with SealedReader(sealed_flac, key) as reader:
        chunk = DEFAULT_CHUNK_SIZE
        for offset in (chunk - 1, chunk, 3 * chunk - 1, 4 * chunk + 1, len(plain) - 10, 12345, 0):
            assert reader.seek(offset) == offset
            assert reader.read(70000) == plain[offset : offset + 70000]
        assert reader.seek(-5, io.SEEK_END) == len(plain) - 5
        assert reader.read() == plain[-5:]
        assert reader.read(10) == b""
        reader.seek(len(plain) + 100)
        assert reader.read(10) == b""
        with pytest.raises(ValueError, match="negative"):
            reader.seek(-1)


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 128, 200])
def test_chunk_boundaries(length: int, key: bytes, tmp_path: Path) -> None:
    chunk = 64
    data = os.urandom(length)
    path = tmp_path / "f.sealed"
    with SealedWriter(path, key, chunk_size=chunk) as writer:
        assert writer.write(data) == length
    chunks = max(1, -(-length // chunk))  # an empty file still has its (empty) final chunk
    assert path.stat().st_size == HEADER_SIZE + chunks * OVERHEAD + length == sealed_size(length, chunk)
    with SealedReader(path, key) as reader:
        assert reader.plaintext_size == length
        assert reader.read() == data
        assert reader.read(1) == b""
    assert verify_sealed(path, key) == length


def test_the_file_on_disk_is_not_audio_and_holds_no_plaintext(
    sealed_flac: Path, plain_flac: Path, key: bytes
) -> None:
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.info(str(sealed_flac))
    with pytest.raises(av.InvalidDataError), av.open(str(sealed_flac)):
        pass
    sealed, plain = sealed_flac.read_bytes(), plain_flac.read_bytes()
    windows = {sealed[i : i + 16] for i in range(len(sealed) - 15)}
    assert not any(plain[i : i + 16] in windows for i in range(len(plain) - 15))
    assert is_sealed(sealed_flac) and not is_sealed(plain_flac)


def region(offset: int, chunk: int) -> str:
    if offset < HEADER_SIZE:
        return "header"
    within = (offset - HEADER_SIZE) % (OVERHEAD + chunk)
    if within < NONCE_SIZE:
        return "nonce"
    return "ciphertext" if within < NONCE_SIZE + chunk else "tag"


def test_every_single_byte_change_is_detected(call: Int16, key: bytes, tmp_path: Path) -> None:
    chunk = 256
    path = tmp_path / "short.sealed"
    with SealedWriter(path, key, chunk_size=chunk) as writer:
        write_flac(writer, call[:2000])
    original = path.read_bytes()
    assert len(original) > 8 * (OVERHEAD + chunk)
    seen = set()
    for offset in range(len(original)):
        damaged = bytearray(original)
        damaged[offset] ^= 0x01 << (offset % 8)
        path.write_bytes(damaged)
        with pytest.raises(IntegrityError):
            verify_sealed(path, key)
        seen.add(region(offset, chunk))
    assert seen == {"header", "nonce", "ciphertext", "tag"}


def test_damage_surfaces_through_the_decoders(sealed_flac: Path, key: bytes) -> None:
    damaged = bytearray(sealed_flac.read_bytes())
    damaged[HEADER_SIZE + (OVERHEAD + DEFAULT_CHUNK_SIZE) + 500] ^= 0x40  # the second chunk's ciphertext
    sealed_flac.write_bytes(damaged)
    with (
        SealedReader(sealed_flac, key) as reader,
        pytest.raises(IntegrityError, match="chunk 1"),
        av.open(reader) as container,
    ):
        for _ in container.decode(audio=0):
            pass
    with SealedReader(sealed_flac, key) as reader:
        with swallowed_callback_errors() as swallowed, pytest.raises(soundfile.LibsndfileError):
            soundfile.read(reader, dtype="int16")
        assert isinstance(reader.integrity_error, IntegrityError)
        assert swallowed and all(isinstance(error.exc_value, IntegrityError) for error in swallowed)


def test_truncation_at_any_chunk_boundary_is_detected(key: bytes, tmp_path: Path) -> None:
    chunk = 64
    path = tmp_path / "f.sealed"
    with SealedWriter(path, key, chunk_size=chunk) as writer:
        writer.write(os.urandom(5 * chunk + 17))
    original = path.read_bytes()
    for chunks in range(6):
        path.write_bytes(original[: HEADER_SIZE + chunks * (OVERHEAD + chunk)])
        with pytest.raises(IntegrityError, match="final chunk"):
            SealedReader(path, key)
    for cut in (1, TAG_SIZE, 40):
        path.write_bytes(original[:-cut])
        with pytest.raises(IntegrityError):
            SealedReader(path, key)
    for size in (0, 10, HEADER_SIZE - 1):
        path.write_bytes(original[:size])
        with pytest.raises(IntegrityError, match="shorter than a sealed header"):
            SealedReader(path, key)


def test_swapped_chunks_are_detected(key: bytes, tmp_path: Path) -> None:
    chunk, stride = 64, OVERHEAD + 64
    path = tmp_path / "f.sealed"
    original = os.urandom(4 * chunk + 9)
    with SealedWriter(path, key, chunk_size=chunk) as writer:
        writer.write(original)
    data = bytearray(path.read_bytes())
    first, second = HEADER_SIZE + stride, HEADER_SIZE + 2 * stride
    data[first : first + stride], data[second : second + stride] = (
        data[second : second + stride],
        data[first : first + stride],
    )
    path.write_bytes(data)
    with SealedReader(path, key) as reader:
        assert reader.read(chunk) == original[:chunk]  # chunk 0 is untouched
        with pytest.raises(IntegrityError, match="chunk 1"):
            reader.read(1)


def test_chunks_and_headers_from_another_file_are_refused(key: bytes, tmp_path: Path) -> None:
    chunk, stride = 64, OVERHEAD + 64
    data = os.urandom(3 * chunk + 20)
    one, other = tmp_path / "one.sealed", tmp_path / "other.sealed"
    for path in (one, other):  # same key, same content, same layout: only the file ids differ
        with SealedWriter(path, key, chunk_size=chunk) as writer:
            writer.write(data)
    mine, theirs = one.read_bytes(), other.read_bytes()
    at = HEADER_SIZE + stride
    one.write_bytes(mine[:at] + theirs[at : at + stride] + mine[at + stride :])
    with pytest.raises(IntegrityError, match="chunk 1"):
        verify_sealed(one, key)
    one.write_bytes(theirs[:HEADER_SIZE] + mine[HEADER_SIZE:])
    with pytest.raises(IntegrityError):
        SealedReader(one, key)
    one.write_bytes(mine)
    assert verify_sealed(one, key) == len(data)
    with pytest.raises(IntegrityError, match="key is wrong"):
        SealedReader(one, os.urandom(32))


CRASHING_RECORDER = """
import os, sys
import numpy as np, soundfile
from storage.sealed import SealedWriter

path, key, flush = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3] == "flush"
audio = np.load(sys.argv[4])
writer = SealedWriter(path, key, chunk_size=4096)
flac = soundfile.SoundFile(writer, "w", samplerate=8000, channels=2, format="FLAC", subtype="PCM_16")
frames = patched = block = bits = 0
for start in range(0, len(audio), 160):
    flac.write(audio[start : start + 160])
    frames += 160
    if not block:  # the recorder keeps STREAMINFO's sample count current (media/writer.py), here by pwrite
        head = writer.pread(26, 0)
        block = int.from_bytes(head[8:10], "big")
        bits = int.from_bytes(head[18:26], "big") & ~((1 << 36) - 1)
    on_disk = (frames - 1) // block * block
    if on_disk > patched:
        writer.pwrite((bits | on_disk).to_bytes(8, "big"), 18)
        patched = on_disk
if flush:
    writer.flush()
print(patched, writer.plaintext_size)
os._exit(0)  # killed: neither the FLAC encoder nor the writer is closed
"""


def crash_while_recording(path: Path, key: bytes, audio: Int16, *, flush: bool) -> tuple[int, int]:
    samples = path.with_suffix(".npy")
    np.save(samples, audio)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASHING_RECORDER,
            str(path),
            key.hex(),
            "flush" if flush else "-",
            str(samples),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    patched, size = done.stdout.split()
    return int(patched), int(size)


def test_a_recorder_killed_after_flush_leaves_every_frame_recoverable(
    call: Int16, key: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "crashed.flac.sealed"
    frames, size = crash_while_recording(path, key, call[: 5 * RATE], flush=True)
    assert frames > 4 * RATE
    with pytest.raises(IntegrityError, match="never closed"):
        SealedReader(path, key)
    with SealedReader(path, key, allow_unfinished=True) as reader:
        assert (reader.plaintext_size, reader.finished) == (size, False)
        recovered, _ = soundfile.read(reader, dtype="int16", always_2d=True)
    assert len(recovered) == frames
    assert np.array_equal(recovered, call[:frames])

    unfinished = read_all(path, key, allow_unfinished=True)
    assert finish_unfinished(path, key) == size
    assert read_all(path, key) == unfinished
    assert finish_unfinished(path, key) == size  # a finished file is left alone


def test_a_crash_without_flush_loses_only_the_partial_chunk(call: Int16, key: bytes, tmp_path: Path) -> None:
    path = tmp_path / "crashed.flac.sealed"
    _, size = crash_while_recording(path, key, call[: 3 * RATE], flush=False)
    with SealedReader(path, key, allow_unfinished=True) as reader:
        assert reader.plaintext_size == size // 4096 * 4096 > 0
        head = reader.read(4)
    assert head == b"fLaC"
    assert finish_unfinished(path, key) == size // 4096 * 4096
    assert verify_sealed(path, key) == size // 4096 * 4096


def test_a_dropped_writer_leaves_an_unfinished_file(key: bytes, tmp_path: Path) -> None:
    path = tmp_path / "dropped.sealed"
    data = os.urandom(300)
    writer = SealedWriter(path, key, chunk_size=128)
    writer.write(data)
    writer.flush()
    del writer
    gc.collect()
    with pytest.raises(IntegrityError):
        SealedReader(path, key)
    assert read_all(path, key, allow_unfinished=True) == data
    assert finish_unfinished(path, key) == 300
    assert read_all(path, key) == data


def test_recovery_drops_a_torn_trailing_chunk_and_nothing_else(key: bytes, tmp_path: Path) -> None:
    chunk, stride = 64, OVERHEAD + 64
    path = tmp_path / "torn.sealed"
    data = os.urandom(3 * chunk)
    writer = SealedWriter(path, key, chunk_size=chunk)
    writer.write(data)  # three full chunks on disk, none final
    body = path.read_bytes()
    del writer
    for torn in (os.urandom(20), os.urandom(NONCE_SIZE + 30 + TAG_SIZE), body[-stride:]):
        path.write_bytes(body + torn)  # a short write, or a chunk that does not verify at its place
        assert read_all(path, key, allow_unfinished=True) == data
    assert finish_unfinished(path, key) == len(data)
    assert path.stat().st_size == sealed_size(len(data), chunk)
    assert read_all(path, key) == data

    damaged = bytearray(body)
    damaged[HEADER_SIZE + 2 * stride + 20] ^= 1  # a changed chunk before a torn one: damage, not a crash
    path.write_bytes(damaged + os.urandom(20))
    with pytest.raises(IntegrityError, match="damaged"):
        finish_unfinished(path, key)

    damaged = bytearray(body)
    damaged[HEADER_SIZE + stride + 20] ^= 1  # recovery only looks at the end: damage further in stays visible
    path.write_bytes(damaged)
    assert finish_unfinished(path, key) == len(data)
    with pytest.raises(IntegrityError, match="chunk 1"):
        verify_sealed(path, key)


def test_patching_rewrites_octets_in_place_and_keeps_the_final_chunk_final(
    key: bytes, tmp_path: Path
) -> None:
    data = bytearray(os.urandom(200))
    finished = tmp_path / "finished.sealed"
    with SealedWriter(finished, key, chunk_size=64) as writer:
        writer.write(data)
    patch_sealed(finished, key, b"NEW", 10)  # in a full chunk
    patch_sealed(finished, key, b"END", 197)  # in the final chunk
    data[10:13], data[197:200] = b"NEW", b"END"
    assert read_all(finished, key) == bytes(data)  # strict: the last chunk still verifies as final
    with pytest.raises(ValueError, match="within one chunk"):
        patch_sealed(finished, key, b"ACROSS", 62)
    with pytest.raises(ValueError, match="within one chunk"):
        patch_sealed(finished, key, b"PAST", 199)

    unfinished = tmp_path / "unfinished.sealed"
    writer = SealedWriter(unfinished, key, chunk_size=64)
    writer.write(data[:150])
    writer.flush()
    del writer
    gc.collect()
    patch_sealed(unfinished, key, b"HEAD", 0)
    assert finish_unfinished(unfinished, key) == 150
    assert read_all(unfinished, key) == b"HEAD" + bytes(data[4:150])


def test_recovery_of_a_file_with_no_chunk_yet(key: bytes, tmp_path: Path) -> None:
    path = tmp_path / "new.sealed"
    writer = SealedWriter(path, key)
    writer.write(b"fLaC")  # still in memory
    del writer
    assert path.stat().st_size == HEADER_SIZE
    assert read_all(path, key, allow_unfinished=True) == b""
    assert finish_unfinished(path, key) == 0
    assert read_all(path, key) == b""


def test_flush_writes_the_partial_chunk_but_not_as_final(key: bytes, tmp_path: Path) -> None:
    path = tmp_path / "f.sealed"
    with SealedWriter(path, key, chunk_size=64) as writer:
        writer.write(b"x" * 100)
        writer.flush()
        with pytest.raises(IntegrityError):
            SealedReader(path, key)
        assert read_all(path, key, allow_unfinished=True) == b"x" * 100
        writer.write(b"y" * 10)
    assert read_all(path, key) == b"x" * 100 + b"y" * 10
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"z")


Op = tuple[str, int, bytes]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.just(0), st.binary(max_size=70)),
        st.tuples(st.just("seek"), st.integers(0, 200), st.just(b"")),
        st.tuples(st.just("pwrite"), st.integers(0, 200), st.binary(min_size=1, max_size=40)),
        st.tuples(st.just("pread"), st.integers(0, 200), st.just(b"")),
        st.tuples(st.just("flush"), st.just(0), st.just(b"")),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_the_writer_behaves_like_a_regular_file(operations: list[Op]) -> None:
    key = bytes(range(32))
    model = bytearray()
    position = 0
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "f.sealed"
        writer = SealedWriter(path, key, chunk_size=16)
        for name, number, data in operations:
            if name in ("write", "pwrite") and data:
                at = position if name == "write" else number
                model.extend(bytes(max(0, at - len(model))))
                model[at : at + len(data)] = data
            if name == "write":
                assert writer.write(data) == len(data)
                position += len(data)
            elif name == "pwrite":
                assert writer.pwrite(data, number) == len(data)
            elif name == "seek":
                position = writer.seek(number)
            elif name == "pread":
                assert writer.pread(37, number) == bytes(model[number : number + 37])
            else:
                writer.flush()
            assert (writer.tell(), writer.plaintext_size) == (position, len(model))
        writer.flush()
        assert read_all(path, key, allow_unfinished=True) == model
        writer.close()
        assert read_all(path, key) == model
        assert path.stat().st_size == sealed_size(len(model), 16)


def test_sealing_an_existing_file_and_opening_either_kind(
    plain_flac: Path, call: Int16, key: bytes, tmp_path: Path
) -> None:
    sealed = tmp_path / "sealed"
    assert seal_file(plain_flac, sealed, key) == plain_flac.stat().st_size
    expected = hashlib.sha256(plain_flac.read_bytes()).hexdigest()
    for path, data_key in ((sealed, key), (plain_flac, None)):
        with open_plain(path, data_key) as stream:
            assert hashlib.sha256(stream.read()).hexdigest() == expected
        with open_plain(path, data_key) as stream:
            samples, _ = soundfile.read(stream, dtype="int16", always_2d=True)
        assert np.array_equal(samples, call)

    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError):
        seal_file(missing, tmp_path / "out", key)
    assert not (tmp_path / "out").exists()


def test_keys_and_headers_are_checked(key: bytes, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="AES-256"):
        SealedWriter(tmp_path / "f", key[:16])
    with pytest.raises(ValueError, match="chunk size"):
        SealedWriter(tmp_path / "g", key, chunk_size=8)
    with pytest.raises(IntegrityError, match="magic"):
        Header.parse(b"fLaC" + bytes(60))
    good = bytes(Header.new(4096))
    assert Header.parse(good).chunk_size == 4096
    with pytest.raises(IntegrityError, match="version"):
        Header.parse(good[:8] + b"\x00\x02" + good[10:])
    with pytest.raises(IntegrityError, match="chunk size"):
        Header.parse(good[:12] + bytes(4) + good[16:])
