from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import pytest

from storage import (
    MetadataSnapshot,
    NewRecording,
    ParticipantRecord,
    ParticipantRole,
    Recording,
    RecordingStatus,
    StreamRecord,
)

from .samples import CALL_ID, CALLEE, CALLER, GROUP_ID, METADATA, SESSION_ID, STARTED_AT, received_streams

RECORDING_ID = UUID("3f1c2b9e-7d4a-4c55-9a55-0c2a6f0d8e11")
BUDAPEST_WINTER = timezone(timedelta(hours=1))


def finished_recording() -> Recording:
    return Recording(
        id=RECORDING_ID,
        reference="HT-7K3M-Q9RX",
        call_id=CALL_ID,
        session_ids=[SESSION_ID],
        group_ids=[GROUP_ID],
        status=RecordingStatus.COMPLETE,
        started_at=STARTED_AT,
        media_started_at=STARTED_AT + timedelta(milliseconds=180),
        ended_at=STARTED_AT + timedelta(seconds=95),
        duration_seconds=94.04,
        participants=[CALLER, CALLEE],
        streams=received_streams(),
        channels=2,
        sample_rate=8000,
        file_path="/var/lib/hangtar/recordings/2026/11/28/3f1c2b9e-7d4a-4c55-9a55-0c2a6f0d8e11.flac",
        format="flac",
        size_bytes=611_204,
        sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        raw_metadata=METADATA,
        metadata_history=[
            MetadataSnapshot(received_at=datetime(2026, 11, 28, 14, 4, 41, tzinfo=UTC), xml="<recording/>")
        ],
        source_address="udp:192.0.2.10:5060",
        created_at=STARTED_AT + timedelta(milliseconds=3),
        updated_at=STARTED_AT + timedelta(seconds=95, milliseconds=40),
    )


# The CLI's --json output and the API are built on this exact shape: change it only on purpose.
EXPECTED_JSON = {
    "id": "3f1c2b9e-7d4a-4c55-9a55-0c2a6f0d8e11",
    "reference": "HT-7K3M-Q9RX",
    "call_id": "3c26700c1f5e4b2a9d0e@192.0.2.10",
    "session_ids": ["hVpd7YQgRW2nD22h7q60JQ=="],
    "group_ids": ["7+OTCyoxTmqmqyA/1weDAg=="],
    "status": "complete",
    "started_at": "2026-11-28T14:03:07.250000Z",
    "media_started_at": "2026-11-28T14:03:07.430000Z",
    "ended_at": "2026-11-28T14:04:42.250000Z",
    "duration_seconds": 94.04,
    "channels": 2,
    "sample_rate": 8000,
    "format": "flac",
    "size_bytes": 611204,
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "file_path": "/var/lib/hangtar/recordings/2026/11/28/3f1c2b9e-7d4a-4c55-9a55-0c2a6f0d8e11.flac",
    "source_address": "udp:192.0.2.10:5060",
    "participants": [
        {
            "aor": "sip:+3612345678@pbx.example.hu",
            "name": "Kovács Éva",
            "role": "caller",
            "participant_id": "srfBElmCRp2QB23b7Mpk0w==",
        },
        {
            "aor": "sip:+36301234567@pbx.example.hu",
            "name": "Szabó Gergő",
            "role": "callee",
            "participant_id": "zSfPoSvdSDCmU3A3TRDxAw==",
        },
    ],
    "streams": [
        {
            "label": "1",
            "codec": "PCMA",
            "payload_type": 8,
            "ssrc": 0x5A3C91E2,
            "channel": 0,
            "packets": 4697,
            "lost": 3,
            "late": 1,
            "duplicated": 0,
            "telephone_events": 1,
            "first_packet_at": "2026-11-28T14:03:07.430000Z",
            "last_packet_at": "2026-11-28T14:04:41.430000Z",
            "remote": "192.0.2.10:40002",
            "loss_fraction": 0.000638,
            "jitter_ms": 3.125,
            "reordered": 2,
            "gap_seconds": 0.06,
            "comfort_noise": 0,
            "alignment_seconds": -0.2,
            "rtcp_sender_reports": 19,
            "sender_packets": 4650,
            "dtmf": [{"at": 12.34, "duration": 0.12, "digit": None}],
        },
        {
            "label": "2",
            "codec": "PCMA",
            "payload_type": 8,
            "ssrc": 0x0B77D004,
            "channel": 1,
            "packets": 4700,
            "lost": 0,
            "late": 0,
            "duplicated": 2,
            "telephone_events": 0,
            "first_packet_at": "2026-11-28T14:03:07.470000Z",
            "last_packet_at": "2026-11-28T14:04:41.430000Z",
            "remote": "192.0.2.10:40004",
            "loss_fraction": 0.0,
            "jitter_ms": 0.0,
            "reordered": 0,
            "gap_seconds": 0.0,
            "comfort_noise": 0,
            "alignment_seconds": 0.0,
            "rtcp_sender_reports": 0,
            "sender_packets": None,
            "dtmf": [],
        },
    ],
    "conversation_id": None,
    "duplicate_of": None,
    "pauses": [],
    "call_facts": {},
    "tenant_id": None,
    "basis": None,
    "statute": None,
    "purpose": None,
    "retention_class": None,
    "expires_at": None,
    "consent_state": "not_required",
    "numbers": [],
    "encrypted": False,
    "object_key": None,
}


