from __future__ import annotations

import random
import struct

import numpy as np
import numpy.typing as npt
import pytest

from media.codecs import Codec
from media.g711 import decode_ulaw, encode_ulaw
from media.recorder import CallRecorder, StreamSpec
from tests.unit.media.helpers import SAMPLES, T0, dominant_frequency, pcmu, pcmu_stream, tone

Packets = list[tuple[float, bytes]]
CALLER, CALLEE = 0, 1


def stereo(reorder_window: float = 0.3) -> CallRecorder:
    streams = [
        StreamSpec(index=CALLER, channel=0, codec=pcmu(), payload_type=0, telephone_event_pt=101),
        StreamSpec(index=CALLEE, channel=1, codec=pcmu(), payload_type=0, telephone_event_pt=101),
    ]
    return CallRecorder(streams=streams, channels=2, reorder_window=reorder_window)


def jittered(packets: Packets, seed: int, spread: float = 0.012) -> Packets:
    """Network jitter after the first packet, delivered in arrival order (so some packets overtake others)."""
    rng = random.Random(seed)
    moved = [packets[0]] + [(a + rng.uniform(0, spread), d) for a, d in packets[1:]]
    return sorted(moved, key=lambda p: p[0])


def run_call(recorder: CallRecorder, legs: dict[int, Packets], tick: float = 0.2) -> npt.NDArray[np.int16]:
    """Feed the legs as a session would (drained every tick, mixed after each), then finish."""
    out = []
    end = max(p[0] for packets in legs.values() for p in packets)
    now = T0 + tick
    while now < end + tick:
        for index, packets in legs.items():
            recorder.add(index, [p for p in packets if now - tick <= p[0] < now])
        frames = recorder.mix(now)
        if frames is not None:
            out.append(frames)
        now += tick
    frames = recorder.mix_final()
    if frames is not None:
        out.append(frames)
    return np.concatenate(out)


