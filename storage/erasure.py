"""Erasure (GDPR Art. 17), discard at hang-up and consent withdrawal (Art. 7(3)).

Every deletion goes through :func:`storage.disposal.dispose` inside one transaction with the recording locked,
after the rules said yes: a legal hold refuses it (Art. 18), so does a statutory floor (Art. 17(3)(b)), and each
refusal says why. Erasures and refusals are audited; the audit trail keeps ids and reasons, never the number.

A :data:`storage.scope.TenantScope` bounds every request: a tenant erases only its own recordings, ``None``
only the calls no tenant claimed, and :data:`~storage.scope.ALL_TENANTS` (the operator) any recording.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .audit import Actor, AuditEntry, AuditLog
from .blobs import FileBlobStore
from .consent import RecordingConsent
from .disposal import Disposal, DisposalReason, dispose
from .errors import (
    CatalogueError,
    LifecycleError,
    NotFoundError,
    StatutoryFloorError,
    UnderHoldError,
    translated,
)
from .lifecycle_rows import FACT_COLUMNS, Lock, RecordingFacts, active_holds, number_for, recording_facts
from .retention import ErasureDecision, ErasureRefusal, erasure_decision
from .retention_class import Basis
from .scope import ALL_TENANTS, TenantScope, scope_args, scope_sql

__all__ = [
    "SYSTEM_RECORDER",
    "ConsentWithdrawal",
    "ErasureOutcome",
    "ErasureResult",
    "ErasureService",
    "NumberErasure",
]

SYSTEM_RECORDER = Actor(name="system:recorder", origin="server")
_DISCARD_REASONS = (DisposalReason.NOT_KEPT, DisposalReason.CONSENT_REFUSED, DisposalReason.CONSENT_WITHDRAWN)

_OF_NUMBER = f"""
    SELECT {FACT_COLUMNS}
    FROM recordings r LEFT JOIN retention_classes c ON c.id = r.retention_class_id
    WHERE $1 = ANY (r.numbers) AND {scope_sql("r.tenant_id", 2)}
      AND ($4::text IS NULL OR r.basis = $4)
    ORDER BY r.started_at, r.id
"""  # noqa: S608 (constant fragments)
_MARK_WITHDRAWN = "UPDATE recordings SET consent_state = 'withdrawn' WHERE id = $1"
_WITHDRAWAL = """
    INSERT INTO consent_withdrawals (tenant_id, number, withdrawn_at, recorded_by, recordings_erased, recordings_held)
    VALUES ($1, $2, $3, $4, $5, $6)
    RETURNING id
"""


class ErasureOutcome(enum.StrEnum):
    ERASED = "erased"
    REFUSED = "refused"  # a rule said no: ``rule`` and ``message`` say which and why
    FAILED = "failed"  # the database or the filesystem failed; a retry may succeed


@dataclass(frozen=True, slots=True, kw_only=True)
class ErasureResult:
    recording_id: UUID
    reference: str
    outcome: ErasureOutcome
    rule: ErasureRefusal | None = None
    message: str = ""
    disposal: Disposal | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "recording_id": str(self.recording_id),
            "reference": self.reference,
            "outcome": self.outcome.value,
            "rule": None if self.rule is None else self.rule.value,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberErasure:
    """What became of each of a number's recordings."""

    number: str  # as stored (E.164)
    results: tuple[ErasureResult, ...]

    def count(self, outcome: ErasureOutcome) -> int:
        return sum(1 for result in self.results if result.outcome is outcome)

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "erased": self.count(ErasureOutcome.ERASED),
            "refused": self.count(ErasureOutcome.REFUSED),
            "failed": self.count(ErasureOutcome.FAILED),
            "recordings": [result.to_json() for result in self.results],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentWithdrawal:
    """A withdrawal of consent by number: the consent-based recordings erased, and those kept for now."""

    id: int
    number: str
    withdrawn_at: datetime
    erased: tuple[Disposal, ...]
    held: tuple[UUID, ...]  # under a legal hold: marked withdrawn, erased by the sweeper once released
    in_progress: tuple[UUID, ...]  # calls still being recorded: marked withdrawn, erased once they end

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "number": self.number,
            "withdrawn_at": self.withdrawn_at.isoformat(),
            "erased": [disposal.reference for disposal in self.erased],
            "held": [str(recording_id) for recording_id in self.held],
            "in_progress": [str(recording_id) for recording_id in self.in_progress],
        }


