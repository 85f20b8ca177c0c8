"""How services that read stored audio get its bytes: injected openers, so the same code reads plain and
encrypted files.

An :data:`AudioOpener` gives the plaintext of a recording's own file (``recording.file_path``: the master,
or the rendition that replaced it); a :data:`FileOpener` gives the plaintext of any other file the catalogue
names (a rendition's ``file_path``). The defaults read the files as they lie under a :class:`FileBlobStore`;
a deployment that encrypts at rest passes openers that decrypt. Both block: call them from a thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import BinaryIO

from .blobs import FileBlobStore
from .models import Recording

__all__ = ["AudioOpener", "FileOpener", "plain_audio_opener", "plain_file_opener"]

AudioOpener = Callable[[Recording], contextlib.AbstractContextManager[BinaryIO]]
FileOpener = Callable[[str], contextlib.AbstractContextManager[BinaryIO]]


def plain_audio_opener(blobs: FileBlobStore) -> AudioOpener:
    """Open ``recording.file_path`` under the blob root as it is on disk."""

    def open_audio(recording: Recording) -> contextlib.AbstractContextManager[BinaryIO]:
        if not recording.file_path:
            raise FileNotFoundError(f"recording {recording.reference} has no audio file")
        return blobs.open_read(recording.file_path)

    return open_audio


def plain_file_opener(blobs: FileBlobStore) -> FileOpener:
    """Open a catalogued file path under the blob root as it is on disk."""

    def open_file(path: str) -> contextlib.AbstractContextManager[BinaryIO]:
        return blobs.open_read(path)

    return open_file
