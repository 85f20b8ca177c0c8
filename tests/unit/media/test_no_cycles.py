"""A recorded call's media state goes by reference counting alone.

The server freezes long-lived objects out of the garbage collector's full collections
(``siprec_server.gc_policy``); a reference cycle in what a call leaves behind would wait there until the next
reclaim. This records a call the way the server does — two legs through ``MediaSession`` into the encrypted
FLAC sink, with loss, reordering, a key press and RTCP — with the collector off, and asks it afterwards what
it finds unreachable.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from pathlib import Path

from media.g711 import encode_ulaw
from media.recorder import StreamSpec
from media.writer import RandomAccessSink
from storage.sealed import SealedWriter
from tests.unit.media.helpers import (
    PTIME,
    SAMPLES,
    open_loopback_session,
    pcmu,
    rtcp_receiver_report,
    rtp,
    telephone_event,
    tone,
)

HOST = "127.0.0.1"
KEY = bytes(range(32))
OURS = ("media", "storage")


async def record_a_call(path: Path, sender: socket.socket) -> int:
    streams = [
        StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0, telephone_event_pt=101),
        StreamSpec(index=1, channel=1, codec=pcmu(), payload_type=0, telephone_event_pt=101),
    ]

    def open_sink(name: str) -> RandomAccessSink:
        return SealedWriter(name, KEY)

    session, ports = await open_loopback_session(
        streams, path, tick=0.05, write_interval=0.2, open_sink=open_sink
    )

    payloads = encode_ulaw(tone(440, 50 * SAMPLES)), encode_ulaw(tone(1000, 50 * SAMPLES))
    loop = asyncio.get_running_loop()
    began = loop.time()
    sent = 0
    for i in range(50):
        delay = began + i * PTIME - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = slice(i * SAMPLES, (i + 1) * SAMPLES)
        order = [(0, 0xCA11E7, 100), (1, 0xCA11EE, 900)]
        for leg, ssrc, seq in order:
            if leg == 1 and i == 20:
                continue  # lost: a gap the placement counts
            if leg == 0 and 30 <= i < 33:
                data = telephone_event(1, end=i == 32, duration=(i - 29) * SAMPLES)  # a key press
                sender.sendto(rtp(seq + i, 30 * SAMPLES, ssrc, data, pt=101), (HOST, ports[leg]))
            else:
                sender.sendto(rtp(seq + i, i * SAMPLES, ssrc, payloads[leg][chunk]), (HOST, ports[leg]))
            sent += 1
        if i == 25:
            sender.sendto(rtcp_receiver_report(0xCA11E7), (HOST, ports[0] + 1))
    async with asyncio.timeout(5):
        while sum(s.packets for s in session.stats()) < sent:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.01)
    result = await session.close()
    return result.frames


async def test_a_recorded_call_leaves_no_reference_cycle(tmp_path: Path, sender: socket.socket) -> None:
    gc.collect()
    gc.disable()
    try:
        frames = await record_a_call(tmp_path / "call.flac.sealed", sender)
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collection finds stays in gc.garbage, to be named
        gc.collect()
        cyclic = sorted(
            {
                f"{type(o).__module__}.{type(o).__qualname__}"
                for o in gc.garbage
                if type(o).__module__.partition(".")[0] in OURS
            }
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert frames >= 49 * SAMPLES  # the call was recorded
    assert cyclic == []