class ErasureService:
    def __init__(
        self, pool: Any, blobs: FileBlobStore, *, audit: AuditLog, clock: Callable[[], datetime]
    ) -> None:
        self._pool = pool
        self._blobs = blobs
        self._audit = audit
        self._clock = clock

    async def erase(self, scope: TenantScope, recording_id: UUID, actor: Actor, reason: str) -> Disposal:
        """Erase one recording on request; ``reason`` (why, e.g. the request's reference) goes in the audit.

        Raises :class:`UnderHoldError`, :class:`StatutoryFloorError` or :class:`LifecycleError` (still being
        recorded) with the reason a person can be given, :class:`NotFoundError` outside the tenant's scope."""
        result = await self._erase_one(scope, recording_id, actor, reason)
        if result.disposal is not None:
            return result.disposal
        if result.rule is ErasureRefusal.HELD:
            raise UnderHoldError(result.message)
        if result.rule is ErasureRefusal.STATUTORY:
            raise StatutoryFloorError(result.message)
        raise LifecycleError(result.message)

    async def erase_number(
        self, scope: TenantScope, number: str, actor: Actor, reason: str = "erasure request"
    ) -> NumberErasure:
        """Erase every recording of a number (any written form), each on its own; returns what became of each.

        ``ValueError`` when ``number`` is not a phone number."""
        key = await number_for(self._pool, scope, number)
        with translated("find a number's recordings"):
            rows = await self._pool.fetch(_OF_NUMBER, key, *scope_args(scope), None)
        results = []
        for row in rows:
            facts = RecordingFacts.from_row(row)
            try:
                results.append(await self._erase_one(scope, facts.id, actor, reason))
            except NotFoundError:
                continue  # erased meanwhile by someone else
            except CatalogueError as exc:
                results.append(
                    ErasureResult(
                        recording_id=facts.id,
                        reference=facts.reference,
                        outcome=ErasureOutcome.FAILED,
                        message=str(exc),
                    )
                )
        return NumberErasure(number=key, results=tuple(results))

    async def discard(
        self, recording_id: UUID, reason: DisposalReason, *, actor: Actor = SYSTEM_RECORDER
    ) -> Disposal:
        """Delete at hang-up what must not be kept: a call in a 0-day class (``NOT_KEPT``), or a consent-based
        call whose party refused or did not answer (``CONSENT_REFUSED``) or pressed the stop key
        (``CONSENT_WITHDRAWN``). Call it once the recorder has stopped and the catalogue names the call's file
        (after ``Catalogue.finish``): a file the catalogue does not name is not found here.

        A legal hold on the call's number still wins (:class:`UnderHoldError`): the call is then kept."""
        if reason not in _DISCARD_REASONS:
            raise ValueError("discard() is for calls not kept or without consent")
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            facts = await recording_facts(conn, ALL_TENANTS, recording_id, lock=Lock.UPDATE)
            if reason is DisposalReason.NOT_KEPT and (
                facts.retention_class is None or not facts.retention_class.not_kept
            ):
                raise LifecycleError(
                    f"{facts.reference} is in a retention class that keeps it; not discarded"
                )
            if reason is not DisposalReason.NOT_KEPT and facts.basis is not Basis.CONSENT:
                raise LifecycleError(f"{facts.reference} was not recorded on consent; not discarded")
            if reason is not DisposalReason.NOT_KEPT and facts.consent_state is RecordingConsent.GIVEN:
                raise LifecycleError(f"consent to {facts.reference} was given and stands; not discarded")
            await self._refuse_if_held(conn, facts)
            return await self._dispose(conn, facts, reason, actor, now, note=None)

    async def withdraw_consent(self, scope: TenantScope, number: str, actor: Actor) -> ConsentWithdrawal:
        """Art. 7(3): erase the number's consent-based recordings in ``scope`` and nothing else. Held ones (and
        calls still in progress) are marked withdrawn and counted; the sweeper erases them once it may. One
        withdrawal row records it, in the same transaction as the erasures; its tenant is the scope's (none for
        the unclaimed calls and for the operator across tenants)."""
        key = await number_for(self._pool, scope, number)
        tenant_id = None if scope is ALL_TENANTS else scope
        now = self._clock()
        erased: list[Disposal] = []
        held: list[UUID] = []
        in_progress: list[UUID] = []
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("find a number's consent recordings"):
                rows = await conn.fetch(
                    f"{_OF_NUMBER} FOR UPDATE OF r", key, *scope_args(scope), Basis.CONSENT.value
                )
            for row in rows:
                facts = RecordingFacts.from_row(row)
                if facts.held or not facts.finished:
                    await _mark_withdrawn(conn, facts.id)
                    (held if facts.held else in_progress).append(facts.id)
                    continue
                try:
                    erased.append(
                        await self._dispose(
                            conn,
                            facts,
                            DisposalReason.CONSENT_WITHDRAWN,
                            actor,
                            now,
                            note="consent withdrawn",
                        )
                    )
                except UnderHoldError:  # a hold placed meanwhile keeps this one
                    await _mark_withdrawn(conn, facts.id)
                    held.append(facts.id)
            with translated("record a consent withdrawal"):
                withdrawal_id = await conn.fetchval(
                    _WITHDRAWAL, tenant_id, key, now, actor.name, len(erased), len(held)
                )
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action="consent.withdraw",
                    tenant_id=tenant_id,
                    object_kind="consent_withdrawal",
                    object_id=str(withdrawal_id),
                    details={"erased": len(erased), "held": len(held), "in_progress": len(in_progress)},
                ),
            )
        return ConsentWithdrawal(
            id=int(withdrawal_id),
            number=key,
            withdrawn_at=now,
            erased=tuple(erased),
            held=tuple(held),
            in_progress=tuple(in_progress),
        )

    async def _erase_one(
        self, scope: TenantScope, recording_id: UUID, actor: Actor, reason: str
    ) -> ErasureResult:
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            facts = await recording_facts(conn, scope, recording_id, lock=Lock.UPDATE)
            decision = erasure_decision(facts.retention(), now=now)
            if decision.allowed:
                try:
                    disposal = await self._dispose(
                        conn, facts, DisposalReason.ERASURE_REQUEST, actor, now, note=reason
                    )
                except UnderHoldError as exc:  # a hold placed between our check and the DELETE
                    decision = ErasureDecision(allowed=False, refusal=ErasureRefusal.HELD, message=str(exc))
                else:
                    return ErasureResult(
                        recording_id=facts.id,
                        reference=facts.reference,
                        outcome=ErasureOutcome.ERASED,
                        disposal=disposal,
                    )
            message = decision.message
            if decision.refusal is ErasureRefusal.HELD:
                message = await _with_holds(conn, facts, message)
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action="recording.erase_refused",
                    tenant_id=facts.tenant_id,
                    object_kind="recording",
                    object_id=str(facts.id),
                    details={"rule": str(decision.refusal), "note": reason},
                ),
            )
        return ErasureResult(
            recording_id=facts.id,
            reference=facts.reference,
            outcome=ErasureOutcome.REFUSED,
            rule=decision.refusal,
            message=message,
        )

    async def _dispose(
        self,
        conn: Any,
        facts: RecordingFacts,
        reason: DisposalReason,
        actor: Actor,
        now: datetime,
        *,
        note: str | None,
    ) -> Disposal:
        """Delete the recording (:func:`storage.disposal.dispose`) and audit it, in the caller's transaction."""
        disposal = await dispose(
            conn, facts, reason=reason, disposed_by=actor.name, now=now, blobs=self._blobs
        )
        await self._audit.append(conn, _erase_entry(actor, disposal, note=note))
        return disposal

    async def _refuse_if_held(self, conn: Any, facts: RecordingFacts) -> None:
        if facts.held:
            raise UnderHoldError(
                await _with_holds(
                    conn, facts, f"{facts.reference} is restricted by a legal hold (GDPR Art. 18)"
                )
            )


async def _with_holds(conn: Any, facts: RecordingFacts, message: str) -> str:
    holds = await active_holds(conn, facts.id)
    return "; ".join([message, *(hold.describe() for hold in holds)])


async def _mark_withdrawn(conn: Any, recording_id: UUID) -> None:
    with translated("mark a recording's consent withdrawn"):
        await conn.execute(_MARK_WITHDRAWN, recording_id)


def _erase_entry(actor: Actor, disposal: Disposal, *, note: str | None) -> AuditEntry:
    details: dict[str, Any] = {
        "reason": disposal.reason.value,
        "retention_class": disposal.retention_class,
        "files": disposal.files,
        "bytes": disposal.bytes,
    }
    if note:
        details["note"] = note
    return AuditEntry(
        actor=actor,
        action="recording.erase",
        tenant_id=disposal.tenant_id,
        object_kind="recording",
        object_id=str(disposal.recording_id),
        details=details,
    )
