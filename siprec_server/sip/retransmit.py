"""Retransmission of our 2xx to an INVITE until the ACK arrives (RFC 3261 §13.3.1.4, RFC 6026 §8.1).

The UAS core, not the transaction, does this on every transport: the interval starts at T1 and doubles up to
T2; after 64*T1 without an ACK the dialog is kept but the session should end with a BYE.
"""

from __future__ import annotations

from .dialog import DialogId
from .timers import TimerConfig
from .transport import Address


class AnswerRetransmitter:
    __slots__ = (
        "_give_up_at",
        "_interval",
        "_next",
        "_t2",
        "cseq",
        "data",
        "destination",
        "dialog_id",
        "gave_up",
    )

    def __init__(
        self,
        *,
        dialog_id: DialogId,
        cseq: int,
        data: bytes,
        destination: Address,
        timers: TimerConfig,
        now: float,
    ) -> None:
        self.dialog_id = dialog_id
        self.cseq = cseq  # the ACK carries the INVITE's CSeq number
        self.data = data
        self.destination = destination
        self.gave_up = False
        self._t2 = timers.t2
        self._interval = timers.t1
        self._next = now + timers.t1
        self._give_up_at = now + timers.timer_h

    def get_timer(self) -> float | None:
        return None if self.gave_up else min(self._next, self._give_up_at)

    def handle_timer(self, now: float) -> bytes | None:
        """Returns the 2xx to send again, or None (and sets `gave_up` once 64*T1 have passed)."""
        if self.gave_up:
            return None
        if now >= self._give_up_at:
            self.gave_up = True
            return None
        if now < self._next:
            return None
        self._interval = min(2 * self._interval, self._t2)
        self._next += self._interval
        return self.data
