"""Two legs of one call aligned on the SRC's clock through RTCP sender reports, one path delayed.

The SRC forks both legs from one clock and sends an SR on each about every 5 s, the first 1.25 and 1.75 s in
(RFC 3550 §6.4.1 and its §6.2 interval, randomised by the sender). Both legs carry 100 ms tone bursts that
start together at SRC times 0.5, 1.5, 2.5 … s; the callee's packets and reports arrive ``delay`` later. The
SRC's wall clock runs 12.345 s ahead of ours: only differences between its reports matter.
"""

from __future__ import annotations

import random
import struct

import numpy as np
import numpy.typing as npt
import pytest

from media.clock_sync import SyncPoint, alignment, consistent, lag
from media.recorder import CallRecorder, StreamSpec
from media.rtcp import NTP_UNIX_OFFSET
from tests.unit.media.helpers import T0, Packets, g711, pcmu, pcmu_stream, simulate, tone

SECONDS = 14
SRC_CLOCK = T0 + 12.345  # the SRC's wall clock at the start of the call
CALLER, CALLEE = 0, 1
SSRCS = {CALLER: 0x5EC0_0001, CALLEE: 0x5EC0_0002}
TS0 = {CALLER: 3_000_000_000, CALLEE: 17}
SEQ0 = {CALLER: 65_500, CALLEE: 300}
FIRST_SR = {CALLER: 1.25, CALLEE: 1.75}
FREQUENCY = {CALLER: 440.0, CALLEE: 1000.0}


def bursts(freq: float) -> npt.NDArray[np.int16]:
    audio = np.zeros(SECONDS * 8000, dtype=np.int16)
    for k in range(SECONDS):
        start = k * 8000 + 4000
        audio[start : start + 800] = tone(freq, 800)
    return audio


def sender_report(ssrc: int, ntp_time: float, rtp_ts: int, packets: int, cname: bytes) -> bytes:
    """SR (no report blocks) + SDES CNAME, as an SRC sends them (RFC 3550 §6.4.1, §6.5)."""
    ntp = round((ntp_time + NTP_UNIX_OFFSET) * 2**32)
    sr = struct.pack("!BBHIQIII", 0x80, 200, 6, ssrc, ntp, rtp_ts & 0xFFFFFFFF, packets, packets * 160)
    item = bytes([1, len(cname)]) + cname
    chunk = struct.pack("!I", ssrc) + item + bytes(4 - len(item) % 4)
    return sr + struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk


def leg(index: int, delay: float, *, seed: int, lie: dict[int, float] | None = None) -> Packets:
    """One leg's RTP, 0.5–4 ms of jitter after the first packet, and its SRs every 5 s; ``lie`` adds
    seconds to the NTP time of the SR with that number."""
    rng = random.Random(seed)
    packets = pcmu_stream(
        bursts(FREQUENCY[index]), ssrc=SSRCS[index], seq0=SEQ0[index], ts0=TS0[index], start=T0 + delay
    )
    moved = [packets[0]] + [(a + rng.uniform(0.0005, 0.004), d) for a, d in packets[1:]]
    for n, at in enumerate(np.arange(FIRST_SR[index], SECONDS, 5.0)):
        ntp_time = SRC_CLOCK + at + (lie or {}).get(n, 0.0)
        report = sender_report(
            SSRCS[index], ntp_time, TS0[index] + round(at * 8000), int(at * 50), b"src@sbc"
        )
        moved.append((T0 + delay + at, report))
    return sorted(moved, key=lambda p: p[0])


def record(
    legs: dict[int, Packets], reorder_window: float = 0.3, sync_wait: float = 0.0
) -> tuple[npt.NDArray[np.int16], CallRecorder]:
    streams = [
        StreamSpec(index=i, channel=i, codec=pcmu(), payload_type=0, telephone_event_pt=101) for i in legs
    ]
    recorder = CallRecorder(streams=streams, channels=2, reorder_window=reorder_window, sync_wait=sync_wait)
    out = simulate(recorder, legs, start=T0, end=T0 + SECONDS + 0.6)
    return out, recorder


def onsets(channel: npt.NDArray[np.int16]) -> list[int]:
    """Where each burst starts: a non-zero sample after at least 100 ms of silence."""
    loud = np.flatnonzero(channel)
    return [int(p) for k, p in enumerate(loud) if k == 0 or p - loud[k - 1] > 800]


def test_without_sender_reports_the_delayed_leg_stays_late() -> None:
    legs = {i: [p for p in leg(i, 0.2 * i, seed=i) if p[1][1] != 200] for i in (CALLER, CALLEE)}
    out, recorder = record(legs)
    assert onsets(out[:, 0]) == [k * 8000 + 4000 for k in range(SECONDS)]
    assert onsets(out[:, 1]) == [k * 8000 + 5600 for k in range(SECONDS)]
    assert [s.alignments for s in recorder.result().streams] == [0, 0]


