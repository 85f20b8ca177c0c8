"""The SIP user agent server core the server talks to: bytes and time in, events and bytes out (sans-I/O).

Layers: a datagram or framed message → `parse_message` → the transaction layer (§17, `transaction_layer.py`)
→ this UAS core with its dialogs (§12) → events. Requests we originate in a dialog (BYE, INFO...) use
non-INVITE client transactions (§17.1.2).

Invariants:
- every request except ACK gets one final response: from the server through `respond()`, or from the endpoint
  itself (rejections, OPTIONS, BYE, CANCEL and the INVITE's 487);
- responses go back to the request's source Address: the packet's address and port over UDP (RFC 3581 style),
  the same connection over TCP/TLS;
- nothing here reads a clock or touches a socket: time arrives as `now`, bytes leave through `transmit()`.
"""

from __future__ import annotations

import collections
import secrets
from collections.abc import Sequence

from .client_transaction import ClientTransaction
from .dialog import Dialog, DialogId, DialogInfo
from .errors import SipParseError, SipProtocolError
from .events import (
    AckReceived,
    AckTimeout,
    ByeReceived,
    InDialogRequest,
    InviteCancelled,
    InviteReceived,
    MalformedMessage,
    RequestCompleted,
    SipEvent,
)
from .headers import Headers
from .message import SipRequest, SipResponse, make_response, parse_message
from .retransmit import AnswerRetransmitter
from .timers import DEFAULT_TIMERS, TimerConfig
from .transaction import MAGIC_COOKIE, ServerTransaction, TransactionKey, server_key
from .transaction_layer import TransactionLayer
from .transport import Address, Transmit
from .uas_rules import (
    Rejection,
    answerable,
    capability_headers,
    contact_header,
    host_port,
    readable_contact,
    screen_request,
    stamp_via,
)

_HANDLED = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO"})
_UNSUPPORTED_OUTGOING = frozenset({"INVITE", "ACK", "CANCEL"})


