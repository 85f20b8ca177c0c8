"""The sans-I/O SIP core: message parsing, stream framing, transactions, dialogs and the UAS endpoint."""

from .dialog import DialogId, DialogInfo
from .endpoint import SipEndpoint
from .errors import SipParseError, SipProtocolError
from .events import (
    AckReceived,
    AckTimeout,
    ByeReceived,
    InDialogRequest,
    InviteCancelled,
    InviteReceived,
    MalformedMessage,
    RequestCompleted,
    SipEvent,
)
from .fields import CSeq, NameAddr, Via, option_tags, parse_content_type
from .framing import StreamFramer
from .headers import Headers
from .message import SipRequest, SipResponse, make_response, parse_message
from .status import reason_phrase
from .timers import TimerConfig
from .transport import Address, Transmit
from .uri import SipUri

__all__ = [
    "AckReceived",
    "AckTimeout",
    "Address",
    "ByeReceived",
    "CSeq",
    "DialogId",
    "DialogInfo",
    "Headers",
    "InDialogRequest",
    "InviteCancelled",
    "InviteReceived",
    "MalformedMessage",
    "NameAddr",
    "RequestCompleted",
    "SipEndpoint",
    "SipEvent",
    "SipParseError",
    "SipProtocolError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamFramer",
    "TimerConfig",
    "Transmit",
    "Via",
    "make_response",
    "option_tags",
    "parse_content_type",
    "parse_message",
    "reason_phrase",
]
