"""In-band DTMF detection on decoded audio: key presses as a phone sends them, and nothing in speech or tones.

Key presses are synthesised from the ITU-T Q.23 frequencies at levels in dBm0 (G.711: a full-scale sine is
+3.17 dBm0), with random phases, white noise at 15 dB SNR and a G.711 round trip, as they reach the recorder.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from media.dtmf import DtmfEvent, DtmfSource
from media.dtmf_inband import InbandDtmfDetector
from media.g711 import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw

Signal = npt.NDArray[np.float64]
ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
ALL_KEYS = "0123456789*#ABCD"


def amplitude(dbm0: float) -> float:
    return 32768.0 * 10 ** ((dbm0 - 3.17) / 20)


def frequencies(key: str) -> tuple[float, float]:
    row = next(i for i, keys in enumerate(KEYS) if key in keys)
    return ROWS[row], COLUMNS[KEYS[row].index(key)]


def keyed(
    keys: str,
    *,
    tone: float,
    gap: float,
    level: float,
    rng: np.random.Generator,
    rate: int = 8000,
    lead: float = 0.3,
    twist: float = 0.0,
    offset: tuple[float, float] = (0.0, 0.0),
) -> tuple[Signal, list[int]]:
    """Keys pressed for ``tone`` s with ``gap`` s between them, after ``lead`` s of silence; and where each starts.

    ``level`` is the row tone's, in dBm0; the column tone is ``twist`` dB above it; ``offset`` detunes both.
    """
    parts, starts, at = [np.zeros(round(lead * rate))], [], round(lead * rate)
    for key in keys:
        low, high = frequencies(key)
        t = np.arange(round(tone * rate)) / rate
        phase = rng.uniform(0, 2 * np.pi, 2)
        parts.append(
            amplitude(level) * np.sin(2 * np.pi * low * (1 + offset[0]) * t + phase[0])
            + amplitude(level + twist) * np.sin(2 * np.pi * high * (1 + offset[1]) * t + phase[1])
        )
        parts.append(np.zeros(round(gap * rate)))
        starts.append(at)
        at += t.size + round(gap * rate)
    parts.append(np.zeros(round(0.2 * rate)))
    return np.concatenate(parts), starts


def noisy(signal: Signal, snr: float, level: float, rng: np.random.Generator) -> Signal:
    """White noise ``snr`` dB below a press at ``level`` dBm0 (two tones), over the whole signal."""
    power = 2 * amplitude(level) ** 2 / 2
    return signal + rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), signal.size)


def pcm(signal: Signal) -> npt.NDArray[np.int16]:
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


def g711(signal: Signal, law: str) -> npt.NDArray[np.int16]:
    if law == "alaw":
        return decode_alaw(encode_alaw(pcm(signal)))
    return decode_ulaw(encode_ulaw(pcm(signal)))


def speech_like(seconds: float, pitch: float, rng: np.random.Generator) -> Signal:
    """Voiced speech: pitch harmonics under formants near 600 and 1700 Hz, vibrato, syllables, breath noise."""
    rate = 8000
    t = np.arange(round(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(pitch * (1 + 0.08 * np.sin(2 * np.pi * 0.9 * t))) / rate
    voice = np.zeros_like(t)
    for k in range(1, int(3800 / pitch)):
        gain = np.exp(-(((k * pitch - 600) / 250) ** 2)) + 0.6 * np.exp(-(((k * pitch - 1700) / 400) ** 2))
        voice += gain / k * np.sin(k * phase)
    syllables = np.clip(np.sin(2 * np.pi * 3.3 * t), 0, None)
    out: Signal = voice / np.abs(voice).max() * 12000 * syllables + rng.normal(0, 30, t.size)
    return out


def detect(samples: npt.NDArray[np.int16], rate: int = 8000, chunk: int | None = None) -> list[DtmfEvent]:
    detector = InbandDtmfDetector(rate)
    step = chunk or samples.size
    events = [e for i in range(0, samples.size, step) for e in detector.feed(samples[i : i + step])]
    return events + detector.flush()


def digits(events: list[DtmfEvent]) -> str:
    return "".join(e.digit or "?" for e in events)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
@pytest.mark.parametrize("level", [-3.0, -10.0, -20.0, -30.0])
@pytest.mark.parametrize(("tone", "gap"), [(0.04, 0.04), (0.05, 0.05), (0.1, 0.1)])
def test_every_key_at_every_level_and_speed(law: str, level: float, tone: float, gap: float) -> None:
    rng = np.random.default_rng(round(1000 * (tone - level)) + len(law))
    signal, starts = keyed(ALL_KEYS, tone=tone, gap=gap, level=level, rng=rng)
    events = detect(g711(noisy(signal, 15.0, level, rng), law))
    assert digits(events) == ALL_KEYS
    assert all(e.source is DtmfSource.INBAND and e.volume is None for e in events)
    for found, start in zip(events, starts, strict=True):
        assert abs(found.start - start) <= 64, (found, start)  # one 8 ms block
        assert abs(found.duration - round(tone * 8000)) <= 128, found  # one 16 ms window


@pytest.mark.parametrize("rate", [8000, 16000])
def test_any_chunk_sizes_give_the_same_presses(rate: int) -> None:
    rng = np.random.default_rng(rate)
    signal, starts = keyed("0630123456#", tone=0.05, gap=0.05, level=-20.0, rng=rng, rate=rate)
    samples = pcm(noisy(signal, 15.0, -20.0, rng))
    whole = detect(samples, rate)
    assert digits(whole) == "0630123456#"
    assert all(abs(e.start - s) <= rate // 125 for e, s in zip(whole, starts, strict=True))
    for packet in (1, 160, 320, 4000):
        assert detect(samples, rate, packet) == whole
    detector = InbandDtmfDetector(rate)
    at, events = 0, []
    while at < samples.size:
        size = int(rng.integers(1, 2000))
        events += detector.feed(samples[at : at + size])
        at += size
    assert events + detector.flush() == whole


def test_presses_between_speech() -> None:
    rng = np.random.default_rng(24)
    before, after = speech_like(4.0, 140.0, rng), speech_like(4.0, 140.0, rng)
    press, starts = keyed("1", tone=0.12, gap=0.0, level=-12.0, rng=rng, lead=0.25)
    events = detect(g711(np.concatenate((before, press, after)), "ulaw"))
    assert digits(events) == "1"
    assert abs(events[0].start - (before.size + starts[0])) <= 64


@pytest.mark.parametrize("pitch", [85.0, 120.0, 165.0, 210.0, 260.0])
def test_speech_is_not_dtmf(pitch: float) -> None:
    rng = np.random.default_rng(int(pitch))
    assert detect(g711(speech_like(30.0, pitch, rng), "ulaw")) == []


@pytest.mark.parametrize(
    "tones",
    [
        (440.0,),
        (1000.0,),
        (697.0,),
        (1633.0,),
        (350.0, 440.0),
        (440.0, 480.0),
        (480.0, 620.0),
        (1400.0, 2060.0),
    ],
    ids=["440", "1000", "row-only", "column-only", "dial", "ringback", "busy", "sit-like"],
)
def test_test_tones_and_call_progress_tones_are_not_dtmf(tones: tuple[float, ...]) -> None:
    t = np.arange(5 * 8000) / 8000
    signal = sum(amplitude(-10.0) * np.sin(2 * np.pi * f * t) for f in tones)
    assert detect(g711(np.asarray(signal), "alaw")) == []


def test_a_sweep_is_not_dtmf() -> None:
    t = np.arange(6 * 8000) / 8000
    frequency = 300.0 + (3400.0 - 300.0) * t / t[-1]
    sweep = amplitude(-6.0) * np.sin(2 * np.pi * np.cumsum(frequency) / 8000)
    assert detect(g711(sweep, "ulaw")) == []


def test_silence_and_noise_are_not_dtmf() -> None:
    rng = np.random.default_rng(3)
    assert detect(np.zeros(80_000, dtype=np.int16)) == []
    assert detect(pcm(rng.normal(0, 3000, 80_000))) == []


def test_a_chord_of_two_dtmf_tones_with_strong_harmonics_is_not_dtmf() -> None:
    """An instrument playing 770 and 1336 Hz: the right pair, but with the overtones of music."""
    t = np.arange(2 * 8000) / 8000
    signal = sum(
        amplitude(-10.0) * (np.sin(2 * np.pi * f * t) + 0.7 * np.sin(2 * np.pi * 2 * f * t + 1.0))
        for f in (770.0, 1336.0)
    )
    assert detect(g711(np.asarray(signal), "ulaw")) == []
    clean = sum(amplitude(-10.0) * np.sin(2 * np.pi * f * t) for f in (770.0, 1336.0))
    assert digits(detect(g711(np.asarray(clean), "ulaw"))) == "5"


@pytest.mark.parametrize("level", [-6.0, -20.0])
def test_tones_too_short_are_not_presses(level: float) -> None:
    rng = np.random.default_rng(20)
    for shift in range(0, 64, 8):  # every alignment with the analysis blocks
        short, _ = keyed(ALL_KEYS, tone=0.02, gap=0.1, level=level, rng=rng, lead=0.3 + shift / 8000)
        assert detect(g711(short, "ulaw")) == []
    enough, _ = keyed(ALL_KEYS, tone=0.04, gap=0.1, level=level, rng=rng)
    assert digits(detect(g711(enough, "ulaw"))) == ALL_KEYS


def test_two_keys_at_once_are_not_a_press() -> None:
    """4 and 7 held together: two row tones of equal level with one column tone."""
    t = np.arange(8000) / 8000
    signal = sum(amplitude(-10.0) * np.sin(2 * np.pi * f * t + f) for f in (770.0, 852.0, 1209.0))
    assert detect(g711(np.asarray(signal), "ulaw")) == []


@pytest.mark.parametrize(("twist", "found"), [(-6.0, True), (3.0, True), (-12.0, False), (8.0, False)])
def test_twist_limits(twist: float, found: bool) -> None:
    """Row 8 dB above the column (normal twist) or the column 4 dB above the row (reverse) at most."""
    rng = np.random.default_rng(int(twist) + 50)
    level = -8.0 if twist < 0 else -8.0 - twist
    signal, _ = keyed("2468", tone=0.06, gap=0.06, level=level, twist=twist, rng=rng)
    assert digits(detect(g711(noisy(signal, 25.0, level, rng), "ulaw"))) == ("2468" if found else "")


@pytest.mark.parametrize("offset", [(0.015, 0.015), (-0.015, -0.015), (0.015, -0.015)])
def test_frequencies_off_by_one_and_a_half_percent_are_accepted(offset: tuple[float, float]) -> None:
    rng = np.random.default_rng(15)
    signal, _ = keyed(ALL_KEYS, tone=0.05, gap=0.05, level=-15.0, rng=rng, offset=offset)
    assert digits(detect(g711(noisy(signal, 20.0, -15.0, rng), "alaw"))) == ALL_KEYS


def test_below_the_floor_nothing_is_heard() -> None:
    rng = np.random.default_rng(45)
    signal, _ = keyed("123", tone=0.1, gap=0.1, level=-45.0, rng=rng)
    assert detect(g711(signal, "ulaw")) == []


def test_a_held_key_is_one_press() -> None:
    rng = np.random.default_rng(2)
    signal, starts = keyed("#", tone=2.5, gap=0.0, level=-12.0, rng=rng)
    events = detect(g711(noisy(signal, 15.0, -12.0, rng), "ulaw"))
    assert [(e.digit, abs(e.start - starts[0]) <= 64, abs(e.duration - 20_000) <= 128) for e in events] == [
        ("#", True, True)
    ]


def test_a_10_ms_break_is_bridged_and_a_40_ms_pause_separates() -> None:
    t = np.arange(round(0.25 * 8000)) / 8000
    low, high = frequencies("7")
    held = amplitude(-10.0) * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    broken = held.copy()
    broken[1000:1080] = 0.0  # a 10 ms dropout in the line
    paused = held.copy()
    paused[1000:1320] = 0.0  # 40 ms: the key was released and pressed again
    quiet = np.zeros(2400)
    assert digits(detect(g711(np.concatenate((quiet, broken, quiet)), "ulaw"))) == "7"
    assert digits(detect(g711(np.concatenate((quiet, paused, quiet)), "ulaw"))) == "77"


def test_flush_reports_a_press_cut_off_by_the_end_of_the_stream() -> None:
    rng = np.random.default_rng(9)
    signal, starts = keyed("9", tone=0.3, gap=0.0, level=-10.0, rng=rng)
    samples = g711(signal[: starts[0] + 1200], "ulaw")  # the call ends 150 ms into the press
    detector = InbandDtmfDetector(8000)
    assert detector.feed(samples) == []
    (press,) = detector.flush()
    assert press.digit == "9" and abs(press.start - starts[0]) <= 64 and abs(press.duration - 1200) <= 128
    assert detector.flush() == []
    # Feeding on after a flush: positions still count from the first sample ever fed.
    more, more_starts = keyed("0", tone=0.1, gap=0.1, level=-10.0, rng=rng)
    events = detector.feed(g711(more, "ulaw")) + detector.flush()
    assert digits(events) == "0"
    assert abs(events[0].start - (samples.size + more_starts[0])) <= 64


def test_presses_are_reported_within_the_batch_delay() -> None:
    rng = np.random.default_rng(6)
    signal, starts = keyed("1", tone=0.08, gap=0.0, level=-10.0, rng=rng, lead=0.2)
    samples = g711(np.concatenate((signal, np.zeros(8000))), "ulaw")
    detector = InbandDtmfDetector(8000, batch=0.1)
    released = starts[0] + 640
    for at in range(0, samples.size, 160):  # 20 ms packets
        if detector.feed(samples[at : at + 160]):
            assert at + 160 - released <= 0.1 * 8000 + 3 * 64 + 160
            return
    pytest.fail("the press was never reported")


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError):
        InbandDtmfDetector(44100)
    with pytest.raises(ValueError):
        InbandDtmfDetector(8000).feed(np.zeros((160, 2), dtype=np.int16))
