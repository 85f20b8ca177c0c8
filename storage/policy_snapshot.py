"""Everything call setup needs to attribute a call and pick its policy, loaded at once and indexed for speed.

`PolicyStore.snapshot()` loads it; the server keeps one and loads a new one when a change is announced
(``NOTIFY hangtar_policies``). Lookups are dictionary probes: a DID by its E.164 key, a range by trying only
the prefix lengths that exist (longest first), a source address by masking it to each stored prefix length,
so a decision costs the same for ten tenants or ten thousand.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from uuid import UUID

from .policy_rules import Policy, PolicyDirection
from .retention_class import RetentionClass
from .tenant_models import NumberKind, Tenant, TenantNumber, TenantSource

__all__ = ["PolicySnapshot"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NO_POLICIES: Mapping[PolicyDirection, Policy] = MappingProxyType({})


class PolicySnapshot:
    """Tenants, their numbers and sources, the current policies and the retention classes, indexed."""

    __slots__ = (
        "_classes",
        "_dids",
        "_extensions",
        "_hints",
        "_number_policies",
        "_range_lengths",
        "_ranges",
        "_sources",
        "_system_policies",
        "_tenant_policies",
        "_tenants",
        "loaded_at",
    )

    def __init__(
        self,
        *,
        tenants: Iterable[Tenant],
        numbers: Iterable[TenantNumber] = (),
        sources: Iterable[TenantSource] = (),
        policies: Iterable[Policy] = (),
        classes: Iterable[RetentionClass] = (),
        loaded_at: datetime | None = None,
    ) -> None:
        self.loaded_at = loaded_at
        # Keyed by UUID.int: hashing a UUID object runs Python code, an int does not (this is the hot path).
        self._tenants = {tenant.id.int: tenant for tenant in tenants}
        self._hints: dict[str, Tenant] = {}
        for tenant in sorted(self._tenants.values(), key=lambda t: t.slug):  # a shared hint: first slug wins
            for hint in tenant.hints:
                self._hints.setdefault(hint.strip().casefold(), tenant)
        self._dids: dict[str, TenantNumber] = {}
        self._ranges: dict[str, TenantNumber] = {}
        self._extensions: dict[tuple[int, str], TenantNumber] = {}
        for number in numbers:
            if number.tenant_id.int not in self._tenants:
                continue
            if number.kind is NumberKind.NUMBER:
                self._dids[number.value] = number
            elif number.kind is NumberKind.RANGE:
                self._ranges[number.value] = number
            else:
                self._extensions[(number.tenant_id.int, number.value)] = number
        self._range_lengths = tuple(sorted({len(prefix) for prefix in self._ranges}, reverse=True))
        by_length: dict[tuple[int, int], dict[int, Tenant]] = {}
        for source in sources:
            owner = self._tenants.get(source.tenant_id.int)
            if owner is not None:
                key = (source.network.version, source.network.prefixlen)
                by_length.setdefault(key, {})[int(source.network.network_address)] = owner
        # (version, prefix length, mask, networks) most specific first
        self._sources = tuple(
            (version, length, _mask(version, length), nets)
            for (version, length), nets in sorted(by_length.items(), key=lambda kv: -kv[0][1])
        )
        self._system_policies: dict[PolicyDirection, Policy] = {}
        self._tenant_policies: dict[int, dict[PolicyDirection, Policy]] = {}
        self._number_policies: dict[int, tuple[int, dict[PolicyDirection, Policy]]] = {}  # id → (tenant, ...)
        for policy in policies:
            if policy.superseded_at is not None:
                continue
            if policy.number_id is not None and policy.tenant_id is not None:
                owner_key = policy.tenant_id.int
                self._number_policies.setdefault(policy.number_id, (owner_key, {}))[1][policy.direction] = (
                    policy
                )
            elif policy.tenant_id is not None:
                self._tenant_policies.setdefault(policy.tenant_id.int, {})[policy.direction] = policy
            else:
                self._system_policies[policy.direction] = policy
        self._classes = {cls.id: cls for cls in classes}

    def __repr__(self) -> str:
        return (
            f"PolicySnapshot(tenants={len(self._tenants)}, numbers={len(self._dids) + len(self._ranges)}"
            f"+{len(self._extensions)} ext, sources={sum(len(n) for *_, n in self._sources)}, "
            f"policy scopes={len(self._tenant_policies) + len(self._number_policies) + 1})"
        )

    @property
    def tenants(self) -> Mapping[UUID, Tenant]:
        return {tenant.id: tenant for tenant in self._tenants.values()}

    def tenant(self, tenant_id: UUID) -> Tenant | None:
        return self._tenants.get(tenant_id.int)

    def tenant_by_hint(self, hint: str) -> Tenant | None:
        return self._hints.get(hint.strip().casefold())

    def tenant_by_address(self, address: IPAddress) -> Tenant | None:
        """The tenant of the most specific source network holding ``address``."""
        value = int(address)
        for version, _length, mask, nets in self._sources:
            if version == address.version:
                tenant = nets.get(value & mask)
                if tenant is not None:
                    return tenant
        return None

    def number(self, key: str) -> TenantNumber | None:
        """The DID stored under this E.164 key, whoever owns it."""
        return self._dids.get(key)

    def longest_range(self, key: str, tenant_id: UUID | None = None) -> TenantNumber | None:
        """The longest range prefix of ``key`` (of ``tenant_id``'s ranges only, when given)."""
        for length in self._range_lengths:
            if length > len(key):
                continue
            found = self._ranges.get(key[:length])
            if found is not None and (tenant_id is None or found.tenant_id.int == tenant_id.int):
                return found
        return None

    def extension(self, tenant_id: UUID, digits: str) -> TenantNumber | None:
        return self._extensions.get((tenant_id.int, digits))

    def policies(
        self, tenant_id: UUID | None, number_id: int | None = None
    ) -> Mapping[PolicyDirection, Policy]:
        """The current policies of one scope, by direction (empty when the scope has none)."""
        if number_id is not None:
            found = self._number_policies.get(number_id)
            if found is None or tenant_id is None or found[0] != tenant_id.int:
                return _NO_POLICIES
            return found[1]
        if tenant_id is None:
            return self._system_policies if self._system_policies else _NO_POLICIES
        return self._tenant_policies.get(tenant_id.int, _NO_POLICIES)

    def retention_class(self, class_id: int) -> RetentionClass | None:
        return self._classes.get(class_id)


def _mask(version: int, length: int) -> int:
    bits = 32 if version == 4 else 128
    return ((1 << length) - 1) << (bits - length) if length else 0
