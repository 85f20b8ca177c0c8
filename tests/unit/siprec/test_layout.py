"""Channel layout: mono for one m-line, caller left and callee right for two, one channel per party beyond."""

from __future__ import annotations

import pytest

from siprec_server.siprec import ChannelLayout, RecordingOffer, assign_channels, parse_metadata, parse_offer
from siprec_server.siprec.layout import MAX_CHANNELS, LayoutKind, extend_layout

from .traffic import fixture, load_invite


def offer(name: str) -> RecordingOffer:
    invite = load_invite(name)
    return parse_offer(invite.header("content-type"), invite.body)


def two_party(first_time: str, second_time: str, *, sends: tuple[str, str] = ("czE=", "czI=")) -> bytes:
    return (
        '<recording xmlns="urn:ietf:params:xml:ns:recording:1">'
        '<participant participant_id="cDE="><nameID aor="sip:first@example.com"/>'
        f"<associate-time>{first_time}</associate-time><send>{sends[0]}</send></participant>"
        '<participant participant_id="cDI="><nameID aor="sip:second@example.com"/>'
        f"<associate-time>{second_time}</associate-time><send>{sends[1]}</send></participant>"
        '<stream stream_id="czE="><label>1</label></stream><stream stream_id="czI="><label>2</label></stream>'
        "</recording>"
    ).encode()


def test_acme_caller_left_callee_right() -> None:
    recording = offer("acme_invite.sip")
    layout = assign_channels(recording.metadata, recording.labels)
    assert layout == ChannelLayout(
        channels=2,
        stream_channels=[0, 1],
        participants=["sip:+36301234567@sbc.example.hu", "sip:+3612345678@pbx.example.hu"],
        source="metadata",
    )


def test_metadata_beats_m_line_order() -> None:
    recording = offer("acme_invite.sip")
    layout = assign_channels(recording.metadata, ["2", "1"])
    assert layout.stream_channels == [1, 0] and layout.source == "metadata"


def test_caller_is_the_earliest_associated_participant() -> None:
    # The callee is listed first but joined 4.65 s after the caller.
    recording = offer("quoted_boundary_invite.sip")
    layout = assign_channels(recording.metadata, recording.labels)
    assert layout.participants == ["tel:+36301112233", "sip:3001@cc.example.org"]
    assert layout.stream_channels == [0, 1] and layout.source == "metadata"


def test_cisco_association_times() -> None:
    recording = offer("cisco_cube_invite.sip")
    layout = assign_channels(recording.metadata, recording.labels)
    assert layout.participants == ["sip:+36209876543@10.10.20.5", "sip:2001@10.10.30.12"]
    assert layout.stream_channels == [0, 1]


def test_associate_time_orders_when_document_order_disagrees() -> None:
    metadata = parse_metadata(two_party("2024-03-11T09:00:05Z", "2024-03-11T09:00:01Z"))
    layout = assign_channels(metadata, ["1", "2"])
    assert layout.participants == ["sip:second@example.com", "sip:first@example.com"]
    assert layout.stream_channels == [1, 0]


def test_bogus_1970_time_falls_back_to_document_order() -> None:
    metadata = parse_metadata(two_party("2024-03-11T09:00:05Z", "1970-01-01T00:00:00Z"))
    layout = assign_channels(metadata, ["1", "2"])
    assert layout.participants == ["sip:first@example.com", "sip:second@example.com"]
    assert layout.stream_channels == [0, 1]


def test_misassociated_cisco_metadata_falls_back_to_order() -> None:
    metadata = parse_metadata(fixture("cisco_cube_misassociated.xml"))
    layout = assign_channels(metadata, ["1", "2"])
    assert layout == ChannelLayout(
        channels=2, stream_channels=[0, 1], participants=[None, None], source="order"
    )


