from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest
import soundfile

from storage import FileBlobStore

RECORDING_ID = UUID("3f1c2b9e-7d4a-4c55-9a55-0c2a6f0d8e11")


def write_call_audio(path: Path, seconds: float) -> None:
    """Two-channel 8 kHz 16-bit WAV: a 440 Hz tone on the caller's side, 1 kHz on the callee's, some noise."""
    rate = 8000
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(5)
    caller = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)
    callee = 0.3 * np.sin(2 * np.pi * 1000 * t) + 0.01 * rng.standard_normal(t.size)
    soundfile.write(path, np.stack([caller, callee], axis=1), rate, subtype="PCM_16")


def test_path_is_sharded_by_the_utc_day_and_its_directory_exists(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "recordings")
    # 00:30 on 1 March in Budapest is still 28 February in UTC.
    started = datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    path = store.path_for(RECORDING_ID, started, "flac")
    assert path == tmp_path / "recordings" / "2026" / "02" / "28" / f"{RECORDING_ID}.flac"
    assert path.parent.is_dir()
    assert not path.exists()  # the media layer writes it
    assert store.path_for(RECORDING_ID, started, ".FLAC") == path


@pytest.mark.parametrize("ext", ["", "../flac", "fl ac", "tar.gz", "x" * 9, "wav/"])
def test_path_for_refuses_unusable_extensions(tmp_path: Path, ext: str) -> None:
    with pytest.raises(ValueError, match="extension"):
        FileBlobStore(tmp_path).path_for(RECORDING_ID, datetime(2026, 11, 28, tzinfo=UTC), ext)


def test_path_for_refuses_naive_times(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FileBlobStore(tmp_path).path_for(RECORDING_ID, datetime(2026, 11, 28, 14, 3), "flac")


def test_hash_size_and_read_of_a_recording_larger_than_one_chunk(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    path = store.path_for(RECORDING_ID, datetime(2026, 11, 28, 14, 3, 7, tzinfo=UTC), "wav")
    write_call_audio(path, seconds=40)  # 1.28 MB: spans two read chunks
    content = path.read_bytes()
    assert len(content) > 1 << 20
    assert store.sha256(path) == hashlib.sha256(content).hexdigest()
    assert store.size(path) == len(content)
    relative = path.relative_to(tmp_path)
    assert store.size(relative) == len(content)
    with store.open_read(str(relative)) as handle:
        assert handle.read(4) == b"RIFF"
    with store.open_read(path) as handle:
        audio, rate = soundfile.read(handle)
    assert rate == 8000
    assert audio.shape == (320_000, 2)


def test_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    root.mkdir()
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"tenant key")
    (root / "escape.flac").symlink_to(secret)
    store = FileBlobStore(root)
    for path in (secret, "../secret.key", root / "2026" / ".." / ".." / "secret.key", "escape.flac"):
        with pytest.raises(ValueError, match="outside the recordings directory"):
            store.open_read(path)
    with pytest.raises(ValueError, match="outside"):
        store.sha256(Path("/etc/passwd"))


def test_missing_file_is_reported_as_such(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    path = store.path_for(RECORDING_ID, datetime(2026, 11, 28, tzinfo=UTC), "flac")
    with pytest.raises(FileNotFoundError):
        store.sha256(path)


def test_remove_frees_the_files_bytes_and_a_missing_file_frees_none(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "recordings")
    path = store.path_for(RECORDING_ID, datetime(2026, 11, 28, 14, 3, tzinfo=UTC), "wav")
    write_call_audio(path, 2.0)
    size = path.stat().st_size
    relative = path.relative_to(store.root)
    assert store.resolve(relative) == path.resolve()
    assert store.remove(relative) == size and not path.exists()
    assert store.remove(path) == 0  # already gone: an earlier attempt removed it
    assert path.parent.is_dir()  # only the file goes


def test_remove_never_touches_a_file_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    root.mkdir()
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"tenant key")
    (root / "escape.flac").symlink_to(secret)
    store = FileBlobStore(root)
    for path in (secret, "../secret.key", root / "2026" / ".." / ".." / "secret.key", "escape.flac"):
        with pytest.raises(ValueError, match="outside the recordings directory"):
            store.remove(path)
        with pytest.raises(ValueError, match="outside the recordings directory"):
            store.resolve(path)
    assert secret.read_bytes() == b"tenant key" and (root / "escape.flac").is_symlink()
