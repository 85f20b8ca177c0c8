"""Micro benchmark of the media pipeline without sockets: recorder (parse, place, mix) and FLAC writer.

Feeds N simulated two-stream G.711 calls (50 packets/s per stream, 20 ms each) of pre-built packets in
ticks, as MediaSession does, and reports CPU time per packet and CPU-seconds per call-hour. A bare loop that
only appends the same packets to a list runs in the same process as the baseline. Each tick's packets of a
stream are handed over as the receiver hands them, a :class:`media.udp_batch.DatagramBatch` (``add_batch``);
the "per packet" row feeds the same packets as ``(arrival, bytes)`` lists (``add``), the path every batch
that is not plain takes. Extra rows: the recorder on calls that were paused and resumed before their media
(what the pause check costs the plain path once a pause is over), and on SRTP calls
(AES_CM_128_HMAC_SHA1_80 on both streams, decrypted by libsrtp before the timeline), the recorder with in-band
key detection on the caller's stream (what a consent call without telephone-event runs on the asked party's
audio: :mod:`media.dtmf_inband` over each mix), and the FLAC written encrypted at rest as the server does
(storage.sealed.SealedWriter: AES-256-GCM in 16 KiB chunks, flushed after every write, the STREAMINFO sample
count updated every COUNT_EVERY seconds), and again in the 64 KiB chunks files had before. The stages run in
rounds, each once per round, so that drift on a shared machine hits them alike; the fastest run counts.

    .venv/bin/python load_tests/bench_media_pipeline.py --calls 200 1000 --seconds 5

Encryption costs most once a file is past its first chunk (each sample-count update then re-seals that
chunk): give it a minute of audio, ``--calls 200 --seconds 60``, to see it. There (2-core machine, others'
work running): recorder + FLAC 3.8–4.5 µs per packet, recorder + sealed FLAC 4.5–4.8 (4.3–5.4 and 5.0–6.0
before the sink got a second's FLAC frames in one write and files 16 KiB chunks, with 64 KiB ones 6.3–8.0
while the sample count was updated at every write).

On the 2-core reference machine (500 calls, other work running, so ±30 %): at the 500 ms tick the recorder
takes 1.8–2.4 µs per packet (2.7–3.0 µs packet by packet), recorder + FLAC 4.8–5.8; at the old 200 ms tick
2.5 (4.3) and 5.7. Before the batch path, at 200 ms: 3.2–3.8 and 5.9–7.3. FLAC (libsndfile level 0: the
levels up to 2 give the same size, 3 and above 4 % more for the same CPU) costs about 2.5–2.8 µs per packet, a
third of it libFLAC's MD5 of the audio, which libsndfile offers no way to turn off (libFLAC called directly
without the MD5 took 0.9–1.1 µs per packet where libsndfile took 1.9–2.2).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pylibsrtp

from media.codecs import codec_for
from media.g711 import encode_ulaw
from media.recorder import CallRecorder, StreamSpec
from media.rtp import build_rtp
from media.session import COUNT_EVERY, TICK
from media.srtp import SrtpKey
from media.udp_batch import DatagramBatch
from media.writer import FlacWriter
from storage.sealed import DEFAULT_CHUNK_SIZE, SealedWriter

SAMPLE_RATE = 8000
PACKET = 160  # samples per 20 ms packet
FORMER_CHUNK_SIZE = 65536  # the sealed files' default chunk size before it became 16 KiB
Batch = list[tuple[float, bytes]]
Run = tuple[float, int, int, float]  # CPU seconds, packets, frames, CPU seconds of opening and closing files


def speech_like(
    seconds: float, pitch: float, talking_first: bool, rng: np.random.Generator
) -> npt.NDArray[np.int16]:
    """A voice-like signal: harmonics under two formants, syllable envelope, turns of about 3 s, quiet noise.

    Its FLAC size and cost sit near real G.711 speech; pure tones would flatter FLAC.
    """
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(pitch * (1 + 0.08 * np.sin(2 * np.pi * 0.9 * t))) / SAMPLE_RATE
    voice = np.zeros_like(t)
    for k in range(1, 30):
        gain = np.exp(-(((k * pitch - 600) / 250) ** 2)) + 0.6 * np.exp(-(((k * pitch - 1700) / 400) ** 2))
        voice += gain / k * np.sin(k * phase)
    syllables = np.clip(np.sin(2 * np.pi * 3.3 * t), 0, None)
    turn = (np.floor(t / 3.0) % 2 == 0) == talking_first
    signal = voice / np.abs(voice).max() * 12000 * syllables * turn + rng.normal(0, 30, t.size)
    clipped: npt.NDArray[np.int16] = np.clip(signal, -32768, 32767).astype(np.int16)
    return clipped


def build_ticks(seconds: float, tick: float, start: float) -> list[tuple[float, Batch, Batch]]:
    """Per tick: (now, caller packets, callee packets), with up to 4 ms of network jitter."""
    rng = np.random.default_rng(7)
    count = int(seconds * SAMPLE_RATE / PACKET)
    legs = []
    for ssrc, pitch, offset, first in ((0x1234, 120.0, 0.0, True), (0x5678, 210.0, 0.013, False)):
        payload = encode_ulaw(speech_like(count * PACKET / SAMPLE_RATE, pitch, first, rng))
        jitter = rng.uniform(0.0, 0.004, count)
        legs.append(
            [
                (
                    start + offset + i * PACKET / SAMPLE_RATE + jitter[i],
                    build_rtp(
                        payload_type=0,
                        sequence=1000 + i,
                        timestamp=90_000 + i * PACKET,
                        ssrc=ssrc,
                        payload=payload[i * PACKET : (i + 1) * PACKET],
                    ),
                )
                for i in range(count)
            ]
        )
    ticks = []
    now = start + tick
    while now < start + seconds + tick:
        batches = [[p for p in leg if now - tick <= p[0] < now] for leg in legs]
        ticks.append((now, batches[0], batches[1]))
        now += tick
    return ticks


def run_baseline(calls: int, ticks: list[tuple[float, Batch, Batch]]) -> tuple[float, int]:
    sinks: list[list[tuple[float, bytes]]] = [[] for _ in range(calls)]
    packets = 0
    began = time.process_time()
    for _now, caller, callee in ticks:
        for sink in sinks:
            for packet in caller:
                sink.append(packet)
            for packet in callee:
                sink.append(packet)
            packets += len(caller) + len(callee)
        for sink in sinks:
            sink.clear()
    return time.process_time() - began, packets


SRTP_KEY = SrtpKey(suite="AES_CM_128_HMAC_SHA1_80", key_salt=bytes(range(30)))


def protect(ticks: list[tuple[float, Batch, Batch]]) -> list[tuple[float, Batch, Batch]]:
    """The same ticks as the SRC would send them with SDES-keyed SRTP."""
    policy = pylibsrtp.Policy(
        key=SRTP_KEY.key_salt,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    session = pylibsrtp.Session(policy=policy)
    return [
        (now, [(a, session.protect(d)) for a, d in caller], [(a, session.protect(d)) for a, d in callee])
        for now, caller, callee in ticks
    ]


def run_pipeline(
    calls: int,
    ticks: list[tuple[float, Batch, Batch]],
    every: int,
    directory: Path | None,
    *,
    srtp: bool = False,
    paused_before: bool = False,
    batched: bool = True,
    sealed: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    inband: bool = False,
) -> tuple[float, int, int, float]:
    """Add every tick, mix (and write) every ``every`` ticks, as MediaSession does: the writer as
    MediaSession.open makes it (the sink flushed after each write, the sample count updated every COUNT_EVERY
    seconds of audio), sealed in ``chunk_size`` chunks with ``sealed``.

    Returns CPU seconds, packets, frames and the CPU seconds of opening and closing the files (not included).
    """
    pcmu = codec_for("PCMU")
    assert pcmu is not None
    key = SRTP_KEY if srtp else None
    te = None if inband else 101  # in-band detection runs only on streams without telephone-event
    specs = [
        StreamSpec(index=0, channel=0, codec=pcmu, payload_type=0, telephone_event_pt=te, srtp=key),
        StreamSpec(index=1, channel=1, codec=pcmu, payload_type=0, telephone_event_pt=te, srtp=key),
    ]
    recorders = [CallRecorder(streams=specs, channels=2) for _ in range(calls)]
    for recorder in recorders if inband else ():
        recorder.set_inband_dtmf(0, True)  # a consent call: the asked party's stream (the caller's) only
    if paused_before:
        media_start = ticks[0][0] - (ticks[1][0] - ticks[0][0])  # one tick before the first: the first packet
        for recorder in recorders:
            recorder.set_paused(True, media_start - 2.0)
            recorder.set_paused(False, media_start - 1.0)
    began = time.process_time()
    writers = (
        [
            FlacWriter(
                SealedWriter(directory / f"call{i}.flac.sealed", os.urandom(32), chunk_size=chunk_size)
                if sealed
                else directory / f"call{i}.flac",
                2,
                SAMPLE_RATE,
                count_every=COUNT_EVERY,
            )
            for i in range(calls)
        ]
        if directory
        else []
    )
    files_cpu = time.process_time() - began
    # What the receivers hand over: each tick's datagrams of a stream in a buffer (shared by the calls).
    batches = [(DatagramBatch.of(caller), DatagramBatch.of(callee)) for _, caller, callee in ticks]
    frames_out = 0
    packets = 0
    began = time.process_time()
    for k, (now, caller, callee) in enumerate(ticks):
        mixing = k % every == every - 1
        caller_batch, callee_batch = batches[k]
        for i, recorder in enumerate(recorders):
            if batched:
                recorder.add_batch(0, caller_batch)
                recorder.add_batch(1, callee_batch)
            else:
                recorder.add(0, caller)
                recorder.add(1, callee)
            packets += len(caller) + len(callee)
            if mixing:
                frames = recorder.mix(now)
                if frames is not None:
                    frames_out += len(frames)
                    if writers:
                        writers[i].write(frames)
    for i, recorder in enumerate(recorders):
        frames = recorder.mix_final()
        if frames is not None:
            frames_out += len(frames)
            if writers:
                writers[i].write(frames)
    cpu = time.process_time() - began
    began = time.process_time()
    for writer in writers:
        writer.close()
    files_cpu += time.process_time() - began
    return cpu, packets, frames_out, files_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--seconds", type=float, default=5.0, help="audio per call")
    parser.add_argument(
        "--tick", type=float, default=TICK, help="drain interval (s), the server's by default"
    )
    parser.add_argument("--write-interval", type=float, default=1.0, help="mix and write interval (s)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every stage; the fastest counts")
    args = parser.parse_args()
    every = max(1, round(args.write_interval / args.tick))
    ticks = build_ticks(args.seconds, args.tick, start=1_700_000_000.0)
    srtp_ticks = protect(ticks)
    print(
        f"{args.seconds:g} s of two-stream PCMU per call; add every {args.tick * 1000:g} ms, "
        f"mix and write every {every * args.tick * 1000:g} ms"
    )
    print(f"{'calls':>6} {'stage':<24} {'µs/packet':>10} {'CPU-s/call-hour':>16} {'× baseline':>11}")
    for calls in args.calls:
        # (stage, writes files, the ticks fed, run_pipeline's options)
        stages: list[tuple[str, bool, list[tuple[float, Batch, Batch]], dict[str, Any]]] = [
            ("recorder, per packet", False, ticks, {"batched": False}),
            ("recorder", False, ticks, {}),
            ("recorder + FLAC", True, ticks, {}),
            ("recorder + sealed FLAC", True, ticks, {"sealed": True}),
            (
                f"  same, {FORMER_CHUNK_SIZE // 1024} KiB chunks",
                True,
                ticks,
                {"sealed": True, "chunk_size": FORMER_CHUNK_SIZE},
            ),
            ("recorder, after a pause", False, ticks, {"paused_before": True}),
            ("recorder + SRTP", False, srtp_ticks, {"srtp": True}),
            ("recorder + in-band DTMF", False, ticks, {"inband": True}),
        ]
        # Round after round, every stage once: drift on a shared machine hits them alike; the fastest counts.
        base_cpu, base_packets = min(run_baseline(calls, ticks) for _ in range(args.repeat))
        best: dict[str, tuple[Run, int]] = {}
        for _ in range(args.repeat):
            for name, files, fed, options in stages:
                with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
                    run = run_pipeline(calls, fed, every, Path(tmp) if files else None, **options)
                    size = sum(f.stat().st_size for f in Path(tmp).iterdir())
                if name not in best or run[0] < best[name][0][0]:
                    best[name] = (run, size)
        base_us = base_cpu / base_packets * 1e6
        call_hours = calls * args.seconds / 3600
        for name, cpu_s, n in [("baseline (append)", base_cpu, base_packets)] + [
            (name, best[name][0][0], best[name][0][1]) for name, *_ in stages
        ]:
            us = cpu_s / n * 1e6
            print(f"{calls:>6} {name:<24} {us:>10.2f} {cpu_s / call_hours:>16.2f} {us / base_us:>11.1f}")
        (_, _, frames, files_cpu), size = best["recorder + FLAC"]
        sealed_files_cpu = best["recorder + sealed FLAC"][0][3]
        audio_s = frames / SAMPLE_RATE / calls
        per_minute = size / calls / audio_s * 60 / 1e6
        print(
            f"{'':>6} FLAC {per_minute:.2f} MB per call-minute; opening + closing a file "
            f"{files_cpu / calls * 1000:.2f} ms CPU per call, sealed {sealed_files_cpu / calls * 1000:.2f} "
            "(not in the rows above)"
        )


if __name__ == "__main__":
    main()