def test_no_metadata_unlabelled_or_unknown_labels_fall_back_to_order() -> None:
    metadata = offer("acme_invite.sip").metadata
    expected = ChannelLayout(channels=2, stream_channels=[0, 1], participants=[None, None], source="order")
    assert assign_channels(None, ["1", "2"]) == expected
    assert assign_channels(metadata, [None, None]) == expected
    assert assign_channels(metadata, ["1", None]) == expected
    assert assign_channels(metadata, ["10", "20"]) == expected


def test_one_sender_of_both_streams_falls_back_to_order() -> None:
    metadata = parse_metadata(
        two_party("2024-03-11T09:00:01Z", "2024-03-11T09:00:05Z", sends=("czE=", "czE="))
    )
    assert assign_channels(metadata, ["1", "2"]).source == "order"


def test_mixed_single_stream_is_mono_without_a_party() -> None:
    recording = offer("broadworks_invite.sip")
    layout = assign_channels(recording.metadata, recording.labels)
    assert layout == ChannelLayout(channels=1, stream_channels=[0], participants=[None], source="order")


def test_single_stream_with_one_sender() -> None:
    recording = offer("rfc7866_invite.sip")
    layout = assign_channels(recording.metadata, recording.labels)
    assert layout == ChannelLayout(
        channels=1, stream_channels=[0], participants=["sip:2000@example.com"], source="metadata"
    )


def test_no_streams() -> None:
    assert assign_channels(None, []) == ChannelLayout(
        channels=1, stream_channels=[], participants=[None], source="order"
    )


def test_rfc7865_example_four_streams_two_per_party() -> None:
    metadata = parse_metadata(fixture("rfc7865_appendix_a.xml"))
    layout = assign_channels(metadata, ["96", "98", "97", "99"])
    assert layout == ChannelLayout(
        channels=2,
        stream_channels=[0, 1, 0, 1],
        participants=["sip:bob@biloxi.com", "sip:Paul@biloxi.com"],
        source="metadata",
    )


def test_more_than_two_streams_unmapped_ones_get_channels_of_their_own() -> None:
    recording = offer("acme_invite.sip")
    layout = assign_channels(recording.metadata, ["2", "1", "conference-3", None])
    assert layout == ChannelLayout(
        channels=4,
        stream_channels=[1, 0, 2, 3],
        participants=["sip:+36301234567@sbc.example.hu", "sip:+3612345678@pbx.example.hu", None, None],
        source="partial",
    )
    assert layout.kind is LayoutKind.MULTI


def test_kind_follows_the_channel_count() -> None:
    assert assign_channels(None, ["1"]).kind is LayoutKind.MONO
    assert assign_channels(None, ["1", "2"]).kind is LayoutKind.STEREO
    assert assign_channels(None, ["1", "2", "3"]).kind is LayoutKind.MULTI
    assert LayoutKind.MULTI == "multi"


def conference(parties: list[tuple[str, str]], *, mixed: tuple[str, ...] = ()) -> bytes:
    """RFC 7865 metadata of a conference: party i (aor, associate-time) sends stream `s{i}` labelled `{i}`.

    `mixed` names parties that also send the extra stream `mix` (label `mix`), as a conference bridge would.
    """
    session = "c2Vzc2lvbi0x"
    body = [f'<session session_id="{session}"/>']
    for i, (aor, _) in enumerate(parties):
        body.append(f'<participant participant_id="p{i}"><nameID aor="{aor}"/></participant>')
    for i in range(len(parties)):
        body.append(f'<stream stream_id="s{i}" session_id="{session}"><label>{i}</label></stream>')
    body.append(f'<stream stream_id="mix" session_id="{session}"><label>mix</label></stream>')
    for i, (_, time) in enumerate(parties):
        body.append(
            f'<participantsessionassoc participant_id="p{i}" session_id="{session}">'
            f"<associate-time>{time}</associate-time></participantsessionassoc>"
        )
        sends = [f"s{i}"] + (["mix"] if f"p{i}" in mixed else [])
        body.append(
            f'<participantstreamassoc participant_id="p{i}">'
            + "".join(f"<send>{stream}</send>" for stream in sends)
            + "</participantstreamassoc>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><recording xmlns="urn:ietf:params:xml:ns:recording:1">'
        "<datamode>complete</datamode>" + "".join(body) + "</recording>"
    ).encode()


