from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from storage import (
    Catalogue,
    CatalogueError,
    NewRecording,
    ParticipantRecord,
    ParticipantRole,
    RecordingNotFoundError,
    RecordingStatus,
    open_pool,
)
from tests.pg import PgCluster

from .samples import (
    CALL_ID,
    CALLEE,
    CALLER,
    COLLEAGUE,
    GROUP_ID,
    METADATA,
    METADATA_TRANSFER,
    SESSION_ID,
    STARTED_AT,
    answered_streams,
    new_recording,
    received_streams,
)

REFERENCE = "HT-7K3M-Q9RX"
FILE = "/var/lib/hangtar/recordings/2026/11/28/3f1c2b9e-7d4a-4c55-9a55-0c2a6f0d8e11.flac"
SHA = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def references(*codes: str) -> Iterator[str]:
    yield from codes


async def test_create_stores_what_is_known_at_invite_time(catalogue: Catalogue) -> None:
    new = new_recording()
    row = await catalogue.create(new)
    assert row.id == new.id
    assert row.status is RecordingStatus.RECORDING
    assert row.reference.startswith("HT-") and len(row.reference) == 12
    assert row.call_id == CALL_ID
    assert row.session_ids == (SESSION_ID,)
    assert row.group_ids == (GROUP_ID,)
    assert row.started_at == STARTED_AT
    assert row.participants == (CALLER, CALLEE)
    assert row.streams == tuple(answered_streams())
    assert (row.channels, row.sample_rate, row.format) == (2, 8000, "flac")
    assert row.raw_metadata == METADATA
    assert row.metadata_history == ()
    assert row.source_address == "udp:192.0.2.10:5060"
    assert row.ended_at is None and row.sha256 is None and row.duration_seconds is None
    assert row.created_at is not None and row.created_at == row.updated_at
    assert await catalogue.get(str(new.id)) == row


async def test_finish_round_trip(catalogue: Catalogue) -> None:
    created = await catalogue.create(new_recording(file_path=FILE))
    ended = STARTED_AT + timedelta(seconds=95)
    finished = await catalogue.finish(
        created.id,
        status=RecordingStatus.COMPLETE,
        ended_at=ended,
        media_started_at=STARTED_AT + timedelta(milliseconds=180),
        duration_seconds=94.04,
        streams=received_streams(),
        file_path=FILE,
        format="flac",
        size_bytes=611_204,
        sha256=SHA,
    )
    assert finished.status is RecordingStatus.COMPLETE
    assert finished.ended_at == ended
    assert finished.media_started_at == STARTED_AT + timedelta(milliseconds=180)
    assert finished.duration_seconds == 94.04
    assert finished.streams == tuple(received_streams())
    assert (finished.file_path, finished.size_bytes, finished.sha256) == (FILE, 611_204, SHA)
    assert (finished.channels, finished.sample_rate) == (2, 8000)  # untouched when not given
    assert finished.reference == created.reference
    assert finished.updated_at is not None and created.updated_at is not None
    assert finished.updated_at > created.updated_at
    assert await catalogue.get(created.reference) == finished


async def test_finish_without_media(catalogue: Catalogue) -> None:
    created = await catalogue.create(new_recording(raw_metadata=None, participants=[], session_ids=[]))
    finished = await catalogue.finish(
        created.id,
        status=RecordingStatus.NO_MEDIA,
        ended_at=STARTED_AT + timedelta(seconds=32),
        media_started_at=None,
        duration_seconds=None,
        streams=answered_streams(),
        file_path=None,
        format=None,
        size_bytes=None,
        sha256=None,
        channels=1,
    )
    assert finished.status is RecordingStatus.NO_MEDIA
    assert finished.channels == 1
    assert finished.to_json()["participants"] == []


async def test_finish_refuses_a_non_final_status_and_unknown_ids(catalogue: Catalogue) -> None:
    created = await catalogue.create(new_recording())
    arguments = {
        "ended_at": STARTED_AT,
        "media_started_at": None,
        "duration_seconds": None,
        "streams": [],
        "file_path": None,
        "format": None,
        "size_bytes": None,
        "sha256": None,
    }
    with pytest.raises(ValueError, match="final status"):
        await catalogue.finish(created.id, status=RecordingStatus.RECORDING, **arguments)  # type: ignore[arg-type]
    with pytest.raises(RecordingNotFoundError):
        await catalogue.finish(uuid4(), status=RecordingStatus.FAILED, **arguments)  # type: ignore[arg-type]


async def test_a_malformed_checksum_is_refused_by_the_database(catalogue: Catalogue) -> None:
    created = await catalogue.create(new_recording())
    with pytest.raises(CatalogueError, match="recordings_sha256_hex"):
        await catalogue.finish(
            created.id,
            status=RecordingStatus.COMPLETE,
            ended_at=STARTED_AT,
            media_started_at=None,
            duration_seconds=1.0,
            streams=[],
            file_path=FILE,
            format="flac",
            size_bytes=10,
            sha256=SHA.upper(),
        )