def test_json_shape_is_stable() -> None:
    data = finished_recording().to_json()
    assert data == EXPECTED_JSON
    assert list(data) == list(EXPECTED_JSON)  # key order too: people read this output
    assert json.loads(json.dumps(data)) == data


def test_detailed_json_adds_metadata_and_row_times_only() -> None:
    detailed = finished_recording().to_json(detailed=True)
    extra = {key: value for key, value in detailed.items() if key not in EXPECTED_JSON}
    assert {key: detailed[key] for key in EXPECTED_JSON} == EXPECTED_JSON
    assert extra == {
        "raw_metadata": METADATA,
        "metadata_history": [{"received_at": "2026-11-28T14:04:41.000000Z", "xml": "<recording/>"}],
        "created_at": "2026-11-28T14:03:07.253000Z",
        "updated_at": "2026-11-28T14:04:42.290000Z",
    }


def test_unfinished_recording_has_every_key_with_nulls() -> None:
    recording = Recording(
        id=RECORDING_ID,
        reference="HT-7K3M-Q9RX",
        call_id=CALL_ID,
        status=RecordingStatus.RECORDING,
        started_at=STARTED_AT,
    )
    data = recording.to_json()
    assert list(data) == list(EXPECTED_JSON)
    assert data["ended_at"] is None
    assert data["participants"] == []
    assert data["session_ids"] == []
    assert not recording.finished


def test_timestamps_are_rendered_in_utc_whatever_zone_they_carry() -> None:
    local = datetime(2026, 11, 28, 15, 3, 7, 250_000, tzinfo=BUDAPEST_WINTER)
    recording = Recording(
        id=RECORDING_ID, reference="HT-7K3M-Q9RX", call_id=CALL_ID, status="complete", started_at=local
    )
    assert recording.to_json()["started_at"] == "2026-11-28T14:03:07.250000Z"
    assert recording.status is RecordingStatus.COMPLETE


@pytest.mark.parametrize(
    "stream",
    [*received_streams(), StreamRecord(label=None, codec=None, payload_type=None)],  # a refused m-line
)
def test_stream_json_round_trip(stream: StreamRecord) -> None:
    assert StreamRecord.from_json(json.loads(json.dumps(stream.to_json()))) == stream


def test_participant_json_round_trip_and_role_from_text() -> None:
    for participant in (CALLER, CALLEE, ParticipantRecord()):
        assert ParticipantRecord.from_json(participant.to_json()) == participant
    from_text = ParticipantRecord(aor="sip:+3612345678@pbx.example.hu", role="callee")  # type: ignore[arg-type]
    assert from_text.role is ParticipantRole.CALLEE
    with pytest.raises(ValueError, match="'moderator' is not a valid ParticipantRole"):
        ParticipantRecord(aor="sip:a@b", role="moderator")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"payload_type": 128}, "payload type 128"),
        ({"payload_type": -1}, "payload type -1"),
        ({"ssrc": 2**32}, "SSRC"),
        ({"lost": -2}, "negative"),
        ({"first_packet_at": datetime(2026, 11, 28, 14, 3, 7)}, "timezone-aware"),
    ],
)
def test_stream_rejects_impossible_values(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"label": "1", "codec": "PCMA", "payload_type": 8} | changes
    with pytest.raises(ValueError, match=message):
        StreamRecord(**fields)  # type: ignore[arg-type]


def test_new_recording_freezes_lists_and_rejects_bad_values() -> None:
    new = NewRecording(
        call_id=CALL_ID, started_at=STARTED_AT, session_ids=[SESSION_ID], participants=[CALLER]
    )
    assert new.session_ids == (SESSION_ID,)
    assert new.participants == (CALLER,)
    hash(new)
    assert NewRecording(call_id=CALL_ID, started_at=STARTED_AT).id != new.id  # a fresh uuid each time
    with pytest.raises(ValueError, match="Call-ID"):
        NewRecording(call_id="", started_at=STARTED_AT)
    with pytest.raises(ValueError, match="timezone-aware"):
        NewRecording(call_id=CALL_ID, started_at=datetime(2026, 11, 28, 14, 3, 7))
    with pytest.raises(ValueError, match="channels"):
        NewRecording(call_id=CALL_ID, started_at=STARTED_AT, channels=0)