# A four-party conference: the chair (p2) dialled in first, listed third in the document.
FOUR = [
    ("sip:anna@pbx.example.hu", "2024-05-02T10:00:07Z"),
    ("sip:bela@pbx.example.hu", "2024-05-02T10:00:09+00:00"),
    ("sip:chair@pbx.example.hu", "2024-05-02T10:00:01Z"),
    ("tel:+3613334444", "2024-05-02T12:00:08+02:00"),  # 10:00:08Z
]


def test_conference_gets_one_channel_per_party_caller_first_by_associate_time() -> None:
    metadata = parse_metadata(conference(FOUR))
    layout = assign_channels(metadata, ["0", "1", "2", "3"])
    assert layout == ChannelLayout(
        channels=4,
        stream_channels=[1, 3, 0, 2],
        participants=[
            "sip:chair@pbx.example.hu",
            "sip:anna@pbx.example.hu",
            "tel:+3613334444",
            "sip:bela@pbx.example.hu",
        ],
        source="metadata",
    )
    assert layout.participant_ids == ["p2", "p0", "p3", "p1"]
    assert layout.kind is LayoutKind.MULTI


def test_conference_without_credible_times_follows_document_order() -> None:
    parties = [*FOUR[:3], ("tel:+3613334444", "1970-01-01T00:00:00Z")]
    layout = assign_channels(parse_metadata(conference(parties)), ["3", "2", "1", "0"])
    assert layout.stream_channels == [3, 2, 1, 0]
    assert layout.participants[0] == "sip:anna@pbx.example.hu"


def test_conference_bridge_mix_and_unknown_streams_get_their_own_channels() -> None:
    metadata = parse_metadata(conference(FOUR[:3], mixed=("p0", "p1")))
    layout = assign_channels(metadata, ["mix", "0", None, "1", "2", "no-such-label"])
    assert layout.stream_channels == [3, 1, 4, 2, 0, 5]
    assert layout.participants == [
        "sip:chair@pbx.example.hu",
        "sip:anna@pbx.example.hu",
        "sip:bela@pbx.example.hu",
        None,
        None,
        None,
    ]
    assert layout.source == "partial"


def test_three_streams_without_metadata_are_three_channels_in_m_line_order() -> None:
    assert assign_channels(None, ["10", "20", "30"]) == ChannelLayout(
        channels=3, stream_channels=[0, 1, 2], participants=[None, None, None], source="order"
    )


def test_eight_parties_fill_a_flac_file_and_more_share_the_last_channel() -> None:
    parties = [(f"sip:{100 + i}@pbx.example.hu", f"2024-05-02T10:00:{10 + i:02d}Z") for i in range(10)]
    metadata = parse_metadata(conference(parties))
    eight = assign_channels(metadata, [str(i) for i in range(8)])
    assert (eight.channels, eight.stream_channels, eight.source) == (8, list(range(8)), "metadata")
    assert eight.participants[7] == "sip:107@pbx.example.hu"
    ten = assign_channels(metadata, [str(i) for i in range(10)])
    assert ten.channels == MAX_CHANNELS
    assert ten.stream_channels == [0, 1, 2, 3, 4, 5, 6, 7, 7, 7]
    assert ten.participants[:7] == [f"sip:{100 + i}@pbx.example.hu" for i in range(7)]
    assert ten.participants[7] is None
    assert assign_channels(None, [str(i) for i in range(12)]).stream_channels == [*range(7), 7, 7, 7, 7, 7]


def test_one_party_sending_every_stream_is_mono() -> None:
    layout = assign_channels(parse_metadata(fixture("rfc7865_appendix_a.xml")), ["96", "97", "97"])
    assert layout == ChannelLayout(
        channels=1, stream_channels=[0, 0, 0], participants=["sip:bob@biloxi.com"], source="metadata"
    )


