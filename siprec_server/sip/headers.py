"""An ordered, case-insensitive SIP header multi-map (RFC 3261 §7.3).

Names are normalised on input: compact forms expand to their long names (§7.3.3) and well-known names take
their canonical spelling; other names keep the spelling they arrived with. Fields keep their order and raw
text; `get_all` splits comma-separated lists (§7.3.1) for headers whose grammar is a list, never inside quoted
strings or angle brackets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Final

from .errors import SipProtocolError

# RFC 3261 §7.3.3 and the IANA "Header Fields" registry.
COMPACT_FORMS: Final = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES: Final = (
    *(
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
    ),
    *("Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition"),
    *("Content-Encoding", "Content-ID", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date"),
    *("Diversion", "Error-Info", "Event", "Expires", "From", "History-Info", "Identity", "Identity-Info"),
    *("In-Reply-To", "Info-Package", "Max-Forwards", "MIME-Version", "Min-Expires", "Min-SE", "Organization"),
    *("P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority", "Privacy", "Proxy-Authenticate"),
    *("Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Recv-Info", "Record-Route", "Refer-To"),
    *(
        "Referred-By",
        "Reject-Contact",
        "Replaces",
        "Reply-To",
        "Request-Disposition",
        "Require",
        "Retry-After",
    ),
    *("Route", "RSeq", "Server", "Service-Route", "Session-Expires", "Session-ID", "Subject"),
    *("Subscription-State", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning"),
    "WWW-Authenticate",
)
_CANONICAL: Final = {name.lower(): name for name in _KNOWN_NAMES} | COMPACT_FORMS

# Headers whose ABNF is a comma-separated list (RFC 3261 §25.1 and extensions); the others may hold commas
# inside one value (From, To, Date, Authorization, User-Agent...).
LIST_HEADERS: Final = frozenset(
    name.lower()
    for name in (
        *(
            "Accept",
            "Accept-Contact",
            "Accept-Encoding",
            "Accept-Language",
            "Alert-Info",
            "Allow",
            "Allow-Events",
        ),
        *("Call-Info", "Contact", "Content-Encoding", "Content-Language", "Diversion", "Error-Info"),
        *(
            "History-Info",
            "In-Reply-To",
            "P-Asserted-Identity",
            "P-Preferred-Identity",
            "Path",
            "Proxy-Require",
        ),
        *("Reason", "Record-Route", "Reject-Contact", "Require", "Route", "Service-Route", "Supported"),
        *("Unsupported", "Via", "Warning"),
    )
)

TOKEN: Final = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_FORBIDDEN_IN_VALUE: Final = re.compile(r"[\r\n\x00]")


def canonical_name(name: str) -> str:
    """The output spelling of a header name: long form, canonical case when well known."""
    name = name.strip()
    return _CANONICAL.get(name.lower(), name)


def unquoted_chars(text: str) -> Iterator[tuple[int, str]]:
    """The characters of `text` outside quoted strings (RFC 3261 §25.1, with backslash escapes), indexed."""
    quoted = escaped = False
    for index, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        else:
            yield index, char


def split_unquoted(value: str, separator: str) -> list[str]:
    """Split on `separator` outside quoted strings (with backslash escapes) and outside <...>."""
    if separator not in value:
        return [value]
    if '"' not in value and "<" not in value:
        return value.split(separator)
    parts: list[str] = []
    depth = 0
    start = 0
    for index, char in unquoted_chars(value):
        if char == "<":
            depth += 1
        elif char == ">" and depth:
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(value[start:index])
            start = index + 1
    parts.append(value[start:])
    return parts


class Headers:
    """Header fields in arrival order; lookups ignore case and compact forms."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str, str]] = []  # (lookup key, output name, value)
        for name, value in fields:
            self.add(name, value)

    @staticmethod
    def _key(name: str) -> str:
        return canonical_name(name).lower()

    def add(self, name: str, value: str) -> None:
        """Append a field. Names must be tokens and values must not break the line structure."""
        output = canonical_name(name)
        if not TOKEN.fullmatch(output):
            raise SipProtocolError(f"invalid header name {name!r}")
        if _FORBIDDEN_IN_VALUE.search(value):
            raise SipProtocolError(f"invalid characters in the {output} header value")
        self._fields.append((output.lower(), output, value.strip()))

    def set(self, name: str, value: str) -> None:
        """Replace every field named `name` with one field, at the position of the first."""
        self.set_all(name, [value])

    def set_all(self, name: str, values: Iterable[str]) -> None:
        """Replace every field named `name` with one field per value, at the position of the first."""
        key = self._key(name)
        position = next((i for i, field in enumerate(self._fields) if field[0] == key), len(self._fields))
        replacement = Headers((name, value) for value in values)._fields
        kept_before = [field for field in self._fields[:position] if field[0] != key]
        kept_after = [field for field in self._fields[position:] if field[0] != key]
        self._fields = kept_before + replacement + kept_after

    def remove(self, name: str) -> None:
        key = self._key(name)
        self._fields = [field for field in self._fields if field[0] != key]

    def get(self, name: str) -> str | None:
        """The first value (the first list element for list headers), or None."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value in order; list headers are split into their elements (§7.3.1)."""
        key = self._key(name)
        raw = [field[2] for field in self._fields if field[0] == key]
        if key not in LIST_HEADERS:
            return raw
        return [part.strip() for value in raw for part in split_unquoted(value, ",") if part.strip()]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._key(name)
        return any(field[0] == key for field in self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((field[1], field[2]) for field in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(f[0], f[2]) for f in self._fields] == [(f[0], f[2]) for f in other._fields]

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> Headers:
        duplicate = Headers()
        duplicate._fields = list(self._fields)
        return duplicate

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"
