from __future__ import annotations

import random
import struct

import numpy as np
import numpy.typing as npt
import pytest

from media.codecs import Codec
from media.g711 import decode_ulaw, encode_ulaw
from media.timeline import StreamTimeline
from tests.unit.media.helpers import (
    PTIME,
    SAMPLES,
    T0,
    pcmu,
    pcmu_stream,
    rtcp_receiver_report,
    rtp,
    telephone_event,
    tone,
)

Packets = list[tuple[float, bytes]]
SSRC = 0x6D1F03A2


def timeline() -> StreamTimeline:
    return StreamTimeline(codec=pcmu(), payload_type=0, telephone_event_pt=101, origin=T0)


def expected(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """What the recording holds for these samples: their G.711 rendition."""
    return decode_ulaw(encode_ulaw(samples))


def in_batches(packets: Packets, size: int) -> list[Packets]:
    return [packets[i : i + size] for i in range(0, len(packets), size)]


AUDIO = tone(440, 50 * SAMPLES)  # one second
STREAM = pcmu_stream(AUDIO, ssrc=SSRC, seq0=23000, ts0=1_234_560, start=T0)


def test_in_order_stream_is_placed_from_its_first_arrival() -> None:
    line = timeline()
    for batch in in_batches(STREAM, 10):
        line.add(batch)
    assert (line.start_pos, line.end_pos) == (0, 8000)
    out = line.take(8000)
    assert np.array_equal(out, expected(AUDIO))
    stats = line.stats
    assert (stats.packets, stats.lost, stats.late, stats.duplicated, stats.invalid) == (50, 0, 0, 0, 0)
    assert stats.bytes == 50 * 172
    assert stats.ssrc == SSRC
    assert (stats.first_packet_at, stats.last_packet_at) == (T0, T0 + 49 * PTIME)


def test_stream_starting_after_the_origin_is_offset_by_its_arrival() -> None:
    line = timeline()
    line.add(pcmu_stream(AUDIO, ssrc=SSRC, seq0=1, ts0=99, start=T0 + 0.75))
    assert line.start_pos == 6000
    line.seek(0)
    out = line.take(14000)
    assert not out[:6000].any()
    assert np.array_equal(out[6000:], expected(AUDIO))


def test_reordering_within_the_window_changes_nothing() -> None:
    shuffled = list(STREAM)
    rng = random.Random(5)
    for i in range(0, len(shuffled) - 3, 4):  # swap neighbours, keeping each packet's real arrival order
        shuffled[i + 1], shuffled[i + 2] = shuffled[i + 2], shuffled[i + 1]
    arrivals = sorted(a for a, _ in shuffled)
    shuffled = [(arrivals[k] + (k > 0) * rng.uniform(0, 0.004), data) for k, (_, data) in enumerate(shuffled)]
    line = timeline()
    for batch in in_batches(shuffled, 7):
        line.add(batch)
    assert np.array_equal(line.take(8000), expected(AUDIO))
    assert (line.stats.lost, line.stats.late, line.stats.duplicated) == (0, 0, 0)


def test_packet_arriving_a_batch_later_but_before_emission_is_placed() -> None:
    line = timeline()
    held_back = STREAM[12]
    line.add(STREAM[:12] + STREAM[13:20])
    line.add([(T0 + 20 * PTIME, held_back[1]), *STREAM[20:]])
    assert np.array_equal(line.take(8000), expected(AUDIO))
    assert line.stats.lost == 0


def test_duplicates_are_counted_and_dropped() -> None:
    line = timeline()
    packets = [*STREAM[:10], (T0 + 0.2, STREAM[9][1]), (T0 + 0.21, STREAM[3][1]), *STREAM[10:]]
    line.add(packets)
    assert np.array_equal(line.take(8000), expected(AUDIO))
    assert line.stats.duplicated == 2
    assert line.stats.packets == 52
    assert line.stats.lost == 0


def test_lost_packet_leaves_silence_exactly_where_it_was() -> None:
    line = timeline()
    line.add(STREAM[:17] + STREAM[18:])
    out = line.take(8000)
    want = expected(AUDIO).copy()
    want[17 * SAMPLES : 18 * SAMPLES] = 0
    assert np.array_equal(out, want)
    assert not out[17 * SAMPLES : 18 * SAMPLES].any()
    assert line.stats.lost == 1


def test_late_packet_is_counted_and_dropped() -> None:
    line = timeline()
    line.add(STREAM[:30] + STREAM[31:40])
    first = line.take(32 * SAMPLES)  # packet 30's slot is written as silence
    line.add([(T0 + 40 * PTIME + 0.4, STREAM[30][1])])
    line.add(STREAM[40:])
    rest = line.take(8000)
    out = np.concatenate([first, rest])
    want = expected(AUDIO).copy()
    want[30 * SAMPLES : 31 * SAMPLES] = 0
    assert np.array_equal(out, want)
    assert line.stats.late == 1
    assert line.stats.lost == 0  # it did arrive


def test_sequence_wrap_is_not_loss() -> None:
    packets = pcmu_stream(AUDIO, ssrc=SSRC, seq0=65520, ts0=0, start=T0)
    line = timeline()
    line.add(packets[:20] + packets[21:])  # drops seq 4 after the wrap 65535 → 0
    out = line.take(8000)
    assert not out[20 * SAMPLES : 21 * SAMPLES].any()
    assert line.stats.lost == 1
    assert line.stats.duplicated == 0


def test_timestamp_wrap_keeps_the_stream_continuous() -> None:
    packets = pcmu_stream(AUDIO, ssrc=SSRC, seq0=9, ts0=(1 << 32) - 5 * SAMPLES, start=T0)
    line = timeline()
    for batch in in_batches(packets, 3):
        line.add(batch)
    assert np.array_equal(line.take(8000), expected(AUDIO))
    assert line.stats.timestamp_jumps == 0


def test_reordered_packet_across_the_timestamp_wrap() -> None:
    packets = pcmu_stream(AUDIO, ssrc=SSRC, seq0=9, ts0=(1 << 32) - 5 * SAMPLES, start=T0)
    packets[4], packets[5] = (packets[4][0], packets[5][1]), (packets[5][0], packets[4][1])
    line = timeline()
    line.add(packets)
    assert np.array_equal(line.take(8000), expected(AUDIO))


def test_new_ssrc_reanchors_from_arrival() -> None:
    second = tone(1000, 25 * SAMPLES)
    # An SBC switches source after a transfer: new SSRC, unrelated sequence and timestamp, after a 100 ms gap.
    after = pcmu_stream(second, ssrc=0x0BADCAFE, seq0=40000, ts0=987_654_321, start=T0 + 1.1)
    line = timeline()
    line.add(STREAM)
    line.add(after)
    out = line.take(8800 + len(second))
    assert np.array_equal(out[:8000], expected(AUDIO))
    assert not out[8000:8800].any()
    assert np.array_equal(out[8800:], expected(second))
    stats = line.stats
    assert (stats.ssrc, stats.ssrc_changes, stats.lost, stats.timestamp_jumps) == (0x0BADCAFE, 1, 0, 0)


def test_timestamp_jump_that_disagrees_with_arrival_reanchors() -> None:
    line = timeline()
    jumped = [
        (arrival, rtp(23000 + i, 1_234_560 + i * SAMPLES + (80000 if i >= 25 else 0), SSRC, data[12:]))
        for i, (arrival, data) in enumerate(STREAM)
    ]
    line.add(jumped)
    assert np.array_equal(line.take(8000), expected(AUDIO))  # still continuous: placed by arrival
    assert line.stats.timestamp_jumps == 1
    assert line.end_pos == 8000


def test_backward_timestamp_jump_reanchors_too() -> None:
    line = timeline()
    jumped = [
        (arrival, rtp(23000 + i, 1_234_560 + i * SAMPLES - (3 * 8000 if i >= 30 else 0), SSRC, data[12:]))
        for i, (arrival, data) in enumerate(STREAM)
    ]
    line.add(jumped)
    assert np.array_equal(line.take(8000), expected(AUDIO))
    assert line.stats.timestamp_jumps == 1


def test_silence_suppression_gap_is_silence_not_a_jump() -> None:
    # DTX: the sender stops for 2 s; timestamps and arrival times advance together.
    line = timeline()
    later = pcmu_stream(AUDIO, ssrc=SSRC, seq0=23050, ts0=1_234_560 + 8000 + 16000, start=T0 + 3.0)
    line.add(STREAM)
    line.add(later)
    out = line.take(8000 + 16000 + 8000)
    assert not out[8000:24000].any()
    assert np.array_equal(out[24000:], expected(AUDIO))
    assert (line.stats.timestamp_jumps, line.stats.lost) == (0, 0)


def test_telephone_events_share_the_sequence_but_stay_out_of_the_audio() -> None:
    # The SRC replaces 3 audio packets by RFC 4733 events (same SSRC, sequence and clock); the end repeats.
    packets: Packets = []
    for i, (arrival, data) in enumerate(STREAM):
        if 20 <= i < 23:
            payload = telephone_event(5, end=i == 22, duration=(i - 19) * SAMPLES)
            packets.append(
                (arrival, rtp(23000 + i, 1_234_560 + 20 * SAMPLES, SSRC, payload, pt=101, marker=i == 20))
            )
        else:
            packets.append((arrival, data))
    packets.insert(23, (T0 + 22 * PTIME + 0.005, packets[22][1]))  # end packet retransmitted
    line = timeline()
    line.add(packets)
    out = line.take(8000)
    want = expected(AUDIO).copy()
    want[20 * SAMPLES : 23 * SAMPLES] = 0
    assert np.array_equal(out, want)
    stats = line.stats
    assert (stats.telephone_events, stats.lost, stats.duplicated) == (3, 0, 0)


def test_rtcp_garbage_and_other_payload_types_are_counted_apart() -> None:
    stun = bytes.fromhex("000100002112a442") + bytes(12)
    comfort_noise = rtp(23050, 1_234_560 + 50 * SAMPLES, SSRC, b"\x40", pt=13)
    packets = [
        *STREAM[:25],
        (T0 + 0.5, rtcp_receiver_report(SSRC)),
        (T0 + 0.5, stun),
        (T0 + 0.5, b"\x80\x00\x01"),
        *STREAM[25:],
        (T0 + 1.0, comfort_noise),
    ]
    line = timeline()
    line.add(packets)
    assert np.array_equal(line.take(8000), expected(AUDIO))
    stats = line.stats
    assert (stats.rtcp_packets, stats.invalid, stats.comfort_noise, stats.packets) == (1, 2, 1, 51)
    assert (stats.other_payload, stats.comfort_noise_level, stats.rtcp_receiver_reports) == (0, 64, 1)
    assert (stats.cname, stats.rtcp_malformed, stats.lost) == ("hangtar@192.0.2.10", 0, 0)


def test_packets_with_csrc_extension_and_padding_are_decoded_from_the_right_offset() -> None:
    packets = [
        (
            arrival,
            rtp(
                23000 + i,
                1_234_560 + i * SAMPLES,
                SSRC,
                data[12:],
                csrcs=(7,),
                extension=(0xBEDE, bytes([0x10, 0x9F, 0, 0])),
                padding=4,
            ),
        )
        for i, (arrival, data) in enumerate(STREAM)
    ]
    line = timeline()
    line.add(packets)
    assert np.array_equal(line.take(8000), expected(AUDIO))


def test_pause_drops_media_and_keeps_the_timeline() -> None:
    line = timeline()
    line.pause(T0 + 0.4)
    line.resume(T0 + 0.6)
    for batch in in_batches(STREAM, 10):
        line.add(batch)
    out = line.take(8000)
    want = expected(AUDIO).copy()
    want[20 * SAMPLES : 30 * SAMPLES] = 0
    assert np.array_equal(out, want)
    assert (line.stats.suppressed, line.stats.lost, line.stats.packets) == (10, 0, 50)


def test_take_advances_and_returns_silence_beyond_the_media() -> None:
    line = timeline()
    line.add(STREAM[:10])
    assert len(line.take(800)) == 800
    assert line.emitted_pos == 800
    assert len(line.take(800)) == 0
    tail = line.take(4000)
    assert len(tail) == 3200
    assert not tail[800:].any()
    with pytest.raises(ValueError, match="forward"):
        line.seek(100)


def test_long_stream_through_small_takes_matches_one_shot() -> None:
    audio = tone(300, 1500 * SAMPLES)  # 30 s
    packets = pcmu_stream(audio, ssrc=SSRC, seq0=65000, ts0=(1 << 32) - 100_000, start=T0)
    line = timeline()
    out = []
    for k, batch in enumerate(in_batches(packets, 10)):
        line.add(batch)
        out.append(line.take(max(0, (k - 1) * 10 * SAMPLES)))
    out.append(line.take(len(audio)))
    assert np.array_equal(np.concatenate(out), expected(audio))
    assert (line.stats.lost, line.stats.late) == (0, 0)


def test_random_datagrams_never_break_the_timeline() -> None:
    rng = random.Random(7)
    line = timeline()
    packets: Packets = []
    for i in range(3000):
        arrival = T0 + i * 0.005
        if rng.random() < 0.5:
            data = bytearray(STREAM[i % 50][1])
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            packets.append((arrival, bytes(data[: rng.randrange(0, len(data) + 1)])))
        else:
            packets.append((arrival, bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))))
    for batch in in_batches(packets, 13):
        line.add(batch)
        line.take(round((batch[-1][0] - T0 - 0.3) * 8000))
    stats = line.stats
    # Every datagram is classified; RTP packets dropped as timestamp strays count as packets and invalid.
    assert stats.packets + stats.rtcp_packets <= 3000 <= stats.packets + stats.invalid + stats.rtcp_packets
    assert line.end_pos is not None
    assert line.end_pos <= round((packets[-1][0] - T0 + 1.0) * 8000) + 8000  # never beyond arrival + 1 s


