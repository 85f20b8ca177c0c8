"""RFC 7865 metadata in the dialects SRCs send, read by a normaliser that does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import siprec_server.siprec
from siprec_server.siprec import (
    Participant,
    StreamInfo,
    find_metadata,
    parse_metadata,
    split_body,
)
from siprec_server.siprec.metadata import RecordingMetadata, WarningKind

from .traffic import fixture, load_invite

RFC_SESSION = "hVpd7YQgRW2nD22h7q60JQ=="


def metadata_of(name: str) -> bytes:
    invite = load_invite(name)
    part = find_metadata(split_body(invite.header("content-type"), invite.body))
    assert part is not None
    return part.body


def document(body: str, namespace: str = "urn:ietf:params:xml:ns:recording:1") -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><recording xmlns="{namespace}">{body}</recording>'.encode()


def kinds(metadata: RecordingMetadata) -> list[str]:
    return [warning.kind.value for warning in metadata.warnings]


def texts(metadata: RecordingMetadata) -> list[str]:
    return [str(warning) for warning in metadata.warnings]


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
            uri="sip:bob@biloxi.com",
        ),
        Participant(
            id="zSfPoSvdSDCmU3A3TRDxAw==",
            aor="sip:Paul@biloxi.com",
            name="Paul",
            send=["8zc6e0lYTlWIINA6GR+3ag==", "EiXGlc+4TruqqoDaNE76ag=="],
            recv=["UAAMm5GRQKSCMVvLyl4rFw==", "i1Pz3to5hGk8fuXl+PbwCw=="],
            associate_time="2010-12-16T23:41:07Z",
            uri="sip:Paul@biloxi.com",
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
    assert texts(metadata) == ["participantstreamassoc names unknown participant DyxVShKXEeaAO/FyJSj9YQ=="]
    assert kinds(metadata) == ["unknown_participant"]
    first, second = metadata.participants
    assert first.send == ["DyxVShKXEeaAO/FyJSj9YQ=="]
    assert second.send == [] and second.aor == "sip:8001@172.17.12.99"


def test_broadworks_recording_metadata_root_is_a_known_dialect() -> None:
    metadata = parse_metadata(metadata_of("broadworks_invite.sip"))
    assert metadata.warnings == []
    assert (metadata.dialect.namespace, metadata.dialect.root) == (
        "urn:ietf:params:xml:ns:siprec",
        "recording_metadata",
    )
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
    assert (metadata.datamode, texts(metadata)) == (datamode, warnings)


def test_missing_datamode_is_complete() -> None:
    metadata = parse_metadata(document('<participant participant_id="cDE="/>'))
    assert metadata.datamode == "complete" and metadata.warnings == []


def test_partial_update_may_name_streams_it_does_not_carry() -> None:
    update = '<datamode>partial</datamode><participantstreamassoc participant_id="cDE="><send>czE=</send>'
    update += '</participantstreamassoc><participant participant_id="cDE="/>'
    assert parse_metadata(document(update)).warnings == []
    complete = update.replace("partial", "complete")
    assert texts(parse_metadata(document(complete))) == ["participant cDE= refers to unknown stream czE="]


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
    assert kinds(metadata) == [
        "missing_id",
        "missing_id",
        "missing_id",
        "missing_label",
        "missing_id",
        "no_stream_association",
    ]
    assert texts(metadata) == [
        "<session> without an id",
        "<participant> without an id, called participant-1",
        "<stream> without an id ignored",
        "stream czE= has no label",
        "<participantstreamassoc> without a participant_id ignored",
        "no participant is said to send any stream; streams map to parties by m-line order",
    ]
    assert metadata.participants[0].id == "participant-1"


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
    assert texts(metadata) == ["participant cDE= listed twice, merged"]
    assert kinds(metadata) == ["participant_merged"]


def test_warnings_read_as_their_text() -> None:
    metadata = parse_metadata(document("<datamode>delta</datamode>" + '<participant participant_id="cDE="/>'))
    (warning,) = metadata.warnings
    assert (warning.kind, warning.message) == (WarningKind.UNKNOWN_DATAMODE, str(warning))
    assert f"metadata: {warning}" == "metadata: unknown datamode 'delta', taken as complete"


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (b'<recording><participant id="p"/></recording>', ["unknown_namespace"]),
        (b'<recording_metadata><participant id="p"/></recording_metadata>', ["unknown_namespace"]),
        (
            b'<metadata xmlns="urn:example"><participant id="p"/></metadata>',
            ["unknown_namespace", "unknown_root"],
        ),
        (
            document('<participant participant_id="p"/>')
            .replace(b"<recording ", b"<recording_metadata ")
            .replace(b"</recording>", b"</recording_metadata>"),
            ["unknown_root"],
        ),
        (
            document('<participant participant_id="p"/>', namespace="urn:ietf:params:xml:ns:siprec"),
            ["unknown_root"],
        ),
    ],
)
def test_root_and_namespace_outside_the_known_dialects(xml: bytes, expected: list[str]) -> None:
    metadata = parse_metadata(xml)
    assert kinds(metadata) == expected
    assert [p.id for p in metadata.participants] == ["p"]


def test_aor_shapes_are_cleaned_and_read_as_numbers() -> None:
    body = (
        '<participant participant_id="a"><nameID aor="sip: 06 30 123 4567 @10.0.0.1"/></participant>'
        '<participant participant_id="b"><nameID aor="&quot;Kiss Bela&quot; &lt;sip:+3612345678@pbx&gt;;tag=x"/>'
        "</participant>"
        '<participant participant_id="c"><nameID aor="36705550123@pbx;user=phone"><name>C</name></nameID>'
        "</participant>"
        '<participant participant_id="d"><aor>tel:+36-1-555-0100</aor></participant>'
        '<participant participant_id="e"><nameID aor="sip:alice@example.com"/></participant>'
    )
    metadata = parse_metadata(document(body))
    assert [(p.uri, p.number.e164 if p.number else None, p.name) for p in metadata.participants] == [
        ("sip:06301234567@10.0.0.1", "+36301234567", None),
        ("sip:+3612345678@pbx", "+3612345678", "Kiss Bela"),
        ("sip:36705550123@pbx", "+36705550123", "C"),
        ("tel:+36-1-555-0100", "+3615550100", None),
        ("sip:alice@example.com", None, None),
    ]
    assert metadata.participants[0].aor == "sip: 06 30 123 4567 @10.0.0.1"  # kept as sent
    assert texts(metadata) == [
        "participant a AOR 'sip: 06 30 123 4567 @10.0.0.1' cleaned (whitespace)",
        "participant b AOR '\"Kiss Bela\" <sip:+3612345678@pbx>;tag=x' cleaned (brackets)",
    ]


def test_leaving_is_read_from_the_association_or_the_participant() -> None:
    body = (
        '<participant participant_id="a"><nameID aor="sip:1001@pbx"/><send>s1</send></participant>'
        '<participant participant_id="b"><nameID aor="sip:1002@pbx"/><send>s2</send>'
        "<disassociate-time>2024-03-11T11:53:12Z</disassociate-time></participant>"
        '<stream stream_id="s1"><label>1</label></stream><stream stream_id="s2"><label>2</label></stream>'
        '<participantsessionassoc participant_id="a" session_id="x">'
        "<associate-time>2024-03-11T11:50:00Z</associate-time>"
        "<disassociate-time>2024-03-11T11:52:00Z</disassociate-time></participantsessionassoc>"
    )
    metadata = parse_metadata(document(body))
    assert [(p.associate_time, p.left_at) for p in metadata.participants] == [
        ("2024-03-11T11:50:00Z", "2024-03-11T11:52:00Z"),
        (None, "2024-03-11T11:53:12Z"),
    ]
    assert metadata.warnings == []


def test_partial_update_associating_a_participant_it_does_not_describe() -> None:
    body = (
        "<datamode>partial</datamode>"
        '<participantsessionassoc participant_id="b" session_id="x">'
        "<disassociate-time>2024-03-12T15:02:10Z</disassociate-time></participantsessionassoc>"
        '<participantstreamassoc participant_id="c"><send>s2</send></participantstreamassoc>'
    )
    metadata = parse_metadata(document(body))
    assert [(p.id, p.aor, p.send, p.left_at) for p in metadata.participants] == [
        ("c", None, ["s2"], None),
        ("b", None, [], "2024-03-12T15:02:10Z"),
    ]
    assert metadata.warnings == []
    complete = parse_metadata(document(body.replace("partial", "complete")))
    assert kinds(complete) == ["unknown_participant", "no_participants"]


def test_bogus_times_are_one_warning() -> None:
    body = (
        "<session session_id='s'><start-time>1970-05-13T03:29:05Z</start-time></session>"
        "<participant participant_id='a'><nameID aor='sip:1@h'/><associate-time>yesterday</associate-time>"
        "</participant>"
        "<participantsessionassoc participant_id='a' session_id='s'>"
        "<associate-time>1970-05-13T03:29:05Z</associate-time></participantsessionassoc>"
    )
    metadata = parse_metadata(document(body))
    assert texts(metadata) == [
        "timestamps ignored (unreadable or before 2000): 1970-05-13T03:29:05Z, yesterday"
    ]
    assert metadata.start_time == "1970-05-13T03:29:05Z" and metadata.started_at is None


def test_sip_session_id_folded_over_lines() -> None:
    metadata = parse_metadata(fixture("rfc7865_appendix_a.xml"))
    assert metadata.sip_session_ids == [
        "ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2"
    ]


def test_vendor_blocks_are_kept_with_the_element_they_belong_to() -> None:
    metadata = parse_metadata(fixture("rfc7865_appendix_a.xml"))
    assert [(e.vendor.value, e.parent, e.parent_id) for e in metadata.extensions] == [
        ("other", "group", "7+OTCyoxTmqmqyA/1weDAg=="),
        ("other", "session", RFC_SESSION),
        ("other", "participant", "srfBElmCRp2QB23b7Mpk0w=="),
        ("other", "participant", "zSfPoSvdSDCmU3A3TRDxAw=="),
    ]
    group = metadata.extensions[0]
    assert group.xml == (
        '<call-center xmlns="urn:ietf:params:xml:ns:callcenter"><supervisor>sip:alice@atlanta.com</supervisor>'
        '</call-center><mydata xmlns="http://example.com/my"><structure>structure!</structure>'
        "<whatever>structure</whatever></mydata>"
    )
    assert metadata.dialect.vendors == ["other"]


def test_extensiondata_parent_attribute_names_the_owner() -> None:
    metadata = parse_metadata(metadata_of("broadworks_invite.sip"))
    (block,) = metadata.extensions
    assert (block.vendor.value, block.parent, block.parent_id) == (
        "broadworks",
        "session",
        "urn:uuid:3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
    )
    assert block.fields["broadWorksRecordingMetadata/callType/origCall/callingPartyNumber"] == (
        "sip:+3614567890@voip.example.hu"
    )


NORMALISER = (
    "addresses",
    "attribution",
    "dialects",
    "facts",
    "merge",
    "metadata",
    "model",
    "numbers",
    "reader",
    "timestamps",
    "vendor",
    "warning_kinds",
    "xmltree",
)
PURE = {
    "__future__",
    "collections",
    "dataclasses",
    "datetime",
    "enum",
    "re",
    "typing",
    "urllib",
    "xml",
    "defusedxml",
}


def test_the_normaliser_does_no_io() -> None:
    package = Path(siprec_server.siprec.__file__).parent
    for name in NORMALISER:
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= PURE, f"{name}.py imports {roots - PURE}"
