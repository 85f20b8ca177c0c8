"""Codec choice in the answer: the offerer's order, clock rates and channels as the RTP profiles fix them."""

from __future__ import annotations

import pytest

from media.codecs import DECODABLE, SUPPORTED, codec_for
from siprec_server.siprec import NegotiatedStream, build_answer, parse_sdp

HEAD = b"v=0\r\no=SRC 2890844526 2890844526 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"


def offer(formats: str, *attributes: str) -> bytes:
    lines = [f"m=audio 4000 RTP/AVP {formats}", *attributes, "a=label:1", "a=sendonly"]
    return HEAD + "".join(f"{line}\r\n" for line in lines).encode()


def answer(sdp: bytes, codecs: tuple[str, ...] = DECODABLE) -> tuple[list[str], NegotiatedStream, bytes]:
    result = build_answer(
        parse_sdp(sdp), address="192.0.2.200", ports=[30000], codecs=codecs, session_id=7, session_version=1
    )
    media = parse_sdp(result.body).media[0]
    return media.formats, result.streams[0], result.body


def test_static_g722_is_taken_on_its_8000_hz_clock() -> None:
    formats, stream, body = answer(offer("9 0 101", "a=rtpmap:101 telephone-event/8000"))
    assert formats == ["9", "101"]
    assert (stream.payload_type, stream.codec, stream.clock_rate, stream.telephone_event_pt) == (
        9,
        "G722",
        8000,
        101,
    )
    assert b"a=rtpmap:9 G722/8000\r\n" in body
    found = codec_for(stream.codec or "", stream.clock_rate)
    assert found is not None and found.sample_rate == 16000


def test_g722_offered_on_a_16000_hz_clock_is_passed_over() -> None:
    # RFC 3551 §4.5.2: the G.722 RTP clock is 8000 Hz; a 16000 rtpmap is ambiguous about the timestamps.
    formats, stream, _ = answer(offer("96 0", "a=rtpmap:96 G722/16000"))
    assert formats == ["0"] and stream.codec == "PCMU"


def test_opus_answer_echoes_rtpmap_and_fmtp_and_takes_the_48000_hz_event() -> None:
    sdp = offer(
        "111 9 0 110 101",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:110 telephone-event/48000",
        "a=rtpmap:101 telephone-event/8000",
    )
    formats, stream, body = answer(sdp)
    assert formats == ["111", "110"]
    assert b"a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n" in body
    assert (stream.codec, stream.clock_rate, stream.telephone_event_pt) == ("OPUS", 48000, 110)
    found = codec_for(stream.codec or "", stream.clock_rate)
    assert found is not None and (found.clock_rate, found.sample_rate) == (48000, 16000)


def test_sloppy_mono_opus_rtpmap_is_taken_but_not_another_clock() -> None:
    assert answer(offer("111 0", "a=rtpmap:111 OPUS/48000"))[1].payload_type == 111
    assert answer(offer("111 0", "a=rtpmap:111 opus/16000/2"))[1].codec == "PCMU"


@pytest.mark.parametrize(
    ("rtpmaps", "want"),
    [
        (("a=rtpmap:96 L16/16000", "a=rtpmap:97 L16/8000"), (96, 16000)),
        (("a=rtpmap:96 L16/8000", "a=rtpmap:97 L16/16000"), (96, 8000)),
        (("a=rtpmap:96 L16/44100", "a=rtpmap:97 L16/16000"), (97, 16000)),  # 44.1 kHz is not ours
        (("a=rtpmap:96 L16/16000/2", "a=rtpmap:97 L16/8000/1"), (97, 8000)),  # mono only
    ],
)
def test_l16_by_clock_and_channels(rtpmaps: tuple[str, ...], want: tuple[int, int]) -> None:
    _, stream, _ = answer(offer("96 97", *rtpmaps))
    assert (stream.payload_type, stream.clock_rate) == want


def test_static_l16_at_44100_hz_is_rejected() -> None:
    # RFC 3551 §6: payload types 10 and 11 are L16 at 44.1 kHz; no telephony rate, nothing else offered.
    formats, stream, body = answer(offer("10 11"))
    assert not stream.accepted and stream.codec is None
    assert body.count(b"m=audio 0 RTP/AVP 10 11\r\n") == 1 and formats == ["10", "11"]


def test_offerer_order_decides_among_everything_we_decode() -> None:
    sdp = offer("18 8 111 9", "a=rtpmap:111 opus/48000/2", "a=fmtp:18 annexb=no")
    formats, stream, body = answer(sdp)
    assert formats == ["18"] and stream.codec == "G729"
    assert b"a=fmtp:18 annexb=no\r\n" in body
    assert answer(sdp, codecs=("opus/48000", "PCMA"))[1].codec == "PCMA"


def test_todays_recording_path_keeps_to_g711() -> None:
    sdp = offer("111 9 18 0", "a=rtpmap:111 opus/48000/2")
    formats, stream, _ = answer(sdp, codecs=SUPPORTED)
    assert formats == ["0"] and stream.codec == "PCMU"


def test_unknown_clock_for_a_fixed_clock_codec_even_when_asked_for() -> None:
    _, stream, _ = answer(offer("96 8", "a=rtpmap:96 PCMU/16000"), codecs=("PCMU", "PCMA"))
    assert stream.codec == "PCMA"


@pytest.mark.parametrize("entry", ["", "/8000", "L16/x", "L16/8000/1/2", "opus/48k"])
def test_malformed_codec_entries_are_our_own_misuse(entry: str) -> None:
    with pytest.raises(ValueError, match="codec"):
        answer(offer("0"), codecs=("PCMU", entry))
