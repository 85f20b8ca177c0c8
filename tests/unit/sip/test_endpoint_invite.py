"""INVITE handling: 100 Trying, the INVITE server transaction, 2xx retransmission, CANCEL, rejections."""

import re

import pytest

from siprec_server.sip import (
    AckReceived,
    AckTimeout,
    Address,
    DialogId,
    InviteCancelled,
    InviteReceived,
    NameAddr,
    SipRequest,
    SipResponse,
    TimerConfig,
)

from .peer import Link, Src
from .traffic import oracle_siprec_invite

ANSWER_SDP = b"v=0\r\no=- 1 1 IN IP4 10.20.30.40\r\ns=-\r\nc=IN IP4 10.20.30.40\r\nt=0 0\r\n"
# T1, 2T1, 4T1, then T2 (4 s) apart, until 64*T1 = 32 s
RETRANSMIT_TIMES = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def _invite(link: Link, src: Src, data: bytes | None = None) -> tuple[InviteReceived, list[SipResponse]]:
    src.send(data or src.invite())
    events = link.events()
    assert len(events) == 1 and isinstance(events[0], InviteReceived)
    return events[0], src.responses()


def _answer(link: Link, src: Src, event: InviteReceived) -> tuple[DialogId, SipResponse]:
    dialog_id = link.endpoint.respond(
        event.request_id, 200, now=link.now, body=ANSWER_SDP, content_type="application/sdp"
    )
    assert dialog_id is not None
    (ok,) = src.responses()
    return dialog_id, ok


def test_oracle_siprec_invite_is_tried_at_once_and_answered_with_a_dialog() -> None:
    link = Link()
    src = Src(link)
    event, (trying,) = _invite(link, src, oracle_siprec_invite())
    assert trying.status == 100 and trying.to_addr.tag is None
    assert trying.headers.get("Via") == "SIP/2.0/UDP 10.20.30.10:5060;branch=z9hG4bK0g4a9k20a8u1lfa0h3f0.1"
    assert event.dialog_id is None and event.source == src.address
    assert event.request.headers.get("Require") == "siprec"

    dialog_id, ok = _answer(link, src, event)
    assert ok.status == 200 and ok.body == ANSWER_SDP
    assert ok.headers.get("Content-Type") == "application/sdp"
    assert ok.headers.get("Contact") == "<sip:10.20.30.40:5060;transport=udp>"
    assert ok.headers.get_all("Supported") == ["siprec", "timer", "replaces"]
    assert "UPDATE" in ok.headers.get_all("Allow")
    assert ok.headers.get("Server") == "Hangtar"
    assert dialog_id == DialogId(
        call_id="1d6c5e60b1b5a1c29c9e0f8b3a7d2e4f@10.20.30.10",
        local_tag=ok.to_addr.tag or "",
        remote_tag="5c8e0a3a2d1e0d41fa0e1b6c",
    )
    info = link.endpoint.dialog_info(dialog_id)
    assert info.remote_target == "sip:SRC@10.20.30.10:5060;transport=udp"
    assert info.source == src.address and info.route_set == ()
    assert link.endpoint.dialog_ids() == [dialog_id]

    link.now = 0.2
    src.send(src.ack(ok))
    (ack,) = link.events()
    assert isinstance(ack, AckReceived) and ack.dialog_id == dialog_id
    assert link.run_until(40.0) == []  # nothing left to retransmit
    assert link.endpoint.get_timer() is None
    assert link.endpoint.dialog_ids() == [dialog_id]


