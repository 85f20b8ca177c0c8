"""SIP over TLS listens on its own port (5061, RFC 3261 §19.1.2): Contact and Via of TLS dialogs must name it."""

from siprec_server.sip import InviteReceived, SipRequest

from .peer import Link, Src

ANSWER_SDP = b"v=0\r\no=- 1 1 IN IP4 10.20.30.40\r\ns=-\r\nc=IN IP4 10.20.30.40\r\nt=0 0\r\n"


def answered_contact(link: Link, src: Src) -> tuple[str, InviteReceived]:
    src.send(src.invite())
    (event,) = link.events()
    assert isinstance(event, InviteReceived)
    src.responses()  # 100 Trying
    link.endpoint.respond(
        event.request_id, 200, now=link.now, body=ANSWER_SDP, content_type="application/sdp"
    )
    (ok,) = src.responses()
    return ok.headers.get("Contact") or "", event


def test_tls_dialogs_name_the_tls_port_and_others_the_sip_port() -> None:
    link = Link()
    link.endpoint.transport_ports["tls"] = 5061
    tls = Src(link, transport="tls", port=41234, connection_id=7, call_id="tls-call@10.20.30.10")
    contact, _ = answered_contact(link, tls)
    assert contact == "<sip:10.20.30.40:5061;transport=tls>"
    udp = Src(link, call_id="udp-call@10.20.30.10")
    contact, _ = answered_contact(link, udp)
    assert contact == "<sip:10.20.30.40:5060;transport=udp>"
    assert link.endpoint.port_for("tcp") == 5060


def test_our_bye_in_a_tls_dialog_carries_the_tls_port_in_via() -> None:
    link = Link()
    link.endpoint.transport_ports["tls"] = 5061
    src = Src(link, transport="tls", port=41234, connection_id=7)
    answered_contact(link, src)
    (dialog_id,) = link.endpoint.dialog_ids()
    link.endpoint.send_request(dialog_id, "BYE", now=link.now)
    sent = link.sent()
    byes = [(to, m) for to, m in sent if isinstance(m, SipRequest) and m.method == "BYE"]
    assert len(byes) == 1
    destination, bye = byes[0]
    assert destination.connection_id == 7 and destination.transport == "tls"
    assert (bye.headers.get("Via") or "").startswith("SIP/2.0/TLS 10.20.30.40:5061;")
