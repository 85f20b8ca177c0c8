"""In-memory tenants, numbers, sources and policies for the attribution, decision and announcement tests:
what `PolicyStore.snapshot()` would load, built without a database."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from uuid import UUID, uuid5

from storage.consent_terms import ConsentTerms
from storage.policy_rules import CallDirection, Policy, PolicyDirection
from storage.policy_snapshot import PolicySnapshot
from storage.retention_class import Basis, RetentionClass
from storage.tenant_models import NumberKind, Tenant, TenantNumber, TenantSource, parse_network

INBOUND, OUTBOUND = CallDirection.INBOUND, CallDirection.OUTBOUND
_NS = UUID("6f0f1a52-4c57-4d4b-9a53-1f0b7c1d2e3f")

# The shipped presets (migration 0004), with the ids a fresh catalogue gives them.
PRESETS = (
    RetentionClass(id=1, code="none", name="Not kept", days=0, basis=Basis.LEGITIMATE_INTEREST, source="Art. 5"),
    RetentionClass(id=2, code="quality_60d", name="Quality", days=60, basis=Basis.LEGITIMATE_INTEREST, source="6f"),
    RetentionClass(id=3, code="contract_evidence", name="Contract", days=1826, basis=Basis.LEGITIMATE_INTEREST,
                   source="Ptk. 6:22 §"),
    RetentionClass(id=4, code="consent", name="Consent", days=365, basis=Basis.CONSENT, source="Art. 7(3)"),
    RetentionClass(id=5, code="utility_customer_service", name="Utility", days=1826,
                   basis=Basis.LEGAL_OBLIGATION, source="Fgytv. 17/B §", statutory=True),
    RetentionClass(id=6, code="telecom_fault_reports", name="Faults", days=365, basis=Basis.LEGAL_OBLIGATION,
                   source="Eht. 141 §", statutory=True),
    RetentionClass(id=7, code="financial_complaints", name="Complaints", days=1826,
                   basis=Basis.LEGAL_OBLIGATION, source="Hpt. 288 §", statutory=True),
    RetentionClass(id=8, code="investment_services", name="Investment", days=1826, max_days=2557,
                   basis=Basis.LEGAL_OBLIGATION, source="MiFID II Art. 16(7)", statutory=True),
)  # fmt: skip
CLASSES = {cls.code: cls for cls in PRESETS}


class World:
    """Tenants, numbers, sources and policies in memory, as `PolicyStore.snapshot()` would load them."""

    def __init__(self, *, system_policy: bool = True) -> None:
        self.tenants: list[Tenant] = []
        self.numbers: list[TenantNumber] = []
        self.sources: list[TenantSource] = []
        self.policies: list[Policy] = []
        self._ids = itertools.count(100)
        self.system = self.policy() if system_policy else None

    def tenant(self, slug: str, name: str, *, region: str = "HU", hints: Sequence[str] = ()) -> Tenant:
        tenant = Tenant(id=uuid5(_NS, slug), slug=slug, name=name, region=region, hints=tuple(hints))
        self.tenants.append(tenant)
        return tenant

    def number(self, tenant: Tenant, value: str, kind: NumberKind = NumberKind.NUMBER) -> TenantNumber:
        number = TenantNumber(id=next(self._ids), tenant_id=tenant.id, kind=kind, value=value)
        self.numbers.append(number)
        return number

    def source(self, tenant: Tenant, cidr: str) -> None:
        self.sources.append(TenantSource(network=parse_network(cidr), tenant_id=tenant.id))

    def policy(
        self,
        tenant: Tenant | None = None,
        number: TenantNumber | None = None,
        *,
        direction: PolicyDirection = PolicyDirection.BOTH,
        record: bool = True,
        retention: str = "quality_60d",
        basis: Basis | None = None,
        purpose: str = "quality assurance",
        statute: str | None = None,
    ) -> Policy:
        cls = CLASSES[retention]
        basis = basis or cls.basis
        policy = Policy(
            id=next(self._ids),
            version=1,
            direction=direction,
            record=record,
            created_by="install",
            tenant_id=None if tenant is None else tenant.id,
            number_id=None if number is None else number.id,
            basis=basis if record else None,
            statute=(statute or cls.source) if record and basis is Basis.LEGAL_OBLIGATION else None,
            purpose=purpose if record else None,
            retention_class_id=cls.id if record else None,
            consent=ConsentTerms() if record and basis is Basis.CONSENT else None,
        )
        self.policies.append(policy)
        return policy

    def snapshot(self) -> PolicySnapshot:
        return PolicySnapshot(
            tenants=self.tenants,
            numbers=self.numbers,
            sources=self.sources,
            policies=self.policies,
            classes=PRESETS,
        )
