"""Consent asked during the call: the terms a policy carries, and the gate that turns key presses into outcomes.

Times are on the server's monotonic clock, as the call passes them: the prompt ends at 1843.27 s, the caller's
RTP stream is stream 0 and the agent's stream 1.
"""

from __future__ import annotations

import ast
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.dtmf import DtmfSource
from media.dtmf_inband import InbandDtmfDetector
from media.telephone_event import TelephoneEventReceiver
from siprec_server.consent import (
    ConsentGate,
    ConsentGiven,
    ConsentNoAnswer,
    ConsentOutcome,
    ConsentRefused,
    ConsentState,
    ConsentStopped,
)
from storage.consent_terms import DTMF_DIGITS, ConsentTerms, ConsentTermsError

ASKED = 1843.27
CALLER = 0  # the asked party's stream
AGENT = 1
DEFAULT = ConsentTerms()


def gate(terms: ConsentTerms = DEFAULT, *, streams: frozenset[int] = frozenset({CALLER})) -> ConsentGate:
    return ConsentGate(terms, asked_at=ASKED, party_streams=streams)


# Terms ------------------------------------------------------------------------------------------------------


def test_terms_defaults_fill_an_empty_policy_object() -> None:
    terms = ConsentTerms.parse({})
    assert terms == ConsentTerms(
        window_seconds=10.0, yes_digit="1", no_digit="2", stop_digit="9", prompt_version="v1"
    )


def test_terms_from_a_policy_row_and_from_json_text() -> None:
    stored = {
        "window_seconds": 7.5,
        "yes_digit": "#",
        "no_digit": "*",
        "stop_digit": "0",
        "prompt_version": "hu-2",
    }
    terms = ConsentTerms.parse(stored)
    assert (terms.window_seconds, terms.yes_digit, terms.no_digit, terms.stop_digit) == (7.5, "#", "*", "0")
    assert terms.prompt_version == "hu-2"
    assert ConsentTerms.parse('{"window_seconds": 15, "prompt_version": "2026-11 HU/EN"}') == ConsentTerms(
        window_seconds=15, prompt_version="2026-11 HU/EN"
    )
    assert ConsentTerms.parse(terms.to_json()) == terms
    assert ConsentTerms().to_json() == {
        "window_seconds": 10,
        "yes_digit": "1",
        "no_digit": "2",
        "stop_digit": "9",
        "prompt_version": "v1",
    }


def test_terms_accept_digits_written_as_numbers_and_lowercase_letter_keys() -> None:
    terms = ConsentTerms.parse({"yes_digit": 1, "no_digit": 0, "stop_digit": "d"})
    assert (terms.yes_digit, terms.no_digit, terms.stop_digit) == ("1", "0", "D")


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"window_seconds": 0}, "1-120 seconds"),
        ({"window_seconds": 0.5}, "1-120 seconds"),
        ({"window_seconds": 121}, "1-120 seconds"),
        ({"window_seconds": "10"}, "number of seconds"),
        ({"window_seconds": True}, "number of seconds"),
        ({"window_seconds": math.nan}, "number of seconds"),
        ({"window_seconds": None}, "number of seconds"),
        ({"yes_digit": "11"}, "yes_digit must be one key"),
        ({"no_digit": "E"}, "no_digit must be one key"),
        ({"stop_digit": ""}, "stop_digit must be one key"),
        ({"yes_digit": 10}, "yes_digit must be one key"),
        ({"yes_digit": None}, "yes_digit must be one key"),
        ({"yes_digit": "2"}, "must differ"),
        ({"stop_digit": "1"}, "must differ"),
        ({"no_digit": "a", "stop_digit": "A"}, "must differ"),
        ({"prompt_version": ""}, "prompt_version"),
        ({"prompt_version": " v1"}, "prompt_version"),
        ({"prompt_version": "v1\nv2"}, "prompt_version"),
        ({"prompt_version": "v" * 65}, "prompt_version"),
        ({"prompt_version": 1}, "prompt_version"),
        ({"yes_key": "1"}, r"unknown consent terms \['yes_key'\]"),
        ({"window": 10, "window_seconds": 10}, r"unknown consent terms \['window'\]"),
    ],
)
def test_malformed_terms_are_refused_with_the_reason(terms: dict[str, object], message: str) -> None:
    with pytest.raises(ConsentTermsError, match=message):
        ConsentTerms.parse(terms)


