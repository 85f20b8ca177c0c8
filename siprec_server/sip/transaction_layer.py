"""The transaction layer of one endpoint (RFC 3261 §17): it owns every transaction, their timers and the bytes
they send, and matches incoming requests (§17.2.3) and responses (§17.1.3) to them.

The UAS core above it (`endpoint.py`) decides what to answer; this layer only makes the answers reliable. Its
timer queue also carries the core's 2xx retransmitters so that one deadline covers the whole endpoint.
"""

from __future__ import annotations

import collections

from .client_transaction import ClientTransaction
from .dialog import DialogId
from .message import SipRequest, SipResponse
from .retransmit import AnswerRetransmitter
from .timer_queue import TimerQueue
from .timers import TimerConfig
from .transaction import ServerTransaction, TransactionKey
from .transport import Address, Transmit

Timed = ServerTransaction | ClientTransaction | AnswerRetransmitter


class TransactionLayer:
    def __init__(self, timers: TimerConfig, counters: collections.Counter[tuple[str, ...]]) -> None:
        self.timers = timers
        self.counters = counters
        self.outbox: list[Transmit] = []
        self.queue: TimerQueue[Timed] = TimerQueue()
        self.last_request_id = 0
        self._server: dict[TransactionKey, ServerTransaction] = {}
        self._by_request_id: dict[int, ServerTransaction] = {}
        self._in_dialog: dict[DialogId, dict[int, ServerTransaction]] = {}  # by request id, until terminated
        self._client: dict[tuple[str, str], ClientTransaction] = {}  # (branch, method) → transaction

    def send(self, data: bytes, destination: Address) -> None:
        self.outbox.append(Transmit(data=data, destination=destination))

    # ---- server transactions ------------------------------------------------------------------------------

    def server(self, key: TransactionKey) -> ServerTransaction | None:
        return self._server.get(key)

    def server_by_id(self, request_id: int) -> ServerTransaction | None:
        return self._by_request_id.get(request_id)

    def pending_in(self, dialog_id: DialogId) -> list[ServerTransaction]:
        """Requests in the dialog that still wait for their final response."""
        return [tx for tx in self._in_dialog.get(dialog_id, {}).values() if not tx.final_sent]

    def attach(self, tx: ServerTransaction, dialog_id: DialogId) -> None:
        """``tx`` belongs to the dialog (it created it, or arrived within it)."""
        if tx.dialog_id is not None and tx.dialog_id != dialog_id:
            self._detach(tx)
        tx.dialog_id = dialog_id
        self._in_dialog.setdefault(dialog_id, {})[tx.request_id] = tx

    def _detach(self, tx: ServerTransaction) -> None:
        if tx.dialog_id is None:
            return
        members = self._in_dialog.get(tx.dialog_id)
        if members is not None:
            members.pop(tx.request_id, None)
            if not members:
                del self._in_dialog[tx.dialog_id]

    def create_server(self, key: TransactionKey, request: SipRequest, source: Address) -> ServerTransaction:
        self.last_request_id += 1
        tx = ServerTransaction(
            key=key, request=request, destination=source, timers=self.timers, request_id=self.last_request_id
        )
        self._server[key] = tx
        self._by_request_id[tx.request_id] = tx
        return tx

    def respond(self, tx: ServerTransaction, status: int, data: bytes, now: float) -> None:
        self.send(tx.send_response(data, status, now), tx.destination)
        self.counters["tx", tx.request.method, str(status)] += 1
        self.queue.schedule(tx)

    def retransmission(self, tx: ServerTransaction) -> None:
        """The request arrived again (§17.2.3 matched it): repeat the last response if the state says so."""
        self.counters["retransmitted", "rx", tx.request.method] += 1
        self._resend(tx, tx.receive_request())

    def absorb_ack(self, key: TransactionKey, now: float) -> bool:
        """True when the ACK acknowledged a non-2xx final response of ours (§17.2.1)."""
        tx = self._server.get(key)
        if tx is None or not tx.receive_ack(now):
            return False
        self.queue.schedule(tx)
        return True

    def fire_server(self, tx: ServerTransaction, now: float) -> None:
        self._resend(tx, tx.handle_timer(now))
        if tx.timed_out:  # Timer H: the ACK for our non-2xx never came
            self.counters["ack-timeout", "non-2xx"] += 1
            tx.timed_out = False
        if tx.terminated:
            if self._server.get(tx.key) is tx:
                del self._server[tx.key]
            self._by_request_id.pop(tx.request_id, None)
            self._detach(tx)

    def _resend(self, tx: ServerTransaction, data: bytes | None) -> None:
        if data is not None:
            self.send(data, tx.destination)
            self.counters["retransmitted", "tx", tx.request.method, str(tx.last_status)] += 1
        self.queue.schedule(tx)

    # ---- client transactions ------------------------------------------------------------------------------

    def create_client(
        self, request: SipRequest, destination: Address, now: float, dialog_id: DialogId
    ) -> ClientTransaction:
        self.last_request_id += 1
        tx = ClientTransaction(
            request=request,
            destination=destination,
            timers=self.timers,
            now=now,
            request_id=self.last_request_id,
            dialog_id=dialog_id,
        )
        self._client[request.top_via.branch or "", request.method] = tx
        self.send(tx.data, destination)
        self.counters["tx", request.method] += 1
        self.queue.schedule(tx)
        return tx

    def receive_response(self, response: SipResponse, now: float) -> ClientTransaction | None:
        """The transaction whose first final response this is; None for provisionals, repeats and strays."""
        tx = self._client.get((response.top_via.branch or "", response.cseq.method))  # §17.1.3
        if tx is None:
            self.counters["stray", "response"] += 1
            return None
        final = tx.receive_response(response, now)
        self.queue.schedule(tx)
        return tx if final else None

    def fire_client(self, tx: ClientTransaction, now: float) -> bool:
        """Runs the transaction's timer; True when Timer F just timed it out."""
        data = tx.handle_timer(now)
        if data is not None:
            self.send(data, tx.destination)
            self.counters["retransmitted", "tx", tx.request.method] += 1
        if tx.terminated:
            self._client.pop((tx.request.top_via.branch or "", tx.request.method), None)
        else:
            self.queue.schedule(tx)
        if tx.timed_out:
            self.counters["timeout", tx.request.method] += 1
        return tx.timed_out
