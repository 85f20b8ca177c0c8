"""RTCP compound packets as SRCs send them, and everything that is not quite RTCP."""

from __future__ import annotations

import random
import struct

import pytest

from media.rtcp import NTP_UNIX_OFFSET, RtcpTracker, parse_rtcp
from media.stats import StreamStats
from media.timeline import StreamTimeline
from tests.unit.media.helpers import SAMPLES, T0, pcmu, pcmu_stream, tone

# An SR with one report block followed by SDES (CNAME, TOOL), as a PBX sends it every few seconds
# (RFC 3550 §6.4.1, §6.5; TOOL "sbc-7.2"). Sender SSRC 0x1a2b3c4d; NTP 0xe93a1f2c.40000000 (2023-12-30T04:46:36.25Z);
# RTP 0x0012d687; 250 packets, 40000 octets; it receives SSRC 0x0badf00d with fraction lost 0x1a (26/256),
# 3 lost in all, highest sequence 0x00014e20, jitter 24, LSR 0x1f2c4000, DLSR 0x00018000 (1.5 s).
PBX_SR_SDES = bytes.fromhex(
    "81c8000c1a2b3c4de93a1f2c400000000012d687000000fa00009c40"  # SR header, sender info
    "0badf00d1a00000300014e20000000181f2c400000018000"  # one report block
    "81ca00081a2b3c4d010f70627831403139322e302e322e313706077362632d372e320000"  # SDES CNAME, TOOL
)


