"""What the SIP core exchanges with the transport adapters: addresses and bytes to send."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """Where bytes came from or go to.

    For stream transports `connection_id` is the adapter's id of the connection: responses go back on it, and
    an in-dialog request carries it when the next hop is the host that connection came from. Without one (or
    when that connection is gone) the adapter connects to host:port.
    """

    transport: str  # "udp" | "tcp" | "tls"
    host: str
    port: int
    connection_id: int | None = None

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"


@dataclass(frozen=True, slots=True, kw_only=True)
class Transmit:
    data: bytes
    destination: Address
