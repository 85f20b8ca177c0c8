"""Requests besides the initial INVITE: BYE both ways, re-INVITE, UPDATE/INFO, OPTIONS, errors, bad input."""

import pytest

from siprec_server.sip import (
    Address,
    ByeReceived,
    DialogId,
    InDialogRequest,
    InviteCancelled,
    InviteReceived,
    MalformedMessage,
    RequestCompleted,
    SipProtocolError,
    SipRequest,
    SipResponse,
    parse_message,
)

from .peer import Link, Src
from .traffic import SIPREC_SDP

ANSWER_SDP = b"v=0\r\no=- 1 1 IN IP4 10.20.30.40\r\ns=-\r\nc=IN IP4 10.20.30.40\r\nt=0 0\r\n"
E_TIMES = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def _established(link: Link, src: Src, *, extra: list[tuple[str, str]] | None = None) -> DialogId:
    """INVITE, 200, ACK: the usual start of a recording session."""
    src.send(src.invite(extra=extra or []))
    (event,) = link.events()
    assert isinstance(event, InviteReceived)
    dialog_id = link.endpoint.respond(
        event.request_id, 200, now=link.now, body=ANSWER_SDP, content_type="application/sdp"
    )
    assert dialog_id is not None
    _, ok = src.responses()
    src.to_header = ok.headers.get("To") or ""
    src.send(src.ack(ok))
    link.events()
    return dialog_id


def _request(messages: list[SipRequest | SipResponse]) -> SipRequest:
    (message,) = messages
    assert isinstance(message, SipRequest)
    return message


def test_bye_from_the_src_is_answered_200_and_reported_once() -> None:
    link = Link()
    src = Src(link)
    dialog_id = _established(link, src)
    bye = src.build("BYE")
    src.send(bye)
    (ok,) = src.responses()
    assert (ok.status, ok.cseq.method) == (200, "BYE")
    (event,) = link.events()
    assert isinstance(event, ByeReceived) and event.dialog_id == dialog_id
    assert link.endpoint.dialog_ids() == []
    src.send(bye)  # retransmission: same answer from the transaction, no new event
    assert src.responses() == [ok]
    assert link.events() == []
    link.run_until(32.0)  # Timer J
    assert link.endpoint.get_timer() is None


def test_bye_for_an_unknown_dialog_gets_481() -> None:
    link = Link()
    src = Src(link)
    src.to_header = "<sip:srs@10.20.30.40:5060>;tag=deadbeef"
    src.send(src.build("BYE"))
    (response,) = src.responses()
    assert response.status == 481
    assert link.events() == []


def test_bye_answers_a_pending_reinvite_with_487() -> None:
    link = Link()
    src = Src(link)
    dialog_id = _established(link, src)
    src.send(src.invite(body=SIPREC_SDP.encode(), content_type="application/sdp"))
    (reinvite,) = link.events()
    assert isinstance(reinvite, InviteReceived) and reinvite.dialog_id == dialog_id
    src.responses()
    src.send(src.build("BYE"))
    statuses = {(response.cseq.method, response.status) for response in src.responses()}
    assert statuses == {("BYE", 200), ("INVITE", 487)}  # §15.1.2
    cancelled, bye = link.events()
    assert cancelled == InviteCancelled(request_id=reinvite.request_id, dialog_id=dialog_id)
    assert isinstance(bye, ByeReceived) and bye.dialog_id == dialog_id and bye.request.method == "BYE"
    assert link.endpoint.respond(reinvite.request_id, 200, now=link.now, body=ANSWER_SDP) is None
    assert src.received() == []


