"""Loopback tests of mid-call changes and SRTP through MediaSession: real sockets, the FLAC file read back."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile

from media.g711 import encode_ulaw
from media.recorder import StreamSpec
from media.session import MediaSession
from tests.unit.media.helpers import PTIME, SAMPLES, SrtpSrc, g711, pcmu, rtcp_receiver_report, rtp, tone
from tests.unit.media.test_session import HOST, port_pool

RNG = random.Random(4)


def spec(index: int, channel: int, srtp: SrtpSrc | None = None) -> StreamSpec:
    return StreamSpec(
        index=index, channel=channel, codec=pcmu(), payload_type=0, srtp=None if srtp is None else srtp.key
    )


async def open_session(
    path: Path, streams: list[StreamSpec], channels: int
) -> tuple[MediaSession, list[int]]:
    pool = port_pool()
    for _ in range(20):
        ports = [pool.allocate() for _ in streams]
        try:
            return await MediaSession.open(
                HOST, ports, streams, channels, path, tick=0.02, write_interval=0.1
            ), ports
        except OSError:
            for port in ports:
                pool.release(port)
    raise AssertionError("no free port pair found")


async def free_port(session: MediaSession, index: int) -> int:
    """A port pair nobody holds, bound by the session for a stream joining now."""
    pool = port_pool()
    for _ in range(20):
        port = pool.allocate()
        try:
            await session.add_stream(port, spec(index, 1))
            return port
        except OSError:
            pool.release(port)
    raise AssertionError("no free port pair found")


async def packets_in(session: MediaSession, index: int, count: int) -> None:
    async with asyncio.timeout(5):
        while session.stats()[index].packets < count:  # noqa: ASYNC110 - the receiver has no event to await
            await asyncio.sleep(0.005)


async def paced(sends: list[tuple[float, socket.socket, bytes, tuple[str, int]]]) -> None:
    """Send each datagram at its due time (seconds from now), as a SRC paces its packets."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    for due, sock, data, address in sends:
        delay = began + due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sock.sendto(data, address)


async def test_a_stream_joins_and_leaves_the_same_recording(tmp_path: Path, sender: socket.socket) -> None:
    path = tmp_path / "joined.flac"
    session, (caller_port,) = await open_session(path, [spec(0, 0)], channels=2)
    caller = encode_ulaw(tone(440, 50 * SAMPLES))
    joiner_audio = tone(1000, 15 * SAMPLES, amplitude=5000)
    joiner = encode_ulaw(joiner_audio)

    def caller_packet(i: int) -> bytes:
        return rtp(100 + i, i * SAMPLES, 0xAAA, caller[i * SAMPLES : (i + 1) * SAMPLES])

    await paced([(i * PTIME, sender, caller_packet(i), (HOST, caller_port)) for i in range(20)])
    await packets_in(session, 0, 20)
    joiner_port = await free_port(session, 1)  # a re-INVITE adds an m-line
    await paced(
        [
            plan
            for i in range(15)
            for plan in (
                (i * PTIME, sender, caller_packet(20 + i), (HOST, caller_port)),
                (
                    i * PTIME + 0.005,
                    sender,
                    rtp(7 + i, i * SAMPLES, 0xBBB, joiner[i * SAMPLES : (i + 1) * SAMPLES]),
                    (HOST, joiner_port),
                ),
            )
        ]
    )
    await packets_in(session, 1, 15)
    left = await session.remove_stream(1)  # port 0 in the next re-offer
    assert (left.packets, left.lost) == (15, 0)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((HOST, joiner_port))  # released: the port pool may hand it out again
    probe.close()
    with pytest.raises(ValueError, match="not being received"):
        await session.remove_stream(1)
    await paced([(i * PTIME, sender, caller_packet(35 + i), (HOST, caller_port)) for i in range(15)])
    await packets_in(session, 0, 50)
    result = await session.close()

    data, _ = soundfile.read(path, dtype="int16")
    assert len(data) == result.frames >= 50 * SAMPLES  # longer only if this machine stalled for 300 ms
    assert np.array_equal(data[: 50 * SAMPLES, 0], g711(tone(440, 50 * SAMPLES)))
    assert not data[50 * SAMPLES :, 0].any()
    start = int(np.flatnonzero(data[:, 1])[0])
    # Where the joiner's first packet arrived: after the caller's 20th (sent at 380 ms), plus the time that
    # receiving it and adding the stream took.
    assert 19 * SAMPLES < start <= 19 * SAMPLES + 0.5 * 8000
    assert np.array_equal(data[start : start + len(joiner_audio), 1], g711(joiner_audio))
    assert not data[start + len(joiner_audio) :, 1].any()
    assert [s.packets for s in result.streams] == [50, 15]


