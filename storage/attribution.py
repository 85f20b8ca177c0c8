"""Which tenant a call belongs to, and which of its parties is the tenant's: pure, over a `PolicySnapshot`.

Rules, in order (the first that names a tenant wins):

1. ``hint``: the vendor tenant hint in the recording metadata (BroadWorks service provider/group, Metaswitch
   business group, NetSapiens domain) equals one of a tenant's hints, case-insensitively.
2. ``source``: the SIP request came from inside a tenant's source network (a dedicated SBC or PBX); the most
   specific network wins.
3. ``number`` / ``range``: the called number for an inbound call, the calling number for an outbound one, both
   (called first) when the direction is unknown; for each, an exact DID first, then the longest range prefix.
   Numbers are read in the default region (HU) here: the tenant, and so its region, is not known yet.

Once the tenant is known, its party is the first of the parties (the called one first, unless the call is
known to be outbound) whose number is the tenant's DID, then range, then, only now, extension: extensions
repeat across tenants, so they never name a tenant by themselves. That party's number is the one whose
number-scoped policy may apply; an unknown direction is inferred from it (the tenant's number was called:
inbound; it called: outbound). Without a tenant the call is unattributed and the system policy decides.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from .number_keys import dialled, key_of_dialled
from .phone import DEFAULT_REGION
from .policy_rules import CallDirection
from .policy_snapshot import PolicySnapshot
from .tenant_models import Tenant, TenantNumber

__all__ = ["AttributedBy", "Attribution", "CallContext", "Party", "attribute"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AttributedBy(StrEnum):
    """Which rule named the tenant (a bounded label for logs, metrics and the catalogue)."""

    HINT = "hint"
    SOURCE = "source"
    NUMBER = "number"  # an exact DID
    RANGE = "range"  # the longest DID range prefix
    NONE = "none"  # unattributed: the system policy decides


class Party(StrEnum):
    CALLING = "calling"
    CALLED = "called"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallContext:
    """What call setup knows when the INVITE arrives, as the metadata gave it (numbers in any written form:
    ``+3612345678``, ``06 1 234 5678``, ``sip:201@pbx.example.hu``)."""

    calling: str | None = None
    called: str | None = None
    direction: CallDirection | None = None
    tenant_hint: str | None = None
    source_ip: str | None = None  # the address the SIP request came from

    def source_address(self) -> IPAddress | None:
        if not self.source_ip:
            return None
        try:
            address = ipaddress.ip_address(self.source_ip.strip().strip("[]"))
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return address.ipv4_mapped
        return address


@dataclass(frozen=True, slots=True, kw_only=True)
class Attribution:
    tenant: Tenant | None
    by: AttributedBy
    party: Party | None = None  # the tenant's party
    number: TenantNumber | None = None  # that party's number as the tenant holds it
    direction: CallDirection | None = None  # as given, or inferred from the tenant's party
    direction_inferred: bool = False
    calling_key: str | None = None  # number_key of each party, in the tenant's region (else HU)
    called_key: str | None = None


def attribute(snapshot: PolicySnapshot, context: CallContext) -> Attribution:
    tenant, by, matched = _find_tenant(snapshot, context)
    if tenant is None:
        return Attribution(
            tenant=None,
            by=AttributedBy.NONE,
            direction=context.direction,
            calling_key=_key(snapshot, context.calling, DEFAULT_REGION),
            called_key=_key(snapshot, context.called, DEFAULT_REGION),
        )
    calling_key = _key(snapshot, context.calling, tenant.region)
    called_key = _key(snapshot, context.called, tenant.region)
    party, number = (
        matched if matched is not None else _tenant_party(snapshot, tenant, context, calling_key, called_key)
    )
    direction, inferred = context.direction, False
    if direction is None and party is not None:
        direction = CallDirection.INBOUND if party is Party.CALLED else CallDirection.OUTBOUND
        inferred = True
    return Attribution(
        tenant=tenant,
        by=by,
        party=party,
        number=number,
        direction=direction,
        direction_inferred=inferred,
        calling_key=calling_key,
        called_key=called_key,
    )


def _find_tenant(
    snapshot: PolicySnapshot, context: CallContext
) -> tuple[Tenant | None, AttributedBy, tuple[Party, TenantNumber] | None]:
    if context.tenant_hint:
        tenant = snapshot.tenant_by_hint(context.tenant_hint)
        if tenant is not None:
            return tenant, AttributedBy.HINT, None
    address = context.source_address()
    if address is not None:
        tenant = snapshot.tenant_by_address(address)
        if tenant is not None:
            return tenant, AttributedBy.SOURCE, None
    for party in _parties(context.direction, strict=True):
        key = _key(snapshot, _text(context, party), DEFAULT_REGION)
        if key is None:
            continue
        number = snapshot.number(key)
        by = AttributedBy.NUMBER
        if number is None:
            number, by = snapshot.longest_range(key), AttributedBy.RANGE
        if number is not None:
            tenant = snapshot.tenant(number.tenant_id)
            if tenant is not None and tenant.region != DEFAULT_REGION:
                # Read again in the tenant's region: the match must hold there too.
                number = _public_number(
                    snapshot, tenant, _key(snapshot, _text(context, party), tenant.region)
                )
            if tenant is not None and number is not None:
                return tenant, by, (party, number)
    return None, AttributedBy.NONE, None


def _tenant_party(
    snapshot: PolicySnapshot,
    tenant: Tenant,
    context: CallContext,
    calling_key: str | None,
    called_key: str | None,
) -> tuple[Party | None, TenantNumber | None]:
    for party in _parties(context.direction, strict=False):
        key = called_key if party is Party.CALLED else calling_key
        if key is None:
            continue
        number = _public_number(snapshot, tenant, key) or snapshot.extension(tenant.id, key)
        if number is not None:
            return party, number
    return None, None


def _public_number(snapshot: PolicySnapshot, tenant: Tenant, key: str | None) -> TenantNumber | None:
    if key is None:
        return None
    number = snapshot.number(key)
    if number is not None and number.tenant_id.int == tenant.id.int:
        return number
    return snapshot.longest_range(key, tenant.id)


def _parties(direction: CallDirection | None, *, strict: bool) -> tuple[Party, ...]:
    """The parties to look at, in order; ``strict``: only the one the direction names (rule 3)."""
    if direction is CallDirection.INBOUND:
        return (Party.CALLED,) if strict else (Party.CALLED, Party.CALLING)
    if direction is CallDirection.OUTBOUND:
        return (Party.CALLING,) if strict else (Party.CALLING, Party.CALLED)
    return (Party.CALLED, Party.CALLING)


def _text(context: CallContext, party: Party) -> str | None:
    return context.called if party is Party.CALLED else context.calling


def _key(snapshot: PolicySnapshot, text: str | None, region: str) -> str | None:
    if not text:
        return None
    compact = dialled(text)
    if compact is None:
        return None
    if compact[0] == "+" and snapshot.number(compact) is not None:
        return compact  # a stored DID is canonical E.164 already
    return key_of_dialled(compact, region)
