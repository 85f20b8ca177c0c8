"""Key presses reported while the call runs: RFC 4733 from the key-down packet, in-band tones once they end.

The in-band presses are made the way a phone makes them: the two ITU-T Q.23 frequencies of the key at -7 dBm0
each, 80 ms on and 80 ms off between keys, over quiet line noise, sent as 20 ms PCMU packets. The RFC 4733
presses follow RFC 4733 §2.5.1: a marker start packet, updates every 50 ms, three end packets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from media.dtmf import DtmfSource
from media.goertzel import WindowAnalyser
from media.presses import DtmfPress
from media.recorder import CallRecorder, StreamSpec
from tests.unit.media.helpers import (
    SAMPLE_RATE,
    T0,
    Packets,
    g711,
    pcmu,
    pcmu_stream,
    rtp,
    simulate,
    telephone_event,
)

SSRC = 0x5EED_0001
TS0 = 90_000
SEQ0 = 1_000
TE = 101
TICK = 0.2  # simulate(): add every 200 ms, mix every second
KEYS = {"1": (697.0, 1209.0), "2": (697.0, 1336.0), "5": (770.0, 1336.0), "9": (852.0, 1477.0)}
EVENT = {"1": 1, "2": 2, "5": 5, "9": 9}


def line(seconds: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Quiet line noise, about -60 dBm0: what a held line sounds like between words."""
    return rng.normal(0.0, 25.0, round(seconds * SAMPLE_RATE))


def keyed(
    audio: npt.NDArray[np.float64], keys: str, at: float, rng: np.random.Generator, *, on: float = 0.08
) -> list[float]:
    """Add key tones to ``audio`` from ``at`` seconds, ``on`` s each, 80 ms apart; where each starts."""
    amplitude = 32768.0 * 10 ** ((-7.0 - 3.17) / 20)  # -7 dBm0 per tone (G.711 full scale: +3.17 dBm0)
    starts = []
    for k, key in enumerate(keys):
        start = at + k * (on + 0.08)
        first, count = round(start * SAMPLE_RATE), round(on * SAMPLE_RATE)
        t = np.arange(count) / SAMPLE_RATE
        phases = rng.uniform(0, 2 * np.pi, 2)
        for frequency, phase in zip(KEYS[key], phases, strict=True):
            audio[first : first + count] += amplitude * np.sin(2 * np.pi * frequency * t + phase)
        starts.append(start)
    return starts


