"""Mid-call changes on a fake clock: pauses (hold, API, one m-line inactive), streams joining and leaving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from media.recorder import CallRecorder, StreamSpec
from media.writer import FlacWriter
from tests.unit.media.helpers import (
    PTIME,
    SAMPLES,
    T0,
    Packets,
    g711,
    pcmu,
    pcmu_stream,
    rtp,
    simulate,
    telephone_event,
    tone,
)

CALLER, CALLEE = 0, 1


def spec(index: int, channel: int) -> StreamSpec:
    return StreamSpec(index=index, channel=channel, codec=pcmu(), payload_type=0, telephone_event_pt=101)


def stereo() -> CallRecorder:
    return CallRecorder(streams=[spec(CALLER, 0), spec(CALLEE, 1)], channels=2)


def leg(
    seconds: float,
    freq: float,
    *,
    ssrc: int,
    start: float,
    hold: tuple[float, float] | None = None,
    keep_ts=True,
) -> tuple[np.ndarray, Packets]:
    """A 20 ms PCMU leg from ``start``; with ``hold`` the SRC sends nothing in that wall-time span, and with
    ``keep_ts=False`` its timestamps carry on after the hold as if it never happened (as some SRCs do)."""
    audio = tone(freq, round(seconds / PTIME) * SAMPLES, amplitude=7000)
    packets = pcmu_stream(audio, ssrc=ssrc, seq0=4000, ts0=160_000, start=start)
    if hold is None:
        return audio, packets
    kept: Packets = []
    skipped = 0
    for i, (arrival, data) in enumerate(packets):
        if hold[0] <= arrival < hold[1]:
            skipped += 1
            continue
        ts = 160_000 + (i - (0 if keep_ts else skipped)) * SAMPLES
        kept.append((arrival, rtp(4000 + i - skipped, ts, ssrc, data[12:])))
    return audio, kept


@pytest.mark.parametrize(
    "how", ["api pause, media keeps coming", "hold, timestamps advance", "hold, timestamps go on"]
)
def test_two_minute_call_with_a_30_s_pause_keeps_its_length_and_silence(tmp_path: Path, how: str) -> None:
    pause, resume = T0 + 2250 * PTIME, T0 + 3750 * PTIME  # 45 s and 75 s into the call
    hold = None if how.startswith("api") else (pause, resume)
    caller_audio, caller = leg(120, 440, ssrc=0xCA11, start=T0, hold=hold, keep_ts=how.endswith("advance"))
    callee_audio, callee = leg(
        119.5, 1000, ssrc=0xCA12, start=T0 + 0.5, hold=hold, keep_ts=how.endswith("advance")
    )
    recorder = stereo()
    path = tmp_path / "paused.flac"
    simulate(
        recorder,
        {CALLER: caller, CALLEE: callee},
        start=T0,
        end=T0 + 120,
        events=[
            (pause, lambda at: recorder.set_paused(True, at)),
            (resume, lambda at: recorder.set_paused(False, at)),
        ],
        writer=FlacWriter(path, 2, 8000),
    )
    data, rate = soundfile.read(path, dtype="int16")
    assert (rate, data.shape) == (8000, (960_000, 2))
    assert not data[360_000:600_000].any()  # exactly the 30 s of the pause, on both channels
    want_caller = g711(caller_audio)
    assert np.array_equal(data[:360_000, 0], want_caller[:360_000])
    assert np.array_equal(data[600_000:, 0], want_caller[600_000:])
    want_callee = g711(callee_audio)
    assert not data[:4000, 1].any()
    assert np.array_equal(data[4000:360_000, 1], want_callee[: 360_000 - 4000])
    assert np.array_equal(data[600_000:, 1], want_callee[600_000 - 4000 :])
    result = recorder.result()
    assert (result.duration, result.media_start, result.pauses) == (120.0, T0, [(45.0, 75.0)])
    suppressed = 1500 if hold is None else 0
    assert [(s.suppressed, s.lost, s.late) for s in result.streams] == [(suppressed, 0, 0)] * 2
    assert [s.timestamp_jumps for s in result.streams] == [1 if how.endswith("go on") else 0] * 2


def test_hold_until_hang_up_is_recorded_to_the_end() -> None:
    audio, caller = leg(120, 440, ssrc=1, start=T0, hold=(T0 + 90, T0 + 200))
    recorder = CallRecorder(streams=[spec(CALLER, 0)], channels=1)
    out = simulate(
        recorder,
        {CALLER: caller},
        start=T0,
        end=T0 + 120,
        events=[(T0 + 90, lambda at: recorder.set_paused(True, at))],
    )
    assert out.shape == (960_000, 1)
    assert np.array_equal(out[:720_000, 0], g711(audio)[:720_000])
    assert not out[720_000:].any()
    assert recorder.result().pauses == [(90.0, 120.0)]
    assert recorder.paused


def test_pause_drops_telephone_events_too() -> None:
    # DTMF replaces audio packets 100-102 (2.0-2.06 s), in the same SSRC, sequence and clock (RFC 4733).
    _, caller = leg(4, 440, ssrc=7, start=T0)
    for k in range(3):
        arrival = caller[100 + k][0]
        event = telephone_event(1, end=k == 2, duration=(k + 1) * SAMPLES)
        caller[100 + k] = (arrival, rtp(4100 + k, 160_000 + 100 * SAMPLES, 7, event, pt=101, marker=k == 0))
    recorder = CallRecorder(streams=[spec(CALLER, 0)], channels=1)
    pause = [
        (T0 + 1.5, lambda at: recorder.set_paused(True, at)),
        (T0 + 3, lambda at: recorder.set_paused(False, at)),
    ]
    simulate(recorder, {CALLER: caller}, start=T0, end=T0 + 4, events=pause)
    stats = recorder.result().streams[0]
    assert (stats.telephone_events, stats.suppressed, stats.packets) == (0, 75, 200)


def test_one_inactive_m_line_silences_only_its_stream() -> None:
    caller_audio, caller = leg(40, 440, ssrc=1, start=T0)
    callee_audio, callee = leg(40, 1000, ssrc=2, start=T0)
    recorder = stereo()
    out = simulate(
        recorder,
        {CALLER: caller, CALLEE: callee},
        start=T0,
        end=T0 + 40,
        events=[
            (T0 + 10, lambda at: recorder.set_stream_paused(CALLER, True, at)),
            (T0 + 20, lambda at: recorder.set_stream_paused(CALLEE, True, at)),
            (T0 + 30, lambda at: recorder.set_stream_paused(CALLER, False, at)),
            (T0 + 35, lambda at: recorder.set_stream_paused(CALLEE, False, at)),
        ],
    )
    assert out.shape == (320_000, 2)
    want = g711(caller_audio)
    want[80_000:240_000] = 0
    assert np.array_equal(out[:, 0], want)
    want = g711(callee_audio)
    want[160_000:280_000] = 0
    assert np.array_equal(out[:, 1], want)
    assert recorder.result().pauses == [(20.0, 30.0)]  # only while both m-lines were inactive
    with pytest.raises(ValueError, match="no stream 5"):
        recorder.set_stream_paused(5, True, T0 + 41)


def test_streams_join_and_leave_mid_call_in_the_same_recording() -> None:
    caller_audio, caller = leg(8, 440, ssrc=1, start=T0)
    callee_audio, callee = leg(6, 1000, ssrc=2, start=T0)  # leaves at 6 s (port 0 in a re-offer)
    third_audio, third = leg(3, 700, ssrc=3, start=T0 + 4.5)  # joins by re-INVITE at 4 s, speaks at 4.5 s
    late_joiner_audio, late_joiner = leg(1, 300, ssrc=4, start=T0 + 6.5)  # shares the callee's channel
    recorder = CallRecorder(streams=[spec(CALLER, 0), spec(CALLEE, 1)], channels=3)
    out = simulate(
        recorder,
        {CALLER: caller, CALLEE: callee, 2: third, 3: late_joiner},
        start=T0,
        end=T0 + 8,
        events=[
            (T0 + 4, lambda at: recorder.add_stream(spec(2, 2), at)),
            (T0 + 6.05, lambda at: recorder.remove_stream(CALLEE, at)),
            (T0 + 6.2, lambda at: recorder.add_stream(spec(3, 1), at)),
        ],
    )
    assert out.shape == (64_000, 3)
    assert np.array_equal(out[:, 0], g711(caller_audio))
    assert np.array_equal(out[:48_000, 1], g711(callee_audio))  # all of it, the tail after the removal too
    assert not out[48_000:52_000, 1].any()
    assert np.array_equal(out[52_000:60_000, 1], g711(late_joiner_audio))
    assert not out[:36_000, 2].any() and not out[60_000:, 2].any()
    assert np.array_equal(out[36_000:60_000, 2], g711(third_audio))
    assert [s.packets for s in recorder.result().streams] == [400, 300, 150, 50]


def test_a_stream_joining_a_paused_recording_is_paused() -> None:
    _, third = leg(2, 700, ssrc=3, start=T0 + 1)
    recorder = CallRecorder(streams=[spec(CALLER, 0)], channels=1)
    recorder.set_paused(True, T0)
    recorder.add_stream(spec(1, 0), T0 + 0.5)
    recorder.add(1, third)
    assert recorder.mix_final() is None
    assert recorder.result().streams[1].suppressed == 100


def test_added_streams_are_checked() -> None:
    recorder = stereo()
    with pytest.raises(ValueError, match="twice"):
        recorder.add_stream(spec(CALLEE, 0), T0)
    with pytest.raises(ValueError, match="channel 2"):
        recorder.add_stream(spec(2, 2), T0)
    with pytest.raises(ValueError, match="no stream 9"):
        recorder.remove_stream(9, T0)
    recorder.remove_stream(CALLEE, T0)
    recorder.remove_stream(CALLEE, T0 + 1)  # a second removal changes nothing
    assert len(recorder.result().streams) == 2
