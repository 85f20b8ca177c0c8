"""Structured header values: name-addr, Via, CSeq, Content-Type, option tags (RFC 3261 §20, §25.1).

Each `parse` raises `SipParseError(400, ...)` naming what is wrong; `str()` gives the wire form back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from .errors import SipParseError
from .headers import TOKEN, Headers, split_unquoted, unquoted_chars

_BARE_VALUE: Final = re.compile(r"[A-Za-z0-9.!%*_+`'~:\[\]-]+")
_BAD_BARE_VALUE: Final = re.compile(r'[\s"<>]')
_VIA: Final = re.compile(r"\s*([^\s/]+)\s*/\s*([^\s/]+)\s*/\s*([^\s/]+)\s+([^;\s]+)\s*(.*)", re.DOTALL)
_HOST_PORT: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?")
_CSEQ: Final = re.compile(r"\s*(\d{1,10})\s+(\S+)\s*")


def unquote(value: str) -> str:
    """The content of a quoted-string (§25.1), or the value itself when it is not quoted."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def quote_if_needed(value: str) -> str:
    if _BARE_VALUE.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def parse_params(text: str, what: str) -> dict[str, str | None]:
    """`;name=value;flag` → {"name": "value", "flag": None}; names are case-insensitive (lowercased)."""
    text = text.strip()
    if not text:
        return {}
    if not text.startswith(";"):
        raise SipParseError(400, f"Bad {what} parameters")
    params: dict[str, str | None] = {}
    for item in split_unquoted(text[1:], ";"):
        name, equals, value = item.partition("=")
        name, value = name.strip().lower(), value.strip()
        quoted = len(value) >= 2 and value[0] == value[-1] == '"'
        if not TOKEN.fullmatch(name) or (not quoted and _BAD_BARE_VALUE.search(value)):
            raise SipParseError(400, f"Bad {what} parameters")
        params[name] = unquote(value) if equals else None
    return params


def format_params(params: Mapping[str, str | None]) -> str:
    return "".join(
        f";{name}" if value is None else f";{name}={quote_if_needed(value)}" for name, value in params.items()
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class NameAddr:
    """A From/To/Contact/Route value (§20.10): optional display name, URI, header parameters such as `tag`.

    URI parameters written inside <...> stay part of `uri`; in the bare form without <...> everything after
    the first `;` is a header parameter (§20).
    """

    uri: str
    display_name: str | None = None
    params: Mapping[str, str | None] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, value: str) -> NameAddr:
        text = value.strip()
        angle = _find_unquoted(text, "<")
        if angle >= 0:
            close = text.find(">", angle)
            if close < 0:
                raise SipParseError(400, "Unclosed <> in address")
            display = text[:angle].strip()
            uri = text[angle + 1 : close].strip()
            rest = text[close + 1 :]
            display_name: str | None = unquote(display) if display else None
        else:
            uri, _, rest = text.partition(";")
            uri = uri.strip()
            rest = ";" + rest if rest else ""
            display_name = None
        if ":" not in uri or any(char.isspace() for char in uri) or uri.startswith(":"):
            raise SipParseError(400, "Bad URI in address")
        return cls(uri=uri, display_name=display_name, params=parse_params(rest, "address"))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_param(self, name: str, value: str | None) -> NameAddr:
        return NameAddr(uri=self.uri, display_name=self.display_name, params={**self.params, name: value})

    def __str__(self) -> str:
        display = f"{quote_if_needed(self.display_name)} " if self.display_name else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def _find_unquoted(text: str, char: str) -> int:
    return next((index for index, current in unquoted_chars(text) if current == char), -1)


def default_port(transport: str) -> int:
    return 5061 if transport.lower() == "tls" else 5060


@dataclass(frozen=True, slots=True, kw_only=True)
class Via:
    """One Via value (§20.42): `SIP/2.0/UDP host:port;branch=z9hG4bK...;received=...;rport`."""

    transport: str
    host: str
    port: int | None = None
    params: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, value: str) -> Via:
        match = _VIA.fullmatch(value)
        if match is None:
            raise SipParseError(400, "Bad Via header")
        name, version, transport, sent_by, rest = match.groups()
        host_port = _HOST_PORT.fullmatch(sent_by)
        if host_port is None or not TOKEN.fullmatch(transport):
            raise SipParseError(400, "Bad Via header")
        port = int(host_port.group(2)) if host_port.group(2) else None
        if port is not None and not 0 < port < 65536:
            raise SipParseError(400, "Bad Via header")
        rest = re.sub(r"\([^)]*\)\s*$", "", rest)  # a trailing comment (§25.1)
        return cls(
            transport=transport.upper(),
            host=host_port.group(1),
            port=port,
            params=parse_params(rest, "Via"),
            protocol=f"{name.upper()}/{version}",
        )

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport_requested(self) -> bool:
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def sent_by(self) -> str:
        """host:port with the transport's default port filled in, for transaction matching (§17.2.3)."""
        return f"{self.host.lower()}:{self.port or default_port(self.transport)}"

    def with_param(self, name: str, value: str | None) -> Via:
        return Via(
            transport=self.transport,
            host=self.host,
            port=self.port,
            params={**self.params, name: value},
            protocol=self.protocol,
        )

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CSeq:
    """CSeq (§20.16): a sequence number below 2**31 and a method."""

    number: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        match = _CSEQ.fullmatch(value)
        if match is None or not TOKEN.fullmatch(match.group(2)):
            raise SipParseError(400, "Bad CSeq header")
        number = int(match.group(1))
        if number >= 2**31:  # §8.1.1.5
            raise SipParseError(400, "Bad CSeq header")
        return cls(number=number, method=match.group(2))

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """`Multipart/Mixed; boundary="b1"` → ("multipart/mixed", {"boundary": "b1"}) (§20.15)."""
    mime, _, rest = value.partition(";")
    kind, slash, subtype = mime.strip().partition("/")
    if not slash or not TOKEN.fullmatch(kind) or not TOKEN.fullmatch(subtype.strip()):
        raise SipParseError(400, "Bad Content-Type header")
    params = parse_params(";" + rest if rest else "", "Content-Type")
    return f"{kind}/{subtype.strip()}".lower(), {name: value or "" for name, value in params.items()}


def option_tags(headers: Headers, name: str) -> list[str]:
    """Option tags listed in Require/Supported/Proxy-Require/Unsupported (§19.2), as written."""
    return [tag for tag in (value.strip() for value in headers.get_all(name)) if tag]
