"""Retry backoff for deliveries: exponential, capped, with jitter in the upper half of each step."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.delivery_backoff import DEFAULT_BASE, DEFAULT_CAP, retry_delay

jitters = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
bases = st.integers(min_value=1, max_value=3600).map(lambda s: timedelta(seconds=s))


def step(failures: int, base: timedelta = DEFAULT_BASE, cap: timedelta = DEFAULT_CAP) -> timedelta:
    """The plain exponential step, doubled in whole numbers (no overflow: it stops once past the cap)."""
    full = base
    for _ in range(failures - 1):
        if full >= cap:
            break
        full *= 2
    return min(cap, full)


@given(failures=st.integers(min_value=1, max_value=10_000), jitter=jitters, base=bases)
def test_a_delay_lies_in_the_upper_half_of_its_capped_step(
    failures: int, jitter: float, base: timedelta
) -> None:
    cap = base * 360
    delay = retry_delay(failures, jitter, base=base, cap=cap)
    full = step(failures, base, cap)
    tolerance = timedelta(microseconds=1)
    assert full / 2 - tolerance <= delay <= full + tolerance
    assert base / 2 - tolerance <= delay <= cap + tolerance


@given(failures=st.integers(min_value=1, max_value=200), jitter=jitters)
def test_the_same_draw_never_waits_less_after_more_failures(failures: int, jitter: float) -> None:
    assert retry_delay(failures + 1, jitter) >= retry_delay(failures, jitter)


@given(jitter=jitters, failures=st.integers(min_value=1, max_value=30))
def test_draws_spread_retries_over_half_a_step(jitter: float, failures: int) -> None:
    low, high = retry_delay(failures, 0.0), retry_delay(failures, math.nextafter(1.0, 0.0))
    assert low <= retry_delay(failures, jitter) <= high
    assert high - low >= step(failures) / 2 - timedelta(microseconds=1)


def test_the_defaults_double_from_half_a_minute_up_to_six_hours() -> None:
    assert retry_delay(1, 0.0) == timedelta(seconds=15)
    assert retry_delay(1, 0.5) == timedelta(seconds=22.5)
    assert retry_delay(3, 0.0) == timedelta(minutes=1)
    assert [retry_delay(n, 0.0).total_seconds() for n in (4, 5, 6)] == [120.0, 240.0, 480.0]
    assert retry_delay(11, 0.0) == timedelta(hours=3)  # 30 s * 2**10 is past the cap
    assert retry_delay(1_000_000, 0.0) == timedelta(hours=3)


@pytest.mark.parametrize(
    ("failures", "jitter", "message"),
    [(0, 0.5, "at least one"), (1, 1.0, r"\[0, 1\)"), (1, -0.1, r"\[0, 1\)")],
)
def test_nonsense_is_refused(failures: int, jitter: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        retry_delay(failures, jitter)
    with pytest.raises(ValueError, match="positive"):
        retry_delay(1, 0.0, base=timedelta(0))
