"""Renditions of a finished recording: the FLAC master decoded and written as WAV, Ogg/Opus or MP3 (blocking).

Measured on a 2-core server with a minute of two-party G.711-quantised speech, each party talking half the
time (CPU µs per stereo second of audio for the whole job: read the master, encode, read back, hash):

==========================================  ==============  ================  ============
encoder                                     8 kHz master    16 kHz master     size/minute
==========================================  ==============  ================  ============
WAV PCM16, libsndfile                       280             670               1.92/3.84 MB
Opus 24 kbit/s, libopus complexity 1        3,000           3,600             0.09 MB
Opus 24 kbit/s, libopus complexity 3 / 10   5,500 / 10,900  11,600 / 22,900   0.09 MB
MP3 32 kbit/s CBR, LAME -q 7                6,300           12,200            0.24 MB
==========================================  ==============  ================  ============

libsndfile's own Opus and MP3 encoders cost 15,000-21,000 and 8,600 µs (encoder alone, 8 kHz; 25,000-30,000
and 24,900 at 16 kHz) and take no exact bit rate, only a 0-1 "compression level"; so WAV goes through
libsndfile, Opus and MP3 through FFmpeg's libopus and LAME (PyAV).

- Opus (RFC 7845 Ogg encapsulation, RFC 6716): libopus takes 8, 12, 16, 24 and 48 kHz input as it is and
  records that rate in the ID header; other rates are resampled to 48 kHz by libswresample first. Mono uses
  channel mapping family 0. Two to eight channels use family 255 (RFC 7845 §5.1.1.3: discrete channels),
  one mono stream per party: coupled stereo (family 0) let the other party bleed into a silent channel at
  -19 dB in a 16 kHz call at 24 kbit/s; discrete streams keep it below -90 dB, and spend nothing on a party's
  silence. Players that know only families 0 and 1 will not play such files (libsndfile, FFmpeg and the
  players built on it do). The bit rate is given for two channels and scaled by the channel count; VBR,
  tuned for speech (``application=voip``). Complexity 1 is the default: 2 and up cost 2-3 times as much.
- MP3: constant bit rate, mono or stereo only (ISO/IEC 11172-3 has no more channels); LAME writes its info
  tag with the encoder delay and padding, so decoders trim back to the exact length.
- WAV: 16-bit PCM, sample for sample; RF64 past the 4 GiB a RIFF header can describe.

Output is written under a temporary name beside the target, checked (readable, same channels, same length),
hashed, and renamed over the target: a reader never sees half a file, and a crash leaves only a ``.part``.

Files are plain by default. A deployment that encrypts recordings at rest passes :class:`FileAccess`: the
master is then read, and the rendition written and read back, through its binary file objects (libsndfile's
virtual I/O, FFmpeg's AVIO), so no plaintext reaches the disk; the SHA-256 is of the plaintext and the size is
of the file as stored.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
import numpy.typing as npt
import soundfile

__all__ = [
    "RENDITION_FORMATS",
    "EncodeSettings",
    "FileAccess",
    "OutputFormat",
    "TranscodeError",
    "TranscodeResult",
    "transcode",
]

Frames = npt.NDArray[np.int16]

_BLOCK = 16384  # frames per read: 2 s at 8 kHz
_LENGTH_TOLERANCE = 0.002  # seconds the rendition's length may differ from the master's
_OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})  # RFC 6716 §2: the rates Opus codes natively
_MP3_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})  # MPEG-1, -2, 2.5
# every MPEG-1 and MPEG-2/2.5 Layer III bit rate; LAME clamps to what the rate allows (8 kHz: 8-64 kbit/s)
_MP3_BITRATES = frozenset(
    k * 1000 for k in (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 320)
)
_MP3_QUALITY = "7"  # LAME -q 7: 6.5 ms per stereo second at 8 kHz against 7.9 ms for -q 5, same size
_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_RIFF_LIMIT = 2**32 - 4096  # data bytes a RIFF WAV header can still count, with room for its chunks


class OutputFormat(enum.StrEnum):
    FLAC = "flac"  # the master the receive path writes
    WAV = "wav"
    OPUS = "opus"
    MP3 = "mp3"

    @property
    def extension(self) -> str:
        return self.value  # RFC 7845 §9: ".opus" for Ogg Opus files


RENDITION_FORMATS = (OutputFormat.WAV, OutputFormat.OPUS, OutputFormat.MP3)


class TranscodeError(Exception):
    """The master cannot be rendered in this format: unreadable, empty, or beyond what the format holds.

    Trying again will not help; an ``OSError`` (disk full, permissions) may."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodeSettings:
    opus_bitrate: int = 24000  # bit/s for a two-channel recording; mono gets half, four channels double
    opus_complexity: int = 1  # libopus 0-10: CPU against quality (see the table above)
    mp3_bitrate: int = 32000  # bit/s, constant

    def __post_init__(self) -> None:
        if not 6000 <= self.opus_bitrate <= 512000:
            raise ValueError(f"Opus bit rate {self.opus_bitrate} is outside 6000-512000 bit/s")
        if not 0 <= self.opus_complexity <= 10:
            raise ValueError(f"Opus complexity {self.opus_complexity} is outside 0-10")
        if self.mp3_bitrate not in _MP3_BITRATES:
            raise ValueError(f"{self.mp3_bitrate} bit/s is not an MP3 bit rate")

    def opus_rate_for(self, channels: int) -> int:
        # libopus needs at least 500 bit/s per channel; 6 kbit/s is its floor for a useful speech stream.
        return max(6000, self.opus_bitrate * channels // 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileAccess:
    """How :func:`transcode` reaches files that are not plain on disk: ``open_read`` gives a readable, seekable
    binary file of a file's plaintext (the master; the rendition when it is read back), ``open_write`` a
    writable, seekable one that stores what is written (the rendition) and is finished by ``close()``.

    Errors these objects raise inside libsndfile are swallowed by it (it fails with its own error, reported as
    a :class:`TranscodeError`); check a master's integrity before transcoding it."""

    open_read: Callable[[Path], BinaryIO]
    open_write: Callable[[Path], BinaryIO]


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscodeResult:
    format: OutputFormat
    path: str
    frames: int  # of the master
    sample_rate: int  # of the master
    channels: int
    size_bytes: int  # of the file as stored
    sha256: str  # of its content (the plaintext, with FileAccess)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def transcode(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    fmt: OutputFormat | str,
    settings: EncodeSettings | None = None,
    *,
    files: FileAccess | None = None,
) -> TranscodeResult:
    """Write ``source`` (any file libsndfile reads; normally the FLAC master) to ``target`` in ``fmt``; with
    ``files``, both are read and written through it (encrypted at rest), else as plain files.

    Raises :class:`TranscodeError` for a master that cannot be rendered in ``fmt``; ``target`` is then left
    as it was. Blocking: run it in a worker process or thread.
    """
    fmt = OutputFormat(fmt)
    settings = settings or EncodeSettings()
    if fmt is OutputFormat.FLAC:
        raise TranscodeError("the master is FLAC already; renditions are WAV, Opus or MP3")
    target_path = Path(target)
    temporary = target_path.with_name(f".{target_path.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        with _open_master(source, files) as master:
            channels, rate, frames = master.channels, master.samplerate, master.frames
            if frames <= 0:
                raise TranscodeError(f"{source} holds no audio")
            blocks = _blocks(master)
            with _opened(temporary, files) as out:
                if fmt is OutputFormat.WAV:
                    _write_wav(out, blocks, channels, rate, frames)
                elif fmt is OutputFormat.OPUS:
                    _write_av(out, blocks, channels, rate, _opus_stream(settings, channels, rate))
                else:
                    if channels > 2:
                        raise TranscodeError(f"MP3 holds one or two channels; this recording has {channels}")
                    _write_av(out, blocks, channels, rate, _mp3_stream(settings, rate))
        _check(temporary, channels, frames / rate, files)
        size, digest = temporary.stat().st_size, _sha256(temporary, files)
        temporary.replace(target_path)
    except av.error.FFmpegError as exc:
        temporary.unlink(missing_ok=True)
        raise TranscodeError(f"{fmt.value} encoder failed: {exc}") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return TranscodeResult(
        format=fmt,
        path=str(target_path),
        frames=frames,
        sample_rate=rate,
        channels=channels,
        size_bytes=size,
        sha256=digest,
    )


@contextlib.contextmanager
def _open_master(source: str | os.PathLike[str], files: FileAccess | None) -> Iterator[soundfile.SoundFile]:
    if not Path(source).is_file():
        raise TranscodeError(f"the master {source} does not exist")
    with contextlib.ExitStack() as stack:
        handle: str | BinaryIO = os.fspath(source)
        if files is not None:
            handle = stack.enter_context(files.open_read(Path(source)))
        try:
            master = stack.enter_context(soundfile.SoundFile(handle))
        except soundfile.LibsndfileError as exc:
            raise TranscodeError(f"the master {source} is unreadable: {exc}") from exc
        yield master


@contextlib.contextmanager
def _opened(path: Path, files: FileAccess | None) -> Iterator[str | BinaryIO]:
    """Where the encoder writes: the path itself, or a file object of ``files`` closed (finished) after."""
    if files is None:
        yield str(path)
        return
    with files.open_write(path) as out:
        yield out


def _blocks(master: soundfile.SoundFile) -> Iterator[Frames]:
    while True:
        try:
            block = master.read(_BLOCK, dtype="int16", always_2d=True)
        except soundfile.LibsndfileError as exc:
            raise TranscodeError(f"the master is damaged: {exc}") from exc
        if not len(block):
            return
        yield block


def _write_wav(
    target: str | BinaryIO, blocks: Iterator[Frames], channels: int, rate: int, frames: int
) -> None:
    container = "RF64" if frames * channels * 2 > _RIFF_LIMIT else "WAV"
    with soundfile.SoundFile(
        target, "w", samplerate=rate, channels=channels, format=container, subtype="PCM_16"
    ) as out:
        for block in blocks:
            out.write(block)


@dataclass(frozen=True, slots=True, kw_only=True)
class _StreamPlan:
    container: str  # FFmpeg muxer
    codec: str
    rate: int  # what the encoder is fed
    sample_format: str  # "s16" interleaved or "s16p" planar
    bit_rate: int
    options: dict[str, str]


def _opus_stream(settings: EncodeSettings, channels: int, rate: int) -> _StreamPlan:
    options = {"application": "voip", "compression_level": str(settings.opus_complexity)}
    if channels > 1:
        options["mapping_family"] = "255"
    return _StreamPlan(
        container="ogg",
        codec="libopus",
        rate=rate if rate in _OPUS_RATES else 48000,
        sample_format="s16",
        bit_rate=settings.opus_rate_for(channels),
        options=options,
    )


def _mp3_stream(settings: EncodeSettings, rate: int) -> _StreamPlan:
    return _StreamPlan(
        container="mp3",
        codec="libmp3lame",
        rate=rate if rate in _MP3_RATES else 48000,
        sample_format="s16p",
        bit_rate=settings.mp3_bitrate,
        options={"compression_level": _MP3_QUALITY},
    )


def _write_av(
    target: str | BinaryIO, blocks: Iterator[Frames], channels: int, rate: int, plan: _StreamPlan
) -> None:
    layout = _LAYOUTS.get(channels)
    if layout is None:
        raise TranscodeError(f"{plan.codec} cannot encode {channels} channels")
    with av.open(target, "w", format=plan.container) as container:
        stream: Any = container.add_stream(plan.codec, rate=plan.rate, layout=layout)
        stream.codec_context.bit_rate = plan.bit_rate
        stream.codec_context.options = dict(plan.options)
        resample = _resampler(layout, rate, plan) if plan.rate != rate else None

        def encode(frame: Any) -> None:
            for packet in stream.encode(frame):
                container.mux(packet)

        position = 0
        for block in blocks:
            if plan.sample_format == "s16":
                data = np.ascontiguousarray(block).reshape(1, -1)
            else:
                data = np.ascontiguousarray(block.T)
            frame = av.AudioFrame.from_ndarray(data, format=plan.sample_format, layout=layout)
            frame.sample_rate = rate
            frame.pts = position
            frame.time_base = Fraction(1, rate)
            position += len(block)
            for piece in resample(frame) if resample else [frame]:
                encode(piece)
        if resample is not None:
            for piece in resample(None):
                encode(piece)
        encode(None)


def _resampler(layout: str, rate: int, plan: _StreamPlan) -> Callable[[Any], list[Any]]:
    """libswresample to a rate the encoder takes (its default filter: 32-tap windowed sinc per phase)."""
    resampler = av.AudioResampler(format=plan.sample_format, layout=layout, rate=plan.rate)

    def run(frame: Any) -> list[Any]:
        return list(resampler.resample(frame))

    return run


def _check(path: Path, channels: int, seconds: float, files: FileAccess | None) -> None:
    """The rendition reads back with the master's channels and length (Opus: pre-skip and end trimming
    applied, RFC 7845 §4; MP3: the LAME tag's delay and padding)."""
    try:
        if files is None:
            info = soundfile.info(str(path))
        else:
            with files.open_read(path) as stored:
                info = soundfile.info(stored)
    except soundfile.LibsndfileError as exc:
        raise TranscodeError(f"the encoded file does not read back: {exc}") from exc
    length = info.frames / info.samplerate
    if info.channels != channels or abs(length - seconds) > _LENGTH_TOLERANCE:
        raise TranscodeError(
            f"the encoded file reads back as {info.channels} channel(s), {length:.4f} s; "
            f"the master has {channels}, {seconds:.4f} s"
        )


def _sha256(path: Path, files: FileAccess | None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") if files is None else files.open_read(path) as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
