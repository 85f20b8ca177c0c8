"""The non-INVITE client transaction (RFC 3261 §17.1.2) for requests we send in a dialog (BYE, INFO...).

Over UDP the request is retransmitted on Timer E (T1 doubling up to T2; T2 once a provisional arrived);
Timer F (64*T1) ends it without an answer; Timer K absorbs retransmitted final responses.
"""

from __future__ import annotations

import enum

from .dialog import DialogId
from .message import SipRequest, SipResponse
from .timers import TimerConfig
from .transport import Address


class ClientState(enum.Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class ClientTransaction:
    __slots__ = (
        "_e_interval",
        "_timer_e",
        "_timer_f",
        "_timer_k",
        "_timers",
        "data",
        "destination",
        "dialog_id",
        "final_response",
        "request",
        "request_id",
        "state",
        "timed_out",
    )

    def __init__(
        self,
        *,
        request: SipRequest,
        destination: Address,
        timers: TimerConfig,
        now: float,
        request_id: int,
        dialog_id: DialogId,
    ) -> None:
        self.request = request
        self.data = bytes(request)
        self.destination = destination
        self.request_id = request_id
        self.dialog_id = dialog_id
        self.state = ClientState.TRYING
        self.timed_out = False
        self.final_response: SipResponse | None = None
        self._timers = timers
        self._e_interval = timers.t1
        self._timer_e: float | None = None if destination.reliable else now + timers.t1
        self._timer_f: float | None = now + timers.timer_f
        self._timer_k: float | None = None

    @property
    def terminated(self) -> bool:
        return self.state is ClientState.TERMINATED

    def receive_response(self, response: SipResponse, now: float) -> bool:
        """True for the first final response, which the TU must see; provisionals and repeats are absorbed."""
        if self.state in (ClientState.COMPLETED, ClientState.TERMINATED):
            return False
        if response.status < 200:
            self.state = ClientState.PROCEEDING
            return False
        self.state = ClientState.COMPLETED
        self.final_response = response
        self._timer_e = self._timer_f = None
        self._timer_k = now + self._timers.timer_k(self.destination.reliable)
        return True

    def get_timer(self) -> float | None:
        deadlines = [t for t in (self._timer_e, self._timer_f, self._timer_k) if t is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> bytes | None:
        """Returns the request to retransmit when Timer E fired."""
        if self._timer_k is not None and self._timer_k <= now:
            self._terminate()
        elif self._timer_f is not None and self._timer_f <= now:
            self.timed_out = True  # §17.1.2.2: report a timeout to the TU
            self._terminate()
        elif self._timer_e is not None and self._timer_e <= now:
            if self.state is ClientState.TRYING:
                self._e_interval = min(2 * self._e_interval, self._timers.t2)
            else:
                self._e_interval = self._timers.t2
            self._timer_e += self._e_interval
            return self.data
        return None

    def _terminate(self) -> None:
        self.state = ClientState.TERMINATED
        self._timer_e = self._timer_f = self._timer_k = None
