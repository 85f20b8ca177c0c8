"""UDP receive glue for one RTP stream: an RTP socket and its RTCP socket (port + 1), nothing else.

No callback runs per datagram: the kernel queues them, and the owner drains both sockets a few times a second
(:mod:`media.udp_batch`, one ``recvmmsg`` per socket and tick) and hands each batch, still in the reader's
buffer, to the sans-I/O timeline. RTCP datagrams follow in batches of their own, which the timeline recognises
by their packet type (RFC 5761 §4).
The first source address is latched as the stream's remote; datagrams from other addresses are still
recorded and counted as foreign.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import time
from collections.abc import Callable

from media.udp_batch import (
    BATCH,
    BatchReader,
    Datagram,
    DatagramBatch,
    address_of,
    name_size,
    open_udp_socket,
)

__all__ = ["RtpReceiver"]

#: RTCP (a report every few seconds) is read on every n-th drain, and then only when something is queued
#: (:class:`_RtcpReadiness`); the kernel's arrival stamps keep its timing exact.
RTCP_EVERY = 1

#: Seconds a look at which RTCP sockets have datagrams queued stays valid (see :class:`_RtcpReadiness`).
RTCP_READY_FOR = 0.05

_reader = BatchReader()  # receivers are drained one at a time, from the event loop's thread


class _RtcpReadiness:
    """Which RTCP sockets have datagrams queued: one ``epoll`` of them all, asked at most every
    :data:`RTCP_READY_FOR` seconds. A sender reports every few seconds, so most RTCP sockets are empty at
    their turn; this spares thousands of empty reads a second. A report that arrives just after a look
    waits for the socket's next turn: its kernel arrival stamp keeps its timing exact."""

    __slots__ = ("_at", "_poll", "_ready", "_watched")

    def __init__(self) -> None:
        self._poll = select.epoll() if hasattr(select, "epoll") else None
        self._ready: set[int] = set()
        self._watched = 0
        self._at = -math.inf

    def watch(self, sock: socket.socket) -> None:
        if self._poll is not None:
            self._poll.register(sock.fileno(), select.EPOLLIN)
            self._watched += 1

    def forget(self, sock: socket.socket) -> None:
        if self._poll is not None:
            self._ready.discard(sock.fileno())
            self._watched -= 1
            with contextlib.suppress(OSError):  # already gone from the set
                self._poll.unregister(sock.fileno())

    def ready(self, sock: socket.socket) -> bool:
        """False only if ``sock`` had nothing queued when last looked at (a look is made if none is recent)."""
        if self._poll is None:
            return True
        now = time.monotonic()
        if now - self._at > RTCP_READY_FOR:
            self._ready = {fd for fd, _ in self._poll.poll(0, max(1, self._watched + 1))}
            self._at = now
        return sock.fileno() in self._ready


_rtcp_ready = _RtcpReadiness()  # RTCP sockets of every receiver, read from the event loop's thread


class RtpReceiver:
    """Receives one stream on ``port`` (RTP) and ``port + 1`` (RTCP)."""

    __slots__ = (
        "_closing",
        "_drains",
        "_foreign",
        "_left",
        "_name_size",
        "_rtcp",
        "_rtcp_every",
        "_rtcp_source",
        "_rtp",
        "_source",
        "host",
        "port",
    )

    def __init__(
        self, *, host: str, port: int, rtp: socket.socket, rtcp: socket.socket, rtcp_every: int = RTCP_EVERY
    ) -> None:
        """``rtcp_every``: RTCP is read on every n-th :meth:`receive`, and on the last."""
        if rtcp_every < 1:
            raise ValueError("rtcp_every must be at least 1")
        self.host = host
        self.port = port
        self._rtp: socket.socket | None = rtp
        self._rtcp: socket.socket | None = rtcp
        self._source: bytes | None = None
        self._rtcp_source: bytes | None = None
        self._foreign = 0
        self._drains = 0
        self._closing = False
        self._rtcp_every = rtcp_every
        self._left: list[Datagram] = []
        self._name_size = name_size(rtp)  # both sockets are of one family
        _rtcp_ready.watch(rtcp)

    @classmethod
    async def open(cls, host: str, port: int, *, rtcp_every: int = RTCP_EVERY) -> RtpReceiver:
        """Bind ``host:port`` and ``host:port+1``; ``OSError`` (nothing left bound) if either is taken."""
        rtp = open_udp_socket(host, port)
        try:
            rtcp = open_udp_socket(host, port + 1)
        except BaseException:
            rtp.close()
            raise
        return cls(host=host, port=port, rtp=rtp, rtcp=rtcp, rtcp_every=rtcp_every)

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

    def receive(self, sink: Callable[[DatagramBatch], None]) -> None:
        """Hand everything received since the last call to ``sink``, one batch at a time: RTP, then (every
        ``rtcp_every``-th call, if the RTCP socket has anything queued) RTCP. A batch is valid only during its
        call (see :class:`~media.udp_batch.DatagramBatch`)."""
        if self._rtp is None or self._rtcp is None:
            left, self._left = self._left, []
            for first in range(0, len(left), BATCH):
                sink(DatagramBatch.of(left[first : first + BATCH]))
            return
        read = _reader.read_batch
        size = self._name_size
        while True:
            batch = read(self._rtp, size, self._source)
            self._source = batch.source
            if batch.count:
                self._foreign += batch.foreign
                sink(batch)
            if batch.count < BATCH:
                break
        self._drains += 1
        if self._closing or (self._drains % self._rtcp_every == 0 and _rtcp_ready.ready(self._rtcp)):
            while True:
                batch = read(self._rtcp, size, self._rtcp_source)
                self._rtcp_source = batch.source
                if batch.count:
                    sink(batch)
                if batch.count < BATCH:
                    break

    def drain(self) -> list[Datagram]:
        """Everything received since the last drain, as ``(arrival wall time, datagram)`` pairs."""
        packets: list[Datagram] = []
        self.receive(lambda batch: packets.extend(batch.datagrams()))
        return packets

    def close(self) -> None:
        """Stop receiving and release both ports; what was queued stays available to :meth:`drain`."""
        if self._rtp is None or self._rtcp is None:
            return
        self._closing = True  # the last drain reads RTCP too, queued or not
        self._left = self.drain()
        _rtcp_ready.forget(self._rtcp)
        self._rtp.close()
        self._rtcp.close()
        self._rtp = self._rtcp = None

    async def wait_closed(self) -> None:
        """After :meth:`close` the ports are already released; kept for callers that await it."""
