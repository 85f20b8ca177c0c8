"""Parsing SRC offers (RFC 4566), tolerant where SRCs are sloppy, strict where it is no SDP."""

from __future__ import annotations

import pytest

from siprec_server.siprec import RtpMap, SdpError, find_sdp, parse_sdp, split_body

from .traffic import load_invite


def offer_sdp(name: str) -> bytes:
    invite = load_invite(name)
    sdp = find_sdp(split_body(invite.header("content-type"), invite.body))
    assert sdp is not None
    return sdp.body


def test_acme_offer() -> None:
    sdp = parse_sdp(offer_sdp("acme_invite.sip"))
    assert sdp.origin.username == "-"
    assert (sdp.origin.session_id, sdp.origin.session_version) == ("1274751", "131744")
    assert sdp.origin.address == "10.23.90.68"
    assert sdp.session_name == "-"
    assert sdp.connection == "10.23.90.86"
    assert [m.label for m in sdp.media] == ["1", "2"]
    first = sdp.media[0]
    assert (first.media, first.port, first.proto) == ("audio", 33098, "RTP/AVP")
    assert first.formats == ["8", "0", "101"]
    assert first.rtpmap == {
        8: RtpMap(encoding="PCMA", clock_rate=8000),
        0: RtpMap(encoding="PCMU", clock_rate=8000),
        101: RtpMap(encoding="telephone-event", clock_rate=8000),
    }
    assert first.fmtp == {101: "0-15"}
    assert first.direction == "sendonly"
    assert first.connection == "10.23.90.86"  # inherited from session level
    assert first.ptime == 20
    assert first.attributes == [("maxptime", "40")]
    assert first.rtcp_port is None and first.crypto == []
    assert sdp.media[1].port == 33100


def test_cisco_media_level_connection_and_trailing_spaces() -> None:
    sdp = parse_sdp(offer_sdp("cisco_cube_invite.sip"))
    assert sdp.session_name == "SIP Call"
    assert [m.connection for m in sdp.media] == ["10.10.10.1", "10.10.10.1"]
    assert sdp.media[0].rtpmap[19] == RtpMap(encoding="CN", clock_rate=8000)
    padded = b"v=0 \r\no=CiscoSystemsSIP-GW-UserAgent 1478 8649 IN IP4 192.168.33.1 \r\ns=SIP Call \r\n"
    padded += b"c=IN IP4 192.168.33.1 \r\nt=0 0 \r\nm=audio 16412 RTP/AVP 8 19 \r\na=label:3 \r\n\r\n"
    parsed = parse_sdp(padded)
    assert parsed.media[0].formats == ["8", "19"]
    assert parsed.media[0].label == "3"


def test_static_payload_types_resolve_without_rtpmap() -> None:
    sdp = parse_sdp(offer_sdp("rfc7866_invite.sip"))
    media = sdp.media[0]
    assert media.formats == ["0", "4", "8"]
    assert {pt: (m.encoding, m.clock_rate) for pt, m in media.rtpmap.items()} == {
        0: ("PCMU", 8000),
        4: ("G723", 8000),
        8: ("PCMA", 8000),
    }
    g722 = parse_sdp(b"v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 9 18 96\n")
    assert g722.media[0].rtpmap[9] == RtpMap(encoding="G722", clock_rate=8000)
    assert g722.media[0].rtpmap[18] == RtpMap(encoding="G729", clock_rate=8000)
    assert 96 not in g722.media[0].rtpmap  # dynamic, never described


def test_bare_lf_offer() -> None:
    sdp = parse_sdp(offer_sdp("lf_only_invite.sip"))
    assert [m.label for m in sdp.media] == ["0", "1"]
    assert sdp.media[1].rtpmap[9].encoding == "G722"


def test_attribute_names_in_any_case_and_explicit_rtpmap_wins() -> None:
    sdp = parse_sdp(
        b"v=0\r\no=SBC 5 6 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=audio 5000 RTP/AVP 0 97\r\na=RTPMAP:0 pcmu/8000\r\na=RtpMap:97 opus/48000/2\r\n"
        b"a=FMTP:97 useinbandfec=1\r\na=Label:7\r\na=SendOnly\r\na=PTime:20\r\n"
    )
    media = sdp.media[0]
    assert media.rtpmap[0] == RtpMap(encoding="pcmu", clock_rate=8000)
    assert media.rtpmap[97] == RtpMap(encoding="opus", clock_rate=48000, channels=2)
    assert media.fmtp == {97: "useinbandfec=1"}
    assert (media.label, media.direction, media.ptime) == ("7", "sendonly", 20)


def test_session_level_direction_and_ptime_are_inherited() -> None:
    sdp = parse_sdp(
        b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"a=inactive\r\na=ptime:30\r\na=tool:some-src 1.0\r\n"
        b"m=audio 5000 RTP/AVP 0\r\nm=audio 5002 RTP/AVP 0\r\na=sendonly\r\na=ptime:20\r\n"
    )
    assert sdp.direction == "inactive"
    assert sdp.attributes == [("tool", "some-src 1.0")]
    assert [(m.direction, m.ptime) for m in sdp.media] == [("inactive", 30), ("sendonly", 20)]


def test_rtcp_crypto_unknown_lines_and_other_attributes_kept() -> None:
    sdp = parse_sdp(
        b"v=0\r\no=- 1 2 IN IP6 2001:db8::1\r\ns=-\r\ni=recording\r\nc=IN IP6 2001:db8::1\r\nb=AS:64\r\n"
        b"t=0 0\r\nk=prompt\r\ny=unknown line type\r\nm=audio 49170/2 RTP/SAVP 0\r\nb=TIAS:64000\r\n"
        b"a=rtcp:49171 IN IP6 2001:db8::1\r\n"
        b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n"
        b"a=rtcp-mux\r\na=x-vendor:42\r\n"
    )
    media = sdp.media[0]
    assert sdp.connection == "2001:db8::1"
    assert (media.port, media.proto, media.rtcp_port) == (49170, "RTP/SAVP", 49171)
    assert media.crypto == [
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
    ]
    assert media.attributes == [("rtcp-mux", None), ("x-vendor", "42")]


def test_multicast_ttl_is_dropped_from_the_address() -> None:
    sdp = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 233.252.0.1/127\r\nt=0 0\r\n")
    assert sdp.connection == "233.252.0.1"
    assert sdp.media == []


def test_latin1_session_name() -> None:
    sdp = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=Felv\xe9tel\r\nt=0 0\r\n")
    assert sdp.session_name == "Felvétel"


@pytest.mark.parametrize(
    ("sdp", "message"),
    [
        (b"", "v=0"),
        (b'<?xml version="1.0"?><recording/>', "v=0"),
        (b"v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\n", "v=0"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nthis is not sdp\r\n", "not <type>=<value>"),
        (b"v=0\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", "no o= line"),
        (b"v=0\r\no=- 1 IN IP4 192.0.2.1\r\n", "six fields"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4\r\n", "c= line"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IPX 192.0.2.1\r\n", "c= line"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP\r\n", "at least one format"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio port RTP/AVP 0\r\n", "valid port"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 70000 RTP/AVP 0\r\n", "valid port"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", "rtpmap"),
        (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:200 X/8000\r\n", "rtpmap"),
    ],
)
def test_what_is_no_sdp_is_answered_488(sdp: bytes, message: str) -> None:
    with pytest.raises(SdpError, match=message) as caught:
        parse_sdp(sdp)
    assert caught.value.status_code == 488
    assert caught.value.warn_code == 399