@pytest.mark.parametrize(
    ("text", "message"), [("[1, 2]", "JSON object"), ('{"window_seconds": 1', "not JSON")]
)
def test_terms_text_that_is_not_an_object_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConsentTermsError, match=message):
        ConsentTerms.parse(text)


def test_the_window_bounds_are_inclusive() -> None:
    assert ConsentTerms(window_seconds=1).window_seconds == 1.0
    assert ConsentTerms(window_seconds=120).window_seconds == 120.0


# The gate ---------------------------------------------------------------------------------------------------


def test_yes_3_2_seconds_after_the_prompt_gives_consent() -> None:
    consent = gate()
    assert consent.get_timer() == pytest.approx(ASKED + 10)
    assert consent.press(CALLER, "1", ASKED + 3.2) == [ConsentGiven(digit="1", at=ASKED + 3.2)]
    assert consent.state is ConsentState.GIVEN
    assert consent.get_timer() is None
    assert not consent.closed
    assert consent.handle_timer(ASKED + 10) == []  # the window no longer matters


def test_no_refuses_and_closes_the_gate() -> None:
    consent = gate()
    assert consent.press(CALLER, "2", ASKED + 4.75) == [ConsentRefused(digit="2", at=ASKED + 4.75)]
    assert consent.state is ConsentState.REFUSED
    assert consent.closed
    assert consent.get_timer() is None
    assert consent.press(CALLER, "1", ASKED + 5.1) == []
    assert consent.press(CALLER, "9", ASKED + 6.0) == []
    assert consent.handle_timer(ASKED + 60) == []


def test_the_window_timer_gives_no_answer_at_its_end() -> None:
    consent = gate()
    deadline = consent.get_timer()
    assert deadline == ASKED + 10
    assert consent.handle_timer(ASKED + 9.999) == []
    assert consent.state is ConsentState.PENDING
    assert consent.handle_timer(ASKED + 10.02) == [ConsentNoAnswer(at=deadline)]
    assert consent.state is ConsentState.NO_ANSWER
    assert consent.get_timer() is None
    assert consent.handle_timer(ASKED + 11) == []
    assert consent.press(CALLER, "1", ASKED + 10.5) == []


def test_a_late_press_at_10_4_seconds_is_no_answer_even_before_the_timer_ran() -> None:
    consent = gate()
    assert consent.press(CALLER, "1", ASKED + 10.4) == [ConsentNoAnswer(at=ASKED + 10)]
    assert consent.state is ConsentState.NO_ANSWER
    assert consent.handle_timer(ASKED + 10.4) == []


def test_the_window_starts_when_asked_and_ends_before_its_last_instant() -> None:
    at_start = gate()
    assert at_start.press(CALLER, "1", ASKED) == [ConsentGiven(digit="1", at=ASKED)]
    at_end = gate()
    assert at_end.press(CALLER, "1", ASKED + 10) == [ConsentNoAnswer(at=ASKED + 10)]


def test_presses_before_the_prompt_are_ignored() -> None:
    consent = gate()
    assert consent.press(CALLER, "2", ASKED - 0.4) == []  # typed ahead during the prompt
    assert consent.state is ConsentState.PENDING
    assert consent.other_presses == 0
    assert consent.press(CALLER, "1", ASKED + 1.8) == [ConsentGiven(digit="1", at=ASKED + 1.8)]


