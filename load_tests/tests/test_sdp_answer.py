"""Reading the SRS's SDP answer: where each labelled stream goes, and every way it can be unusable."""

from __future__ import annotations

import pytest

from load_tests.loadgen import AnswerError, parse_answer

from .sip_samples import ANSWER_SDP


def test_hangtar_answer_gives_one_destination_per_label() -> None:
    answer = parse_answer(ANSWER_SDP.encode())
    assert answer.destination("1", 0) == ("127.0.0.1", 36732)
    assert answer.destination("2", 0) == ("127.0.0.1", 36734)
    assert [s.direction for s in answer.streams] == ["recvonly", "recvonly"]


def test_media_level_connection_wins_and_lf_only_lines_are_read() -> None:
    sdp = (
        "v=0\no=- 1 1 IN IP4 192.0.2.10\ns=-\nc=IN IP4 192.0.2.10\nt=0 0\n"
        "m=audio 20000 RTP/AVP 8 101\nc=IN IP4 198.51.100.7/127\na=label:1\na=recvonly\n"
        "m=audio 20002 RTP/AVP 8\na=label:2\n"
    )
    answer = parse_answer(sdp.encode())
    assert answer.destination("1", 8) == ("198.51.100.7", 20000)
    assert answer.destination("2", 8) == ("192.0.2.10", 20002)  # no direction: sendrecv (RFC 3264 §5.1)


@pytest.mark.parametrize(
    ("change", "label", "message"),
    [
        (("m=audio 36734 RTP/AVP 0", "m=audio 0 RTP/AVP 0"), "2", "declined"),
        (("a=label:2", "a=label:b_leg"), "2", "no m-line labelled"),
        (("m=audio 36732 RTP/AVP 0", "m=audio 36732 RTP/AVP 8"), "1", r"payload types \(8,\), not 0"),
        (("a=recvonly\r\nm=audio 36734", "a=inactive\r\nm=audio 36734"), "1", "inactive"),
    ],
)
def test_unusable_streams_are_named(change: tuple[str, str], label: str, message: str) -> None:
    answer = parse_answer(ANSWER_SDP.replace(*change).encode())
    with pytest.raises(AnswerError, match=message):
        answer.destination(label, 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no m-line"),
        (b"v=0\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\n", "no connection address"),
        (b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio port RTP/AVP 0\r\n", "unreadable m-line"),
        (b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 4000 RTP/AVP 96\r\n", "unexpected m-line"),
        (b"v=0\r\nc=IN\r\nm=audio 4000 RTP/AVP 0\r\n", "unreadable connection"),
        (b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 70000 RTP/AVP 0\r\n", "out of range"),
        (b"\xff\xfe=0", "not UTF-8"),
    ],
)
def test_malformed_answers_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(AnswerError, match=message):
        parse_answer(body)