def test_adding_before_an_origin_is_a_usage_error() -> None:
    line = StreamTimeline(codec=pcmu(), payload_type=0)
    with pytest.raises(RuntimeError, match="origin"):
        line.add(STREAM[:1])


def test_packet_older_than_the_first_arrival_is_placed_before_it() -> None:
    # Packet 1 overtakes packet 0: the anchor is packet 1, packet 0 lands one packet earlier.
    packets = [(T0, STREAM[1][1]), (T0 + 0.001, STREAM[0][1]), *STREAM[2:]]
    line = timeline()
    line.add(packets[:1])
    line.add(packets[1:])
    assert (line.start_pos, line.end_pos) == (-SAMPLES, 8000 - SAMPLES)
    assert np.array_equal(line.take(8000 - SAMPLES), expected(AUDIO))


def test_sequence_restart_with_the_same_ssrc_is_not_counted_as_loss() -> None:
    # A gateway restarts its RTP stack but keeps the SSRC: the sequence jumps by 20000, timestamps go on.
    packets = [
        (
            arrival,
            rtp((23000 + i + (20000 if i >= 25 else 0)) & 0xFFFF, 1_234_560 + i * SAMPLES, SSRC, data[12:]),
        )
        for i, (arrival, data) in enumerate(STREAM)
    ]
    line = timeline()
    line.add(packets[:10] + packets[11:])  # and one packet before the restart is lost
    want = expected(AUDIO).copy()
    want[10 * SAMPLES : 11 * SAMPLES] = 0
    assert np.array_equal(line.take(8000), want)  # the audio follows the timestamps throughout
    assert line.stats.lost == 1


