"""UDP receive glue for one RTP stream: an RTP socket and its RTCP socket (port + 1), nothing else.

Each datagram costs a clock read and a list append; the owner drains the list a few times a second and hands
it to the sans-I/O timeline. RTCP datagrams join the same list, where the timeline counts them (they are
recognised by their packet type, RFC 5761 §4). The first source address is latched as the stream's remote.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

__all__ = ["RtpReceiver"]

# asyncio reads every datagram into a fresh buffer of transport.max_size octets (256 KiB by default), which
# dominates the receive cost. RTP audio fits far below this; longer datagrams arrive truncated (garbage).
_MAX_DATAGRAM = 2048


class _Sink(asyncio.DatagramProtocol):
    __slots__ = ("_latched", "closed", "foreign", "packets", "remote", "transport")

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes]] = []
        self.remote: tuple[str, int] | None = None
        self.foreign = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._latched: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        if hasattr(transport, "max_size"):
            cast(Any, transport).max_size = _MAX_DATAGRAM

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.packets.append((time.time(), data))
        if addr != self._latched:
            if self._latched is None:
                self._latched = addr
                self.remote = (str(addr[0]), int(addr[1]))
            else:
                self.foreign += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable after the peer left, ...) carry no media; the stream stats tell.
        pass


class RtpReceiver:
    """Receives one stream on ``port`` (RTP) and ``port + 1`` (RTCP)."""

    __slots__ = ("_rtcp", "_rtp", "host", "port")

    def __init__(self, *, host: str, port: int, rtp: _Sink, rtcp: _Sink) -> None:
        self.host = host
        self.port = port
        self._rtp = rtp
        self._rtcp = rtcp

    @classmethod
    async def open(cls, host: str, port: int) -> RtpReceiver:
        """Bind ``host:port`` and ``host:port+1``; ``OSError`` (nothing left bound) if either is taken."""
        loop = asyncio.get_running_loop()
        rtp_transport, rtp = await loop.create_datagram_endpoint(_Sink, local_addr=(host, port))
        try:
            _, rtcp = await loop.create_datagram_endpoint(_Sink, local_addr=(host, port + 1))
        except BaseException:
            rtp_transport.close()
            await rtp.closed  # the socket is released one loop iteration after close()
            raise
        return cls(host=host, port=port, rtp=rtp, rtcp=rtcp)

    @property
    def remote(self) -> tuple[str, int] | None:
        """The first address RTP came from (latched)."""
        return self._rtp.remote

    @property
    def rtcp_remote(self) -> tuple[str, int] | None:
        return self._rtcp.remote

    @property
    def foreign_packets(self) -> int:
        """RTP datagrams from an address other than the latched one (still recorded)."""
        return self._rtp.foreign

    def drain(self) -> list[tuple[float, bytes]]:
        """Everything received since the last drain, as ``(arrival wall time, datagram)`` pairs."""
        packets = self._rtp.packets
        self._rtp.packets = []
        if self._rtcp.packets:
            packets += self._rtcp.packets
            self._rtcp.packets = []
        return packets

    def close(self) -> None:
        """Stop receiving; packets not drained yet stay available to :meth:`drain`."""
        for sink in (self._rtp, self._rtcp):
            if sink.transport is not None:
                sink.transport.close()

    async def wait_closed(self) -> None:
        """After :meth:`close`: return once both ports are released."""
        await asyncio.gather(self._rtp.closed, self._rtcp.closed)
