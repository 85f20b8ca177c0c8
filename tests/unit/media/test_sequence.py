from __future__ import annotations

from media.sequence import SequenceTracker


def fed(*seqs: int, first: int | None = None) -> SequenceTracker:
    tracker = SequenceTracker()
    tracker.start(seqs[0] if first is None else first)
    for seq in seqs:
        tracker.accept(seq)
    return tracker


def test_in_order_with_a_gap() -> None:
    tracker = fed(100, 101, 102, 105, 106)
    assert (tracker.received, tracker.ext_max, tracker.lost) == (5, 106, 2)


def test_wrap_around_extends_the_sequence() -> None:
    tracker = fed(65534, 65535, 0, 1, 3)
    assert tracker.ext_max == 65536 + 3
    assert tracker.lost == 1


def test_duplicates_are_refused_and_not_received() -> None:
    tracker = fed(7, 8, 9)
    assert not tracker.accept(8)
    assert not tracker.accept(9)
    assert tracker.accept(10)
    assert (tracker.received, tracker.lost) == (4, 0)


def test_reordered_packet_fills_the_gap() -> None:
    tracker = fed(10, 11, 13, 14)
    assert tracker.lost == 1
    assert tracker.accept(12)
    assert tracker.lost == 0


def test_packet_older_than_the_first_moves_the_base() -> None:
    tracker = fed(50, 51, 52)
    assert tracker.accept(49)
    assert (tracker.base, tracker.lost) == (49, 0)


def test_restart_needs_two_sequential_packets() -> None:
    tracker = fed(1000, 1001, 1003)  # one lost before the restart
    assert tracker.accept(30000)  # a lone jump: waits for proof, not counted
    assert tracker.received == 3
    assert tracker.accept(30001)  # confirmed: a new sequence begins here
    assert tracker.accept(30002)
    assert tracker.lost == 1
    assert tracker.base == 30001


def test_lone_stray_number_changes_nothing() -> None:
    tracker = fed(1000, 1001, 1002)
    assert tracker.accept(40000)
    assert tracker.accept(1003)
    assert (tracker.received, tracker.lost, tracker.ext_max) == (4, 0, 1003)


def test_new_source_keeps_the_loss_of_the_previous_one() -> None:
    tracker = fed(1, 2, 4)
    tracker.start(9000)
    tracker.accept(9000)
    tracker.accept(9002)
    assert tracker.lost == 2


def test_in_order_packets_leave_no_state_behind() -> None:
    tracker = fed(*range(0, 3000))
    assert (tracker.holes, tracker.received, tracker.expected) == (set(), 3000, 3000)
    assert not tracker.accept(2990)


def test_many_losses_keep_holes_bounded_and_recent_ones_fillable() -> None:
    tracker = fed(*range(0, 6000, 2))  # every other packet lost
    assert len(tracker.holes) <= 1024
    assert tracker.accept(5997)  # a recent hole
    assert not tracker.accept(5996)
    assert (tracker.received, tracker.lost, tracker.expected) == (3001, 2998, 5999)


def test_packets_before_the_first_leave_holes_between_them() -> None:
    tracker = fed(50, 51)
    assert tracker.accept(47)  # 48 and 49 are now missing
    assert tracker.lost == 2
    assert tracker.accept(48)
    assert not tracker.accept(48)
    assert not tracker.accept(47)
    assert (tracker.base, tracker.lost, tracker.received) == (47, 1, 4)


def test_expected_and_reordered_distance() -> None:
    tracker = fed(65534, 65535, 1)
    assert (tracker.expected, tracker.lost) == (4, 1)
    assert tracker.behind(0) == 1
    assert tracker.behind(65535) == 2
    assert tracker.behind(2) == 0  # ahead
    assert tracker.behind(1) == 0  # the highest itself: a duplicate, not reordered
    tracker.start(10)
    tracker.accept(10)
    assert (tracker.expected, tracker.lost) == (5, 1)  # summed over both sequences
