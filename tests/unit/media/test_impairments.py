"""Network and sender impairments placed by RTP timestamp, with exact sample positions.

Each test builds the traffic a real SRC or network would produce (DTX with comfort noise, marker bits,
ptime changes, duplicates, reordering, loss, wrap-around) and checks where every sample lands, and what the
quality signals say.
"""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt
import pytest

from media.g711 import encode_ulaw
from media.quality import GapCounter
from media.recorder import CallRecorder, StreamSpec
from media.timeline import StreamTimeline
from tests.unit.media.helpers import SAMPLES, T0, Packets, g711, pcmu, rtp, simulate, tone

SSRC = 0x3A5F_0C11


def timeline() -> StreamTimeline:
    return StreamTimeline(codec=pcmu(), payload_type=0, telephone_event_pt=101, origin=T0)


def packetize(
    samples: npt.NDArray[np.int16],
    ptimes_ms: list[int],
    *,
    ssrc: int = SSRC,
    seq0: int = 1000,
    ts0: int = 555_000,
    start: float = T0,
) -> Packets:
    """A PCMU stream whose packets last ``ptimes_ms`` in turn (cycled), sent in real time, marker on the first."""
    payload = encode_ulaw(samples)
    out: Packets = []
    offset = k = 0
    while offset < len(payload):
        size = ptimes_ms[k % len(ptimes_ms)] * 8
        out.append(
            (
                start + offset / 8000,
                rtp(seq0 + k, ts0 + offset, ssrc, payload[offset : offset + size], marker=k == 0),
            )
        )
        offset += size
        k += 1
    return out


def batches(packets: Packets, size: int = 10) -> list[Packets]:
    return [packets[i : i + size] for i in range(0, len(packets), size)]


AUDIO = tone(440, 8000)  # one second


def test_talkspurt_after_dtx_with_comfort_noise_lands_by_timestamp() -> None:
    # RFC 3389 §4 / RFC 3551 §4.1: after 1 s of speech the SRC sends a CN packet (level 70 −dBov) and two
    # SID updates, 2.4 s of nothing else, then a talkspurt with the marker bit; sequence numbers go on by one.
    first = packetize(AUDIO, [20])
    second_audio = tone(700, 4000)
    cn = [
        (T0 + 1.0 + 0.8 * k, rtp(1050 + k, 555_000 + 8000 + 6400 * k, SSRC, bytes([70, 0x8A, 0x55]), pt=13))
        for k in range(3)
    ]
    second = packetize(second_audio, [20], seq0=1053, ts0=555_000 + 8000 + 19_200, start=T0 + 3.4)
    line = timeline()
    for batch in batches([*first, *cn, *second]):
        line.add(batch)
    out = line.take(8000 + 19_200 + 4000)
    assert np.array_equal(out[:8000], g711(AUDIO))
    assert not out[8000:27_200].any()  # comfort noise is never decoded: the DTX gap is silence
    assert np.array_equal(out[27_200:], g711(second_audio))
    stats = line.stats
    assert (stats.comfort_noise, stats.comfort_noise_level, stats.other_payload) == (3, 70, 0)
    assert (stats.timestamp_jumps, stats.lost, stats.late, stats.reordered) == (0, 0, 0, 0)
    assert stats.gap_seconds == pytest.approx(2.4)
    assert (stats.packets, stats.expected) == (78, 78)


def test_marker_bit_with_a_timestamp_gap_but_no_dtx_keeps_the_anchor() -> None:
    # A talkspurt that starts 300 ms after the last one ended, marker set, sent 10 ms "early" by a jittery
    # sender clock: the timestamp decides, not the arrival.
    second_audio = tone(900, 1600)
    packets = packetize(AUDIO, [20]) + packetize(
        second_audio, [20], seq0=1050, ts0=555_000 + 8000 + 2400, start=T0 + 1.3 - 0.01
    )
    line = timeline()
    line.add(packets)
    out = line.take(8000 + 2400 + 1600)
    assert np.array_equal(out[10_400:], g711(second_audio))
    assert not out[8000:10_400].any()
    assert line.stats.gap_seconds == pytest.approx(0.3)