def test_participant_listed_twice_gets_one_channel() -> None:
    doubled = conference(FOUR[:3]).replace(
        b"</recording>",
        b'<participant participant_id="p1"><nameID aor="sip:bela@pbx.example.hu"/></participant></recording>',
    )
    layout = assign_channels(parse_metadata(doubled), ["0", "1", "2"])
    assert layout.channels == 3 and sorted(layout.stream_channels) == [0, 1, 2]


def test_stream_added_mid_call_joins_its_senders_channel_or_the_last() -> None:
    metadata = parse_metadata(conference(FOUR))
    stereo = assign_channels(metadata, ["2", "0"])
    assert stereo.participants == ["sip:chair@pbx.example.hu", "sip:anna@pbx.example.hu"]
    # The re-offer adds Bela's stream and a second stream of the chair's (its sender has a channel).
    again = parse_metadata(conference(FOUR).replace(b"<send>s2</send>", b"<send>s2</send><send>mix</send>"))
    extended = extend_layout(stereo, again, ["2", "0", "1", "mix"])
    assert extended.stream_channels == [0, 1, 1, 0]
    assert extended.channels == 2 and extended.participants == stereo.participants
    assert extended.source == "partial"  # Bela had no channel of his own: on the callee's side
    assert extend_layout(stereo, metadata, ["2", "0"]) is stereo
    assert extend_layout(stereo, None, ["2", "0", "x"]).stream_channels == [0, 1, 1]


def test_added_stream_found_by_aor_when_the_layout_has_no_ids() -> None:
    metadata = parse_metadata(conference(FOUR))
    built_by_hand = ChannelLayout(
        channels=2,
        stream_channels=[0, 1],
        participants=["sip:bela@pbx.example.hu", "sip:anna@pbx.example.hu"],
        source="metadata",
    )
    assert extend_layout(built_by_hand, metadata, ["a", "b", "1", "0"]).stream_channels == [0, 1, 0, 1]


def test_mono_recording_takes_added_streams_into_its_only_channel() -> None:
    recording = offer("broadworks_invite.sip")
    mono = assign_channels(recording.metadata, recording.labels)
    extended = extend_layout(mono, recording.metadata, [*recording.labels, "new"])
    assert extended.stream_channels == [0, 0] and extended.kind is LayoutKind.MONO


@pytest.mark.parametrize("labels", [["1", "1", "1"], ["", " ", "\u0000"], ["1", "2", "2", "1"]])
def test_repeated_and_odd_labels_still_give_a_layout(labels: list[str]) -> None:
    metadata = offer("acme_invite.sip").metadata
    layout = assign_channels(metadata, labels)
    assert len(layout.stream_channels) == len(labels)
    assert all(0 <= channel < layout.channels <= MAX_CHANNELS for channel in layout.stream_channels)
    assert len(layout.participants) == layout.channels


def test_m_lines_that_are_not_recorded_take_no_channel() -> None:
    # Audio and video per party (RFC 7865 Appendix A shape), the video m-lines answered with port 0.
    metadata = offer("acme_invite.sip").metadata
    layout = assign_channels(metadata, ["1", "v1", "2", "v2"], recorded=[True, False, True, False])
    assert layout == ChannelLayout(
        channels=2,
        stream_channels=[0, 0, 1, 0],
        participants=["sip:+36301234567@sbc.example.hu", "sip:+3612345678@pbx.example.hu"],
        source="metadata",
    )
    assert assign_channels(None, ["a", "b", "c"], recorded=[False, True, False]).kind is LayoutKind.MONO
    conference_layout = assign_channels(None, ["a", "b", "c", "d"], recorded=[True, True, False, True])
    assert conference_layout.stream_channels == [0, 1, 0, 2]
    with pytest.raises(ValueError, match="recorded flags"):
        assign_channels(None, ["a", "b"], recorded=[True])
