"""Participant addresses (RFC 7865 §6.4 `aor`) as SRCs write them, read into one clean URI.

Pure. An AOR should be a SIP, SIPS or tel URI (RFC 7865 §6.4.1), but SRCs send:

- no scheme: `+36705550123@198.51.100.20` (Ribbon, AudioCodes, Sonus), `sip:02077705371` without a host
  (BroadWorks);
- URI parameters: `sip:06705551234@voip.example.hu;user=phone`, `tel:+3612345678;phone-context=…`;
- a name-addr: `<sip:…>` or `"Kovács Anna" <sip:…>;tag=…` (copied From/To headers, Ribbon callData);
- whitespace: `sip: 7774442214 @10.104.54.52` (Cisco CUBE after a transfer);
- a percent-encoded user: `sip:%2B3630…@host`.

`parse_address` returns the URI reduced to `scheme:user@host[:port]` (parameters and headers dropped, so
that equal parties compare equal), the user part decoded, the display name if one was sent, and `repairs`:
what had to be removed (`brackets`, `whitespace`), which the reader reports as a warning. A missing scheme
is a dialect, not damage: `sip:` is added silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["Address", "parse_address"]

_SCHEME = re.compile(r"(?i)(sips?|tel):")
_WHITESPACE = re.compile(r"\s+")
_QUOTED_NAME = re.compile(r'"([^"]*)"\s*(.*)', re.DOTALL)
_HOST_ONLY = re.compile(r"[\w\-]+(\.[\w\-]+)+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """A participant's address: `uri` is `sip:user@host`, `sips:…` or `tel:number`."""

    uri: str
    user: str | None
    host: str | None
    display_name: str | None = None
    repairs: tuple[str, ...] = ()


def parse_address(raw: str | None) -> Address | None:
    """`raw` as an `Address`; None when there is nothing usable in it."""
    if raw is None:
        return None
    text = raw.strip()
    repairs: list[str] = []
    display_name = None
    quoted = _QUOTED_NAME.match(text)
    if quoted and "<" not in text:  # `"Anna" sip:…`: a display name without angle brackets
        display_name, text = quoted.group(1).strip() or None, quoted.group(2)
        repairs.append("display_name")
    if "<" in text:
        before, _, rest = text.partition("<")
        inner, closed, _ = rest.partition(">")
        if closed:
            text = inner
            display_name = before.strip().strip('"').strip() or None
            repairs.append("brackets")
    if _WHITESPACE.search(text):
        text = _WHITESPACE.sub("", text)
        repairs.append("whitespace")
    if not text:
        return None
    match = _SCHEME.match(text)
    scheme = match.group(1).lower() if match else "sip"
    rest = text[match.end() :] if match else text
    if scheme == "tel":
        number = unquote(rest.split(";", 1)[0].split("?", 1)[0])
        return (
            Address(
                uri=f"tel:{number}",
                user=number or None,
                host=None,
                display_name=display_name,
                repairs=tuple(repairs),
            )
            if number
            else None
        )
    rest = rest.split("?", 1)[0]
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:  # only one of user and host: `sip:02077705371` (BroadWorks) or `sip:10.10.10.1`
        bare = rest.split(";", 1)[0]
        userinfo, hostpart = ("", bare) if _HOST_ONLY.fullmatch(bare) else (bare, "")
    user = unquote(userinfo.split(";", 1)[0].split(":", 1)[0]) or None
    host = hostpart.split(";", 1)[0] or None
    if user is None and host is None:
        return None
    uri = f"{scheme}:{user or ''}{'@' if user and host else ''}{host or ''}"
    return Address(uri=uri, user=user, host=host, display_name=display_name, repairs=tuple(repairs))
