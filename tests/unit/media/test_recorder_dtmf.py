"""Through the recorder: RFC 4733 key presses (timed, kept out of the audio) and a late hang-up."""

from __future__ import annotations

import numpy as np
import pytest

from media.recorder import CallRecorder, StreamSpec
from tests.unit.media.helpers import (
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

SSRC = 0x44D7_0001
TS0 = 90_000
SEQ0 = 1_000
TE = 101


def with_presses(audio_packets: Packets, presses: list[tuple[float, int, float]]) -> Packets:
    """Interleave pjsua/Asterisk-style events: marker start, updates every 50 ms, three end packets; ``(at
    seconds into the stream, event, seconds held)``. Sequence numbers continue the audio's after it."""
    out = list(audio_packets)
    seq = SEQ0 + len(audio_packets)
    for at, event, held in presses:
        ts = TS0 + round(at * 8000)
        steps = max(1, round(held / 0.05))
        for step in range(steps):
            duration = round((step + 1) * 0.05 * 8000)
            data = rtp(
                seq, ts, SSRC, telephone_event(event, end=False, duration=duration), pt=TE, marker=step == 0
            )
            out.append((T0 + at + step * 0.05, data))
            seq += 1
        for repeat in range(3):
            data = rtp(seq, ts, SSRC, telephone_event(event, end=True, duration=round(held * 8000)), pt=TE)
            out.append((T0 + at + held + repeat * 0.02, data))
            seq += 1
    return sorted(out, key=lambda p: p[0])


def test_presses_are_timed_on_the_recording_and_never_in_the_audio() -> None:
    audio = tone(440, 4 * 8000)
    packets = pcmu_stream(audio, ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0)
    spec = StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0, telephone_event_pt=TE)
    recorder = CallRecorder(streams=[spec], channels=1, reorder_window=0.3)
    out = simulate(
        recorder, {0: with_presses(packets, [(1.0, 5, 0.1), (2.5, 11, 0.16)])}, start=T0, end=T0 + 4.5
    )
    result = recorder.result()
    assert [(p.stream, p.at, p.duration, p.digit) for p in result.dtmf] == [
        (0, 1.0, 0.1, "5"),
        (0, 2.5, 0.16, "#"),
    ]
    assert np.array_equal(out[:, 0], g711(audio))  # the events changed no sample
    assert result.streams[0].telephone_events == 2 * 2 + 2 * 3 + 1


def test_a_press_whose_end_packets_were_lost_is_closed_at_the_end() -> None:
    audio = tone(440, 2 * 8000)
    packets = pcmu_stream(audio, ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0)
    held = [
        p for p in with_presses(packets, [(1.2, 1, 0.15)]) if not (p[1][1] & 0x7F == TE and p[1][13] & 0x80)
    ]
    spec = StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0, telephone_event_pt=TE)
    recorder = CallRecorder(streams=[spec], channels=1, reorder_window=0.3)
    simulate(recorder, {0: held}, start=T0, end=T0 + 2.5)
    presses = recorder.result().dtmf
    assert [(p.at, p.digit) for p in presses] == [(1.2, "1")]
    assert 0.1 <= presses[0].duration <= 0.15


def test_a_hang_up_handled_late_does_not_stretch_the_recording() -> None:
    """Under load a BYE may be handled seconds after the media ended: the ticks until then add nothing."""
    audio = tone(440, 5 * 8000)
    packets = pcmu_stream(audio, ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0)
    spec = StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0)
    recorder = CallRecorder(streams=[spec], channels=1, reorder_window=0.3)
    out = simulate(recorder, {0: packets}, start=T0, end=T0 + 19.0)  # the hang-up came 14 s late
    assert len(out) == 5 * 8000
    assert recorder.result().duration == 5.0
    assert np.array_equal(out[:, 0], g711(audio))


def test_audio_replaced_by_events_while_a_key_is_held_is_not_a_gap() -> None:
    """pjsua and many phones send only events while a key is held: the silence the timeline fills under the
    press is not loss, so it adds nothing to gap_seconds; a packet really lost elsewhere still does."""
    audio = tone(440, 4 * 8000)
    packets = pcmu_stream(audio, ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0)
    presses = [(1.0, 5, 0.2), (2.5, 11, 0.16)]

    def replaced(at: float, data: bytes) -> bool:  # audio sent while a key is held, or the one packet lost
        offset = round(at - T0, 3)
        held = any(start <= offset < start + length for start, _, length in presses)
        return data[1] & 0x7F == 0 and (held or offset == 3.5)

    sent = [(at, data) for at, data in with_presses(packets, presses) if not replaced(at, data)]
    spec = StreamSpec(index=0, channel=0, codec=pcmu(), payload_type=0, telephone_event_pt=TE)
    recorder = CallRecorder(streams=[spec], channels=1, reorder_window=0.3)
    simulate(recorder, {0: sent}, start=T0, end=T0 + 4.5)
    result = recorder.result()
    assert [p.digit for p in result.dtmf] == ["5", "#"]
    assert result.streams[0].gap_seconds == pytest.approx(0.02)  # the lost packet only
