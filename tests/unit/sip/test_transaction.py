"""The transaction state machines on their own, with exact timer deadlines."""

import pytest

from siprec_server.sip import Address, SipProtocolError, SipRequest, SipResponse, TimerConfig, parse_message
from siprec_server.sip.client_transaction import ClientState, ClientTransaction
from siprec_server.sip.dialog import DialogId
from siprec_server.sip.retransmit import AnswerRetransmitter
from siprec_server.sip.timer_queue import TimerQueue
from siprec_server.sip.transaction import ServerState, ServerTransaction, server_key

from .traffic import request

UDP = Address(transport="udp", host="10.20.30.10", port=5060)
TCP = Address(transport="tcp", host="10.20.30.10", port=40312, connection_id=1)
TIMERS = TimerConfig()
DIALOG = DialogId(call_id="c", local_tag="l", remote_tag="r")


def _request(
    method: str, branch: str = "z9hG4bKt1", cseq_method: str | None = None, host: str = "10.20.30.10"
) -> SipRequest:
    message = parse_message(
        request(
            method,
            "sip:srs@10.20.30.40",
            [
                ("Via", f"SIP/2.0/UDP {host}:5060;branch={branch}"),
                ("From", "<sip:SRC@10.20.30.10>;tag=r"),
                ("To", "<sip:srs@10.20.30.40>"),
                ("Call-ID", "c"),
                ("CSeq", f"3 {cseq_method or method}"),
            ],
        )
    )
    assert isinstance(message, SipRequest)
    return message


def test_keys_match_ack_and_retransmissions_to_their_invite() -> None:
    invite = _request("INVITE")
    assert server_key(_request("ACK")) == server_key(invite)
    assert server_key(_request("CANCEL")) != server_key(invite)
    assert server_key(_request("CANCEL"), "INVITE") == server_key(invite)
    assert server_key(_request("INVITE", host="10.20.30.11")) != server_key(invite)
    assert server_key(_request("INVITE", branch="z9hG4bKt2")) != server_key(invite)


def test_non_invite_server_transaction() -> None:
    tx = ServerTransaction(key=("k",), request=_request("INFO"), destination=UDP, timers=TIMERS, request_id=1)
    assert tx.receive_request() is None  # Trying absorbs
    assert tx.send_response(b"SIP/2.0 100", 100, now=1.0) == b"SIP/2.0 100"
    assert tx.receive_request() == b"SIP/2.0 100"
    tx.send_response(b"SIP/2.0 200", 200, now=2.0)
    assert tx.state is ServerState.COMPLETED and tx.final_sent
    assert tx.receive_request() == b"SIP/2.0 200"
    with pytest.raises(SipProtocolError):
        tx.send_response(b"SIP/2.0 500", 500, now=2.5)
    assert tx.get_timer() == 2.0 + 32.0  # Timer J
    assert tx.handle_timer(33.9) is None
    assert tx.get_timer() == 34.0
    tx.handle_timer(34.0)
    assert tx.terminated and tx.get_timer() is None


def test_non_invite_over_tcp_ends_at_once() -> None:
    tx = ServerTransaction(key=("k",), request=_request("BYE"), destination=TCP, timers=TIMERS, request_id=1)
    tx.send_response(b"SIP/2.0 200", 200, now=5.0)
    assert tx.get_timer() == 5.0


def test_invite_accepted_state_leaves_the_ack_to_the_core() -> None:
    tx = ServerTransaction(
        key=("k",), request=_request("INVITE"), destination=UDP, timers=TIMERS, request_id=1
    )
    tx.send_response(b"SIP/2.0 200", 200, now=0.0)
    assert tx.state is ServerState.ACCEPTED
    assert tx.receive_request() is None
    assert not tx.receive_ack(now=0.1)
    assert tx.get_timer() == 32.0  # RFC 6026 Timer L
    with pytest.raises(SipProtocolError):
        tx.send_response(b"SIP/2.0 200", 200, now=0.2)


def test_invite_completed_to_confirmed_to_terminated() -> None:
    tx = ServerTransaction(
        key=("k",), request=_request("INVITE"), destination=UDP, timers=TIMERS, request_id=1
    )
    tx.send_response(b"SIP/2.0 486", 486, now=10.0)
    assert tx.get_timer() == 10.5
    assert tx.handle_timer(10.5) == b"SIP/2.0 486"
    assert tx.get_timer() == 11.5
    assert tx.receive_ack(now=11.0) and tx.state is ServerState.CONFIRMED
    assert tx.receive_request() is None
    assert tx.get_timer() == 16.0  # Timer I = T4
    tx.handle_timer(16.0)
    assert tx.terminated and not tx.timed_out


def test_client_transaction_absorbs_repeats_and_times_out() -> None:
    bye = _request("BYE")
    ok = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKt1\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 3 BYE\r\n\r\n"
    )
    assert isinstance(ok, SipResponse)
    tx = ClientTransaction(
        request=bye, destination=UDP, timers=TIMERS, now=0.0, request_id=1, dialog_id=DIALOG
    )
    assert tx.get_timer() == 0.5 and tx.handle_timer(0.5) == tx.data
    assert tx.receive_response(ok, now=1.0)
    assert not tx.receive_response(ok, now=1.1)
    assert tx.state is ClientState.COMPLETED and tx.get_timer() == 6.0  # Timer K = T4
    tx.handle_timer(6.0)
    assert tx.terminated and not tx.timed_out

    silent = ClientTransaction(
        request=bye, destination=TCP, timers=TIMERS, now=0.0, request_id=2, dialog_id=DIALOG
    )
    assert silent.get_timer() == 32.0  # no Timer E on a reliable transport, only F
    assert silent.handle_timer(32.0) is None and silent.timed_out and silent.terminated


def test_answer_retransmitter_gives_up_at_64_t1_without_a_last_burst() -> None:
    answer = AnswerRetransmitter(
        dialog_id=DIALOG, cseq=1, data=b"200", destination=UDP, timers=TIMERS, now=100.0
    )
    assert answer.get_timer() == 100.5
    assert answer.handle_timer(100.4) is None
    assert answer.handle_timer(100.5) == b"200" and answer.get_timer() == 101.5
    assert answer.handle_timer(200.0) is None and answer.gave_up and answer.get_timer() is None


class _Deadline:
    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline

    def get_timer(self) -> float | None:
        return self.deadline


def test_timer_queue_skips_moved_and_discarded_deadlines() -> None:
    queue: TimerQueue[_Deadline] = TimerQueue()
    early, late, gone = _Deadline(1.0), _Deadline(2.0), _Deadline(0.5)
    for item in (early, late, gone):
        queue.schedule(item)
    queue.discard(gone)
    early.deadline = 3.0
    queue.schedule(early)
    assert queue.next_deadline() == 2.0
    assert queue.pop_due(1.9) is None
    assert queue.pop_due(5.0) is late
    assert queue.pop_due(5.0) is early
    assert queue.pop_due(5.0) is None and queue.next_deadline() is None
