"""Splitting a SIP message body into MIME parts (RFC 2046 §5.1), as recording sessions send them.

A recording session's INVITE carries `multipart/mixed` with an SDP part and an `rs-metadata` part (RFC 7866
§8), sometimes a third one (`application/gtd`, `application/isup`), in any order. Accepted here, because
session recording clients send all of it: a quoted or bare boundary, CRLF or bare LF line ends, whitespace
after a delimiter (RFC 2046 "transport padding"), a preamble and an epilogue, part headers in any case and
with or without a space after the colon, a missing close delimiter (the last part runs to the end of the
body), `multipart/related` and `multipart/alternative`, and nested multiparts (flattened in document order).

Refused with `SiprecBodyError` (answered 400): a multipart type without a boundary, a body in which the
boundary never starts a line, a multipart with no parts, a part whose header block holds a line that is no
header, and nesting deeper than `_MAX_DEPTH`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SiprecBodyError

__all__ = ["BodyPart", "parse_content_type", "split_body"]

_MAX_DEPTH = 3
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyPart:
    """One part of a message body.

    `content_type` is the lowercased media type without parameters (`application/sdp`); `params` holds its
    parameters (names lowercased, values as sent); `headers` the part's own headers (names lowercased, first
    occurrence kept); `disposition` the lowercased Content-Disposition type (`recording-session`,
    `session`), if any.
    """

    content_type: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes
    disposition: str | None


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type value into the lowercased media type and its parameters (RFC 2045 §5.1)."""
    head, params = _split_params(value)
    mime = head.strip().lower()
    kind, slash, subtype = mime.partition("/")
    if not slash or not _HEADER_NAME.match(kind) or not _HEADER_NAME.match(subtype):
        raise SiprecBodyError(f"malformed Content-Type {value.strip()!r}")
    return mime, params


def split_body(content_type_header: str, body: bytes) -> list[BodyPart]:
    """Split `body`, sent with Content-Type `content_type_header`, into its parts.

    A non-multipart body is one part; an empty body is no part at all.
    """
    if not body:
        if content_type_header.strip().lower().startswith("multipart/"):
            raise SiprecBodyError("multipart Content-Type with an empty body")
        return []
    if not content_type_header.strip():
        raise SiprecBodyError("message body without a Content-Type")
    mime, params = parse_content_type(content_type_header)
    if not mime.startswith("multipart/"):
        headers = {"content-type": content_type_header.strip()}
        return [BodyPart(content_type=mime, params=params, headers=headers, body=body, disposition=None)]
    return _split_multipart(mime, params, body, depth=1)


def _split_multipart(mime: str, params: dict[str, str], body: bytes, *, depth: int) -> list[BodyPart]:
    if depth > _MAX_DEPTH:
        raise SiprecBodyError(f"multipart nested deeper than {_MAX_DEPTH} levels")
    boundary = params.get("boundary", "")
    if not boundary:
        raise SiprecBodyError(f"{mime} body without a boundary parameter")
    if "\r" in boundary or "\n" in boundary:
        raise SiprecBodyError("multipart boundary contains a line break")
    # RFC 2046 §5.1.1: a delimiter is "--boundary" at the start of a line; the line break before it belongs
    # to the delimiter, and whitespace after it is padding.
    delimiter = re.compile(
        rb"(?:\A|\r?\n)--" + re.escape(boundary.encode("latin-1", "replace")) + rb"(--)?[ \t]*(?=\r?\n|\Z)"
    )
    parts: list[BodyPart] = []
    content_start: int | None = None
    closed = False
    for match in delimiter.finditer(body):
        if content_start is not None:
            parts.extend(
                _parse_part(body[content_start : max(match.start(), content_start)], len(parts), depth)
            )
        if match.group(1):
            closed = True
            break
        content_start = _skip_line_end(body, match.end())
    else:
        if content_start is None:
            raise SiprecBodyError(f"multipart body never starts a line with its boundary --{boundary}")
    if not closed and content_start is not None:
        # No close delimiter (seen from SRCs and truncating proxies): the last part runs to the end.
        parts.extend(_parse_part(body[content_start:], len(parts), depth))
    if not parts:
        raise SiprecBodyError("multipart body has no parts")
    return parts


def _skip_line_end(body: bytes, pos: int) -> int:
    if body.startswith(b"\r\n", pos):
        return pos + 2
    if body.startswith(b"\n", pos):
        return pos + 1
    return pos


def _parse_part(raw: bytes, index: int, depth: int) -> list[BodyPart]:
    if raw.startswith((b"\r\n", b"\n")):  # a part without headers
        header_block, payload = b"", raw[_skip_line_end(raw, 0) :]
    else:
        blank = _BLANK_LINE.search(raw)
        if blank is None:
            header_block, payload = raw, b""
        else:
            header_block, payload = raw[: blank.start()], raw[blank.end() :]
    headers = _parse_headers(header_block, index)
    # RFC 2046 §5.1: a part without Content-Type is text/plain.
    mime, params = parse_content_type(headers.get("content-type", "text/plain"))
    if mime.startswith("multipart/"):
        return _split_multipart(mime, params, payload, depth=depth + 1)
    disposition = headers.get("content-disposition")
    kind = _split_params(disposition)[0].strip().lower() if disposition else None
    return [
        BodyPart(content_type=mime, params=params, headers=headers, body=payload, disposition=kind or None)
    ]


def _parse_headers(block: bytes, index: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    lines: list[str] = []
    for line in _LINE_END.split(block.decode("latin-1")):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()  # RFC 5322 §2.2.3 folding
        elif line:
            lines.append(line)
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _HEADER_NAME.match(name):
            raise SiprecBodyError(
                f"body part {index + 1}: {line[:40]!r} is not a header (no blank line after the headers?)"
            )
        headers.setdefault(name.lower(), value.strip())
    return headers


def _split_params(value: str) -> tuple[str, dict[str, str]]:
    """Split `type; name=value; name="quoted;value"` at the semicolons outside quoted strings."""
    segments: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            segments.append("".join(current))
            current = []
            continue
        current.append(char)
    segments.append("".join(current))
    params: dict[str, str] = {}
    for segment in segments[1:]:
        name, _, raw = segment.partition("=")
        name = name.strip().lower()
        if name:
            params.setdefault(name, _unquote(raw.strip()))
    return segments[0], params


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