def test_presses_on_the_agents_stream_do_not_count() -> None:
    consent = gate()
    assert consent.press(AGENT, "1", ASKED + 2.0) == []
    assert consent.press(AGENT, "2", ASKED + 2.5) == []
    assert consent.state is ConsentState.PENDING
    assert consent.other_presses == 0
    assert consent.press(CALLER, "2", ASKED + 6.3) == [ConsentRefused(digit="2", at=ASKED + 6.3)]


def test_a_party_with_several_streams_answers_on_any_of_them() -> None:
    consent = gate(streams=frozenset({0, 2}))  # the caller's stream was replaced after a re-INVITE
    assert consent.press(2, "1", ASKED + 5.0) == [ConsentGiven(digit="1", at=ASKED + 5.0)]
    assert consent.press(0, "9", ASKED + 30.0) == [ConsentStopped(digit="9", at=ASKED + 30.0)]


def test_other_digits_in_the_window_are_counted_and_ignored() -> None:
    consent = gate()
    assert consent.press(CALLER, "5", ASKED + 2.1) == []
    assert consent.press(CALLER, "#", ASKED + 2.6) == []
    assert consent.other_presses == 2
    assert consent.state is ConsentState.PENDING
    assert consent.press(CALLER, "1", ASKED + 3.4) == [ConsentGiven(digit="1", at=ASKED + 3.4)]
    assert consent.other_presses == 2


def test_the_stop_key_before_any_answer_is_just_another_digit() -> None:
    consent = gate()
    assert consent.press(CALLER, "9", ASKED + 2.0) == []
    assert consent.other_presses == 1
    assert consent.handle_timer(ASKED + 10) == [ConsentNoAnswer(at=ASKED + 10)]


def test_a_double_press_decides_once() -> None:
    consent = gate()
    assert consent.press(CALLER, "1", ASKED + 3.2) == [ConsentGiven(digit="1", at=ASKED + 3.2)]
    assert consent.press(CALLER, "1", ASKED + 3.5) == []
    assert consent.press(CALLER, "2", ASKED + 4.0) == []  # changing one's mind is the stop key's job
    assert consent.state is ConsentState.GIVEN


def test_the_stop_key_after_yes_stops_at_any_time_and_closes() -> None:
    consent = gate()
    consent.press(CALLER, "1", ASKED + 3.2)
    assert consent.press(AGENT, "9", ASKED + 20.0) == []  # the agent cannot withdraw the caller's consent
    assert consent.press(CALLER, "9", ASKED + 187.6) == [ConsentStopped(digit="9", at=ASKED + 187.6)]
    assert consent.state is ConsentState.STOPPED
    assert consent.closed
    assert consent.press(CALLER, "9", ASKED + 188.0) == []
    assert consent.press(CALLER, "1", ASKED + 189.0) == []


def test_a_stop_press_fed_out_of_order_before_the_yes_does_not_withdraw() -> None:
    consent = gate()
    consent.press(CALLER, "1", ASKED + 3.2)
    assert consent.press(CALLER, "9", ASKED + 3.0) == []
    assert consent.state is ConsentState.GIVEN


def test_custom_keys_and_window() -> None:
    terms = ConsentTerms.parse({"window_seconds": 5, "yes_digit": "#", "no_digit": "*", "stop_digit": "0"})
    consent = gate(terms)
    assert consent.get_timer() == ASKED + 5
    assert consent.press(CALLER, "1", ASKED + 1.0) == []  # the default yes key means nothing here
    assert consent.press(CALLER, "#", ASKED + 4.9) == [ConsentGiven(digit="#", at=ASKED + 4.9)]
    assert consent.press(CALLER, "9", ASKED + 8.0) == []
    assert consent.press(CALLER, "0", ASKED + 9.0) == [ConsentStopped(digit="0", at=ASKED + 9.0)]


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="stream indexes"):
        ConsentGate(DEFAULT, asked_at=ASKED, party_streams=frozenset())
    with pytest.raises(ValueError, match="finite"):
        ConsentGate(DEFAULT, asked_at=math.inf, party_streams=frozenset({0}))
    consent = gate()
    for digit in ("", "11", "E", "a", "x"):
        with pytest.raises(ValueError, match="DTMF key"):
            consent.press(CALLER, digit, ASKED + 1)
    with pytest.raises(ValueError, match="finite"):
        consent.press(CALLER, "1", math.nan)
    assert consent.state is ConsentState.PENDING


