"""What encryption at rest costs: AES-256-GCM chunked files (storage.sealed) against plain files.

Part 1, bulk: microseconds of CPU per MiB to seal (SealedWriter, 64 KiB writes) and to open (SealedReader,
64 KiB reads), next to writing and reading the same bytes as a plain file, and the bare AES-GCM calls.
Part 2, a call: a 60 s two-party call (8 kHz stereo, G.711-shaped speech) encoded to FLAC 20 ms at a time as
the recorder does, into a plain file and through SealedWriter, with and without the recorder's STREAMINFO
sample-count update after every FLAC frame (media/writer.py; through the writer that re-seals chunk 0 each
time), and with the writer flushed (its partial chunk sealed to disk) after every FLAC frame or every second,
which is what it takes to lose no more audio in a crash than a plain file does (a plain file gets every frame
at once); then decoded again for playback. Prints the ratio and the added CPU-seconds per call-hour.

    .venv/bin/python load_tests/bench_sealed.py --mib 64 --repeat 7
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from load_tests.bench_media_pipeline import speech_like
from media.g711 import decode_ulaw, encode_ulaw
from storage.sealed import DEFAULT_CHUNK_SIZE, SealedReader, SealedWriter

RATE = 8000
BLOCK = 160  # 20 ms
MIB = 1 << 20
_TOTAL_AT = 18  # STREAMINFO's 64-bit field holding the 36-bit sample count (RFC 9639 §8.2)


def cpu_seconds(action: Callable[[], object], repeat: int) -> float:
    """Least process CPU time of ``action`` over ``repeat`` runs after a warm-up (the least disturbed run:
    this box is shared)."""
    return compare([action], repeat)[0]


def compare(actions: list[Callable[[], object]], repeat: int) -> list[float]:
    """Least CPU time of each action, the actions run in turn each round so drift hits them alike."""
    best = [float("inf")] * len(actions)
    for round_ in range(repeat + 1):
        for index, action in enumerate(actions):
            start = time.process_time()
            action()
            if round_:
                best[index] = min(best[index], time.process_time() - start)
    return best


def bulk(directory: Path, mib: int, repeat: int) -> None:
    data = os.urandom(mib * MIB)
    view = memoryview(data)
    key = AESGCM.generate_key(bit_length=256)
    plain_path, sealed_path = directory / "bulk.bin", directory / "bulk.sealed"
    chunks = [view[i : i + DEFAULT_CHUNK_SIZE] for i in range(0, len(data), DEFAULT_CHUNK_SIZE)]

    def write_plain() -> None:
        with plain_path.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)

    def write_sealed() -> None:
        with SealedWriter(sealed_path, key) as out:
            for chunk in chunks:
                out.write(chunk)

    def read_plain() -> None:
        with plain_path.open("rb") as source:
            while source.read(DEFAULT_CHUNK_SIZE):
                pass

    def read_sealed() -> None:
        with SealedReader(sealed_path, key) as source:
            while source.read(DEFAULT_CHUNK_SIZE):
                pass

    aead = AESGCM(key)
    nonce = os.urandom(12)
    sealed_chunks = [aead.encrypt(nonce, bytes(chunk), None) for chunk in chunks]

    def bare_encrypt() -> None:
        for chunk in chunks:
            aead.encrypt(nonce, bytes(chunk), None)

    def bare_decrypt() -> None:
        for chunk in sealed_chunks:
            aead.decrypt(nonce, chunk, None)

    print(f"bulk, {mib} MiB in {DEFAULT_CHUNK_SIZE // 1024} KiB pieces, CPU µs per MiB (best of {repeat})")
    rows = [
        ("plain file write", write_plain),
        ("seal (SealedWriter)", write_sealed),
        ("AES-GCM encrypt only", bare_encrypt),
        ("plain file read", read_plain),
        ("open (SealedReader)", read_sealed),
        ("AES-GCM decrypt only", bare_decrypt),
    ]
    for name, action in rows:
        seconds = cpu_seconds(action, repeat)
        print(f"  {name:<24} {seconds / mib * 1e6:>9.0f} µs/MiB {mib / seconds:>9.0f} MiB/s")
    print(f"  on disk: {sealed_path.stat().st_size - plain_path.stat().st_size} octets more than plain")


def call_audio(seconds: float) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(7)
    legs = [
        decode_ulaw(encode_ulaw(speech_like(seconds, pitch, first, rng)))
        for pitch, first in ((120.0, True), (210.0, False))
    ]
    return np.stack(legs, axis=1).astype(np.int16)


class SampleCount:
    """The recorder's STREAMINFO update (media/writer.py), through ``pwrite``."""

    def __init__(self, pread: Callable[[int, int], bytes], pwrite: Callable[[bytes, int], int]) -> None:
        self._pread, self._pwrite = pread, pwrite
        self._block = self._bits = self.patched = 0

    def after(self, frames: int) -> None:
        if not self._block:
            head = self._pread(_TOTAL_AT + 8, 0)
            self._block = int.from_bytes(head[8:10], "big")
            self._bits = int.from_bytes(head[_TOTAL_AT:], "big") & ~((1 << 36) - 1)
        on_disk = (frames - 1) // self._block * self._block
        if on_disk > self.patched:
            self._pwrite((self._bits | on_disk).to_bytes(8, "big"), _TOTAL_AT)
            self.patched = on_disk


