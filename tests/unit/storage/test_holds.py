"""Legal holds: what they cover, how they stop deletion, and the two-person release — rules and service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import FileBlobStore
from storage.audit import Actor, AuditLog
from storage.erasure import ErasureService
from storage.errors import LifecycleError, NotFoundError, TwoPersonRuleError, UnderHoldError
from storage.hold_rules import Hold, HoldState, check_approval, check_release_request, covers
from storage.holds import HoldFilter, HoldService
from storage.scope import ALL_TENANTS

from .retention_samples import CALLEE, CALLER, OTHER, T0, Clock, add_recording, make_tenant, outbox, row

ANNA = Actor(name="anna@example.hu", origin="192.0.2.7")
BELA = Actor(name="bela@example.hu", origin="192.0.2.8")
REASON = "NAIH inquiry NAIH-1234-5/2026: keep all calls of the complainant"

# -- the rules, property-tested -------------------------------------------------------------------------------
names = st.sampled_from(["anna@example.hu", "bela@example.hu", "cli:root", "dpo@acme.hu"])
instants = st.integers(-400, 400).map(lambda d: T0 + timedelta(days=d))
numbers = st.sampled_from([CALLER, CALLEE, OTHER, "201"])
tenants = st.sampled_from([None, UUID(int=1), UUID(int=2)])


@st.composite
def number_holds(draw: st.DrawFn) -> Hold:
    start = draw(st.one_of(st.none(), instants))
    end = draw(st.one_of(st.none(), instants))
    if start is not None and end is not None and not start < end:
        start, end = None, end
    return Hold(
        id=uuid4(),
        tenant_id=draw(tenants),
        number=draw(numbers),
        from_at=start,
        until_at=end,
        reason=REASON,
        placed_by=draw(names),
        placed_at=T0,
    )


@given(number_holds(), tenants, st.lists(numbers, max_size=3), instants)
def test_property_a_number_hold_covers_exactly_its_tenants_calls_of_that_number_in_its_range(
    hold: Hold, tenant: UUID | None, parties: list[str], started_at: datetime
) -> None:
    covered = covers(hold, recording_id=uuid4(), tenant_id=tenant, numbers=parties, started_at=started_at)
    in_scope = hold.tenant_id is None or hold.tenant_id == tenant
    in_range = (hold.from_at is None or started_at >= hold.from_at) and (
        hold.until_at is None or started_at < hold.until_at
    )
    assert covered is (in_scope and hold.number in parties and in_range)
    released = Hold(**{**_fields(hold), "release_requested_by": "x", "released_by": "y", "released_at": T0})
    assert not covers(
        released, recording_id=uuid4(), tenant_id=tenant, numbers=parties, started_at=started_at
    )


@given(names, names)
def test_property_release_takes_two_different_people(requester: str, approver: str) -> None:
    hold = Hold(id=uuid4(), recording_id=uuid4(), reason=REASON, placed_by="dpo@acme.hu", placed_at=T0)
    assert hold.state is HoldState.ACTIVE
    with pytest.raises(LifecycleError, match="not been requested"):
        check_approval(hold, approver)
    check_release_request(hold, requester)
    requested = Hold(**{**_fields(hold), "release_requested_by": requester, "release_requested_at": T0})
    assert requested.state is HoldState.RELEASE_REQUESTED and requested.active
    with pytest.raises(LifecycleError, match="already requested"):
        check_release_request(requested, approver)
    if approver == requester:
        with pytest.raises(TwoPersonRuleError):
            check_approval(requested, approver)
    else:
        check_approval(requested, approver)


def test_a_hold_targets_one_thing_with_a_sane_range() -> None:
    with pytest.raises(ValueError, match="either one recording or one number"):
        Hold(id=uuid4(), reason=REASON, placed_by="a", placed_at=T0)
    with pytest.raises(ValueError, match="start before"):
        Hold(id=uuid4(), number=CALLER, from_at=T0, until_at=T0, reason=REASON, placed_by="a", placed_at=T0)
    with pytest.raises(ValueError, match="only to a hold on a number"):
        Hold(id=uuid4(), recording_id=uuid4(), from_at=T0, reason=REASON, placed_by="a", placed_at=T0)
    with pytest.raises(ValueError, match="reason"):
        Hold(id=uuid4(), number=CALLER, reason=" ", placed_by="a", placed_at=T0)


async def deletable(pool: asyncpg.Pool, recording_id: UUID) -> bool:
    """Whether the database would let the row go (the hold trigger), tried and rolled back."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("DELETE FROM recordings WHERE id = $1", recording_id)
        except asyncpg.RestrictViolationError:
            return False
        finally:
            await transaction.rollback()
        return True


