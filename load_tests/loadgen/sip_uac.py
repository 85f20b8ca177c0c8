"""One SIPREC recording session from the recording client's (SRC's) side, over UDP, sans-I/O.

INVITE (``Require: siprec``, ``+sip.src`` Contact, multipart offer) → 1xx → 200 → ACK, later BYE → 200.

- RFC 3261 §17.1.1.2: the INVITE is retransmitted at T1, 2·T1, 4·T1 … until any response arrives; a
  provisional response stops the retransmissions; no final response within ``answer_timeout`` (Timer B,
  64·T1) ends the attempt as a timeout.
- §13.2.2.4: a 2xx is acknowledged end to end with a new branch, and again for every retransmitted 2xx.
  §17.1.1.3: a final non-2xx response (503 at capacity) is acknowledged on the INVITE's branch; the attempt is
  rejected and never retried.
- §17.1.2.2: the BYE is retransmitted at T1, doubling up to T2; no final response within 64·T1 is a timeout.
- Requests of the SRS inside the dialog: BYE ends the session (200 OK); OPTIONS, UPDATE and INFO get 200 OK;
  anything else 501.

Invariants: the state only moves forward (IDLE → CALLING → PROCEEDING → CONFIRMED → TERMINATING →
TERMINATED, skipping is allowed); exactly one :class:`Finished` event is emitted, on entering TERMINATED.
Methods take ``now`` and return datagrams to send; events are pulled with :meth:`SiprecUac.next_event`.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass

from siprec_server.sip import NameAddr, SipParseError, SipRequest, SipResponse, SipUri, make_response

__all__ = [
    "T1",
    "T2",
    "Answered",
    "Datagram",
    "Finished",
    "Outcome",
    "Provisional",
    "SiprecUac",
    "UacEvent",
    "UacState",
]

T1 = 0.5  # RFC 3261 §17.1.1.1 RTT estimate
T2 = 4.0  # §17.1.2.2 maximum non-INVITE retransmit interval
USER_AGENT = "Hangtar-loadgen/0.1"

Address = tuple[str, int]


class UacState(enum.Enum):
    IDLE = "idle"
    CALLING = "calling"  # INVITE sent, no response yet: retransmitting
    PROCEEDING = "proceeding"  # a provisional response arrived
    CONFIRMED = "confirmed"  # 200 OK acknowledged: the recording session runs
    TERMINATING = "terminating"  # BYE sent
    TERMINATED = "terminated"


class Outcome(enum.StrEnum):
    COMPLETED = "completed"  # we hung up and the SRS answered the BYE
    ENDED_BY_SRS = "ended_by_srs"  # the SRS sent BYE first
    REJECTED = "rejected"  # a final non-2xx answer to the INVITE (503 when at capacity)
    TIMEOUT = "timeout"  # no final answer to the INVITE
    BYE_TIMEOUT = "bye_timeout"  # no final answer to the BYE


@dataclass(frozen=True, slots=True, kw_only=True)
class Datagram:
    data: bytes
    destination: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class Provisional:
    status: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered:
    sdp: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished:
    outcome: Outcome
    status: int | None = None  # the final status that ended it, when there was one
    reason: str = ""


UacEvent = Provisional | Answered | Finished


def _token(rng: random.Random, bits: int = 64) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


class SiprecUac:
    def __init__(
        self,
        *,
        call_id: str,
        local: Address,
        srs: Address,
        body: bytes,
        content_type: str,
        rng: random.Random,
        t1: float = T1,
        t2: float = T2,
        answer_timeout: float = 64 * T1,
    ) -> None:
        self.call_id = call_id
        self._local = local
        self._srs = srs
        self._body = body
        self._content_type = content_type
        self._rng = rng
        self._t1, self._t2, self._answer_timeout = t1, t2, answer_timeout
        self._from = f"<sip:src@{local[0]}>;tag={_token(rng, 32)}"
        self._to = f"<sip:srs@{srs[0]}>"
        self._request_uri = f"sip:srs@{srs[0]}:{srs[1]}"
        self._invite_branch = self._branch()
        self._cseq = 1
        self._bye_cseq: int | None = None
        self.state = UacState.IDLE
        self._pending: Datagram | None = None  # the request being retransmitted
        self._interval = t1
        self._retransmit_at: float | None = None
        self._give_up_at: float | None = None
        self._ack: Datagram | None = None
        self._target: Address = srs
        self._target_uri = self._request_uri
        self._events: deque[UacEvent] = deque()

    # -- inputs ---------------------------------------------------------------------------------------------
    def invite(self, now: float) -> list[Datagram]:
        if self.state is not UacState.IDLE:
            raise RuntimeError(f"INVITE already sent (state {self.state.value})")
        data = self._request(
            "INVITE",
            self._request_uri,
            self._invite_branch,
            self._cseq,
            self._to,
            (
                ("Contact", f"<sip:src@{self._local[0]}:{self._local[1]}>;+sip.src"),
                ("Require", "siprec"),
                ("Accept", "application/sdp, application/rs-metadata+xml"),
                ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"),
                ("MIME-Version", "1.0"),
                ("Content-Type", self._content_type),
            ),
            self._body,
        )
        self.state = UacState.CALLING
        return self._send_reliably(Datagram(data=data, destination=self._srs), now, self._answer_timeout)

    def hang_up(self, now: float) -> list[Datagram]:
        """End the recording session with BYE; before the dialog exists the attempt is simply abandoned."""
        if self.state in (UacState.TERMINATING, UacState.TERMINATED):
            return []
        if self.state is not UacState.CONFIRMED:
            self._finish(Outcome.TIMEOUT, None, "abandoned before any final answer")
            return []
        self._cseq += 1
        self._bye_cseq = self._cseq
        data = self._request("BYE", self._target_uri, self._branch(), self._cseq, self._to)
        self.state = UacState.TERMINATING
        return self._send_reliably(Datagram(data=data, destination=self._target), now, 64 * self._t1)

    def receive(self, message: SipRequest | SipResponse, source: Address, now: float) -> list[Datagram]:
        if isinstance(message, SipRequest):
            return self._serve(message, source)
        try:
            cseq = message.cseq
        except SipParseError:
            return []
        if cseq.method == "INVITE" and cseq.number == 1:
            return self._invite_response(message)
        ours = cseq.method == "BYE" and cseq.number == self._bye_cseq
        if ours and self.state is UacState.TERMINATING and message.status >= 200:
            # Any final status ends it: a 481 means the SRS has no such session left.
            self._finish(Outcome.COMPLETED, message.status, message.reason)
        return []

    def get_timer(self) -> float | None:
        deadlines = [t for t in (self._retransmit_at, self._give_up_at) if t is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> list[Datagram]:
        if self._give_up_at is not None and now >= self._give_up_at:
            if self.state is UacState.TERMINATING:
                self._finish(Outcome.BYE_TIMEOUT, None, "no final response to BYE")
            else:
                self._finish(Outcome.TIMEOUT, None, "no final response to INVITE")
            return []
        if self._retransmit_at is not None and now >= self._retransmit_at and self._pending is not None:
            self._interval *= 2
            if self.state is UacState.TERMINATING:
                self._interval = min(self._interval, self._t2)  # §17.1.2.2 Timer E
            self._retransmit_at = now + self._interval
            return [self._pending]
        return []

    def next_event(self) -> UacEvent | None:
        return self._events.popleft() if self._events else None

    # -- responses to our INVITE ----------------------------------------------------------------------------
    def _invite_response(self, response: SipResponse) -> list[Datagram]:
        status = response.status
        if status < 200:
            if self.state is UacState.CALLING:
                self.state = UacState.PROCEEDING
                self._retransmit_at = None  # §17.1.1.2: no retransmissions once proceeding
            if self.state is UacState.PROCEEDING:
                self._events.append(Provisional(status=status))
            return []
        if status < 300:
            if self.state in (UacState.CALLING, UacState.PROCEEDING):
                return self._confirm(response)
            return [self._ack] if self._ack is not None else []  # §13.2.2.4: ACK every 2xx retransmission
        if self.state in (UacState.CALLING, UacState.PROCEEDING):
            self._ack = self._non_2xx_ack(response)
            self._finish(Outcome.REJECTED, status, response.reason)
        return [self._ack] if self._ack is not None and self.state is UacState.TERMINATED else []

    def _confirm(self, response: SipResponse) -> list[Datagram]:
        try:
            self._to = response.headers.get("To") or self._to
            contact = response.headers.get("Contact")
            if contact:
                uri = SipUri.parse(NameAddr.parse(contact).uri)
                self._target_uri = NameAddr.parse(contact).uri
                self._target = (uri.host, uri.port or 5060)
        except SipParseError:
            pass  # no usable Contact: in-dialog requests go where the INVITE went
        data = self._request("ACK", self._target_uri, self._branch(), 1, self._to)
        self._ack = Datagram(data=data, destination=self._target)
        self.state = UacState.CONFIRMED
        self._pending = self._retransmit_at = self._give_up_at = None
        self._events.append(Answered(sdp=response.body))
        return [self._ack]

    def _non_2xx_ack(self, response: SipResponse) -> Datagram:
        # §17.1.1.3: same Request-URI, branch, From and Call-ID as the INVITE; To from the response.
        to = response.headers.get("To") or self._to
        data = self._request("ACK", self._request_uri, self._invite_branch, 1, to)
        return Datagram(data=data, destination=self._srs)

    # -- requests of the SRS --------------------------------------------------------------------------------
    def _serve(self, request: SipRequest, source: Address) -> list[Datagram]:
        if request.method == "ACK":
            return []
        status = 200 if request.method in ("BYE", "OPTIONS", "UPDATE", "INFO") else 501
        response = make_response(request, status, server=USER_AGENT)
        if request.method == "BYE" and self.state in (UacState.CONFIRMED, UacState.TERMINATING):
            self._finish(Outcome.ENDED_BY_SRS, None, "BYE from the SRS")
        return [Datagram(data=bytes(response), destination=source)]

    # -- helpers --------------------------------------------------------------------------------------------
    def _finish(self, outcome: Outcome, status: int | None, reason: str) -> None:
        self.state = UacState.TERMINATED
        self._pending = self._retransmit_at = self._give_up_at = None
        self._events.append(Finished(outcome=outcome, status=status, reason=reason))

    def _send_reliably(self, datagram: Datagram, now: float, give_up_after: float) -> list[Datagram]:
        self._pending = datagram
        self._interval = self._t1
        self._retransmit_at = now + self._t1
        self._give_up_at = now + give_up_after
        return [datagram]

    def _branch(self) -> str:
        return "z9hG4bK" + _token(self._rng)  # §8.1.1.7 magic cookie

    def _request(
        self,
        method: str,
        uri: str,
        branch: str,
        cseq: int,
        to: str,
        extra: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> bytes:
        host, port = self._local
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: {self._from}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"User-Agent: {USER_AGENT}",
            *(f"{name}: {value}" for name, value in extra),
            f"Content-Length: {len(body)}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