def test_a_bye_cancels_only_what_waits_in_its_own_dialog() -> None:
    link = Link()
    first, second = Src(link), Src(link, port=5070, call_id="second-call@10.20.30.10")
    first_id = _established(link, first)
    second_id = _established(link, second)
    first.send(first.invite(body=SIPREC_SDP.encode(), content_type="application/sdp"))
    (reinvite,) = link.events()
    assert reinvite.dialog_id == first_id
    first.responses()
    second.send(second.build("BYE"))
    assert [(r.cseq.method, r.status) for r in second.responses()] == [("BYE", 200)]
    (bye,) = link.events()
    assert isinstance(bye, ByeReceived) and bye.dialog_id == second_id
    assert first.received() == []  # the other call's re-INVITE still waits for its answer
    assert link.endpoint.respond(reinvite.request_id, 200, now=link.now, body=ANSWER_SDP) == first_id


def test_our_bye_follows_the_dialog_and_completes_on_200() -> None:
    link = Link()
    src = Src(link)
    dialog_id = _established(link, src)
    request_id = link.endpoint.send_request(
        dialog_id, "BYE", now=link.now, headers=[("Reason", "Q.850;cause=16")]
    )
    bye = _request(src.received())
    assert bye.method == "BYE" and bye.uri == "sip:SRC@10.20.30.10:5060"
    assert bye.headers.get("To") == "<sip:SRC@10.20.30.10:5060>;tag=5c8e0a3a2d1e0d41fa0e1b6c"
    assert bye.from_addr.tag == dialog_id.local_tag and bye.call_id == dialog_id.call_id
    assert (bye.cseq.number, bye.cseq.method) == (1, "BYE")
    assert bye.top_via.host == "10.20.30.40" and (bye.top_via.branch or "").startswith("z9hG4bK")
    assert bye.headers.get("Max-Forwards") == "70" and bye.headers.get("Reason") == "Q.850;cause=16"
    assert "Route" not in bye.headers

    sent = link.run_until(2.0)
    assert [time for time, _ in sent] == [0.5, 1.5] and all(message == bye for _, message in sent)
    ok = request_ok(bye)
    src.send(bytes(ok))
    (completed,) = link.events()
    assert completed == RequestCompleted(request_id=request_id, dialog_id=dialog_id, status=200, response=ok)
    assert link.endpoint.dialog_ids() == []
    src.send(bytes(ok))  # a retransmitted 200 is absorbed
    assert link.events() == []
    assert link.run_until(60.0) == []
    assert link.endpoint.get_timer() is None


