"""SIP over UDP behind a busy event loop: requests already queued in the socket are answered in one cycle,
not one per cycle (asyncio's own datagram reading), so keep-alives stay fast while a thousand calls' media
keep the loop busy."""

from __future__ import annotations

import asyncio
import socket
import time

from siprec_server.sip import SipEndpoint, parse_message
from siprec_server.sip.message import SipResponse
from siprec_server.transport import SipDriver
from tests.unit.sip.traffic import request

QUEUED = 40
BUSY_CYCLE = 0.02  # seconds of other work in every loop cycle, as a media pump slice and the rest would take


def options(index: int, port: int) -> bytes:
    return request(
        "OPTIONS",
        "sip:srs@127.0.0.1",
        [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKkeepalive{index}"),
            ("Max-Forwards", "70"),
            ("From", "<sip:sbc@127.0.0.1>;tag=sbc"),
            ("To", "<sip:srs@127.0.0.1>"),
            ("Call-ID", f"keepalive-{index}@127.0.0.1"),
            ("CSeq", "1 OPTIONS"),
        ],
    )


async def test_requests_queued_in_the_socket_are_answered_in_one_busy_cycle() -> None:
    driver = SipDriver(SipEndpoint(host="127.0.0.1", port=5060), lambda event: None)
    await driver.listen("127.0.0.1", 0)
    assert driver.udp_port is not None
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    busy = True

    def other_work() -> None:
        time.sleep(BUSY_CYCLE)
        if busy:
            loop.call_soon(other_work)

    try:
        loop.call_soon(other_work)
        for index in range(QUEUED):
            client.sendto(options(index, client.getsockname()[1]), ("127.0.0.1", driver.udp_port))
        started = time.monotonic()
        answered: set[str] = set()
        while len(answered) < QUEUED and time.monotonic() - started < 5:
            await asyncio.sleep(0)
            while True:
                try:
                    data = client.recv(65535)
                except BlockingIOError:
                    break
                response = parse_message(data)
                assert isinstance(response, SipResponse) and response.status == 200
                answered.add(response.call_id)
        elapsed = time.monotonic() - started
    finally:
        busy = False
        client.close()
        driver.close()
    assert len(answered) == QUEUED
    # One datagram a cycle would take QUEUED cycles (0.8 s here); drained, a few cycles do.
    assert elapsed < 10 * BUSY_CYCLE, f"{QUEUED} queued OPTIONS took {elapsed * 1000:.0f} ms"
