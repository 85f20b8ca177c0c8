from __future__ import annotations

import numpy as np
import pytest

from media.samplebuffer import SampleBuffer


def ramp(start: int, count: int) -> np.ndarray:
    return np.arange(start, start + count, dtype=np.int16)


def test_runs_land_at_their_positions_with_silence_between() -> None:
    buffer = SampleBuffer(100)
    samples = ramp(1, 30)
    buffer.write([(1000, 0, 10), (1020, 10, 30)], samples, 1000, 1040)
    assert (buffer.start, buffer.end) == (1000, 1040)
    out = buffer.take(1045)
    assert np.array_equal(out[:10], samples[:10])
    assert not out[10:20].any()
    assert np.array_equal(out[20:40], samples[10:])
    assert not out[40:].any()
    assert buffer.emitted == 1045


def test_writes_before_the_first_write_grow_the_front() -> None:
    buffer = SampleBuffer(100)
    buffer.write([(500, 0, 10)], ramp(1, 10), 500, 510)
    buffer.write([(490, 0, 10)], ramp(101, 10), 490, 500)
    assert buffer.start == 490
    assert np.array_equal(buffer.take(510), np.concatenate([ramp(101, 10), ramp(1, 10)]))


def test_long_stream_through_a_small_buffer_is_kept_intact() -> None:
    buffer = SampleBuffer(64)
    signal = (np.arange(100_000) % 30000).astype(np.int16)
    out = []
    for start in range(0, len(signal), 48):
        chunk = signal[start : start + 48]
        buffer.write([(start, 0, len(chunk))], chunk, start, start + len(chunk))
        if start >= 200:
            out.append(buffer.take(start - 150))
    out.append(buffer.take(len(signal)))
    assert np.array_equal(np.concatenate(out), signal)


def test_large_gap_reads_as_silence() -> None:
    buffer = SampleBuffer(100)
    buffer.seek(0)
    buffer.write([(50_000, 0, 5)], ramp(1, 5), 50_000, 50_005)
    out = buffer.take(50_005)
    assert len(out) == 50_005
    assert not out[:50_000].any()
    assert np.array_equal(out[50_000:], ramp(1, 5))


def test_seek_only_moves_forward_and_can_start_before_the_data() -> None:
    buffer = SampleBuffer(100)
    buffer.write([(300, 0, 10)], ramp(1, 10), 300, 310)
    buffer.seek(250)
    out = buffer.take(310)
    assert not out[:50].any()
    assert np.array_equal(out[50:], ramp(1, 10))
    with pytest.raises(ValueError, match="forward"):
        buffer.seek(200)


def test_take_before_anything_was_written() -> None:
    buffer = SampleBuffer(100)
    assert len(buffer.take(1000)) == 0
    buffer.seek(0)
    assert not buffer.take(80).any()