def test_one_stray_packet_neither_restarts_sequence_nor_reanchors() -> None:
    # An old packet replayed 10 s late (500 packets behind): a big sequence and timestamp jump, alone.
    stray = rtp(23000 + 40 - 500, 1_234_560 + 40 * SAMPLES - 500 * SAMPLES, SSRC, b"\x00" * SAMPLES)
    line = timeline()
    line.add([*STREAM[:40], (T0 + 40 * PTIME, stray), *STREAM[40:]])
    assert np.array_equal(line.take(8000), expected(AUDIO))
    stats = line.stats
    assert (stats.lost, stats.late, stats.timestamp_jumps, stats.invalid, stats.packets) == (0, 0, 0, 1, 51)


def test_pause_that_ended_before_the_batch_keeps_the_fast_path_exact() -> None:
    line = timeline()
    line.pause(T0 + 0.1)
    line.resume(T0 + 0.2)
    for batch in in_batches(STREAM, 10):  # the first batch straddles the pause, the others come after it
        line.add(batch)
    want = expected(AUDIO).copy()
    want[5 * SAMPLES : 10 * SAMPLES] = 0
    assert np.array_equal(line.take(8000), want)
    assert line.stats.suppressed == 5


def repeat_ulaw(payload: bytes) -> npt.NDArray[np.int16]:
    """A 16 kHz stand-in decoder: every octet gives two samples (as G.722 does on its 8 kHz RTP clock)."""
    return np.repeat(decode_ulaw(payload), 2)