def _imports(*path: str) -> set[str]:
    """The modules a source file imports: top-level packages, except ``storage.*`` named in full."""
    source = Path(__file__).resolve().parents[3].joinpath(*path)
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        imported.update(name if name.startswith("storage.") else name.split(".")[0] for name in names)
    return imported


def test_the_gate_does_no_io_and_reads_no_clock() -> None:
    pure = {"__future__", "enum", "json", "math", "collections", "dataclasses", "typing"}
    # the gate's only import beyond the standard library is the consent terms, pure in turn
    assert _imports("siprec_server", "consent.py") <= pure | {"storage.consent_terms"}
    assert _imports("storage", "consent_terms.py") <= pure


# Presses as the detectors report them ------------------------------------------------------------------------

RATE = 8000


def _telephone_event(code: int, duration: int, *, end: bool, volume: int = 10) -> bytes:
    return struct.pack("!BBH", code, (0x80 if end else 0) | volume, duration)  # RFC 4733 §2.3


def test_an_rfc4733_press_counts_from_the_moment_the_key_went_down() -> None:
    """A 160 ms "1" whose start packet is 9.96 s after the prompt: judged by its start, not by its end
    packets 0.15 s later, past the window."""
    ts_at_prompt = 2_716_480_000  # the caller's RTP clock when the prompt ended
    start_ts = ts_at_prompt + round(9.96 * RATE)
    receiver = TelephoneEventReceiver()
    consent = gate()
    outcomes: list[ConsentOutcome] = []
    packets = [(400, False, True), (800, False, False), (1200, False, False)] + [(1280, True, False)] * 3
    for duration, end, marker in packets:
        receiver.feed(start_ts, _telephone_event(1, duration, end=end), marker)
        started = receiver.started()
        if started is not None and duration == 400:
            at = ASKED + (started.start - ts_at_prompt) / RATE
            outcomes += consent.press(CALLER, started.digit or "", at)
    assert [type(outcome) for outcome in outcomes] == [ConsentGiven]
    assert outcomes[0].at == pytest.approx(ASKED + 9.96)
    assert consent.handle_timer(ASKED + 10.11) == []


def _tone(digit_freqs: tuple[float, float], seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return 0.25 * (np.sin(2 * np.pi * digit_freqs[0] * t) + np.sin(2 * np.pi * digit_freqs[1] * t))


def test_an_in_band_no_from_the_callers_audio_refuses() -> None:
    """The caller's decoded audio: 4.1 s of line noise, then "2" (697 + 1336 Hz) for 120 ms, then noise."""
    rng = np.random.default_rng(7)
    audio = np.concatenate([np.zeros(round(4.1 * RATE)), _tone((697.0, 1336.0), 0.12), np.zeros(RATE)])
    audio += rng.normal(0, 0.01, audio.size)
    pcm = np.round(audio * 32767 * 0.7).astype(np.int16)
    detector = InbandDtmfDetector(RATE)
    events = []
    for first in range(0, pcm.size, 160):  # 20 ms frames as they are decoded
        events += detector.feed(pcm[first : first + 160])
    events += detector.flush()
    assert [(event.digit, event.source) for event in events] == [("2", DtmfSource.INBAND)]
    consent = gate()
    outcomes = [
        outcome
        for event in events
        for outcome in consent.press(CALLER, event.digit or "", ASKED + event.start / RATE)
    ]
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], ConsentRefused)
    assert outcomes[0].at == pytest.approx(ASKED + 4.1, abs=0.01)


