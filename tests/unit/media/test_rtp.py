from __future__ import annotations

import random

import pytest

from media.rtp import RtpHeader, build_rtp, is_rtcp, parse_rtp
from tests.unit.media.helpers import rtcp_receiver_report, rtp

# A PCMU packet as an Asterisk SRC sends it: first of a talkspurt (marker), PT 0, 20 ms of µ-law silence.
ASTERISK_PCMU = bytes.fromhex("8080 5e3a 0001 b8c0 6d1f 03a2".replace(" ", "")) + b"\xff" * 160


def test_parses_a_plain_pcmu_packet() -> None:
    header = parse_rtp(ASTERISK_PCMU)
    assert header == RtpHeader(
        payload_type=0,
        marker=True,
        sequence=0x5E3A,
        timestamp=0x0001B8C0,
        ssrc=0x6D1F03A2,
        payload_offset=12,
        payload_length=160,
    )


def test_build_rtp_round_trips() -> None:
    data = build_rtp(payload_type=8, sequence=70000, timestamp=-1, ssrc=0xDEADBEEF, payload=b"\xd5" * 80)
    header = parse_rtp(data)
    assert header is not None
    assert (header.payload_type, header.marker, header.sequence, header.timestamp) == (
        8,
        False,
        4464,
        0xFFFFFFFF,
    )
    assert data[header.payload_offset :] == b"\xd5" * 80


def test_csrc_list_from_a_mixer_is_skipped() -> None:
    data = rtp(100, 16000, 0x11111111, b"\x55" * 160, pt=8, csrcs=(0xAAAA0001, 0xAAAA0002))
    header = parse_rtp(data)
    assert header is not None
    assert header.payload_offset == 12 + 8
    assert header.payload_length == 160
    assert data[header.payload_offset : header.payload_offset + header.payload_length] == b"\x55" * 160


def test_header_extension_is_skipped() -> None:
    # RFC 8285 one-byte header: 0xBEDE, one word holding an RFC 6464 audio level element (id 1, level 32).
    data = rtp(7, 320, 42, b"\x7f" * 160, extension=(0xBEDE, bytes([0x10, 0xA0, 0, 0])))
    header = parse_rtp(data)
    assert header is not None
    assert header.payload_offset == 12 + 4 + 4
    assert header.payload_length == 160


def test_padding_is_removed_from_the_payload() -> None:
    data = rtp(7, 320, 42, b"\x7f" * 160, padding=4)
    header = parse_rtp(data)
    assert header is not None
    assert header.payload_length == 160


def test_csrc_extension_and_padding_together() -> None:
    data = rtp(9, 480, 42, b"\x01" * 20, csrcs=(5,), extension=(0x1000, bytes(8)), padding=3)
    header = parse_rtp(data)
    assert header is not None
    assert header.payload_offset == 12 + 4 + 4 + 8
    assert data[header.payload_offset : header.payload_offset + header.payload_length] == b"\x01" * 20


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty", b""),
        ("shorter than the fixed header", ASTERISK_PCMU[:11]),
        ("version 1", bytes([0x40]) + ASTERISK_PCMU[1:]),
        ("version 0 (STUN binding request)", bytes.fromhex("000100002112a442") + bytes(12)),
        ("CSRC count beyond the datagram", bytes([0x8F]) + ASTERISK_PCMU[1:40]),
        ("extension header cut off", bytes([0x90]) + ASTERISK_PCMU[1:12] + b"\xbe"),
        (
            "extension length beyond the datagram",
            bytes([0x90]) + ASTERISK_PCMU[1:12] + b"\xbe\xde\x00\x40" + bytes(8),
        ),
        ("padding count beyond the payload", bytes([0xA0]) + ASTERISK_PCMU[1:12] + b"\x00\x00\x09"),
        ("padding count of zero", bytes([0xA0]) + ASTERISK_PCMU[1:12] + b"\x11\x00"),
    ],
)
def test_garbage_yields_none(name: str, data: bytes) -> None:
    assert parse_rtp(data) is None, name


def test_rtcp_is_recognised_by_packet_type() -> None:
    assert is_rtcp(rtcp_receiver_report(0x6D1F03A2))
    sender_report = bytes.fromhex("80c8000624e5c3f1") + bytes(20)
    assert is_rtcp(sender_report)
    assert not is_rtcp(ASTERISK_PCMU)
    assert not is_rtcp(rtp(1, 1, 1, b"", pt=101, marker=True))  # 0xE5: a marked telephone-event, not RTCP
    assert not is_rtcp(b"\x80\xc9\x00")  # too short for an RTCP header and SSRC


def test_random_datagrams_never_raise_and_offsets_stay_inside() -> None:
    rng = random.Random(20260101)
    for _ in range(20000):
        size = rng.randrange(0, 64)
        data = bytes(rng.getrandbits(8) for _ in range(size))
        if rng.random() < 0.5 and size:
            data = bytes([0x80 | (data[0] & 0x3F)]) + data[1:]  # make version 2 likely
        header = parse_rtp(data)
        if header is not None:
            assert 12 <= header.payload_offset <= len(data)
            assert header.payload_length >= 0
            assert header.payload_offset + header.payload_length <= len(data)