def test_retransmitted_invite_gets_the_last_response_again_and_no_new_event() -> None:
    link = Link()
    src = Src(link)
    invite = src.invite()
    event, (trying,) = _invite(link, src, invite)
    src.send(invite)
    assert src.responses() == [trying]
    link.endpoint.respond(event.request_id, 180, now=link.now)
    (ringing,) = src.responses()
    assert ringing.status == 180 and ringing.to_addr.tag
    src.send(invite)
    assert src.responses() == [ringing]
    _, ok = _answer(link, src, event)
    assert ok.to_addr.tag == ringing.to_addr.tag  # one To tag for the whole transaction
    src.send(invite)  # absorbed in the Accepted state (RFC 6026 §7.1): the core retransmits on its timer
    assert src.responses() == []
    assert link.events() == []
    assert link.endpoint.counters["retransmitted", "rx", "INVITE"] == 3


def test_2xx_is_retransmitted_at_t1_doubling_to_t2_until_the_ack() -> None:
    link = Link()
    src = Src(link)
    event, _ = _invite(link, src)
    dialog_id, ok = _answer(link, src, event)
    sent = link.run_until(8.0)
    assert [time for time, _ in sent] == RETRANSMIT_TIMES[:4]
    assert all(message == ok for _, message in sent)
    link.now = 9.0
    src.send(src.ack(ok))
    (acked,) = link.events()
    assert isinstance(acked, AckReceived) and acked.dialog_id == dialog_id
    assert (acked.request.method, acked.request.cseq.number) == ("ACK", ok.cseq.number)
    assert link.run_until(64.0) == []


def test_no_ack_gives_ack_timeout_at_64_t1_and_the_server_then_sends_bye() -> None:
    link = Link()
    src = Src(link)
    event, _ = _invite(link, src)
    dialog_id, _ = _answer(link, src, event)
    sent = link.run_until(31.99)
    assert [time for time, _ in sent] == RETRANSMIT_TIMES
    assert link.events() == []
    assert link.run_until(32.0) == []
    assert link.events() == [AckTimeout(dialog_id=dialog_id)]
    assert link.endpoint.counters["ack-timeout", "2xx"] == 1
    link.endpoint.send_request(dialog_id, "BYE", now=link.now)
    (bye,) = src.received()
    assert isinstance(bye, SipRequest) and bye.method == "BYE"


def test_custom_timers_scale_the_schedule() -> None:
    link = Link(timers=TimerConfig(t1=0.1, t2=0.4, t4=1.0))
    src = Src(link)
    event, _ = _invite(link, src)
    _answer(link, src, event)
    assert [time for time, _ in link.run_until(7.0)] == pytest.approx(
        [0.1, 0.3, 0.7, 1.1, 1.5, 1.9, 2.3, 2.7, 3.1, 3.5, 3.9, 4.3, 4.7, 5.1, 5.5, 5.9, 6.3]
    )
    assert len(link.events()) == 1  # AckTimeout at 6.4


def test_2xx_over_tcp_goes_back_on_the_connection_and_is_still_retransmitted() -> None:
    link = Link()
    src = Src(link, transport="tcp", port=40312, connection_id=7)
    event, _ = _invite(link, src)
    _, ok = _answer(link, src, event)
    assert ok.headers.get("Contact") == "<sip:10.20.30.40:5060;transport=tcp>"
    assert [time for time, _ in link.run_until(4.0)] == RETRANSMIT_TIMES[:3]  # §13.3.1.4: end to end


def test_cancel_before_the_answer_gives_200_and_487_and_an_event() -> None:
    link = Link()
    src = Src(link)
    invite_branch = src.new_branch()
    event, _ = _invite(link, src, src.invite(branch=invite_branch))
    link.now = 1.0
    src.send(src.build("CANCEL", branch=invite_branch, cseq=src.cseq))
    cancel_ok, terminated = src.responses()
    assert (cancel_ok.status, cancel_ok.cseq.method) == (200, "CANCEL")
    assert (terminated.status, terminated.cseq.method) == (487, "INVITE")
    assert cancel_ok.to_addr.tag == terminated.to_addr.tag is not None  # §9.2
    assert link.events() == [InviteCancelled(request_id=event.request_id, dialog_id=None)]

    assert link.endpoint.respond(event.request_id, 200, now=link.now, body=ANSWER_SDP) is None  # too late
    assert src.received() == []
    assert link.endpoint.dialog_ids() == []

    link.now = 1.2
    src.send(src.ack(terminated))  # the ACK for the 487 belongs to the INVITE transaction
    assert link.events() == [] and src.received() == []
    assert link.run_until(60.0) == []
    assert link.endpoint.get_timer() is None