def _fields(hold: Hold) -> dict[str, object]:
    return {name: getattr(hold, name) for name in Hold.__dataclass_fields__}


# -- the service on the real catalogue ------------------------------------------------------------------------
@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(days=1))


@pytest.fixture
def holds(pool: asyncpg.Pool, clock: Clock) -> HoldService:
    return HoldService(pool, audit=AuditLog(clock=clock), clock=clock)


@pytest.fixture
def erasure(pool: asyncpg.Pool, blobs: FileBlobStore, clock: Clock) -> ErasureService:
    return ErasureService(pool, blobs, audit=AuditLog(clock=clock), clock=clock)


async def test_a_hold_on_a_recording_restricts_it_and_says_why_deletion_is_refused(
    pool: asyncpg.Pool, blobs: FileBlobStore, holds: HoldService, erasure: ErasureService
) -> None:
    acme = await make_tenant(pool, "acme")
    call = await add_recording(pool, blobs, tenant_id=acme)
    placed = await holds.place_on_recording(acme, call.id, reason=REASON, actor=ANNA)
    assert placed.covered == (call.id,)
    assert placed.hold.placed_by == "anna@example.hu" and placed.hold.tenant_id == acme
    assert await outbox(pool) == [(call.id, "restricted")]
    with pytest.raises(UnderHoldError, match="NAIH-1234-5/2026"):
        await erasure.erase(acme, call.id, ANNA, "erasure request by email")
    assert await row(pool, call.id) is not None and call.path is not None and call.path.exists()
    # the database refuses too, whoever asks
    with pytest.raises(asyncpg.RestrictViolationError, match="legal hold"):
        await pool.execute("DELETE FROM recordings WHERE id = $1", call.id)
    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'hold.place'")
    assert entry["object_id"] == str(placed.hold.id)
    assert entry["details"]["reason"] == REASON and entry["details"]["covered"] == 1


async def test_a_number_hold_in_any_written_form_covers_its_calls_in_range_now_and_later(
    pool: asyncpg.Pool, blobs: FileBlobStore, holds: HoldService
) -> None:
    acme = await make_tenant(pool, "acme")
    globex = await make_tenant(pool, "globex")
    early = await add_recording(pool, blobs, tenant_id=acme, started_at=T0 - timedelta(days=40))
    inside = await add_recording(pool, blobs, tenant_id=acme, started_at=T0)
    other_number = await add_recording(pool, blobs, tenant_id=acme, numbers=(OTHER, CALLEE))
    other_tenant = await add_recording(pool, blobs, tenant_id=globex)
    placed = await holds.place_on_number(
        acme,
        "06-1-234-5678",  # the caller, written as a Hungarian would
        reason=REASON,
        actor=ANNA,
        from_at=T0 - timedelta(days=7),
        until_at=T0 + timedelta(days=30),
    )
    assert placed.hold.number == CALLER
    assert placed.covered == (inside.id,)
    assert await outbox(pool) == [(inside.id, "restricted")]
    later = await add_recording(pool, blobs, tenant_id=acme, started_at=T0 + timedelta(days=2))
    for call, held in (
        (early, False),
        (inside, True),
        (other_number, False),
        (other_tenant, False),
        (later, True),
    ):
        assert (not await deletable(pool, call.id)) is held
    # the operator's hold covers every tenant's calls of the number
    operator = await holds.place_on_number(ALL_TENANTS, "+36 1 234 5678", reason=REASON, actor=BELA)
    assert set(operator.covered) == {early.id, inside.id, other_tenant.id, later.id}
    with pytest.raises(ValueError, match="not a phone number"):
        await holds.place_on_number(acme, "anonymous", reason=REASON, actor=ANNA)
    with pytest.raises(ValueError, match="start before"):
        await holds.place_on_number(acme, CALLER, reason=REASON, actor=ANNA, from_at=T0, until_at=T0)


