"""Consent decided while the call runs: presses fed as the media session reports them, the window judged on
the time every press has been heard up to, each outcome handed out once, and the end of the call; which party
a call asks, and what each final answer means for its recording.

Times are on the recording's clock (seconds from its first frame): the prompt plays as the call starts, so the
question is asked at 0. The caller is stream 0, the agent stream 1.
"""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import pytest

from media.dtmf import DtmfSource
from media.presses import DtmfPress
from siprec_server.consent import ConsentGiven, ConsentNoAnswer, ConsentRefused, ConsentState, ConsentStopped
from siprec_server.consent_live import NO_STREAM, LiveConsent, heard_until
from siprec_server.lifecycle import consent_disposal, live_consent
from siprec_server.siprec import ChannelLayout
from storage.attribution import AttributedBy
from storage.consent_terms import ConsentTerms
from storage.decision import Decision, DecisionReason
from storage.disposal import DisposalReason
from storage.policy_rules import CallDirection
from storage.retention_class import Basis, RetentionClass

CALLER, AGENT = 0, 1
TERMS = ConsentTerms(window_seconds=10)
MEDIA_START = 1_764_403_200.0  # wall time of the recording's first frame
TICK = 0.5  # the media pump's
EVENTS_DELAY = TICK + 0.3  # MediaSession.press_delay of telephone events (defaults: 0.3 s reorder window)
INBAND_DELAY = EVENTS_DELAY + 0.3 + 1.0  # and with in-band detection on (a tone, a mix a second)


def press(at: float, digit: str, stream: int = CALLER, *, inband: bool = False) -> DtmfPress:
    source = DtmfSource.INBAND if inband else DtmfSource.RFC4733
    return DtmfPress(
        stream=stream, at=at, duration=0.1, digit=digit, volume=None if inband else 10, source=source
    )


def consent(streams: frozenset[int] = frozenset({CALLER})) -> LiveConsent:
    return LiveConsent(TERMS, party_streams=streams, number="+3612345678")


def test_heard_until_is_the_recording_time_less_the_media_paths_delay() -> None:
    assert heard_until(MEDIA_START + 12.0, MEDIA_START, EVENTS_DELAY) == pytest.approx(11.2)
    assert heard_until(MEDIA_START + 12.0, None, EVENTS_DELAY) is None  # no media yet: nothing was asked


def test_a_refusal_is_decided_at_the_check_that_brings_it() -> None:
    live = consent()
    assert not live.feed([], heard_until(MEDIA_START + 2.0, MEDIA_START, EVENTS_DELAY))
    assert live.feed([press(3.02, "2")], heard_until(MEDIA_START + 4.0, MEDIA_START, EVENTS_DELAY))
    assert live.final == ConsentRefused(digit="2", at=3.02)
    assert not live.kept and not live.listening
    assert live.take_decided() == [ConsentRefused(digit="2", at=3.02)]
    assert live.take_decided() == []  # applied once
    assert not live.feed([press(4.0, "1")], 20.0)  # closed: nothing more comes out


def test_a_yes_is_kept_and_the_stop_key_withdraws_it_later() -> None:
    live = consent()
    assert live.feed([press(2.4, "1")], 3.0)
    assert live.take_decided() == [ConsentGiven(digit="1", at=2.4)]
    assert live.kept and live.listening  # the stop key still matters
    assert not live.feed([], 60.0)  # the window no longer matters
    assert live.feed([press(61.3, "9"), press(62.0, "9")], 62.5)
    assert live.take_decided() == [ConsentStopped(digit="9", at=61.3)]
    assert live.final == ConsentStopped(digit="9", at=61.3) and not live.kept and not live.listening


def test_silence_is_no_answer_once_every_press_up_to_the_windows_end_was_heard() -> None:
    live = consent()
    # 10.9 s into the call with in-band detection: presses up to 8.8 s are known, the window is still open.
    assert not live.feed([], heard_until(MEDIA_START + 10.9, MEDIA_START, INBAND_DELAY))
    assert live.gate.state is ConsentState.PENDING
    assert live.feed([], heard_until(MEDIA_START + 12.2, MEDIA_START, INBAND_DELAY))
    assert live.take_decided() == [ConsentNoAnswer(at=10.0)]


def test_an_in_band_yes_just_before_the_end_counts_though_it_is_found_after_it() -> None:
    """The tone of "1" starts at 9.8 s; the detector finds it in the mix after it ended, reported at 11.9 s."""
    live = consent()
    assert not live.feed([], heard_until(MEDIA_START + 11.0, MEDIA_START, INBAND_DELAY))
    assert live.feed(
        [press(9.8, "1", inband=True)], heard_until(MEDIA_START + 11.9, MEDIA_START, INBAND_DELAY)
    )
    assert live.take_decided() == [ConsentGiven(digit="1", at=9.8)]


