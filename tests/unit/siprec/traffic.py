"""Loading the recorded SIPREC traffic under tests/fixtures/siprec."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "siprec"
INVITES = (
    "acme_invite.sip",
    "cisco_cube_invite.sip",
    "broadworks_invite.sip",
    "ribbon_gtd_invite.sip",
    "lf_only_invite.sip",
    "quoted_boundary_invite.sip",
    "rfc7866_invite.sip",
)
_COMPACT = {"c": "content-type", "m": "contact", "l": "content-length"}


@dataclass(frozen=True, slots=True)
class Invite:
    """A request split into its unfolded header fields (lowercased names) and its body."""

    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers[name][0]

    def values(self, name: str) -> list[str]:
        return self.headers.get(name, [])


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load_invite(name: str) -> Invite:
    data = fixture(name)
    end = re.search(rb"\r?\n\r?\n", data)
    assert end is not None, f"{name}: no blank line after the headers"
    lines: list[str] = []
    for line in re.split(r"\r?\n", data[: end.start()].decode("utf-8"))[1:]:
        if line[:1] in (" ", "\t"):
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    headers: dict[str, list[str]] = {}
    for line in lines:
        name_part, _, value = line.partition(":")
        key = name_part.strip().lower()
        headers.setdefault(_COMPACT.get(key, key), []).append(value.strip())
    body = data[end.end() :]
    assert int(headers["content-length"][0]) == len(body), f"{name}: Content-Length does not match"
    return Invite(headers=headers, body=body)
