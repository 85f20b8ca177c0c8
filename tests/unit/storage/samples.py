"""Field-shaped catalogue inputs: a two-party call from a PBX SRC with RFC 7865 metadata, and its update."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from storage import DtmfRecord, NewRecording, ParticipantRecord, ParticipantRole, StreamRecord

SESSION_ID = "hVpd7YQgRW2nD22h7q60JQ=="
GROUP_ID = "7+OTCyoxTmqmqyA/1weDAg=="
CALL_ID = "3c26700c1f5e4b2a9d0e@192.0.2.10"
STARTED_AT = datetime(2026, 11, 28, 14, 3, 7, 250_000, tzinfo=UTC)

METADATA = f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <group group_id="{GROUP_ID}">
    <associate-time>2026-11-28T14:03:07Z</associate-time>
  </group>
  <session session_id="{SESSION_ID}">
    <sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID>
    <group-ref>{GROUP_ID}</group-ref>
  </session>
  <participant participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <nameID aor="sip:+3612345678@pbx.example.hu"><name xml:lang="hu">Kovács Éva</name></nameID>
  </participant>
  <participant participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <nameID aor="sip:+36301234567@pbx.example.hu"><name xml:lang="hu">Szabó Gergő</name></nameID>
  </participant>
  <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="{SESSION_ID}"><label>1</label></stream>
  <stream stream_id="i1Pz3to5hGk8fuXl+PbwCw==" session_id="{SESSION_ID}"><label>2</label></stream>
  <participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w==">
    <send>UAAMm5GRQKSCMVvLyl4rFw==</send><recv>i1Pz3to5hGk8fuXl+PbwCw==</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==">
    <send>i1Pz3to5hGk8fuXl+PbwCw==</send><recv>UAAMm5GRQKSCMVvLyl4rFw==</recv>
  </participantstreamassoc>
</recording>
"""

# A blind transfer mid-call: the callee leaves, a colleague takes over (a "partial" RFC 7865 document).
METADATA_TRANSFER = f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>partial</datamode>
  <participant participant_id="Ng4vgm0tS0+9AeYKLmJ9vQ==">
    <nameID aor="sip:+36305550123@pbx.example.hu"><name xml:lang="hu">Tóth Zoltán</name></nameID>
  </participant>
  <participantsessionassoc participant_id="zSfPoSvdSDCmU3A3TRDxAw==" session_id="{SESSION_ID}">
    <disassociate-time>2026-11-28T14:04:41Z</disassociate-time>
  </participantsessionassoc>
  <participantsessionassoc participant_id="Ng4vgm0tS0+9AeYKLmJ9vQ==" session_id="{SESSION_ID}">
    <associate-time>2026-11-28T14:04:41Z</associate-time>
  </participantsessionassoc>
</recording>
"""

CALLER = ParticipantRecord(
    aor="sip:+3612345678@pbx.example.hu",
    name="Kovács Éva",
    role=ParticipantRole.CALLER,
    participant_id="srfBElmCRp2QB23b7Mpk0w==",
)
CALLEE = ParticipantRecord(
    aor="sip:+36301234567@pbx.example.hu",
    name="Szabó Gergő",
    role=ParticipantRole.CALLEE,
    participant_id="zSfPoSvdSDCmU3A3TRDxAw==",
)
COLLEAGUE = ParticipantRecord(
    aor="sip:+36305550123@pbx.example.hu",
    name="Tóth Zoltán",
    role=ParticipantRole.OTHER,
    participant_id="Ng4vgm0tS0+9AeYKLmJ9vQ==",
)


def answered_streams() -> list[StreamRecord]:
    """The two sendonly m-lines as answered, before any RTP arrived."""
    return [
        StreamRecord(label="1", codec="PCMA", payload_type=8, channel=0),
        StreamRecord(label="2", codec="PCMA", payload_type=8, channel=1),
    ]


def received_streams(started_at: datetime = STARTED_AT) -> list[StreamRecord]:
    """The same streams after 94 s of 20 ms packets, with a little loss and one DTMF digit on the caller's."""
    first = started_at + timedelta(milliseconds=180)
    last = first + timedelta(seconds=94)
    return [
        StreamRecord(
            label="1",
            codec="PCMA",
            payload_type=8,
            ssrc=0x5A3C_91E2,
            channel=0,
            packets=4_697,
            lost=3,
            late=1,
            duplicated=0,
            telephone_events=1,
            first_packet_at=first,
            last_packet_at=last,
            remote="192.0.2.10:40002",
            loss_fraction=0.000638,
            jitter_ms=3.125,
            reordered=2,
            gap_seconds=0.06,
            comfort_noise=0,
            alignment_seconds=-0.2,
            rtcp_sender_reports=19,
            sender_packets=4_650,
            dtmf=[DtmfRecord(at=12.34, duration=0.12)],
        ),
        StreamRecord(
            label="2",
            codec="PCMA",
            payload_type=8,
            ssrc=0x0B77_D004,
            channel=1,
            packets=4_700,
            lost=0,
            late=0,
            duplicated=2,
            telephone_events=0,
            first_packet_at=first + timedelta(milliseconds=40),
            last_packet_at=last,
            remote="192.0.2.10:40004",
        ),
    ]


def new_recording(
    *, id: UUID | None = None, started_at: datetime = STARTED_AT, call_id: str = CALL_ID, **overrides: Any
) -> NewRecording:
    fields: dict[str, Any] = {
        "call_id": call_id,
        "started_at": started_at,
        "session_ids": [SESSION_ID],
        "group_ids": [GROUP_ID],
        "participants": [CALLER, CALLEE],
        "streams": answered_streams(),
        "channels": 2,
        "sample_rate": 8000,
        "format": "flac",
        "raw_metadata": METADATA,
        "source_address": "udp:192.0.2.10:5060",
    }
    if id is not None:
        fields["id"] = id
    fields.update(overrides)
    return NewRecording(**fields)
