"""The generated SIPREC offer is read by the server's own SIPREC layer exactly as intended."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from load_tests.loadgen import Codec, SiprecUac, offer_body, parties
from siprec_server.sip import SipRequest, parse_message
from siprec_server.siprec import assign_channels, is_recording_session, parse_offer

NOW = datetime(2026, 11, 28, 14, 3, 7, 250000, tzinfo=UTC)


def _invite(index: int, codec: Codec = Codec.PCMU) -> SipRequest:
    rng = random.Random(index)
    body, content_type = offer_body(
        index, host="127.0.0.1", ports=(40100, 40102), codec=codec, rng=rng, now=NOW
    )
    uac = SiprecUac(
        call_id=f"load-{index}@loadgen.hangtar.invalid",
        local=("127.0.0.1", 5080),
        srs=("127.0.0.1", 5060),
        body=body,
        content_type=content_type,
        rng=rng,
    )
    [datagram] = uac.invite(now=100.0)
    message = parse_message(datagram.data)
    assert isinstance(message, SipRequest)
    return message


def test_the_invite_is_a_recording_session_by_every_sign() -> None:
    invite = _invite(7)
    assert invite.method == "INVITE"
    assert invite.headers.get("Require") == "siprec"
    assert invite.headers.get("Contact") == "<sip:src@127.0.0.1:5080>;+sip.src"
    offer = parse_offer(invite.headers.get("Content-Type") or "", invite.body)
    assert is_recording_session(
        require=invite.headers.get_all("Require"),
        contacts=invite.headers.get_all("Contact"),
        parts=offer.parts,
    )
    assert [part.content_type for part in offer.parts] == ["application/sdp", "application/rs-metadata+xml"]


@pytest.mark.parametrize(
    ("codec", "rtpmap"), [(Codec.PCMU, "PCMU"), (Codec.PCMA, "PCMA"), (Codec.G722, "G722")]
)
def test_two_labelled_sendonly_streams_from_the_leg_ports(codec: Codec, rtpmap: str) -> None:
    offer = parse_offer(_invite(3, codec).headers.get("Content-Type") or "", _invite(3, codec).body)
    media = offer.sdp.media
    assert [m.label for m in media] == ["1", "2"]
    assert [m.port for m in media] == [40100, 40102]
    assert {m.direction for m in media} == {"sendonly"}
    assert [m.connection for m in media] == ["127.0.0.1", "127.0.0.1"]
    for m in media:
        assert m.rtpmap[codec.payload_type].encoding.upper() == rtpmap
        assert m.rtpmap[codec.payload_type].clock_rate == 8000  # G.722 too (RFC 3551 §4.5.2)
        assert m.ptime == 20


def test_metadata_names_caller_and_callee_with_numbers_and_who_sends_what() -> None:
    offer = parse_offer(_invite(42).headers.get("Content-Type") or "", _invite(42).body)
    metadata = offer.metadata
    assert metadata is not None and offer.metadata_error is None
    assert not metadata.warnings
    caller, callee = parties(42)
    assert caller.number == "+3612000042" and callee.number == "+36300000042"
    assert [p.aor for p in metadata.participants] == [caller.aor, callee.aor]
    assert [p.name for p in metadata.participants] == [caller.name, callee.name]
    streams = {s.id: s.label for s in metadata.streams}
    assert [[streams[s] for s in p.send] for p in metadata.participants] == [["1"], ["2"]]
    layout = assign_channels(metadata, offer.labels)
    assert layout.channels == 2
    assert layout.stream_channels == [0, 1]
    assert layout.source == "metadata"
    assert layout.participants == [caller.aor, callee.aor]


def test_each_call_has_its_own_identifiers() -> None:
    first = parse_offer(_invite(1).headers.get("Content-Type") or "", _invite(1).body).metadata
    second = parse_offer(_invite(2).headers.get("Content-Type") or "", _invite(2).body).metadata
    assert first is not None and second is not None
    assert set(first.session_ids).isdisjoint(second.session_ids)
    assert {p.id for p in first.participants}.isdisjoint({p.id for p in second.participants})