def test_cancel_after_the_answer_changes_nothing() -> None:
    link = Link()
    src = Src(link)
    invite_branch = src.new_branch()
    event, _ = _invite(link, src, src.invite(branch=invite_branch))
    _answer(link, src, event)
    src.send(src.build("CANCEL", branch=invite_branch, cseq=src.cseq))
    (cancel_ok,) = src.responses()
    assert cancel_ok.status == 200
    assert link.events() == []
    assert len(link.endpoint.dialog_ids()) == 1


def test_cancel_for_an_unknown_transaction_gets_481() -> None:
    link = Link()
    src = Src(link)
    src.send(src.build("CANCEL"))
    (response,) = src.responses()
    assert response.status == 481


def test_non_2xx_final_is_retransmitted_on_timer_g_until_the_ack() -> None:
    link = Link()
    src = Src(link)
    event, _ = _invite(link, src)
    link.endpoint.respond(event.request_id, 488, now=link.now)
    (rejected,) = src.responses()
    assert rejected.status == 488
    sent = link.run_until(4.0)
    assert [time for time, _ in sent] == RETRANSMIT_TIMES[:3]
    assert all(message == rejected for _, message in sent)
    link.now = 5.0
    src.send(src.ack(rejected))
    assert link.events() == []  # absorbed by the transaction
    assert link.run_until(60.0) == []  # Timer I (T4) ends the transaction quietly
    assert link.endpoint.get_timer() is None


def test_non_2xx_final_without_ack_stops_at_timer_h() -> None:
    link = Link()
    src = Src(link)
    event, _ = _invite(link, src)
    link.endpoint.respond(event.request_id, 486, now=link.now)
    src.responses()
    assert [time for time, _ in link.run_until(100.0)] == RETRANSMIT_TIMES
    assert link.endpoint.get_timer() is None
    assert link.endpoint.counters["ack-timeout", "non-2xx"] == 1


def test_non_2xx_over_tcp_is_not_retransmitted() -> None:
    link = Link()
    src = Src(link, transport="tcp", port=40312, connection_id=3)
    event, _ = _invite(link, src)
    link.endpoint.respond(event.request_id, 486, now=link.now)
    (busy,) = src.responses()
    assert link.run_until(31.9) == []
    src.send(src.ack(busy))
    assert link.run_until(32.0) == []
    assert link.endpoint.get_timer() is None  # Timer I is 0 on reliable transports


def test_new_invite_while_not_accepting_gets_503_and_no_event() -> None:
    link = Link()
    link.endpoint.accepting = False
    src = Src(link)
    src.send(src.invite())
    (unavailable,) = src.responses()
    assert unavailable.status == 503 and unavailable.headers.get("Retry-After") == "5"
    assert unavailable.to_addr.tag is not None
    assert link.events() == []
    src.send(src.ack(unavailable))
    assert link.events() == [] and src.received() == []


@pytest.mark.parametrize("require", ["siprec", "SIPREC", "siprec, timer", "timer,siprec"])
@pytest.mark.parametrize("supported", [None, ("timer",)])
def test_require_siprec_is_never_answered_420(require: str, supported: tuple[str, ...] | None) -> None:
    link = Link(supported=supported)
    src = Src(link)
    src.send(src.invite(extra=[("Require", require)]))
    assert [response.status for response in src.responses()] == [100]
    assert isinstance(link.events()[0], InviteReceived)


