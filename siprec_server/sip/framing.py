"""Message framing for SIP over TCP/TLS (RFC 3261 §18.3): Content-Length delimits each message.

CRLFs between messages are keep-alives (RFC 5626 §3.5.1); a double CRLF is a ping the adapter answers with a
single CRLF (RFC 5626 §4.4.1), counted by `take_keepalives`. After a `SipParseError` the stream cannot be
re-synchronised: the adapter must close the connection.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import SipParseError

_HEADER_END: Final = re.compile(rb"\r?\n\r?\n")
_CONTENT_LENGTH: Final = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.I | re.M)


class StreamFramer:
    def __init__(self, *, max_content_length: int = 1 << 20, max_header_bytes: int = 64 * 1024) -> None:
        self.max_content_length = max_content_length
        self.max_header_bytes = max_header_bytes
        self._buffer = bytearray()
        self._message_end: int | None = None  # known once the header block of the next message is read
        self._scanned = 0  # bytes already searched for the end of the header block
        self._boundary_newlines = 0
        self._keepalives = 0
        self._failure: SipParseError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def take_keepalives(self) -> int:
        """Double-CRLF pings seen since the last call."""
        count, self._keepalives = self._keepalives, 0
        return count

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every message now complete, in order."""
        if self._failure is not None:
            raise self._failure
        self._buffer += data
        messages: list[bytes] = []
        try:
            while (message := self._next_message()) is not None:
                messages.append(message)
        except SipParseError as error:
            self._failure = error
            raise
        return messages

    def _next_message(self) -> bytes | None:
        buffer = self._buffer
        if self._message_end is None:
            self._skip_keepalives()
            header_end = _HEADER_END.search(buffer, max(0, self._scanned - 3))
            if header_end is None:
                if len(buffer) > self.max_header_bytes:
                    raise SipParseError(513, "Header block too large")
                self._scanned = len(buffer)
                return None
            self._scanned = 0
            if header_end.start() > self.max_header_bytes:
                raise SipParseError(513, "Header block too large")
            self._message_end = header_end.end() + self._content_length(bytes(buffer[: header_end.start()]))
        if len(buffer) < self._message_end:
            return None
        message = bytes(buffer[: self._message_end])
        del buffer[: self._message_end]
        self._message_end = None
        return message

    def _skip_keepalives(self) -> None:
        skip = 0
        while skip < len(self._buffer) and self._buffer[skip] in b"\r\n":
            if self._buffer[skip] == ord("\n"):
                self._boundary_newlines += 1
                if self._boundary_newlines == 2:
                    self._keepalives += 1
                    self._boundary_newlines = 0
            skip += 1
        if skip < len(self._buffer):
            self._boundary_newlines = 0
        del self._buffer[:skip]

    def _content_length(self, head: bytes) -> int:
        values = {value.strip() for value in _CONTENT_LENGTH.findall(head)}
        if not values:
            raise SipParseError(400, "Missing Content-Length")  # §18.3: mandatory on streams
        if len(values) > 1:
            raise SipParseError(400, "Conflicting Content-Length headers")
        value = values.pop()
        if not value.isdigit():
            raise SipParseError(400, "Bad Content-Length header")
        length = int(value)
        if length > self.max_content_length:
            raise SipParseError(413, "Content-Length too large")
        return length
