"""UDP receive glue for one RTP stream: an RTP socket and its RTCP socket (port + 1), nothing else.

No callback runs per datagram: the kernel queues them, and the owner drains both sockets a few times a second
(:mod:`media.udp_batch`, one ``recvmmsg`` per socket and tick) and hands the batch to the sans-I/O timeline.
RTCP datagrams join the same list, where the timeline recognises them by their packet type (RFC 5761 §4).
The first source address is latched as the stream's remote; datagrams from other addresses are still
recorded and counted as foreign.
"""

from __future__ import annotations

import socket

from media.udp_batch import BatchReader, Datagram, address_of, open_udp_socket

__all__ = ["RtpReceiver"]

#: RTCP (a report every few seconds) is read on every n-th drain only; the kernel's arrival stamps keep its
#: timing exact, and an empty read costs as much as a full one.
RTCP_EVERY = 5

_reader = BatchReader()  # receivers are drained one at a time, from the event loop's thread


class RtpReceiver:
    """Receives one stream on ``port`` (RTP) and ``port + 1`` (RTCP)."""

    __slots__ = ("_drains", "_foreign", "_left", "_rtcp", "_rtcp_source", "_rtp", "_source", "host", "port")

    def __init__(self, *, host: str, port: int, rtp: socket.socket, rtcp: socket.socket) -> None:
        self.host = host
        self.port = port
        self._rtp: socket.socket | None = rtp
        self._rtcp: socket.socket | None = rtcp
        self._source: bytes | None = None
        self._rtcp_source: bytes | None = None
        self._foreign = 0
        self._drains = 0
        self._left: list[Datagram] = []

    @classmethod
    async def open(cls, host: str, port: int) -> RtpReceiver:
        """Bind ``host:port`` and ``host:port+1``; ``OSError`` (nothing left bound) if either is taken."""
        rtp = open_udp_socket(host, port)
        try:
            rtcp = open_udp_socket(host, port + 1)
        except BaseException:
            rtp.close()
            raise
        return cls(host=host, port=port, rtp=rtp, rtcp=rtcp)

    @property
    def remote(self) -> tuple[str, int] | None:
        """The first address RTP came from (latched)."""
        return None if self._source is None else address_of(self._source)

    @property
    def rtcp_remote(self) -> tuple[str, int] | None:
        return None if self._rtcp_source is None else address_of(self._rtcp_source)

    @property
    def foreign_packets(self) -> int:
        """RTP datagrams from an address other than the latched one (still recorded)."""
        return self._foreign

    def drain(self) -> list[Datagram]:
        """Everything received since the last drain, as ``(arrival wall time, datagram)`` pairs."""
        if self._rtp is None or self._rtcp is None:
            left, self._left = self._left, []
            return left
        packets, self._source, foreign = _reader.read(self._rtp, self._source)
        self._foreign += foreign
        self._drains += 1
        if self._drains % RTCP_EVERY == 0:
            reports, self._rtcp_source, _ = _reader.read(self._rtcp, self._rtcp_source)
            if reports:
                packets += reports
        return packets

    def close(self) -> None:
        """Stop receiving and release both ports; what was queued stays available to :meth:`drain`."""
        if self._rtp is None or self._rtcp is None:
            return
        self._drains = RTCP_EVERY - 1  # the last drain reads RTCP too
        self._left = self.drain()
        self._rtp.close()
        self._rtcp.close()
        self._rtp = self._rtcp = None

    async def wait_closed(self) -> None:
        """After :meth:`close` the ports are already released; kept for callers that await it."""