def g711(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    return decode_ulaw(encode_ulaw(samples))


def test_two_legs_with_different_start_times_stay_aligned() -> None:
    caller_audio = tone(440, 150 * SAMPLES)  # 3 s from T0
    callee_audio = tone(1000, 100 * SAMPLES)  # 2 s from T0 + 0.5 (the callee answers later)
    legs = {
        CALLER: jittered(pcmu_stream(caller_audio, ssrc=0x1111, seq0=100, ts0=5000, start=T0), seed=1),
        CALLEE: jittered(pcmu_stream(callee_audio, ssrc=0x2222, seq0=7, ts0=99, start=T0 + 0.5), seed=2),
    }
    recorder = stereo()
    out = run_call(recorder, legs)

    assert out.shape == (24000, 2)  # the media span: caller's first packet → caller's last packet end
    assert dominant_frequency(out[:, 0]) == pytest.approx(440, abs=2)
    assert dominant_frequency(out[4000:20000, 1]) == pytest.approx(1000, abs=2)
    assert np.array_equal(out[:, 0], g711(caller_audio))
    assert not out[:4000, 1].any()
    assert np.array_equal(out[4000:20000, 1], g711(callee_audio))
    assert not out[20000:, 1].any()

    result = recorder.result()
    assert result.media_start == T0
    assert result.frames == 24000
    assert result.duration == 3.0
    assert [s.packets for s in result.streams] == [150, 100]
    assert [(s.lost, s.late, s.duplicated) for s in result.streams] == [(0, 0, 0), (0, 0, 0)]


def test_media_start_is_the_earliest_leg_even_if_it_is_added_second() -> None:
    caller = pcmu_stream(tone(440, 50 * SAMPLES), ssrc=1, seq0=1, ts0=1, start=T0 + 0.13)
    callee = pcmu_stream(tone(1000, 50 * SAMPLES), ssrc=2, seq0=1, ts0=1, start=T0)
    recorder = stereo()
    recorder.add(CALLER, caller)  # its first packet becomes the recorder's origin …
    recorder.add(CALLEE, callee)  # … but this leg started 130 ms earlier
    frames = recorder.mix_final()
    assert frames is not None
    assert recorder.media_start == pytest.approx(T0)
    assert len(frames) == round((0.13 + 1.0) * 8000)
    assert np.flatnonzero(frames[:, 0])[0] == 1040
    assert np.flatnonzero(frames[:, 1])[0] == 0


def test_recording_length_equals_media_span_with_loss_at_both_ends() -> None:
    audio = tone(700, 200 * SAMPLES)
    caller = pcmu_stream(audio, ssrc=1, seq0=1, ts0=1, start=T0)
    callee = pcmu_stream(audio[: 190 * SAMPLES], ssrc=2, seq0=1, ts0=1, start=T0 + 0.25)  # ends last
    recorder = stereo()
    out = run_call(recorder, {CALLER: caller[1:-1], CALLEE: callee})  # first and last caller packet lost
    span = (callee[-1][0] + 0.02) - caller[1][0]
    assert abs(len(out) - span * 8000) <= SAMPLES
    assert recorder.result().media_start == pytest.approx(caller[1][0])


def test_reordered_delivery_gives_the_same_recording() -> None:
    audio = tone(440, 100 * SAMPLES)
    base = pcmu_stream(audio, ssrc=1, seq0=1, ts0=1, start=T0)
    swapped = list(base)
    for i in range(5, 95, 9):
        swapped[i], swapped[i + 1] = (swapped[i][0], swapped[i + 1][1]), (swapped[i + 1][0], swapped[i][1])
    first = run_call(stereo(), {CALLER: base})
    second = run_call(stereo(), {CALLER: swapped})
    assert np.array_equal(first, second)


def test_packet_later_than_the_reorder_window_is_dropped_as_late() -> None:
    audio = tone(440, 100 * SAMPLES)
    packets = pcmu_stream(audio, ssrc=1, seq0=1, ts0=1, start=T0)
    delayed = packets[40]
    packets = packets[:40] + packets[41:]
    packets.append((delayed[0] + 0.6, delayed[1]))  # 600 ms late, the window is 300 ms
    packets.sort(key=lambda p: p[0])
    recorder = stereo()
    out = run_call(recorder, {CALLER: packets})
    assert not out[40 * SAMPLES : 41 * SAMPLES, 0].any()
    assert recorder.result().streams[0].late == 1
    assert len(out) == 100 * SAMPLES


def test_pause_keeps_the_timeline_as_silence() -> None:
    audio = tone(440, 150 * SAMPLES)
    recorder = stereo()
    packets = pcmu_stream(audio, ssrc=1, seq0=1, ts0=1, start=T0)
    recorder.add(CALLER, packets[:50])
    recorder.set_paused(True, T0 + 1.0)
    recorder.add(CALLER, packets[50:100])
    recorder.set_paused(False, T0 + 2.0)
    recorder.add(CALLER, packets[100:])
    out = recorder.mix_final()
    assert out is not None
    assert len(out) == 24000
    assert not out[8000:16000].any()
    assert np.array_equal(out[16000:, 0], g711(audio[16000:]))
    assert recorder.result().streams[0].suppressed == 50


def test_legs_sharing_a_channel_are_summed_with_saturation() -> None:
    loud = np.full(50 * SAMPLES, 30000, dtype=np.int16)
    streams = [
        StreamSpec(index=10, channel=0, codec=pcmu(), payload_type=0),
        StreamSpec(index=20, channel=0, codec=pcmu(), payload_type=0),
    ]
    recorder = CallRecorder(streams=streams, channels=1)
    recorder.add(10, pcmu_stream(loud, ssrc=1, seq0=1, ts0=1, start=T0))
    recorder.add(20, pcmu_stream(-loud, ssrc=2, seq0=1, ts0=1, start=T0 + 0.5))
    recorder.add(20, pcmu_stream(loud, ssrc=2, seq0=51, ts0=1 + 8000, start=T0 + 1.5))
    out = recorder.mix_final()
    assert out is not None
    assert out.shape == (20000, 1)
    level = int(g711(loud)[0])
    assert set(np.unique(out[:4000, 0])) == {level}
    assert not out[4000:8000].any()  # +level and -level cancel
    assert set(np.unique(out[8000:12000, 0])) == {-level}
    assert set(np.unique(out[12000:, 0])) == {level}
    overlap = CallRecorder(streams=streams, channels=1)
    overlap.add(10, pcmu_stream(loud, ssrc=1, seq0=1, ts0=1, start=T0))
    overlap.add(20, pcmu_stream(loud, ssrc=2, seq0=1, ts0=1, start=T0))
    both = overlap.mix_final()
    assert both is not None
    assert set(np.unique(both)) == {32767}  # saturated, not wrapped around


def test_one_way_media_leaves_the_silent_channel_empty() -> None:
    recorder = stereo()
    out = run_call(recorder, {CALLER: pcmu_stream(tone(440, 50 * SAMPLES), ssrc=1, seq0=1, ts0=1, start=T0)})
    assert out.shape == (8000, 2)
    assert not out[:, 1].any()
    result = recorder.result()
    assert result.streams[1].packets == 0
    assert result.streams[1].first_packet_at is None


def test_no_media_produces_nothing() -> None:
    recorder = stereo()
    recorder.add(CALLER, [])
    assert recorder.mix(T0 + 10) is None
    assert recorder.mix_final() is None
    result = recorder.result()
    assert (result.media_start, result.frames, result.duration) == (None, 0, 0.0)
    assert len(result.streams) == 2


def test_garbage_only_produces_nothing_but_is_counted() -> None:
    recorder = stereo()
    recorder.add(CALLEE, [(T0, b"\x16\x03\x01\x00"), (T0 + 0.1, bytes(40))])
    assert recorder.mix(T0 + 5) is None
    assert recorder.mix_final() is None
    assert recorder.result().streams[1].invalid == 2


def test_mix_emits_only_frames_older_than_the_reorder_window() -> None:
    recorder = stereo(reorder_window=0.3)
    recorder.add(CALLER, pcmu_stream(tone(440, 50 * SAMPLES), ssrc=1, seq0=1, ts0=1, start=T0))
    assert recorder.mix(T0 + 0.3) is None
    frames = recorder.mix(T0 + 0.5)
    assert frames is not None
    assert len(frames) == 1600
    assert recorder.mix(T0 + 0.5) is None
    rest = recorder.mix_final()
    assert rest is not None
    assert len(rest) == 8000 - 1600


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (StreamSpec(index=1, channel=2, codec=pcmu(), payload_type=0), "channel"),
        (StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0), "twice"),
        (
            StreamSpec(
                index=5,
                channel=0,
                payload_type=9,
                codec=Codec(name="G722", clock_rate=8000, sample_rate=16000, decode=decode_ulaw),
            ),
            "16000 Hz",
        ),
    ],
)
def test_invalid_stream_specs_are_rejected(spec: StreamSpec, message: str) -> None:
    first = StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0)
    with pytest.raises(ValueError, match=message):
        CallRecorder(streams=[first, spec], channels=2)