@pytest.mark.parametrize("ptime", [10, 20, 30, 40, 60])
def test_each_ptime_places_every_sample_exactly(ptime: int) -> None:
    audio = tone(523, 3 * 8000)
    line = timeline()
    for batch in batches(packetize(audio, [ptime], start=T0 + 0.25), 7):
        line.add(batch)
    assert (line.start_pos, line.end_pos) == (2000, 2000 + len(audio))
    line.seek(0)
    out = line.take(2000 + len(audio))
    assert not out[:2000].any()
    assert np.array_equal(out[2000:], g711(audio))
    assert (line.stats.packets, line.stats.lost, line.stats.gap_seconds) == (3000 // ptime, 0, 0.0)


def test_ptime_changing_mid_stream() -> None:
    # 20 ms, then 60 ms packets (a re-INVITE changed a=ptime), then 10 ms, then a mix of 30 and 40 ms.
    audio = tone(350, 4 * 8000)
    pattern = [20] * 25 + [60] * 8 + [10] * 60 + [30, 40] * 30
    packets = packetize(audio, pattern)
    assert sum(len(d) - 12 for _, d in packets) == len(audio)
    line = timeline()
    for batch in batches(packets, 9):
        line.add(batch)
    assert np.array_equal(line.take(len(audio)), g711(audio))
    assert (line.stats.lost, line.stats.gap_seconds) == (0, 0.0)
    assert line.stats.snapshot().jitter_ms == pytest.approx(
        0.0, abs=1e-3
    )  # sent in real time, arriving on time


def test_asymmetric_ptime_per_stream_stays_aligned_in_the_mix() -> None:
    audio = tone(440, 2 * 8000)
    ptimes = [10, 20, 30, 40, 60]
    streams = [StreamSpec(index=i, channel=i, codec=pcmu(), payload_type=0) for i in range(len(ptimes))]
    recorder = CallRecorder(streams=streams, channels=len(ptimes))
    legs = {i: packetize(audio, [p], ssrc=0x100 + i, seq0=7 * i, ts0=1000 * i) for i, p in enumerate(ptimes)}
    out = simulate(recorder, legs, start=T0, end=T0 + 2.0)
    assert out.shape == (len(audio), len(ptimes))
    for channel in range(len(ptimes)):
        assert np.array_equal(out[:, channel], g711(audio)), f"{ptimes[channel]} ms"


def test_forward_timestamp_jump_is_reanchored_without_a_gap() -> None:
    # A media server splices in another source with the same SSRC: timestamps leap 5 minutes ahead.
    audio = tone(600, 8000)
    packets = [
        (arrival, rtp(1000 + i, 555_000 + i * SAMPLES + (2_400_000 if i >= 20 else 0), SSRC, data[12:]))
        for i, (arrival, data) in enumerate(packetize(audio, [20]))
    ]
    line = timeline()
    for batch in batches(packets, 6):
        line.add(batch)
    assert (line.start_pos, line.end_pos) == (0, 8000)
    assert np.array_equal(line.take(8000), g711(audio))
    assert (line.stats.timestamp_jumps, line.stats.gap_seconds, line.stats.invalid) == (1, 0.0, 0)


def test_backward_timestamp_jump_in_a_later_batch() -> None:
    audio = tone(600, 8000)
    packets = [
        (arrival, rtp(1000 + i, 555_000 + i * SAMPLES - (40_000 if i >= 33 else 0), SSRC, data[12:]))
        for i, (arrival, data) in enumerate(packetize(audio, [20]))
    ]
    line = timeline()
    line.add(packets[:33])
    line.add(packets[33:])
    assert np.array_equal(line.take(8000), g711(audio))
    assert line.stats.timestamp_jumps == 1


def test_ssrc_change_after_a_pause_in_sending_leaves_a_measured_gap() -> None:
    second_audio = tone(1000, 4000)
    packets = packetize(AUDIO, [20]) + packetize(
        second_audio, [20], ssrc=0xB0B, seq0=9, ts0=1, start=T0 + 1.25
    )
    line = timeline()
    for batch in batches(packets):
        line.add(batch)
    out = line.take(10_000 + 4000)
    assert np.array_equal(out[:8000], g711(AUDIO))
    assert not out[8000:10_000].any()
    assert np.array_equal(out[10_000:], g711(second_audio))
    stats = line.stats
    assert (stats.ssrc, stats.ssrc_changes, stats.gap_seconds, stats.lost) == (0xB0B, 1, 0.25, 0)


def test_duplicate_flood_is_dropped_and_counted() -> None:
    # A misconfigured SBC sends every packet four times; some copies arrive after the original was written.
    packets = packetize(AUDIO, [20])
    flood = sorted(
        [
            *packets,
            *[(a + 0.001 * k, d) for a, d in packets for k in (1, 2)],
            *[(a + 0.6, d) for a, d in packets],
        ]
    )
    line = timeline()
    out = []
    for batch in batches(flood, 10):
        line.add(batch)
        out.append(line.take(min(8000, max(0, round((batch[-1][0] - 0.3 - T0) * 8000)))))
    out.append(line.take(8000))
    assert np.array_equal(np.concatenate(out), g711(AUDIO))
    stats = line.stats
    assert (stats.duplicated, stats.late, stats.lost, stats.reordered) == (150, 0, 0, 0)
    assert (stats.packets, stats.expected, stats.loss_fraction) == (200, 50, 0.0)


def test_reordering_within_the_window_is_placed_and_counted() -> None:
    packets = packetize(AUDIO, [20])
    rng = random.Random(3)
    # Each packet after the first delayed 0–60 ms by the network: many overtake their predecessors, all in time.
    arriving = sorted([packets[0], *[(a + rng.uniform(0, 0.06), d) for a, d in packets[1:]]])
    expect_reordered = sum(
        1 for k, (_, d) in enumerate(arriving) if any(e[1][2:4] > d[2:4] for e in arriving[:k])
    )
    assert expect_reordered > 10
    line = timeline()
    for batch in batches(arriving, 5):
        line.add(batch)
    assert np.array_equal(line.take(8000), g711(AUDIO))
    stats = line.stats
    assert (stats.reordered, stats.late, stats.lost, stats.gap_seconds) == (expect_reordered, 0, 0, 0.0)
    assert stats.snapshot().jitter_ms > 5


def test_reordering_beyond_the_window_is_late_and_leaves_silence() -> None:
    packets = packetize(AUDIO, [20])
    late = packets[20]
    line = timeline()
    line.add(packets[:20] + packets[21:30])
    written = line.take(25 * SAMPLES)  # the recorder's window passed packet 20's place
    line.add([(late[0] + 0.5, late[1]), *packets[30:]])
    out = np.concatenate([written, line.take(8000)])
    want = g711(AUDIO)
    want[20 * SAMPLES : 21 * SAMPLES] = 0
    assert np.array_equal(out, want)
    stats = line.stats
    assert (stats.late, stats.reordered, stats.lost, stats.gap_seconds) == (1, 0, 0, 0.02)


def test_loss_is_silence_never_a_repeated_packet() -> None:
    # No concealment: the recording does not invent audio, every lost packet is exactly its slot of silence.
    packets = packetize(AUDIO, [20])
    kept = [p for i, p in enumerate(packets) if i not in (5, 6, 7, 30)]
    line = timeline()
    line.add(kept)
    out = line.take(8000)
    want = g711(AUDIO)
    want[5 * SAMPLES : 8 * SAMPLES] = 0
    want[30 * SAMPLES : 31 * SAMPLES] = 0
    assert np.array_equal(out, want)
    stats = line.stats
    assert (stats.lost, stats.expected, stats.gap_seconds) == (4, 50, pytest.approx(0.08))
    assert stats.loss_fraction == pytest.approx(0.08)
    assert stats.snapshot().loss_fraction == pytest.approx(0.08)


def test_sequence_and_timestamp_wrapping_together_with_loss_across_the_wrap() -> None:
    audio = tone(480, 8000)
    packets = packetize(audio, [20], seq0=65_530, ts0=(1 << 32) - 7 * SAMPLES)
    kept = packets[:6] + packets[7:]  # sequence 0 (the first after the wrap) is lost
    kept[10], kept[11] = (kept[10][0], kept[11][1]), (kept[11][0], kept[10][1])
    line = timeline()
    for batch in batches(kept, 4):
        line.add(batch)
    want = g711(audio)
    want[6 * SAMPLES : 7 * SAMPLES] = 0
    assert np.array_equal(line.take(8000), want)
    stats = line.stats
    assert (stats.lost, stats.reordered, stats.timestamp_jumps, stats.expected) == (1, 1, 0, 50)


def test_paused_time_is_not_a_gap() -> None:
    line = timeline()
    line.pause(T0 + 0.4)
    line.resume(T0 + 0.6)
    line.add(packetize(AUDIO, [20])[:17] + packetize(AUDIO, [20])[18:])
    stats = line.stats
    assert (stats.suppressed, stats.lost, stats.gap_seconds) == (10, 1, pytest.approx(0.02))


def rfc3550_jitter(arrivals: list[float], timestamps: list[int], clock: int) -> float:
    """RFC 3550 A.8, packet by packet in arrival order, in milliseconds."""
    jitter = 0.0
    previous: float | None = None
    for arrival, ts in zip(arrivals, timestamps, strict=True):
        transit = arrival * clock - ts
        if previous is not None:
            jitter += (abs(transit - previous) - jitter) / 16
        previous = transit
    return jitter * 1000 / clock


@pytest.mark.parametrize("batch_size", [1, 10, 333, 5000])
def test_interarrival_jitter_matches_rfc_3550_a8(batch_size: int) -> None:
    audio = tone(440, 60 * 8000)  # 3000 packets
    rng = random.Random(21)
    packets = sorted((a + rng.expovariate(1 / 0.008), d) for a, d in packetize(audio, [20]))
    line = timeline()
    for batch in batches(packets, batch_size):
        line.add(batch)
    ts = [int.from_bytes(d[4:8]) - 555_000 for _, d in packets]
    want = rfc3550_jitter([a - T0 for a, _ in packets], ts, 8000)
    assert 3 < want < 15
    assert line.stats.snapshot().jitter_ms == pytest.approx(want, rel=1e-9)


def test_alternating_delay_converges_to_its_amplitude() -> None:
    packets = [(a + 0.010 * (i % 2), d) for i, (a, d) in enumerate(packetize(tone(440, 4 * 8000), [20]))]
    line = timeline()
    line.add(packets)
    assert line.stats.snapshot().jitter_ms == pytest.approx(10.0, rel=1e-3)
    steady = timeline()
    steady.add([(a + 0.150, d) for a, d in packetize(tone(440, 4 * 8000), [20])])
    assert steady.stats.snapshot().jitter_ms == pytest.approx(0.0, abs=1e-3)


def test_live_jitter_is_folded_in_batches_and_on_snapshot() -> None:
    packets = [(a + 0.010 * (i % 2), d) for i, (a, d) in enumerate(packetize(tone(440, 2 * 8000), [20]))]
    line = timeline()
    line.add(packets)
    assert line.stats.jitter_ms == 0.0  # 100 packets: not folded yet
    assert line.stats.snapshot().jitter_ms == pytest.approx(10.0, rel=0.01)
    assert line.stats.jitter_ms == line.stats.snapshot().jitter_ms


def test_gap_counter_spans_runs_before_and_after_and_leaves_pauses_out() -> None:
    gaps = GapCounter()
    gaps.record([(1000, 0, 160), (1160, 160, 320)])
    gaps.record([(1800, 0, 160)], pauses=[(1400, 1600)])  # 480 silent, 200 of them paused
    assert (gaps.low, gaps.high, gaps.samples) == (1000, 1960, 280)
    gaps.record([(500, 0, 160)])  # a reordered packet from before the first: 340 silent before the span
    assert (gaps.low, gaps.samples) == (500, 620)
    gaps.record([(1320, 0, 160)])  # fills part of the hole after 1320
    assert gaps.samples == 460
    gaps.shift(-300)  # an alignment move 300 samples earlier: the next run overwrites, no gap
    gaps.record([(1660, 0, 160)])
    assert (gaps.high, gaps.samples) == (1820, 460)


def test_a_hole_under_overlapping_pause_and_key_press_is_left_out_once() -> None:
    gaps = GapCounter()
    gaps.record([(0, 0, 160)])
    # A hole of 800 samples; a pause covers 300-700 and a key press 500-900 (together 300-900: 600).
    gaps.record([(960, 0, 160)], [(300, 700), (500, 900)])
    assert gaps.samples == 800 - 600
