"""The SRC side of one recording session: transactions and timers per RFC 3261, driven by hand-set time."""

from __future__ import annotations

import random

import pytest

from load_tests.loadgen import Answered, Datagram, Finished, Outcome, Provisional, SiprecUac, UacState
from load_tests.loadgen.sip_uac import UacEvent
from siprec_server.sip import SipRequest, SipResponse, parse_message

from .sip_samples import ANSWER_SDP, LOCAL, SRS, bye_from_srs, ok_to_invite, response

CALL_ID = "cap1-s1-7@loadgen.hangtar.invalid"


def _uac(answer_timeout: float = 32.0) -> SiprecUac:
    return SiprecUac(
        call_id=CALL_ID,
        local=LOCAL,
        srs=SRS,
        body=b"v=0\r\n",
        content_type="application/sdp",
        rng=random.Random(5),
        answer_timeout=answer_timeout,
    )


def _request(datagram: Datagram) -> SipRequest:
    message = parse_message(datagram.data)
    assert isinstance(message, SipRequest)
    return message


def _state(uac: SiprecUac) -> UacState:
    return uac.state  # read through a call: the state changes behind the type checker's back


def _events(uac: SiprecUac) -> list[UacEvent]:
    events = []
    while (event := uac.next_event()) is not None:
        events.append(event)
    return events


def _feed(uac: SiprecUac, data: bytes, now: float) -> list[Datagram]:
    message = parse_message(data)
    assert isinstance(message, SipRequest | SipResponse)
    return uac.receive(message, SRS, now)


def test_invite_is_retransmitted_at_t1_doubling_until_a_provisional_answer() -> None:
    uac = _uac()
    [invite] = uac.invite(now=0.0)
    assert _state(uac) is UacState.CALLING and invite.destination == SRS
    sent_at = []
    while (timer := uac.get_timer()) is not None and timer < 3.6:
        for datagram in uac.handle_timer(timer):
            assert datagram.data == invite.data  # the same request, same branch (RFC 3261 §17.1.1.2)
            sent_at.append(timer)
    assert sent_at == [0.5, 1.5, 3.5]
    assert _feed(uac, response(invite.data, 100, "Trying", to_tag=None), now=3.6) == []
    assert _state(uac) is UacState.PROCEEDING
    assert uac.get_timer() == 32.0  # only Timer B is left
    assert _events(uac) == [Provisional(status=100)]


def test_no_final_answer_within_the_timeout_is_a_timeout_and_nothing_more_is_sent() -> None:
    uac = _uac(answer_timeout=8.0)
    [invite] = uac.invite(now=10.0)
    _feed(uac, response(invite.data, 180, "Ringing", to_tag="a1"), now=10.2)
    assert uac.handle_timer(17.9) == []
    assert uac.handle_timer(18.0) == []
    assert _state(uac) is UacState.TERMINATED
    assert _events(uac)[-1] == Finished(outcome=Outcome.TIMEOUT, reason="no final response to INVITE")
    assert uac.get_timer() is None


def test_200_ok_is_acknowledged_at_its_contact_and_again_for_each_retransmission() -> None:
    uac = _uac()
    [invite] = uac.invite(now=0.0)
    ok = ok_to_invite(invite.data)
    [ack] = _feed(uac, ok, now=0.012)
    assert _state(uac) is UacState.CONFIRMED
    assert uac.get_timer() is None
    assert _events(uac) == [Answered(sdp=ANSWER_SDP.encode())]
    request = _request(ack)
    assert request.method == "ACK" and request.uri == f"sip:{SRS[0]}:{SRS[1]};transport=udp"
    assert request.cseq.number == 1
    assert request.to_addr.tag == "f4bf8a03fa4de388"
    assert request.top_via.branch != _request(invite).top_via.branch  # a 2xx ACK is its own transaction
    assert _feed(uac, ok, now=0.5) == [ack]
    assert _events(uac) == []


