"""Server transactions (RFC 3261 §17.2, amended by RFC 6026) and server transaction matching (§17.2.3).

Invariants:
- a transaction sends only responses the TU handed it, and retransmissions of the last one;
- after a final response it accepts no other response from the TU;
- a 2xx to INVITE moves to Accepted (RFC 6026 §7.1): retransmitted INVITEs are absorbed there and the ACK
  belongs to the TU, which retransmits the 2xx itself (see `retransmit.py`);
- a TERMINATED transaction has no timers; the endpoint forgets it.
The transition tables below are the whole state machine; timers are (re)started on entering a state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from .dialog import DialogId
from .errors import SipProtocolError
from .message import SipRequest
from .timers import TimerConfig
from .transport import Address

MAGIC_COOKIE: Final = "z9hG4bK"  # §8.1.1.7

TransactionKey = tuple[str, ...]


class ServerState(enum.Enum):
    TRYING = "trying"  # non-INVITE only
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"  # INVITE only
    ACCEPTED = "accepted"  # INVITE only, RFC 6026
    TERMINATED = "terminated"


class _Input(enum.Enum):
    PROVISIONAL = "1xx from the TU"
    SUCCESS = "2xx from the TU"
    FAILURE = "300-699 from the TU"
    REQUEST = "retransmitted request"
    ACK = "ACK"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_L = "Timer L"


class _Action(enum.Enum):
    ABSORB = "absorb"
    SEND = "send the TU's response"
    RESEND = "retransmit the last response"


_S, _I, _A = ServerState, _Input, _Action
_Table = Mapping[tuple[ServerState, _Input], tuple[ServerState, _Action]]

_INVITE_TABLE: Final[_Table] = {  # §17.2.1 Figure 7 with RFC 6026 Figure 5
    (_S.PROCEEDING, _I.PROVISIONAL): (_S.PROCEEDING, _A.SEND),
    (_S.PROCEEDING, _I.SUCCESS): (_S.ACCEPTED, _A.SEND),
    (_S.PROCEEDING, _I.FAILURE): (_S.COMPLETED, _A.SEND),
    (_S.PROCEEDING, _I.REQUEST): (_S.PROCEEDING, _A.RESEND),
    (_S.COMPLETED, _I.REQUEST): (_S.COMPLETED, _A.RESEND),
    (_S.COMPLETED, _I.TIMER_G): (_S.COMPLETED, _A.RESEND),
    (_S.COMPLETED, _I.ACK): (_S.CONFIRMED, _A.ABSORB),
    (_S.COMPLETED, _I.TIMER_H): (_S.TERMINATED, _A.ABSORB),
    (_S.CONFIRMED, _I.REQUEST): (_S.CONFIRMED, _A.ABSORB),
    (_S.CONFIRMED, _I.ACK): (_S.CONFIRMED, _A.ABSORB),
    (_S.CONFIRMED, _I.TIMER_I): (_S.TERMINATED, _A.ABSORB),
    (_S.ACCEPTED, _I.REQUEST): (_S.ACCEPTED, _A.ABSORB),
    (_S.ACCEPTED, _I.TIMER_L): (_S.TERMINATED, _A.ABSORB),
}

_NON_INVITE_TABLE: Final[_Table] = {  # §17.2.2 Figure 8
    (_S.TRYING, _I.PROVISIONAL): (_S.PROCEEDING, _A.SEND),
    (_S.TRYING, _I.SUCCESS): (_S.COMPLETED, _A.SEND),
    (_S.TRYING, _I.FAILURE): (_S.COMPLETED, _A.SEND),
    (_S.TRYING, _I.REQUEST): (_S.TRYING, _A.ABSORB),
    (_S.PROCEEDING, _I.PROVISIONAL): (_S.PROCEEDING, _A.SEND),
    (_S.PROCEEDING, _I.SUCCESS): (_S.COMPLETED, _A.SEND),
    (_S.PROCEEDING, _I.FAILURE): (_S.COMPLETED, _A.SEND),
    (_S.PROCEEDING, _I.REQUEST): (_S.PROCEEDING, _A.RESEND),
    (_S.COMPLETED, _I.REQUEST): (_S.COMPLETED, _A.RESEND),
    (_S.COMPLETED, _I.TIMER_J): (_S.TERMINATED, _A.ABSORB),
}

# When several timers are due at once, the ones that end the transaction win over retransmission.
_TIMER_PRIORITY: Final = (_I.TIMER_H, _I.TIMER_L, _I.TIMER_I, _I.TIMER_J, _I.TIMER_G)


def server_key(request: SipRequest, method: str | None = None) -> TransactionKey:
    """The key matching requests to a server transaction (§17.2.3); ACK matches its INVITE."""
    via = request.top_via
    method = method or ("INVITE" if request.method == "ACK" else request.method)
    if via.branch and via.branch.startswith(MAGIC_COOKIE):
        return ("rfc3261", via.branch, via.sent_by, method)
    # RFC 2543 peers: Request-URI, From tag, Call-ID, CSeq number and top Via identify the transaction.
    from_tag = request.from_addr.tag or ""
    number = str(request.cseq.number)
    return ("rfc2543", request.uri, from_tag, request.call_id, number, via.sent_by, via.branch or "", method)


class ServerTransaction:
    """An INVITE or non-INVITE server transaction bound to the address its request came from."""

    __slots__ = (
        "_deadlines",
        "_g_interval",
        "_table",
        "_timers",
        "auto_answered",
        "destination",
        "dialog_id",
        "invite",
        "key",
        "last_response",
        "last_status",
        "local_tag",
        "request",
        "request_id",
        "state",
        "timed_out",
    )

    def __init__(
        self,
        *,
        key: TransactionKey,
        request: SipRequest,
        destination: Address,
        timers: TimerConfig,
        request_id: int,
        dialog_id: DialogId | None = None,
    ) -> None:
        self.key = key
        self.request = request
        self.destination = destination
        self.request_id = request_id
        self.dialog_id = dialog_id
        self.invite = request.method == "INVITE"
        self.state = ServerState.PROCEEDING if self.invite else ServerState.TRYING
        self.last_response: bytes | None = None
        self.last_status: int | None = None
        self.local_tag: str | None = None  # our To tag, chosen once for every response of this transaction
        self.auto_answered = False  # the endpoint sent the final response itself (CANCEL, BYE, rejection)
        self.timed_out = False  # Timer H fired: no ACK for our non-2xx final response
        self._table = _INVITE_TABLE if self.invite else _NON_INVITE_TABLE
        self._timers = timers
        self._deadlines: dict[_Input, float] = {}
        self._g_interval = timers.t1

    @property
    def final_sent(self) -> bool:
        return self.state not in (ServerState.TRYING, ServerState.PROCEEDING)

    @property
    def terminated(self) -> bool:
        return self.state is ServerState.TERMINATED

    def send_response(self, data: bytes, status: int, now: float) -> bytes:
        """Hand a response from the TU to the transaction; returns the bytes to transmit."""
        kind = _I.PROVISIONAL if status < 200 else _I.SUCCESS if status < 300 else _I.FAILURE
        transition = self._table.get((self.state, kind))
        if transition is None:
            raise SipProtocolError(f"cannot send a {status} response in the {self.state.value} state")
        self.last_response, self.last_status = data, status
        self._move(transition[0], now)
        return data

    def receive_request(self) -> bytes | None:
        """A retransmission of the request; returns the response to retransmit, if any."""
        return self._apply(_I.REQUEST, now=None)

    def receive_ack(self, now: float) -> bool:
        """True when the ACK belongs to this transaction (it acknowledges our non-2xx final response)."""
        if (self.state, _I.ACK) not in self._table:
            return False
        self._apply(_I.ACK, now)
        return True

    def get_timer(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def handle_timer(self, now: float) -> bytes | None:
        due = [timer for timer in _TIMER_PRIORITY if self._deadlines.get(timer, now + 1) <= now]
        if not due:
            return None
        timer = due[0]
        if timer is _I.TIMER_G:  # §17.2.1: double the interval up to T2
            self._g_interval = min(2 * self._g_interval, self._timers.t2)
            self._deadlines[timer] += self._g_interval
        else:
            del self._deadlines[timer]
            self.timed_out = timer is _I.TIMER_H
        return self._apply(timer, now)

    def _apply(self, event: _Input, now: float | None) -> bytes | None:
        transition = self._table.get((self.state, event))
        if transition is None:
            return None
        state, action = transition
        if state is not self.state:
            assert now is not None  # only ACK and timers leave a state this way
            self._move(state, now)
        return self.last_response if action is _A.RESEND else None

    def _move(self, state: ServerState, now: float) -> None:
        if state is self.state:
            return
        self.state = state
        self._deadlines.clear()
        timers, reliable = self._timers, self.destination.reliable
        if state is ServerState.COMPLETED and self.invite:
            if not reliable:
                self._deadlines[_I.TIMER_G] = now + timers.t1
            self._deadlines[_I.TIMER_H] = now + timers.timer_h
        elif state is ServerState.COMPLETED:
            self._deadlines[_I.TIMER_J] = now + timers.timer_j(reliable)
        elif state is ServerState.CONFIRMED:
            self._deadlines[_I.TIMER_I] = now + timers.timer_i(reliable)
        elif state is ServerState.ACCEPTED:
            self._deadlines[_I.TIMER_L] = now + timers.timer_l