def test_sample_rate_above_the_rtp_clock_rate_scales_positions() -> None:
    wideband = Codec(name="X-WIDE", clock_rate=8000, sample_rate=16000, decode=repeat_ulaw)
    line = StreamTimeline(codec=wideband, payload_type=9, origin=T0)
    packets = pcmu_stream(AUDIO, ssrc=SSRC, seq0=1, ts0=4_294_967_000, start=T0 + 0.5, pt=9)
    line.add(packets[:10] + packets[11:])
    assert (line.start_pos, line.end_pos) == (8000, 8000 + 16000)
    line.seek(8000)
    out = line.take(24000)
    want = np.repeat(expected(AUDIO), 2)
    want[10 * 2 * SAMPLES : 11 * 2 * SAMPLES] = 0
    assert np.array_equal(out, want)
    assert line.stats.lost == 1


def stray(i: int, rng: random.Random) -> bytes:
    """Well-formed RTP from nowhere: a random SSRC, sequence and timestamp, the audio payload type."""
    return rtp(rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(32), rng.randbytes(160))


def test_stray_rtp_neither_starts_nor_interrupts_the_stream() -> None:
    rng = random.Random(11)
    packets: Packets = [(T0 - 0.5, stray(0, rng))]  # arrives first: must not anchor anything
    for i, (arrival, data) in enumerate(STREAM):
        packets.append((arrival, data))
        if i % 3 == 0:
            packets.append((arrival + 0.001, stray(i, rng)))
    line = timeline()
    for batch in in_batches(packets, 9):
        line.add(batch)
    assert line.start_pos == 0
    assert np.array_equal(line.take(8000), expected(AUDIO))
    stats = line.stats
    assert (stats.packets, stats.invalid, stats.ssrc, stats.ssrc_changes) == (50, 18, SSRC, 0)
    assert stats.first_packet_at == T0


