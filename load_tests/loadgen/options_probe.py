"""SIP OPTIONS round trips to the server from a socket of its own (RFC 3261 §11), as an SBC's keep-alive
probe would see them while the server is under load. Each probe is a fresh out-of-dialog OPTIONS; its round trip
is the time to the first final response with its Call-ID. A probe unanswered within the timeout is lost."""

from __future__ import annotations

import asyncio
import random
import time

from siprec_server.sip import SipParseError, SipResponse, parse_message

__all__ = ["OptionsProbe"]

USER_AGENT = "Hangtar-loadgen/0.1"


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, probe: OptionsProbe) -> None:
        self._probe = probe

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._probe.received(data)


class OptionsProbe:
    def __init__(self, target: tuple[str, int], local_host: str, *, timeout: float = 2.0) -> None:
        self._target = target
        self._local_host = local_host
        self._timeout = timeout
        self._transport: asyncio.DatagramTransport | None = None
        self._port = 0
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._rng = random.Random()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self._local_host, 0)
        )
        self._transport = transport
        self._port = int(transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def probe(self) -> float | None:
        """One round trip in seconds, or None when no final response came within the timeout."""
        if self._transport is None:
            raise RuntimeError("open() the probe first")
        call_id = f"{self._rng.getrandbits(64):016x}@options.loadgen.hangtar.invalid"
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        host, port = self._target
        request = (
            f"OPTIONS sip:srs@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self._local_host}:{self._port};branch=z9hG4bK{self._rng.getrandbits(64):016x};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{self._local_host}>;tag={self._rng.getrandbits(32):08x}\r\n"
            f"To: <sip:srs@{host}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Accept: application/sdp\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        sent = time.monotonic()
        self._transport.sendto(request, self._target)
        try:
            answered = await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(call_id, None)
        return answered - sent

    def received(self, data: bytes) -> None:
        at = time.monotonic()
        try:
            message = parse_message(data)
            call_id = message.call_id
        except SipParseError:
            return
        if not isinstance(message, SipResponse) or message.status < 200:
            return
        future = self._waiting.get(call_id)
        if future is not None and not future.done():
            future.set_result(at)
