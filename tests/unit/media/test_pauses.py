"""Pause state: whole-recording and per-stream pauses, and the intervals kept for the catalogue."""

from __future__ import annotations

import pytest

from media.pauses import PauseState
from tests.unit.media.helpers import T0


def two_streams() -> PauseState:
    state = PauseState()
    state.add_stream(0, T0)
    state.add_stream(1, T0)
    return state


def test_whole_recording_pause_flips_every_stream_and_records_the_interval() -> None:
    state = two_streams()
    assert state.set_all(True, T0 + 30) == [(0, True), (1, True)]
    assert state.paused
    assert state.set_all(True, T0 + 31) == []  # already paused: the interval keeps its start
    assert state.set_all(False, T0 + 60) == [(0, False), (1, False)]
    assert not state.paused
    assert state.intervals == [(T0 + 30, T0 + 60)]


def test_one_stream_paused_is_not_a_pause_of_the_recording() -> None:
    state = two_streams()
    assert state.set_stream(1, True, T0 + 5) == [(1, True)]
    assert not state.paused and state.intervals == []
    assert state.set_all(True, T0 + 6) == [(0, True)]  # stream 1 was paused already
    assert state.set_all(False, T0 + 8) == [(0, False)]  # stream 1 stays paused on its own
    assert state.intervals == [(T0 + 6, T0 + 8)]


def test_every_stream_paused_on_its_own_pauses_the_recording() -> None:
    state = two_streams()
    state.set_stream(0, True, T0 + 10)
    state.set_stream(1, True, T0 + 12)
    assert state.paused
    state.set_stream(0, False, T0 + 20)
    assert state.intervals == [(T0 + 12, T0 + 20)]


def test_removing_the_last_unpaused_stream_pauses_the_recording_and_a_new_stream_joins_paused() -> None:
    state = two_streams()
    state.set_stream(1, True, T0 + 3)
    assert state.remove_stream(0, T0 + 4) == []
    assert state.intervals == [(T0 + 4, None)]
    state.remove_stream(1, T0 + 5)  # nothing left to receive: nothing is paused
    assert state.intervals == [(T0 + 4, T0 + 5)]
    state.set_all(True, T0 + 6)
    assert state.add_stream(2, T0 + 7) == [(2, True)]
    with pytest.raises(ValueError, match="no stream 0"):
        state.set_stream(0, True, T0 + 8)


def test_offsets_are_cut_to_the_audio_and_rounded() -> None:
    state = two_streams()
    state.set_all(True, T0 + 1)  # before the first frame at T0 + 2
    state.set_all(False, T0 + 3.0004)
    state.set_all(True, T0 + 0.5 + 1.5)  # wall times as a clock gives them
    state.set_all(False, T0 + 2.5)
    state.set_all(True, T0 + 9)
    assert state.offsets(T0 + 2, None) == [(0.0, 1.0), (0.0, 0.5), (7.0, None)]
    assert state.offsets(T0 + 2, 8.0) == [(0.0, 1.0), (0.0, 0.5), (7.0, 8.0)]
    assert state.offsets(T0 + 2, 6.0) == [(0.0, 1.0), (0.0, 0.5)]  # the last began after the audio ended
    assert state.offsets(T0 + 5, None) == [(4.0, None)]  # the first two ended before the audio started
    assert state.last_end(T0 + 12) == T0 + 12
    state.set_all(False, T0 + 10)
    assert state.last_end(None) == T0 + 10
    assert PauseState().last_end(T0) is None
