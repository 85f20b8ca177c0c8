"""Consent judged at hang-up from the asked party's RFC 4733 presses, and the decision's catalogue fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from media import RecordingResult
from media.recorder import DtmfPress
from siprec_server.consent import ConsentGiven, ConsentNoAnswer, ConsentRefused, ConsentStopped
from siprec_server.lifecycle import expires_at, judge_consent, recording_fields
from siprec_server.siprec import ChannelLayout
from storage.attribution import AttributedBy
from storage.consent_terms import ConsentTerms
from storage.decision import Decision, DecisionReason
from storage.policy_rules import CallDirection
from storage.retention_class import Basis, RetentionClass

CONSENT_CLASS = RetentionClass(
    id=4, code="consent", name="Consent", days=365, basis=Basis.CONSENT, source="Art. 7"
)
LAYOUT = ChannelLayout(
    channels=2, stream_channels=[0, 1], participants=["sip:+3612345678@x", "sip:201@pbx"], source="test"
)
SPECS = {0: 0, 1: 1}  # m-line -> media stream: caller on stream 0 (left), callee on stream 1 (right)


def consent_decision(direction: CallDirection | None = CallDirection.INBOUND) -> Decision:
    return Decision(
        record=True,
        reason=DecisionReason.RECORDED,
        attributed_by=AttributedBy.NUMBER,
        tenant_id=uuid4(),
        tenant_number="+3612340000",
        direction=direction,
        policy_id=7,
        policy_version=2,
        basis=Basis.CONSENT,
        purpose="quality assurance",
        retention=CONSENT_CLASS,
        consent=ConsentTerms(),
        numbers=("+3612345678", "+3612340000"),
    )


def result(*presses: tuple[int, float, str], duration: float = 40.0) -> RecordingResult:
    return RecordingResult(
        media_start=1_764_403_200.0,
        duration=duration,
        frames=int(duration * 8000),
        streams=[],
        dtmf=[DtmfPress(stream=s, at=at, duration=0.12, digit=d, volume=10) for s, at, d in presses],
    )


def test_the_caller_agreeing_within_the_window_keeps_the_call() -> None:
    judged = judge_consent(consent_decision(), result((0, 3.2, "1")), LAYOUT, SPECS)
    assert judged.outcome == ConsentGiven(digit="1", at=3.2)
    assert judged.number == "+3612345678"  # the party asked, not the tenant's own number


def test_refusal_silence_and_the_callee_pressing_instead() -> None:
    assert judge_consent(consent_decision(), result((0, 4.0, "2")), LAYOUT, SPECS).outcome == ConsentRefused(
        digit="2", at=4.0
    )
    assert isinstance(judge_consent(consent_decision(), result(), LAYOUT, SPECS).outcome, ConsentNoAnswer)
    # On an inbound call the tenant's agent (the callee) cannot consent for the caller.
    assert isinstance(
        judge_consent(consent_decision(), result((1, 2.0, "1")), LAYOUT, SPECS).outcome, ConsentNoAnswer
    )
    # Outbound: the callee is the one asked.
    outbound = judge_consent(consent_decision(CallDirection.OUTBOUND), result((1, 2.0, "1")), LAYOUT, SPECS)
    assert isinstance(outbound.outcome, ConsentGiven)


def test_a_late_answer_is_no_answer_and_the_stop_key_withdraws() -> None:
    assert isinstance(
        judge_consent(consent_decision(), result((0, 10.4, "1")), LAYOUT, SPECS).outcome, ConsentNoAnswer
    )
    stopped = judge_consent(consent_decision(), result((0, 3.0, "1"), (0, 25.0, "9")), LAYOUT, SPECS)
    assert stopped.outcome == ConsentStopped(digit="9", at=25.0)
    short = judge_consent(consent_decision(), result(duration=4.0), LAYOUT, SPECS)  # hung up before answering
    assert isinstance(short.outcome, ConsentNoAnswer)


def test_catalogue_fields_and_expiry_follow_the_decision() -> None:
    decision = consent_decision()
    fields = recording_fields(decision)
    assert fields["consent_state"] == "pending" and fields["basis"] == "consent"
    assert fields["retention_class_id"] == 4 and fields["numbers"] == ["+3612345678", "+3612340000"]
    started = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    assert expires_at(decision, started, started + timedelta(minutes=3)) == started + timedelta(days=365)
    assert recording_fields(None) == {} and expires_at(None, started, started) is None
