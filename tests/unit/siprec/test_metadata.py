"""RFC 7865 metadata in the dialects SRCs send, and hostile documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from siprec_server.siprec import (
    MetadataError,
    Participant,
    StreamInfo,
    find_metadata,
    parse_metadata,
    split_body,
)
from siprec_server.siprec.metadata import parse_timestamp

from .traffic import fixture, load_invite

RFC_SESSION = "hVpd7YQgRW2nD22h7q60JQ=="


def metadata_of(name: str) -> bytes:
    invite = load_invite(name)
    part = find_metadata(split_body(invite.header("content-type"), invite.body))
    assert part is not None
    return part.body


def document(body: str, namespace: str = "urn:ietf:params:xml:ns:recording:1") -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><recording xmlns="{namespace}">{body}</recording>'.encode()


def test_rfc7865_appendix_a() -> None:
    metadata = parse_metadata(fixture("rfc7865_appendix_a.xml"))
    assert metadata.warnings == []
    assert metadata.datamode == "complete"
    assert metadata.group_ids == ["7+OTCyoxTmqmqyA/1weDAg=="]
    assert metadata.session_ids == [RFC_SESSION]
    assert metadata.start_time == "2010-12-16T23:41:07Z"
    assert metadata.participants == [
        Participant(
            id="srfBElmCRp2QB23b7Mpk0w==",
            aor="sip:bob@biloxi.com",
            name="Bob",
            send=["i1Pz3to5hGk8fuXl+PbwCw==", "UAAMm5GRQKSCMVvLyl4rFw=="],
            recv=["8zc6e0lYTlWIINA6GR+3ag==", "EiXGlc+4TruqqoDaNE76ag=="],
            associate_time="2010-12-16T23:41:07Z",
        ),
        Participant(
            id="zSfPoSvdSDCmU3A3TRDxAw==",
            aor="sip:Paul@biloxi.com",
            name="Paul",
            send=["8zc6e0lYTlWIINA6GR+3ag==", "EiXGlc+4TruqqoDaNE76ag=="],
            recv=["UAAMm5GRQKSCMVvLyl4rFw==", "i1Pz3to5hGk8fuXl+PbwCw=="],
            associate_time="2010-12-16T23:41:07Z",
        ),
    ]
    assert [(s.label, s.session_id) for s in metadata.streams] == [
        ("96", RFC_SESSION),
        ("97", RFC_SESSION),
        ("98", RFC_SESSION),
        ("99", RFC_SESSION),
    ]
    stream = metadata.stream_for_label("97")
    assert stream == StreamInfo(id="i1Pz3to5hGk8fuXl+PbwCw==", label="97", session_id=RFC_SESSION)
    assert [p.name for p in metadata.senders_of(stream.id)] == ["Bob"]
    assert metadata.stream_for_label("100") is None


def test_acme_draft_namespace_with_inline_send() -> None:
    metadata = parse_metadata(metadata_of("acme_invite.sip"))
    assert metadata.warnings == []
    assert metadata.session_ids == ["OegxHzZJT/5/85BANX/cAQ=="]
    assert metadata.start_time == "2024-03-11T09:14:52"
    caller, callee = metadata.participants
    assert (caller.id, caller.aor, caller.name) == (
        "WPoWZiYFREpVXNr/fkiliQ==",
        "sip:+36301234567@sbc.example.hu",
        "+36301234567",
    )
    assert caller.send == ["yf0uCNZyTGxuYHX16kS6ug=="] and caller.recv == []
    assert caller.associate_time == "2024-03-11T09:14:52"
    assert callee.aor == "sip:+3612345678@pbx.example.hu" and callee.name == "Ugyfelszolgalat"
    assert [(s.id, s.label, s.session_id) for s in metadata.streams] == [
        ("yf0uCNZyTGxuYHX16kS6ug==", "1", "OegxHzZJT/5/85BANX/cAQ=="),
        ("Zq5vGhnsTv1ZxKc3c9Uqmg==", "2", "OegxHzZJT/5/85BANX/cAQ=="),
    ]


def test_cisco_send_recv_inside_participant_and_session_association_times() -> None:
    metadata = parse_metadata(metadata_of("cisco_cube_invite.sip"))
    assert metadata.warnings == []
    assert metadata.start_time == "2024-03-11T08:02:31.104Z"
    caller, callee = metadata.participants
    assert caller.name == "Kovacs Anna" and callee.name is None
    assert caller.send == ["wOxq8nrfEe6AH9MpkPXS0A=="] and caller.recv == ["wOxq8nrfEe6AINMpkPXS0A=="]
    assert callee.send == ["wOxq8nrfEe6AINMpkPXS0A=="]
    assert (caller.associate_time, callee.associate_time) == (
        "2024-03-11T08:02:31.104Z",
        "2024-03-11T08:02:33.870Z",
    )


def test_cisco_association_naming_a_stream_as_participant_is_a_warning() -> None:
    metadata = parse_metadata(fixture("cisco_cube_misassociated.xml"))
    assert metadata.warnings == ["participantstreamassoc names unknown participant DyxVShKXEeaAO/FyJSj9YQ=="]
    first, second = metadata.participants
    assert first.send == ["DyxVShKXEeaAO/FyJSj9YQ=="]
    assert second.send == [] and second.aor == "sip:8001@172.17.12.99"


def test_broadworks_recording_metadata_root_is_read_with_warnings() -> None:
    metadata = parse_metadata(metadata_of("broadworks_invite.sip"))
    assert metadata.warnings == [
        "root element <recording_metadata> is not <recording>",
        "unknown metadata namespace 'urn:ietf:params:xml:ns:siprec'",
    ]
    assert metadata.datamode == "complete"
    assert metadata.group_ids == ["urn:uuid:0b7e9d2c-1a3f-4c5e-8d6b-7a9c0e1f2d3b"]
    assert metadata.session_ids == ["urn:uuid:3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"]
    assert metadata.start_time == "2024-03-11T10:44:43+01:00"
    assert [p.aor for p in metadata.participants] == [
        "sip:+3614567890@as.voip.example.hu",
        "sip:06705551234@voip.example.hu;user=phone",
    ]
    mixed = "urn:uuid:b1ced587-d73d-42a5-8f82-0594d45cbf73"
    assert [p.send for p in metadata.participants] == [[mixed], [mixed]]
    assert metadata.streams == [
        StreamInfo(id=mixed, label="1", session_id="urn:uuid:3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f")
    ]


def test_ribbon_aors_without_scheme_and_blank_names() -> None:
    metadata = parse_metadata(metadata_of("ribbon_gtd_invite.sip"))
    assert metadata.warnings == []
    assert metadata.group_ids == ["NTczMjI2ODAtNTI3Zi0xMA=="]
    assert [(p.aor, p.name) for p in metadata.participants] == [
        ("+36705550123@198.51.100.20", None),
        ("+3617778888@198.51.100.20", "Recepcio"),
    ]
    assert [s.label for s in metadata.streams] == ["10", "20"]


def test_prefixed_root() -> None:
    metadata = parse_metadata(metadata_of("quoted_boundary_invite.sip"))
    assert metadata.warnings == []
    assert [p.aor for p in metadata.participants] == ["sip:3001@cc.example.org", "tel:+36301112233"]
    assert [s.label for s in metadata.streams] == ["a_leg", "b_leg"]
    assert metadata.participants[1].associate_time == "2024-03-11T13:20:00.250+01:00"


def test_draft_era_aor_name_and_start_time_children() -> None:
    metadata = parse_metadata(
        document(
            "<dataMode>complete</dataMode>"
            '<session id="urn:uuid:79b2fcd8-5c7f-455c-783f-db334e5d57d0">'
            "<start-time>2011-06-27T17:03:57</start-time></session>"
            '<participant id="urn:uuid:10ac9063" session="urn:uuid:79b2fcd8-5c7f-455c-783f-db334e5d57d0">'
            "<aor>sip:sipp@192.0.2.40</aor><name>sipp </name><send>urn:uuid:07868c77</send>"
            "<start-time>2011-06-27T17:03:58</start-time></participant>"
            '<stream id="urn:uuid:07868c77" session="urn:uuid:79b2fcd8-5c7f-455c-783f-db334e5d57d0">'
            "<label>1</label><mode>separate</mode></stream>",
            namespace="urn:ietf:params:xml:ns:recording",
        )
    )
    assert metadata.warnings == []
    (participant,) = metadata.participants
    assert (participant.aor, participant.name, participant.send) == (
        "sip:sipp@192.0.2.40",
        "sipp",
        ["urn:uuid:07868c77"],
    )
    assert participant.associate_time == "2011-06-27T17:03:58"
    assert metadata.start_time == "2011-06-27T17:03:57"


@pytest.mark.parametrize(
    ("body", "datamode", "warnings"),
    [
        ("<datamode>partial</datamode>", "partial", []),
        ("<dataMode>Partial</dataMode>", "partial", []),
        ("<datamode>delta</datamode>", "complete", ["unknown datamode 'delta', taken as complete"]),
    ],
)
def test_datamode(body: str, datamode: str, warnings: list[str]) -> None:
    participant = '<participant participant_id="cDE="><nameID aor="sip:a@example.com"/></participant>'
    metadata = parse_metadata(document(body + participant))
    assert (metadata.datamode, metadata.warnings) == (datamode, warnings)


def test_missing_datamode_is_complete() -> None:
    metadata = parse_metadata(document('<participant participant_id="cDE="/>'))
    assert metadata.datamode == "complete" and metadata.warnings == []


def test_partial_update_may_name_streams_it_does_not_carry() -> None:
    update = '<datamode>partial</datamode><participantstreamassoc participant_id="cDE="><send>czE=</send>'
    update += '</participantstreamassoc><participant participant_id="cDE="/>'
    assert parse_metadata(document(update)).warnings == []
    complete = update.replace("partial", "complete")
    assert parse_metadata(document(complete)).warnings == ["participant cDE= refers to unknown stream czE="]


def test_foreign_namespaces_are_not_read_as_ours() -> None:
    body = (
        '<participant participant_id="cDE="><nameID aor="sip:a@example.com"/></participant>'
        '<v:extension xmlns:v="http://vendor.example/siprec"><v:participant id="x"/></v:extension>'
        '<extension xmlns="http://vendor.example/siprec"><participant id="y"/><stream id="z"/></extension>'
    )
    metadata = parse_metadata(document(body))
    assert [p.id for p in metadata.participants] == ["cDE="]
    assert metadata.streams == []


def test_missing_ids_and_labels_become_warnings() -> None:
    body = (
        "<session/><participant><nameID aor='sip:a@example.com'/></participant><stream/>"
        "<stream stream_id='czE='/><participantstreamassoc><send>czE=</send></participantstreamassoc>"
    )
    metadata = parse_metadata(document(body))
    assert metadata.warnings == [
        "<session> without an id",
        "<participant> without an id, called participant-1",
        "<stream> without an id ignored",
        "stream czE= has no label",
        "<participantstreamassoc> without a participant_id ignored",
    ]
    assert metadata.participants[0].id == "participant-1"


def test_latin1_document_declared_utf8() -> None:
    xml = document(
        '<participant participant_id="cDE="><nameID aor="sip:a@example.com"><name>Kovács Ödön</name>'
    )
    latin1 = xml.decode().replace("</recording>", "</nameID></participant></recording>").encode("latin-1")
    metadata = parse_metadata(latin1)
    assert metadata.participants[0].name == "Kovács Ödön"
    assert metadata.warnings == ["metadata encoding misdeclared, read as Latin-1"]


def test_leading_whitespace_before_the_declaration() -> None:
    metadata = parse_metadata(b"\r\n  " + document('<participant participant_id="cDE="/>'))
    assert [p.id for p in metadata.participants] == ["cDE="]


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (fixture("billion_laughs.xml"), "DTDForbidden"),
        (fixture("external_entity.xml"), "DTDForbidden"),
        (b'<?xml version="1.0"?><!DOCTYPE recording><recording/>', "DTDForbidden"),
        (document("<participant>" + "x" * (256 * 1024) + "</participant>"), "exceeds 262144"),
        (document("<a>" * 100 + "</a>" * 100), "nested deeper than 64"),
        (document("<participant>"), "not well-formed"),
        (b"\xff\xfe<recording", "not well-formed"),
        (b"   \r\n", "empty"),
    ],
)
def test_hostile_or_unreadable_metadata_raises(xml: bytes, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_metadata(xml)


def test_timestamps() -> None:
    assert parse_timestamp("2010-12-16T23:41:07Z") == datetime(2010, 12, 16, 23, 41, 7, tzinfo=UTC)
    assert parse_timestamp("2024-03-11T09:14:52") == datetime(2024, 3, 11, 9, 14, 52, tzinfo=UTC)
    assert parse_timestamp("2016-06-22T10:44:43+01:00") == datetime(
        2016, 6, 22, 10, 44, 43, tzinfo=timezone(timedelta(hours=1))
    )
    assert parse_timestamp("2016-05-06T07:57:48.526Z") == datetime(2016, 5, 6, 7, 57, 48, 526000, tzinfo=UTC)
    assert parse_timestamp("1970-01-01T00:00:00Z") is None
    assert parse_timestamp("yesterday") is None
    assert parse_timestamp("") is None
    assert parse_timestamp(None) is None


def test_participant_listed_twice_is_merged() -> None:
    body = (
        '<participant participant_id="cDE="><nameID aor="sip:a@example.com"/><send>czE=</send></participant>'
        '<participant participant_id="cDE="><nameID><name>Alice</name></nameID>'
        "<send>czI=</send></participant>"
        '<stream stream_id="czE="><label>1</label></stream><stream stream_id="czI="><label>2</label></stream>'
    )
    metadata = parse_metadata(document(body))
    (participant,) = metadata.participants
    assert (participant.aor, participant.name, participant.send) == (
        "sip:a@example.com",
        "Alice",
        ["czE=", "czI="],
    )
    assert metadata.warnings == ["participant cDE= listed twice, merged"]
