"""UAS dialogs (RFC 3261 §12): created by our 2xx to an INVITE, used for requests in both directions.

The dialog holds what §12.1.1 stores (Call-ID, tags, remote target, route set, CSeq numbers); it checks the
remote CSeq order (§12.2.2) and builds the requests we originate in it (§12.2.1.1).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import SipParseError
from .fields import NameAddr, default_port
from .headers import Headers
from .message import SipRequest
from .transport import Address
from .uri import SipUri

_TRANSPORTS = ("udp", "tcp", "tls")


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogId:
    call_id: str
    local_tag: str
    remote_tag: str  # empty for RFC 2543 peers that send no From tag (§12.1.1)


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogInfo:
    dialog_id: DialogId
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    route_set: tuple[str, ...]
    source: Address  # where the dialog-creating INVITE came from


class Dialog:
    __slots__ = (
        "id",
        "local",
        "local_cseq",
        "pending_offer",
        "remote",
        "remote_cseq",
        "remote_target",
        "route_set",
        "source",
        "terminating",
    )

    def __init__(
        self,
        *,
        dialog_id: DialogId,
        local: NameAddr,
        remote: NameAddr,
        remote_target: str,
        route_set: tuple[str, ...],
        remote_cseq: int,
        source: Address,
    ) -> None:
        self.id = dialog_id
        self.local = local
        self.remote = remote
        self.remote_target = remote_target
        self.route_set = route_set
        self.remote_cseq = remote_cseq
        self.local_cseq = 0  # §12.1.1: empty until we send a request; the first one uses 1
        self.source = source
        self.terminating = False  # we sent BYE
        self.pending_offer: int | None = None  # request id of an unanswered re-INVITE or UPDATE offer

    @classmethod
    def from_invite(cls, request: SipRequest, *, local_tag: str, source: Address) -> Dialog:
        """§12.1.1: the dialog state a UAS keeps from the INVITE it answers with a 2xx."""
        remote = request.from_addr
        dialog_id = DialogId(call_id=request.call_id, local_tag=local_tag, remote_tag=remote.tag or "")
        return cls(
            dialog_id=dialog_id,
            local=request.to_addr.with_param("tag", local_tag),
            remote=remote,
            remote_target=NameAddr.parse(request.headers.get("Contact") or "").uri,
            route_set=tuple(request.headers.get_all("Record-Route")),  # in order for the UAS
            remote_cseq=request.cseq.number,
            source=source,
        )

    def accept_remote_cseq(self, number: int) -> bool:
        """§12.2.2: a request with a lower CSeq than the last one is out of order (answer 500)."""
        if number < self.remote_cseq:
            return False
        self.remote_cseq = number
        return True

    def refresh_target(self, request: SipRequest) -> None:
        """§12.2.2 / RFC 6141 §3.3: an accepted target refresh request replaces the remote target."""
        contact = request.headers.get("Contact")
        if contact:
            with contextlib.suppress(SipParseError):  # keep the old target rather than lose the dialog
                self.remote_target = NameAddr.parse(contact).uri

    def build_request(
        self,
        method: str,
        *,
        via: str,
        user_agent: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """A request inside the dialog (§12.2.1.1); takes the next local CSeq."""
        self.local_cseq += 1
        uri, routes = self._request_target()
        out = Headers()
        out.add("Via", via)
        out.add("Max-Forwards", "70")
        out.add("From", str(self.local))
        out.add("To", str(self.remote))
        out.add("Call-ID", self.id.call_id)
        out.add("CSeq", f"{self.local_cseq} {method}")
        for route in routes:
            out.add("Route", route)
        if user_agent:
            out.add("User-Agent", user_agent)
        for name, value in headers:
            out.add(name, value)
        if content_type is not None:
            out.set("Content-Type", content_type)
        return SipRequest(method=method, uri=uri, headers=out, body=body)

    def _request_target(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return self.remote_target, []
        try:
            first = NameAddr.parse(self.route_set[0]).uri
            loose = SipUri.parse(first).loose_route
        except SipParseError:
            return self.remote_target, list(self.route_set)
        if loose:
            return self.remote_target, list(self.route_set)
        # §12.2.1.1 strict routing: the first route is the Request-URI, the remote target the last route.
        return first, [*self.route_set[1:], f"<{self.remote_target}>"]

    def next_hop(self) -> Address:
        """Where our in-dialog requests go: the first route, else the remote target (§8.1.2, §12.2.1.1).

        The core does no DNS: a host name, an unknown transport or an unreadable URI falls back to the address
        the INVITE came from. The same host and transport as that source reuse its connection.
        """
        try:
            hop = NameAddr.parse(self.route_set[0]).uri if self.route_set else self.remote_target
            uri = SipUri.parse(hop)
            host = ipaddress.ip_address(uri.host.strip("[]"))
        except (SipParseError, ValueError):
            return self.source
        transport = "tls" if uri.scheme == "sips" else uri.transport or self.source.transport
        if transport not in _TRANSPORTS:
            return self.source
        port = uri.port or default_port(transport)
        if transport == self.source.transport and _same_host(host, self.source.host):
            return Address(
                transport=transport, host=self.source.host, port=port, connection_id=self.source.connection_id
            )
        return Address(transport=transport, host=str(host), port=port)

    def info(self) -> DialogInfo:
        return DialogInfo(
            dialog_id=self.id,
            call_id=self.id.call_id,
            local_tag=self.id.local_tag,
            remote_tag=self.id.remote_tag,
            local_uri=self.local.uri,
            remote_uri=self.remote.uri,
            remote_target=self.remote_target,
            route_set=self.route_set,
            source=self.source,
        )


def _same_host(host: ipaddress.IPv4Address | ipaddress.IPv6Address, other: str) -> bool:
    try:
        return host == ipaddress.ip_address(other.strip("[]"))
    except ValueError:
        return False