def request_ok(sent: SipRequest, status: int = 200) -> SipResponse:
    """The SRC's answer to a request the endpoint sent."""
    data = (
        f"SIP/2.0 {status} OK\r\n"
        f"Via: {sent.headers.get('Via')}\r\n"
        f"From: {sent.headers.get('From')}\r\n"
        f"To: {sent.headers.get('To')}\r\n"
        f"Call-ID: {sent.call_id}\r\n"
        f"CSeq: {sent.headers.get('CSeq')}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    response = parse_message(data)
    assert isinstance(response, SipResponse)
    return response


def test_our_bye_times_out_after_64_t1_with_timer_e_retransmissions() -> None:
    link = Link()
    src = Src(link)
    dialog_id = _established(link, src)
    request_id = link.endpoint.send_request(dialog_id, "BYE", now=link.now)
    src.received()
    sent = link.run_until(31.99)
    assert [time for time, _ in sent] == E_TIMES
    assert link.events() == []
    link.run_until(32.0)
    assert link.events() == [RequestCompleted(request_id=request_id, dialog_id=dialog_id, status=None)]
    assert link.endpoint.dialog_ids() == []
    assert link.endpoint.counters["timeout", "BYE"] == 1


def test_provisional_answer_slows_timer_e_to_t2() -> None:
    link = Link()
    src = Src(link)
    dialog_id = _established(link, src)
    link.endpoint.send_request(
        dialog_id, "INFO", now=link.now, body=b"Signal=1\r\n", content_type="application/dtmf-relay"
    )
    info = _request(src.received())
    assert info.content_type == "application/dtmf-relay" and info.body == b"Signal=1\r\n"
    link.run_until(0.6)
    src.received()
    src.send(bytes(request_ok(info, 100)))
    assert [time for time, _ in link.run_until(10.0)] == [1.5, 5.5, 9.5]


def test_our_bye_over_tcp_is_not_retransmitted_and_reuses_the_connection() -> None:
    link = Link()
    src = Src(link, transport="tcp", port=40312, connection_id=9)
    dialog_id = _established(link, src)
    link.endpoint.send_request(dialog_id, "BYE", now=link.now)
    ((destination, bye),) = link.sent()
    assert destination == Address(transport="tcp", host="10.20.30.10", port=40312, connection_id=9)
    assert isinstance(bye, SipRequest) and bye.top_via.transport == "TCP"
    assert link.run_until(31.9) == []


def test_our_bye_goes_through_the_record_route_proxy() -> None:
    link = Link()
    proxy = Src(link, host="10.20.30.5")
    dialog_id = _established(link, proxy, extra=[("Record-Route", "<sip:10.20.30.5;lr>")])
    link.endpoint.send_request(dialog_id, "BYE", now=link.now)
    ((destination, bye),) = link.sent()
    assert destination == Address(transport="udp", host="10.20.30.5", port=5060)
    assert isinstance(bye, SipRequest) and bye.headers.get_all("Route") == ["<sip:10.20.30.5;lr>"]
    assert bye.uri == "sip:SRC@10.20.30.5:5060"


def test_send_request_misuse() -> None:
    link = Link()
    src = Src(link)
    dialog_id = _established(link, src)
    with pytest.raises(SipProtocolError):
        link.endpoint.send_request(dialog_id, "INVITE", now=link.now)
    link.endpoint.send_request(dialog_id, "BYE", now=link.now)
    with pytest.raises(SipProtocolError):
        link.endpoint.send_request(dialog_id, "BYE", now=link.now)
    with pytest.raises(SipProtocolError):
        link.endpoint.dialog_info(DialogId(call_id="x", local_tag="y", remote_tag="z"))


def test_reinvite_is_reported_in_its_dialog_and_refreshes_the_target() -> None:
    link = Link()
    src = Src(link)
    dialog_id = _established(link, src)
    src.send(
        src.invite(body=SIPREC_SDP.encode(), content_type="application/sdp").replace(
            b"Contact: <sip:SRC@10.20.30.10:5060>", b"Contact: <sip:SRC@10.20.30.11:5070>"
        )
    )
    (event,) = link.events()
    assert isinstance(event, InviteReceived) and event.dialog_id == dialog_id
    (trying,) = src.responses()
    assert trying.status == 100
    assert link.endpoint.respond(event.request_id, 200, now=link.now, body=ANSWER_SDP) == dialog_id
    (ok,) = src.responses()
    assert ok.to_addr.tag == dialog_id.local_tag and ok.headers.get("Contact")
    assert link.endpoint.dialog_info(dialog_id).remote_target == "sip:SRC@10.20.30.11:5070"
    assert [time for time, _ in link.run_until(2.0)] == [0.5, 1.5]  # retransmitted until its ACK too


def test_second_reinvite_while_the_first_is_unanswered_gets_500_with_retry_after() -> None:
    link = Link()
    src = Src(link)
    _established(link, src)
    src.send(src.invite(body=SIPREC_SDP.encode(), content_type="application/sdp"))
    (first,) = link.events()
    src.responses()
    src.send(src.invite(body=SIPREC_SDP.encode(), content_type="application/sdp"))
    (response,) = src.responses()
    assert response.status == 500  # RFC 3261 §14.2; 491 is for glare with our own offer
    assert 0 <= int(response.headers.get("Retry-After") or "-1") <= 10
    assert link.events() == []
    assert isinstance(first, InviteReceived)
    link.endpoint.respond(first.request_id, 200, now=link.now, body=ANSWER_SDP)
    assert src.responses()[0].status == 200
    src.send(src.invite(body=SIPREC_SDP.encode(), content_type="application/sdp"))
    assert isinstance(link.events()[0], InviteReceived)


def test_update_and_info_in_a_dialog_are_handed_to_the_server() -> None:
    link = Link()
    src = Src(link)
    dialog_id = _established(link, src)
    src.send(
        src.build(
            "UPDATE",
            body=SIPREC_SDP.encode(),
            extra=[("Content-Type", "application/sdp"), ("Contact", "<sip:SRC@10.20.30.10:5060>")],
        )
    )
    (update,) = link.events()
    assert isinstance(update, InDialogRequest) and update.dialog_id == dialog_id
    assert src.responses() == []  # no 100 Trying for non-INVITE requests
    link.endpoint.respond(
        update.request_id, 200, now=link.now, body=ANSWER_SDP, content_type="application/sdp"
    )
    (ok,) = src.responses()
    assert ok.status == 200 and ok.headers.get("Contact") == "<sip:10.20.30.40:5060;transport=udp>"

    src.send(
        src.build(
            "INFO", body=b"Signal=5\r\nDuration=160\r\n", extra=[("Content-Type", "application/dtmf-relay")]
        )
    )
    (info,) = link.events()
    assert isinstance(info, InDialogRequest) and info.request.method == "INFO"
    link.endpoint.respond(info.request_id, 200, now=link.now)
    (ok,) = src.responses()
    assert ok.status == 200 and "Contact" not in ok.headers
    with pytest.raises(SipProtocolError):
        link.endpoint.respond(info.request_id, 200, now=link.now)


def test_lower_cseq_in_a_dialog_gets_500() -> None:
    link = Link()
    src = Src(link)
    _established(link, src)
    src.send(src.build("INFO", cseq=5))
    link.events()
    src.responses()
    src.send(src.build("INFO", cseq=4))
    (response,) = src.responses()
    assert (response.status, response.reason) == (500, "CSeq Out of Order")
    assert link.events() == []


def test_options_outside_a_dialog_advertises_capabilities_and_503_when_draining() -> None:
    link = Link()
    probe = Src(link, host="10.20.30.2", call_id="ping-1@10.20.30.2")
    probe.send(probe.build("OPTIONS"))
    (ok,) = probe.responses()
    assert ok.status == 200 and ok.to_addr.tag
    assert ok.headers.get_all("Allow") == ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO"]
    assert ok.headers.get_all("Supported") == ["siprec", "timer", "replaces"]
    assert "application/rs-metadata+xml" in ok.headers.get_all("Accept")
    link.endpoint.accepting = False
    probe.send(probe.build("OPTIONS"))
    (unavailable,) = probe.responses()
    assert unavailable.status == 503 and unavailable.headers.get("Retry-After") == "5"
    assert link.events() == []


def test_options_inside_a_dialog_is_answered_even_while_draining() -> None:
    link = Link()
    src = Src(link)
    _established(link, src)
    link.endpoint.accepting = False
    src.send(src.build("OPTIONS"))
    (ok,) = src.responses()
    assert ok.status == 200


def test_unknown_method_gets_405_with_allow() -> None:
    link = Link()
    src = Src(link)
    src.send(src.build("MESSAGE", body=b"hello", extra=[("Content-Type", "text/plain")]))
    (response,) = src.responses()
    assert response.status == 405
    assert response.headers.get_all("Allow") == [
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "UPDATE",
        "INFO",
    ]


def test_info_outside_a_dialog_gets_481() -> None:
    link = Link()
    src = Src(link)
    src.send(src.build("INFO"))
    (response,) = src.responses()
    assert response.status == 481


def test_malformed_request_with_readable_headers_is_answered_400_naming_the_fault() -> None:
    link = Link()
    src = Src(link)
    src.send(src.build("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"))
    (response,) = src.responses()
    assert (response.status, response.reason) == (400, "CSeq method does not match request method")
    assert response.to_addr.tag
    assert link.events() == [
        MalformedMessage(
            source=src.address, reason="CSeq method does not match request method", answered_status=400
        )
    ]
    assert link.endpoint.counters["malformed", "400"] == 1


def test_malformed_request_without_via_is_dropped() -> None:
    link = Link()
    src = Src(link)
    src.send(
        b"\r\n".join(line for line in src.build("OPTIONS").split(b"\r\n") if not line.startswith(b"Via"))
    )
    assert src.received() == []
    assert link.events() == [
        MalformedMessage(source=src.address, reason="Missing Via header", answered_status=None)
    ]
    assert link.endpoint.counters["malformed", "dropped"] == 1


def test_malformed_ack_and_garbage_are_never_answered() -> None:
    link = Link()
    src = Src(link)
    src.send(src.build("ACK").replace(b"Content-Length: 0", b"Content-Length: 80"))
    src.send(b"\x00\x01\x00\x08 not sip at all")
    src.send(b"SIP/2.0 two hundred OK\r\n\r\n")
    assert src.received() == []
    assert [event.answered_status for event in link.events() if isinstance(event, MalformedMessage)] == [
        None
    ] * 3


def test_version_mismatch_is_answered_505() -> None:
    link = Link()
    src = Src(link)
    src.send(src.build("OPTIONS").replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1))
    (response,) = src.responses()
    assert response.status == 505


