"""Channel layout: caller left, callee right, from metadata when it maps every stream, else m-line order."""

from __future__ import annotations

from siprec_server.siprec import ChannelLayout, RecordingOffer, assign_channels, parse_metadata, parse_offer

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


def test_more_than_two_streams_unmapped_ones_by_index() -> None:
    recording = offer("acme_invite.sip")
    layout = assign_channels(recording.metadata, ["2", "1", "conference-3", None])
    assert layout.stream_channels == [1, 0, 0, 1]
    assert layout.source == "order" and layout.channels == 2
