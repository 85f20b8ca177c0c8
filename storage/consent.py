"""Proof of consent to recording (GDPR Art. 7(1)): what was asked, when, of which number, and the answer.

The server asks the party during the call (``siprec_server.consent``) and, for each outcome, stores a proof
row in ``consent_proofs`` and moves the recording's ``consent_state`` on, in one transaction with its audit
entry (``consent.given``, ``consent.refused``, ``consent.no_answer``, ``consent.stopped``; actor
``system:consent``). The audit entry holds identifiers, codes and times, never the number.

The recording's consent state only ever moves away from "given" (:func:`consent_state_after`):
``pending`` (set at call setup) becomes ``given`` on yes, ``refused`` on no or silence, and ``given`` becomes
``withdrawn`` when the party presses the stop key. When several parties are asked, one refusal or withdrawal
decides for the recording. A refused, unanswered or stopped recording also expires at once (``expires_at`` is
brought forward to the answer), so if discarding it at hang-up ever fails, the retention sweeper deletes it.

Proofs are deleted with their recording (the table cascades): a kept recording keeps its proof; after a
withdrawal the ``consent_withdrawals`` row is the record that it was honoured.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from .audit import Actor, AuditEntry, AuditLog
from .errors import CatalogueError, LifecycleError, RecordingNotFoundError, translated
from .models import format_timestamp
from .phone import DEFAULT_REGION, number_key
from .scope import tenant_sql

__all__ = [
    "CONSENT_ACTOR",
    "ConsentLedger",
    "ConsentProof",
    "ProofOutcome",
    "RecordingConsent",
    "consent_state_after",
]

CONSENT_ACTOR = Actor(name="system:consent", origin="server")
_DIGITS = "0123456789*#ABCD"


class ProofOutcome(enum.StrEnum):
    """How the party answered (``consent_proofs.outcome``)."""

    GIVEN = "given"
    REFUSED = "refused"
    NO_ANSWER = "no_answer"  # the window elapsed without an answer
    STOPPED = "stopped"  # the stop key after consent was given: withdrawn during the call


class RecordingConsent(enum.StrEnum):
    """A recording's ``consent_state`` (the ``recordings_consent_state_known`` CHECK)."""

    NOT_REQUIRED = "not_required"  # the basis is not consent
    PENDING = "pending"
    GIVEN = "given"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"  # Art. 7(3): erased as soon as no hold keeps it


# The state a recording moves to, from "pending" or "given", on each outcome.
_AFTER: Mapping[ProofOutcome, RecordingConsent] = {
    ProofOutcome.GIVEN: RecordingConsent.GIVEN,
    ProofOutcome.REFUSED: RecordingConsent.REFUSED,
    ProofOutcome.NO_ANSWER: RecordingConsent.REFUSED,
    ProofOutcome.STOPPED: RecordingConsent.WITHDRAWN,
}


def consent_state_after(current: RecordingConsent, outcome: ProofOutcome) -> RecordingConsent:
    """The recording's consent state once ``outcome`` is recorded; :class:`LifecycleError` if it cannot follow.

    - A recording that does not ask for consent takes no proof.
    - Stopping needs consent given before it.
    - Refused and withdrawn are final: later answers (another party's) are kept as proof, the state stays.
    """
    if current is RecordingConsent.NOT_REQUIRED:
        raise LifecycleError("this recording's legal basis is not consent: it takes no consent proof")
    if current in (RecordingConsent.REFUSED, RecordingConsent.WITHDRAWN):
        return current
    if outcome is ProofOutcome.STOPPED and current is not RecordingConsent.GIVEN:
        raise LifecycleError("consent cannot be stopped before it was given")
    return _AFTER[outcome]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentProof:
    """One stored answer to the consent prompt."""

    id: int
    recording_id: UUID
    tenant_id: UUID | None
    number: str | None  # E.164 where it is a phone number, else as dialled
    prompt_version: str
    asked_at: datetime
    answered_at: datetime | None  # None: no answer
    digit: str | None
    outcome: ProofOutcome

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ConsentProof:
        return cls(
            id=row["id"],
            recording_id=row["recording_id"],
            tenant_id=row["tenant_id"],
            number=row["number"],
            prompt_version=row["prompt_version"],
            asked_at=row["asked_at"],
            answered_at=row["answered_at"],
            digit=row["digit"],
            outcome=ProofOutcome(row["outcome"]),
        )

    def to_json(self) -> dict[str, Any]:
        """What a copy for the data subject shows (Art. 15): the question, the answer and when."""
        return {
            "number": self.number,
            "prompt_version": self.prompt_version,
            "asked_at": format_timestamp(self.asked_at),
            "answered_at": format_timestamp(self.answered_at),
            "digit": self.digit,
            "outcome": self.outcome.value,
        }


_LOCK_RECORDING = f"""
    SELECT r.consent_state, r.reference, t.region
    FROM recordings r LEFT JOIN tenants t ON t.id = r.tenant_id
    WHERE r.id = $1 AND {tenant_sql("r.tenant_id", 2)}
    FOR UPDATE OF r
"""  # noqa: S608 (constant fragment)

_INSERT_PROOF = """
    INSERT INTO consent_proofs (recording_id, tenant_id, number, prompt_version, asked_at, answered_at, digit,
                                outcome)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    RETURNING *
"""

