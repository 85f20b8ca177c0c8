"""What encryption at rest costs: AES-256-GCM chunked files (storage.sealed) against plain files.

Part 1, bulk: microseconds of CPU per MiB to seal (SealedWriter, 64 KiB writes, in the writer's 16 KiB chunks
and in 64 KiB ones) and to open (SealedReader, 64 KiB reads), next to writing and reading the same bytes as a
plain file, and the bare AES-GCM calls.
Part 2, a call: a 60 s two-party call (8 kHz stereo, G.711-shaped speech) recorded as the server does
(media.writer.FlacWriter: a write a second, the sink flushed after each, the STREAMINFO sample count updated
every COUNT_EVERY seconds), into a plain file and through SealedWriter: in 16 KiB chunks (the writer's
default), in 64 KiB chunks (the default before: every flush re-sealed a partial chunk four times as large),
and in 16 KiB chunks flushed every 2 s; then decoded again for playback. Prints the ratio and the added
CPU-seconds per call-hour.

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
from media.session import COUNT_EVERY
from media.writer import FlacWriter
from storage.sealed import DEFAULT_CHUNK_SIZE, SealedReader, SealedWriter

RATE = 8000
MIB = 1 << 20
FORMER_CHUNK_SIZE = 65536  # the sealed files' default chunk size before it became 16 KiB
PIECE = 1 << 16  # octets per bulk write and read


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
    plain_path = directory / "bulk.bin"
    sealed_paths = {
        chunk: directory / f"bulk.{chunk}.sealed" for chunk in (DEFAULT_CHUNK_SIZE, FORMER_CHUNK_SIZE)
    }
    chunks = [view[i : i + PIECE] for i in range(0, len(data), PIECE)]

    def write_plain() -> None:
        with plain_path.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)

    def write_sealed(chunk_size: int) -> Callable[[], None]:
        def write() -> None:
            with SealedWriter(sealed_paths[chunk_size], key, chunk_size=chunk_size) as out:
                for chunk in chunks:
                    out.write(chunk)

        return write

    def read_plain() -> None:
        with plain_path.open("rb") as source:
            while source.read(PIECE):
                pass

    def read_sealed(chunk_size: int) -> Callable[[], None]:
        def read() -> None:
            with SealedReader(sealed_paths[chunk_size], key) as source:
                while source.read(PIECE):
                    pass

        return read

    aead = AESGCM(key)
    nonce = os.urandom(12)
    sealed_chunks = [aead.encrypt(nonce, bytes(chunk), None) for chunk in chunks]

    def bare_encrypt() -> None:
        for chunk in chunks:
            aead.encrypt(nonce, bytes(chunk), None)

    def bare_decrypt() -> None:
        for chunk in sealed_chunks:
            aead.decrypt(nonce, chunk, None)

    print(f"bulk, {mib} MiB in {PIECE // 1024} KiB pieces, CPU µs per MiB (best of {repeat})")
    small, large = DEFAULT_CHUNK_SIZE // 1024, FORMER_CHUNK_SIZE // 1024
    rows = [
        ("plain file write", write_plain),
        (f"seal, {small} KiB chunks", write_sealed(DEFAULT_CHUNK_SIZE)),
        (f"seal, {large} KiB chunks", write_sealed(FORMER_CHUNK_SIZE)),
        ("AES-GCM encrypt only", bare_encrypt),
        ("plain file read", read_plain),
        (f"open, {small} KiB chunks", read_sealed(DEFAULT_CHUNK_SIZE)),
        (f"open, {large} KiB chunks", read_sealed(FORMER_CHUNK_SIZE)),
        ("AES-GCM decrypt only", bare_decrypt),
    ]
    for name, action in rows:
        seconds = cpu_seconds(action, repeat)
        print(f"  {name:<24} {seconds / mib * 1e6:>9.0f} µs/MiB {mib / seconds:>9.0f} MiB/s")
    for chunk_size, path in sealed_paths.items():
        extra = path.stat().st_size - plain_path.stat().st_size
        print(f"  on disk, {chunk_size // 1024} KiB chunks: {extra} octets more than plain")


def call_audio(seconds: float) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(7)
    legs = [
        decode_ulaw(encode_ulaw(speech_like(seconds, pitch, first, rng)))
        for pitch, first in ((120.0, True), (210.0, False))
    ]
    return np.stack(legs, axis=1).astype(np.int16)


def write_call(target: str | SealedWriter, audio: npt.NDArray[np.int16], flush_every: float = 0.0) -> None:
    """The recording as the server writes it (media/session.py): one write a second of mixed audio, the sink
    flushed after each (or every ``flush_every`` seconds), the sample count updated every COUNT_EVERY."""
    writer = FlacWriter(target, 2, RATE, flush_every=flush_every, count_every=COUNT_EVERY)
    for start in range(0, len(audio), RATE):
        writer.write(audio[start : start + RATE])
    writer.close()


def one_call(directory: Path, seconds: float, repeat: int) -> None:
    audio = call_audio(seconds)
    key = AESGCM.generate_key(bit_length=256)
    plain_path = directory / "call.flac"
    sealed_paths = {
        chunk: directory / f"call.{chunk}.flac.sealed" for chunk in (DEFAULT_CHUNK_SIZE, FORMER_CHUNK_SIZE)
    }

    def write_plain() -> None:
        write_call(str(plain_path), audio)

    def write_sealed(chunk: int, flush_every: float = 0.0) -> Callable[[], None]:
        return lambda: write_call(
            SealedWriter(sealed_paths[chunk], key, chunk_size=chunk), audio, flush_every
        )

    def play_plain() -> None:
        soundfile.read(str(plain_path), dtype="int16")

    def play_sealed(chunk: int) -> Callable[[], None]:
        def play() -> None:
            with SealedReader(sealed_paths[chunk], key) as reader:
                soundfile.read(reader, dtype="int16")

        return play

    small, large = DEFAULT_CHUNK_SIZE // 1024, FORMER_CHUNK_SIZE // 1024
    print(
        f"\none {seconds:.0f} s call, 8 kHz stereo FLAC written as the server does, CPU per call (best of {repeat})"
    )
    print(f"  {'':<40} {'plain ms':>9} {'sealed ms':>10} {'ratio':>6} {'added CPU-s/call-hour':>22}")
    for name, plain, sealed in (
        (f"record, {small} KiB chunks, flush every second", write_plain, write_sealed(DEFAULT_CHUNK_SIZE)),
        (f"record, {large} KiB chunks, flush every second", write_plain, write_sealed(FORMER_CHUNK_SIZE)),
        (f"record, {small} KiB chunks, flush every 2 s", write_plain, write_sealed(DEFAULT_CHUNK_SIZE, 2.0)),
        (f"decode for playback, {small} KiB chunks", play_plain, play_sealed(DEFAULT_CHUNK_SIZE)),
        (f"decode for playback, {large} KiB chunks", play_plain, play_sealed(FORMER_CHUNK_SIZE)),
    ):
        plain_s, sealed_s = compare([plain, sealed], repeat)
        added = (sealed_s - plain_s) * 3600 / seconds
        print(
            f"  {name:<40} {plain_s * 1e3:>9.2f} {sealed_s * 1e3:>10.2f} {sealed_s / plain_s:>6.2f} {added:>22.3f}"
        )
    sizes = ", ".join(
        f"{c // 1024} KiB chunks {p.stat().st_size / 1024:.0f} KiB" for c, p in sealed_paths.items()
    )
    print(f"  FLAC {plain_path.stat().st_size / 1024:.0f} KiB; sealed on disk: {sizes}")


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
