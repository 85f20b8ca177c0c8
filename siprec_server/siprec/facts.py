"""The normalised view of the recorded call: who called whom, which way, for which tenant, with provenance.

Every fact is an `Attributed` value: the value, the raw form it was read from, and `source`, which field
said so: `broadworks:callingPartyNumber`, `participant[0].aor`, `apkt:callingParty`, `session.session_id`.
`attribution.derive_call_facts` fills it in from the metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

__all__ = ["Attributed", "CallFacts", "Direction"]

T = TypeVar("T")


class Direction(StrEnum):
    """Seen from the tenant (the PBX customer being recorded): a call from outside is inbound."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True, slots=True, kw_only=True)
class Attributed(Generic[T]):
    """A value with its provenance: `source` names the field that said so, `raw` is that field as sent."""

    value: T
    source: str
    raw: str | None = None

    def to_json(self) -> dict[str, Any]:
        value = self.value.value if isinstance(self.value, StrEnum) else self.value
        return {"value": value, "raw": self.raw, "source": self.source}


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFacts:
    """Numbers are E.164 where the numbering plan allows (extensions and foreign national forms stay as
    written, the raw AOR or header in `raw`). `ids` holds correlation identifiers by kind: `ucid`,
    `genesys_uuid`, `sip_session_id`, `call_id`, `gcid`, `ext_tracking_id`, `broadworks_call_id`."""

    calling_number: Attributed[str] | None = None
    called_number: Attributed[str] | None = None
    direction: Attributed[Direction] | None = None
    tenant_hint: Attributed[str] | None = None
    ids: Mapping[str, Attributed[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The catalogue's `call_facts` shape: each known fact as `{value, raw, source}`, ids by kind."""
        data: dict[str, Any] = {}
        for name in ("calling_number", "called_number", "direction", "tenant_hint"):
            fact: Attributed[Any] | None = getattr(self, name)
            if fact is not None:
                data[name] = fact.to_json()
        if self.ids:
            data["ids"] = {kind: fact.to_json() for kind, fact in self.ids.items()}
        return data