def sender_report(
    ssrc: int,
    ntp: int,
    rtp_ts: int,
    packets: int = 10,
    octets: int = 1600,
    blocks: bytes = b"",
    count: int = 0,
) -> bytes:
    body = struct.pack("!IQIII", ssrc, ntp, rtp_ts, packets, octets) + blocks
    return struct.pack("!BBH", 0x80 | count, 200, len(body) // 4) + body


def report_block(source: int, fraction: int, lost: int, highest: int, jitter: int) -> bytes:
    return (
        struct.pack("!IB", source, fraction)
        + (lost & 0xFFFFFF).to_bytes(3)
        + struct.pack("!IIII", highest, jitter, 0, 0)
    )


def receiver_report(ssrc: int, *blocks: bytes) -> bytes:
    body = struct.pack("!I", ssrc) + b"".join(blocks)
    return struct.pack("!BBH", 0x80 | len(blocks), 201, len(body) // 4) + body


def bye(ssrc: int, reason: bytes = b"") -> bytes:
    body = struct.pack("!I", ssrc)
    if reason:
        text = bytes([len(reason)]) + reason
        body += text + bytes(-len(text) % 4)
    return struct.pack("!BBH", 0x81, 203, len(body) // 4) + body


def app(ssrc: int, name: bytes, data: bytes) -> bytes:
    body = struct.pack("!I", ssrc) + name + data
    return struct.pack("!BBH", 0x80, 204, len(body) // 4) + body


def test_pbx_sender_report_with_sdes() -> None:
    assert len(PBX_SR_SDES) % 4 == 0
    content = parse_rtcp(PBX_SR_SDES, 12.5)
    assert not content.malformed
    (sr,) = content.sender_reports
    assert (sr.ssrc, sr.rtp_timestamp, sr.packets, sr.octets, sr.arrival) == (
        0x1A2B3C4D,
        0x12D687,
        250,
        40000,
        12.5,
    )
    assert sr.ntp == 0xE93A1F2C_40000000
    assert sr.unix_time == pytest.approx(0xE93A1F2C + 0.25 - NTP_UNIX_OFFSET)
    (block,) = content.reception_reports
    assert (block.reporter, block.source, block.cumulative_lost, block.highest_sequence) == (
        0x1A2B3C4D,
        0x0BADF00D,
        3,
        0x14E20,
    )
    assert (block.fraction_lost, block.jitter, block.delay_since_last_sr) == (26 / 256, 24, 0x18000)
    assert content.cnames == ((0x1A2B3C4D, "pbx1@192.0.2.17"),)


def test_receiver_report_with_two_blocks_bye_with_reason_and_app() -> None:
    datagram = (
        receiver_report(
            0x77,
            report_block(0x100, 0x40, 12, 70_000, 160),
            report_block(0x200, 0x00, -2, 9, 0),  # duplicates make the cumulative count negative (§6.4.1)
        )
        + app(0x77, b"VQRA", b"\x00\x01\x02\x03")
        + bye(0x77, b"call ended")
    )
    content = parse_rtcp(datagram, 0.0)
    assert (content.malformed, content.receiver_report_packets, content.apps, content.byes) == (
        False,
        1,
        1,
        (0x77,),
    )
    first, second = content.reception_reports
    assert (first.fraction_lost, first.cumulative_lost, first.jitter) == (0.25, 12, 160)
    assert (second.source, second.cumulative_lost) == (0x200, -2)


def test_padding_on_the_last_packet_and_an_sr_profile_extension() -> None:
    # RFC 3550 §6.4.1: an SR may carry profile-specific extensions after its report blocks.
    extended = sender_report(5, 1 << 32, 99, blocks=report_block(6, 0, 0, 1, 8) + b"EXT0EXT1", count=1)
    padded_bye = struct.pack("!BBHI", 0xA1, 203, 2, 5) + b"\x00\x00\x00\x04"
    content = parse_rtcp(extended + padded_bye, 0.0)
    assert not content.malformed
    assert [sr.rtp_timestamp for sr in content.sender_reports] == [99]
    assert [b.jitter for b in content.reception_reports] == [8]
    assert content.byes == (5,)


def test_extended_reports_and_feedback_are_counted_not_used() -> None:
    xr = struct.pack("!BBHI", 0x80, 207, 4, 5) + struct.pack("!BBH", 4, 0, 2) + bytes(8)  # RFC 3611 §4.4 RRT
    nack = struct.pack("!BBHII", 0x81, 205, 3, 5, 6) + struct.pack("!HH", 100, 0)
    content = parse_rtcp(receiver_report(5) + xr + nack, 0.0)
    assert (content.malformed, content.other, content.receiver_report_packets) == (False, 2, 1)


@pytest.mark.parametrize(
    "datagram",
    [
        PBX_SR_SDES[:-3],  # cut short inside the SDES: the SR before it is kept
        PBX_SR_SDES[:52] + b"\x41" + PBX_SR_SDES[53:],  # version 1 in the SDES header
        PBX_SR_SDES[:54] + b"\x00\x40" + PBX_SR_SDES[56:],  # SDES length past the end
        PBX_SR_SDES + b"\x80\xcb",  # two stray octets after the compound
    ],
    ids=["truncated", "bad-version", "bad-length", "trailing"],
)
def test_broken_tail_keeps_what_came_before(datagram: bytes) -> None:
    content = parse_rtcp(datagram, 0.0)
    assert content.malformed
    assert [sr.rtp_timestamp for sr in content.sender_reports] == [0x12D687]


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"\x80\xc8",
        struct.pack("!BBH", 0x80, 200, 0),  # an SR with no body
        struct.pack("!BBHI", 0x82, 201, 1, 7),  # an RR that claims two blocks and carries none
        struct.pack("!BBHI", 0x81, 202, 2, 7) + b"\x01\x0fpb",  # an SDES item longer than its packet
        struct.pack("!BBHI", 0xA0, 200, 1, 0),  # padding count 0
        struct.pack("!BBH", 0x80, 204, 0),  # APP without SSRC and name
    ],
)
def test_malformed_rtcp_is_flagged_without_raising(datagram: bytes) -> None:
    content = parse_rtcp(datagram, 0.0)
    assert content.malformed
    assert content.sender_reports == ()


def test_random_and_mutated_datagrams_never_raise() -> None:
    rng = random.Random(17)
    good = PBX_SR_SDES + bye(0x1A2B3C4D) + app(1, b"TEST", bytes(8))
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytearray(good[: rng.randrange(len(good) + 1)])
            for _ in range(rng.randrange(1, 5)):
                if data:
                    data[rng.randrange(len(data))] = rng.getrandbits(8)
            datagram = bytes(data)
        else:
            datagram = bytes([0x80 | rng.randrange(32), rng.randrange(192, 224)]) + rng.randbytes(
                rng.randrange(80)
            )
        parse_rtcp(datagram, 0.0)


def test_tracker_keeps_the_latest_report_per_source_and_counts() -> None:
    stats = StreamStats()
    tracker = RtcpTracker(stats, clock_rate=8000)
    for k in range(20):
        tracker.feed(float(k), sender_report(k % 18, (k + 1) << 32, 160 * k) + bye(k % 18))
    tracker.feed(20.0, receiver_report(3, report_block(0x100, 0x40, 7, 1000, 400)))
    tracker.feed(21.0, b"\x80\xc9\x00\x05garbage")
    assert len(tracker.sender_reports) == 16  # bounded
    assert tracker.sender_reports[1].rtp_timestamp == 160 * 19  # the latest of SSRC 1
    assert (
        stats.rtcp_sender_reports,
        stats.rtcp_receiver_reports,
        stats.rtcp_byes,
        stats.rtcp_malformed,
    ) == (
        20,
        1,
        20,
        1,
    )
    assert (stats.reported_fraction_lost, stats.reported_lost, stats.reported_jitter_ms) == (0.25, 7, 50.0)


def test_timeline_reads_rtcp_mixed_into_its_packets() -> None:
    ssrc = 0x1A2B3C4D
    stream = pcmu_stream(tone(440, 100 * SAMPLES), ssrc=ssrc, seq0=1, ts0=0x12D687 - 50 * SAMPLES, start=T0)
    line = StreamTimeline(codec=pcmu(), payload_type=0, origin=T0)
    line.add(stream[:60])
    line.add([(T0 + 1.0, PBX_SR_SDES), (T0 + 1.0, sender_report(0xDEAD, 5 << 32, 0)), *stream[60:]])
    stats = line.stats
    assert (stats.rtcp_packets, stats.rtcp_sender_reports, stats.rtcp_receiver_reports) == (2, 2, 0)
    assert (stats.sender_packets, stats.sender_octets, stats.cname) == (250, 40000, "pbx1@192.0.2.17")
    assert (stats.reported_jitter_ms, stats.reported_lost) == (3.0, 3)
    assert (stats.packets, stats.invalid, stats.rtcp_sr_rejected) == (100, 0, 0)
    point = line.sync_point() or line.sync_candidate()
    assert point is not None
    assert (point.ntp, point.position) == (0xE93A1F2C_40000000, 8000)
