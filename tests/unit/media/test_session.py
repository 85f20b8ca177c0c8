"""Loopback tests: real UDP datagrams into RtpReceiver and MediaSession, the FLAC file read back."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from media.g711 import decode_ulaw, encode_ulaw
from media.ports import PortPool
from media.receiver import RtpReceiver
from media.recorder import CallRecorder, StreamSpec
from media.session import MediaSession
from tests.unit.media.helpers import PTIME, SAMPLES, dominant_frequency, pcmu, rtcp_receiver_report, rtp, tone

HOST = "127.0.0.1"


def port_pool() -> PortPool:
    first = random.randrange(20000, 60000, 2)  # a random slice keeps parallel test runs apart
    return PortPool(first, first + 199)


async def open_receiver(pool: PortPool) -> RtpReceiver:
    for _ in range(20):
        port = pool.allocate()
        try:
            return await RtpReceiver.open(HOST, port)
        except OSError:
            pool.release(port)  # taken by someone else: the next allocation is another port
    raise AssertionError("no free port pair found")


async def test_receiver_latches_the_first_source_and_drains_everything(sender: socket.socket) -> None:
    receiver = await open_receiver(port_pool())
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packets = [rtp(i, i * SAMPLES, 0x1234, b"\xff" * SAMPLES) for i in range(5)]
        before = time.time()
        for data in packets:
            sender.sendto(data, (HOST, receiver.port))
        other.sendto(packets[0], (HOST, receiver.port))
        report = rtcp_receiver_report(0x1234)
        sender.sendto(report, (HOST, receiver.port + 1))
        received: list[tuple[float, bytes]] = []
        async with asyncio.timeout(5):
            while len(received) < 7:
                await asyncio.sleep(0.01)
                received += receiver.drain()
        after = time.time()
        assert sorted(d for _, d in received) == sorted([*packets, packets[0], report])
        assert all(before <= arrival <= after for arrival, _ in received)
        assert receiver.remote == sender.getsockname()
        assert receiver.rtcp_remote == sender.getsockname()
        assert receiver.foreign_packets == 1
        assert receiver.drain() == []
    finally:
        other.close()
        receiver.close()
        await receiver.wait_closed()


async def test_receiver_reads_with_a_small_buffer(sender: socket.socket) -> None:
    receiver = await open_receiver(port_pool())
    try:
        sender.sendto(rtp(1, 160, 9, bytes(3000)), (HOST, receiver.port))  # far above any audio packet
        received: list[tuple[float, bytes]] = []
        async with asyncio.timeout(5):
            while not received:
                await asyncio.sleep(0.01)
                received += receiver.drain()
        assert len(received[0][1]) == 2048  # transport.max_size, not asyncio's 256 KiB default
    finally:
        receiver.close()
        await receiver.wait_closed()


async def test_receiver_refuses_a_taken_port_and_leaves_nothing_bound() -> None:
    pool = port_pool()
    first = await open_receiver(pool)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(OSError):
            await RtpReceiver.open(HOST, first.port)  # RTP port taken
        free = pool.allocate()
        blocker.bind((HOST, free + 1))  # RTCP port taken
        with pytest.raises(OSError):
            await RtpReceiver.open(HOST, free)
        blocker.close()
        again = await RtpReceiver.open(HOST, free)  # the RTP socket of the failed attempt was released
        again.close()
        await again.wait_closed()
    finally:
        blocker.close()
        first.close()
        await first.wait_closed()


def g711(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    return decode_ulaw(encode_ulaw(samples))


async def test_media_session_records_two_paced_legs_to_flac(tmp_path: Path, sender: socket.socket) -> None:
    caller_audio = tone(440, 75 * SAMPLES)  # 1.5 s each
    callee_audio = tone(1000, 75 * SAMPLES, amplitude=6000)
    streams = [
        StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0, telephone_event_pt=101),
        StreamSpec(index=1, channel=1, codec=pcmu(), payload_type=0, telephone_event_pt=101),
    ]
    path = tmp_path / "call.flac"
    pool = port_pool()
    session = None
    for _ in range(20):
        ports = [pool.allocate(), pool.allocate()]
        try:
            session = await MediaSession.open(HOST, ports, streams, 2, path, tick=0.05, write_interval=0.2)
            break
        except OSError:
            for port in ports:
                pool.release(port)
    assert session is not None
    assert not session.received_any()

    # (due time offset, port, datagram): callee answers 200 ms after the caller starts.
    schedule: list[tuple[float, int, bytes]] = []
    caller_payload, callee_payload = encode_ulaw(caller_audio), encode_ulaw(callee_audio)
    for i in range(75):
        chunk = slice(i * SAMPLES, (i + 1) * SAMPLES)
        schedule.append(
            (i * PTIME, ports[0], rtp(5000 + i, 80_000 + i * SAMPLES, 0xCA11E7, caller_payload[chunk]))
        )
        schedule.append(
            (
                0.2 + i * PTIME,
                ports[1],
                rtp(65500 + i, 4_294_960_000 + i * SAMPLES, 0xCA11EE, callee_payload[chunk]),
            )
        )
    caller = [s for s in schedule if s[1] == ports[0]]
    callee = [s for s in schedule if s[1] == ports[1]]
    for k in (10, 45, 60):  # sent in swapped order, 20 ms apart: well inside the reorder window
        caller[k], caller[k + 1] = (
            (caller[k][0], caller[k + 1][1], caller[k + 1][2]),
            (caller[k + 1][0], caller[k][1], caller[k][2]),
        )
    del caller[30]  # lost in the network
    del callee[40]
    callee.insert(21, (callee[20][0] + 0.002, callee[20][1], callee[20][2]))  # duplicated by the network
    rtcp = (0.5, ports[0] + 1, rtcp_receiver_report(0xCA11E7))
    plan = sorted([*caller, *callee, rtcp], key=lambda s: s[0])

    loop = asyncio.get_running_loop()
    began = loop.time()
    started_at = time.time()
    for due, port, data in plan:
        delay = began + due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # real-time pacing of the sender, as a SRC sends
        sender.sendto(data, (HOST, port))
    # Loopback datagrams are queued before sendto() returns; wait until the loop has read them all.
    async with asyncio.timeout(5):
        while sum(s.packets for s in session.stats()) < len(caller) + len(callee):  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.01)
    assert session.received_any()
    result = await session.close()

    data, rate = soundfile.read(path, dtype="int16")
    assert rate == 8000
    assert data.shape[1] == 2
    assert len(data) == result.frames

    want_caller = g711(caller_audio)
    want_caller[30 * SAMPLES : 31 * SAMPLES] = 0
    assert np.array_equal(data[: len(want_caller), 0], want_caller)  # the caller starts the recording

    offset = int(np.flatnonzero(data[:, 1])[0])
    assert abs(offset - 0.2 * 8000) <= 0.05 * 8000  # the callee's start, measured on the arrival clock
    want_callee = g711(callee_audio)
    want_callee[40 * SAMPLES : 41 * SAMPLES] = 0
    assert np.array_equal(data[offset : offset + len(want_callee), 1], want_callee)
    assert len(data) == offset + len(want_callee)  # recording = media span: caller's first → callee's last
    assert dominant_frequency(data[:, 0]) == pytest.approx(440, abs=3)
    assert dominant_frequency(data[offset:, 1]) == pytest.approx(1000, abs=3)

    assert result.media_start == pytest.approx(started_at, abs=0.05)
    assert result.duration == pytest.approx(len(data) / 8000)
    first, second = result.streams
    assert (first.packets, first.lost, first.late, first.duplicated, first.rtcp_packets) == (74, 1, 0, 0, 1)
    assert (second.packets, second.lost, second.late, second.duplicated) == (75, 1, 0, 1)
    assert first.remote == second.remote == sender.getsockname()
    assert await session.close() is result


async def test_media_session_without_media_reports_no_frames(tmp_path: Path) -> None:
    session, port = await open_session(tmp_path, "silent.flac", tick=0.02)
    await asyncio.sleep(0.1)  # a few ticks with nothing to drain
    result = await session.close()
    assert (result.media_start, result.frames, result.duration) == (None, 0, 0.0)
    assert not session.received_any()
    assert result.streams[0].packets == 0
    assert not (tmp_path / "silent.flac").exists()
    reopened = await RtpReceiver.open(HOST, port)  # close() released both ports
    reopened.close()
    await reopened.wait_closed()


async def test_media_session_open_needs_one_port_per_stream(tmp_path: Path) -> None:
    streams = [StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0)]
    with pytest.raises(ValueError, match="ports"):
        await MediaSession.open(HOST, [], streams, 1, tmp_path / "x.flac")


async def open_session(
    tmp_path: Path, name: str, *, tick: float, write_interval: float = 1.0
) -> tuple[MediaSession, int]:
    pool = port_pool()
    streams = [StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0)]
    for _ in range(20):
        port = pool.allocate()
        try:
            path = tmp_path / name
            return await MediaSession.open(
                HOST, [port], streams, 1, path, tick=tick, write_interval=write_interval
            ), port
        except OSError:
            pool.release(port)
    raise AssertionError("no free port pair found")


async def wait_for_packets(session: MediaSession, count: int) -> None:
    async with asyncio.timeout(5):
        while session.stats()[0].packets < count:  # noqa: ASYNC110 - the receiver has no event to await
            await asyncio.sleep(0.005)


async def test_paused_media_is_dropped_and_the_timeline_kept(tmp_path: Path, sender: socket.socket) -> None:
    session, port = await open_session(tmp_path, "paused.flac", tick=0.05, write_interval=0.1)
    audio = tone(440, 60 * SAMPLES)
    payload = encode_ulaw(audio)
    loop = asyncio.get_running_loop()
    began = loop.time()
    for i in range(60):
        delay = began + i * PTIME - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if i in (20, 40):
            await wait_for_packets(session, i)  # everything sent so far was received before the switch
            session.set_paused(i == 20)
        chunk = slice(i * SAMPLES, (i + 1) * SAMPLES)
        sender.sendto(rtp(100 + i, 1000 + i * SAMPLES, 0xABC, payload[chunk]), (HOST, port))
    await wait_for_packets(session, 60)
    result = await session.close()
    data, _ = soundfile.read(tmp_path / "paused.flac", dtype="int16")
    assert len(data) == 60 * SAMPLES
    want = g711(audio)
    want[20 * SAMPLES : 40 * SAMPLES] = 0
    assert np.array_equal(data, want)
    assert (result.streams[0].suppressed, result.streams[0].lost) == (20, 0)


class FullDisk:
    """A writer whose disk fills up after the first write."""

    def __init__(self) -> None:
        self.writes = 0
        self.closed = False

    def write(self, frames: npt.NDArray[np.int16]) -> None:
        self.writes += 1
        if self.writes > 1:
            raise OSError(28, "No space left on device")

    def close(self) -> None:
        self.closed = True


async def test_write_failure_is_raised_by_close_after_the_file_is_closed(
    sender: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = await open_receiver(port_pool())
    recorder_streams = [StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0)]
    writer = FullDisk()
    session = MediaSession(
        receivers=[(recorder_streams[0], receiver)],
        recorder=CallRecorder(streams=recorder_streams, channels=1, reorder_window=0.0),
        writer=writer,
        tick=0.01,
        write_interval=0.01,
    )
    payload = encode_ulaw(tone(440, 30 * SAMPLES))
    loop = asyncio.get_running_loop()
    began = loop.time()
    for i in range(30):
        delay = began + i * PTIME - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sender.sendto(rtp(i, i * SAMPLES, 1, payload[i * SAMPLES : (i + 1) * SAMPLES]), (HOST, receiver.port))
    with pytest.raises(OSError, match="No space"):
        await session.close()
    assert writer.closed
    assert writer.writes == 2
    assert "writing the recording failed" in caplog.text
