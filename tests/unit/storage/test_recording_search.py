"""Recording search (storage.recording_search) on the real catalogue: numbers in any written form, the other
filters, keyset pages, tenant isolation, cursors, and the plans PostgreSQL picks on a realistic table."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from storage import Catalogue, NewRecording, ParticipantRecord, ParticipantRole, RecordingStatus
from storage.errors import NotFoundError
from storage.recording_search import (
    MAX_LIMIT,
    CallDirection,
    RecordingQuery,
    decode_cursor,
    encode_cursor,
    get_recording,
    search,
)
from tests.unit.storage.retention_samples import make_tenant
from tests.unit.storage.samples import CALLEE, CALLER, METADATA, answered_streams

T0 = datetime(2026, 11, 28, 14, 3, 7, 250_000, tzinfo=UTC)
RECORDED = "+3612345678"  # how the metadata normaliser stored the Budapest landline


async def add_call(
    pool: asyncpg.Pool,
    tenant_id: UUID | None,
    *,
    started_at: datetime = T0,
    numbers: tuple[str, ...] = (RECORDED, "+36301234567"),
    participants: tuple[ParticipantRecord, ...] = (CALLER, CALLEE),
    direction: str | None = "inbound",
    class_code: str | None = "quality_60d",
) -> UUID:
    """A recorded call as call setup writes it: tenant, numbers, participants and the metadata's call facts."""
    facts: dict[str, Any] = {
        "calling_number": {"value": numbers[0], "raw": f"sip:{numbers[0]}@pbx.example.hu", "source": "x"}
    }
    if direction is not None:
        facts["direction"] = {"value": direction, "raw": direction, "source": "broadworks:callType"}
    class_id = None
    if class_code is not None:
        class_id = await pool.fetchval(
            "SELECT id FROM retention_classes WHERE code = $1 AND tenant_id IS NULL", class_code
        )
    created = await Catalogue(pool).create(
        NewRecording(
            call_id=f"{uuid4().hex}@pbx.example.hu",
            started_at=started_at,
            session_ids=[secrets.token_urlsafe(16)],
            participants=participants,
            streams=answered_streams(),
            channels=2,
            sample_rate=8000,
            format="flac",
            raw_metadata=METADATA,
            source_address="udp:192.0.2.10:5060",
            call_facts=facts,
            tenant_id=tenant_id,
            basis="legitimate_interest",
            purpose="quality assurance",
            retention_class_id=class_id,
            numbers=numbers,
        )
    )
    return created.id


async def ids(pool: asyncpg.Pool, tenant_id: UUID, query: RecordingQuery, **kwargs: Any) -> list[UUID]:
    page = await search(pool, tenant_id, query, **kwargs)
    return [recording.id for recording in page.items]


@pytest.fixture
async def acme(pool: asyncpg.Pool) -> UUID:
    return await make_tenant(pool, "acme")


@pytest.mark.parametrize(
    "written",
    [
        "06 1 234 5678",
        "+36 1 234 5678",
        "0036 1 234 5678",
        "36 1 234 5678",
        "(06-1) 234-5678",
        "06/1/234-5678",
        "+3612345678",
        "tel:+36-1-234-5678",
        "tel:0612345678;phone-context=+36",
        "sip:+3612345678@pbx.example.hu",
    ],
)
async def test_a_number_in_every_written_form_finds_the_call_recorded_in_e164(
    pool: asyncpg.Pool, acme: UUID, written: str
) -> None:
    call = await add_call(pool, acme, numbers=(RECORDED, "+36301234567"))
    await add_call(pool, acme, numbers=("+3613456789", "+36301234567"), started_at=T0 + timedelta(hours=1))
    assert await ids(pool, acme, RecordingQuery(number=written)) == [call]


async def test_numbers_without_a_country_code_are_read_in_the_tenant_region(pool: asyncpg.Pool) -> None:
    berlin = await make_tenant(pool, "berlin-gmbh", region="DE")
    call = await add_call(pool, berlin, numbers=("+493012345678", "+4917612345678"))
    assert await ids(pool, berlin, RecordingQuery(number="030 12345678")) == [call]
    assert await ids(pool, berlin, RecordingQuery(number="06 1 234 5678")) == []  # +49 6 1…, not Budapest


async def test_an_extension_matches_itself_and_text_that_holds_no_number_is_refused(
    pool: asyncpg.Pool, acme: UUID
) -> None:
    call = await add_call(pool, acme, numbers=(RECORDED, "201"))
    assert await ids(pool, acme, RecordingQuery(number="sip:201@pbx.example.hu")) == [call]
    with pytest.raises(ValueError, match="not a phone number"):
        await search(pool, acme, RecordingQuery(number="Kovács"))