def test_presses_of_one_check_are_judged_in_time_order_and_only_the_partys_count() -> None:
    live = consent()
    assert live.feed([press(5.0, "9"), press(2.0, "1", AGENT), press(3.5, "1")], 5.5)
    assert live.take_decided() == [ConsentGiven(digit="1", at=3.5), ConsentStopped(digit="9", at=5.0)]
    masked = consent()  # a press whose digit was masked decides nothing
    assert not masked.feed([DtmfPress(stream=CALLER, at=1.0, duration=0.1, digit=None, volume=10)], 2.0)


def test_the_end_of_the_call_closes_a_question_still_open() -> None:
    live = consent()
    assert not live.feed([], 3.0)
    assert live.finish([], 6.4)  # hung up after 6.4 s without an answer
    assert live.take_decided() == [ConsentNoAnswer(at=10.0)]
    late = consent()
    assert late.finish([press(7.7, "1")], 8.0)  # pressed in the last moments, reported at the end
    assert late.take_decided() == [ConsentGiven(digit="1", at=7.7)]
    assert late.kept
    decided = consent()
    decided.feed([press(1.0, "1")], 1.5)
    assert decided.finish([], 300.0)  # the yes was not applied yet (the call ended first): the end takes it
    assert decided.take_decided() == [ConsentGiven(digit="1", at=1.0)]
    assert not decided.finish([], 300.0) and decided.kept  # nothing new: consent stands


def test_a_re_offer_moves_the_party_to_another_stream() -> None:
    live = consent()
    live.set_streams(frozenset({2}))  # the caller's m-line was replaced
    assert not live.feed([press(1.0, "2", CALLER)], 1.5)
    assert live.feed([press(2.0, "2", 2)], 2.5)


def test_a_call_that_receives_no_stream_cannot_answer() -> None:
    live = LiveConsent(TERMS, party_streams=frozenset(), number=None)
    assert live.gate.party_streams == {NO_STREAM}
    assert live.finish([], 0.0)
    assert live.take_decided() == [ConsentNoAnswer(at=10.0)]


def test_the_live_question_does_no_io_and_reads_no_clock() -> None:
    import ast

    source = Path(__file__).resolve().parents[3] / "siprec_server" / "consent_live.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(("." * node.level) + node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert imported <= {"__future__", "collections.abc", "media.presses", "storage.consent_terms", ".consent"}


# Which question a call asks, and what each final answer means for the recording --------------------------------

LAYOUT = ChannelLayout(
    channels=2, stream_channels=[0, 1], participants=["sip:+3612345678@x", "sip:201@pbx"], source="test"
)


def decision(basis: Basis, direction: CallDirection | None = CallDirection.INBOUND) -> Decision:
    return Decision(
        record=True,
        reason=DecisionReason.RECORDED,
        attributed_by=AttributedBy.NUMBER,
        tenant_id=uuid4(),
        tenant_number="+3612340000",
        direction=direction,
        policy_id=7,
        policy_version=2,
        basis=basis,
        purpose="quality assurance",
        retention=RetentionClass(
            id=4, code="consent", name="Consent", days=365, basis=basis, source="Art. 7"
        ),
        consent=TERMS if basis is Basis.CONSENT else None,
        numbers=("+3612340000", "+3612345678"),
    )


def test_a_consent_call_asks_the_party_outside_the_tenant_on_their_own_streams() -> None:
    specs = {0: 3, 1: 4}  # m-line -> media stream (streams 0-2 left after re-offers)
    inbound = live_consent(decision(Basis.CONSENT), LAYOUT, specs)
    assert inbound is not None
    assert inbound.gate.party_streams == {3} and inbound.number == "+3612345678"
    outbound = live_consent(decision(Basis.CONSENT, CallDirection.OUTBOUND), LAYOUT, specs)
    assert outbound is not None and outbound.gate.party_streams == {4}
    unknown = live_consent(decision(Basis.CONSENT, None), LAYOUT, specs)
    assert unknown is not None and unknown.gate.party_streams == {3, 4}  # whoever answers
    assert live_consent(decision(Basis.LEGITIMATE_INTEREST), LAYOUT, specs) is None
    assert live_consent(None, LAYOUT, specs) is None


def test_only_a_standing_yes_keeps_the_recording() -> None:
    assert consent_disposal(None) is None  # not answered yet
    assert consent_disposal(ConsentGiven(digit="1", at=2.0)) is None
    assert consent_disposal(ConsentRefused(digit="2", at=2.0)) is DisposalReason.CONSENT_REFUSED
    assert consent_disposal(ConsentNoAnswer(at=10.0)) is DisposalReason.CONSENT_REFUSED
    assert consent_disposal(ConsentStopped(digit="9", at=40.0)) is DisposalReason.CONSENT_WITHDRAWN