async def test_metadata_updates_keep_the_first_document_and_append_later_ones(catalogue: Catalogue) -> None:
    created = await catalogue.create(new_recording())
    received = datetime(2026, 11, 28, 14, 4, 41, 80_000, tzinfo=UTC)
    updated = await catalogue.update_metadata(
        created.id, METADATA_TRANSFER, [CALLER, CALLEE, COLLEAGUE], received_at=received
    )
    assert updated.raw_metadata == METADATA
    assert [(s.received_at, s.xml) for s in updated.metadata_history] == [(received, METADATA_TRANSFER)]
    assert updated.participants == (CALLER, CALLEE, COLLEAGUE)
    again = await catalogue.update_metadata(created.id, METADATA_TRANSFER.replace("partial", "complete"))
    assert len(again.metadata_history) == 2
    assert again.metadata_history[1].received_at > received
    assert again.participants == (CALLER, CALLEE, COLLEAGUE)  # None keeps them
    assert again.to_json(detailed=True)["metadata_history"][0]["received_at"] == "2026-11-28T14:04:41.080000Z"


async def test_metadata_arriving_only_after_the_invite_becomes_the_raw_metadata(catalogue: Catalogue) -> None:
    created = await catalogue.create(new_recording(raw_metadata=None, participants=[]))
    updated = await catalogue.update_metadata(created.id, METADATA, [CALLER, CALLEE])
    assert updated.raw_metadata == METADATA
    assert updated.metadata_history == ()
    assert updated.participants == (CALLER, CALLEE)
    with pytest.raises(RecordingNotFoundError):
        await catalogue.update_metadata(uuid4(), METADATA)


async def test_mark_status(catalogue: Catalogue) -> None:
    created = await catalogue.create(new_recording())
    failed = await catalogue.mark_status(created.id, RecordingStatus.FAILED)
    assert failed.status is RecordingStatus.FAILED
    assert (await catalogue.get(created.id)) == failed
    with pytest.raises(RecordingNotFoundError):
        await catalogue.mark_status(uuid4(), RecordingStatus.FAILED)


async def test_get_by_reference_as_people_type_it(pool: asyncpg.Pool) -> None:
    catalogue = Catalogue(pool, reference_factory=lambda: "HT-0K3M-Q9R1")
    created = await catalogue.create(new_recording())
    for typed in ("HT-0K3M-Q9R1", "ht-0k3m-q9r1", "HT-OK3M-Q9RL", " 0k3m q9ri ", str(created.id).upper()):
        assert (await catalogue.get(typed)) == created, typed
    assert await catalogue.get(created.id) == created
    for unknown in ("HT-0K3M-Q9R2", str(uuid4()), "", "HT-0K3M", "'; DROP TABLE recordings; --"):
        assert await catalogue.get(unknown) is None, unknown


async def test_reference_collision_is_retried_with_a_new_code(pool: asyncpg.Pool) -> None:
    codes = references("HT-7K3M-Q9RX", "HT-7K3M-Q9RX", "HT-7K3M-Q9RX", "HT-A1B2-C3D4")
    catalogue = Catalogue(pool, reference_factory=lambda: next(codes))
    first = await catalogue.create(new_recording())
    second = await catalogue.create(new_recording(call_id="b2c41a7e09@192.0.2.10"))
    assert (first.reference, second.reference) == ("HT-7K3M-Q9RX", "HT-A1B2-C3D4")
    assert (await catalogue.get("HT-7K3M-Q9RX")) == first


async def test_endless_collisions_give_up_with_a_catalogue_error(pool: asyncpg.Pool) -> None:
    catalogue = Catalogue(pool, reference_factory=lambda: REFERENCE)
    await catalogue.create(new_recording())
    other = new_recording(call_id="b2c41a7e09@192.0.2.10")
    with pytest.raises(CatalogueError, match="no unused reference"):
        await catalogue.create(other)
    assert await catalogue.get(other.id) is None


async def test_list_is_newest_first_and_pages_back_in_time(catalogue: Catalogue) -> None:
    created = [
        await catalogue.create(new_recording(call_id=f"{n:04x}a84b4c76e66710@192.0.2.10", started_at=at))
        for n, at in enumerate(STARTED_AT + timedelta(minutes=7 * n) for n in range(5))
    ]
    newest_first = list(reversed(created))
    assert await catalogue.list() == newest_first
    page = await catalogue.list(limit=2)
    assert page == newest_first[:2]
    assert await catalogue.list(limit=2, before=page[-1].started_at) == newest_first[2:4]
    assert await catalogue.list(before=STARTED_AT) == []
    for limit in (0, -1, 1001):
        with pytest.raises(ValueError, match="limit"):
            await catalogue.list(limit=limit)


