"""A fake link between the endpoint under test and SRC peers; time moves only by assignment."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from siprec_server.sip import (
    Address,
    SipEndpoint,
    SipEvent,
    SipRequest,
    SipResponse,
    TimerConfig,
    parse_message,
)

from .traffic import SIPREC_BODY, request

SRS = Address(transport="udp", host="10.20.30.40", port=5060)
_branches = itertools.count(1)


class Link:
    def __init__(
        self, *, timers: TimerConfig | None = None, supported: tuple[str, ...] | None = None
    ) -> None:
        self.endpoint = SipEndpoint(host=SRS.host, port=SRS.port, timers=timers or TimerConfig())
        if supported is not None:
            self.endpoint = SipEndpoint(host=SRS.host, port=SRS.port, supported=supported)
        self.now = 0.0

    def deliver(self, data: bytes, source: Address) -> None:
        self.endpoint.receive(data, source, self.now)

    def sent(self) -> list[tuple[Address, SipRequest | SipResponse]]:
        return [(out.destination, parse_message(out.data)) for out in self.endpoint.transmit()]

    def events(self) -> list[SipEvent]:
        events = []
        while (event := self.endpoint.next_event()) is not None:
            events.append(event)
        return events

    def run_until(self, end: float) -> list[tuple[float, SipRequest | SipResponse]]:
        """Fire every timer due up to `end`, in order; returns what was sent and when."""
        sent: list[tuple[float, SipRequest | SipResponse]] = []
        while (deadline := self.endpoint.get_timer()) is not None and deadline <= end:
            self.now = deadline
            self.endpoint.handle_timer(deadline)
            sent += [(deadline, message) for _, message in self.sent()]
        self.now = end
        return sent


class Src:
    """A recording client: builds the requests of one call and reads the answers sent to it."""

    def __init__(
        self,
        link: Link,
        *,
        transport: str = "udp",
        host: str = "10.20.30.10",
        port: int = 5060,
        connection_id: int | None = None,
        call_id: str = "1d6c5e60b1b5a1c29c9e0f8b3a7d2e4f@10.20.30.10",
    ) -> None:
        self.link = link
        self.address = Address(transport=transport, host=host, port=port, connection_id=connection_id)
        self.call_id = call_id
        self.from_header = "<sip:SRC@10.20.30.10:5060>;tag=5c8e0a3a2d1e0d41fa0e1b6c"
        self.to_header = "<sip:srs@10.20.30.40:5060>"
        self.cseq = 0

    @staticmethod
    def new_branch() -> str:
        return f"z9hG4bKsrc{next(_branches):06d}"

    def via(self, branch: str) -> str:
        transport, host, port = self.address.transport.upper(), self.address.host, self.address.port
        return f"SIP/2.0/{transport} {host}:{port};branch={branch}"

    def build(
        self,
        method: str,
        *,
        branch: str | None = None,
        cseq: int | None = None,
        extra: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        uri: str = "sip:srs@10.20.30.40:5060",
    ) -> bytes:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        headers = [
            ("Via", self.via(branch or self.new_branch())),
            ("Max-Forwards", "70"),
            ("From", self.from_header),
            ("To", self.to_header),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            *extra,
        ]
        return request(method, uri, headers, body)

    def invite(
        self,
        *,
        branch: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
        body: bytes = SIPREC_BODY,
        content_type: str = "multipart/mixed;boundary=unique-boundary-1",
    ) -> bytes:
        headers = [
            ("Contact", f"<sip:SRC@{self.address.host}:{self.address.port}>;+sip.src"),
            ("Require", "siprec"),
            ("Content-Type", content_type),
            *extra,
        ]
        return self.build("INVITE", branch=branch, extra=headers, body=body)

    def ack(self, response: SipResponse, *, branch: str | None = None) -> bytes:
        """ACK for `response`: same branch for a non-2xx (§17.1.1.3), a new one for a 2xx (§13.2.2.4)."""
        self.to_header = response.headers.get("To") or self.to_header
        if branch is None:
            branch = response.top_via.branch if response.status >= 300 else self.new_branch()
        return self.build("ACK", branch=branch, cseq=response.cseq.number)

    def send(self, data: bytes) -> None:
        self.link.deliver(data, self.address)

    def received(self) -> list[SipRequest | SipResponse]:
        messages = []
        for destination, message in self.link.sent():
            assert destination == self.address, f"sent to {destination}, expected {self.address}"
            messages.append(message)
        return messages

    def responses(self) -> list[SipResponse]:
        messages = self.received()
        assert all(isinstance(message, SipResponse) for message in messages), messages
        return [message for message in messages if isinstance(message, SipResponse)]