async def test_a_one_person_release_is_refused_and_two_people_release_it(
    pool: asyncpg.Pool, blobs: FileBlobStore, holds: HoldService, erasure: ErasureService
) -> None:
    acme = await make_tenant(pool, "acme")
    call = await add_recording(pool, blobs, tenant_id=acme)
    both = await add_recording(pool, blobs, tenant_id=acme, started_at=T0 + timedelta(hours=1))
    first = await holds.place_on_number(acme, CALLER, reason=REASON, actor=ANNA)
    second = await holds.place_on_recording(acme, both.id, reason="chargeback dispute 2026-118", actor=ANNA)
    with pytest.raises(LifecycleError, match="not been requested"):
        await holds.approve_release(acme, first.hold.id, BELA)
    requested = await holds.request_release(acme, first.hold.id, ANNA)
    assert requested.state is HoldState.RELEASE_REQUESTED
    with pytest.raises(TwoPersonRuleError, match="different person"):
        await holds.approve_release(acme, first.hold.id, ANNA)
    with pytest.raises(UnderHoldError):  # asked for, not approved: still in force
        await erasure.erase(acme, call.id, ANNA, "erasure request")
    released = await holds.approve_release(acme, first.hold.id, BELA)
    assert (released.hold.released_by, released.hold.release_requested_by) == (BELA.name, ANNA.name)
    assert released.unrestricted == (call.id,)  # the other one is still under its own hold
    assert (await outbox(pool))[-1] == (call.id, "unrestricted")
    with pytest.raises(LifecycleError, match="already released"):
        await holds.request_release(acme, first.hold.id, BELA)
    await erasure.erase(acme, call.id, ANNA, "erasure request")
    with pytest.raises(UnderHoldError):
        await erasure.erase(acme, both.id, ANNA, "erasure request")
    assert [h.id for h in await holds.list(acme)] == [second.hold.id]
    assert [h.id for h in await holds.list(acme, which=HoldFilter.RELEASED)] == [first.hold.id]
    assert len(await holds.list(acme, which=HoldFilter.ALL)) == 2
    actions = [
        r["action"]
        for r in await pool.fetch("SELECT action FROM audit_log WHERE object_kind = 'hold' ORDER BY seq")
    ]
    assert actions == ["hold.place", "hold.place", "hold.request_release", "hold.release"]


async def test_the_table_itself_refuses_a_one_person_release(pool: asyncpg.Pool, holds: HoldService) -> None:
    placed = await holds.place_on_number(ALL_TENANTS, CALLER, reason=REASON, actor=ANNA)
    await holds.request_release(ALL_TENANTS, placed.hold.id, ANNA)
    with pytest.raises(asyncpg.CheckViolationError, match="holds_two_people"):
        await pool.execute(
            "UPDATE holds SET released_by = 'anna@example.hu', released_at = now() WHERE id = $1",
            placed.hold.id,
        )


async def test_another_tenants_holds_are_not_found(
    pool: asyncpg.Pool, blobs: FileBlobStore, holds: HoldService
) -> None:
    acme = await make_tenant(pool, "acme")
    globex = await make_tenant(pool, "globex")
    call = await add_recording(pool, blobs, tenant_id=globex)
    with pytest.raises(NotFoundError):
        await holds.place_on_recording(acme, call.id, reason=REASON, actor=ANNA)
    theirs = await holds.place_on_recording(globex, call.id, reason=REASON, actor=ANNA)
    operator = await holds.place_on_number(ALL_TENANTS, OTHER, reason=REASON, actor=ANNA)
    for hold_id in (theirs.hold.id, operator.hold.id):
        with pytest.raises(NotFoundError):
            await holds.get(acme, hold_id)
        with pytest.raises(NotFoundError):
            await holds.request_release(acme, hold_id, ANNA)
    assert await holds.list(acme) == []
    assert {h.id for h in await holds.list(ALL_TENANTS)} == {theirs.hold.id, operator.hold.id}
    assert (await holds.get(ALL_TENANTS, theirs.hold.id)).placed_at == datetime(
        2026, 11, 29, 14, 3, 7, 250_000, tzinfo=UTC
    )
