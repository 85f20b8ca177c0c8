"""Every RTP packet of every leg of one generator process, sent from one 20 ms tick.

Packet ``n`` of a leg is due at ``start + n·ptime``. Unimpaired legs take the fast lane
(:class:`StreamTable`): their due packets are built with array operations and sent with one ``sendmmsg`` per
socket. Impaired legs take the slow lane: each due packet gets its fate (:mod:`load_tests.loadgen.impairments`)
and waits in one time-ordered queue until its due time; then every queued packet that is due goes out, in
due-time order, which is what turns jitter above the packet time into reordering on the wire. Either way a
late tick sends everything that fell due meanwhile: the generator never skips a packet to catch up.

A leg is finished once its last packet has gone out; the caller then ends its call.
"""

from __future__ import annotations

import heapq
import itertools

from .impairments import Fate
from .profile import PTIME
from .rtp_legs import RtpLeg
from .stream_table import StreamTable

__all__ = ["Pacer"]

_AFTER_SUCCESSOR = 0.0005  # a held-back packet leaves this long after the packet it was swapped with
_DUPLICATE_GAP = 0.001  # a duplicate leaves this long after its original


class Pacer:
    def __init__(self) -> None:
        self._legs: list[RtpLeg] = []  # the slow lane
        self._fast = StreamTable()
        self._queue: list[tuple[float, int, RtpLeg, bytes]] = []
        self._order = itertools.count()
        self._slow_sent = 0

    @property
    def legs(self) -> int:
        """Legs still sending."""
        return len(self._legs) + len(self._fast)

    @property
    def sent(self) -> int:
        """RTP datagrams sent so far, duplicates included."""
        return self._slow_sent + self._fast.sent

    def add(self, leg: RtpLeg, destination: tuple[str, int], start: float) -> None:
        leg.begin(destination, start)
        if StreamTable.accepts(leg, destination):
            self._fast.add(leg)
        else:
            self._legs.append(leg)

    def remove(self, leg: RtpLeg) -> None:
        """Stop a leg before its end (its call is over): nothing more of it is sent."""
        if not self._fast.remove(leg):
            leg.closed = True  # its queued packets are dropped when they come due

    def tick(self, now: float) -> list[RtpLeg]:
        """Send everything due at ``now``; return the legs that have sent their last packet."""
        return self._fast.tick(now) + self._slow_tick(now)

    def _slow_tick(self, now: float) -> list[RtpLeg]:
        ptime = PTIME
        still: list[RtpLeg] = []
        ending: list[RtpLeg] = []  # every packet planned: finished once nothing waits in the queue
        for leg in self._legs:
            if leg.closed:
                continue
            impairer = leg.impairer
            n, total = leg.next_n, leg.total
            nominal = leg.start + n * ptime
            while n < total and nominal <= now:
                if impairer is None:  # a leg the fast lane does not take (IPv6)
                    self._slow_sent += leg.send(leg.packet(n), now)
                else:
                    self._plan(leg, impairer.fate(n), leg.packet(n), nominal)
                n += 1
                nominal = leg.start + n * ptime
            leg.next_n = n
            if now >= leg.next_rtcp:
                leg.rtcp(now)
            (ending if n >= total else still).append(leg)
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, _, leg, data = heapq.heappop(queue)
            leg.in_flight -= 1
            self._slow_sent += leg.send(data, now)
        finished = []
        for leg in ending:
            if leg.in_flight or leg.held is not None:
                still.append(leg)
            else:
                finished.append(leg)
        self._legs = still
        return finished

    def _plan(self, leg: RtpLeg, fate: Fate, data: bytes, nominal: float) -> None:
        due = nominal + fate.extra
        if not fate.send:
            if leg.held is not None:  # the packet it was to follow is lost: it goes at its successor's time
                self._push(due, leg, leg.held)
                leg.held = None
            return
        if fate.reorder:
            leg.held = data
            return
        self._push(due, leg, data)
        if leg.held is not None:
            self._push(due + _AFTER_SUCCESSOR, leg, leg.held)
            leg.held = None
        if fate.duplicate:
            self._push(due + _DUPLICATE_GAP, leg, data)

    def _push(self, due: float, leg: RtpLeg, data: bytes) -> None:
        leg.in_flight += 1
        heapq.heappush(self._queue, (due, next(self._order), leg, data))
