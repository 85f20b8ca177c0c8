"""End to end: key presses a real SRC sends as RFC 4733 telephone-events reach the catalogue, never the audio.

pjsua2 (``tests/peers/pjsua_src.py --dtmf``) presses keys during a SIPREC call with ``Call.sendDtmf``
(``PJSUA_DTMF_METHOD_RFC2833``); pjsua2 sends them on the call's first audio stream, the caller's m-line.
The catalogue must list each press on that stream, at the time it was pressed, with its digit only when the
server is told to keep digits (``store_dtmf_digits``); the recording must hold the caller's tone and nothing
of the keys (RFC 4733 events are signalling: no DTMF tone may be synthesised into the audio).

Timing is checked against two clocks. The first press is compared with the wall-clock time pjsua2 was asked
to send it. pjsua2's RTP clock runs ahead of its wall clock by about 40 ms with every press (its audio resumes
later on the RTP clock than in real time), and the recorder, rightly, places media by RTP timestamp (design
guide §2.6); so later presses are compared with the SRC's RTP clock: the timestamp of m-line 1's last packet
when the press was sent, which pjsua2 reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio import Audio, peak_frequency, read_audio, rms, silent_spans
from tests.peers.opus_rtp import DTMF_FREQUENCIES
from tests.pg import scratch_dir

from .server import ServerProcess, free_port, rtp_range
from .test_recording_calls import export, finished, run_pjsua

CALLER_HZ, CALLEE_HZ = 440.0, 1000.0
PJSUA_CLOCK = 8000  # PCMU's RTP clock
PJSUA_PRESS = 0.16  # pjsua2's default digit length (CallSendDtmfParam.duration, ms)
PRESSES = (("1.0", "1"), ("2.5", "9"))
WALL_TOLERANCE = 0.060
RTP_TOLERANCE = 0.025  # a press starts with the frame after the send: one 20 ms packet, plus rounding


@pytest.fixture(scope="module")
def digits_server() -> Iterator[ServerProcess]:
    """A server told to keep the digits of key presses (``[recording] store_dtmf_digits``)."""
    with scratch_dir() as data_dir:
        server = ServerProcess(
            data_dir=data_dir, sip_port=free_port(), http_port=free_port(), rtp_ports=rtp_range()
        )
        server.start("--log-level", "DEBUG", env={"HANGTAR_RECORDING_STORE_DTMF_DIGITS": "true"})
        try:
            yield server
        finally:
            if server.process is not None and server.process.poll() is None:
                server.stop()


def press_window(audio: Audio, channel: int, start: float, end: float) -> np.ndarray[Any, Any]:
    rate = audio.sample_rate
    return audio.channel(channel)[max(0, round(start * rate)) : round(end * rate)]


def band_power(samples: np.ndarray[Any, Any], rate: int, frequency: float, width: float = 15.0) -> float:
    """Power of ``samples`` within ``frequency`` ± ``width`` Hz (Hann-windowed FFT)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    bins = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[np.abs(bins - frequency) < width].sum())


def assert_keys_not_in_audio(
    audio: Audio, press: dict[str, Any], digit: str, tones: tuple[float, ...], sent_seconds: float
) -> None:
    """Around one press, every channel holds only its own tone: the caller's is silent while the key is down
    (the SRC sent events instead of audio, and the recorder drew nothing from them), and no channel carries
    the digit's row or column frequency (ITU-T Q.23)."""
    at, held = press["at"], press["duration"]
    assert abs(held - sent_seconds) <= 0.021, press
    quiet = [
        span
        for span in silent_spans(audio.channel(0), audio.sample_rate, min_duration=0.1)
        if span.start <= at + 0.001 and span.end >= at + held - 0.001
    ]
    assert quiet, (press, silent_spans(audio.channel(0), audio.sample_rate, min_duration=0.015))
    for channel, tone_hz in enumerate(tones):
        window = press_window(audio, channel, at - 0.1, at + held + 0.1)
        own = band_power(window, audio.sample_rate, tone_hz)
        for frequency in DTMF_FREQUENCIES[digit]:
            # A DTMF tone at -10 dBm0 would stand level with the leg's tone; what is there comes from the
            # edges of the silence (spectral splatter), some 35 dB down.
            ratio = band_power(window, audio.sample_rate, frequency) / own
            assert ratio < 10 ** (-25 / 10), (channel, frequency, 10 * np.log10(ratio), press)
        before = press_window(audio, channel, at - 0.3, at - 0.02)
        after = press_window(audio, channel, at + held + 0.1, at + held + 0.4)
        for part in (before, after):
            assert abs(peak_frequency(part, audio.sample_rate) - tone_hz) < 10
            assert rms(part) > 0.1