async def test_a_number_search_of_a_tenant_that_does_not_exist_is_not_found(pool: asyncpg.Pool) -> None:
    with pytest.raises(NotFoundError):
        await search(pool, uuid4(), RecordingQuery(number="06 1 234 5678"))


async def test_reference_is_exact_in_any_case(pool: asyncpg.Pool, acme: UUID) -> None:
    call = await add_call(pool, acme)
    await add_call(pool, acme, started_at=T0 + timedelta(minutes=5))
    reference = (await Catalogue(pool).get(call)).reference  # type: ignore[union-attr]
    assert await ids(pool, acme, RecordingQuery(reference=reference.lower())) == [call]
    assert await ids(pool, acme, RecordingQuery(reference=f"  {reference.replace('-', ' ')} ")) == [call]
    assert await ids(pool, acme, RecordingQuery(reference=reference[:7])) == []  # no prefix match
    assert await ids(pool, acme, RecordingQuery(reference="HT-ZZZZ-ZZZZ")) == []


async def test_participant_matches_a_substring_of_a_name_or_an_address(
    pool: asyncpg.Pool, acme: UUID
) -> None:
    first = await add_call(pool, acme)
    other = await add_call(
        pool,
        acme,
        started_at=T0 + timedelta(minutes=1),
        participants=(
            ParticipantRecord(
                aor="sip:+3619876543@sbc.carrier.hu", name="Nagy Péter", role=ParticipantRole.CALLER
            ),
            ParticipantRecord(aor="sip:ugyfelszolgalat@acme.hu", name=None, role=ParticipantRole.CALLEE),
        ),
        numbers=("+3619876543",),
    )
    assert await ids(pool, acme, RecordingQuery(participant="kovács")) == [first]
    assert await ids(pool, acme, RecordingQuery(participant="SZABÓ GERGŐ")) == [first]
    assert await ids(pool, acme, RecordingQuery(participant="ugyfelszolgalat@acme")) == [other]
    assert await ids(pool, acme, RecordingQuery(participant="example.hu")) == [first]
    # LIKE wildcards are literal characters, and the stored role names are not searched.
    assert await ids(pool, acme, RecordingQuery(participant="%")) == []
    assert await ids(pool, acme, RecordingQuery(participant="_")) == []
    assert await ids(pool, acme, RecordingQuery(participant="callee")) == []
    # One name or one address: never a stretch across two of them.
    assert await ids(pool, acme, RecordingQuery(participant="Éva sip")) == []
    assert await ids(pool, acme, RecordingQuery(participant="Éva Szabó")) == []