def encode(
    target: object,
    audio: npt.NDArray[np.int16],
    count: SampleCount | None,
    flush: Callable[[], None] | None = None,
    flush_blocks: int = 0,
) -> None:
    """``flush`` every ``flush_blocks`` 20 ms blocks, or after every FLAC frame with 0."""
    with soundfile.SoundFile(
        target, "w", samplerate=RATE, channels=2, format="FLAC", subtype="PCM_16"
    ) as flac:
        for number, start in enumerate(range(0, len(audio), BLOCK), 1):
            flac.write(audio[start : start + BLOCK])
            if count is not None:
                patched = count.patched
                count.after(start + BLOCK)
                if flush is not None and not flush_blocks and count.patched != patched:
                    flush()
            if flush is not None and flush_blocks and number % flush_blocks == 0:
                flush()


def one_call(directory: Path, seconds: float, repeat: int) -> None:
    audio = call_audio(seconds)
    key = AESGCM.generate_key(bit_length=256)
    plain_path, sealed_path = directory / "call.flac", directory / "call.flac.sealed"

    def write_plain(patch: bool) -> None:
        if not patch:
            encode(str(plain_path), audio, None)
            return
        plain_path.unlink(missing_ok=True)
        fd = -1

        def pread(size: int, offset: int) -> bytes:
            nonlocal fd
            if fd < 0:
                fd = os.open(plain_path, os.O_RDWR)
            return os.pread(fd, size, offset)

        try:
            encode(str(plain_path), audio, SampleCount(pread, lambda data, at: os.pwrite(fd, data, at)))
        finally:
            os.close(fd)

    def write_sealed(patch: bool, flush_blocks: int | None = None) -> None:
        with SealedWriter(sealed_path, key) as writer:
            count = SampleCount(writer.pread, writer.pwrite) if patch else None
            encode(writer, audio, count, None if flush_blocks is None else writer.flush, flush_blocks or 0)

    def play_plain() -> None:
        soundfile.read(str(plain_path), dtype="int16")

    def play_sealed() -> None:
        with SealedReader(sealed_path, key) as reader:
            soundfile.read(reader, dtype="int16")

    size = 0
    print(f"\none {seconds:.0f} s call, 8 kHz stereo FLAC, CPU per call (best of {repeat})")
    print(f"  {'':<36} {'plain ms':>9} {'sealed ms':>10} {'ratio':>6} {'added CPU-s/call-hour':>22}")
    for name, plain, sealed in (
        ("encode, 20 ms writes", lambda: write_plain(False), lambda: write_sealed(False)),
        ("encode + STREAMINFO count per frame", lambda: write_plain(True), lambda: write_sealed(True)),
        ("  + flush every second", lambda: write_plain(True), lambda: write_sealed(True, 50)),
        ("  + flush after every FLAC frame", lambda: write_plain(True), lambda: write_sealed(True, 0)),
        ("decode for playback", play_plain, play_sealed),
    ):
        plain_s, sealed_s = compare([plain, sealed], repeat)
        added = (sealed_s - plain_s) * 3600 / seconds
        print(
            f"  {name:<36} {plain_s * 1e3:>9.2f} {sealed_s * 1e3:>10.2f} {sealed_s / plain_s:>6.2f} {added:>22.3f}"
        )
        size = plain_path.stat().st_size
    print(f"  FLAC {size / 1024:.0f} KiB, sealed {sealed_path.stat().st_size / 1024:.0f} KiB on disk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="bulk data size (default 64)")
    parser.add_argument("--seconds", type=float, default=60.0, help="call length (default 60)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per row (default 7)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sealed-") as directory:
        bulk(Path(directory), args.mib, args.repeat)
        one_call(Path(directory), args.seconds, args.repeat)


if __name__ == "__main__":
    main()
