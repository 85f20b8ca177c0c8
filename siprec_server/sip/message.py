"""SIP requests and responses: parsing (RFC 3261 §7), serialisation, and building responses (§8.2.6).

Parsing is tolerant where peers differ harmlessly (header case, compact forms, folding, LF-only line ends,
extra whitespace, leading CRLF keep-alives) and strict where a wrong guess would corrupt state: a bad start
line, a missing or malformed Via/From/To/Call-ID/CSeq, a CSeq method that differs from the request method, or
a Content-Length larger than the body all raise `SipParseError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from .errors import SipParseError
from .fields import CSeq, NameAddr, Via, parse_content_type
from .headers import TOKEN, Headers
from .status import reason_phrase

_HEADER_END: Final = re.compile(rb"\r?\n\r?\n")
_REQUEST_LINE: Final = re.compile(r"(\S+)\s+(\S+)\s+([Ss][Ii][Pp]/\S+)\s*")
_STATUS_LINE: Final = re.compile(r"[Ss][Ii][Pp]/(\S+)\s+(\d{3})(?:\s+(.*?))?\s*")
_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>]+")  # §19.1, §25.1 absoluteURI
_MANDATORY: Final = ("Via", "From", "To", "Call-ID", "CSeq")  # §8.1.1


class _MessageFields:
    """Typed views of the headers every request and response carries (§8.1.1), read on demand."""

    __slots__ = ()
    headers: Headers

    @property
    def call_id(self) -> str:
        return _mandatory(self.headers, "Call-ID")

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(_mandatory(self.headers, "CSeq"))

    @property
    def from_addr(self) -> NameAddr:
        return NameAddr.parse(_mandatory(self.headers, "From"))

    @property
    def to_addr(self) -> NameAddr:
        return NameAddr.parse(_mandatory(self.headers, "To"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(value) for value in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        return Via.parse(_mandatory(self.headers, "Via"))

    @property
    def content_type(self) -> str | None:
        """The MIME type, lowercased, without parameters."""
        value = self.headers.get("Content-Type")
        return parse_content_type(value)[0] if value else None


@dataclass(frozen=True, slots=True, kw_only=True)
class SipRequest(_MessageFields):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __bytes__(self) -> bytes:
        return _serialise(f"{self.method} {self.uri} SIP/2.0", self.headers, self.body)


@dataclass(frozen=True, slots=True, kw_only=True)
class SipResponse(_MessageFields):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def __bytes__(self) -> bytes:
        return _serialise(f"SIP/2.0 {self.status} {self.reason}", self.headers, self.body)


def _mandatory(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if not value:
        raise SipParseError(400, f"Missing {name} header")
    return value


def _serialise(start_line: str, headers: Headers, body: bytes) -> bytes:
    lines = [start_line]
    lines.extend(f"{name}: {value}" for name, value in headers if name != "Content-Length")
    lines.append(f"Content-Length: {len(body)}")  # always correct, whatever the caller put in headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one datagram or one framed stream message."""
    start = 0
    while start < len(data) and data[start] in b"\r\n":  # §7.5: ignore CRLFs before the start line
        start += 1
    end = _HEADER_END.search(data, start)
    head, body = (data[start : end.start()], data[end.end() :]) if end else (data[start:], b"")
    if not head.strip():
        raise SipParseError(400, "Empty message")
    lines = _unfold(_decode(head))
    headers, header_error = _read_headers(lines[1:])
    message = _start_line(lines[0], headers, body)
    if header_error:
        raise SipParseError(400, header_error, partial=message)
    _validate(message)
    return _apply_content_length(message)


def _decode(head: bytes) -> str:
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        return head.decode("latin-1")  # some devices send Latin-1 display names; keep the call, not the bytes


def _unfold(text: str) -> list[str]:
    """Split into lines, joining continuation lines (§7.3.1: leading SP/HTAB) with a single space."""
    lines: list[str] = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line[:1] in (" ", "\t") and len(lines) > 1:
            lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
        else:
            lines.append(line)
    return lines


def _read_headers(lines: Iterable[str]) -> tuple[Headers, str | None]:
    headers = Headers()
    error: str | None = None
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not TOKEN.fullmatch(name) or "\r" in value or "\x00" in value:
            error = error or "Malformed header line"
            continue
        headers.add(name, value)
    return headers, error


