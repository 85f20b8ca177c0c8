"""Older recordings get their number keys, so a search by a caller's number finds them (GDPR Art. 15)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from storage.numbers_backfill import backfill_numbers, numbers_of
from storage.reference import new_reference
from tests.unit.storage.retention_samples import make_tenant


async def old_recording(
    pool: asyncpg.Pool, *, tenant_id: UUID | None, facts: dict[str, Any], participants: list[dict[str, Any]]
) -> UUID:
    """A row as a version before number keys left it: facts and participants, ``numbers`` empty."""
    recording_id = uuid4()
    await pool.execute(
        """
        INSERT INTO recordings (id, reference, call_id, status, started_at, participants, call_facts, tenant_id)
        VALUES ($1, $2, $3, 'complete', now(), $4::jsonb, $5::jsonb, $6)
        """,
        recording_id,
        new_reference(),
        f"{uuid4().hex}@pbx.example.hu",
        participants,
        facts,
        tenant_id,
    )
    return recording_id


def fact(value: str) -> dict[str, Any]:
    return {"value": value, "source": "participant", "confidence": "high"}


async def numbers(pool: asyncpg.Pool, recording_id: UUID) -> list[str]:
    return list(await pool.fetchval("SELECT numbers FROM recordings WHERE id = $1", recording_id))


def test_the_keys_are_those_call_setup_stores() -> None:
    facts = {
        "calling_number": fact("06 1 234 5678"),
        "called_number": fact("sip:+3613456789@sbc1.example.hu"),
    }
    assert numbers_of(facts, [], "HU") == ["+3612345678", "+3613456789"]
    # No numbers among the facts: the participants' addresses (extensions are kept as dialled).
    participants = [
        {"aor": "sip:+36301234567@pbx.example.hu"},
        {"aor": "sip:201@pbx.example.hu"},
        {"name": "x"},
    ]
    assert numbers_of({}, participants, "HU") == ["+36301234567", "201"]
    assert numbers_of({"calling_number": fact("anonymous")}, [{"aor": "sip:alice@example.com"}], "HU") == []


async def test_older_recordings_are_filled_in_the_tenants_region_and_found_by_number(
    pool: asyncpg.Pool,
) -> None:
    vienna = await make_tenant(pool, "wien-gmbh", region="AT")
    budapest = await make_tenant(pool, "acme-kft")
    national = await old_recording(
        pool, tenant_id=vienna, facts={"calling_number": fact("01 5880 0")}, participants=[]
    )
    hungarian = await old_recording(
        pool,
        tenant_id=budapest,
        facts={"calling_number": fact("06-1-234-5678"), "called_number": fact("+36 30 123 4567")},
        participants=[],
    )
    oldest = await old_recording(
        pool, tenant_id=None, facts={}, participants=[{"aor": "tel:+36-1-234-5678", "role": "caller"}]
    )
    nameless = await old_recording(pool, tenant_id=None, facts={}, participants=[{"name": "Reception"}])

    assert await backfill_numbers(pool, batch=2) == 3
    assert await numbers(pool, national) == ["+43158800"]  # Vienna's 01 read in Austria
    assert await numbers(pool, hungarian) == ["+3612345678", "+36301234567"]
    assert await numbers(pool, oldest) == ["+3612345678"]
    assert await numbers(pool, nameless) == []
    found = await pool.fetch("SELECT id FROM recordings WHERE numbers @> ARRAY['+3612345678'] ORDER BY id")
    assert {row["id"] for row in found} == {hungarian, oldest}

    assert await backfill_numbers(pool) == 0  # nothing left: a second start changes nothing


async def test_rows_that_have_keys_are_never_changed_and_two_nodes_share_the_work(pool: asyncpg.Pool) -> None:
    kept = await old_recording(
        pool, tenant_id=None, facts={"calling_number": fact("+3612345678")}, participants=[]
    )
    await pool.execute("UPDATE recordings SET numbers = ARRAY['+3619999999'] WHERE id = $1", kept)
    pending = [
        await old_recording(
            pool, tenant_id=None, facts={"calling_number": fact(f"+3612345{i:03d}")}, participants=[]
        )
        for i in range(30)
    ]
    filled = await asyncio.gather(backfill_numbers(pool, batch=4), backfill_numbers(pool, batch=4))
    assert sum(filled) == 30
    assert await numbers(pool, kept) == ["+3619999999"]
    assert [await numbers(pool, r) for r in pending] == [[f"+3612345{i:03d}"] for i in range(30)]