def test_delayed_leg_moves_onto_the_callers_clock_after_the_first_report_pair() -> None:
    out, recorder = record({CALLER: leg(CALLER, 0.0, seed=1), CALLEE: leg(CALLEE, 0.2, seed=2)})
    assert onsets(out[:, 0]) == [k * 8000 + 4000 for k in range(SECONDS)]
    # Bursts at 0.5 and 1.5 s arrive before the callee's first SR (at 1.95 s): 200 ms late; then aligned.
    assert onsets(out[:, 1]) == [5600, 13600] + [k * 8000 + 4000 for k in range(2, SECONDS)]
    # The first packet placed after the move (SRC time 1.8 s) overwrote the 200 ms before it, once.
    audio = g711(bursts(FREQUENCY[CALLEE]))
    assert np.array_equal(out[1600:14400, 1], audio[:12800])
    assert np.array_equal(out[14400 : SECONDS * 8000, 1], audio[14400:])
    assert np.array_equal(out[: SECONDS * 8000, 0], g711(bursts(FREQUENCY[CALLER])))
    caller, callee = recorder.result().streams
    assert (caller.alignments, caller.alignment_seconds) == (0, 0.0)
    assert (callee.alignments, callee.alignment_seconds) == (1, pytest.approx(-0.2))
    assert [(s.rtcp_sender_reports, s.rtcp_sr_rejected, s.cname) for s in (caller, callee)] == [
        (3, 0, "src@sbc"),
        (3, 0, "src@sbc"),
    ]
    assert (callee.sender_packets, callee.sender_octets) == (587, 587 * 160)
    assert [(s.late, s.lost) for s in (caller, callee)] == [(0, 0), (0, 0)]


def test_delay_on_the_first_leg_moves_that_leg() -> None:
    out, recorder = record({CALLER: leg(CALLER, 0.2, seed=3), CALLEE: leg(CALLEE, 0.0, seed=4)})
    # The caller's first SR arrives at 1.45 s and the callee's at 1.75 s: aligned from the batch after.
    # The move overwrites the 200 ms before the first packet placed after it (SRC time 1.6 s), and the
    # burst at 1.5 s, placed 200 ms late, was in them.
    assert onsets(out[:, 1]) == [k * 8000 + 4000 for k in range(SECONDS)]
    assert onsets(out[:, 0]) == [5600] + [k * 8000 + 4000 for k in range(2, SECONDS)]
    assert [s.alignment_seconds for s in recorder.result().streams] == [pytest.approx(-0.2), 0.0]


def test_paths_further_apart_than_the_window_allows_move_the_reference_later() -> None:
    # 500 ms apart: the callee may move at most 200 ms earlier (0.3 s window less 0.1 s), so the caller
    # moves 300 ms later; after the callee's first SR (at 2.25 s) both bursts land 2400 samples late.
    out, recorder = record({CALLER: leg(CALLER, 0.0, seed=5), CALLEE: leg(CALLEE, 0.5, seed=6)})
    assert onsets(out[:, 0]) == [4000, 12000] + [k * 8000 + 6400 for k in range(2, SECONDS)]
    assert onsets(out[:, 1]) == [8000, 16000] + [k * 8000 + 6400 for k in range(2, SECONDS)]
    caller, callee = recorder.result().streams
    assert (caller.alignment_seconds, callee.alignment_seconds) == (pytest.approx(0.3), pytest.approx(-0.2))
    assert [(s.late, s.lost) for s in (caller, callee)] == [(0, 0), (0, 0)]


def test_a_wider_reorder_window_moves_the_delayed_leg_all_the_way() -> None:
    out, _ = record({CALLER: leg(CALLER, 0.0, seed=7), CALLEE: leg(CALLEE, 0.5, seed=8)}, reorder_window=0.7)
    assert onsets(out[:, 0]) == [k * 8000 + 4000 for k in range(SECONDS)]
    # Moved 500 ms earlier after the callee's first SR (at 2.25 s): the burst at 1.5 s is overwritten.
    assert onsets(out[:, 1]) == [8000] + [k * 8000 + 4000 for k in range(2, SECONDS)]


def test_a_lying_sender_report_is_counted_and_ignored() -> None:
    # The callee's second SR claims an NTP time an hour off: it cannot be on the caller's clock.
    legs = {CALLER: leg(CALLER, 0.0, seed=9), CALLEE: leg(CALLEE, 0.2, seed=10, lie={1: 3600.0})}
    out, recorder = record(legs)
    assert onsets(out[:, 1]) == [5600, 13600] + [k * 8000 + 4000 for k in range(2, SECONDS)]
    caller, callee = recorder.result().streams
    assert (callee.rtcp_sr_rejected, callee.alignments, caller.rtcp_sr_rejected) == (1, 1, 0)


def test_a_first_report_from_1970_waits_for_the_next_one() -> None:
    legs = {CALLER: leg(CALLER, 0.0, seed=11), CALLEE: leg(CALLEE, 0.2, seed=12, lie={0: -SRC_CLOCK})}
    out, recorder = record(legs)
    # Aligned after the callee's second SR (SRC 6.75 s, arriving 6.95 s): the bursts from 7.5 s on.
    assert onsets(out[:, 1]) == [k * 8000 + 5600 for k in range(7)] + [
        k * 8000 + 4000 for k in range(7, SECONDS)
    ]
    assert recorder.result().streams[1].rtcp_sr_rejected == 1


