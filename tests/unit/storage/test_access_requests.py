"""Access requests: a number in any written form finds the person's recordings, cases are due in a calendar
month, exports copy the recordings and are audited, and tenants never see each other's data."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import FileBlobStore, ParticipantRole, Recording
from storage.access_requests import AccessRequests
from storage.access_rules import (
    DEADLINE_ZONE,
    TRANSITIONS,
    AccessRequestStatus,
    CaseAction,
    add_calendar_month,
    due_at,
    next_status,
    parse_criteria,
)
from storage.audio_opener import plain_audio_opener, plain_file_opener
from storage.audit import Actor, AuditLog
from storage.errors import IntegrityError, LifecycleError, NotFoundError

from .subject_samples import add_recording, flip_byte, make_tenant, party

ANNA = Actor(name="anna@acme.hu", origin="192.0.2.7")
BELA = Actor(name="bela@acme.hu", origin="192.0.2.8")
NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
CALLER = party("+3612345678", "Kovács Éva", ParticipantRole.CALLER)
OTHER_CALLER = party("+36301234567", "Szabó Gergő", ParticipantRole.CALLER)
AGENT = party("+3618889000", "ACME ügyfélszolgálat", ParticipantRole.CALLEE)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def service(
    pool: asyncpg.Pool, blobs: FileBlobStore, bundle_dir: Path, clock: Callable[[], datetime]
) -> AccessRequests:
    return AccessRequests(
        pool,
        audit=AuditLog(clock=clock),
        open_audio=plain_audio_opener(blobs),
        open_file=plain_file_opener(blobs),
        bundle_dir=bundle_dir,
        clock=clock,
    )


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


async def _calls(pool: asyncpg.Pool, blobs: FileBlobStore) -> tuple[UUID, UUID, list[Recording]]:
    """ACME has three calls from Kovács Éva (one in October) and one from someone else; another tenant has a
    call from the same number."""
    acme = await make_tenant(pool, "acme-kft", "ACME Kft.")
    other = await make_tenant(pool, "masik-bt", "Másik Bt.")
    october = datetime(2026, 10, 14, 8, 5, tzinfo=UTC)
    calls = [
        await add_recording(
            pool, blobs, tenant_id=acme, started_at=october, caller=CALLER, callee=AGENT, seed=1
        ),
        await add_recording(
            pool,
            blobs,
            tenant_id=acme,
            started_at=NOW - timedelta(days=3),
            caller=CALLER,
            callee=AGENT,
            seed=2,
        ),
        await add_recording(
            pool,
            blobs,
            tenant_id=acme,
            started_at=NOW - timedelta(days=1),
            caller=AGENT,
            callee=CALLER,
            seed=3,
        ),
        await add_recording(
            pool, blobs, tenant_id=acme, started_at=NOW - timedelta(days=2), caller=OTHER_CALLER, callee=AGENT
        ),
        await add_recording(
            pool, blobs, tenant_id=other, started_at=NOW - timedelta(days=2), caller=CALLER, callee=AGENT
        ),
    ]
    return acme, other, calls


@pytest.mark.parametrize(
    "written", ["+36 1 234 5678", "06-1-234-5678", "3612345678", "(06 1) 234 5678", "sip:+3612345678@x.hu"]
)
async def test_every_written_form_of_a_number_finds_the_same_recordings(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path, written: str
) -> None:
    acme, _, calls = await _calls(pool, blobs)
    found = await service(pool, blobs, tmp_path, Clock(NOW)).search(acme, number=written, actor=ANNA)
    # oldest first; the call he made and the call he received; not the other caller's, not the other tenant's
    assert [s.recording.id for s in found] == [calls[0].id, calls[1].id, calls[2].id]
    assert all("+3612345678" in s.recording.numbers for s in found)
    assert found[0].recording.basis == "legitimate_interest" and found[0].policy_version == 1
    assert found[0].retention is not None and (found[0].retention.code, found[0].retention.days) == (
        "quality_60d",
        60,
    )


async def test_a_time_window_narrows_the_number_search(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, _, calls = await _calls(pool, blobs)
    requests = service(pool, blobs, tmp_path, Clock(NOW))
    november = datetime(2026, 11, 1, tzinfo=DEADLINE_ZONE)
    found = await requests.search(acme, number="06 1 234 5678", since=november, actor=ANNA)
    assert [s.recording.id for s in found] == [calls[1].id, calls[2].id]
    # since is inclusive, until exclusive: a window ending at the second call's start leaves it out
    found = await requests.search(acme, number="06 1 234 5678", until=calls[1].started_at, actor=ANNA)
    assert [s.recording.id for s in found] == [calls[0].id]
    found = await requests.search(
        acme, number="06 1 234 5678", since=calls[1].started_at, until=calls[2].started_at, actor=ANNA
    )
    assert [s.recording.id for s in found] == [calls[1].id]


async def test_a_reference_as_typed_finds_its_recording_in_its_own_tenant_only(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, other, calls = await _calls(pool, blobs)
    requests = service(pool, blobs, tmp_path, Clock(NOW))
    typed = calls[3].reference.lower().replace("-", " ").replace("0", "o")
    found = await requests.search(acme, reference=typed, actor=ANNA)
    assert [s.recording.id for s in found] == [calls[3].id]
    assert await requests.search(other, reference=calls[3].reference, actor=ANNA) == []


async def test_unusable_criteria_are_refused(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, _, _ = await _calls(pool, blobs)
    requests = service(pool, blobs, tmp_path, Clock(NOW))
    with pytest.raises(ValueError, match="not a phone number"):
        await requests.search(acme, number="call me maybe", actor=ANNA)
    with pytest.raises(ValueError, match="not a recording reference"):
        await requests.search(acme, reference="HT-1234", actor=ANNA)
    with pytest.raises(ValueError, match="phone number or a recording reference"):
        await requests.search(acme, actor=ANNA)
    with pytest.raises(ValueError, match="ends before it starts"):
        await requests.search(
            acme, number="+3612345678", since=NOW, until=NOW - timedelta(days=1), actor=ANNA
        )
    with pytest.raises(NotFoundError):
        await requests.search(uuid4(), number="+3612345678", actor=ANNA)


async def test_a_search_is_audited_without_the_number(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, _, _ = await _calls(pool, blobs)
    await service(pool, blobs, tmp_path, Clock(NOW)).search(acme, number="06-1-234-5678", actor=ANNA)
    row = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'recording.search'")
    assert row["actor"] == "anna@acme.hu" and row["tenant_id"] == acme
    assert row["details"] == {"by": ["number"], "window": False, "found": 3}
    assert "234" not in json.dumps(row["details"])


async def test_a_case_is_due_one_calendar_month_after_receipt(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, _, _ = await _calls(pool, blobs)
    requests = service(pool, blobs, tmp_path, Clock(datetime(2027, 3, 1, tzinfo=UTC)))
    received = datetime(2027, 1, 31, 16, 45, tzinfo=DEADLINE_ZONE)
    case = await requests.open(
        acme,
        requester="Kovács Éva, levél: 1111 Budapest, Fő u. 1.",
        number="06 1 234 5678",
        received_at=received,
        actor=ANNA,
    )
    assert case.number == "+3612345678"
    assert case.status is AccessRequestStatus.OPEN
    # 31 January → the last day of February, to its end, Budapest time
    assert case.due_at.astimezone(DEADLINE_ZONE).date() == date(2027, 2, 28)
    assert case.due_at == datetime(2027, 2, 28, 23, 59, 59, 999999, tzinfo=DEADLINE_ZONE)
    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'access_request.open'")
    assert entry["object_id"] == str(case.id)
    assert "Kovács" not in json.dumps(entry["details"]) and "+36" not in json.dumps(entry["details"])


async def test_a_case_may_be_extended_once_by_up_to_two_months_before_its_first_deadline(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, _, _ = await _calls(pool, blobs)
    clock = Clock(datetime(2027, 2, 10, 9, 0, tzinfo=UTC))
    requests = service(pool, blobs, tmp_path, clock)
    received = datetime(2027, 1, 31, 16, 45, tzinfo=DEADLINE_ZONE)
    case = await requests.open(
        acme, requester="Kovács Éva", number="+3612345678", received_at=received, actor=ANNA
    )
    for months, reason, error in (
        (3, "many recordings", "1 or 2 months"),
        (0, "many recordings", "1 or 2 months"),
        (2, "  ", "reason"),
    ):
        with pytest.raises(ValueError, match=error):
            await requests.extend(acme, case.id, months=months, reason=reason, actor=ANNA)

    extended = await requests.extend(
        acme, case.id, months=2, reason="412 recordings over three years to review", actor=ANNA
    )
    # Counted from the day of receipt: 31 January + 3 months is the last day of April.
    assert extended.due_at == datetime(2027, 4, 30, 23, 59, 59, 999999, tzinfo=DEADLINE_ZONE)
    assert (extended.extended_at, extended.extension_reason) == (
        clock.now,
        "412 recordings over three years to review",
    )
    assert (await requests.show(acme, case.id)).due_at == extended.due_at
    with pytest.raises(LifecycleError, match="extended already"):
        await requests.extend(acme, case.id, months=1, reason="more", actor=ANNA)
    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'access_request.extend'")
    assert entry["object_id"] == str(case.id) and dict(entry["details"])["months"] == 2

    # Too late: the first month has passed (the person had to be told within it).
    late = await requests.open(
        acme, requester="Szabó Gergő", number="+36301234567", received_at=received, actor=ANNA
    )
    clock.now = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    with pytest.raises(LifecycleError, match="within one month"):
        await requests.extend(acme, late.id, months=1, reason="many recordings", actor=ANNA)
    # Another tenant's case is not found; a closed case needs no more time, and says when it was closed.
    with pytest.raises(NotFoundError):
        await requests.extend(uuid4(), late.id, months=1, reason="x", actor=ANNA)
    closed = await requests.close(acme, late.id, actor=ANNA, note="withdrawn by the person")
    assert closed.closed_at == clock.now
    with pytest.raises(LifecycleError, match="closed needs no more time"):
        await requests.extend(acme, late.id, months=1, reason="x", actor=ANNA)


async def test_a_case_needs_a_requester_and_cannot_come_from_the_future(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, _, _ = await _calls(pool, blobs)
    requests = service(pool, blobs, tmp_path, Clock(NOW))
    with pytest.raises(ValueError, match="who asked"):
        await requests.open(acme, requester="  ", number="+3612345678", actor=ANNA)
    with pytest.raises(ValueError, match="future"):
        await requests.open(
            acme,
            requester="Kovács Éva",
            number="+3612345678",
            received_at=NOW + timedelta(hours=1),
            actor=ANNA,
        )
    assert await pool.fetchval("SELECT count(*) FROM access_requests") == 0


async def test_open_cases_list_by_due_date_with_the_overdue_flagged(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, other, _ = await _calls(pool, blobs)
    clock = Clock(NOW)
    requests = service(pool, blobs, tmp_path, clock)
    late = await requests.open(
        acme, requester="Kovács Éva", number="+3612345678", received_at=NOW - timedelta(days=40), actor=ANNA
    )
    fresh = await requests.open(acme, requester="Szabó Gergő", number="06 30 123 4567", actor=ANNA)
    done = await requests.open(
        acme,
        requester="Tóth Zoltán",
        reference="HT-7K3M-Q9RX",
        received_at=NOW - timedelta(days=50),
        actor=ANNA,
    )
    await requests.close(acme, done.id, actor=ANNA, note="identity could not be confirmed")
    await requests.open(other, requester="Kovács Éva", number="+3612345678", actor=ANNA)

    listed = await requests.list(acme)
    assert [case.id for case in listed] == [late.id, fresh.id]
    assert [case.overdue(clock.now) for case in listed] == [True, False]
    assert listed[0].to_json(now=clock.now)["overdue"] is True
    everything = await requests.list(acme, include_finished=True)
    assert {case.id for case in everything} == {late.id, fresh.id, done.id}
    closed = await requests.show(acme, done.id)
    assert closed.status is AccessRequestStatus.CLOSED and closed.notes == "identity could not be confirmed"
    assert not closed.overdue(clock.now)


async def test_export_copies_the_recordings_and_the_case_runs_to_its_close(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, _, calls = await _calls(pool, blobs)
    clock = Clock(NOW)
    requests = service(pool, blobs, tmp_path / "bundles", clock)
    case = await requests.open(acme, requester="Kovács Éva", number="+36 1 234 5678", actor=ANNA)
    with pytest.raises(LifecycleError, match="export the copy first"):
        await requests.mark_delivered(acme, case.id, actor=ANNA)

    clock.now = NOW + timedelta(hours=2)
    result = await requests.export(acme, case.id, actor=BELA)
    exported = result.request
    assert exported.status is AccessRequestStatus.EXPORTED
    assert set(exported.recording_ids) == {calls[0].id, calls[1].id, calls[2].id}
    assert (
        exported.bundle_path == str(result.bundle.path) and result.bundle.path.parent == tmp_path / "bundles"
    )
    assert exported.exported_at == clock.now
    with zipfile.ZipFile(result.bundle.path) as bundle:
        audio = sorted(name for name in bundle.namelist() if name.endswith("audio.flac"))
        assert len(audio) == 3
    assert result.bundle.path.stat().st_mode & 0o777 == 0o600
    assert hashlib.sha256(result.bundle.path.read_bytes()).hexdigest() == exported.bundle_sha256

    actions = [row["action"] for row in await pool.fetch("SELECT action FROM audit_log ORDER BY seq")]
    assert actions == ["access_request.open", "access_request.export"] + ["recording.export"] * 3
    exports = await pool.fetch("SELECT * FROM audit_log WHERE action = 'recording.export' ORDER BY seq")
    assert {row["object_id"] for row in exports} == {str(c.id) for c in calls[:3]}
    assert all(
        row["actor"] == "bela@acme.hu" and row["details"]["access_request"] == str(case.id) for row in exports
    )

    delivered = await requests.mark_delivered(acme, case.id, actor=ANNA, note="sent by registered post")
    assert delivered.status is AccessRequestStatus.DELIVERED and delivered.delivered_at == clock.now
    closed = await requests.close(acme, case.id, actor=ANNA)
    assert closed.status is AccessRequestStatus.CLOSED
    assert not result.bundle.path.exists()  # the copy has left; its hash stays as the record
    assert closed.bundle_sha256 == exported.bundle_sha256
    with pytest.raises(LifecycleError, match="closed cannot be exported"):
        await requests.export(acme, case.id, actor=ANNA)


async def test_a_second_export_replaces_the_first_bundle(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, _, _ = await _calls(pool, blobs)
    clock = Clock(NOW)
    requests = service(pool, blobs, tmp_path, clock)
    case = await requests.open(acme, requester="Kovács Éva", number="+3612345678", actor=ANNA)
    first = await requests.export(acme, case.id, actor=ANNA)
    await add_recording(
        pool,
        blobs,
        tenant_id=acme,
        started_at=NOW + timedelta(minutes=5),
        caller=CALLER,
        callee=AGENT,
        seed=9,
    )
    clock.now = NOW + timedelta(hours=1)
    second = await requests.export(acme, case.id, actor=ANNA)
    assert len(second.request.recording_ids) == 4
    assert second.bundle.path.exists() and not first.bundle.path.exists()


async def test_another_tenant_cannot_see_or_act_on_a_case(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, other, _ = await _calls(pool, blobs)
    requests = service(pool, blobs, tmp_path, Clock(NOW))
    case = await requests.open(acme, requester="Kovács Éva", number="+3612345678", actor=ANNA)
    for attempt in (
        requests.show(other, case.id),
        requests.export(other, case.id, actor=ANNA),
        requests.close(other, case.id, actor=ANNA),
        requests.show(None, case.id),
    ):
        with pytest.raises(NotFoundError):
            await attempt
    assert await requests.list(other) == []
    assert (await requests.show(acme, case.id)).status is AccessRequestStatus.OPEN


async def test_calls_no_tenant_claimed_are_searchable_and_exportable(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    await _calls(pool, blobs)
    unclaimed = await add_recording(pool, blobs, tenant_id=None, started_at=NOW, caller=CALLER, callee=AGENT)
    requests = service(pool, blobs, tmp_path, Clock(NOW))
    found = await requests.search(None, number="06 1 234 5678", actor=ANNA)
    assert [s.recording.id for s in found] == [unclaimed.id]
    case = await requests.open(None, requester="Kovács Éva", number="+3612345678", actor=ANNA)
    result = await requests.export(None, case.id, actor=ANNA)
    with zipfile.ZipFile(result.bundle.path) as bundle:
        summary = bundle.read("summary.txt").decode()
    assert "Adatkezelő: the operator of the recording service" in summary


async def test_a_damaged_recording_stops_the_export_and_leaves_the_case_open(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    acme, _, calls = await _calls(pool, blobs)
    requests = service(pool, blobs, tmp_path / "bundles", Clock(NOW))
    case = await requests.open(acme, requester="Kovács Éva", number="+3612345678", actor=ANNA)
    assert calls[1].file_path is not None
    flip_byte(calls[1].file_path)
    with pytest.raises(IntegrityError, match=calls[1].reference):
        await requests.export(acme, case.id, actor=ANNA)
    assert list((tmp_path / "bundles").iterdir()) == []
    assert (await requests.show(acme, case.id)).status is AccessRequestStatus.OPEN
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE '%.export'") == 0


# -- the rules, property-tested -------------------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 1), timezones=st.just(UTC)
)


@given(moments)
def test_the_deadline_is_the_same_date_next_month_or_its_last_day(received: datetime) -> None:
    due = due_at(received)
    local_received = received.astimezone(DEADLINE_ZONE).date()
    local_due = due.astimezone(DEADLINE_ZONE)
    assert due > received
    assert (local_due.hour, local_due.minute, local_due.second) == (23, 59, 59)
    months = (local_due.year - local_received.year) * 12 + local_due.month - local_received.month
    assert months == 1
    assert local_due.day == local_received.day or (
        local_due.day < local_received.day and (local_due.date() + timedelta(days=1)).day == 1
    )
    assert 28 <= (local_due.date() - local_received).days <= 31


@given(moments, moments)
def test_a_later_request_is_never_due_earlier(first: datetime, second: datetime) -> None:
    early, late = sorted((first, second))
    assert due_at(early) <= due_at(late)


def test_month_ends_and_the_year_end() -> None:
    assert add_calendar_month(date(2028, 1, 31)) == date(2028, 2, 29)
    assert add_calendar_month(date(2026, 3, 31)) == date(2026, 4, 30)
    assert add_calendar_month(date(2026, 12, 15)) == date(2027, 1, 15)
    # received just after midnight in Budapest on 1 March is still 28 February in UTC: Budapest days count
    received = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)
    assert due_at(received).astimezone(DEADLINE_ZONE).date() == date(2026, 4, 1)


@given(st.sampled_from(list(AccessRequestStatus)), st.sampled_from(list(CaseAction)))
def test_only_the_transition_table_moves_a_case(status: AccessRequestStatus, action: CaseAction) -> None:
    if (status, action) in TRANSITIONS:
        assert next_status(status, action) is TRANSITIONS[(status, action)]
    else:
        with pytest.raises(LifecycleError):
            next_status(status, action)


def test_a_closed_case_moves_nowhere_and_criteria_parse_as_written() -> None:
    for action in CaseAction:
        with pytest.raises(LifecycleError):
            next_status(AccessRequestStatus.CLOSED, action)
    criteria = parse_criteria(number="020 7946 0958", reference=" ht-7k3m q9rx ", region="GB")
    assert (criteria.number, criteria.reference) == ("+442079460958", "HT-7K3M-Q9RX")
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_criteria(number="+3612345678", since=datetime(2026, 1, 1))