def test_503_is_acknowledged_on_the_invite_branch_and_never_retried() -> None:
    uac = _uac()
    [invite] = uac.invite(now=0.0)
    busy = response(invite.data, 503, "At Capacity", to_tag="9c2e", extra="Retry-After: 5")
    [ack] = _feed(uac, busy, now=0.004)
    request = _request(ack)
    assert request.method == "ACK" and request.uri == _request(invite).uri
    assert request.top_via.branch == _request(invite).top_via.branch  # RFC 3261 §17.1.1.3
    assert request.to_addr.tag == "9c2e"
    assert _events(uac) == [Finished(outcome=Outcome.REJECTED, status=503, reason="At Capacity")]
    assert uac.get_timer() is None and uac.handle_timer(40.0) == []
    assert _feed(uac, busy, now=0.5) == [ack]  # a retransmitted 503 is acknowledged again


def test_bye_is_retransmitted_up_to_t2_then_answered() -> None:
    uac = _uac()
    [invite] = uac.invite(now=0.0)
    _feed(uac, ok_to_invite(invite.data), now=0.01)
    _events(uac)
    [bye] = uac.hang_up(now=60.0)
    request = _request(bye)
    assert request.method == "BYE" and request.cseq.number == 2
    assert bye.destination == SRS
    sent_at = []
    while (timer := uac.get_timer()) is not None and timer < 79.0:
        sent_at += [timer - 60.0 for _ in uac.handle_timer(timer)]
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # doubling from T1, capped at T2 = 4 s
    assert _feed(uac, response(bye.data, 200, "OK", to_tag="f4bf8a03fa4de388"), now=79.1) == []
    assert _events(uac) == [Finished(outcome=Outcome.COMPLETED, status=200, reason="OK")]


def test_unanswered_bye_times_out_after_64_t1() -> None:
    uac = _uac()
    [invite] = uac.invite(now=0.0)
    _feed(uac, ok_to_invite(invite.data), now=0.01)
    uac.hang_up(now=10.0)
    uac.handle_timer(42.0)
    assert _state(uac) is UacState.TERMINATED
    assert _events(uac)[-1] == Finished(outcome=Outcome.BYE_TIMEOUT, reason="no final response to BYE")


def test_bye_from_the_srs_is_answered_200_and_ends_the_session() -> None:
    uac = _uac()
    [invite] = uac.invite(now=0.0)
    _feed(uac, ok_to_invite(invite.data), now=0.01)
    _events(uac)
    ours = _request(invite).from_addr
    assert ours.tag is not None
    [answer] = _feed(uac, bye_from_srs(CALL_ID, ours.tag, f"<{ours.uri}>"), now=5.0)
    reply = parse_message(answer.data)
    assert isinstance(reply, SipResponse) and reply.status == 200 and reply.cseq.method == "BYE"
    assert answer.destination == SRS
    assert _events(uac) == [Finished(outcome=Outcome.ENDED_BY_SRS, reason="BYE from the SRS")]
    assert uac.hang_up(now=6.0) == []


@pytest.mark.parametrize(("method", "status"), [("OPTIONS", 200), ("UPDATE", 200), ("MESSAGE", 501)])
def test_other_requests_of_the_srs_inside_the_dialog(method: str, status: int) -> None:
    uac = _uac()
    [invite] = uac.invite(now=0.0)
    _feed(uac, ok_to_invite(invite.data), now=0.01)
    _events(uac)
    request = bye_from_srs(CALL_ID, "x", "<sip:src@127.0.0.1>").replace(b"BYE", method.encode())
    [answer] = _feed(uac, request, now=1.0)
    reply = parse_message(answer.data)
    assert isinstance(reply, SipResponse) and reply.status == status
    assert _state(uac) is UacState.CONFIRMED and _events(uac) == []


def test_responses_to_other_transactions_are_ignored() -> None:
    uac = _uac()
    [invite] = uac.invite(now=0.0)
    stray = response(invite.data, 200, "OK", to_tag="zz").replace(b"CSeq: 1 INVITE", b"CSeq: 7 INVITE")
    assert _feed(uac, stray, now=0.1) == []
    assert _state(uac) is UacState.CALLING and _events(uac) == []


def test_a_second_invite_is_misuse() -> None:
    uac = _uac()
    uac.invite(now=0.0)
    with pytest.raises(RuntimeError):
        uac.invite(now=0.1)
