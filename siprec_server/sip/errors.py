"""The two error types of the SIP core.

`SipProtocolError` is our own misuse of the core (a bug in the caller). `SipParseError` is a peer's fault in
bytes we received; it carries the status to answer with and is raised only where bytes come in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import SipRequest, SipResponse


class SipProtocolError(Exception):
    """The caller used the SIP core wrongly (unknown request id, response out of order, bad header...)."""


class SipParseError(Exception):
    """Received bytes are not acceptable SIP.

    `partial` is the message as far as it could be read (start line and headers), so that a request whose Via,
    From, To, Call-ID and CSeq survived can still be answered with `status` and `reason`.
    """

    def __init__(self, status: int, reason: str, *, partial: SipRequest | SipResponse | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.partial = partial
