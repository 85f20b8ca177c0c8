"""RtpReceiver on real loopback sockets: RTP handed over in place batch by batch, RTCP read only when queued;
statistics read without receiving."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from media import receiver as receiver_module
from media.receiver import RtpReceiver
from media.recorder import CallRecorder, StreamSpec
from media.session import MediaSession
from media.udp_batch import BATCH, BatchReader, DatagramBatch, open_udp_socket
from media.writer import FlacWriter
from tests.unit.media.helpers import SAMPLES, pcmu, rtcp_receiver_report, rtp

HOST = "127.0.0.1"
SSRC = 0x2B1D_0C0A


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    """(RTP, RTCP) of a receiver, kept here to look into their queues, and the SRC's sending socket."""
    for _ in range(50):
        rtp_sock = open_udp_socket(HOST, 0)
        try:
            rtcp_sock = open_udp_socket(HOST, rtp_sock.getsockname()[1] + 1)
        except OSError:
            rtp_sock.close()
            continue
        break
    else:
        raise AssertionError("no free port pair found")
    src = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    src.bind((HOST, 0))
    yield rtp_sock, rtcp_sock, src
    for sock in (rtp_sock, rtcp_sock, src):
        sock.close()


def queued(sock: socket.socket) -> None:
    """Wait until ``sock`` has a datagram queued (loopback delivery is quick, but a busy kernel may lag)."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            time.sleep(0.001)
        else:
            return
    raise AssertionError("nothing arrived")


class Sink:
    """Copies out what each batch held, as the timeline must use it before the next read."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[float, bytes]]] = []

    def __call__(self, batch: DatagramBatch) -> None:
        self.batches.append(batch.datagrams())


def test_rtp_comes_in_batches_of_the_reader_then_rtcp_on_its_turn(
    sockets: tuple[socket.socket, socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver_module, "RTCP_READY_FOR", 0.0)  # look at the RTCP queue at every turn
    rtp_sock, rtcp_sock, src = sockets
    port = rtp_sock.getsockname()[1]
    receiver = RtpReceiver(host=HOST, port=port, rtp=rtp_sock, rtcp=rtcp_sock, rtcp_every=2)
    packets = [rtp(7000 + i, i * SAMPLES, SSRC, bytes([i]) * SAMPLES) for i in range(BATCH + 6)]
    report = rtcp_receiver_report(SSRC)
    for data in packets:
        src.sendto(data, (HOST, port))
    src.sendto(report, (HOST, port + 1))
    queued(rtcp_sock)
    sink = Sink()
    receiver.receive(sink)  # first call: not RTCP's turn
    assert [len(batch) for batch in sink.batches] == [BATCH, 6]
    assert [data for batch in sink.batches for _, data in batch] == packets
    receiver.receive(sink)  # second call: RTCP's turn, after what RTP brought (nothing)
    assert [data for _, data in sink.batches[-1]] == [report]
    assert receiver.remote == receiver.rtcp_remote == src.getsockname()
    receiver.close()


def test_an_empty_rtcp_socket_is_not_read(
    sockets: tuple[socket.socket, socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver_module, "RTCP_READY_FOR", 0.0)
    rtp_sock, rtcp_sock, src = sockets
    receiver = RtpReceiver(
        host=HOST, port=rtp_sock.getsockname()[1], rtp=rtp_sock, rtcp=rtcp_sock, rtcp_every=1
    )
    reads: list[int] = []
    read_batch = BatchReader.read_batch

    def counted(self: BatchReader, sock: socket.socket, size: int, source: bytes | None) -> DatagramBatch:
        reads.append(sock.fileno())
        return read_batch(self, sock, size, source)

    monkeypatch.setattr(BatchReader, "read_batch", counted)
    receiver.receive(Sink())
    assert reads == [rtp_sock.fileno()]  # RTCP's turn, but nothing queued: no system call for it
    src.sendto(rtcp_receiver_report(SSRC), (HOST, rtcp_sock.getsockname()[1]))
    queued(rtcp_sock)
    sink = Sink()
    receiver.receive(sink)
    assert reads[1:] == [rtp_sock.fileno(), rtcp_sock.fileno()]
    assert len(sink.batches) == 1
    receiver.close()


def test_closing_reads_rtcp_whoever_had_the_turn(
    sockets: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    rtp_sock, rtcp_sock, src = sockets
    port = rtp_sock.getsockname()[1]
    receiver = RtpReceiver(host=HOST, port=port, rtp=rtp_sock, rtcp=rtcp_sock, rtcp_every=1000)
    report = rtcp_receiver_report(SSRC)
    last = rtp(9, 9 * SAMPLES, SSRC, b"\x7f" * SAMPLES)
    src.sendto(report, (HOST, port + 1))
    src.sendto(last, (HOST, port))
    queued(rtcp_sock)
    queued(rtp_sock)
    receiver.close()  # ports released; what was queued is kept
    assert [data for _, data in receiver.drain()] == [last, report]
    assert receiver.drain() == []


async def test_statistics_are_read_without_receiving(
    sockets: tuple[socket.socket, socket.socket, socket.socket], tmp_path: Path
) -> None:
    """A metrics scrape of thousands of streams must not run the media path out of turn: ``stats()`` and
    ``counters()`` report the last tick; only the pump's tick (here: the media checks) receives."""
    rtp_sock, rtcp_sock, src = sockets
    port = rtp_sock.getsockname()[1]
    spec = StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0)
    receiver = RtpReceiver(host=HOST, port=port, rtp=rtp_sock, rtcp=rtcp_sock)
    recorder = CallRecorder(streams=[spec], channels=1)
    writer = FlacWriter(tmp_path / "scraped.flac", 1, 8000)
    session = MediaSession(
        receivers=[(spec, receiver)], recorder=recorder, writer=writer, tick=3600.0, write_interval=3600.0
    )
    try:
        for i in range(10):
            src.sendto(rtp(i, i * SAMPLES, SSRC, b"\x55" * SAMPLES), (HOST, port))
        queued(rtp_sock)
        assert session.stats()[0].packets == 0
        assert session.counters()[0].packets == 0
        queued(rtp_sock)  # still there
        assert session.received_any()  # the media checks receive what is queued
        assert session.stats()[0].packets == session.counters()[0].packets > 0
        assert session.stats()[0].remote == src.getsockname()
    finally:
        await session.close()