def test_keepalives_stray_acks_and_stray_responses_are_absorbed() -> None:
    link = Link()
    src = Src(link)
    src.send(b"\r\n\r\n")
    src.send(src.build("ACK"))
    src.send(bytes(request_ok(_request([parse_message(src.build("BYE"))]))))
    assert src.received() == [] and link.events() == []
    counters = link.endpoint.counters
    assert (counters["rx", "keepalive"], counters["stray", "ACK"], counters["stray", "response"]) == (1, 1, 1)


def test_counters_track_traffic_by_method_and_status() -> None:
    link = Link()
    src = Src(link)
    _established(link, src)
    counters = link.endpoint.counters
    assert counters["rx", "INVITE"] == 1 and counters["rx", "ACK"] == 1
    assert counters["tx", "INVITE", "100"] == 1 and counters["tx", "INVITE", "200"] == 1


def test_respond_to_an_unknown_request_id_is_a_programming_error() -> None:
    link = Link()
    with pytest.raises(SipProtocolError):
        link.endpoint.respond(42, 200, now=0.0)
    src = Src(link)
    src.send(src.invite())
    (event,) = link.events()
    assert isinstance(event, InviteReceived)
    with pytest.raises(SipProtocolError):
        link.endpoint.respond(event.request_id, 99, now=0.0)