async def test_time_window_status_class_and_direction(pool: asyncpg.Pool, acme: UUID) -> None:
    early = await add_call(pool, acme, started_at=T0, direction="inbound")
    middle = await add_call(pool, acme, started_at=T0 + timedelta(hours=1), direction="outbound")
    late = await add_call(
        pool, acme, started_at=T0 + timedelta(hours=2), direction=None, class_code="financial_complaints"
    )
    await Catalogue(pool).mark_status(middle, RecordingStatus.FAILED)
    window = RecordingQuery(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
    assert await ids(pool, acme, window) == [middle]  # since inclusive, until exclusive
    assert await ids(pool, acme, RecordingQuery(since=T0 + timedelta(minutes=1))) == [late, middle]
    assert await ids(pool, acme, RecordingQuery(status=RecordingStatus.FAILED)) == [middle]
    assert await ids(pool, acme, RecordingQuery(retention_class="FINANCIAL_complaints")) == [late]
    assert await ids(pool, acme, RecordingQuery(retention_class="quality_60d")) == [middle, early]
    assert await ids(pool, acme, RecordingQuery(retention_class="no_such_class")) == []
    assert await ids(pool, acme, RecordingQuery(direction=CallDirection.OUTBOUND)) == [middle]
    assert await ids(pool, acme, RecordingQuery(direction=CallDirection.INBOUND, number="06 1 234 5678")) == [
        early
    ]
    assert await ids(pool, acme, RecordingQuery()) == [late, middle, early]


def test_a_query_validates_what_it_is_given() -> None:
    assert RecordingQuery(number="  ", participant="").number is None
    assert RecordingQuery(status="failed").status is RecordingStatus.FAILED  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="since must be earlier than until"):
        RecordingQuery(since=T0, until=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        RecordingQuery(since=datetime(2026, 11, 28))
    with pytest.raises(ValueError):
        RecordingQuery(direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="longer than"):
        RecordingQuery(participant="x" * 201)
    for text in ("Kovács\x00", "Éva\nsip", "\x1b[31mKovács"):
        with pytest.raises(ValueError, match="control character"):
            RecordingQuery(participant=text)


async def test_pages_return_every_row_exactly_once_even_with_equal_start_times(
    pool: asyncpg.Pool, acme: UUID
) -> None:
    expected: list[tuple[datetime, UUID]] = []
    for minute in range(8):
        # three calls forked at the same instant (a ring group), then one alone
        for _ in range(3 if minute % 2 == 0 else 1):
            started = T0 + timedelta(minutes=minute)
            expected.append((started, await add_call(pool, acme, started_at=started)))
    expected.sort(reverse=True)
    seen: list[UUID] = []
    cursor = None
    pages = 0
    while True:
        page = await search(pool, acme, RecordingQuery(), cursor=cursor, limit=4)
        pages += 1
        seen.extend(recording.id for recording in page.items)
        if pages == 2:  # a call recorded meanwhile, newer than every page: it shifts nothing
            await add_call(pool, acme, started_at=T0 + timedelta(days=1))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [recording_id for _, recording_id in expected]
    assert pages == 4  # 16 rows, 4 a page: the last full page says there is no more


async def test_a_page_that_ends_exactly_at_the_last_row_has_no_next_cursor(
    pool: asyncpg.Pool, acme: UUID
) -> None:
    for minute in range(3):
        await add_call(pool, acme, started_at=T0 + timedelta(minutes=minute))
    assert (await search(pool, acme, RecordingQuery(), limit=3)).next_cursor is None
    page = await search(pool, acme, RecordingQuery(), limit=2)
    assert page.next_cursor is not None
    rest = await search(pool, acme, RecordingQuery(), cursor=page.next_cursor, limit=2)
    assert len(rest.items) == 1 and rest.next_cursor is None


async def test_only_the_tenants_own_recordings_are_found(pool: asyncpg.Pool, acme: UUID) -> None:
    other = await make_tenant(pool, "globex")
    own = await add_call(pool, acme)
    foreign = await add_call(pool, other)
    unclaimed = await add_call(pool, None)
    assert await ids(pool, acme, RecordingQuery()) == [own]
    assert await ids(pool, acme, RecordingQuery(number="06 1 234 5678")) == [own]
    assert await ids(pool, other, RecordingQuery(participant="Kovács")) == [foreign]
    assert await get_recording(pool, acme, own) is not None
    for not_ours in (foreign, unclaimed):
        assert await get_recording(pool, acme, not_ours) is None
        reference = (await Catalogue(pool).get(not_ours)).reference  # type: ignore[union-attr]
        assert await get_recording(pool, acme, reference) is None
        assert await ids(pool, acme, RecordingQuery(reference=reference)) == []
    # A cursor carries no tenant: one made from another tenant's row pages the caller's own rows only.
    cursor = encode_cursor(T0 + timedelta(days=1), foreign)
    assert await ids(pool, acme, RecordingQuery(), cursor=cursor) == [own]


async def test_get_recording_by_id_reference_or_typed_reference(pool: asyncpg.Pool, acme: UUID) -> None:
    call = await add_call(pool, acme)
    recording = await get_recording(pool, acme, str(call))
    assert recording is not None and recording.retention_class == "quality_60d"
    assert (await get_recording(pool, acme, recording.reference.lower().replace("0", "o"))) == recording
    assert await get_recording(pool, acme, "not-a-reference") is None


@pytest.mark.parametrize(
    "cursor",
    ["", "garbage", "!!!!", "a" * 200, "Zm9v", "é" * 10],
)
async def test_a_malformed_cursor_is_refused_with_a_clear_message(
    pool: asyncpg.Pool, acme: UUID, cursor: str
) -> None:
    with pytest.raises(ValueError, match="cursor is malformed or was altered"):
        await search(pool, acme, RecordingQuery(), cursor=cursor)


def test_an_altered_or_cut_cursor_is_refused_and_a_good_one_round_trips() -> None:
    recording_id = UUID("0b7e4a52-9d51-4f6c-a0a8-3c1d2b4e5f60")
    good = encode_cursor(T0, recording_id)
    assert decode_cursor(good) == (T0, recording_id)
    assert decode_cursor(encode_cursor(T0.astimezone(), recording_id))[0] == T0
    altered = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]
    for bad in (altered, good[:-2], good + "AA"):
        with pytest.raises(ValueError, match="cursor"):
            decode_cursor(bad)


async def test_limit_must_be_within_bounds(pool: asyncpg.Pool, acme: UUID) -> None:
    for limit in (0, MAX_LIMIT + 1):
        with pytest.raises(ValueError, match="limit"):
            await search(pool, acme, RecordingQuery(), limit=limit)


