"""Receive-path micro-benchmark: our batched drain against a minimal C receiver, in the same run.

A C sender (``receive_baseline.c``, compiled here with ``cc``) sends N streams of 20 ms RTP-sized datagrams
to loopback for S seconds. Each receiver binds the same ports in turn, pinned to CPU 0 (the sender to CPU 1),
and reports the packets it got and the CPU time it spent:

- ``c-recvmmsg``: the baseline — C, drain every socket with ``recvmmsg`` each tick;
- ``hangtar``: :class:`media.receiver.RtpReceiver` sockets drained each tick, as the media pump does
  (``recvmmsg`` through ctypes into the reader's buffer, kernel arrival stamps; each batch is handed on in
  place, as a :class:`media.udp_batch.DatagramBatch`, no Python object per datagram);
- ``sessions``: the whole media path of the server, one :class:`media.session.MediaSession` per pair of
  streams (a call): receive, place by timestamp, decode, mix every second and write FLAC on the writer
  thread, serviced by the media pump; the CPU of every thread of the process counts;
- ``asyncio``: one ``DatagramProtocol`` per socket with ``max_size`` 2048 (a callback per datagram).

The sender's packets are real PCMU RTP (a tone per stream), so the timeline and FLAC see what a call sends.

    .venv/bin/python -m load_tests.bench_receive --streams 2000 --seconds 10

On the 2-core reference machine (2000 streams, other work running): C 1.27–1.41 µs per packet; ``hangtar``
1.65–2.15 (× 1.3–1.7) at the server's 500 ms tick and 2.34 at 200 ms, against 3.3–3.5 (× 2.4–2.9) before
batches were handed on in place; ``sessions`` 7.5–8.5 µs per packet (≈ 2.9 CPU-s per call-hour, about a
third of it FLAC on the writer thread), 10.3 before; ``asyncio`` 7.5–8.4.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from media.session import TICK  # noqa: E402 - after the path is set


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def _build(tmp: Path) -> Path:
    binary = tmp / "receive_baseline"
    subprocess.run(["cc", "-O2", "-o", str(binary), str(HERE / "receive_baseline.c"), "-lm"], check=True)
    return binary


async def _python_drain(port0: int, streams: int, seconds: float, tick: float) -> tuple[int, float]:
    from media.receiver import RtpReceiver
    from media.udp_batch import DatagramBatch

    receivers = [await RtpReceiver.open("127.0.0.1", port0 + 2 * i) for i in range(streams)]
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    packets = 0

    def sink(batch: DatagramBatch) -> None:
        nonlocal packets
        packets += batch.count

    began = loop.time()
    cpu = time.process_time()
    next_tick = began
    while loop.time() - began < seconds:
        next_tick += tick
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
        for receiver in receivers:
            receiver.receive(sink)
    spent = time.process_time() - cpu
    for receiver in receivers:
        receiver.close()
    return packets, spent


async def _python_sessions(port0: int, streams: int, seconds: float, tick: float) -> tuple[int, float]:
    from media.codecs import codec_for
    from media.recorder import StreamSpec
    from media.session import MediaSession

    pcmu = codec_for("PCMU")
    assert pcmu is not None
    specs = [StreamSpec(index=k, channel=k, codec=pcmu, payload_type=0) for k in (0, 1)]
    with tempfile.TemporaryDirectory(prefix="bench-receive-") as tmp:
        sessions = [
            await MediaSession.open(
                "127.0.0.1", [port0 + 4 * i, port0 + 4 * i + 2], specs, 2, Path(tmp) / f"{i}.flac", tick=tick
            )
            for i in range(streams // 2)
        ]
        print("ready", flush=True)
        cpu = time.process_time()
        await asyncio.sleep(seconds)
        spent = time.process_time() - cpu
        packets = sum(stats.packets for session in sessions for stats in session.stats())
        for session in sessions:
            await session.close()
    return packets, spent


async def _python_asyncio(port0: int, streams: int, seconds: float, tick: float) -> tuple[int, float]:
    class Sink(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.packets: list[tuple[float, bytes]] = []

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.max_size = 2048  # type: ignore[attr-defined]

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.packets.append((time.time(), data))

    loop = asyncio.get_running_loop()
    sinks = []
    for i in range(streams):
        transport, sink = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", port0 + 2 * i))
        sinks.append((transport, sink))
    print("ready", flush=True)
    packets = 0
    began = loop.time()
    cpu = time.process_time()
    next_tick = began
    while loop.time() - began < seconds:
        next_tick += tick
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
        for _, sink in sinks:
            packets += len(sink.packets)
            sink.packets = []
    spent = time.process_time() - cpu
    for transport, _ in sinks:
        transport.close()
    return packets, spent


def _measure(receiver: list[str], sender: list[str]) -> tuple[int, int, float]:
    """Start ``receiver``, wait for "ready", run ``sender``; (sent, received, receiver CPU seconds)."""
    with subprocess.Popen(receiver, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{receiver} did not start")
        sent = int(subprocess.run(sender, check=True, capture_output=True, text=True).stdout.split()[0])
        received, cpu = process.stdout.readline().split()
        process.wait(timeout=30)
    return sent, int(received), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[2000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--tick-ms", type=int, default=round(TICK * 1000), help="drain interval (the server's)"
    )
    parser.add_argument("--port", type=int, default=12000, help="first port (below the ephemeral range)")
    parser.add_argument("--role", choices=["hangtar", "sessions", "asyncio"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        run = {"hangtar": _python_drain, "sessions": _python_sessions, "asyncio": _python_asyncio}[args.role]
        packets, cpu = asyncio.run(run(args.port, args.streams[0], args.seconds + 1.0, args.tick_ms / 1000))
        print(packets, f"{cpu:.6f}", flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        binary = _build(Path(tmp))
        print(
            f"{args.seconds:g} s of 20 ms datagrams per stream, drained every {args.tick_ms} ms; CPU 0 receives"
        )
        print(f"{'streams':>8} {'receiver':<12} {'packets/s':>10} {'lost %':>7} {'µs/packet':>10} {'× C':>6}")
        for streams in args.streams:
            sender = [*_pin(1), str(binary), "send", str(args.port), str(streams), str(args.seconds)]
            rows: list[tuple[str, list[str]]] = [
                ("c-recvmmsg", [str(binary), "drain", str(args.port), str(streams), str(args.seconds + 1.0)]),
                ("hangtar", [sys.executable, "-m", "load_tests.bench_receive", "--role", "hangtar"]),
                ("sessions", [sys.executable, "-m", "load_tests.bench_receive", "--role", "sessions"]),
                ("asyncio", [sys.executable, "-m", "load_tests.bench_receive", "--role", "asyncio"]),
            ]
            baseline = None
            for name, command in rows:
                if name == "c-recvmmsg":
                    command.append(str(args.tick_ms))
                else:
                    command += [
                        "--streams",
                        str(streams),
                        "--seconds",
                        str(args.seconds),
                        "--port",
                        str(args.port),
                    ]
                    command += ["--tick-ms", str(args.tick_ms)]
                sent, received, cpu = _measure([*_pin(0), *command], sender)
                per_packet = cpu / max(received, 1) * 1e6
                baseline = baseline or per_packet
                lost = (sent - received) / max(sent, 1) * 100
                print(
                    f"{streams:>8} {name:<12} {received / args.seconds:>10.0f} {lost:>7.3f} "
                    f"{per_packet:>10.2f} {per_packet / baseline:>6.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
