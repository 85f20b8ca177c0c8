"""The fate of each packet of one leg under its impairments, drawn from a seeded generator (pure).

A packet may be dropped, sent late (the constant one-way delay plus a uniform jitter; a jitter above the
packet time reorders packets by itself), sent twice, or held back and sent right after its successor
(explicit reordering; such a packet is not also duplicated). Protected packets — the first two of each
SSRC, the last, and the neighbours of an SSRC change — are never dropped or reordered: the stream's extent
stays well defined and a new source still shows the two packets in sequence that RFC 3550 A.1 asks before
it is believed.

The impairer remembers what it did, so verification knows how much silence the drops alone explain.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from typing import NamedTuple

from .profile import Impairments

__all__ = ["Fate", "LegImpairer"]


class Fate(NamedTuple):
    send: bool
    extra: float  # seconds after the packet's nominal send time (for a dropped packet: the constant delay)
    duplicate: bool
    reorder: bool  # hold it back and send it after the next packet


class LegImpairer:
    __slots__ = (
        "_delay",
        "_duplicate",
        "_jitter",
        "_loss",
        "_protected",
        "_random",
        "_reorder",
        "_run",
        "_swapped",
        "dropped",
        "duplicated",
        "longest_loss_run",
        "reordered",
    )

    def __init__(self, impairments: Impairments, *, protected: Collection[int], rng: random.Random) -> None:
        self._loss = impairments.loss / 100.0
        self._reorder = impairments.reorder / 100.0
        self._duplicate = impairments.duplicate / 100.0
        self._jitter = impairments.jitter_ms / 1000.0
        self._delay = impairments.delay_ms / 1000.0
        self._protected = frozenset(protected)
        self._random = rng.random
        self._run = 0
        self._swapped = -2  # the last packet held back to follow its successor
        self.dropped = 0
        self.duplicated = 0
        self.reordered = 0
        self.longest_loss_run = 0  # consecutive packets dropped, at most

    def fate(self, n: int) -> Fate:
        draw = self._random
        free = n not in self._protected
        if free and self._loss and draw() < self._loss:
            self.dropped += 1
            self._run += 1
            self.longest_loss_run = max(self.longest_loss_run, self._run)
            return Fate(send=False, extra=self._delay, duplicate=False, reorder=False)
        self._run = 0
        extra = self._delay + (draw() * self._jitter if self._jitter else 0.0)
        # The successor of a held-back packet is what it waits for: it is never held back itself.
        reorder = free and n != self._swapped + 1 and bool(self._reorder) and draw() < self._reorder
        if reorder:
            self._swapped = n
        duplicate = not reorder and bool(self._duplicate) and draw() < self._duplicate
        self.duplicated += duplicate
        self.reordered += reorder
        return Fate(send=True, extra=extra, duplicate=duplicate, reorder=reorder)