def test_quality_signals_reach_the_result() -> None:
    # The caller's path loses 3 packets and jitters by up to 40 ms; its SRC reports on the callee's leg
    # in an RR block. The callee's path is clean and steady.
    caller_packets = pcmu_stream(tone(440, 150 * SAMPLES), ssrc=0x11, seq0=9, ts0=0, start=T0)
    rng = random.Random(8)
    caller_packets = [caller_packets[0]] + [(a + rng.uniform(0, 0.04), d) for a, d in caller_packets[1:]]
    lossy = sorted(p for i, p in enumerate(caller_packets) if i not in (40, 41, 90))
    block = struct.pack("!IB", 0x22, 0x20) + (5).to_bytes(3) + struct.pack("!IIII", 700, 80, 0, 0)
    rr = struct.pack("!BBHI", 0x81, 201, 7, 0x11) + block
    legs = {
        CALLER: [*lossy, (T0 + 2.0, rr)],
        CALLEE: pcmu_stream(tone(1000, 100 * SAMPLES), ssrc=0x22, seq0=1, ts0=1, start=T0 + 0.5),
    }
    recorder = stereo()
    run_call(recorder, legs)
    caller, callee = recorder.result().streams
    assert (caller.packets, caller.lost, caller.expected, caller.late) == (147, 3, 150, 0)
    assert caller.loss_fraction == pytest.approx(0.02)
    assert caller.gap_seconds == pytest.approx(0.06)
    assert caller.reordered > 0
    assert 5 < caller.jitter_ms < 20
    assert (caller.rtcp_receiver_reports, caller.reported_fraction_lost, caller.reported_lost) == (
        1,
        0.125,
        5,
    )
    assert caller.reported_jitter_ms == 10.0
    assert (callee.loss_fraction, callee.gap_seconds, callee.reordered) == (0.0, 0.0, 0)
    assert callee.jitter_ms == pytest.approx(0.0, abs=1e-3)
    assert (callee.first_packet_at, callee.last_packet_at) == (T0 + 0.5, T0 + 0.5 + 99 * 0.02)
