"""Sessions the policy does not let us record: answered inactive on the discard port, kept, then forgotten."""

from __future__ import annotations

from siprec_server.siprec import SrtpPolicy, parse_sdp
from siprec_server.unrecorded import DISCARD_PORT, UnrecordedCalls

OFFER = (
    b"v=0\r\no=SBC 2890844526 2890844526 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=label:1\r\na=sendonly\r\n"
    b"m=audio 40002 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=label:2\r\na=sendonly\r\n"
    b"m=video 40004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=label:3\r\na=sendonly\r\n"
)


def calls() -> UnrecordedCalls:
    return UnrecordedCalls(advertised_host="192.0.2.200", codecs=("PCMU", "PCMA"))


def test_every_stream_is_inactive_and_nothing_listens() -> None:
    unrecorded = calls()
    body = unrecorded.open(
        "c1@sbc", parse_sdp(OFFER), reason="policy", srtp=SrtpPolicy.OFF, session_id=77, now=0.0
    )
    answer = parse_sdp(body)
    assert [m.port for m in answer.media] == [DISCARD_PORT, DISCARD_PORT, 0]
    assert [m.direction for m in answer.media[:2]] == ["inactive", "inactive"]
    assert "c1@sbc" in unrecorded and unrecorded.reason("c1@sbc") == "policy"


def test_reoffers_keep_the_origin_and_count_versions() -> None:
    unrecorded = calls()
    first = parse_sdp(
        unrecorded.open("c1", parse_sdp(OFFER), reason="no_policy", srtp=SrtpPolicy.OFF, session_id=77, now=0)
    )
    again = parse_sdp(unrecorded.reoffer("c1", parse_sdp(OFFER), now=30.0))
    offerless = parse_sdp(unrecorded.reoffer("c1", None, now=60.0))
    assert first.origin.session_id == again.origin.session_id == offerless.origin.session_id
    assert [first.origin.session_version, again.origin.session_version, offerless.origin.session_version] == [
        "1",
        "2",
        "3",
    ]
    assert all(m.direction == "inactive" for m in again.media[:2])


def test_bye_and_idle_expiry_forget_the_session() -> None:
    unrecorded = calls()
    for call_id in ("a", "b"):
        unrecorded.open(call_id, parse_sdp(OFFER), reason="policy", srtp=SrtpPolicy.OFF, session_id=1, now=0)
    assert unrecorded.end("a") and not unrecorded.end("a")
    unrecorded.touch("b", 100.0)
    assert unrecorded.expire(now=150.0, idle=100.0) == []
    assert unrecorded.expire(now=201.0, idle=100.0) == ["b"]
    assert len(unrecorded) == 0
