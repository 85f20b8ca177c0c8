"""The recording decision at call setup: pure and fast, over a `PolicySnapshot` (GDPR Art. 5(1)(a), 6(1)).

Selection: the most specific scope that has any current policy decides alone: the tenant's number (when
attribution found the tenant's party number and that number has policies), else the tenant, else the system.
Within the scope a policy for the call's direction beats one for ``both``. Not recorded, with the reason:

- ``direction``: the scope's policies cover only the other direction;
- ``direction_unknown``: the scope has only directional policies and the direction is not known;
- ``policy``: the selected policy says "not recorded";
- ``no_policy``: no scope has a current policy (the operator removed the system policy);
- ``invalid_policy``: the selected policy lacks what recording needs (basis, purpose, a known class):
  defence in depth, the database and `validate_policy` already refuse such a policy.

A recording decision always carries a basis, a purpose and a retention class: `Decision` refuses to be built
otherwise, so "nothing recorded without a legal basis" holds by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from .attribution import AttributedBy, Attribution, CallContext, Party, attribute
from .consent_terms import ConsentTerms
from .policy_rules import CallDirection, Policy, PolicyDirection, ScopeKind
from .policy_snapshot import PolicySnapshot
from .retention_class import Basis, RetentionClass

__all__ = ["Decision", "DecisionReason", "decide"]

_POLICY_DIRECTION = {
    CallDirection.INBOUND: PolicyDirection.INBOUND,
    CallDirection.OUTBOUND: PolicyDirection.OUTBOUND,
}


class DecisionReason(StrEnum):
    """Why: ``recorded`` or why not (the ``reason`` label of the not-recorded metric; a fixed set)."""

    RECORDED = "recorded"
    POLICY = "policy"
    DIRECTION = "direction"
    DIRECTION_UNKNOWN = "direction_unknown"
    NO_POLICY = "no_policy"
    INVALID_POLICY = "invalid_policy"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    record: bool
    reason: DecisionReason
    attributed_by: AttributedBy
    tenant_id: UUID | None = None
    tenant_slug: str | None = None
    tenant_name: str | None = None
    tenant_party: Party | None = None
    tenant_number_id: int | None = None
    tenant_number: str | None = None  # as the tenant holds it: E.164, range prefix or extension
    direction: CallDirection | None = None
    direction_inferred: bool = False
    scope: ScopeKind | None = None  # of the deciding policy
    policy_id: int | None = None
    policy_version: int | None = None
    basis: Basis | None = None
    statute: str | None = None
    purpose: str | None = None
    retention: RetentionClass | None = None
    format: str | None = None
    consent: ConsentTerms | None = None
    numbers: tuple[str, ...] = ()  # every party's number key (E.164 where it is one): recordings.numbers

    def __post_init__(self) -> None:
        if self.record and (
            self.reason is not DecisionReason.RECORDED
            or self.basis is None
            or not self.purpose
            or self.retention is None
            or self.policy_id is None
            or (self.basis is Basis.LEGAL_OBLIGATION and not self.statute)
            or (self.basis is Basis.CONSENT and self.consent is None)
        ):
            raise ValueError(
                "a decision to record needs a policy, a basis (with its statute or consent "
                "terms), a purpose and a retention class"
            )
        if not self.record and self.reason is DecisionReason.RECORDED:
            raise ValueError("a decision not to record needs the reason why not")

    def to_json(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "reason": self.reason.value,
            "attributed_by": self.attributed_by.value,
            "tenant_id": None if self.tenant_id is None else str(self.tenant_id),
            "tenant_slug": self.tenant_slug,
            "tenant_name": self.tenant_name,
            "tenant_party": None if self.tenant_party is None else self.tenant_party.value,
            "tenant_number_id": self.tenant_number_id,
            "tenant_number": self.tenant_number,
            "direction": None if self.direction is None else self.direction.value,
            "direction_inferred": self.direction_inferred,
            "scope": None if self.scope is None else self.scope.value,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "basis": None if self.basis is None else self.basis.value,
            "statute": self.statute,
            "purpose": self.purpose,
            "retention": None if self.retention is None else self.retention.to_json(),
            "format": self.format,
            "consent": None if self.consent is None else self.consent.to_json(),
            "numbers": list(self.numbers),
        }


def decide(snapshot: PolicySnapshot, context: CallContext) -> Decision:
    found = attribute(snapshot, context)
    scope, policies = _scope(snapshot, found)
    policy, reason = (None, DecisionReason.NO_POLICY) if scope is None else _select(policies, found.direction)
    retention = None
    if policy is not None:
        reason = DecisionReason.RECORDED if policy.record else DecisionReason.POLICY
        if policy.record:
            retention = (
                None
                if policy.retention_class_id is None
                else snapshot.retention_class(policy.retention_class_id)
            )
            if not _recordable(policy, retention):
                reason, retention = DecisionReason.INVALID_POLICY, None
    record = reason is DecisionReason.RECORDED
    tenant, number = found.tenant, found.number
    return Decision(
        record=record,
        reason=reason,
        attributed_by=found.by,
        tenant_id=None if tenant is None else tenant.id,
        tenant_slug=None if tenant is None else tenant.slug,
        tenant_name=None if tenant is None else tenant.name,
        tenant_party=found.party,
        tenant_number_id=None if number is None else number.id,
        tenant_number=None if number is None else number.value,
        direction=found.direction,
        direction_inferred=found.direction_inferred,
        scope=scope,
        policy_id=None if policy is None else policy.id,
        policy_version=None if policy is None else policy.version,
        basis=policy.basis if record and policy is not None else None,
        statute=policy.statute if record and policy is not None else None,
        purpose=policy.purpose if record and policy is not None else None,
        retention=retention,
        format=policy.format if record and policy is not None else None,
        consent=policy.consent if record and policy is not None and policy.basis is Basis.CONSENT else None,
        numbers=_numbers(found),
    )


def _recordable(policy: Policy, retention: RetentionClass | None) -> bool:
    """Defence in depth: what the database and `validate_policy` already demand of a recording policy."""
    return not (
        policy.basis is None
        or not policy.purpose
        or retention is None
        or (policy.basis is Basis.LEGAL_OBLIGATION and not policy.statute)
        or (policy.basis is Basis.CONSENT and policy.consent is None)
    )


def _scope(
    snapshot: PolicySnapshot, found: Attribution
) -> tuple[ScopeKind | None, Mapping[PolicyDirection, Policy]]:
    if found.tenant is not None:
        if found.number is not None:
            policies = snapshot.policies(found.tenant.id, found.number.id)
            if policies:
                return ScopeKind.NUMBER, policies
        policies = snapshot.policies(found.tenant.id)
        if policies:
            return ScopeKind.TENANT, policies
    policies = snapshot.policies(None)
    if policies:
        return ScopeKind.SYSTEM, policies
    return None, policies


def _select(
    policies: Mapping[PolicyDirection, Policy], direction: CallDirection | None
) -> tuple[Policy | None, DecisionReason]:
    """The policy for the direction, else the one for both; else no policy and why not. (The reason given
    with a policy is a placeholder: the caller decides it from the policy.)"""
    if direction is not None:
        specific = policies.get(_POLICY_DIRECTION[direction])
        if specific is not None:
            return specific, DecisionReason.RECORDED
    both = policies.get(PolicyDirection.BOTH)
    if both is not None:
        return both, DecisionReason.RECORDED
    return None, DecisionReason.DIRECTION if direction is not None else DecisionReason.DIRECTION_UNKNOWN


def _numbers(found: Attribution) -> tuple[str, ...]:
    keys = [key for key in (found.calling_key, found.called_key) if key]
    return tuple(dict.fromkeys(keys))
