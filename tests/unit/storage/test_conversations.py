"""Linking recordings: transfer/park segments into one conversation, a second recording of one session as a
duplicate, pauses and normalised call facts kept with the row."""

from __future__ import annotations

from datetime import timedelta

from storage import Catalogue, PauseRecord, RecordingStatus

from .samples import GROUP_ID, SESSION_ID, STARTED_AT, new_recording, received_streams


async def test_a_recording_without_shared_ids_starts_its_own_conversation(catalogue: Catalogue) -> None:
    row = await catalogue.create(new_recording(session_ids=[], group_ids=[]))
    assert row.conversation_id == row.id
    assert row.duplicate_of is None
    assert [r.id for r in await catalogue.conversation(row.id)] == [row.id]


async def test_transfer_segments_sharing_a_group_id_are_one_conversation(catalogue: Catalogue) -> None:
    # RFC 7865 §6.2: a transfer starts a new communication session (new session id) in the same group.
    first = await catalogue.create(new_recording(session_ids=["c2Vzc2lvbi0x"], group_ids=[GROUP_ID]))
    second = await catalogue.create(
        new_recording(
            call_id="second@pbx",
            started_at=STARTED_AT + timedelta(minutes=2),
            session_ids=["c2Vzc2lvbi0y"],
            group_ids=[GROUP_ID],
        )
    )
    unrelated = await catalogue.create(
        new_recording(call_id="other@pbx", session_ids=["b3RoZXI="], group_ids=["Z3JvdXAtMg=="])
    )
    assert second.conversation_id == first.id
    assert second.duplicate_of is None  # a different session: a segment, not a duplicate
    assert unrelated.conversation_id == unrelated.id
    assert [r.id for r in await catalogue.conversation(first.id)] == [first.id, second.id]


async def test_the_same_session_recorded_twice_is_linked_not_doubled(catalogue: Catalogue) -> None:
    first = await catalogue.create(new_recording(session_ids=[SESSION_ID], group_ids=[]))
    again = await catalogue.create(
        new_recording(call_id="retried-fork@sbc", session_ids=[SESSION_ID], group_ids=[])
    )
    assert again.duplicate_of == first.id
    assert again.conversation_id == first.conversation_id
    assert again.to_json()["duplicate_of"] == str(first.id)


async def test_pauses_and_call_facts_are_stored(catalogue: Catalogue) -> None:
    facts = {
        "calling_number": {"value": "+3612345678", "raw": "06 1 234 5678", "source": "participant[0].aor"},
        "direction": {"value": "inbound", "source": "broadworks:callType"},
    }
    row = await catalogue.create(new_recording(call_facts=facts))
    assert row.call_facts == facts
    done = await catalogue.finish(
        row.id,
        status=RecordingStatus.COMPLETE,
        ended_at=STARTED_AT + timedelta(minutes=2),
        media_started_at=STARTED_AT,
        duration_seconds=120.0,
        streams=received_streams(),
        file_path=None,
        format="flac",
        size_bytes=None,
        sha256=None,
        pauses=[PauseRecord(start=30.0, end=60.0)],
    )
    assert done.pauses == (PauseRecord(start=30.0, end=60.0),)
    assert done.to_json()["pauses"] == [{"start": 30.0, "end": 60.0}]
    updated = await catalogue.update_metadata(
        row.id, "<recording/>", call_facts={"direction": {"value": "outbound"}}
    )
    assert updated.call_facts == {"direction": {"value": "outbound"}}
    assert (await catalogue.get(row.id)).pauses == done.pauses  # type: ignore[union-attr]