# Properties ------------------------------------------------------------------------------------------------

_presses = st.tuples(
    st.sampled_from([CALLER, AGENT, 2]),
    st.sampled_from(DTMF_DIGITS),
    st.floats(min_value=-5.0, max_value=300.0, allow_nan=False),
)
_actions = st.lists(
    st.one_of(
        _presses.map(lambda press: ("press", *press)),
        st.floats(min_value=-5.0, max_value=300.0, allow_nan=False).map(lambda at: ("timer", at)),
    ),
    max_size=40,
)


@settings(max_examples=400)
@given(actions=_actions, window=st.sampled_from([1.0, 5.0, 10.0, 37.5, 120.0]))
def test_any_presses_give_at_most_one_decision_and_stop_only_after_consent(
    actions: list[tuple[object, ...]], window: float
) -> None:
    consent = gate(ConsentTerms(window_seconds=window), streams=frozenset({CALLER, 2}))
    outcomes: list[ConsentOutcome] = []
    for action in actions:
        if action[0] == "press":
            _, stream, digit, offset = action
            assert isinstance(stream, int) and isinstance(digit, str) and isinstance(offset, float)
            outcomes += consent.press(stream, digit, ASKED + offset)
        else:
            assert isinstance(action[1], float)
            outcomes += consent.handle_timer(ASKED + action[1])
        assert (consent.get_timer() is not None) == (consent.state is ConsentState.PENDING)
    decisions = [o for o in outcomes if isinstance(o, ConsentGiven | ConsentRefused | ConsentNoAnswer)]
    stops = [o for o in outcomes if isinstance(o, ConsentStopped)]
    assert len(decisions) <= 1
    assert len(stops) <= 1
    if stops:
        assert outcomes == [decisions[0], stops[0]]
        assert isinstance(decisions[0], ConsentGiven)
        assert stops[0].at >= decisions[0].at
    for outcome in outcomes:
        assert outcome.at >= ASKED
        if isinstance(outcome, ConsentGiven | ConsentRefused):
            assert outcome.at < ASKED + window


def _expected(presses: list[tuple[int, str, float]], terms: ConsentTerms) -> list[ConsentOutcome]:
    """The rules written out plainly, for presses in time order followed by the end of the call."""
    deadline = ASKED + terms.window_seconds
    mine = [(digit, at) for stream, digit, at in presses if stream == CALLER and at >= ASKED]
    answer = next(
        (i for i, (d, at) in enumerate(mine) if at < deadline and d in (terms.yes_digit, terms.no_digit)),
        None,
    )
    if answer is None:
        return [ConsentNoAnswer(at=deadline)]
    digit, at = mine[answer]
    if digit == terms.no_digit:
        return [ConsentRefused(digit=digit, at=at)]
    stop = next((press for press in mine[answer + 1 :] if press[0] == terms.stop_digit), None)
    given_ = ConsentGiven(digit=digit, at=at)
    return [given_] if stop is None else [given_, ConsentStopped(digit=stop[0], at=stop[1])]


@settings(max_examples=400)
@given(
    presses=st.lists(
        st.tuples(
            st.sampled_from([CALLER, AGENT]),
            st.sampled_from("12590#"),
            st.floats(min_value=-3.0, max_value=40.0, allow_nan=False),
        ),
        max_size=12,
    ),
)
def test_presses_in_time_order_decide_as_the_rules_say(presses: list[tuple[int, str, float]]) -> None:
    presses = sorted(
        ((stream, digit, ASKED + offset) for stream, digit, offset in presses), key=lambda p: p[2]
    )
    consent = gate()
    outcomes: list[ConsentOutcome] = []
    for stream, digit, at in presses:
        outcomes += consent.handle_timer(at)  # the timer runs as time passes, before each press
        outcomes += consent.press(stream, digit, at)
    outcomes += consent.handle_timer(ASKED + 3600)  # hang-up, long after
    assert outcomes == _expected(presses, DEFAULT)
