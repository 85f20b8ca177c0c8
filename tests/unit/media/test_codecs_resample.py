"""8 → 16 kHz and 48 → 16 kHz resampling: tones land where they should, images and aliases do not."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from media.resample import DECIMATE_DELAY, UPSAMPLE_DELAY, Decimator3, Upsampler2x, upsample_2x

from .codec_audio import band_power_db, peaks, sine


def ideal(freq: float, rate: int, count: int, delay: int = 0, amplitude: float = 8000.0) -> np.ndarray:
    """The same sine as :func:`sine` sampled at ``rate``, ``delay`` samples late."""
    t = (np.arange(count) - delay) / rate
    return amplitude * np.sin(2 * np.pi * freq * t + 0.3)


@pytest.mark.parametrize("freq", [300, 1000, 3000])
def test_upsample_2x_matches_the_tone_sampled_at_16_khz(freq: float) -> None:
    x = sine(freq, 8000, 0.5)
    y = upsample_2x(x)
    assert y.dtype == np.int16 and len(y) == 2 * len(x)
    inner = slice(200, len(y) - 200)  # away from the block's edges
    error = y[inner] - ideal(freq, 16000, len(y))[inner]
    assert np.max(np.abs(error)) < 8000 * 0.01  # within 1 % of full amplitude


def test_upsample_2x_removes_the_image_above_4_khz() -> None:
    y = upsample_2x(sine(3000, 8000, 1.0))
    assert peaks(y, 16000) == pytest.approx([3000], abs=2)
    assert band_power_db(y[200:-200], 16000, 4600, 8000) < -60  # the 5 kHz image


def test_upsample_2x_edge_cases() -> None:
    assert len(upsample_2x(np.zeros(0, dtype=np.int16))) == 0
    assert not upsample_2x(np.zeros(160, dtype=np.int16)).any()
    level = upsample_2x(np.full(400, 1000, dtype=np.int16))
    assert np.all(np.abs(level[100:-100] - 1000) <= 2)  # unity gain
    step = np.repeat(np.array([-32768, 32767], dtype=np.int16), 200)
    y = upsample_2x(step)  # the filter rings past full scale at the step: it must saturate, not wrap
    assert y.max() == 32767 and y.min() == -32768
    assert np.all(y[420:780] > 30000) and np.all(y[20:380] < -30000)


def test_upsampler_block_by_block_equals_one_block_delayed() -> None:
    x = sine(1000, 8000, 1.1)
    whole = Upsampler2x().process(x)  # in several matrix products inside
    streaming = Upsampler2x()
    cuts = [0, 1, 161, 500, 1300, 2399, 7000, len(x)]
    parts = [streaming.process(x[a:b]) for a, b in itertools.pairwise(cuts)]
    assert np.array_equal(np.concatenate(parts), whole)
    assert np.array_equal(
        whole[UPSAMPLE_DELAY : UPSAMPLE_DELAY + 2 * len(x) - 64], upsample_2x(x)[: 2 * len(x) - 64]
    )


@pytest.mark.parametrize("freq", [440, 1000, 6000])
def test_decimator_keeps_the_band_below_8_khz(freq: float) -> None:
    x = sine(freq, 48000, 0.5)
    y = Decimator3().process(x)
    assert y.dtype == np.int16 and len(y) == len(x) // 3
    want = ideal(freq, 16000, len(y), delay=DECIMATE_DELAY)
    assert np.max(np.abs(y[200:] - want[200:])) < 8000 * 0.02


@pytest.mark.parametrize("freq", [10000, 12000, 20000])
def test_decimator_stops_what_would_alias(freq: float) -> None:
    y = Decimator3().process(sine(freq, 48000, 0.5))
    assert np.sqrt(np.mean(y[200:].astype(float) ** 2)) < 8000 * 10 ** (-60 / 20)


def test_decimator_block_by_block_and_misuse() -> None:
    x = sine(1000, 48000, 0.5)
    whole = Decimator3().process(x)
    streaming = Decimator3()
    parts = [streaming.process(x[i : i + 960]) for i in range(0, len(x), 960)]
    assert np.array_equal(np.concatenate(parts), whole)
    with pytest.raises(ValueError, match="whole number"):
        Decimator3().process(np.zeros(100, dtype=np.int16))
    assert len(Decimator3().process([])) == 0