def test_a_second_source_sending_alongside_never_takes_over() -> None:
    # A stale sender keeps streaming to the port, interleaved with the real one and often twice in a row.
    other = pcmu_stream(tone(1000, 50 * SAMPLES), ssrc=0x0DD, seq0=7, ts0=0, start=T0 + 0.005)
    packets = sorted([*STREAM, *[(a + (k % 4 == 0) * 0.016, d) for k, (a, d) in enumerate(other)]])
    line = timeline()
    for batch in in_batches(packets, 10):
        line.add(batch)
    assert np.array_equal(line.take(8000), expected(AUDIO))
    assert (line.stats.ssrc, line.stats.ssrc_changes, line.stats.packets) == (SSRC, 0, 50)


def test_seamless_source_change_loses_nothing() -> None:
    # The new source starts one packet time after the old one's last packet; it is recorded once proven.
    second = tone(1000, 25 * SAMPLES)
    after = pcmu_stream(second, ssrc=0x0BADCAFE, seq0=40000, ts0=5, start=T0 + 50 * PTIME)
    line = timeline()
    for batch in in_batches([*STREAM, *after], 10):
        line.add(batch)
    out = line.take(8000 + len(second))
    assert np.array_equal(out, np.concatenate([expected(AUDIO), expected(second)]))
    stats = line.stats
    assert (stats.ssrc, stats.ssrc_changes, stats.packets, stats.invalid, stats.lost) == (
        0x0BADCAFE,
        1,
        75,
        0,
        0,
    )


def test_single_packet_of_a_source_is_not_recorded() -> None:
    line = timeline()
    line.add(STREAM[:1])
    assert (line.start_pos, line.stats.packets, line.stats.invalid) == (None, 0, 1)


def sender_report(ssrc: int, ntp: int, rtp_ts: int) -> bytes:
    return struct.pack("!BBHIQIII", 0x80, 200, 6, ssrc, ntp, rtp_ts, 10, 1600)


