"""The number keys of recordings made before the catalogue kept them, so a data-subject search finds them too.

Since migration 0004 every recording carries ``numbers``: the E.164 keys of its calling and called parties
(``storage.decision``), which the access-request and portal searches match (GDPR Art. 15: a controller must find
every recording of the person asking). Recordings catalogued before have ``numbers = '{}'``. This fills them in
by the same rule as call setup: the calling and called number of the call's facts (``call_facts``), read in the
tenant's region (the default region for calls no tenant claimed), falling back to the participants' addresses
when the facts name no number (the oldest rows). A row that names no number at all stays empty.

Rows are walked in id order in batches (``FOR UPDATE SKIP LOCKED``: several nodes starting at once share the work)
and each is updated only while still empty. The server runs it once at start; it costs one index-free scan when
there is nothing left to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from .errors import translated
from .number_keys import party_key
from .phone import DEFAULT_REGION

__all__ = ["backfill_numbers", "numbers_of"]

_PENDING = """
    SELECT rec.id, rec.call_facts, rec.participants, t.region
    FROM recordings rec LEFT JOIN tenants t ON t.id = rec.tenant_id
    WHERE rec.numbers = '{}' AND rec.id > $1
    ORDER BY rec.id
    LIMIT $2
    FOR UPDATE OF rec SKIP LOCKED
"""
_FILL = "UPDATE recordings SET numbers = $2 WHERE id = $1 AND numbers = '{}'"
_FIRST = UUID(int=0)


def numbers_of(
    call_facts: Mapping[str, Any], participants: Iterable[Mapping[str, Any]], region: str
) -> list[str]:
    """The number keys call setup would have stored: calling and called number; else the participants'."""
    texts = [_fact(call_facts, "calling_number"), _fact(call_facts, "called_number")]
    found = [text for text in texts if text]
    if not found:
        found = [str(p["aor"]) for p in participants if isinstance(p, Mapping) and p.get("aor")]
    keys = (party_key(text, region) for text in found)
    return list(dict.fromkeys(key for key in keys if key))


async def backfill_numbers(pool: Any, *, batch: int = 500) -> int:
    """Fill ``numbers`` of every recording that has none and names a number; how many were filled."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    filled = 0
    after = _FIRST
    while True:
        with translated("fill in the number keys of older recordings"):
            async with pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(_PENDING, after, batch)
                for row in rows:
                    keys = numbers_of(row["call_facts"], row["participants"], row["region"] or DEFAULT_REGION)
                    if keys and (await conn.execute(_FILL, row["id"], keys)).endswith(" 1"):
                        filled += 1
        if len(rows) < batch:
            return filled
        after = rows[-1]["id"]


def _fact(call_facts: Mapping[str, Any], name: str) -> str | None:
    fact = call_facts.get(name)
    value = fact.get("value") if isinstance(fact, Mapping) else None
    return str(value) if value else None