def recording_origin(row: dict[str, Any]) -> float:
    """Wall-clock time of the recording's first frame: the first packet of any stream."""
    return min(datetime.fromisoformat(s["first_packet_at"]).timestamp() for s in row["streams"])


def call_with_presses(server: ServerProcess, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    plan = ",".join(f"{at}:{digit}" for at, digit in PRESSES)
    report = run_pjsua(
        server,
        tmp_path,
        "--duration",
        "4",
        "--caller-tone",
        str(CALLER_HZ),
        "--callee-tone",
        str(CALLEE_HZ),
        "--dtmf",
        plan,
    )
    assert report["status"] == 200
    assert "telephone-event/8000" in report["answer_sdp"]
    assert [entry["digits"] for entry in report["dtmf"]] == [digit for _, digit in PRESSES]
    assert all("error" not in entry for entry in report["dtmf"]), report["dtmf"]
    row = server.wait_for_recording(finished(report["call_id"]))
    assert row["status"] == "complete", row
    return report, row


def test_key_presses_from_pjsua_are_timed_on_the_callers_stream(
    digits_server: ServerProcess, tmp_path: Path
) -> None:
    report, row = call_with_presses(digits_server, tmp_path)
    caller, callee = row["streams"]
    assert (caller["label"], caller["channel"], callee["label"], callee["channel"]) == ("1", 0, "2", 1)
    # pjsua2 sends telephone-events on its first audio stream only: m-line 1, the caller's (label 1).
    assert caller["telephone_events"] >= 2 * 8  # RFC 4733 §2.5.1: a 160 ms press is 8 packets and more
    assert callee["telephone_events"] == 0 and callee["dtmf"] == []
    presses = caller["dtmf"]
    assert [p["digit"] for p in presses] == ["1", "9"], presses
    sent = report["dtmf"]

    origin = recording_origin(row)
    first_wall = sent[0]["wall"] - origin
    print(f"presses {presses}; sent at {[round(s['wall'] - origin, 4) for s in sent]} s (wall clock)")
    assert abs(presses[0]["at"] - first_wall) < WALL_TOLERANCE, (presses[0], first_wall)
    for press, entry in zip(presses[1:], sent[1:], strict=True):
        on_src_clock = (entry["rtp_ts"] - sent[0]["rtp_ts"]) / PJSUA_CLOCK
        assert abs(press["at"] - presses[0]["at"] - on_src_clock) < RTP_TOLERANCE, (press, on_src_clock)
        # ... and still close to the wall clock: pjsua2's RTP clock leads it by a packet or two per press.
        assert abs(press["at"] - (entry["wall"] - origin)) < WALL_TOLERANCE + 0.05, press

    audio = read_audio(export(digits_server, row["reference"], tmp_path / "dtmf.flac"))
    assert audio.channels == 2 and audio.sample_rate == 8000
    assert abs(peak_frequency(audio.channel(0), audio.sample_rate) - CALLER_HZ) < 5
    assert abs(peak_frequency(audio.channel(1), audio.sample_rate) - CALLEE_HZ) < 5
    for press, (_, digit) in zip(presses, PRESSES, strict=True):
        assert_keys_not_in_audio(audio, press, digit, (CALLER_HZ, CALLEE_HZ), PJSUA_PRESS)


def test_key_press_digits_are_masked_by_default(server: ServerProcess, tmp_path: Path) -> None:
    # Digits may be card numbers or PINs: without store_dtmf_digits only the times are kept.
    report, row = call_with_presses(server, tmp_path)
    presses = row["streams"][0]["dtmf"]
    assert [p["digit"] for p in presses] == [None, None], presses
    assert abs(presses[0]["at"] - (report["dtmf"][0]["wall"] - recording_origin(row))) < WALL_TOLERANCE
    assert all(abs(p["duration"] - PJSUA_PRESS) <= 0.021 for p in presses)
    assert row["streams"][1]["dtmf"] == []
    shown = json.loads(server.cli("recordings", "show", row["reference"], "--json").stdout)
    assert [p["digit"] for stream in shown["streams"] for p in stream["dtmf"]] == [None, None]