def test_reinvite_pending_when_our_bye_completes_gets_487_and_no_new_dialog() -> None:
    link = Link()
    src = Src(link)
    dialog_id = _established(link, src)
    src.send(src.invite(body=SIPREC_SDP.encode(), content_type="application/sdp"))
    (reinvite,) = link.events()
    assert isinstance(reinvite, InviteReceived)
    src.responses()
    link.endpoint.send_request(dialog_id, "BYE", now=link.now)
    bye = _request(src.received())
    src.send(bytes(request_ok(bye)))
    (terminated,) = src.responses()
    assert (terminated.status, terminated.cseq.method) == (487, "INVITE")
    completed, cancelled = link.events()
    assert isinstance(completed, RequestCompleted) and completed.status == 200
    assert cancelled == InviteCancelled(request_id=reinvite.request_id, dialog_id=dialog_id)
    assert link.endpoint.respond(reinvite.request_id, 200, now=link.now, body=ANSWER_SDP) is None
    assert link.endpoint.dialog_ids() == [] and src.received() == []


def test_our_update_carries_a_contact_and_requests_crossing_our_bye_get_481() -> None:
    link = Link()
    src = Src(link)
    dialog_id = _established(link, src)
    link.endpoint.send_request(
        dialog_id, "UPDATE", now=link.now, body=ANSWER_SDP, content_type="application/sdp"
    )
    update = _request(src.received())
    assert update.headers.get("Contact") == "<sip:10.20.30.40:5060;transport=udp>"
    assert (update.cseq.number, update.cseq.method) == (1, "UPDATE")
    link.endpoint.send_request(dialog_id, "BYE", now=link.now)
    assert _request(src.received()).cseq.number == 2
    src.send(src.build("INFO"))
    (response,) = src.responses()
    assert response.status == 481
