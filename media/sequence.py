"""RTP sequence number accounting for one source: extended numbers, duplicates, loss (RFC 3550 A.1, A.3)."""

from __future__ import annotations

__all__ = ["MAX_DROPOUT", "MAX_MISORDER", "SequenceTracker"]

MAX_DROPOUT = 3000  # RFC 3550 A.1: larger forward jumps are a restart, once the next packet confirms it
MAX_MISORDER = 100  # RFC 3550 A.1: up to this far behind the highest number counts as reordered
_SEQ_MOD = 1 << 16
_HOLES_KEEP = 512  # missing numbers remembered behind the highest (far more than MAX_MISORDER)


class SequenceTracker:
    """Tracks the packets of the current source; :meth:`start` begins a new source or sequence.

    ``ext_max`` is the highest extended sequence number, ``base`` the lowest, ``received`` the distinct
    packets counted (duplicates are not, so loss never goes negative). Instead of every number seen, the
    tracker remembers the ``holes``: numbers between ``base`` and ``ext_max`` not received yet. A packet
    behind ``ext_max`` is fresh (reordered) if it fills a hole or comes before ``base``, else a duplicate; the
    common packet, the next number, touches nothing but ``ext_max`` and ``received``, which the timeline's
    hot loop updates inline.
    """

    __slots__ = ("bad_seq", "base", "expected_prior", "ext_max", "holes", "lost_prior", "received")

    def __init__(self) -> None:
        self.ext_max = -1
        self.base = 0
        self.received = 0
        self.bad_seq = -1
        self.lost_prior = 0
        self.expected_prior = 0
        self.holes: set[int] = set()

    @property
    def lost(self) -> int:
        """Expected − received (RFC 3550 A.3), summed over every source and restart so far."""
        return self.lost_prior + max(0, self.ext_max - self.base + 1 - self.received)

    @property
    def expected(self) -> int:
        """Packets expected (RFC 3550 A.3: highest − lowest + 1), summed over every source and restart."""
        return self.expected_prior + max(0, self.ext_max - self.base + 1)

    def behind(self, seq: int) -> int:
        """How far ``seq`` lies behind the highest number if it counts as reordered (or repeated), else 0."""
        delta = (seq - self.ext_max) & 0xFFFF
        return _SEQ_MOD - delta if delta >= _SEQ_MOD - MAX_MISORDER else 0

    def start(self, seq: int) -> None:
        """A new source (or a confirmed restart) whose first packet is ``seq``; it is not counted yet."""
        self.lost_prior = self.lost
        self.expected_prior = self.expected
        self.ext_max = seq - 1
        self.base = seq
        self.received = 0
        self.bad_seq = -1
        self.holes.clear()

    def accept(self, seq: int) -> bool:
        """Count a packet; False for a duplicate. Reordered packets are counted, a big jump waits for proof."""
        delta = (seq - self.ext_max) & 0xFFFF
        if 0 < delta < MAX_DROPOUT:
            if delta > 1:  # numbers skipped: lost unless they arrive later
                self._open(self.ext_max + 1, self.ext_max + delta)
            self.ext_max += delta
        elif delta == 0 or delta >= _SEQ_MOD - MAX_MISORDER:
            ext = self.ext_max - ((_SEQ_MOD - delta) & 0xFFFF)
            if ext < self.base:  # reordered before the first packet seen
                self._open(ext + 1, self.base)
                self.base = ext
            elif ext in self.holes:
                self.holes.remove(ext)
            else:
                return False
        elif seq == self.bad_seq:  # two sequential packets after a big jump: the source restarted
            self.start(seq)
            self.ext_max = seq
        else:
            self.bad_seq = (seq + 1) & 0xFFFF  # a lone jump: not counted until the next packet confirms it
            return True
        self.received += 1
        return True

    def _open(self, first: int, end: int) -> None:
        """Numbers ``[first, end)`` are missing for now."""
        holes = self.holes
        holes.update(range(max(first, end - _HOLES_KEEP), end))
        if len(holes) > 2 * _HOLES_KEEP:
            keep_from = max(self.ext_max, end) - _HOLES_KEEP
            self.holes = {ext for ext in holes if ext >= keep_from}
