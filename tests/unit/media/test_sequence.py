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


def test_pruning_keeps_duplicate_detection_for_recent_numbers() -> None:
    tracker = fed(*range(0, 3000))
    tracker.prune()
    assert len(tracker.seen) <= 1024
    assert not tracker.accept(2990)
