"""Folding RFC 7865 `partial` updates into what is known of a recording session; `complete` replaces."""

from __future__ import annotations

from siprec_server.siprec.metadata import RecordingMetadata, WarningKind, merge_metadata, parse_metadata

BASE = (
    "<datamode>complete</datamode>"
    '<session session_id="s1"><start-time>2024-03-12T15:00:00Z</start-time></session>'
    '<participant participant_id="a"><nameID aor="sip:+36301234567@sbc"><name>Anna</name></nameID></participant>'
    '<participant participant_id="b"><nameID aor="sip:2001@pbx"/></participant>'
    '<stream stream_id="s-1" session_id="s1"><label>1</label></stream>'
    '<stream stream_id="s-2" session_id="s1"><label>2</label></stream>'
    '<participantsessionassoc participant_id="a" session_id="s1">'
    "<associate-time>2024-03-12T15:00:00Z</associate-time></participantsessionassoc>"
    '<participantsessionassoc participant_id="b" session_id="s1">'
    "<associate-time>2024-03-12T15:00:02Z</associate-time></participantsessionassoc>"
    '<participantstreamassoc participant_id="a"><send>s-1</send><recv>s-2</recv></participantstreamassoc>'
    '<participantstreamassoc participant_id="b"><send>s-2</send><recv>s-1</recv></participantstreamassoc>'
)


def parse(body: str) -> RecordingMetadata:
    xml = f'<recording xmlns="urn:ietf:params:xml:ns:recording:1">{body}</recording>'
    return parse_metadata(xml.encode())


def partial(body: str) -> RecordingMetadata:
    return parse("<datamode>partial</datamode>" + body)


def test_complete_replaces_everything() -> None:
    update = parse(BASE.replace("sip:2001@pbx", "sip:2002@pbx").replace("Anna", "Anna K"))
    assert merge_metadata(parse(BASE), update) is update


def test_partial_updates_a_known_participant_and_adds_a_new_one() -> None:
    update = partial(
        '<participant participant_id="b"><nameID aor="sip:06-1-555-0100@pbx;user=phone"><name>Recepcio</name>'
        "</nameID></participant>"
        '<participant participant_id="c"><nameID aor="tel:+36705550123"/></participant>'
        '<participantstreamassoc participant_id="c"><recv>s-1</recv></participantstreamassoc>'
    )
    merged = merge_metadata(parse(BASE), update)
    assert [(p.id, p.uri, p.name, p.send, p.recv, p.associate_time) for p in merged.participants] == [
        ("a", "sip:+36301234567@sbc", "Anna", ["s-1"], ["s-2"], "2024-03-12T15:00:00Z"),
        ("b", "sip:06-1-555-0100@pbx", "Recepcio", ["s-2"], ["s-1"], "2024-03-12T15:00:02Z"),
        ("c", "tel:+36705550123", None, [], ["s-1"], None),
    ]
    assert merged.datamode == "complete" and merged.session_ids == ["s1"]
    assert merged.start_time == "2024-03-12T15:00:00Z"
    assert merged.call.called_number is not None
    assert (merged.call.called_number.value, merged.call.called_number.source) == (
        "+3615550100",
        "participant[1].aor",
    )


def test_partial_without_address_keeps_the_known_one() -> None:
    update = partial(
        '<participant participant_id="a"><nameID><name>Anna Kovacs</name></nameID></participant>'
    )
    (anna, _) = merge_metadata(parse(BASE), update).participants
    assert (anna.aor, anna.uri, anna.name) == ("sip:+36301234567@sbc", "sip:+36301234567@sbc", "Anna Kovacs")
    assert anna.number is not None and anna.number.e164 == "+36301234567"


def test_streams_are_updated_and_added_by_id() -> None:
    update = partial(
        '<stream stream_id="s-2"><label>20</label></stream>'
        '<stream stream_id="s-3" session_id="s1"><label>3</label></stream>'
        '<participantstreamassoc participant_id="a"><send>s-3</send></participantstreamassoc>'
    )
    merged = merge_metadata(parse(BASE), update)
    assert [(s.id, s.label, s.session_id) for s in merged.streams] == [
        ("s-1", "1", "s1"),
        ("s-2", "20", "s1"),
        ("s-3", "3", "s1"),
    ]
    assert merged.participants[0].send == ["s-1", "s-3"]
    assert merged.stream_for_label("3") is not None and merged.senders_of("s-3")[0].id == "a"


