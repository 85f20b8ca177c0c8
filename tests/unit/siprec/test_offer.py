"""Whole recording-session offers: split, read, answered and laid out, as the SIPREC session will use them."""

from __future__ import annotations

import pytest

from siprec_server.siprec import (
    SdpError,
    SiprecBodyError,
    assign_channels,
    build_answer,
    parse_offer,
    parse_sdp,
)

from .traffic import INVITES, fixture, load_invite


@pytest.mark.parametrize(
    ("name", "labels", "participants"),
    [
        ("acme_invite.sip", ["1", "2"], 2),
        ("cisco_cube_invite.sip", ["1", "2"], 2),
        ("broadworks_invite.sip", ["1"], 2),
        ("ribbon_gtd_invite.sip", ["10", "20"], 2),
        ("lf_only_invite.sip", ["0", "1"], 2),
        ("quoted_boundary_invite.sip", ["a_leg", "b_leg"], 2),
        ("rfc7866_invite.sip", ["1"], 1),
    ],
)
def test_src_offers(name: str, labels: list[str], participants: int) -> None:
    invite = load_invite(name)
    offer = parse_offer(invite.header("content-type"), invite.body)
    assert offer.labels == labels
    assert offer.metadata is not None and offer.metadata_error is None
    assert len(offer.metadata.participants) == participants
    assert offer.metadata_raw is not None and offer.metadata_raw.lstrip().startswith(b"<?xml")
    assert offer.metadata_raw in invite.body
    assert len(offer.parts) == (3 if name == "ribbon_gtd_invite.sip" else 2)


def test_every_offer_gets_an_answer_that_echoes_its_labels() -> None:
    for name in INVITES:
        invite = load_invite(name)
        offer = parse_offer(invite.header("content-type"), invite.body)
        ports = [40000 + 2 * index for index in range(len(offer.sdp.media))]
        answer = build_answer(offer.sdp, address="192.0.2.200", ports=ports, session_id=7, session_version=1)
        answered = parse_sdp(answer.body)
        assert [m.label for m in answered.media] == offer.labels, name
        assert all(m.direction == "recvonly" and len(m.formats) <= 2 for m in answered.media), name
        layout = assign_channels(offer.metadata, offer.labels)
        assert len(layout.stream_channels) == len(answer.streams), name


def test_hostile_metadata_still_records_the_call() -> None:
    invite = load_invite("acme_invite.sip")
    start = invite.body.index(b"<?xml")
    end = invite.body.index(b"</recording>") + len(b"</recording>")
    hostile = fixture("billion_laughs.xml").strip()
    body = invite.body[:start] + hostile + invite.body[end:]
    offer = parse_offer(invite.header("content-type"), body)
    assert offer.metadata is None
    assert offer.metadata_error == "metadata refused: DTDForbidden"
    assert offer.metadata_raw == hostile
    assert offer.labels == ["1", "2"]
    layout = assign_channels(offer.metadata, offer.labels)
    assert layout.stream_channels == [0, 1] and layout.source == "order"


def test_broken_metadata_is_kept_raw() -> None:
    invite = load_invite("cisco_cube_invite.sip")
    body = invite.body.replace(b"</recording> ", b"</recordin> ")
    offer = parse_offer(invite.header("content-type"), body)
    assert offer.metadata is None
    assert offer.metadata_error is not None and "not well-formed" in offer.metadata_error
    assert offer.metadata_raw is not None and b"</recordin>" in offer.metadata_raw


def test_plain_sdp_reoffer_has_no_metadata() -> None:
    sdp = b"v=0\r\no=- 1274751 131745 IN IP4 10.23.90.68\r\ns=-\r\nc=IN IP4 10.23.90.86\r\nt=0 0\r\n"
    sdp += b"m=audio 33098 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=label:1\r\na=inactive\r\n"
    offer = parse_offer("application/sdp", sdp)
    assert offer.metadata is None and offer.metadata_raw is None and offer.metadata_error is None
    assert offer.sdp.origin.session_version == "131745"
    assert offer.sdp.media[0].direction == "inactive"


def test_metadata_without_sdp_is_answered_400() -> None:
    xml = b'<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>partial</datamode></recording>'
    body = b"--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n" + xml + b"\r\n--b--\r\n"
    with pytest.raises(SiprecBodyError, match="no application/sdp part in application/rs-metadata\\+xml"):
        parse_offer("multipart/mixed;boundary=b", body)
    with pytest.raises(SiprecBodyError, match="empty body"):
        parse_offer("", b"")


def test_unreadable_sdp_is_answered_488() -> None:
    invite = load_invite("lf_only_invite.sip")
    body = invite.body.replace(b"o=- 3921551234 3921551234 IN IP4 203.0.113.5\n", b"")
    with pytest.raises(SdpError, match="no o= line"):
        parse_offer(invite.header("content-type"), body)