async def test_stream_pause_through_the_session(tmp_path: Path, sender: socket.socket) -> None:
    session, (port,) = await open_session(tmp_path / "held.flac", [spec(0, 0)], channels=1)
    payload = encode_ulaw(tone(440, 30 * SAMPLES))
    sends = [
        (i * PTIME, sender, rtp(i, i * SAMPLES, 5, payload[i * SAMPLES : (i + 1) * SAMPLES]), (HOST, port))
        for i in range(30)
    ]
    await paced(sends[:10])
    await packets_in(session, 0, 10)
    session.set_stream_paused(0, True)  # its only m-line went a=inactive: the recording is paused
    assert session.paused
    await paced(sends[10:20])
    await packets_in(session, 0, 20)
    assert session.pauses()[0][1] is None  # still open
    session.set_stream_paused(0, False)
    await paced(sends[20:])
    await packets_in(session, 0, 30)
    result = await session.close()
    assert result.streams[0].suppressed == 10
    assert len(result.pauses) == 1
    begin, end = result.pauses[0]
    # After the 10 packets before it, and as long as 10 more took to send: 200 ms each, or a little more.
    assert 0.18 <= begin <= 1.0 and 0.18 <= end - begin <= 1.0


async def test_srtp_stream_over_udp_with_garbage_and_srtcp(tmp_path: Path, sender: socket.socket) -> None:
    src = SrtpSrc("AEAD_AES_256_GCM", seed=12)
    path = tmp_path / "srtp.flac"
    session, (port,) = await open_session(path, [spec(0, 0, src)], channels=1)
    audio = tone(440, 40 * SAMPLES)
    payload = encode_ulaw(audio)
    protected = src.protect(
        [
            (0.0, rtp(300 + i, 9 + i * SAMPLES, 0x5EC, payload[i * SAMPLES : (i + 1) * SAMPLES]))
            for i in range(40)
        ]
    )
    sends: list[tuple[float, socket.socket, bytes, tuple[str, int]]] = []
    for i, (_, data) in enumerate(protected):
        sends.append((i * PTIME, sender, data, (HOST, port)))
        noise = RNG.randbytes(RNG.choice((0, 3, 12, 180, 1600)))
        sends.append((i * PTIME + 0.004, sender, noise, (HOST, port)))
    sends.append((0.3, sender, src.protect_rtcp(rtcp_receiver_report(0x5EC)), (HOST, port + 1)))
    await paced(sends)
    await packets_in(session, 0, 40)
    result = await session.close()
    data, _ = soundfile.read(path, dtype="int16")
    assert np.array_equal(data, g711(audio))
    stats = result.streams[0]
    assert (stats.packets, stats.srtp_failures, stats.rtcp_packets, stats.lost) == (40, 40, 1, 0)


async def test_srtp_with_the_wrong_key_records_nothing(tmp_path: Path, sender: socket.socket) -> None:
    src = SrtpSrc("AES_CM_128_HMAC_SHA1_80", seed=1)
    path = tmp_path / "wrong.flac"
    session, (port,) = await open_session(path, [spec(0, 0, SrtpSrc("AES_CM_128_HMAC_SHA1_80", seed=2))], 1)
    packets = src.protect([(0.0, rtp(i, i * SAMPLES, 9, b"\x55" * SAMPLES)) for i in range(10)])
    await paced([(i * PTIME, sender, data, (HOST, port)) for i, (_, data) in enumerate(packets)])
    async with asyncio.timeout(5):
        while session.stats()[0].srtp_failures < 10:  # noqa: ASYNC110 - the receiver has no event to await
            await asyncio.sleep(0.005)
    assert not session.received_any()
    result = await session.close()
    assert (result.frames, result.streams[0].packets) == (0, 0)
    assert not path.exists()  # no media, no file