def test_disassociation_marks_a_participant_gone_and_a_new_association_brings_it_back() -> None:
    leave = partial(
        '<participantsessionassoc participant_id="b" session_id="s1">'
        "<disassociate-time>2024-03-12T15:05:00Z</disassociate-time></participantsessionassoc>"
    )
    gone = merge_metadata(parse(BASE), leave)
    assert [(p.id, p.left_at) for p in gone.participants] == [("a", None), ("b", "2024-03-12T15:05:00Z")]
    assert gone.participants[1].send == ["s-2"]  # nobody took its stream over: kept
    back = partial(
        '<participantsessionassoc participant_id="b" session_id="s1">'
        "<associate-time>2024-03-12T15:06:00Z</associate-time></participantsessionassoc>"
    )
    returned = merge_metadata(gone, back)
    assert [(p.id, p.left_at, p.associate_time) for p in returned.participants] == [
        ("a", None, "2024-03-12T15:00:00Z"),
        ("b", None, "2024-03-12T15:00:02Z"),
    ]


def test_a_stream_taken_over_leaves_the_party_that_left() -> None:
    transfer = partial(
        '<participant participant_id="c"><nameID aor="sip:2040@pbx"/></participant>'
        '<participantsessionassoc participant_id="b" session_id="s1">'
        "<disassociate-time>2024-03-12T15:05:00Z</disassociate-time></participantsessionassoc>"
        '<participantstreamassoc participant_id="c"><send>s-2</send><recv>s-1</recv></participantstreamassoc>'
    )
    merged = merge_metadata(parse(BASE), transfer)
    assert [(p.id, p.send, p.recv, p.left_at is not None) for p in merged.participants] == [
        ("a", ["s-1"], ["s-2"], False),
        ("b", [], [], True),
        ("c", ["s-2"], ["s-1"], False),
    ]
    assert [p.id for p in merged.senders_of("s-2")] == ["c"]


def test_partial_without_base_is_kept_with_a_warning() -> None:
    update = partial('<participant participant_id="c"><nameID aor="sip:2040@pbx"/></participant>')
    merged = merge_metadata(None, update)
    assert merged.participants == update.participants and merged.datamode == "partial"
    assert [w.kind for w in merged.warnings] == [WarningKind.PARTIAL_WITHOUT_BASE]
    assert update.warnings == []


def test_merged_warnings_are_the_updates() -> None:
    base = parse(BASE + '<participant participant_id="a"><nameID aor="sip:+36301234567@sbc"/></participant>')
    update = partial('<stream stream_id="s-9"/>')
    assert [w.kind for w in base.warnings] == [WarningKind.PARTICIPANT_MERGED]
    assert [w.kind for w in merge_metadata(base, update).warnings] == [WarningKind.MISSING_LABEL]


def test_vendor_blocks_accumulate_and_the_newest_says_first() -> None:
    base = parse(
        BASE.replace(
            "<start-time>",
            '<extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata">'
            "<apkt:ucid>00FA080019001038F725B3;encoding=hex</apkt:ucid></extensiondata><start-time>",
        )
    )
    update = partial(
        '<group group_id="g1"><callData xmlns="urn:ietf:params:xml:ns:callData">'
        "<fromhdr>&lt;sip:+3612223333@gw&gt;;tag=1</fromhdr><gcid>77</gcid></callData></group>"
    )
    merged = merge_metadata(base, update)
    assert [e.vendor.value for e in merged.extensions] == ["oracle", "ribbon"]
    assert merged.dialect.vendors == ["oracle", "ribbon"]
    assert merged.group_ids == ["g1"]
    assert {kind: fact.source for kind, fact in merged.call.ids.items()} == {
        "gcid": "ribbon:callData/gcid",
        "ucid": "apkt:ucid",
    }
    assert merged.call.calling_number is not None
    assert (merged.call.calling_number.value, merged.call.calling_number.source) == (
        "+3612223333",
        "ribbon:callData/fromhdr",
    )
    again = merge_metadata(merged, update)
    assert [e.vendor.value for e in again.extensions] == ["oracle", "ribbon"]  # the same block is not doubled
