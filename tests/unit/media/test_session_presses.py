"""Loopback: key presses taken from a live MediaSession, and a recording discarded in the middle of the call.

A caller stream with telephone-event (RFC 4733) and an agent stream without it (keys as in-band tones), paced in
real time over UDP as an SRC sends them.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from media.dtmf import DtmfSource
from media.g711 import encode_ulaw
from media.ports import PortPool
from media.presses import DtmfPress
from media.recorder import StreamSpec
from media.session import MediaSession
from tests.unit.media.helpers import PTIME, SAMPLES, pcmu, rtp, telephone_event

HOST = "127.0.0.1"
TE = 101
TICK = 0.05
WRITE = 0.2
ROW_2, COLUMN_2 = 697.0, 1336.0  # Q.23: key "2"


def q23_key(seconds: float, at: float, rng: np.random.Generator) -> npt.NDArray[np.int16]:
    """Line noise with key "2" sounding for 80 ms from ``at`` (-7 dBm0 per tone)."""
    audio = rng.normal(0.0, 25.0, round(seconds * 8000))
    t = np.arange(640) / 8000
    amplitude = 32768.0 * 10 ** ((-7.0 - 3.17) / 20)
    first = round(at * 8000)
    audio[first : first + 640] += amplitude * (
        np.sin(2 * np.pi * ROW_2 * t) + np.sin(2 * np.pi * COLUMN_2 * t)
    )
    return np.clip(np.round(audio), -32768, 32767).astype(np.int16)


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[tuple[MediaSession, list[int]]]:
    streams = [
        StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0, telephone_event_pt=TE),
        StreamSpec(index=1, channel=1, codec=pcmu(), payload_type=0),
    ]
    first = random.randrange(20000, 60000, 2)
    pool = PortPool(first, first + 199)
    for _ in range(20):
        ports = [pool.allocate(), pool.allocate()]
        try:
            opened = await MediaSession.open(
                HOST, ports, streams, 2, tmp_path / "call.flac", tick=TICK, write_interval=WRITE
            )
        except OSError:
            continue
        yield opened, ports
        await opened.close()
        return
    raise AssertionError("no free ports")


def caller_packets(seconds: float, first: int, press_at: float | None) -> list[tuple[float, bytes]]:
    """(send offset, datagram): 20 ms PCMU of a quiet tone, and key "1" as RFC 4733 events from ``press_at``."""
    payload = encode_ulaw(np.round(800 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * 8000)) / 8000)))
    out = [
        (
            i * PTIME,
            rtp(first + i, 8000 + (first + i) * SAMPLES, 0xCA11E7, payload[i * SAMPLES : (i + 1) * SAMPLES]),
        )
        for i in range(len(payload) // SAMPLES)
    ]
    if press_at is not None:
        ts, seq = 8000 + round((first + press_at / PTIME) * SAMPLES), 40_000
        for step in range(3):  # held 150 ms: start, updates, then three end packets (RFC 4733 §2.5.1)
            update = telephone_event(1, end=False, duration=400 * (step + 1))
            out.append(
                (press_at + step * 0.05, rtp(seq + step, ts, 0xCA11E7, update, pt=TE, marker=not step))
            )
        for repeat in range(3):
            end = telephone_event(1, end=True, duration=1200)
            out.append((press_at + 0.15 + repeat * 0.02, rtp(seq + 3 + repeat, ts, 0xCA11E7, end, pt=TE)))
    return sorted(out, key=lambda item: item[0])


def agent_packets(audio: npt.NDArray[np.int16], first: int) -> list[tuple[float, bytes]]:
    payload = encode_ulaw(audio)
    return [
        (i * PTIME, rtp(first + i, (first + i) * SAMPLES, 0xA6E47, payload[i * SAMPLES : (i + 1) * SAMPLES]))
        for i in range(len(payload) // SAMPLES)
    ]


async def send_paced(sock: socket.socket, plan: list[tuple[float, int, bytes]]) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    for due, port, data in sorted(plan, key=lambda item: item[0]):
        delay = began + due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sock.sendto(data, (HOST, port))


async def presses_until(session: MediaSession, count: int) -> list[DtmfPress]:
    taken: list[DtmfPress] = []
    async with asyncio.timeout(5):
        while len(taken) < count:
            await asyncio.sleep(TICK)
            taken += session.take_presses()
    return taken


async def test_presses_of_both_kinds_are_taken_while_the_call_runs(
    session: tuple[MediaSession, list[int]], sender: socket.socket
) -> None:
    media, ports = session
    assert media.press_delay == TICK + 0.3  # RFC 4733 only: jitter up to the reorder window, the next drain
    assert not media.set_inband_dtmf(0, True)  # the caller's keys come as telephone events
    assert media.set_inband_dtmf(1, True)
    # An in-band press waits for its tone to end and for the mix that hands it out, past the reorder window.
    assert media.press_delay == pytest.approx(TICK + 0.3 + 0.3 + max(WRITE, 0.25))
    agent = q23_key(2.0, 1.2, np.random.default_rng(11))
    plan = [(due, ports[0], data) for due, data in caller_packets(2.0, 100, press_at=0.6)]
    plan += [(due, ports[1], data) for due, data in agent_packets(agent, 500)]
    await send_paced(sender, plan)
    taken = await presses_until(media, 2)

    assert [(p.stream, p.digit, p.source) for p in taken] == [
        (0, "1", DtmfSource.RFC4733),
        (1, "2", DtmfSource.INBAND),
    ]
    assert media.media_start is not None
    # On the recording's clock: both legs started together, so the times are where the sender put them.
    assert taken[0].at == pytest.approx(0.6, abs=0.03)
    assert taken[1].at == pytest.approx(1.2, abs=0.03)
    result = await media.close()
    assert [(p.stream, p.digit) for p in result.dtmf] == [(0, "1"), (1, "2")]
    assert media.take_presses() == []


async def test_a_discarded_recording_writes_nothing_more_and_keeps_its_ports_answering(
    session: tuple[MediaSession, list[int]], sender: socket.socket, tmp_path: Path
) -> None:
    media, ports = session
    plan = [(due, ports[0], data) for due, data in caller_packets(1.0, 0, press_at=None)]
    await send_paced(sender, plan)
    async with asyncio.timeout(5):
        while media.stats()[0].packets < 50 or media.media_start is None:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(TICK)
    await media.discard()
    assert media.discarded
    path = tmp_path / "call.flac"
    size = path.stat().st_size
    packets = media.stats()[0].packets

    # The SRC keeps sending, from a connected socket that would see an ICMP port unreachable as an error.
    connected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        connected.connect((HOST, ports[0]))
        for _, data in caller_packets(1.0, 50, press_at=0.3):
            await asyncio.sleep(PTIME / 2)
            connected.send(data)
        await asyncio.sleep(4 * TICK)
        with pytest.raises(BlockingIOError):  # no pending error: the port is open and drained
            connected.recv(2048, socket.MSG_DONTWAIT)
        assert media.stats()[0].packets == packets  # dropped unread: nothing decoded or placed
        assert media.take_presses() == []  # the key pressed after the discard was never looked at
        assert path.stat().st_size == size
        result = await media.close()
        connected.send(caller_packets(0.02, 200, press_at=None)[0][1])
        await asyncio.sleep(0.05)
        with pytest.raises(ConnectionRefusedError):  # closed now: the same check sees the port gone
            connected.recv(2048, socket.MSG_DONTWAIT)
    finally:
        connected.close()
    data, rate = soundfile.read(path, dtype="int16")  # closed as it stood: a whole FLAC file
    assert rate == 8000 and len(data) == result.frames > 0
    assert result.duration <= 1.0