# -- the plans on a table of realistic size ------------------------------------------------------------------------
class SqlSpy:
    """The pool, noting each statement it runs, so that the test can ask PostgreSQL how it plans them."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self.statements.append((sql, args))
        return await self._pool.fetch(sql, *args)  # type: ignore[no-any-return]

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._pool.fetchrow(sql, *args)


# 20,000 calls of two tenants recorded side by side, one a minute, newest first: every fifth is acme's ($1),
# the rest globex's ($2). Each call carries the caller's number (callers call again, some both tenants) and
# the DID it reached: one of acme's 3, or of globex's 40.
_SEED = """
    INSERT INTO recordings (id, reference, call_id, status, started_at, tenant_id, numbers, participants,
                            call_facts, retention_class_id)
    SELECT gen_random_uuid(),
           'HT-' || (SELECT string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', (((i >> (5 * k)) & 31) + 1)::int, 1),
                                       '' ORDER BY k) FROM generate_series(0, 3) k) || '-0000',
           md5(i::text) || '@pbx.example.hu',
           CASE WHEN i % 500 = 0 THEN 'failed' ELSE 'complete' END,
           $3::timestamptz - make_interval(mins => i),
           CASE WHEN i % 5 = 0 THEN $1::uuid ELSE $2::uuid END,
           ARRAY['+3620' || lpad((i % 7919)::text, 7, '0'),
                 CASE WHEN i % 5 = 0 THEN '+3612345' || lpad(((i / 5) % 3)::text, 3, '0')
                      ELSE '+3613' || lpad((i % 40)::text, 6, '0') END],
           jsonb_build_array(jsonb_build_object(
               'aor', 'sip:+3620' || lpad((i % 7919)::text, 7, '0') || '@pbx.example.hu',
               'name', 'Ügyfél ' || (i % 7919), 'role', 'caller')),
           jsonb_build_object('direction', jsonb_build_object('value', CASE WHEN i % 7 = 0 THEN 'outbound'
                                                                             ELSE 'inbound' END)),
           (SELECT id FROM retention_classes WHERE code = 'quality_60d' AND tenant_id IS NULL)
    FROM generate_series(1, 20000) i
"""


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


async def plan_shape(pool: asyncpg.Pool, sql: str, args: tuple[Any, ...]) -> tuple[set[str], bool]:
    """The indexes of ``recordings`` the plan reads (the class join's primary key aside), and whether it sorts."""
    explained = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    nodes = list(plan_nodes((json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]))
    indexes = {node["Index Name"] for node in nodes if node.get("Index Name", "").startswith("recordings_")}
    return indexes, any(node["Node Type"] in ("Sort", "Incremental Sort") for node in nodes)


# The newest-first walks: the tenant's own index, or, where the tenant has most of the recent calls, the
# plain time index (migrations 0001, 0004). Either stops after the page, with no sort.
WALKS = ({"recordings_tenant_started_idx"}, {"recordings_started_at_idx"})


async def test_searches_use_the_indexes_on_a_large_table(pool: asyncpg.Pool, acme: UUID) -> None:
    other = await make_tenant(pool, "globex")
    now = datetime(2027, 1, 1, tzinfo=UTC)
    await pool.execute(_SEED, acme, other, now)
    wanted = await add_call(pool, acme, started_at=now - timedelta(days=3, seconds=30))
    await pool.execute("ANALYZE recordings")
    assert await pool.fetchval("SELECT count(*) FROM recordings") == 20_001

    spy = SqlSpy(pool)

    async def plan_of(query: RecordingQuery, **kwargs: Any) -> tuple[set[str], bool]:
        page = await search(spy, acme, query, **kwargs)
        assert page.items  # the plan of a search that finds something
        return await plan_shape(pool, *spy.statements[-1])

    indexes, _ = await plan_of(RecordingQuery(number="06 1 234 5678"))
    assert indexes == {"recordings_numbers_idx"}
    assert (await search(pool, acme, RecordingQuery(number="06 1 234 5678"))).items[0].id == wanted
    first = await search(pool, acme, RecordingQuery(), limit=50)
    recent = RecordingQuery(since=now - timedelta(hours=2), until=now)
    for query, cursor in ((RecordingQuery(), None), (RecordingQuery(), first.next_cursor), (recent, None)):
        indexes, sorts = await plan_of(query, cursor=cursor, limit=50)
        assert indexes in WALKS and not sorts
    assert (await plan_of(RecordingQuery(status=RecordingStatus.FAILED))) == (
        {"recordings_tenant_status_idx"},
        False,
    )
    # A name or address (three characters or more) only one call has: trigrams, not every call of the tenant.
    indexes, _ = await plan_of(RecordingQuery(participant="Kovács"))
    assert indexes == {"recordings_party_text_idx"}
    reference = (await Catalogue(pool).get(wanted)).reference  # type: ignore[union-attr]
    indexes, _ = await plan_of(RecordingQuery(reference=reference))
    assert "recordings_reference_key" in indexes