def test_shift_earlier_overwrites_once_and_drops_reordered_packets_sent_before_it() -> None:
    line = timeline()
    line.seek(0)  # output has started
    line.add(STREAM[:12] + STREAM[13:20])  # packet 12 is held up in the network
    line.shift(-800)
    line.add([*STREAM[20:30], STREAM[12], *STREAM[30:]])
    out = line.take(8000 - 800)
    want = expected(AUDIO)
    assert np.array_equal(out[: 12 * SAMPLES], want[: 12 * SAMPLES])
    assert not out[12 * SAMPLES : 13 * SAMPLES].any()  # packet 12 came after the move: late
    assert np.array_equal(out[13 * SAMPLES : 15 * SAMPLES], want[13 * SAMPLES : 15 * SAMPLES])
    assert np.array_equal(out[15 * SAMPLES :], want[20 * SAMPLES :])  # packets 15-19 overwritten: dropped
    stats = line.stats
    assert (stats.alignments, stats.alignment_seconds, stats.late, stats.lost) == (1, -0.1, 1, 0)
    assert stats.gap_seconds == pytest.approx(0.02)  # packet 12's slot; the move itself is no gap
    assert stats.snapshot().jitter_ms == pytest.approx(0.0, abs=1e-3)  # the move is no transit change either


def test_shift_before_any_output_moves_the_placed_audio_whole() -> None:
    line = timeline()
    line.add(STREAM[:20])
    line.shift(-1600)  # aligned 200 ms earlier before the recorder handed anything out
    line.add(STREAM[20:])
    assert line.start_pos == -1600
    out = line.take(len(AUDIO) - 1600)
    assert np.array_equal(out, expected(AUDIO))  # nothing dropped, nothing padded
    assert (line.stats.late, line.stats.alignments) == (0, 1)


def test_shift_later_pads_and_keeps_the_shift_across_a_new_source() -> None:
    second = tone(1000, 25 * SAMPLES)
    after = pcmu_stream(second, ssrc=0x0BADCAFE, seq0=40000, ts0=987_654_321, start=T0 + 1.1)
    line = timeline()
    line.seek(0)  # output has started
    line.add(STREAM[:25])
    line.shift(400)
    line.add(STREAM[25:])
    line.add(after)  # anchored from its arrival, 400 samples later than arrival says
    out = line.take(8800 + 400 + len(second))
    assert np.array_equal(out[: 25 * SAMPLES], expected(AUDIO)[: 25 * SAMPLES])
    assert not out[25 * SAMPLES : 25 * SAMPLES + 400].any()
    assert np.array_equal(out[25 * SAMPLES + 400 : 8400], expected(AUDIO)[25 * SAMPLES :])
    assert np.array_equal(out[9200:], expected(second))
    stats = line.stats
    assert (stats.alignments, stats.alignment_seconds, stats.gap_seconds) == (1, 0.05, 0.1)


def test_sender_reports_become_sync_candidates_only_for_the_anchored_source() -> None:
    line = timeline()
    line.add([(T0 - 0.5, sender_report(SSRC, 7 << 32, 1_234_560))])  # before any RTP: nothing to map
    assert not line.sync_offered
    line.add(STREAM[:30])
    line.add([(T0 + 0.6, sender_report(0x0DD, 8 << 32, 1_234_560))])  # another SSRC
    assert not line.sync_offered
    line.add([(T0 + 0.6, sender_report(SSRC, 9 << 32, 1_234_560 + 30 * SAMPLES))])
    candidate = line.sync_candidate()
    assert candidate is not None and (candidate.ntp, candidate.position) == (9 << 32, 4800)
    line.settle_sync(True)
    point = line.sync_point()
    assert point is not None and point.position == 4800
    line.shift(-160)
    assert line.sync_point() == type(point)(ntp=9 << 32, position=4640)  # the mapping moves with the stream
    after = pcmu_stream(tone(1000, 10 * SAMPLES), ssrc=0x0BADCAFE, seq0=1, ts0=5, start=T0 + 1.1)
    line.add(after)
    assert line.sync_point() is None  # a new source: the old clock mapping is of no use
    assert line.stats.sender_packets is None