class SipEndpoint:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        user_agent: str = "Hangtar",
        timers: TimerConfig = DEFAULT_TIMERS,
        allow: tuple[str, ...] = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO"),
        accept: tuple[str, ...] = ("application/sdp", "application/rs-metadata+xml", "multipart/mixed"),
        supported: tuple[str, ...] = ("siprec", "timer", "replaces"),
        retry_after: int = 5,
    ) -> None:
        self.host = host
        self.port = port
        # Listeners on another port than `port`, by transport (SIP over TLS: 5061, RFC 3261 §19.1.2).
        self.transport_ports: dict[str, int] = {}
        self.user_agent = user_agent
        self.timers = timers
        self.allow = allow
        self.accept = accept
        self.supported = supported
        self.retry_after = retry_after  # seconds, in 503 answers while not accepting
        self.accepting = True  # False while draining or at capacity: new INVITEs and OPTIONS get 503
        self.counters: collections.Counter[tuple[str, ...]] = collections.Counter()
        self._events: collections.deque[SipEvent] = collections.deque()
        self._transactions = TransactionLayer(timers, self.counters)
        self._dialogs: dict[DialogId, Dialog] = {}
        self._answers: dict[DialogId, AnswerRetransmitter] = {}  # 2xx to INVITE awaiting the ACK

    # ---- the adapter's side -------------------------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """One UDP datagram or one message framed by `StreamFramer`."""
        if not data.strip(b"\r\n"):
            self.counters["rx", "keepalive"] += 1
            return
        try:
            message = parse_message(data)
        except SipParseError as error:
            self._on_malformed(error, source)
            return
        if isinstance(message, SipResponse):
            self._on_response(message, now)
        else:
            self._on_request(message, source, now)

    def next_event(self) -> SipEvent | None:
        return self._events.popleft() if self._events else None

    def transmit(self) -> list[Transmit]:
        outbox, self._transactions.outbox = self._transactions.outbox, []
        return outbox

    def get_timer(self) -> float | None:
        return self._transactions.queue.next_deadline()

    def handle_timer(self, now: float) -> None:
        while (item := self._transactions.queue.pop_due(now)) is not None:
            if isinstance(item, ServerTransaction):
                self._transactions.fire_server(item, now)
            elif isinstance(item, ClientTransaction):
                if self._transactions.fire_client(item, now):
                    self._complete(item, None, None, now)
            else:
                self._fire_answer(item, now)

    # ---- the server's side --------------------------------------------------------------------------------

    def respond(
        self,
        request_id: int,
        status: int,
        *,
        now: float,
        reason: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> DialogId | None:
        """Answer a request from `InviteReceived`/`InDialogRequest`; returns its dialog (created by a 2xx).

        Answers to requests the endpoint already completed itself (after CANCEL or BYE) are ignored.
        """
        tx = self._transactions.server_by_id(request_id)
        if tx is None or (tx.final_sent and tx.auto_answered):
            if not 0 < request_id <= self._transactions.last_request_id:
                raise SipProtocolError(f"unknown request id {request_id}")
            self.counters["late-response", str(status)] += 1
            return None
        if not 100 <= status <= 699:
            raise SipProtocolError(f"invalid status {status}")
        request, success = tx.request, 200 <= status < 300
        extra = Headers(headers)
        if success and request.method in ("INVITE", "UPDATE") and "Contact" not in extra:
            secure = request.uri.lower().startswith("sips:")  # §12.1.1: 2xx to target refreshes carry Contact
            extra.add(
                "Contact",
                contact_header(
                    self.host,
                    self.port_for(tx.destination.transport),
                    tx.destination.transport,
                    secure=secure,
                ),
            )
        if success and request.method == "INVITE":
            for name, value in capability_headers(self.allow, self.accept, self.supported):
                if name != "Accept" and name not in extra:
                    extra.add(name, value)  # §13.3.1.4
        data = self._response_bytes(tx, status, reason, list(extra), body, content_type)
        self._transactions.respond(tx, status, data, now)
        dialog = self._dialogs.get(tx.dialog_id) if tx.dialog_id else None
        if dialog is not None and status >= 200 and dialog.pending_offer == request_id:
            dialog.pending_offer = None
        if success and request.method == "INVITE" and tx.dialog_id is None:
            dialog = Dialog.from_invite(request, local_tag=self._local_tag(tx), source=tx.destination)
            self._dialogs[dialog.id] = dialog
            self._transactions.attach(tx, dialog.id)
        elif success and request.method in ("INVITE", "UPDATE") and dialog is not None:
            dialog.refresh_target(request)
        if success and request.method == "INVITE" and dialog is not None:
            self._start_answer(dialog.id, request.cseq.number, data, tx.destination, now)
        return tx.dialog_id

    def send_request(
        self,
        dialog_id: DialogId,
        method: str,
        *,
        now: float,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> int:
        """Send a request inside a dialog (BYE, INFO, UPDATE, OPTIONS); `RequestCompleted` reports its end."""
        dialog = self._dialogs.get(dialog_id)
        if dialog is None or dialog.terminating:
            raise SipProtocolError(f"no dialog {dialog_id} to send {method} in")
        if method in _UNSUPPORTED_OUTGOING:
            raise SipProtocolError(f"sending {method} is not supported")
        destination = dialog.next_hop()
        branch = MAGIC_COOKIE + secrets.token_hex(8)
        via = (
            f"SIP/2.0/{destination.transport.upper()} {host_port(self.host, self.port_for(destination.transport))}"
            f";branch={branch};rport"
        )
        if method == "UPDATE" and all(name.lower() not in ("contact", "m") for name, _ in headers):
            secure = dialog.remote_target.lower().startswith("sips:")  # RFC 3311 §5.1: a target refresh
            contact = contact_header(
                self.host, self.port_for(destination.transport), destination.transport, secure=secure
            )
            headers = [*headers, ("Contact", contact)]
        request = dialog.build_request(
            method, via=via, user_agent=self.user_agent, headers=headers, body=body, content_type=content_type
        )
        tx = self._transactions.create_client(request, destination, now, dialog_id)
        if method == "BYE":
            dialog.terminating = True  # §15.1.1: the session is over once BYE is sent
            self._stop_answer(dialog_id)
        return tx.request_id

    def port_for(self, transport: str) -> int:
        """Our port for `transport`, as Contact and Via name it."""
        return self.transport_ports.get(transport, self.port)

    def dialog_ids(self) -> list[DialogId]:
        return list(self._dialogs)

    def dialog_info(self, dialog_id: DialogId) -> DialogInfo:
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            raise SipProtocolError(f"no dialog {dialog_id}")
        return dialog.info()

    # ---- incoming requests --------------------------------------------------------------------------------

    def _on_request(self, request: SipRequest, source: Address, now: float) -> None:
        self.counters["rx", request.method] += 1
        key = server_key(request)
        request = stamp_via(request, source)
        if request.method == "ACK":
            self._on_ack(request, key, now)
            return
        existing = self._transactions.server(key)
        if existing is not None:  # a retransmission (§17.2.3)
            self._transactions.retransmission(existing)
            return
        tx = self._transactions.create_server(key, request, source)
        if request.method == "CANCEL":
            self._on_cancel(tx, now)
            return
        rejection = screen_request(request, allow=self.allow, accept=self.accept, supported=self.supported)
        if rejection is not None:
            self._reject(tx, rejection, now)
            return
        to_tag = request.to_addr.tag
        if to_tag is None:
            self._out_of_dialog(tx, now)
            return
        dialog_id = DialogId(
            call_id=request.call_id, local_tag=to_tag, remote_tag=request.from_addr.tag or ""
        )
        dialog = self._dialogs.get(dialog_id)
        if dialog is None or (dialog.terminating and request.method != "BYE"):
            self._auto(tx, 481, now)  # §12.2.2
        else:
            self._in_dialog(tx, dialog, now)

    def _out_of_dialog(self, tx: ServerTransaction, now: float) -> None:
        method = tx.request.method
        if method not in ("INVITE", "OPTIONS"):
            self._auto(tx, 481 if method in _HANDLED else 501, now)
        elif not self.accepting:  # reject fast so that the SRC fails over (guide §2.9)
            self._auto(tx, 503, now, headers=[("Retry-After", str(self.retry_after))])
        elif method == "OPTIONS":
            self._auto(tx, 200, now, headers=capability_headers(self.allow, self.accept, self.supported))
        elif not readable_contact(tx.request):
            self._auto(tx, 400, now, reason="Missing or Bad Contact Header")  # §8.1.1.8: the remote target
        else:
            self._transactions.respond(tx, 100, self._response_bytes(tx, 100), now)  # §17.2.1: at once
            self._events.append(
                InviteReceived(
                    request_id=tx.request_id, request=tx.request, source=tx.destination, dialog_id=None
                )
            )

    def _in_dialog(self, tx: ServerTransaction, dialog: Dialog, now: float) -> None:
        request, method = tx.request, tx.request.method
        self._transactions.attach(tx, dialog.id)
        if not dialog.accept_remote_cseq(request.cseq.number):
            self._auto(tx, 500, now, reason="CSeq Out of Order")  # §12.2.2
        elif method == "BYE":
            self._on_bye(tx, dialog, now)
        elif method == "OPTIONS":
            self._auto(tx, 200, now, headers=capability_headers(self.allow, self.accept, self.supported))
        elif (
            method == "INVITE" or (method == "UPDATE" and request.body)
        ) and dialog.pending_offer is not None:
            # §14.2 (RFC 3311 §5.2 for UPDATE): a new offer before we answered the last one → 500 with a
            # random Retry-After; 491 is for glare with an offer of ours, and we send none.
            retry = str(secrets.randbelow(11))
            self._auto(tx, 500, now, reason="Offer Pending", headers=[("Retry-After", retry)])
        else:
            if method == "INVITE" or (method == "UPDATE" and request.body):
                dialog.pending_offer = tx.request_id
            if method == "INVITE":
                self._transactions.respond(tx, 100, self._response_bytes(tx, 100), now)
                event: SipEvent = InviteReceived(
                    request_id=tx.request_id, request=request, source=tx.destination, dialog_id=dialog.id
                )
            else:
                event = InDialogRequest(
                    request_id=tx.request_id, request=request, source=tx.destination, dialog_id=dialog.id
                )
            self._events.append(event)

    def _on_bye(self, tx: ServerTransaction, dialog: Dialog, now: float) -> None:
        self._auto(tx, 200, now)
        self._end_dialog(dialog.id, now)
        if not dialog.terminating:  # after our own BYE the server already knows the session is over
            self._events.append(ByeReceived(dialog_id=dialog.id, request=tx.request))

    def _on_cancel(self, tx: ServerTransaction, now: float) -> None:
        invite = self._transactions.server(server_key(tx.request, "INVITE"))  # §9.2
        if invite is None or not invite.invite:
            self._auto(tx, 481, now)
            return
        tx.local_tag = self._local_tag(invite)  # §9.2: the same To tag as the INVITE's response
        self._auto(tx, 200, now)
        if invite.final_sent:
            return
        self._auto(invite, 487, now)
        dialog = self._dialogs.get(invite.dialog_id) if invite.dialog_id else None
        if dialog is not None and dialog.pending_offer == invite.request_id:
            dialog.pending_offer = None
        self._events.append(InviteCancelled(request_id=invite.request_id, dialog_id=invite.dialog_id))

    def _on_ack(self, request: SipRequest, key: TransactionKey, now: float) -> None:
        if self._transactions.absorb_ack(key, now):
            return
        to_tag = request.to_addr.tag
        if to_tag is not None:
            dialog_id = DialogId(
                call_id=request.call_id, local_tag=to_tag, remote_tag=request.from_addr.tag or ""
            )
            answer = self._answers.get(dialog_id)
            if answer is not None and answer.cseq == request.cseq.number:
                self._stop_answer(dialog_id)
                self._events.append(AckReceived(dialog_id=dialog_id, request=request))
                return
        self.counters["stray", "ACK"] += 1  # a repeated or unknown ACK; ACK is never answered

    def _on_malformed(self, error: SipParseError, source: Address) -> None:
        answered: int | None = None
        partial = error.partial
        if isinstance(partial, SipRequest) and partial.method != "ACK" and answerable(partial):
            response = make_response(
                partial, error.status, error.reason, to_tag=secrets.token_hex(8), server=self.user_agent
            )
            self._transactions.send(bytes(response), source)
            answered = error.status
        self.counters["malformed", str(answered) if answered else "dropped"] += 1
        self._events.append(MalformedMessage(source=source, reason=error.reason, answered_status=answered))

    # ---- incoming responses -------------------------------------------------------------------------------

    def _on_response(self, response: SipResponse, now: float) -> None:
        self.counters["rx", response.cseq.method, str(response.status)] += 1
        tx = self._transactions.receive_response(response, now)
        if tx is not None:
            self._complete(tx, response.status, response, now)

    def _complete(
        self, tx: ClientTransaction, status: int | None, response: SipResponse | None, now: float
    ) -> None:
        self._events.append(
            RequestCompleted(
                request_id=tx.request_id, dialog_id=tx.dialog_id, status=status, response=response
            )
        )
        if tx.request.method == "BYE":
            self._end_dialog(tx.dialog_id, now)

    # ---- timers -------------------------------------------------------------------------------------------

    def _fire_answer(self, answer: AnswerRetransmitter, now: float) -> None:
        data = answer.handle_timer(now)
        if data is not None:
            self._transactions.send(data, answer.destination)
            self.counters["retransmitted", "tx", "INVITE", "2xx"] += 1
        if answer.gave_up:  # §13.3.1.4: the dialog stays; the server ends the session with BYE
            self._answers.pop(answer.dialog_id, None)
            self.counters["ack-timeout", "2xx"] += 1
            self._events.append(AckTimeout(dialog_id=answer.dialog_id))
        else:
            self._transactions.queue.schedule(answer)

    # ---- helpers ------------------------------------------------------------------------------------------

    def _reject(self, tx: ServerTransaction, rejection: Rejection, now: float) -> None:
        self._auto(tx, rejection.status, now, reason=rejection.reason, headers=rejection.headers)

    def _auto(
        self,
        tx: ServerTransaction,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """A response the endpoint sends on its own; the server's later answer to the request is ignored."""
        tx.auto_answered = status >= 200
        self._transactions.respond(tx, status, self._response_bytes(tx, status, reason, headers), now)

    def _response_bytes(
        self,
        tx: ServerTransaction,
        status: int,
        reason: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> bytes:
        to_tag = self._local_tag(tx) if status > 100 else None
        response = make_response(
            tx.request,
            status,
            reason,
            to_tag=to_tag,
            headers=headers,
            body=body,
            content_type=content_type,
            server=self.user_agent,
        )
        return bytes(response)

    def _local_tag(self, tx: ServerTransaction) -> str:
        if tx.local_tag is None:
            tx.local_tag = secrets.token_hex(8)  # §19.3: at least 32 random bits
        return tx.local_tag

    def _start_answer(
        self, dialog_id: DialogId, cseq: int, data: bytes, destination: Address, now: float
    ) -> None:
        self._stop_answer(dialog_id)
        answer = AnswerRetransmitter(
            dialog_id=dialog_id, cseq=cseq, data=data, destination=destination, timers=self.timers, now=now
        )
        self._answers[dialog_id] = answer
        self._transactions.queue.schedule(answer)

    def _stop_answer(self, dialog_id: DialogId) -> None:
        answer = self._answers.pop(dialog_id, None)
        if answer is not None:
            self._transactions.queue.discard(answer)

    def _end_dialog(self, dialog_id: DialogId, now: float) -> None:
        """Forget the dialog; requests still waiting in it get 487 (§15.1.2)."""
        for pending in self._transactions.pending_in(dialog_id):
            self._auto(pending, 487, now)
            if pending.invite:
                self._events.append(InviteCancelled(request_id=pending.request_id, dialog_id=dialog_id))
        self._stop_answer(dialog_id)
        self._dialogs.pop(dialog_id, None)