def pcm(audio: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    return np.clip(np.round(audio), -32768, 32767).astype(np.int16)


def with_events(packets: Packets, presses: list[tuple[float, str, float]], *, ssrc: int = SSRC) -> Packets:
    """RFC 4733 events for ``(at seconds, key, seconds held)``, interleaved with the audio by arrival."""
    out = list(packets)
    seq = SEQ0 + len(packets)
    for at, key, held in presses:
        ts = TS0 + round(at * SAMPLE_RATE)
        steps = max(1, round(held / 0.05))
        for step in range(steps):
            payload = telephone_event(EVENT[key], end=False, duration=round((step + 1) * 0.05 * SAMPLE_RATE))
            out.append((T0 + at + step * 0.05, rtp(seq, ts, ssrc, payload, pt=TE, marker=step == 0)))
            seq += 1
        for repeat in range(3):
            payload = telephone_event(EVENT[key], end=True, duration=round(held * SAMPLE_RATE))
            out.append((T0 + at + held + repeat * 0.02, rtp(seq, ts, ssrc, payload, pt=TE)))
            seq += 1
    return sorted(out, key=lambda packet: packet[0])


def spec(index: int, channel: int = 0, *, te: bool) -> StreamSpec:
    return StreamSpec(
        index=index, channel=channel, codec=pcmu(), payload_type=0, telephone_event_pt=TE if te else None
    )


Taken = list[tuple[float, DtmfPress]]


def taking(
    recorder: CallRecorder, seconds: float, taken: Taken
) -> list[tuple[float, Callable[[float], None]]]:
    """Events for simulate(): take presses at every tick, as the server's periodic check does."""

    def take(now: float) -> None:
        taken.extend((now - T0, press) for press in recorder.take_presses())

    return [(T0 + k * TICK + 0.001, take) for k in range(1, round(seconds / TICK) + 2)]


def test_an_rfc4733_press_is_reported_once_from_its_key_down_packet() -> None:
    rng = np.random.default_rng(1)
    audio = pcm(line(4.0, rng))
    packets = with_events(
        pcmu_stream(audio, ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0), [(1.3, "5", 0.5), (2.41, "9", 0.06)]
    )
    recorder = CallRecorder(streams=[spec(0, te=True)], channels=1)
    taken: Taken = []
    out = simulate(recorder, {0: packets}, start=T0, end=T0 + 4.0, events=taking(recorder, 4.0, taken))
    taken.extend((4.0, press) for press in recorder.take_presses())  # nothing is left for the end

    assert [(p.stream, p.at, p.digit, p.source) for _, p in taken] == [
        (0, 1.3, "5", DtmfSource.RFC4733),
        (0, 2.41, "9", DtmfSource.RFC4733),
    ]
    (five_seen, five), (nine_seen, nine) = taken
    # "5" is still held when it is reported: at the first take after the tick that placed its start packet.
    assert 1.3 < five_seen <= 1.3 + 2 * TICK and five.duration < 0.5
    assert 2.41 < nine_seen <= 2.41 + 2 * TICK and nine.duration == 0.06  # over within one tick
    assert [(p.at, p.duration, p.digit) for p in recorder.result().dtmf] == [
        (1.3, 0.5, "5"),
        (2.41, 0.06, "9"),
    ]
    assert np.array_equal(out[:, 0], g711(audio))  # the events are not audio


def test_in_band_presses_are_found_in_the_pcm_and_stay_in_the_audio() -> None:
    rng = np.random.default_rng(2)
    signal = line(5.0, rng)
    starts = keyed(signal, "2", 1.1, rng) + keyed(signal, "19", 2.45, rng)
    audio = pcm(signal)
    recorder = CallRecorder(streams=[spec(0, te=False)], channels=1)
    assert recorder.set_inband_dtmf(0, True)
    assert recorder.inband_dtmf == {0}
    taken: Taken = []
    packets = pcmu_stream(audio, ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0)
    out = simulate(recorder, {0: packets}, start=T0, end=T0 + 5.0, events=taking(recorder, 5.0, taken))

    assert [(p.digit, p.source) for _, p in taken] == [
        ("2", DtmfSource.INBAND),
        ("1", DtmfSource.INBAND),
        ("9", DtmfSource.INBAND),
    ]
    for (seen, press), start in zip(taken, starts, strict=True):
        assert press.at == pytest.approx(start, abs=0.006)
        assert press.duration == pytest.approx(0.08, abs=0.012)
        # Found in the mix that hands its tone out (every second here, 0.3 s behind), taken at the next tick.
        assert seen <= start + 0.08 + 0.3 + 1.0 + TICK
    assert [(p.digit, p.source) for p in recorder.result().dtmf] == [(p.digit, p.source) for _, p in taken]
    assert [p.at for p in recorder.result().dtmf] == [p.at for _, p in taken]
    assert np.array_equal(out[:, 0], g711(audio))  # in-band tones are what the party sent: they stay


def test_a_stream_with_telephone_event_is_never_analysed_in_band() -> None:
    """A gateway that sends both (RFC 4733 events and the tones in the audio): one press, reported once."""
    rng = np.random.default_rng(3)
    signal = line(4.0, rng)
    keyed(signal, "2", 1.4, rng, on=0.1)
    packets = with_events(
        pcmu_stream(pcm(signal), ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0), [(1.4, "2", 0.1)]
    )
    recorder = CallRecorder(streams=[spec(0, te=True)], channels=1)
    assert not recorder.set_inband_dtmf(0, True)
    assert recorder.inband_dtmf == frozenset()
    taken: Taken = []
    simulate(recorder, {0: packets}, start=T0, end=T0 + 4.0, events=taking(recorder, 4.0, taken))
    assert [(p.at, p.digit, p.source) for _, p in taken] == [(1.4, "2", DtmfSource.RFC4733)]
    assert [(p.at, p.digit, p.source) for p in recorder.result().dtmf] == [(1.4, "2", DtmfSource.RFC4733)]


def test_detection_is_off_until_switched_on_and_costs_nothing_while_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    analysed: list[int] = []
    push = WindowAnalyser.push

    def counting(self: WindowAnalyser, pcm: npt.NDArray[np.int16], *, force: bool = False) -> object:
        analysed.append(pcm.size)
        return push(self, pcm, force=force)

    monkeypatch.setattr(WindowAnalyser, "push", counting)
    rng = np.random.default_rng(4)
    signal = line(6.0, rng)
    starts = keyed(signal, "1", 0.8, rng) + keyed(signal, "2", 3.2, rng) + keyed(signal, "9", 5.0, rng)
    recorder = CallRecorder(streams=[spec(0, te=False)], channels=1)
    taken: Taken = []
    events = taking(recorder, 6.0, taken)
    events.append((T0 + 2.05, lambda _: recorder.set_inband_dtmf(0, True)))
    events.append((T0 + 4.25, lambda _: recorder.set_inband_dtmf(0, False)))
    counts: list[int] = []
    events.append((T0 + 4.3, lambda _: counts.append(len(analysed))))
    packets = pcmu_stream(pcm(signal), ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0)
    simulate(recorder, {0: packets}, start=T0, end=T0 + 6.0, events=events)

    # Off by default: the first second's press was never looked for; after the switch off, nothing runs.
    assert [(p.digit, round(p.at, 2)) for _, p in taken] == [("2", round(starts[1], 2))]
    assert analysed and len(analysed) == counts[0]
    assert recorder.inband_dtmf == frozenset()
    assert [p.digit for p in recorder.result().dtmf] == ["2"]


def test_nothing_is_analysed_on_a_call_that_never_switches_detection_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: WindowAnalyser, pcm: npt.NDArray[np.int16], *, force: bool = False) -> object:
        raise AssertionError("in-band analysis ran with detection off")

    monkeypatch.setattr(WindowAnalyser, "push", refuse)
    rng = np.random.default_rng(5)
    signal = line(3.0, rng)
    keyed(signal, "2", 1.0, rng)
    recorder = CallRecorder(streams=[spec(0, te=False)], channels=1)
    packets = pcmu_stream(pcm(signal), ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0)
    simulate(recorder, {0: packets}, start=T0, end=T0 + 3.0)
    assert recorder.take_presses() == [] and recorder.result().dtmf == []


