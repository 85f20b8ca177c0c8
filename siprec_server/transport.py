"""asyncio glue around the sans-I/O :class:`SipEndpoint`: UDP, TCP and TLS sockets, one timer, event dispatch.

The driver feeds every datagram or framed stream message to the endpoint, sends what it wants sent, re-arms a single
timer at the endpoint's earliest deadline and hands events to the application callback. Nothing here knows SIP
beyond stream framing. SIP over TLS is framed like TCP (RFC 3261 §18.3, §26.2); its messages reach the endpoint
with ``Address(transport="tls")``, so responses and our requests in its dialogs go back over the same connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
import time
from collections.abc import Callable

from .sip import Address, SipEndpoint, SipEvent, SipParseError, StreamFramer

__all__ = ["SipDriver"]

log = logging.getLogger(__name__)

EventHandler = Callable[[SipEvent], None]
TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds a new TLS connection may take to complete its handshake


_DRAIN_MORE = 63  # datagrams read after the one asyncio hands over, per readiness
_MAX_DATAGRAM = 65535


class _UdpProtocol(asyncio.DatagramProtocol):
    """Feeds the endpoint. asyncio reads one datagram per readiness, once per loop cycle: behind a loop busy with
    a thousand calls' media, INVITEs arriving at 50 a second and the SBC's OPTIONS would queue in the socket
    for hundreds of milliseconds. So each readiness also drains what is already queued, from our own socket."""

    def __init__(self, driver: SipDriver, sock: socket.socket) -> None:
        self._driver = driver
        self._sock = sock

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._feed(data, addr)
        for _ in range(_DRAIN_MORE):
            try:
                data, addr = self._sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error reported on the socket, or it was closed
                log.debug("SIP UDP socket error: %s", exc)
                return
            self._feed(data, addr)

    def _feed(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        host, port = str(addr[0]), int(addr[1])
        self._driver.feed(data, Address(transport="udp", host=host, port=port))

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP UDP socket error: %s", exc)


class SipDriver:
    """Owns the SIP sockets and the endpoint's clock. ``handler`` is called for each endpoint event."""

    def __init__(self, endpoint: SipEndpoint, handler: EventHandler) -> None:
        self.endpoint = endpoint
        self._handler = handler
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tls_server: asyncio.Server | None = None
        self._tls_client: ssl.SSLContext | None = None
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._connection_ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop = asyncio.get_running_loop()

    async def listen(self, host: str, port: int) -> None:
        family, kind, proto, _, address = (
            await self._loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.bind(address)
            _enlarge_receive_buffer(sock)
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self, sock), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        self._udp = transport
        self._tcp_server = await asyncio.start_server(self._serve_tcp, host, port)

    async def listen_tls(
        self, host: str, port: int, context: ssl.SSLContext, *, client_context: ssl.SSLContext | None = None
    ) -> None:
        """Accept SIP over TLS on ``host:port``; ``client_context`` is for connections we must open ourselves."""
        self._tls_client = client_context
        self._tls_server = await asyncio.start_server(
            self._serve_tls, host, port, ssl=context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT
        )
        self.endpoint.transport_ports["tls"] = self.tls_port or port  # Contact and Via of TLS dialogs name it

    @property
    def udp_port(self) -> int | None:
        """The port the UDP socket is bound to (the kernel's choice when it was asked for 0)."""
        if self._udp is None:
            return None
        return int(self._udp.get_extra_info("sockname")[1])

    @property
    def tls_port(self) -> int | None:
        """The port the TLS listener is bound to (the kernel's choice when it was asked for 0)."""
        if self._tls_server is None or not self._tls_server.sockets:
            return None
        return int(self._tls_server.sockets[0].getsockname()[1])

    @property
    def stream_connections(self) -> int:
        """Open TCP and TLS connections, accepted or opened by us."""
        return len(self._writers)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
        for server in (self._tcp_server, self._tls_server):
            if server is not None:
                server.close()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    @staticmethod
    def now() -> float:
        """The endpoint's clock: monotonic seconds."""
        return time.monotonic()

    # -- input ----------------------------------------------------------------------------------------------
    def feed(self, data: bytes, source: Address) -> None:
        self.endpoint.receive(data, source, self.now())
        self.flush()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve_stream(reader, writer, "tcp")

    async def _serve_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        log.debug(
            "SIP over TLS from %s: %s", writer.get_extra_info("peername"), writer.get_extra_info("cipher")
        )
        await self._serve_stream(reader, writer, "tls")

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str
    ) -> None:
        connection_id = next(self._connection_ids)
        self._writers[connection_id] = writer
        peer = writer.get_extra_info("peername") or ("0.0.0.0", 0)  # noqa: S104
        source = Address(
            transport=transport, host=str(peer[0]), port=int(peer[1]), connection_id=connection_id
        )
        framer = StreamFramer()
        try:
            while data := await reader.read(65536):
                try:
                    messages = framer.feed(data)
                except SipParseError as exc:
                    # A stream that lost its framing cannot be resynchronised (RFC 3261 §18.3): close it.
                    log.warning("closing SIP connection from %s:%s: %s", source.host, source.port, exc.reason)
                    self.endpoint.counters["malformed", "dropped"] += 1
                    break
                for message in messages:
                    self.feed(message, source)
                # RFC 5626 §3.5.1: answer each double-CRLF keep-alive ping with a single CRLF pong.
                pongs = framer.take_keepalives()
                if pongs:
                    writer.write(b"\r\n" * pongs)
        except (ConnectionError, OSError) as exc:
            log.debug("SIP connection %s:%s ended: %s", source.host, source.port, exc)
        finally:
            self._writers.pop(connection_id, None)
            writer.close()

    # -- output ---------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Send what the endpoint wants sent, dispatch its events and re-arm the timer."""
        for transmit in self.endpoint.transmit():
            self._send(transmit.data, transmit.destination)
        while (event := self.endpoint.next_event()) is not None:
            try:
                self._handler(event)
            except Exception:
                log.exception("SIP event handler failed for %s", type(event).__name__)
        for transmit in self.endpoint.transmit():
            self._send(transmit.data, transmit.destination)
        self._arm_timer()

    def _send(self, data: bytes, destination: Address) -> None:
        if destination.transport == "udp":
            if self._udp is not None:
                self._udp.sendto(data, (destination.host, destination.port))
            return
        writer = self._writers.get(destination.connection_id or -1)
        if writer is not None and not writer.is_closing():
            writer.write(data)
            return
        self._loop.create_task(self._send_new_connection(data, destination))

    async def _send_new_connection(self, data: bytes, destination: Address) -> None:
        """A request to a peer whose connection is gone (RFC 3261 §18.1.1: open a new one)."""
        context: ssl.SSLContext | None = None
        if destination.transport == "tls":
            context = self._tls_client or ssl.create_default_context()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    destination.host,
                    destination.port,
                    ssl=context,
                    ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if context is not None else None,
                ),
                timeout=TLS_HANDSHAKE_TIMEOUT if context is not None else 5,
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.warning(
                "cannot reach %s:%s over %s: %s",
                destination.host,
                destination.port,
                destination.transport.upper(),
                exc,
            )
            return
        writer.write(data)
        connection_id = next(self._connection_ids)
        self._writers[connection_id] = writer
        self._loop.create_task(self._read_replies(reader, writer, destination, connection_id))

    async def _read_replies(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Address, connection_id: int
    ) -> None:
        source = Address(
            transport=peer.transport, host=peer.host, port=peer.port, connection_id=connection_id
        )
        framer = StreamFramer()
        try:
            while data := await reader.read(65536):
                for message in framer.feed(data):
                    self.feed(message, source)
        except (ConnectionError, OSError, SipParseError) as exc:
            log.debug("outbound SIP connection to %s:%s ended: %s", peer.host, peer.port, exc)
        finally:
            self._writers.pop(connection_id, None)
            writer.close()

    def _arm_timer(self) -> None:
        deadline = self.endpoint.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            delay = max(0.0, deadline - self.now())
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.endpoint.handle_timer(self.now())
        self.flush()


_UDP_RECEIVE_BUFFER = 4 << 20  # bursts of large INVITEs (and floods) queue here rather than being dropped


def _enlarge_receive_buffer(sock: socket.socket | None) -> None:
    """Ask for a large kernel receive buffer; as root past net.core.rmem_max (SO_RCVBUFFORCE)."""
    if sock is None:
        return
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, _UDP_RECEIVE_BUFFER)
        except OSError:
            continue
        return
