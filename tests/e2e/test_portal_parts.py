"""The portal's pure parts: its two languages, reading the search box, the days of a window, how a party is
written, where a link may send the reader, and the waveform's peaks of real FLAC audio."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from uuid import uuid4

import numpy as np
import pytest
import soundfile

from siprec_server.portal.i18n import MESSAGES, Translator, choose_language
from siprec_server.portal.peaks import BUCKETS, PeaksCache, _regrouped, compute_peaks
from siprec_server.portal.recordings_page import SearchField, day_window, party_label, search_terms
from siprec_server.portal.web import Formatter, local_path
from storage.models import ParticipantRecord, ParticipantRole

RATE = 8000


def test_both_languages_have_every_message_with_the_same_fields() -> None:
    hu, en = MESSAGES["hu"], MESSAGES["en"]
    assert set(hu) == set(en)
    for key in hu:
        fields_hu = {part.split("}")[0] for part in hu[key].split("{")[1:]}
        fields_en = {part.split("}")[0] for part in en[key].split("{")[1:]}
        assert fields_hu == fields_en, key


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        ("en", "hu-HU,hu;q=0.9", "en"),  # the switch wins
        (None, "en-GB,en;q=0.9,hu;q=0.8", "en"),
        (None, "de-DE,de;q=0.9,hu;q=0.5,en;q=0.4", "hu"),
        (None, "hu;q=0.2, en;q=0.7", "en"),
        (None, "fr-FR", "hu"),  # nothing we have: Hungarian
        (None, "en;q=0", "hu"),  # "not English"
        (None, None, "hu"),
        ("xx", "en-US", "en"),  # a cookie naming no language of ours is ignored
        (None, "en;q=abc", "hu"),
    ],
)
def test_the_language_comes_from_the_switch_then_accept_language(
    cookie: str | None, header: str | None, expected: str
) -> None:
    assert choose_language(cookie, header) == expected


def test_a_message_is_filled_in_and_an_unknown_key_shows_itself() -> None:
    t = Translator("hu")
    assert t("recording.title", reference="HT-7K3M-Q9RX") == "Felvétel HT-7K3M-Q9RX"
    assert Translator("en")("access.found", count=2) == "Recordings found: 2"
    assert t("no.such.key") == "no.such.key"


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("06 1 234 5678", SearchField.AUTO, (SearchField.NUMBER, {"number": "06 1 234 5678"})),
        ("+36 (1) 234-5678", SearchField.AUTO, (SearchField.NUMBER, {"number": "+36 (1) 234-5678"})),
        ("tel:+3612345678", SearchField.AUTO, (SearchField.NUMBER, {"number": "tel:+3612345678"})),
        ("ht-7k3m q9rx", SearchField.AUTO, (SearchField.REFERENCE, {"reference": "ht-7k3m q9rx"})),
        ("Kovács Éva", SearchField.AUTO, (SearchField.PARTICIPANT, {"participant": "Kovács Éva"})),
        ("pbx.example.hu", SearchField.AUTO, (SearchField.PARTICIPANT, {"participant": "pbx.example.hu"})),
        ("12345678", SearchField.REFERENCE, (SearchField.REFERENCE, {"reference": "12345678"})),
        ("201", SearchField.PARTICIPANT, (SearchField.PARTICIPANT, {"participant": "201"})),
        ("   ", SearchField.AUTO, (None, {})),
    ],
)
def test_the_search_box_is_read_as_a_number_a_reference_or_a_participant(
    text: str, field: SearchField, expected: tuple[SearchField | None, dict[str, str]]
) -> None:
    assert search_terms(text, field, "HU") == expected


def test_a_day_window_is_whole_budapest_days() -> None:
    since, until = day_window("2026-03-29", "2026-03-29")  # the day the clocks go forward: 23 hours
    assert since == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert until == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert day_window("", "") == (None, None)
    with pytest.raises(ValueError):
        day_window("2026-02-30", "")


def test_a_party_is_written_as_a_person_reads_it() -> None:
    caller = ParticipantRecord(
        aor="sip:+3612345678@pbx.example.hu", name="Kovács Éva", role=ParticipantRole.CALLER
    )
    assert party_label(caller) == "Kovács Éva (+3612345678)"
    assert party_label(ParticipantRecord(aor="tel:+36301234567")) == "+36301234567"
    assert party_label(ParticipantRecord(aor="sips:201@pbx.example.hu")) == "201"
    assert party_label(ParticipantRecord()) == "—"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/recordings?q=06", "/recordings?q=06"),
        ("https://evil.example/", "/recordings"),
        ("//evil.example/", "/recordings"),
        ("/\\evil.example", "/recordings"),
        ("/recordings\r\nSet-Cookie: x=1", "/recordings"),
        (None, "/recordings"),
    ],
)
def test_a_link_sends_the_reader_only_within_the_site(target: str | None, expected: str) -> None:
    assert local_path(target) == expected


def test_times_are_budapest_time_in_each_language() -> None:
    moment = datetime(2026, 7, 1, 8, 5, 9, tzinfo=UTC)
    assert Formatter("hu").time(moment) == "2026. 07. 01. 10:05:09"
    assert Formatter("en").time(moment) == "2026-07-01 10:05:09"
    assert Formatter("en").duration(3725.4) == "1:02:05" and Formatter("en").duration(94.3) == "1:34"
    assert Formatter("hu").percent(0.0123) == "1,2 %"


def _flac(frames: np.ndarray) -> io.BytesIO:
    buffer = io.BytesIO()
    soundfile.write(buffer, frames, RATE, format="FLAC", subtype="PCM_16")
    buffer.seek(0)
    return buffer


def test_peaks_show_where_each_channel_is_loud_and_where_silent() -> None:
    seconds = 30.0
    t = np.arange(int(seconds * RATE)) / RATE
    caller = 0.5 * np.sin(2 * np.pi * 440 * t) * (t < 10)  # speaks for the first 10 s
    callee = 0.25 * np.sin(2 * np.pi * 1000 * t) * (t >= 20)  # for the last 10 s
    peaks = compute_peaks(_flac(np.stack([caller, callee], axis=1)))
    assert peaks.duration == pytest.approx(seconds)
    assert peaks.sample_rate == RATE
    assert len(peaks.lows) == len(peaks.highs) == 2
    count = len(peaks.highs[0])
    assert count == BUCKETS
    assert peaks.bucket_seconds * count == pytest.approx(seconds, rel=0.01)
    third = count // 3
    assert min(peaks.highs[0][: third - 1]) == pytest.approx(0.5 * 127, abs=2)
    assert max(peaks.highs[0][third + 1 :]) == 0 and min(peaks.lows[0][third + 1 :]) == 0
    assert max(peaks.highs[1][: 2 * third - 1]) == 0
    assert min(peaks.highs[1][2 * third + 1 :]) == pytest.approx(0.25 * 127, abs=2)
    assert min(peaks.lows[1][2 * third + 1 :]) == pytest.approx(-0.25 * 127, abs=2)
    data = peaks.to_json()
    assert data["scale"] == 127 and len(data["channels"][1]["min"]) == count


def test_peaks_of_audio_shorter_than_the_buckets_and_of_a_clipped_wav() -> None:
    short = compute_peaks(_flac(np.full((300, 1), 0.5)))
    assert len(short.highs[0]) == 300 and short.duration == pytest.approx(300 / RATE)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.full((RATE, 2), 1.0), RATE, format="WAV", subtype="PCM_16")
    buffer.seek(0)
    loud = compute_peaks(buffer)
    assert set(loud.highs[0]) == {127}  # full scale, never past it


def test_a_file_that_is_no_audio_is_refused() -> None:
    with pytest.raises(soundfile.LibsndfileError):
        compute_peaks(io.BytesIO(b"PK\x03\x04 this is a zip, not audio" * 10))


def test_the_peaks_cache_keeps_the_latest() -> None:
    cache = PeaksCache(size=2)
    peaks = compute_peaks(_flac(np.zeros((800, 1))))
    keys = [(uuid4(), f"{n:064x}") for n in range(3)]
    for key in keys:
        cache.put(key, peaks)
    assert cache.get(keys[0]) is None
    assert cache.get(keys[1]) is peaks and cache.get(keys[2]) is peaks


@pytest.mark.parametrize(
    ("container", "subtype", "rate"), [("OGG", "OPUS", 48000), ("MP3", "MPEG_LAYER_III", 8000)]
)
def test_peaks_of_the_other_stored_formats(container: str, subtype: str, rate: int) -> None:
    t = np.arange(int(4 * rate)) / rate
    frames = np.stack([0.5 * np.sin(2 * np.pi * 440 * t) * (t < 2), np.zeros_like(t)], axis=1)
    buffer = io.BytesIO()
    soundfile.write(buffer, frames, rate, format=container, subtype=subtype)
    buffer.seek(0)
    peaks = compute_peaks(buffer)
    assert peaks.duration == pytest.approx(4.0, abs=0.1)
    half = len(peaks.highs[0]) // 2
    assert min(peaks.highs[0][10 : half - 10]) > 40  # lossy, but loud where the caller spoke
    assert max(peaks.highs[0][half + 10 :]) <= 3 and max(peaks.highs[1]) <= 3


def test_buckets_beyond_the_limit_are_merged_keeping_the_extremes() -> None:
    lows = np.array([[-0.1, -0.5, -0.2, -0.9, -0.3]], dtype=np.float32)
    highs = np.array([[0.1, 0.5, 0.2, 0.9, 0.3]], dtype=np.float32)
    assert _regrouped(lows, 2, np.minimum)[0].tolist() == pytest.approx([-0.5, -0.9, -0.3])
    assert _regrouped(highs, 2, np.maximum)[0].tolist() == pytest.approx([0.5, 0.9, 0.3])
    assert _regrouped(highs, 1, np.maximum) is highs
