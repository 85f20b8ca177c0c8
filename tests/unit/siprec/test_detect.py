"""Recognising recording sessions (RFC 7866 §6.1) from each of the signals SRCs send."""

from __future__ import annotations

import pytest

from siprec_server.siprec import BodyPart, find_metadata, find_sdp, is_recording_session, split_body

from .traffic import INVITES, load_invite

SDP = BodyPart(content_type="application/sdp", params={}, headers={}, body=b"v=0\r\n", disposition=None)


def part(content_type: str, disposition: str | None = None) -> BodyPart:
    return BodyPart(content_type=content_type, params={}, headers={}, body=b"<x/>", disposition=disposition)


@pytest.mark.parametrize("name", INVITES)
def test_every_src_invite_is_a_recording_session(name: str) -> None:
    invite = load_invite(name)
    parts = split_body(invite.header("content-type"), invite.body)
    assert is_recording_session(
        require=invite.values("require"), contacts=invite.values("contact"), parts=parts
    )


def test_broadworks_is_recognised_by_its_contact_alone() -> None:
    invite = load_invite("broadworks_invite.sip")
    assert invite.values("require") == []
    assert is_recording_session(require=[], contacts=invite.values("contact"), parts=[SDP])


def test_ordinary_call_is_not_a_recording_session() -> None:
    contacts = ['"Kovács Anna" <sip:+36209876543@10.10.20.5:5060;transport=udp>;expires=3600']
    assert not is_recording_session(require=["100rel", "timer"], contacts=contacts, parts=[SDP])
    assert not is_recording_session(require=[], contacts=[], parts=[])


@pytest.mark.parametrize("require", [["siprec"], ["timer, siprec"], ["100rel", "SIPREC"], [" siprec "]])
def test_require_siprec(require: list[str]) -> None:
    assert is_recording_session(require=require, contacts=[], parts=[SDP])


def test_require_without_siprec_tag() -> None:
    assert not is_recording_session(require=["siprec-ext, timer"], contacts=[], parts=[SDP])


@pytest.mark.parametrize(
    "contact",
    [
        "<sip:2000@src.example.com>;+sip.src",
        "<sip:src@198.51.100.40:5060;+sip.src>",
        "<sip:+3614567890@192.0.2.33:5060;transport=udp>;src",
        "<sip:10.10.10.1:5060>;+SIP.SRC;expires=180",
        "<sip:a@192.0.2.1;src>",
        '"SBC" <sip:a@192.0.2.1>;+sip.src="TRUE"',
        "<sip:other@192.0.2.9>;q=0.5, <sip:a@192.0.2.1>;+sip.src",
        "sip:src@203.0.113.5:5062;src",
    ],
)
def test_src_feature_tag_on_contact(contact: str) -> None:
    assert is_recording_session(require=[], contacts=[contact], parts=[SDP])


@pytest.mark.parametrize(
    "contact",
    [
        "<sip:src@192.0.2.1>",
        "<sip:a@src.example.com>",
        '"Record;src" <sip:a@192.0.2.1>',
        "<sip:a@192.0.2.1>;+sip.srcx",
        "<sip:a@192.0.2.1;transport=udp>;source",
    ],
)
def test_src_lookalikes_on_contact(contact: str) -> None:
    assert not is_recording_session(require=[], contacts=[contact], parts=[SDP])


@pytest.mark.parametrize("content_type", ["application/rs-metadata+xml", "application/rs-metadata"])
def test_metadata_part_alone(content_type: str) -> None:
    assert is_recording_session(require=[], contacts=[], parts=[SDP, part(content_type)])


def test_find_parts_among_three() -> None:
    invite = load_invite("ribbon_gtd_invite.sip")
    parts = split_body(invite.header("content-type"), invite.body)
    sdp, metadata = find_sdp(parts), find_metadata(parts)
    assert sdp is not None and sdp.body.startswith(b"v=0")
    assert metadata is not None and metadata.content_type == "application/rs-metadata+xml"
    assert b"<recording" in metadata.body


def test_find_sdp_in_capitals() -> None:
    invite = load_invite("rfc7866_invite.sip")
    parts = split_body(invite.header("content-type"), invite.body)
    sdp, metadata = find_sdp(parts), find_metadata(parts)
    assert sdp is not None and sdp.body.startswith(b"v=0")
    assert metadata is not None and metadata.content_type == "application/rs-metadata"


def test_metadata_found_by_recording_session_disposition() -> None:
    tagged = part("application/xml", "recording-session")
    assert find_metadata([SDP, part("application/xml"), tagged]) is tagged
    assert is_recording_session(require=[], contacts=[], parts=[SDP, tagged])


def test_nothing_to_find() -> None:
    assert find_sdp([part("application/gtd")]) is None
    assert find_metadata([SDP, part("application/xml"), part("application/gtd", "signal")]) is None
