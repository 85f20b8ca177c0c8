"""Reading what SIPp exchanged: answers' SDP, headers, and each request paired with its final response."""

from __future__ import annotations

from pathlib import Path

from tests.peers.sipp_trace import Answer, SdpMedia, SippResult, answer_from, parse_message_trace, sdp_media

HOLD_ANSWER = (
    "v=0\r\no=hangtar 7 3 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 20000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=label:1\r\na=inactive\r\n"
)


def test_sdp_media_applies_session_level_defaults() -> None:
    body = (
        "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\na=sendonly\n"
        "m=audio 4000 RTP/AVP 0\na=label:10\n"
        "m=audio 4002 RTP/AVP 8 101\nc=IN IP4 198.51.100.7\na=recvonly\na=rtpmap:8 PCMA/8000\n"
        "m=video 0 RTP/AVP 96\n"
    )
    assert sdp_media(body) == [
        SdpMedia(media="audio", port=4000, formats=("0",), connection="0.0.0.0", direction="sendonly",
                 label="10", rtpmap=()),
        SdpMedia(media="audio", port=4002, formats=("8", "101"), connection="198.51.100.7",
                 direction="recvonly", label=None, rtpmap=("8 PCMA/8000",)),
        SdpMedia(media="video", port=0, formats=("96",), connection="0.0.0.0", direction="sendonly",
                 label=None, rtpmap=()),
    ]  # fmt: skip
    [held] = sdp_media(HOLD_ANSWER)
    assert (held.port, held.direction, held.label, held.connection) == (20000, "inactive", "1", "192.0.2.10")
    assert sdp_media("v=0\r\ns=-\r\n") == []
    assert sdp_media("v=0\r\nm=audio 5 RTP/AVP 0\r\n")[0].direction == "sendrecv"  # RFC 4566 §6 default


def _trace(*entries: tuple[str, bool, str]) -> str:
    out = []
    for stamp, sent, text in entries:
        kind = "UDP message sent (1 bytes):" if sent else "UDP message received [1] bytes :"
        out.append(
            f"----------------------------------------------- 2026-11-28 19:13:{stamp}\n{kind}\n\n{text}\n"
        )
    return "".join(out)


def _message(first: str, cseq: str, *, body: str = "", extra: str = "") -> str:
    content = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"{first}\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1\r\ni: 7@127.0.0.1\r\n"
        f"CSeq: {cseq}\r\n{extra}{content}l: {len(body)}\r\n\r\n{body}"
    )


def _result(trace: str, log: str = "") -> SippResult:
    return SippResult(
        returncode=0,
        timed_out=False,
        command=("sipp",),
        workdir=Path("."),
        output="",
        errors="",
        log=log,
        messages=tuple(parse_message_trace(trace)),
    )


def test_exchanges_pair_each_request_with_its_final_response() -> None:
    invite = _message("INVITE sip:srs@127.0.0.1 SIP/2.0", "1 INVITE", body="v=0\r\n")
    reinvite = _message("INVITE sip:srs@127.0.0.1 SIP/2.0", "2 INVITE", body="v=0\r\n")
    trace = _trace(
        ("25.000", True, invite),
        ("25.500", True, invite),  # retransmission: folded into the first
        ("25.510", False, _message("SIP/2.0 100 Trying", "1 INVITE")),
        ("25.520", False, _message("SIP/2.0 200 OK", "1 INVITE", body=HOLD_ANSWER)),
        ("25.530", True, _message("ACK sip:srs@127.0.0.1 SIP/2.0", "1 ACK")),
        ("26.000", True, _message("UPDATE sip:srs@127.0.0.1 SIP/2.0", "2 UPDATE")),
        (
            "26.010",
            False,
            _message("SIP/2.0 200 OK", "2 UPDATE", extra="Session-Expires: 90;refresher=uac\r\n"),
        ),
        ("27.000", True, reinvite),  # never answered
    )
    result = _result(trace)
    invites = result.exchanges("INVITE")
    assert [(request.at % 60, response.status if response else None) for request, response in invites] == [
        (25.0, 200),
        (27.0, None),
    ]
    answer = invites[0][1]
    assert answer is not None and answer.content_type == "application/sdp"
    assert [m.direction for m in answer.sdp] == ["inactive"]
    [(update, update_answer)] = result.exchanges("UPDATE")
    assert update.content_type is None and update_answer is not None and update_answer.sdp == []
    assert update_answer.header("session-expires") == "90;refresher=uac"
    assert update_answer.header("Content-Length", "l") == "0"
    assert result.call_id == "7@127.0.0.1"  # from the compact form
    assert result.exchanges("BYE") == []


def test_answer_lines_carry_one_port_per_m_line() -> None:
    events = [
        ("ANSWER", {"ip": "10.0.0.1", "port1": "4000", "port2": "4002", "port3": "4004", "port4": "4006"})
    ]
    answer = answer_from(events)
    assert answer == Answer(ip="10.0.0.1", ports=(4000, 4002, 4004, 4006))
    assert (answer.port1, answer.port2) == (4000, 4002)
    assert answer_from([("ANSWER", {"ip": "10.0.0.1", "port1": "4000"})]) == Answer(
        ip="10.0.0.1", ports=(4000,)
    )
    assert answer_from([("HELD", {})]) is None
    result = _result("", log="ANSWER ip=127.0.0.1 port1=20000\nHELD\nRESUMED\n")
    assert result.answer == Answer(ip="127.0.0.1", ports=(20000,))
    assert [tag for tag, _ in result.events] == ["ANSWER", "HELD", "RESUMED"]