def _start_line(line: str, headers: Headers, body: bytes) -> SipRequest | SipResponse:
    if line[:4].upper() == "SIP/":
        status = _STATUS_LINE.fullmatch(line)
        if status is None or not 100 <= int(status.group(2)) <= 699:
            raise SipParseError(400, "Malformed status line")
        return SipResponse(
            status=int(status.group(2)), reason=status.group(3) or "", headers=headers, body=body
        )
    request = _REQUEST_LINE.fullmatch(line)
    if request is None or not TOKEN.fullmatch(request.group(1)) or not _URI.fullmatch(request.group(2)):
        raise SipParseError(400, "Malformed request line", partial=_garbled_request(line, headers, body))
    message = SipRequest(method=request.group(1), uri=request.group(2), headers=headers, body=body)
    if request.group(3).upper() != "SIP/2.0":
        raise SipParseError(505, "Version Not Supported", partial=message)
    return message


def _garbled_request(line: str, headers: Headers, body: bytes) -> SipRequest | None:
    """A request whose start line is unreadable, named after its CSeq method so it can still be answered."""
    try:
        method = CSeq.parse(headers.get("CSeq") or "").method
    except SipParseError:
        return None
    return SipRequest(method=method, uri=line, headers=headers, body=body)


def _validate(message: SipRequest | SipResponse) -> None:
    headers = message.headers
    try:
        for name in _MANDATORY:
            _mandatory(headers, name)
        for via in headers.get_all("Via"):
            Via.parse(via)
        cseq = CSeq.parse(_mandatory(headers, "CSeq"))
        if isinstance(message, SipRequest) and cseq.method != message.method:
            raise SipParseError(400, "CSeq method does not match request method")
        for name in ("From", "To"):
            try:
                NameAddr.parse(_mandatory(headers, name))
            except SipParseError:
                raise SipParseError(400, f"Bad {name} header") from None
    except SipParseError as error:
        raise SipParseError(error.status, error.reason, partial=message) from None


def _apply_content_length(message: SipRequest | SipResponse) -> SipRequest | SipResponse:
    values = {value.strip() for value in message.headers.get_all("Content-Length")}
    if not values:
        return message  # §18.3: optional over UDP; the body is the rest of the datagram
    if len(values) > 1:
        raise SipParseError(400, "Conflicting Content-Length headers", partial=message)
    value = values.pop()
    if not value.isdigit():
        raise SipParseError(400, "Bad Content-Length header", partial=message)
    length = int(value)
    if length > len(message.body):  # §18.3: the datagram ended before the body did
        raise SipParseError(400, "Content-Length larger than body", partial=message)
    if length == len(message.body):
        return message
    body = message.body[:length]  # §18.3: bytes past Content-Length are discarded
    if isinstance(message, SipRequest):
        return SipRequest(method=message.method, uri=message.uri, headers=message.headers, body=body)
    return SipResponse(status=message.status, reason=message.reason, headers=message.headers, body=body)


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
    server: str | None = "Hangtar",
) -> SipResponse:
    """A response to `request`: Via(s), From, To (+ tag), Call-ID and CSeq copied as §8.2.6.2 requires."""
    source = request.headers
    out = Headers()
    out.set_all("Via", source.get_all("Via"))
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = source.get(name)
        if value is None:
            continue  # answering a malformed request: copy what survived
        if name == "To" and to_tag is not None and status != 100 and not _has_tag(value):
            value = f"{value};tag={to_tag}"  # §8.2.6.2; never on 100 Trying (§8.2.6.1)
        out.add(name, value)
    if request.method == "INVITE" and 100 < status < 300:
        out.set_all("Record-Route", source.get_all("Record-Route"))  # §12.1.1
    if status == 100 and "Timestamp" in source:
        out.add("Timestamp", source.get("Timestamp") or "")  # §8.2.6.1
    if server:
        out.add("Server", server)
    for name, value in headers:
        out.add(name, value)
    if content_type is not None:
        out.set("Content-Type", content_type)
    return SipResponse(status=status, reason=reason or reason_phrase(status), headers=out, body=body)


def _has_tag(value: str) -> bool:
    try:
        return NameAddr.parse(value).tag is not None
    except SipParseError:
        return False
