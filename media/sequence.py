"""RTP sequence number accounting for one source: extended numbers, duplicates, loss (RFC 3550 A.1, A.3)."""

from __future__ import annotations

__all__ = ["MAX_DROPOUT", "MAX_MISORDER", "SequenceTracker"]

MAX_DROPOUT = 3000  # RFC 3550 A.1: larger forward jumps are a restart, once the next packet confirms it
MAX_MISORDER = 100  # RFC 3550 A.1: up to this far behind the highest number counts as reordered
_SEQ_MOD = 1 << 16
_SEEN_KEEP = 512  # numbers remembered for duplicate detection (about 10 s at 50 packets/s)


class SequenceTracker:
    """Tracks the packets of the current source; :meth:`start` begins a new source or sequence.

    ``ext_max`` is the highest extended sequence number, ``base`` the lowest, ``received`` the distinct
    packets counted (duplicates are not, so loss never goes negative). The timeline's hot loop inlines the
    in-order case of :meth:`accept` on these attributes.
    """

    __slots__ = ("bad_seq", "base", "ext_max", "lost_prior", "received", "seen")

    def __init__(self) -> None:
        self.ext_max = -1
        self.base = 0
        self.received = 0
        self.bad_seq = -1
        self.lost_prior = 0
        self.seen: set[int] = set()

    @property
    def lost(self) -> int:
        """Expected − received (RFC 3550 A.3), summed over every source and restart so far."""
        return self.lost_prior + max(0, self.ext_max - self.base + 1 - self.received)

    def start(self, seq: int) -> None:
        """A new source (or a confirmed restart) whose first packet is ``seq``; it is not counted yet."""
        self.lost_prior = self.lost
        self.ext_max = seq - 1
        self.base = seq
        self.received = 0
        self.bad_seq = -1
        self.seen.clear()

    def accept(self, seq: int) -> bool:
        """Count a packet; False for a duplicate. Reordered packets are counted, a big jump waits for proof."""
        delta = (seq - self.ext_max) & 0xFFFF
        if 0 < delta < MAX_DROPOUT:
            self.ext_max += delta
            self.seen.add(self.ext_max)
        elif delta == 0 or delta >= _SEQ_MOD - MAX_MISORDER:
            ext = self.ext_max - ((_SEQ_MOD - delta) & 0xFFFF)
            if ext in self.seen:
                return False
            self.seen.add(ext)
            self.base = min(self.base, ext)  # reordered before the first packet seen
        elif seq == self.bad_seq:  # two sequential packets after a big jump: the source restarted
            self.start(seq)
            self.ext_max = seq
            self.seen.add(seq)
        else:
            self.bad_seq = (seq + 1) & 0xFFFF  # a lone jump: not counted until the next packet confirms it
            return True
        self.received += 1
        return True

    def prune(self) -> None:
        """Forget numbers far behind the highest, keeping duplicate detection cheap."""
        if len(self.seen) > 2 * _SEEN_KEEP:
            keep_from = self.ext_max - _SEEN_KEEP
            self.seen = {ext for ext in self.seen if ext >= keep_from}