def test_detection_listens_to_one_stream_of_a_shared_channel() -> None:
    """Two streams mixed into one channel (a conference leg): the asked party's keys are found in its own audio,
    the other party's keys on the same channel are not looked for."""
    rng = np.random.default_rng(6)
    asked, other = line(4.0, rng), line(4.0, rng)
    start = keyed(asked, "1", 2.2, rng)[0]
    keyed(other, "9", 1.2, rng)
    recorder = CallRecorder(streams=[spec(0, te=False), spec(1, te=False)], channels=1)
    assert recorder.set_inband_dtmf(1, True)
    legs = {
        0: pcmu_stream(pcm(other), ssrc=0xA, seq0=SEQ0, ts0=TS0, start=T0),
        1: pcmu_stream(pcm(asked), ssrc=0xB, seq0=SEQ0, ts0=TS0, start=T0 + 0.013),
    }
    simulate(recorder, legs, start=T0, end=T0 + 4.1)
    (press,) = recorder.take_presses()
    assert (press.stream, press.digit, press.source) == (1, "1", DtmfSource.INBAND)
    assert press.at == pytest.approx(start + 0.013, abs=0.006)


def test_a_tone_still_sounding_at_the_hang_up_is_reported_with_the_last_presses() -> None:
    rng = np.random.default_rng(7)
    signal = line(3.0, rng)
    start = keyed(signal, "2", 2.85, rng, on=0.15)[0]  # the call ends during the tone
    recorder = CallRecorder(streams=[spec(0, te=False)], channels=1)
    recorder.set_inband_dtmf(0, True)
    packets = pcmu_stream(pcm(signal), ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0)
    simulate(recorder, {0: packets}, start=T0, end=T0 + 3.0)
    (press,) = recorder.take_presses()
    assert press.digit == "2" and press.at == pytest.approx(start, abs=0.006)
    assert recorder.take_presses() == []
    assert [p.digit for p in recorder.result().dtmf] == ["2"]


def test_in_band_detection_on_a_narrowband_stream_of_a_wideband_recording() -> None:
    rng = np.random.default_rng(8)
    signal = line(3.0, rng)
    start = keyed(signal, "9", 1.5, rng)[0]
    wide = StreamSpec(index=0, channel=0, codec=pcmu().upsampled(), payload_type=0)
    recorder = CallRecorder(streams=[wide], channels=1, sample_rate=16000)
    recorder.set_inband_dtmf(0, True)
    packets = pcmu_stream(pcm(signal), ssrc=SSRC, seq0=SEQ0, ts0=TS0, start=T0)
    simulate(recorder, {0: packets}, start=T0, end=T0 + 3.0)
    (press,) = recorder.take_presses()
    assert press.digit == "9" and press.at == pytest.approx(start, abs=0.008)


def test_switching_an_unknown_stream_is_a_mistake() -> None:
    recorder = CallRecorder(streams=[spec(0, te=False)], channels=1)
    with pytest.raises(ValueError, match="no stream 3"):
        recorder.set_inband_dtmf(3, True)
    assert not recorder.set_inband_dtmf(0, False)
