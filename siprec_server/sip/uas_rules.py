"""Rules a UAS applies around its requests and responses (RFC 3261 §8.2, §18.2.1), as pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .errors import SipParseError
from .fields import NameAddr, Via, option_tags, parse_content_type
from .message import SipRequest
from .transport import Address

# RFC 7866 §6.1.1 and the Hangtár guide: a recorder never rejects `Require: siprec`.
ALWAYS_SUPPORTED: Final = frozenset({"siprec"})
# Draft-era SRCs (Oracle/Acme, Metaswitch...) label metadata without the "+xml" suffix.
_CONTENT_ALIASES: Final = {"application/rs-metadata": "application/rs-metadata+xml"}
_OFFER_METHODS: Final = frozenset({"INVITE", "UPDATE"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def capability_headers(
    allow: Sequence[str], accept: Sequence[str], supported: Sequence[str]
) -> list[tuple[str, str]]:
    """Allow, Accept and Supported as OPTIONS responses and 2xx to INVITE carry them (§11.2, §13.3.1.4)."""
    return [("Allow", ", ".join(allow)), ("Accept", ", ".join(accept)), ("Supported", ", ".join(supported))]


def unsupported_requirements(request: SipRequest, supported: Sequence[str]) -> list[str]:
    """Option tags in Require that we do not support (§8.2.2.3); never for ACK or CANCEL."""
    if request.method in ("ACK", "CANCEL"):
        return []
    known = {tag.lower() for tag in supported} | ALWAYS_SUPPORTED
    return [tag for tag in option_tags(request.headers, "Require") if tag.lower() not in known]


def screen_request(
    request: SipRequest, *, allow: Sequence[str], accept: Sequence[str], supported: Sequence[str]
) -> Rejection | None:
    """The first reason to refuse `request` before looking at dialogs, or None."""
    if request.method not in allow:  # §8.2.1
        return Rejection(status=405, headers=(("Allow", ", ".join(allow)),))
    unsupported = unsupported_requirements(request, supported)
    if unsupported:  # §8.2.2.3
        return Rejection(status=420, headers=(("Unsupported", ", ".join(unsupported)),))
    if request.method in _OFFER_METHODS and request.body:
        return _screen_content(request, accept)
    return None


def _screen_content(request: SipRequest, accept: Sequence[str]) -> Rejection | None:
    """§8.2.3: a body we cannot read is refused with 415 listing what we accept."""
    encoding = (request.headers.get("Content-Encoding") or "identity").lower()
    if encoding != "identity":
        return Rejection(status=415, headers=(("Accept-Encoding", "identity"),))
    value = request.headers.get("Content-Type")
    if value is None:
        return None  # §7.4.1 wants one; the session layer sniffs the body instead of refusing the call
    try:
        mime, _ = parse_content_type(value)
    except SipParseError as error:
        return Rejection(status=400, reason=error.reason)
    accepted = {kind.lower() for kind in accept}
    if mime in accepted or _CONTENT_ALIASES.get(mime) in accepted:
        return None
    return Rejection(status=415, headers=(("Accept", ", ".join(accept)),))


def stamp_via(request: SipRequest, source: Address) -> SipRequest:
    """§18.2.1 received, RFC 3581 §4 rport: record where the request really came from in the top Via."""
    vias = request.headers.get_all("Via")
    top = Via.parse(vias[0])
    stamped = top
    if top.rport_requested and top.rport is None:
        stamped = top.with_param("received", source.host).with_param("rport", str(source.port))
    elif top.host.strip("[]").lower() != source.host.lower():
        stamped = top.with_param("received", source.host)
    if stamped is top:
        return request
    headers = request.headers.copy()
    headers.set_all("Via", [str(stamped), *vias[1:]])
    return SipRequest(method=request.method, uri=request.uri, headers=headers, body=request.body)


def readable_contact(request: SipRequest) -> bool:
    contact = request.headers.get("Contact")
    try:
        return contact is not None and NameAddr.parse(contact).uri.lower().startswith(("sip:", "sips:"))
    except SipParseError:
        return False


def answerable(request: SipRequest) -> bool:
    """A malformed request can be answered when what a response copies survived (§8.2.6.2)."""
    if not all(request.headers.get(name) for name in ("From", "To", "Call-ID", "CSeq")):
        return False
    try:
        request.top_via  # noqa: B018 - parsing is the check
    except SipParseError:
        return False
    return True


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def contact_header(host: str, port: int, transport: str, *, secure: bool) -> str:
    """Our Contact: where requests in the dialog reach us (§8.1.1.8; a sips dialog gets a sips URI, §26.2)."""
    if secure:
        return f"<sips:{host_port(host, port)}>"
    return f"<sip:{host_port(host, port)};transport={transport}>"
