"""The parts of a SIP/SIPS URI (RFC 3261 §19.1) that routing needs: scheme, user, host, port, parameters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from .errors import SipParseError
from .fields import parse_params

_SIP_URI: Final = re.compile(
    r"(?P<scheme>sips?):(?:(?P<userinfo>[^@;?]*)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)"
    r"(?::(?P<port>\d{1,5}))?(?P<params>;[^?]*)?(?:\?.*)?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SipUri:
    scheme: str
    host: str
    port: int | None = None
    user: str | None = None
    params: Mapping[str, str | None] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, value: str) -> SipUri:
        match = _SIP_URI.fullmatch(value.strip())
        if match is None:
            raise SipParseError(400, "Bad SIP URI")
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 0 < port < 65536:
            raise SipParseError(400, "Bad SIP URI")
        userinfo = match["userinfo"]
        return cls(
            scheme=match["scheme"].lower(),
            host=match["host"].lower(),
            port=port,
            user=userinfo.partition(":")[0] if userinfo else None,
            params=parse_params(match["params"] or "", "URI"),
        )

    @property
    def loose_route(self) -> bool:
        return "lr" in self.params

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None
