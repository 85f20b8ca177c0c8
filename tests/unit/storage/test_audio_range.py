"""Byte ranges of a recording's audio (storage.audio_range): RFC 9110 §14 range sets, and the plaintext of
plain and sealed FLAC files read a range at a time."""

from __future__ import annotations

import contextlib
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from uuid import uuid4

import pytest

from storage import FileBlobStore, Recording, RecordingStatus
from storage.audio_opener import plain_audio_opener
from storage.audio_range import (
    ByteRange,
    RangeNotSatisfiableError,
    content_type,
    file_extension,
    open_audio,
    parse_range,
)
from storage.errors import IntegrityError
from storage.sealed import DEFAULT_CHUNK_SIZE, SEALED_FORMAT, open_plain, seal_file
from storage.sealed_format import HEADER_SIZE, NONCE_SIZE, OVERHEAD
from tests.unit.storage.retention_samples import write_tone_flac

T0 = datetime(2026, 11, 28, 14, 3, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-499", ByteRange(start=0, end=499)),
        ("bytes=0-", ByteRange(start=0, end=9999)),
        ("bytes=500-999", ByteRange(start=500, end=999)),
        ("bytes=9500-20000", ByteRange(start=9500, end=9999)),  # last-pos past the end: cut to it
        ("bytes=-500", ByteRange(start=9500, end=9999)),  # suffix: the last 500
        ("bytes=-20000", ByteRange(start=0, end=9999)),  # a suffix longer than the audio: all of it
        ("BYTES = 10-19", ByteRange(start=10, end=19)),  # the unit is case-insensitive
        ("bytes=9999-9999", ByteRange(start=9999, end=9999)),
        # Ignored (served whole): another unit, invalid specs, several ranges.
        ("items=0-5", None),
        ("bytes=500-100", None),
        ("bytes=-", None),
        ("bytes=abc", None),
        ("bytes=0-1,5-9", None),
        ("bytes", None),
        ("", None),
    ],
)
def test_range_headers_against_ten_thousand_bytes(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 10_000) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=10000-", 10_000), ("bytes=-0", 10_000), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiableError) as raised:
        parse_range(header, size)
    assert raised.value.size == size


def test_content_range_and_media_types() -> None:
    assert ByteRange(start=500, end=999).content_range(10_000) == "bytes 500-999/10000"
    assert ByteRange(start=500, end=999).length == 500
    assert [content_type(f) for f in ("flac", "wav", "opus", "mp3", "FLAC")] == [
        "audio/flac",
        "audio/wav",
        "audio/ogg",
        "audio/mpeg",
        "audio/flac",
    ]
    assert content_type(None) == "application/octet-stream"
    assert (file_extension("opus"), file_extension("exe"), file_extension(None)) == ("opus", "bin", "bin")
    with pytest.raises(ValueError, match="not one"):
        ByteRange(start=5, end=4)


def recording_at(path: Path | None, *, format: str = "flac", encryption: str | None = None) -> Recording:
    return Recording(
        id=uuid4(),
        reference="HT-7K3M-Q9RX",
        call_id="3c26700c1f5e4b2a9d0e@192.0.2.10",
        status=RecordingStatus.COMPLETE,
        started_at=T0,
        file_path=None if path is None else str(path),
        format=format,
        encryption=encryption,
    )


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


@pytest.fixture
def flac(blobs: FileBlobStore) -> Path:
    path = blobs.path_for(uuid4(), T0, "flac")
    write_tone_flac(path, seconds=3.0)
    return path


def test_ranges_of_a_plain_file(blobs: FileBlobStore, flac: Path) -> None:
    plain = flac.read_bytes()
    with open_audio(plain_audio_opener(blobs), recording_at(flac)) as audio:
        assert (audio.size, audio.content_type) == (len(plain), "audio/flac")
        assert audio.read(0, 4) == b"fLaC"
        middle = ByteRange(start=1000, end=4999)
        assert b"".join(audio.pieces(middle, read_size=1024)) == plain[1000:5000]
        assert b"".join(audio.pieces()) == plain
        assert audio.read(len(plain) - 10, 100) == plain[-10:]


def test_ranges_of_a_sealed_file_are_the_plaintexts_across_chunk_boundaries(
    blobs: FileBlobStore, flac: Path
) -> None:
    plain = flac.read_bytes()
    key = secrets.token_bytes(32)
    sealed = flac.with_name(flac.name + ".sealed")
    seal_file(flac, sealed, key, chunk_size=4096)
    flac.unlink()

    def opener(recording: Recording) -> contextlib.AbstractContextManager[BinaryIO]:
        assert recording.file_path is not None
        return open_plain(recording.file_path, key)

    with open_audio(opener, recording_at(sealed, encryption=SEALED_FORMAT)) as audio:
        assert audio.size == len(plain) != sealed.stat().st_size
        for start, end in ((0, 499), (4000, 8500), (len(plain) - 500, len(plain) - 1)):
            got = b"".join(audio.pieces(ByteRange(start=start, end=end), read_size=3000))
            assert got == plain[start : end + 1]
        assert b"".join(audio.pieces()) == plain


def test_a_damaged_sealed_chunk_is_refused_not_served(blobs: FileBlobStore) -> None:
    flac = blobs.path_for(uuid4(), T0, "flac")
    write_tone_flac(flac, seconds=60.0)
    size = flac.stat().st_size
    damaged = (size // 4096) - 1  # the last full chunk, well past what a read at the start buffers
    assert damaged * 4096 > 2 * DEFAULT_CHUNK_SIZE
    key = secrets.token_bytes(32)
    sealed = flac.with_name(flac.name + ".sealed")
    seal_file(flac, sealed, key, chunk_size=4096)
    raw = bytearray(sealed.read_bytes())
    raw[HEADER_SIZE + damaged * (4096 + OVERHEAD) + NONCE_SIZE + 100] ^= 0x01  # one ciphertext octet
    sealed.write_bytes(bytes(raw))
    with open_audio(
        lambda r: open_plain(sealed, key), recording_at(sealed, encryption=SEALED_FORMAT)
    ) as audio:
        assert audio.read(0, 4) == b"fLaC"  # the chunks before it verify
        with pytest.raises(IntegrityError):
            audio.read(damaged * 4096 + 10, 100)


def test_a_recording_without_audio_or_a_missing_file(blobs: FileBlobStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="has no audio file"):
        open_audio(plain_audio_opener(blobs), recording_at(None))
    with pytest.raises(FileNotFoundError):
        open_audio(plain_audio_opener(blobs), recording_at(blobs.root / "2026/11/28/missing.flac"))
