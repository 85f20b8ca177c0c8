"""Consent proofs: stored with every field, the recording's consent state moved on, each change audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import Catalogue
from storage.audit import Actor, AuditLog, StoredEntry
from storage.consent import (
    ConsentLedger,
    ConsentProof,
    ProofOutcome,
    RecordingConsent,
    consent_state_after,
)
from storage.errors import CatalogueError, LifecycleError, NotFoundError, RecordingNotFoundError
from tests.unit.storage.samples import STARTED_AT, new_recording

ASKED = STARTED_AT + timedelta(seconds=6, milliseconds=420)  # the prompt ended 6.42 s into the call
ANSWERED = ASKED + timedelta(seconds=3, milliseconds=200)
AUDIT_AT = datetime(2026, 11, 28, 14, 3, 20, tzinfo=UTC)
CONSENT_DAYS = 365


async def _tenant(pool: asyncpg.Pool, slug: str = "acme-kft", region: str = "HU") -> UUID:
    tenant_id = uuid4()
    await pool.execute(
        "INSERT INTO tenants (id, slug, name, region) VALUES ($1, $2, $3, $4)",
        tenant_id,
        slug,
        f"{slug} ügyfélszolgálat",
        region,
    )
    return tenant_id


async def _consent_recording(
    pool: asyncpg.Pool, tenant_id: UUID | None, *, state: str = "pending", call_id: str = "a@192.0.2.10"
) -> UUID:
    """A call recorded under a consent policy, as call setup leaves it: basis, class, expiry, state pending."""
    recording = await Catalogue(pool).create(new_recording(call_id=call_id, session_ids=[], group_ids=[]))
    await pool.execute(
        """
        UPDATE recordings SET tenant_id = $2, basis = 'consent', purpose = 'customer service',
            retention_class_id = (SELECT id FROM retention_classes WHERE tenant_id IS NULL AND code = 'consent'),
            expires_at = started_at + make_interval(days => $3), consent_state = $4,
            numbers = ARRAY['+3612345678', '+36301234567']
        WHERE id = $1
        """,
        recording.id,
        tenant_id,
        CONSENT_DAYS,
        state,
    )
    return recording.id


def _ledger(pool: asyncpg.Pool) -> ConsentLedger:
    return ConsentLedger(pool, audit=AuditLog(clock=lambda: AUDIT_AT))


async def _record(pool: asyncpg.Pool, ledger: ConsentLedger, **fields: object) -> ConsentProof:
    async with pool.acquire() as conn, conn.transaction():
        return await ledger.record(conn, **fields)  # type: ignore[arg-type]


def _answer(recording_id: UUID, tenant_id: UUID | None, **overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "recording_id": recording_id,
        "tenant_id": tenant_id,
        "number": "06 1 234 5678",
        "prompt_version": "hu-2026-11",
        "asked_at": ASKED,
        "answered_at": ANSWERED,
        "digit": "1",
        "outcome": ProofOutcome.GIVEN,
    }
    fields.update(overrides)
    return fields


async def _state(pool: asyncpg.Pool, recording_id: UUID) -> tuple[str, datetime]:
    row = await pool.fetchrow("SELECT consent_state, expires_at FROM recordings WHERE id = $1", recording_id)
    assert row is not None
    return row["consent_state"], row["expires_at"]


async def _audit(pool: asyncpg.Pool) -> list[StoredEntry]:
    return [StoredEntry.from_row(row) for row in await pool.fetch("SELECT * FROM audit_log ORDER BY seq")]


async def test_yes_stores_the_proof_with_every_field_and_keeps_the_recording(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    ledger = _ledger(pool)
    proof = await _record(pool, ledger, **_answer(recording_id, tenant))
    assert proof == ConsentProof(
        id=proof.id,
        recording_id=recording_id,
        tenant_id=tenant,
        number="+3612345678",  # "06 1 234 5678" read in the tenant's region
        prompt_version="hu-2026-11",
        asked_at=ASKED,
        answered_at=ANSWERED,
        digit="1",
        outcome=ProofOutcome.GIVEN,
    )
    assert await ledger.proofs(recording_id, tenant_id=tenant) == [proof]
    assert await _state(pool, recording_id) == ("given", STARTED_AT + timedelta(days=CONSENT_DAYS))

    [entry] = await _audit(pool)
    assert (entry.actor, entry.origin, entry.action) == ("system:consent", "server", "consent.given")
    assert (entry.tenant_id, entry.object_kind, entry.object_id) == (tenant, "recording", str(recording_id))
    assert entry.at == AUDIT_AT
    reference = await pool.fetchval("SELECT reference FROM recordings WHERE id = $1", recording_id)
    assert entry.details == {
        "proof_id": proof.id,
        "reference": reference,
        "prompt_version": "hu-2026-11",
        "digit": "1",
        "asked_at": "2026-11-28T14:03:13.670000+00:00",
        "answered_at": "2026-11-28T14:03:16.870000+00:00",
        "consent_state": {"old": "pending", "new": "given"},
    }
    assert "+3612345678" not in str(entry.details)  # the audit trail outlives the recording: no number in it
    assert entry.expected_hash() == entry.hash


async def test_no_refuses_and_the_recording_expires_at_the_answer(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    ledger = _ledger(pool)
    proof = await _record(
        pool, ledger, **_answer(recording_id, tenant, digit="2", outcome="refused", number="+36 30 123 4567")
    )
    assert (proof.outcome, proof.digit, proof.number) == (ProofOutcome.REFUSED, "2", "+36301234567")
    assert await _state(pool, recording_id) == ("refused", ANSWERED)
    assert [entry.action for entry in await _audit(pool)] == ["consent.refused"]


async def test_silence_is_stored_as_no_answer_and_refuses(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    ledger = _ledger(pool)
    proof = await _record(
        pool, ledger, **_answer(recording_id, tenant, answered_at=None, digit=None, outcome="no_answer")
    )
    assert (proof.outcome, proof.answered_at, proof.digit) == (ProofOutcome.NO_ANSWER, None, None)
    assert await _state(pool, recording_id) == ("refused", ASKED)
    [entry] = await _audit(pool)
    assert entry.action == "consent.no_answer"
    assert (entry.details["digit"], entry.details["answered_at"]) == (None, None)


async def test_the_stop_key_after_yes_withdraws(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    ledger = _ledger(pool)
    yes = await _record(pool, ledger, **_answer(recording_id, tenant))
    stopped_at = ASKED + timedelta(seconds=187, milliseconds=600)
    stop = await _record(
        pool, ledger, **_answer(recording_id, tenant, answered_at=stopped_at, digit="9", outcome="stopped")
    )
    assert await ledger.proofs(recording_id, tenant_id=tenant) == [yes, stop]
    assert await _state(pool, recording_id) == ("withdrawn", stopped_at)
    entries = await _audit(pool)
    assert [entry.action for entry in entries] == ["consent.given", "consent.stopped"]
    assert entries[1].details["consent_state"] == {"old": "given", "new": "withdrawn"}


async def test_stopping_without_consent_given_is_refused_and_stores_nothing(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    ledger = _ledger(pool)
    with pytest.raises(LifecycleError, match="before it was given"):
        await _record(pool, ledger, **_answer(recording_id, tenant, digit="9", outcome="stopped"))
    assert await ledger.proofs(recording_id, tenant_id=tenant) == []
    assert await _state(pool, recording_id) == ("pending", STARTED_AT + timedelta(days=CONSENT_DAYS))
    assert await _audit(pool) == []


async def test_a_recording_that_does_not_ask_for_consent_takes_no_proof(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant, state="not_required")
    with pytest.raises(LifecycleError, match="not consent"):
        await _record(pool, _ledger(pool), **_answer(recording_id, tenant))
    assert await pool.fetchval("SELECT count(*) FROM consent_proofs") == 0


async def test_a_refusal_stays_when_another_party_agrees_later(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    ledger = _ledger(pool)
    await _record(pool, ledger, **_answer(recording_id, tenant, digit="2", outcome="refused"))
    later = ANSWERED + timedelta(seconds=2)
    await _record(pool, ledger, **_answer(recording_id, tenant, number="+36301234567", answered_at=later))
    assert await _state(pool, recording_id) == ("refused", ANSWERED)
    assert [p.outcome for p in await ledger.proofs(recording_id, tenant_id=tenant)] == [
        ProofOutcome.REFUSED,
        ProofOutcome.GIVEN,
    ]


async def test_another_tenants_recording_is_not_found(pool: asyncpg.Pool) -> None:
    acme = await _tenant(pool, "acme-kft")
    other = await _tenant(pool, "masik-bt")
    recording_id = await _consent_recording(pool, acme)
    ledger = _ledger(pool)
    with pytest.raises(RecordingNotFoundError):
        await _record(pool, ledger, **_answer(recording_id, other))
    with pytest.raises(NotFoundError):
        await _record(pool, ledger, **_answer(recording_id, None))  # not a system recording either
    await _record(pool, ledger, **_answer(recording_id, acme))
    with pytest.raises(NotFoundError):
        await ledger.proofs(recording_id, tenant_id=other)
    with pytest.raises(NotFoundError):
        await ledger.proofs(uuid4(), tenant_id=acme)
    assert await _state(pool, recording_id) == ("given", STARTED_AT + timedelta(days=CONSENT_DAYS))


async def test_a_call_no_tenant_claimed_is_recorded_under_no_tenant(pool: asyncpg.Pool) -> None:
    recording_id = await _consent_recording(pool, None)
    ledger = _ledger(pool)
    proof = await _record(pool, ledger, **_answer(recording_id, None, number="sip:201@pbx.example.hu"))
    assert (proof.tenant_id, proof.number) == (None, "201")  # an extension stays as dialled
    assert await ledger.proofs(recording_id, tenant_id=None) == [proof]
    [entry] = await _audit(pool)
    assert entry.tenant_id is None


async def test_numbers_are_read_in_the_tenants_region(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool, "wien-gmbh", region="AT")
    recording_id = await _consent_recording(pool, tenant)
    proof = await _record(pool, _ledger(pool), **_answer(recording_id, tenant, number="01 58858 0"))
    assert proof.number == "+431588580"


async def test_an_unknown_party_number_is_stored_as_none(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    proof = await _record(pool, _ledger(pool), **_answer(recording_id, tenant, number=None))
    assert proof.number is None


async def test_looking_at_proofs_is_audited_when_a_person_looks(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    ledger = _ledger(pool)
    await _record(pool, ledger, **_answer(recording_id, tenant))
    dpo = Actor(name="dpo@acme.hu", origin="198.51.100.23")
    assert len(await ledger.proofs(recording_id, tenant_id=tenant, actor=dpo)) == 1
    entries = await _audit(pool)
    assert [(e.action, e.actor, e.origin) for e in entries] == [
        ("consent.given", "system:consent", "server"),
        ("consent.view", "dpo@acme.hu", "198.51.100.23"),
    ]
    assert entries[1].details == {"proofs": 1}


async def test_proofs_go_with_their_recording(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    await _record(pool, _ledger(pool), **_answer(recording_id, tenant))
    await pool.execute("DELETE FROM recordings WHERE id = $1", recording_id)
    assert await pool.fetchval("SELECT count(*) FROM consent_proofs") == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"digit": "X"}, "not a DTMF key"),
        ({"digit": "12"}, "not a DTMF key"),
        ({"digit": None}, "needs the answer time and the digit"),
        ({"answered_at": None}, "needs the answer time and the digit"),
        ({"outcome": "no_answer"}, "no answer time and no digit"),
        ({"outcome": "maybe"}, "maybe"),
        ({"answered_at": ASKED - timedelta(seconds=1)}, "before it was asked"),
        ({"asked_at": ASKED.replace(tzinfo=None)}, "timezone-aware"),
        ({"prompt_version": ""}, "prompt version"),
    ],
)
async def test_a_malformed_proof_is_refused_before_anything_is_written(
    pool: asyncpg.Pool, overrides: dict[str, object], message: str
) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    with pytest.raises(ValueError, match=message):
        await _record(pool, _ledger(pool), **_answer(recording_id, tenant, **overrides))
    assert await pool.fetchval("SELECT count(*) FROM consent_proofs") == 0
    assert await _state(pool, recording_id) == ("pending", STARTED_AT + timedelta(days=CONSENT_DAYS))


async def test_a_proof_is_stored_only_inside_a_transaction(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    async with pool.acquire() as conn:
        with pytest.raises(CatalogueError, match="transaction"):
            await _ledger(pool).record(conn, **_answer(recording_id, tenant))  # type: ignore[arg-type]


async def test_a_proof_rolls_back_with_the_callers_transaction(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    recording_id = await _consent_recording(pool, tenant)
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await _ledger(pool).record(conn, **_answer(recording_id, tenant))  # type: ignore[arg-type]
            raise RuntimeError("the call-setup step after it failed")
    assert await pool.fetchval("SELECT count(*) FROM consent_proofs") == 0
    assert await _audit(pool) == []
    assert (await _state(pool, recording_id))[0] == "pending"


# The state rule, for any history of outcomes ----------------------------------------------------------------

_LIVE = [RecordingConsent.PENDING, RecordingConsent.GIVEN]


@given(outcomes=st.lists(st.sampled_from(list(ProofOutcome)), max_size=8))
def test_the_consent_state_never_returns_to_given_once_refused_or_withdrawn(
    outcomes: list[ProofOutcome],
) -> None:
    state = RecordingConsent.PENDING
    seen_given = False
    for outcome in outcomes:
        try:
            after = consent_state_after(state, outcome)
        except LifecycleError:
            assert outcome is ProofOutcome.STOPPED and state is RecordingConsent.PENDING
            continue
        if state not in _LIVE:
            assert after is state  # refused and withdrawn are final
        elif outcome is ProofOutcome.GIVEN:
            assert after is RecordingConsent.GIVEN
        elif outcome is ProofOutcome.STOPPED:
            assert seen_given and after is RecordingConsent.WITHDRAWN
        else:
            assert after is RecordingConsent.REFUSED
        seen_given = seen_given or after is RecordingConsent.GIVEN
        state = after


@pytest.mark.parametrize("outcome", list(ProofOutcome))
def test_a_recording_without_consent_basis_accepts_no_outcome(outcome: ProofOutcome) -> None:
    with pytest.raises(LifecycleError):
        consent_state_after(RecordingConsent.NOT_REQUIRED, outcome)
