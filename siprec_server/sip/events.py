"""Events the SIP endpoint reports to the server, drained with `SipEndpoint.next_event()`."""

from __future__ import annotations

from dataclasses import dataclass

from .dialog import DialogId
from .message import SipRequest, SipResponse
from .transport import Address


@dataclass(frozen=True, slots=True, kw_only=True)
class InviteReceived:
    """A new INVITE (dialog_id None) or a re-INVITE in a dialog; answer it with `respond(request_id, ...)`."""

    request_id: int
    request: SipRequest
    source: Address
    dialog_id: DialogId | None


@dataclass(frozen=True, slots=True, kw_only=True)
class InDialogRequest:
    """UPDATE, INFO (or another allowed method) in a dialog; answer it with `respond(request_id, ...)`."""

    request_id: int
    request: SipRequest
    source: Address
    dialog_id: DialogId


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReceived:
    """The ACK for our 2xx to an INVITE; it may carry the SDP answer of a late offer."""

    dialog_id: DialogId
    request: SipRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class ByeReceived:
    """The peer ended the dialog; the endpoint already answered 200 and forgot the dialog."""

    dialog_id: DialogId
    request: SipRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class InviteCancelled:
    """CANCEL arrived before our final response; the endpoint answered it 200 and the INVITE 487 (§9.2)."""

    request_id: int
    dialog_id: DialogId | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AckTimeout:
    """No ACK for our 2xx within 64*T1 (§13.3.1.4): the session should be ended with a BYE."""

    dialog_id: DialogId


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestCompleted:
    """A request we sent got its final response (`status`), or timed out (`status` None)."""

    request_id: int
    dialog_id: DialogId
    status: int | None
    response: SipResponse | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MalformedMessage:
    """Bytes that were not acceptable SIP; `answered_status` is what we replied, None if dropped."""

    source: Address
    reason: str
    answered_status: int | None


SipEvent = (
    InviteReceived
    | InDialogRequest
    | AckReceived
    | ByeReceived
    | InviteCancelled
    | AckTimeout
    | RequestCompleted
    | MalformedMessage
)
