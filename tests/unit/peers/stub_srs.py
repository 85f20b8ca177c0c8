"""A scripted stand-in SRS for checking the SIPREC client scenarios without the product.

It answers every SIP request over UDP or TCP the way RFC 7866 asks of an SRS, in the simplest possible way:
200 OK to everything but ACK; an offer (INVITE or UPDATE with SDP) gets one m-line per offered m-line, each
on a fixed port of its own, label echoed, ``a=inactive`` where the offer holds the stream (``a=inactive``
or ``c=0.0.0.0``), else ``a=recvonly``; an INVITE without SDP gets the current answer as an offer; a
metadata-only request gets 200 without a body. ``Session-Expires`` is echoed with ``Require: timer``.

Every request it received and every RTP packet on its media ports is kept with its arrival time, so a test
can check what the scenario really put on the wire. Threads only; stop it with ``close()``.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

MEDIA_PORTS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    at: float  # time.time() on arrival
    transport: str  # "udp" or "tcp"
    text: str

    @property
    def method(self) -> str:
        return self.text.split(" ", 1)[0]

    def header(self, name: str) -> str | None:
        match = re.search(rf"(?im)^{re.escape(name)}\s*:\s*(.*?)\s*$", self.head)
        return match.group(1) if match else None

    @property
    def head(self) -> str:
        return self.text.split("\r\n\r\n", 1)[0]

    @property
    def body(self) -> str:
        return self.text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in self.text else ""

    @property
    def parts(self) -> list[tuple[str, str]]:
        """(content type, content) of each body part, in order; a single-part body is one part."""
        content_type = self.header("Content-Type") or ""
        boundary = re.search(r'boundary="?([^";]+)"?', content_type)
        if not boundary:
            return [(content_type.split(";")[0].strip().lower(), self.body)] if self.body else []
        found = []
        for part in self.body.split("--" + boundary.group(1))[1:]:
            if part.startswith("--"):
                break
            head, _, content = part.lstrip("\r\n").partition("\r\n\r\n")
            kind = re.search(r"(?im)^content-type\s*:\s*([^;\r\n]+)", head)
            found.append(((kind.group(1).strip().lower() if kind else ""), content))
        return found

    def part(self, content_type: str) -> str:
        return next(content for kind, content in self.parts if kind == content_type)


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpArrival:
    at: float  # time.time() on arrival
    port: int  # our media port it arrived on
    source: tuple[str, int]  # where it came from
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


@dataclass(kw_only=True)
class StubSrs:
    host: str = "127.0.0.1"
    media_ports: int = MEDIA_PORTS
    requests: list[Request] = field(default_factory=list)
    rtp: list[RtpArrival] = field(default_factory=list)
    _udp: socket.socket = field(init=False, repr=False)
    _tcp: socket.socket = field(init=False, repr=False)
    _media: list[socket.socket] = field(init=False, repr=False, default_factory=list)
    _threads: list[threading.Thread] = field(init=False, repr=False, default_factory=list)
    _stop: threading.Event = field(init=False, repr=False, default_factory=threading.Event)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _version: int = field(init=False, repr=False, default=1)
    _last_answer: str = field(init=False, repr=False, default="")

    @property
    def port(self) -> int:
        return int(self._udp.getsockname()[1])

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def rtp_ports(self) -> list[int]:
        return [int(s.getsockname()[1]) for s in self._media]

    def start(self) -> Self:
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind((self.host, 0))
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind((self.host, self.port))
        self._tcp.listen()
        for _ in range(self.media_ports):
            media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            media.bind((self.host, 0))
            self._media.append(media)
        for sock in [self._udp, self._tcp, *self._media]:
            sock.settimeout(0.05)
        self._spawn(self._serve_udp)
        self._spawn(self._accept_tcp)
        for media in self._media:
            self._spawn(self._receive_rtp, media)
        return self

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        for sock in [self._udp, self._tcp, *self._media]:
            sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def received(self, method: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def rtp_on(self, port: int) -> list[RtpArrival]:
        with self._lock:
            return [p for p in self.rtp if p.port == port]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(found := self.received(method)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} {method} not received; got {[r.method for r in self.requests]}")
            time.sleep(0.01)
        return found

    # -- threads ---------------------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            reply = self._handle(data.decode("utf-8", "replace"), "udp")
            if reply:
                self._udp.sendto(reply, source)

    def _accept_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._tcp.accept()
            except TimeoutError:
                continue
            connection.settimeout(0.05)
            self._spawn(self._serve_tcp, connection)

    def _serve_tcp(self, connection: socket.socket) -> None:
        buffer = b""
        with connection:
            while not self._stop.is_set():
                try:
                    chunk = connection.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                    size = int(length.group(1)) if length else 0
                    if len(rest) < size:
                        break
                    message, buffer = head + b"\r\n\r\n" + rest[:size], rest[size:]
                    reply = self._handle(message.decode("utf-8", "replace"), "tcp")
                    if reply:
                        connection.sendall(reply)

    def _receive_rtp(self, media: socket.socket) -> None:
        port = int(media.getsockname()[1])
        while not self._stop.is_set():
            try:
                data, source = media.recvfrom(2048)
            except TimeoutError:
                continue
            if len(data) < 12:
                continue
            first, second, seq, timestamp, ssrc = struct.unpack("!BBHII", data[:12])
            arrival = RtpArrival(
                at=time.time(),
                port=port,
                source=(str(source[0]), int(source[1])),
                payload_type=second & 0x7F,
                seq=seq,
                timestamp=timestamp,
                ssrc=ssrc,
                marker=bool(second & 0x80),
                payload=data[12 + 4 * (first & 0x0F) :],
            )
            with self._lock:
                self.rtp.append(arrival)

    # -- answers ---------------------------------------------------------------------------------------

    def _handle(self, text: str, transport: str) -> bytes | None:
        if text.startswith("SIP/2.0"):
            return None  # a response to something we never send
        request = Request(at=time.time(), transport=transport, text=text)
        with self._lock:
            self.requests.append(request)
        if request.method == "ACK":
            return None
        body, content_type = "", None
        sdp = _sdp_part(request)
        if sdp is not None:
            body, content_type = self._answer(sdp), "application/sdp"
        elif request.method == "INVITE":
            body, content_type = self._last_answer, "application/sdp"
        return _response(request, body, content_type, self.host, self.port)

    def _answer(self, offer: str) -> str:
        session_hold = bool(re.search(r"(?m)^c=IN IP4 0\.0\.0\.0\s*$", offer.split("m=", 1)[0]))
        lines = [
            "v=0",
            f"o=stub 1 {self._version} IN IP4 {self.host}",
            "s=stub SRS",
            f"c=IN IP4 {self.host}",
            "t=0 0",
        ]
        self._version += 1
        for index, block in enumerate(offer.split("\nm=")[1:]):
            media = "m=" + block
            formats = media.split("\n", 1)[0].split()[3:]
            held = session_hold or "a=inactive" in media or "c=IN IP4 0.0.0.0" in media
            port = self.rtp_ports[index] if index < len(self.rtp_ports) else 0
            lines.append(f"m=audio {port} RTP/AVP {formats[0] if formats else '0'}")
            label = re.search(r"(?m)^a=label:(\S+)", media)
            if label:
                lines.append(f"a=label:{label.group(1)}")
            lines.append("a=inactive" if held else "a=recvonly")
        self._last_answer = "\r\n".join(lines) + "\r\n"
        return self._last_answer


def _sdp_part(request: Request) -> str | None:
    return next((content for kind, content in request.parts if kind == "application/sdp"), None)


def _response(request: Request, body: str, content_type: str | None, host: str, port: int) -> bytes:
    head = ["SIP/2.0 200 OK"]
    head += [f"Via: {v}" for v in re.findall(r"(?im)^Via\s*:\s*(.*?)\s*$", request.head)]
    head.append(f"From: {request.header('From')}")
    to = request.header("To") or ""
    head.append(f"To: {to}" if ";tag=" in to else f"To: {to};tag=stub")
    head.append(f"Call-ID: {request.header('Call-ID')}")
    head.append(f"CSeq: {request.header('CSeq')}")
    head.append(f"Contact: <sip:srs@{host}:{port};transport={request.transport}>")
    expires = request.header("Session-Expires")
    if expires:
        head += [f"Session-Expires: {expires}", "Require: timer"]
    if content_type:
        head.append(f"Content-Type: {content_type}")
    head.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()