# A recording that will not be kept expires at the answer: the sweeper's safety net behind the discard.
_SET_STATE = """
    UPDATE recordings SET
        consent_state = $2,
        expires_at = CASE WHEN $3::timestamptz IS NULL THEN expires_at
                          ELSE LEAST(COALESCE(expires_at, $3::timestamptz), $3::timestamptz) END
    WHERE id = $1
"""

_PROOFS = f"""
    SELECT r.id AS recording_found, p.*
    FROM recordings r LEFT JOIN consent_proofs p ON p.recording_id = r.id
    WHERE r.id = $1 AND {tenant_sql("r.tenant_id", 2)}
    ORDER BY p.asked_at, p.id
"""  # noqa: S608


class ConsentLedger:
    """Stores consent proofs and keeps each recording's consent state; every change is audited.

    ``pool`` (asyncpg) serves :meth:`proofs`; :meth:`record` runs on the caller's connection, inside its
    transaction. ``tenant_id`` None means a recording no tenant claimed (decided by the system policy).
    """

    def __init__(self, pool: Any, *, audit: AuditLog) -> None:
        self._pool = pool
        self._audit = audit

    async def record(
        self,
        conn: Any,
        *,
        recording_id: UUID,
        tenant_id: UUID | None,
        number: str | None,
        prompt_version: str,
        asked_at: datetime,
        answered_at: datetime | None,
        digit: str | None,
        outcome: ProofOutcome | str,
    ) -> ConsentProof:
        """Store the answer of the party ``number`` (any written form; kept as E.164 in the tenant's region)
        and update the recording's consent state. A recording of another tenant is :class:`NotFoundError`."""
        outcome = _checked(outcome, asked_at=asked_at, answered_at=answered_at, digit=digit)
        if not prompt_version:
            raise ValueError("a consent proof names the prompt version that was played")
        if not conn.is_in_transaction():
            raise CatalogueError("a consent proof is stored inside the caller's transaction")
        with translated("store a consent proof"):
            found = await conn.fetchrow(_LOCK_RECORDING, recording_id, tenant_id)
            if found is None:
                raise RecordingNotFoundError(f"no recording {recording_id} for this tenant")
            before = RecordingConsent(found["consent_state"])
            after = consent_state_after(before, outcome)
            key = None if number is None else number_key(number, found["region"] or DEFAULT_REGION)
            row = await conn.fetchrow(
                _INSERT_PROOF,
                recording_id,
                tenant_id,
                key,
                prompt_version,
                asked_at,
                answered_at,
                digit,
                outcome.value,
            )
            expires = None if after is RecordingConsent.GIVEN else (answered_at or asked_at)
            await conn.execute(_SET_STATE, recording_id, after.value, expires)
        proof = ConsentProof.from_row(row)
        await self._audit.append(
            conn,
            AuditEntry(
                actor=CONSENT_ACTOR,
                action=f"consent.{outcome.value}",
                tenant_id=tenant_id,
                object_kind="recording",
                object_id=str(recording_id),
                details={
                    "proof_id": proof.id,
                    "reference": found["reference"],
                    "prompt_version": prompt_version,
                    "digit": digit,
                    "asked_at": _iso(asked_at),
                    "answered_at": None if answered_at is None else _iso(answered_at),
                    "consent_state": {"old": before.value, "new": after.value},
                },
            ),
        )
        return proof

    async def proofs(
        self, recording_id: UUID, *, tenant_id: UUID | None, actor: Actor | None = None
    ) -> list[ConsentProof]:
        """The recording's proofs, oldest first. Pass ``actor`` when a person looks at them (audited as
        ``consent.view``); leave it out when the caller audits its own action (an access-request export)."""
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("read consent proofs"):
                rows = await conn.fetch(_PROOFS, recording_id, tenant_id)
            if not rows:
                raise RecordingNotFoundError(f"no recording {recording_id} for this tenant")
            proofs = [ConsentProof.from_row(row) for row in rows if row["id"] is not None]
            if actor is not None:
                await self._audit.append(
                    conn,
                    AuditEntry(
                        actor=actor,
                        action="consent.view",
                        tenant_id=tenant_id,
                        object_kind="recording",
                        object_id=str(recording_id),
                        details={"proofs": len(proofs)},
                    ),
                )
        return proofs


def _checked(
    outcome: ProofOutcome | str, *, asked_at: datetime, answered_at: datetime | None, digit: str | None
) -> ProofOutcome:
    """The outcome as an enum, once the proof's fields agree with it (a misuse raises ValueError)."""
    outcome = ProofOutcome(outcome)
    for name, moment in (("asked_at", asked_at), ("answered_at", answered_at)):
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware")
    if outcome is ProofOutcome.NO_ANSWER:
        if answered_at is not None or digit is not None:
            raise ValueError("a proof of no answer has no answer time and no digit")
        return outcome
    if answered_at is None or digit is None:
        raise ValueError(f"a proof of {outcome.value!r} needs the answer time and the digit pressed")
    if len(digit) != 1 or digit not in _DIGITS:
        raise ValueError(f"not a DTMF key: {digit!r}")
    if answered_at < asked_at:
        raise ValueError("consent cannot be answered before it was asked")
    return outcome


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
