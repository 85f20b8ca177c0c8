"""Faults in what a Session Recording Client sent, each carrying how the request is answered.

`SiprecBodyError` and `SdpError` are raised only where the peer's bytes come in (body splitting, SDP
parsing) and carry the SIP status the caller answers with. `MetadataError` is never answered: a recording
session is recorded even when its metadata cannot be read (design guide §2.1), the error is only logged.
"""

from __future__ import annotations

__all__ = ["MetadataError", "SdpError", "SiprecBodyError", "SiprecError"]


class SiprecError(Exception):
    """Base class of the faults a peer can put in a recording session's body."""


class SiprecBodyError(SiprecError):
    """The message body cannot be split into its parts (RFC 2046): answered 400 Bad Request."""

    status_code = 400


class SdpError(SiprecError):
    """The session description cannot be used: answered 488 Not Acceptable Here with a Warning.

    `warn_code` is the RFC 3261 §20.43 warn-code for the Warning header (399: miscellaneous).
    """

    status_code = 488

    def __init__(self, message: str, *, warn_code: int = 399) -> None:
        super().__init__(message)
        self.warn_code = warn_code


class MetadataError(SiprecError):
    """RFC 7865 metadata is hostile or unreadable; the call is still recorded without it."""
