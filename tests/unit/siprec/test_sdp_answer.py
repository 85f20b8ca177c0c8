"""The recorder's SDP answer (RFC 3264 §6, design guide §2.3), checked by reading it back."""

from __future__ import annotations

import pytest

from siprec_server.siprec import NegotiatedStream, build_answer, find_sdp, parse_sdp, split_body

from .traffic import load_invite

HEAD = b"v=0\r\no=SRC 2890844526 2890844526 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"


def offer_from(name: str) -> bytes:
    invite = load_invite(name)
    sdp = find_sdp(split_body(invite.header("content-type"), invite.body))
    assert sdp is not None
    return sdp.body


def answer(
    offer: bytes, *ports: int, codecs: tuple[str, ...] = ("PCMU", "PCMA"), address: str = "192.0.2.200"
) -> tuple[bytes, list[NegotiatedStream]]:
    result = build_answer(
        parse_sdp(offer),
        address=address,
        ports=ports,
        codecs=codecs,
        session_id=1710144151,
        session_version=1,
    )
    return result.body, result.streams


def test_acme_answer_shape() -> None:
    body, streams = answer(offer_from("acme_invite.sip"), 30000, 30002)
    assert body.endswith(b"\r\n") and b"\n" not in body.replace(b"\r\n", b"")
    assert body.startswith(
        b"v=0\r\no=hangtar 1710144151 1 IN IP4 192.0.2.200\r\ns=-\r\nc=IN IP4 192.0.2.200\r\nt=0 0\r\n"
    )
    assert b"a=rtcp" not in body
    sdp = parse_sdp(body)
    assert [m.label for m in sdp.media] == ["1", "2"]
    assert [m.port for m in sdp.media] == [30000, 30002]
    for media in sdp.media:
        # PCMA is first in the offerer's order; exactly one codec plus telephone-event.
        assert media.formats == ["8", "101"]
        assert media.rtpmap[8].encoding == "PCMA"
        assert media.rtpmap[101].encoding == "telephone-event"
        assert media.fmtp == {101: "0-15"}
        assert media.direction == "recvonly"
        assert media.ptime == 20
        assert media.connection == "192.0.2.200"
        assert media.attributes == []  # maxptime is not echoed
    assert streams[0] == NegotiatedStream(
        index=0,
        label="1",
        port=30000,
        payload_type=8,
        codec="PCMA",
        clock_rate=8000,
        telephone_event_pt=101,
        direction="recvonly",
        remote_host="10.23.90.86",
        remote_port=33098,
    )
    assert streams[1].remote_port == 33100 and streams[1].index == 1


def test_offerer_preference_wins_over_ours() -> None:
    offer = (
        HEAD
        + b"m=audio 4000 RTP/AVP 18 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        + b"a=label:1\r\na=sendonly\r\n"
    )
    body, streams = answer(offer, 30000, codecs=("PCMU", "PCMA"))
    assert parse_sdp(body).media[0].formats == ["8", "101"]
    assert (streams[0].payload_type, streams[0].codec) == (8, "PCMA")


def test_no_common_codec_rejects_with_port_zero_and_offered_formats() -> None:
    body, streams = answer(offer_from("ribbon_gtd_invite.sip"), 30000, 30002, codecs=("PCMU",))
    sdp = parse_sdp(body)
    assert [m.port for m in sdp.media] == [0, 0]
    assert [m.formats for m in sdp.media] == [["18", "8", "101"], ["18", "8", "101"]]
    assert [m.label for m in sdp.media] == ["10", "20"]
    assert [s.accepted for s in streams] == [False, False]
    assert streams[0].payload_type is None and streams[0].codec is None and streams[0].clock_rate == 0


def test_g729_first_offer_gets_pcma() -> None:
    body, streams = answer(offer_from("ribbon_gtd_invite.sip"), 30000, 30002)
    assert [m.formats for m in parse_sdp(body).media] == [["8", "101"], ["8", "101"]]
    assert b"annexb" not in body
    assert [s.label for s in streams] == ["10", "20"]


def test_chosen_codec_keeps_its_fmtp() -> None:
    offer = HEAD + b"m=audio 4000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n"
    offer += b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendonly\r\n"
    body, streams = answer(offer, 30000, codecs=("G729", "PCMU"))
    assert parse_sdp(body).media[0].fmtp == {18: "annexb=no", 101: "0-15"}
    assert streams[0].codec == "G729"


def test_one_m_line_per_offered_m_line_in_order_with_rejections_in_place() -> None:
    offer = (
        HEAD
        + b"m=audio 4000 RTP/AVP 0\r\na=label:a_leg\r\na=sendonly\r\n"
        + b"m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=label:video\r\na=sendonly\r\n"
        + b"m=audio 0 RTP/AVP 0\r\na=label:gone\r\n"
        + b"m=audio 4004 RTP/SAVP 0\r\n"
        + b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
        + b"a=label:srtp\r\n"
        + b"m=audio 4006 RTP/AVP 0\r\na=label:b_leg\r\na=sendonly\r\n"
    )
    body, streams = answer(offer, 30000, 30002, 30004, 30006, 30008)
    sdp = parse_sdp(body)
    assert [(m.media, m.port, m.label) for m in sdp.media] == [
        ("audio", 30000, "a_leg"),
        ("video", 0, "video"),
        ("audio", 0, "gone"),
        ("audio", 0, "srtp"),
        ("audio", 30008, "b_leg"),
    ]
    assert sdp.media[1].formats == ["96"] and sdp.media[1].proto == "RTP/AVP"
    assert sdp.media[3].proto == "RTP/SAVP" and sdp.media[3].crypto == []
    assert [s.port for s in streams] == [30000, 0, 0, 0, 30008]
    assert streams[2].remote_port == 0


