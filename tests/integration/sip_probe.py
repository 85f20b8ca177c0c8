"""A tiny raw SIP client for integration tests: send handwritten requests, read what the server answers."""

from __future__ import annotations

import random
import socket
import time


def branch() -> str:
    return f"z9hG4bK{random.getrandbits(48):012x}"


def request(
    method: str,
    *,
    port: int,
    local_port: int,
    call_id: str | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    extra: str = "",
    transport: str = "UDP",
) -> bytes:
    call_id = call_id or f"{random.getrandbits(64):016x}@probe.example"
    lines = [
        f"{method} sip:srs@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch={branch()};rport",
        "Max-Forwards: 70",
        f"From: <sip:src@127.0.0.1:{local_port}>;tag={random.getrandbits(32):08x}",
        f"To: <sip:srs@127.0.0.1:{port}>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:src@127.0.0.1:{local_port}>",
    ]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if extra:
        lines.extend(extra.strip().splitlines())
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class UdpProbe:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    def receive(self, timeout: float = 5.0) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        return data

    def final_response(self, timeout: float = 5.0) -> bytes:
        """Skip provisional responses; the first final response."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            data = self.receive(left)
            if data is None:
                break
            if not data.startswith(b"SIP/2.0 1"):
                return data
        raise AssertionError("no final response")

    def close(self) -> None:
        self.sock.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def header(response: bytes, name: str) -> str | None:
    for line in response.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None
