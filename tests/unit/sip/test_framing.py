import pytest

from siprec_server.sip import SipParseError, SipRequest, StreamFramer, parse_message

from .traffic import oracle_siprec_invite, request

ACK = request(
    "ACK",
    "sip:SRC@10.20.30.10:5060;transport=tcp",
    [
        ("Via", "SIP/2.0/TCP 10.20.30.10:5060;branch=z9hG4bK0g4a9k20a8u1lfa0h3f0.2"),
        ("From", "<sip:SRC@10.20.30.10:5060>;tag=5c8e0a3a2d1e0d41fa0e1b6c"),
        ("To", "<sip:srs@10.20.30.40:5060>;tag=9f3c0b2a"),
        ("Call-ID", "1d6c5e60b1b5a1c29c9e0f8b3a7d2e4f@10.20.30.10"),
        ("CSeq", "1 ACK"),
    ],
)
INVITE = oracle_siprec_invite()


def test_coalesced_messages_and_keepalives_between_them() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n" + INVITE + b"\r\n\r\n" + ACK + b"\r\n") == [INVITE, ACK]
    assert framer.take_keepalives() == 2
    assert framer.take_keepalives() == 0
    assert framer.buffered == 0
    assert isinstance(parse_message(INVITE), SipRequest)


def test_a_message_split_at_every_byte() -> None:
    framer = StreamFramer()
    out: list[bytes] = []
    for index in range(len(INVITE)):
        out += framer.feed(INVITE[index : index + 1])
        assert out == ([] if index < len(INVITE) - 1 else [INVITE])
    assert framer.buffered == 0


@pytest.mark.parametrize(
    "cut", [10, INVITE.index(b"\r\n\r\n") + 1, INVITE.index(b"\r\n\r\n") + 3, len(INVITE) - 1]
)
def test_split_chunks_with_the_next_message_glued_on(cut: int) -> None:
    framer = StreamFramer()
    stream = INVITE + ACK
    assert framer.feed(stream[:cut]) == []
    assert framer.feed(stream[cut:]) == [INVITE, ACK]


def test_compact_content_length_and_lf_only_framing() -> None:
    body = b"v=0\n"
    message = b"INFO sip:srs@10.20.30.40 SIP/2.0\nv: SIP/2.0/TCP h;branch=z9hG4bK1\nl: 4\n\n" + body
    framer = StreamFramer()
    assert framer.feed(message + b"INFO") == [message]
    assert framer.buffered == 4


def test_missing_content_length_breaks_the_stream_for_good() -> None:
    framer = StreamFramer()
    missing = ACK.replace(b"Content-Length: 0\r\n", b"")
    with pytest.raises(SipParseError, match="Missing Content-Length"):
        framer.feed(missing)
    with pytest.raises(SipParseError, match="Missing Content-Length"):
        framer.feed(ACK)


def test_conflicting_content_lengths() -> None:
    with pytest.raises(SipParseError, match="Conflicting"):
        StreamFramer().feed(ACK.replace(b"Content-Length: 0\r\n", b"Content-Length: 0\r\nl: 12\r\n"))


def test_header_block_over_the_limit() -> None:
    framer = StreamFramer()
    framer.feed(b"INVITE sip:srs@10.20.30.40 SIP/2.0\r\n")
    filler = b"X-Padding: " + b"a" * 1000 + b"\r\n"
    with pytest.raises(SipParseError) as caught:
        for _ in range(70):
            framer.feed(filler)
    assert caught.value.status == 513


def test_content_length_over_the_configured_maximum() -> None:
    framer = StreamFramer(max_content_length=len(INVITE) // 2)
    with pytest.raises(SipParseError) as caught:
        framer.feed(INVITE)
    assert caught.value.status == 413
    exact = StreamFramer(max_content_length=len(INVITE) - INVITE.index(b"\r\n\r\n") - 4)
    assert exact.feed(INVITE) == [INVITE]