@pytest.mark.parametrize(
    ("require", "unsupported"), [("100rel", "100rel"), ("siprec, precondition", "precondition")]
)
def test_unknown_required_extension_gets_420_listing_it(require: str, unsupported: str) -> None:
    link = Link()
    src = Src(link)
    src.send(src.build("INVITE", extra=[("Contact", "<sip:SRC@10.20.30.10>"), ("Require", require)]))
    (response,) = src.responses()
    assert response.status == 420 and response.headers.get("Unsupported") == unsupported
    assert link.events() == []


def test_invite_without_contact_gets_400() -> None:
    link = Link()
    src = Src(link)
    src.send(src.build("INVITE"))
    (response,) = src.responses()
    assert (response.status, response.reason) == (400, "Missing or Bad Contact Header")


def test_unsupported_body_type_gets_415_with_accept() -> None:
    link = Link()
    src = Src(link)
    src.send(src.invite(content_type="application/vnd.3gpp.sms"))
    (response,) = src.responses()
    assert response.status == 415
    assert response.headers.get_all("Accept") == [
        "application/sdp",
        "application/rs-metadata+xml",
        "multipart/mixed",
    ]


def test_rport_and_received_are_stamped_and_the_response_goes_to_the_packet_source() -> None:
    link = Link()
    nat = Address(transport="udp", host="203.0.113.9", port=40123)
    src = Src(link, host="192.168.1.20")
    data = src.invite().replace(b"192.168.1.20:5060;branch=", b"192.168.1.20:5060;rport;branch=")
    link.deliver(data, nat)
    ((destination, trying),) = link.sent()
    assert destination == nat
    via = trying.top_via
    assert (via.received, via.rport) == ("203.0.113.9", 40123)


def test_received_is_added_when_the_via_host_differs_from_the_source() -> None:
    link = Link()
    src = Src(link, host="pbx.example.hu")
    link.deliver(src.invite(), Address(transport="udp", host="198.51.100.20", port=5060))
    ((_, trying),) = link.sent()
    assert trying.top_via.received == "198.51.100.20" and not trying.top_via.rport_requested


def test_record_route_is_echoed_and_becomes_the_route_set() -> None:
    link = Link()
    src = Src(link)
    routes = [("Record-Route", "<sip:10.20.30.5;lr;did=a1b>"), ("Record-Route", "<sip:10.20.30.6;lr>")]
    event, _ = _invite(link, src, src.invite(extra=routes))
    dialog_id, ok = _answer(link, src, event)
    assert ok.headers.get_all("Record-Route") == ["<sip:10.20.30.5;lr;did=a1b>", "<sip:10.20.30.6;lr>"]
    assert link.endpoint.dialog_info(dialog_id).route_set == (
        "<sip:10.20.30.5;lr;did=a1b>",
        "<sip:10.20.30.6;lr>",
    )


def _without_branch(data: bytes) -> bytes:
    return re.sub(rb";branch=[^;\r\n]+", b"", data)


def test_rfc2543_peer_without_branch_is_matched_for_retransmission_and_cancel() -> None:
    link = Link()
    src = Src(link)
    invite = _without_branch(src.invite())
    event, (trying,) = _invite(link, src, invite)
    src.send(invite)
    assert src.responses() == [trying]
    src.send(_without_branch(src.build("CANCEL", cseq=src.cseq)))
    assert [response.status for response in src.responses()] == [200, 487]
    assert link.events() == [InviteCancelled(request_id=event.request_id, dialog_id=None)]


def test_answer_contact_uses_the_answering_transport_and_the_remote_contact_is_kept() -> None:
    link = Link()
    src = Src(link, transport="tls", port=5061, connection_id=11)
    event, _ = _invite(link, src)
    dialog_id, ok = _answer(link, src, event)
    assert ok.headers.get("Contact") == "<sip:10.20.30.40:5060;transport=tls>"
    assert NameAddr.parse(ok.headers.get("Contact") or "").uri.endswith("transport=tls")
    assert link.endpoint.dialog_info(dialog_id).remote_target == "sip:SRC@10.20.30.10:5061"
