"""Tenants, their numbers and source networks as values, and the pure rules that read what an operator writes.

A tenant is a VPBX subscriber. It owns public numbers (a DID in E.164, or a block of DIDs written as an E.164
prefix), internal extensions (digits that mean something only inside its PBX) and, optionally, the networks
of SBCs or PBXes that carry only its calls. The parsers here turn any written form into the stored one and
refuse what cannot be meant:

- a DID in any written form (``+36 1 234 5678``, ``06-1-234-5678``, ``sip:+3612345678@pbx``) becomes E.164 in
  the tenant's region; what libphonenumber does not hold valid is refused;
- a range is written with trailing wildcards (``+36 1 234 56xx``, ``06 1 234 56XX``) or as a whole block
  ``+3612345600-+3612345699``; it is stored as the common E.164 prefix (``+36123456``);
- an extension is 1-15 of ``0-9 * #``, and not something that is itself a valid phone number;
- a source network is a CIDR (``192.0.2.0/28``; a bare address is one host) without host bits.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

import phonenumbers

from .phone import to_e164

__all__ = [
    "IPNetwork",
    "NumberKind",
    "Tenant",
    "TenantNumber",
    "TenantSource",
    "parse_did",
    "parse_extension",
    "parse_hints",
    "parse_network",
    "parse_range",
    "parse_region",
    "parse_slug",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # as the tenants_slug_format CHECK
_SEPARATORS = re.compile(r"[\s\-.()/]")
_EXTENSION = re.compile(r"^[0-9*#]{1,15}$")
_WILDCARDS = re.compile(r"^(?P<head>.*?)(?P<tail>[xX]+)$")
_BLOCK_SPLIT = re.compile(r"\.\.|\s[-–]\s|[-–](?=\+)")  # "A..B", "A - B", "+A-+B"
_MAX_HINT = 200


class NumberKind(StrEnum):
    NUMBER = "number"  # one DID, E.164
    RANGE = "range"  # a block of DIDs: an E.164 prefix
    EXTENSION = "extension"  # an internal short number of the tenant's PBX


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    id: UUID
    slug: str
    name: str
    region: str  # numbers written without a country code are read in this region
    hints: tuple[str, ...] = ()  # vendor tenant hints naming this tenant, compared case-insensitively
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Tenant:
        return cls(
            id=row["id"],
            slug=row["slug"],
            name=row["name"],
            region=row["region"],
            hints=tuple(row["hints"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "slug": self.slug,
            "name": self.name,
            "region": self.region,
            "hints": list(self.hints),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantNumber:
    id: int
    tenant_id: UUID
    kind: NumberKind
    value: str  # E.164, E.164 prefix, or extension digits
    label: str | None = None
    created_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TenantNumber:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            kind=NumberKind(row["kind"]),
            value=row["value"],
            label=row["label"],
            created_at=row["created_at"],
        )

    @property
    def display(self) -> str:
        """As an operator reads it: a range is its prefix followed by an ellipsis (``+36123456…``)."""
        return f"{self.value}…" if self.kind is NumberKind.RANGE else self.value

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": str(self.tenant_id),
            "kind": self.kind.value,
            "value": self.value,
            "label": self.label,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantSource:
    network: IPNetwork
    tenant_id: UUID
    created_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TenantSource:
        return cls(network=row["network"], tenant_id=row["tenant_id"], created_at=row["created_at"])

    def to_json(self) -> dict[str, Any]:
        return {
            "network": str(self.network),
            "tenant_id": str(self.tenant_id),
            "created_at": _iso(self.created_at),
        }


def parse_slug(text: str) -> str:
    slug = text.strip()
    if not _SLUG.fullmatch(slug):
        raise ValueError(
            f"tenant slug {text!r} must be 1-63 of lowercase letters, digits and '-', not starting with '-'"
        )
    return slug


def parse_region(text: str) -> str:
    region = text.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{text!r} is not a region libphonenumber knows (an ISO 3166 code such as HU)")
    return region


def parse_hints(hints: Sequence[str]) -> tuple[str, ...]:
    """Trimmed, non-empty, each once (case-insensitively), in the order given."""
    seen: set[str] = set()
    out: list[str] = []
    for hint in hints:
        clean = hint.strip()
        if not clean:
            raise ValueError("a tenant hint cannot be empty")
        if len(clean) > _MAX_HINT:
            raise ValueError(f"a tenant hint is at most {_MAX_HINT} characters")
        if clean.casefold() not in seen:
            seen.add(clean.casefold())
            out.append(clean)
    return tuple(out)


def parse_did(text: str, region: str) -> str:
    """E.164 of one public number in any written form, read in ``region``."""
    e164 = to_e164(text, region)
    if e164 is None:
        raise ValueError(f"{text!r} is not a valid phone number (read in region {region})")
    return e164


def parse_range(text: str, region: str) -> str:
    """The E.164 prefix of a block of DIDs, ``+36 1 234 56xx`` or ``+3612345600-+3612345699``.

    The wildcards are filled with a digit and the whole number read in ``region`` (so national forms work);
    the block must contain at least one valid number. An explicit first-last pair must be a whole block: the
    first ends in zeros and the last in nines after their common prefix."""
    compact = _SEPARATORS.sub("", text.strip())
    ends = _BLOCK_SPLIT.split(text.strip())
    if len(ends) == 2 and "x" not in compact.lower():
        return _parse_block(ends[0], ends[1], region, text)
    wild = _WILDCARDS.fullmatch(compact)
    if wild is None:
        raise ValueError(
            f"{text!r} is not a range: write trailing wildcards (+36 1 234 56xx) or a block "
            f"(+3612345600-+3612345699)"
        )
    head, width = wild.group("head"), len(wild.group("tail"))
    if not re.fullmatch(r"\+?[0-9]+", head):
        raise ValueError(f"{text!r} is not a range: only digits may precede the trailing x wildcards")
    for fill in "059":
        e164 = to_e164(head + fill * width, region)
        if e164 is not None and e164.endswith(fill * width):
            return e164[:-width]
    raise ValueError(f"range {text!r} holds no valid phone number (read in region {region})")


def _parse_block(first: str, last: str, region: str, text: str) -> str:
    low, high = to_e164(first, region), to_e164(last, region)
    if low is None or high is None:
        raise ValueError(f"range {text!r}: both ends must be valid phone numbers (read in region {region})")
    if len(low) != len(high) or low > high:
        raise ValueError(f"range {text!r}: the first number must not be above the last, and of its length")
    common = 0
    while common < len(low) and low[common] == high[common]:
        common += 1
    if common == len(low):
        raise ValueError(f"range {text!r} is one number: add it as a number")
    prefix, low_tail, high_tail = low[:common], low[common:], high[common:]
    if set(low_tail) != {"0"} or set(high_tail) != {"9"}:
        raise ValueError(
            f"range {text!r} is not a whole block of numbers under one prefix ({prefix}"
            f"{'x' * len(low_tail)} would be {prefix}{'0' * len(low_tail)}-{prefix}{'9' * len(low_tail)}); "
            f"add it as several ranges"
        )
    return prefix


def parse_extension(text: str, region: str) -> str:
    """Extension digits; refused when they are a phone number (add those as numbers)."""
    compact = _SEPARATORS.sub("", text.strip())
    if not _EXTENSION.fullmatch(compact):
        raise ValueError(f"extension {text!r} must be 1-15 of the digits 0-9, * and #")
    if to_e164(compact, region) is not None:
        raise ValueError(
            f"{text!r} is a phone number (region {region}); add it as a number, not an extension"
        )
    return compact


def parse_network(text: str) -> IPNetwork:
    """A CIDR network; a bare address is one host. Host bits set are refused (a likely typing error)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP network (CIDR such as 192.0.2.0/28)") from exc
        raise ValueError(f"{text!r} has host bits set; did you mean {loose}?") from exc


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