async def test_unfinished_lists_only_recordings_still_in_progress(catalogue: Catalogue) -> None:
    later = await catalogue.create(
        new_recording(call_id="later@192.0.2.10", started_at=STARTED_AT + timedelta(1))
    )
    done = await catalogue.create(new_recording(call_id="done@192.0.2.10"))
    earlier = await catalogue.create(
        new_recording(call_id="earlier@192.0.2.10", started_at=STARTED_AT - timedelta(1))
    )
    await catalogue.mark_status(done.id, RecordingStatus.COMPLETE)
    assert [r.id for r in await catalogue.unfinished()] == [earlier.id, later.id]


async def test_a_node_recovers_only_its_own_unfinished_recordings_and_unnamed_older_ones(
    catalogue: Catalogue,
) -> None:
    mine = await catalogue.create(new_recording(call_id="a@192.0.2.10", node="rec-1"))
    theirs = await catalogue.create(new_recording(call_id="b@192.0.2.10", node="rec-2"))
    older = await catalogue.create(
        new_recording(call_id="c@192.0.2.10", started_at=STARTED_AT - timedelta(1))
    )
    assert (mine.node, theirs.node, older.node) == ("rec-1", "rec-2", None)
    assert [r.id for r in await catalogue.unfinished("rec-1")] == [older.id, mine.id]
    assert [r.id for r in await catalogue.unfinished("rec-2")] == [older.id, theirs.id]
    assert {r.id for r in await catalogue.unfinished()} == {mine.id, theirs.id, older.id}


async def test_works_inside_a_transaction_the_caller_owns(pool: asyncpg.Pool) -> None:
    new = new_recording()
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        row = await Catalogue(conn).create(new)
        assert await Catalogue(conn).get(row.reference) == row
        await transaction.rollback()
    assert await Catalogue(pool).get(str(new.id)) is None


async def test_database_failures_become_catalogue_errors(pg: PgCluster) -> None:
    pool = await open_pool(pg.dsn, max_size=1)
    catalogue = Catalogue(pool)
    await pool.close()
    with pytest.raises(CatalogueError, match="cannot look up a recording"):
        await catalogue.get(REFERENCE)
    with pytest.raises(CatalogueError, match="cannot create a recording"):
        await catalogue.create(new_recording())


async def test_stored_json_is_what_the_cli_prints(catalogue: Catalogue, pool: asyncpg.Pool) -> None:
    created = await catalogue.create(new_recording(participants=[CALLER, ParticipantRecord()]))
    stored = await pool.fetchval("SELECT participants FROM recordings WHERE id = $1", created.id)
    assert stored == [p.to_json() for p in created.participants]
    assert stored[1] == {"aor": None, "name": None, "role": "other", "participant_id": None}
    assert created.participants[1].role is ParticipantRole.OTHER
    printed = json.loads(json.dumps(created.to_json()))
    assert printed["participants"] == stored
    assert UUID(printed["id"]) == created.id
    assert printed["started_at"] == "2026-11-28T14:03:07.250000Z"


async def test_lifecycle_fields_decided_at_setup_round_trip(catalogue: Catalogue, pool: asyncpg.Pool) -> None:
    tenant = uuid4()
    await pool.execute("INSERT INTO tenants (id, slug, name) VALUES ($1, 'acme', 'Acme Kft.')", tenant)
    policy_id, class_id = await pool.fetchrow(
        "SELECT p.id, p.retention_class_id FROM recording_policies p WHERE p.tenant_id IS NULL"
    )
    started = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
    created = await catalogue.create(
        NewRecording(
            call_id="lifecycle@pbx",
            started_at=started,
            tenant_id=tenant,
            policy_id=policy_id,
            basis="legitimate_interest",
            purpose="quality assurance",
            retention_class_id=class_id,
            consent_state="not_required",
            numbers=["+3612345678", "201"],
            encryption="hangtar-sealed-v1",
        )
    )
    assert (created.tenant_id, created.retention_class, created.numbers) == (
        tenant,
        "quality_60d",
        ("+3612345678", "201"),
    )
    assert created.expires_at is None
    finished = await catalogue.finish(
        created.id,
        status=RecordingStatus.COMPLETE,
        ended_at=started + timedelta(minutes=3),
        media_started_at=started,
        duration_seconds=180.0,
        streams=[],
        file_path=None,
        format="flac",
        size_bytes=None,
        sha256=None,
        expires_at=started + timedelta(days=60),
    )
    assert finished.expires_at == started + timedelta(days=60)
    data = finished.to_json()
    assert data["tenant_id"] == str(tenant)
    assert (data["basis"], data["retention_class"], data["encrypted"]) == (
        "legitimate_interest",
        "quality_60d",
        True,
    )
    assert await catalogue.get(created.reference) == finished
