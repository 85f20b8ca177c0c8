"""Judging one call: what the generator sent against the catalogue row and what the audio file shows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from uuid import UUID

import pytest

from load_tests.loadgen import AudioFacts, CallResult, ChannelFacts, LegResult, Tolerances, judge
from storage import Recording, RecordingStatus, StreamRecord

T0 = 5000.0  # monotonic seconds on the generator's host
HOLD = 8.0


def _leg(label: str, frequency: int, *, delay: float = 0.0, ssrcs: int = 1, loss_run: int = 0) -> LegResult:
    return LegResult(
        label=label,
        frequency=frequency,
        source="127.0.0.1:40122",
        destination="127.0.0.1:20004",
        ssrcs=tuple(range(1000, 1000 + ssrcs)),
        packets=400,
        sent=400,
        dropped=loss_run,
        duplicated=0,
        reordered=0,
        longest_loss_run=loss_run,
        send_errors=0,
        rtcp_sent=2,
        first_sent_at=T0 + 0.02 + delay,
        last_sent_at=T0 + 0.02 + delay + HOLD - 0.02,
        delay_ms=delay * 1000,
        jitter_ms=30.0,
    )


def _call(**legs: LegResult) -> CallResult:
    return CallResult(
        index=12,
        call_id="cap1-s1-12@loadgen.hangtar.invalid",
        outcome="completed",
        status=200,
        reason="OK",
        caller_hz=540,
        callee_hz=2040,
        invite_at=T0 - 0.011,
        answered_at=T0,
        bye_at=T0 + HOLD + 0.25,
        ended_at=T0 + HOLD + 0.26,
        legs=(legs.get("caller") or _leg("1", 540), legs.get("callee") or _leg("2", 2040, delay=0.2)),
    )


def _recording(
    status: RecordingStatus = RecordingStatus.COMPLETE, path: str | None = "/rec/x.flac"
) -> Recording:
    return Recording(
        id=UUID("8d1f5a3e-2c4b-4e8f-9a7d-6b5c4d3e2f10"),
        reference="HT-7K3M-Q9RX",
        call_id="cap1-s1-12@loadgen.hangtar.invalid",
        status=status,
        started_at=datetime(2026, 11, 28, 14, 3, 7, tzinfo=UTC),
        file_path=path,
        streams=(
            StreamRecord(
                label="1", codec="PCMU", payload_type=0, channel=0, packets=400, lost=0, duplicated=4
            ),
            StreamRecord(label="2", codec="PCMU", payload_type=0, channel=1, packets=402, lost=3, late=1),
        ),
    )


def _channel(peak: float | None, first: float, last: float, gap: float = 0.0) -> ChannelFacts:
    return ChannelFacts(
        peak_hz=peak, first_sound=first, last_sound=last, longest_gap=gap, gap_at=1.5 if gap else None
    )


def _audio(
    left: ChannelFacts | None = None, right: ChannelFacts | None = None, frames: int = 65600
) -> AudioFacts:
    return AudioFacts(
        sample_rate=8000,
        frames=frames,
        channels=(left or _channel(540.1, 0.0, 8.0), right or _channel(2039.9, 0.201, 8.2)),
    )


def test_a_faithful_recording_is_verified_with_its_counts() -> None:
    verdict = judge(_call(), _recording(), _audio(), Tolerances())
    assert verdict.verified, verdict.problems
    assert verdict.reference == "HT-7K3M-Q9RX" and verdict.status == "complete"
    assert verdict.duration == pytest.approx(8.2)
    assert verdict.expected_duration == pytest.approx(8.2)
    assert (verdict.received, verdict.lost, verdict.late, verdict.duplicated) == (802, 3, 1, 4)
    assert verdict.to_json()["peaks_hz"] == [540.1, 2039.9]


@pytest.mark.parametrize(
    ("audio", "problem"),
    [
        (_audio(left=_channel(2040.0, 0.0, 8.0)), "left channel peaks at 2040.0 Hz, expected 540 Hz"),
        (_audio(right=_channel(None, 0.0, 0.0)), "right channel is silent, expected 2040 Hz"),
        (_audio(frames=60000), "duration 7.500 s, expected 7.750–8.450 s"),
        (_audio(frames=69600), "duration 8.700 s, expected 7.750–8.450 s"),
        (
            _audio(left=_channel(540.0, 0.0, 6.5)),
            "left channel sounds for 6.500 s, its leg sent 8.000 s (8.000 s of timestamps; ± 105 ms)",
        ),
        (_audio(right=_channel(2040.0, 0.2, 8.0)), "right channel sounds for 7.800 s, its leg sent 8.000 s"),
        (_audio(right=_channel(2040.0, 0.201, 8.2, gap=0.041)), "right channel silent for 41 ms at 1.50 s"),
        (_audio(right=_channel(2040.0, 0.7, 8.2)), "out of step"),
        (
            AudioFacts(sample_rate=8000, frames=65600, channels=(_channel(540, 0, 8.2),)),
            "1 channel(s), expected 2",
        ),
    ],
)
def test_each_defect_is_named(audio: AudioFacts, problem: str) -> None:
    verdict = judge(_call(), _recording(), audio, Tolerances())
    assert not verdict.verified
    assert any(problem in p for p in verdict.problems), verdict.problems


def test_a_leg_delay_aligned_away_by_sender_reports_may_shorten_the_file() -> None:
    # The callee leg sent 0.2 s late; aligned back onto the caller's clock the file spans 8.0 s, not 8.2 s.
    aligned = _audio(left=_channel(540.0, 0.0, 7.9), right=_channel(2040.0, 0.0, 7.9), frames=63200)
    assert judge(_call(), _recording(), aligned, Tolerances()).verified
    cut = _audio(left=_channel(540.0, 0.0, 7.7), right=_channel(2040.0, 0.0, 7.7), frames=61600)
    assert not judge(_call(), _recording(), cut, Tolerances()).verified


def test_a_generator_that_fell_behind_its_clock_stretched_the_sending_not_the_audio() -> None:
    late = dataclasses.replace(_leg("1", 540), last_sent_at=T0 + 0.02 + HOLD - 0.02 + 0.2)
    assert judge(_call(caller=late), _recording(), _audio(), Tolerances()).verified
    short = _audio(left=_channel(540.0, 0.0, 7.7))  # but audio cut short of both is still named
    assert not judge(_call(caller=late), _recording(), short, Tolerances()).verified


def test_sound_may_start_and_end_off_by_the_anchoring_error_only() -> None:
    assert judge(_call(), _recording(), _audio(right=_channel(2040.0, 0.15, 8.08)), Tolerances()).verified
    changed = _call(callee=_leg("2", 2040, delay=0.2, ssrcs=2))
    assert judge(changed, _recording(), _audio(right=_channel(2040.0, 0.2, 8.08)), Tolerances()).verified
    assert not judge(_call(), _recording(), _audio(right=_channel(2040.0, 0.2, 8.08)), Tolerances()).verified


def test_silence_is_allowed_as_long_as_the_drops_explain_it() -> None:
    call = _call(callee=_leg("2", 2040, delay=0.2, loss_run=3))
    explained = _audio(right=_channel(2040.0, 0.201, 8.2, gap=0.064))
    assert judge(call, _recording(), explained, Tolerances()).verified
    unexplained = _audio(right=_channel(2040.0, 0.201, 8.2, gap=0.070))
    assert not judge(call, _recording(), unexplained, Tolerances()).verified


def test_an_ssrc_change_may_leave_up_to_the_jitter_and_a_packet_at_the_seam() -> None:
    call = _call(caller=_leg("1", 540, ssrcs=2))
    seam = _audio(left=_channel(540.0, 0.0, 8.0, gap=0.049))
    assert judge(call, _recording(), seam, Tolerances()).verified
    assert not judge(
        call, _recording(), _audio(left=_channel(540.0, 0.0, 8.0, gap=0.060)), Tolerances()
    ).verified


def test_catalogue_problems_fail_the_call() -> None:
    one_way = judge(_call(), _recording(RecordingStatus.ONE_WAY), _audio(), Tolerances())
    assert one_way.problems == ("status one_way, expected complete",)
    no_file = judge(_call(), _recording(path=None), None, Tolerances())
    assert no_file.problems == ("no audio file in the catalogue (status complete)",)
    missing = judge(_call(), None, None, Tolerances())
    assert missing.problems == ("no finished recording with this Call-ID in the catalogue",)


def test_an_unanswered_call_is_not_verified_and_says_why() -> None:
    rejected = dataclasses.replace(
        _call(), outcome="rejected", status=503, reason="At Capacity", answered_at=None, legs=()
    )
    verdict = judge(rejected, None, None, Tolerances())
    assert not verdict.verified
    assert verdict.problems == ("not answered: rejected 503 At Capacity",)