def test_our_port_zero_rejects_a_stream() -> None:
    body, streams = answer(offer_from("acme_invite.sip"), 30000, 0)
    assert [m.port for m in parse_sdp(body).media] == [30000, 0]
    assert streams[1].direction == "inactive" and not streams[1].accepted


def test_hold_with_unspecified_address_is_inactive() -> None:
    offer = HEAD.replace(b"c=IN IP4 198.51.100.1", b"c=IN IP4 0.0.0.0")
    offer += (
        b"m=audio 58014 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\na=label:1\r\n"
    )
    body, streams = answer(offer, 30000)
    media = parse_sdp(body).media[0]
    assert media.direction == "inactive" and media.port == 30000 and media.label == "1"
    assert streams[0].direction == "inactive"
    assert streams[0].remote_host is None


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        (b"sendonly", "recvonly"),
        (b"sendrecv", "recvonly"),
        (b"inactive", "inactive"),
        (b"recvonly", "inactive"),
    ],
)
def test_direction(offered: bytes, answered: str) -> None:
    body, streams = answer(HEAD + b"m=audio 4000 RTP/AVP 0\r\na=" + offered + b"\r\n", 30000)
    assert parse_sdp(body).media[0].direction == answered
    assert streams[0].direction == answered


def test_offer_without_direction_is_sendrecv_and_answered_recvonly() -> None:
    body, _ = answer(offer_from("rfc7866_invite.sip"), 30000)
    media = parse_sdp(body).media[0]
    assert media.direction == "recvonly" and media.formats == ["0"] and media.label == "1"


def test_telephone_event_matching_the_codec_clock() -> None:
    offer = HEAD + (
        b"m=audio 4000 RTP/AVP 111 0 110 101\r\na=rtpmap:111 opus/48000/2\r\n"
        b"a=rtpmap:110 telephone-event/48000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    )
    body, streams = answer(offer, 30000)
    assert parse_sdp(body).media[0].formats == ["0", "101"]
    assert streams[0].telephone_event_pt == 101
    opus_body, opus_streams = answer(offer, 30000, codecs=("opus",))
    assert parse_sdp(opus_body).media[0].formats == ["111", "110"]
    assert b"a=rtpmap:111 opus/48000/2\r\n" in opus_body
    assert (opus_streams[0].clock_rate, opus_streams[0].telephone_event_pt) == (48000, 110)


def test_no_telephone_event_when_not_offered() -> None:
    body, streams = answer(offer_from("quoted_boundary_invite.sip"), 30000, 30002)
    assert [m.formats for m in parse_sdp(body).media] == [["0"], ["0"]]
    assert [m.label for m in parse_sdp(body).media] == ["a_leg", "b_leg"]
    assert streams[0].telephone_event_pt is None


def test_g722_runs_an_8000_hz_rtp_clock() -> None:
    _, streams = answer(offer_from("lf_only_invite.sip"), 30000, 30002, codecs=("G722", "PCMU"))
    assert [(s.codec, s.clock_rate) for s in streams] == [("G722", 8000), ("G722", 8000)]
    wrong_clock = HEAD + b"m=audio 4000 RTP/AVP 96 0\r\na=rtpmap:96 PCMU/16000\r\n"
    _, streams = answer(wrong_clock, 30000)
    assert streams[0].payload_type == 0


def test_single_mixed_stream() -> None:
    body, streams = answer(offer_from("broadworks_invite.sip"), 40000)
    assert len(parse_sdp(body).media) == 1
    assert (streams[0].label, streams[0].codec, streams[0].telephone_event_pt) == ("1", "PCMA", 101)


def test_ipv6_address() -> None:
    body, _ = answer(offer_from("acme_invite.sip"), 30000, 30002, address="2001:db8::20")
    assert b"o=hangtar 1710144151 1 IN IP6 2001:db8::20\r\n" in body
    assert b"c=IN IP6 2001:db8::20\r\n" in body


def test_misuse_is_a_value_error() -> None:
    offer = parse_sdp(offer_from("acme_invite.sip"))
    with pytest.raises(ValueError, match="2 offered m-lines"):
        build_answer(offer, address="192.0.2.200", ports=[30000], session_id=1, session_version=1)
    with pytest.raises(ValueError, match="whitespace"):
        build_answer(offer, address="", ports=[1, 2], session_id=1, session_version=1)
    with pytest.raises(ValueError, match="whitespace"):
        build_answer(offer, address="192.0.2.1", ports=[1, 2], session_id=1, session_version=1, user="a b")


def test_a_call_not_to_be_recorded_is_answered_inactive() -> None:
    """No legal basis: the session is kept (the SRC sees a 200 OK) but every stream is inactive (RFC 3264
    §6.1), so nothing is sent to us."""
    result = build_answer(
        parse_sdp(offer_from("acme_invite.sip")),
        address="192.0.2.200",
        ports=[9, 9],
        session_id=1710144151,
        session_version=1,
        inactive=True,
    )
    sdp = parse_sdp(result.body)
    assert [m.direction for m in sdp.media] == ["inactive", "inactive"]
    assert [m.port for m in sdp.media] == [9, 9]
    assert [s.direction for s in result.streams] == ["inactive", "inactive"]
    assert all(m.formats == ["8", "101"] for m in sdp.media)