def test_a_report_whose_rtp_timestamp_contradicts_its_stream_is_rejected() -> None:
    legs = {CALLER: leg(CALLER, 0.0, seed=13), CALLEE: leg(CALLEE, 0.2, seed=14)}
    first_sr = next(k for k, (_, d) in enumerate(legs[CALLEE]) if d[1] == 200)
    arrival, data = legs[CALLEE][first_sr]
    (rtp_ts,) = struct.unpack_from("!I", data, 16)
    legs[CALLEE][first_sr] = (arrival, data[:16] + struct.pack("!I", rtp_ts + 5 * 8000) + data[20:])
    out, recorder = record(legs)
    assert onsets(out[:, 1])[2:7] == [k * 8000 + 5600 for k in range(2, 7)]
    assert onsets(out[:, 1])[7:] == [k * 8000 + 4000 for k in range(7, SECONDS)]
    assert recorder.result().streams[1].rtcp_sr_rejected == 1


def test_reports_without_a_wall_clock_are_ignored() -> None:
    # RFC 3550 §6.4.1: a sender without wall clock time sends NTP 0; nothing to align with, nothing wrong.
    legs = {CALLER: leg(CALLER, 0.0, seed=15), CALLEE: leg(CALLEE, 0.2, seed=16)}
    for index, packets in legs.items():
        legs[index] = [(a, d[:8] + bytes(8) + d[16:] if d[1] == 200 else d) for a, d in packets]
    out, recorder = record(legs)
    assert onsets(out[:, 1]) == [k * 8000 + 5600 for k in range(SECONDS)]
    assert [(s.rtcp_sender_reports, s.rtcp_sr_rejected, s.alignments) for s in recorder.result().streams] == [
        (3, 0, 0),
        (3, 0, 0),
    ]


def test_alignment_arithmetic_for_three_streams() -> None:
    ntp = 3_900_000_000 << 32
    points = {
        0: SyncPoint(ntp=ntp, position=8000),
        1: SyncPoint(ntp=ntp + (1 << 31), position=12_000 + 800),  # 0.5 s later at the SRC, 800 samples late
        2: SyncPoint(ntp=ntp, position=8010),  # 10 samples late: within the tolerance
    }
    assert lag(points[1], points[0], 8000) == 800.0
    assert alignment(points, {}, 8000, max_advance=1600) == {1: -800}
    # Stream 1 may move only 400 earlier: the others move 400 later (stream 2 by 390, its lag taken off).
    assert alignment(points, {}, 8000, max_advance=400) == {0: 400, 1: -400, 2: 390}
    # Already moved 300 earlier, stream 1 may move 100 more.
    assert alignment(points, {1: -300}, 8000, max_advance=400) == {0: 700, 1: -100, 2: 690}
    assert alignment({0: points[0]}, {}, 8000, max_advance=1600) == {}
    liar = SyncPoint(ntp=ntp + (3600 << 32), position=8000)
    assert not consistent(liar, points.values(), 8000)
    assert consistent(points[1], points.values(), 8000)
    assert consistent(liar, [], 8000)  # nothing to contradict


@pytest.mark.parametrize("delayed", [CALLER, CALLEE])
def test_waiting_for_the_first_reports_aligns_both_legs_whole(delayed: int) -> None:
    """With sync_wait, output starts once both legs reported: the delayed leg moves whole, nothing is lost."""
    legs = {i: leg(i, 0.2 if i == delayed else 0.0, seed=10 + i) for i in (CALLER, CALLEE)}
    out, recorder = record(legs, sync_wait=4.0)
    # Both legs' bursts start together from the very first; the recording starts at the earlier leg.
    for index in (CALLER, CALLEE):
        assert onsets(out[:, index]) == [k * 8000 + 4000 for k in range(SECONDS)]
        assert np.array_equal(out[: SECONDS * 8000, index], g711(bursts(FREQUENCY[index])))
    streams = recorder.result().streams
    assert [(s.late, s.lost) for s in streams] == [(0, 0), (0, 0)]
    assert [s.alignment_seconds for s in streams] == [
        pytest.approx(-0.2 if i == delayed else 0.0) for i in (CALLER, CALLEE)
    ]


def test_without_reports_the_wait_ends_and_recording_goes_on_unaligned() -> None:
    legs = {i: [p for p in leg(i, 0.2 * i, seed=i) if p[1][1] != 200] for i in (CALLER, CALLEE)}
    out, recorder = record(legs, sync_wait=2.0)
    assert onsets(out[:, 0]) == [k * 8000 + 4000 for k in range(SECONDS)]
    assert onsets(out[:, 1]) == [k * 8000 + 5600 for k in range(SECONDS)]
    assert recorder.result().duration == pytest.approx(SECONDS + 0.2, abs=0.02)
