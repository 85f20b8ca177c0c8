"""libFLAC's stream encoder through ctypes: the recorder's FLAC without the MD5 signature.

libsndfile always has libFLAC compute the MD5 of the audio (RFC 9639 §8.2: an all-zero signature means "not
computed"), which costs a fifth of the encoding at level 0 on 8 kHz stereo: about 50 µs of CPU per call-second,
five per cent of a core at 1,000 calls. Calling libFLAC itself lets the recorder switch it off; the frames are
the ones libsndfile would have written (same level, block size and subframe choices). Integrity does not need
it: every recording carries the SHA-256 of its file in the catalogue, and sealed files authenticate every chunk.

:func:`available` says whether a libFLAC (1.3 or later, ``libFLAC.so.8`` or ``.12``) can be loaded; the writer
falls back to libsndfile without it. Callbacks run on the thread that calls :meth:`StreamEncoder.encode`; an
exception raised by the sink inside one is kept and raised from that call once libFLAC has returned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["StreamEncoder", "available"]

_NAMES = ("libFLAC.so.12", "libFLAC.so.8")
# FLAC/stream_encoder.h return codes
_INIT_OK = 0
_WRITE_OK, _WRITE_FATAL = 0, 1
_SEEK_OK, _SEEK_ERROR = 0, 1
_TELL_OK, _TELL_ERROR = 0, 1

_WriteCallback = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_ubyte),
    ctypes.c_size_t,
    ctypes.c_uint32,
    ctypes.c_uint32,
    ctypes.c_void_p,
)
_SeekCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p)
_TellCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.c_void_p
)


@functools.cache
def _library() -> Any:
    """The loaded libFLAC with the prototypes this module uses, or None."""
    names = [*_NAMES]
    found = ctypes.util.find_library("FLAC")
    if found:
        names.append(found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            _declare(lib)
        except AttributeError:  # not a libFLAC this module knows
            continue
        return lib
    return None


def _declare(lib: Any) -> None:
    encoder = ctypes.c_void_p
    lib.FLAC__stream_encoder_new.restype = encoder
    lib.FLAC__stream_encoder_new.argtypes = []
    for setter in ("channels", "bits_per_sample", "sample_rate", "compression_level", "do_md5"):
        function = getattr(lib, f"FLAC__stream_encoder_set_{setter}")
        function.argtypes = [encoder, ctypes.c_uint32]
        function.restype = ctypes.c_int
    lib.FLAC__stream_encoder_init_stream.argtypes = [
        encoder,
        _WriteCallback,
        _SeekCallback,
        _TellCallback,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.FLAC__stream_encoder_init_stream.restype = ctypes.c_int
    lib.FLAC__stream_encoder_process_interleaved.argtypes = [encoder, ctypes.c_void_p, ctypes.c_uint32]
    lib.FLAC__stream_encoder_process_interleaved.restype = ctypes.c_int
    lib.FLAC__stream_encoder_finish.argtypes = [encoder]
    lib.FLAC__stream_encoder_finish.restype = ctypes.c_int
    lib.FLAC__stream_encoder_delete.argtypes = [encoder]
    lib.FLAC__stream_encoder_delete.restype = None
    lib.FLAC__stream_encoder_get_state.argtypes = [encoder]
    lib.FLAC__stream_encoder_get_state.restype = ctypes.c_int


def available() -> bool:
    """Whether libFLAC can be loaded here."""
    return _library() is not None


class StreamEncoder:
    """A FLAC stream (16-bit PCM, the given level, no MD5) encoded into ``write``/``seek``/``tell``.

    The ``fLaC`` marker and STREAMINFO are written at once; each frame as libFLAC completes it; :meth:`finish`
    flushes the last frame and rewrites STREAMINFO (sample count, frame sizes) through ``seek``."""

    def __init__(
        self,
        write: Callable[[bytes], object],
        seek: Callable[[int], object],
        tell: Callable[[], int],
        *,
        channels: int,
        sample_rate: int,
        level: int = 0,
    ) -> None:
        lib = _library()
        if lib is None:
            raise RuntimeError("libFLAC is not installed (Debian: libflac12)")
        self._lib = lib
        self._channels = channels
        # The callbacks keep their errors here, not on self: a closure over self would make a reference cycle
        # (self → callbacks → closure → self) that only the cycle collector frees.
        errors: list[BaseException] = []
        self._errors = errors
        self._encoder = lib.FLAC__stream_encoder_new()
        if not self._encoder:
            raise MemoryError("libFLAC could not allocate an encoder")

        def on_write(_e: Any, data: Any, length: int, _samples: int, _frame: int, _client: Any) -> int:
            try:
                write(ctypes.string_at(data, length))
            except BaseException as exc:  # kept, raised from encode() or finish()
                errors.append(exc)
                return _WRITE_FATAL
            return _WRITE_OK

        def on_seek(_e: Any, offset: int, _client: Any) -> int:
            try:
                seek(offset)
            except BaseException as exc:
                errors.append(exc)
                return _SEEK_ERROR
            return _SEEK_OK

        def on_tell(_e: Any, offset: Any, _client: Any) -> int:
            try:
                offset[0] = tell()
            except BaseException as exc:
                errors.append(exc)
                return _TELL_ERROR
            return _TELL_OK

        # Kept referenced as long as the encoder lives: libFLAC calls them until finish().
        self._callbacks = (_WriteCallback(on_write), _SeekCallback(on_seek), _TellCallback(on_tell))
        try:
            configured = (
                lib.FLAC__stream_encoder_set_channels(self._encoder, channels)
                and lib.FLAC__stream_encoder_set_bits_per_sample(self._encoder, 16)
                and lib.FLAC__stream_encoder_set_sample_rate(self._encoder, sample_rate)
                and lib.FLAC__stream_encoder_set_compression_level(self._encoder, level)
                and lib.FLAC__stream_encoder_set_do_md5(self._encoder, 0)
            )
            if not configured:
                raise ValueError(f"libFLAC refused {channels} channels at {sample_rate} Hz, level {level}")
            status = lib.FLAC__stream_encoder_init_stream(self._encoder, *self._callbacks, None, None)
            self._raise_kept()
            if status != _INIT_OK:
                raise RuntimeError(f"libFLAC could not start the stream (init status {status})")
        except BaseException:
            lib.FLAC__stream_encoder_delete(self._encoder)
            self._encoder = None
            raise

    def encode(self, frames: npt.NDArray[np.int16]) -> None:
        """Encode int16 frames shaped ``(n, channels)``; the sink's error, or ``RuntimeError``."""
        if self._encoder is None:
            raise ValueError("encode after finish")
        samples = np.ascontiguousarray(frames, dtype=np.int32)  # libFLAC takes 32-bit samples
        done = self._lib.FLAC__stream_encoder_process_interleaved(
            self._encoder, samples.ctypes.data, len(frames)
        )
        self._raise_kept()
        if not done:
            state = self._lib.FLAC__stream_encoder_get_state(self._encoder)
            raise RuntimeError(f"libFLAC failed to encode (encoder state {state})")

    def finish(self) -> None:
        """Encode what is buffered, rewrite STREAMINFO and free the encoder; idempotent."""
        encoder, self._encoder = self._encoder, None
        if encoder is None:
            return
        try:
            done = self._lib.FLAC__stream_encoder_finish(encoder)
            state = self._lib.FLAC__stream_encoder_get_state(encoder)
        finally:
            self._lib.FLAC__stream_encoder_delete(encoder)
        self._raise_kept()
        if not done:
            raise RuntimeError(f"libFLAC failed to finish the stream (encoder state {state})")

    def _raise_kept(self) -> None:
        if self._errors:
            error = self._errors[0]
            self._errors.clear()
            raise error
