from siprec_server.sip import Address, SipRequest, parse_message
from siprec_server.sip.dialog import Dialog

from .traffic import oracle_siprec_invite, request

SOURCE = Address(transport="udp", host="10.20.30.10", port=5060)


def _invite(
    *extra: tuple[str, str], contact: str = "<sip:SRC@10.20.30.10:5060;transport=udp>;+sip.src"
) -> SipRequest:
    headers = [
        ("Via", "SIP/2.0/UDP 10.20.30.10:5060;branch=z9hG4bKd1"),
        ("From", '"Recorder Source" <sip:SRC@10.20.30.10:5060>;tag=remote1'),
        ("To", "<sip:srs@10.20.30.40:5060>"),
        ("Call-ID", "dlg-1@10.20.30.10"),
        ("CSeq", "7 INVITE"),
        ("Contact", contact),
        *extra,
    ]
    message = parse_message(request("INVITE", "sip:srs@10.20.30.40:5060", headers))
    assert isinstance(message, SipRequest)
    return message


def test_dialog_state_from_the_oracle_invite() -> None:
    invite = parse_message(oracle_siprec_invite())
    assert isinstance(invite, SipRequest)
    dialog = Dialog.from_invite(invite, local_tag="9f3c", source=SOURCE)
    assert (dialog.id.call_id, dialog.id.local_tag, dialog.id.remote_tag) == (
        "1d6c5e60b1b5a1c29c9e0f8b3a7d2e4f@10.20.30.10",
        "9f3c",
        "5c8e0a3a2d1e0d41fa0e1b6c",
    )
    assert dialog.remote_target == "sip:SRC@10.20.30.10:5060;transport=udp"
    assert dialog.remote_cseq == 1 and dialog.route_set == ()


def test_requests_we_send_swap_from_and_to_and_count_their_own_cseq() -> None:
    dialog = Dialog.from_invite(_invite(), local_tag="9f3c", source=SOURCE)
    first = dialog.build_request("INFO", via="SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bKa")
    second = dialog.build_request(
        "BYE", via="SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bKb", user_agent="Hangtar"
    )
    assert first.headers.get("From") == "<sip:srs@10.20.30.40:5060>;tag=9f3c"
    assert first.headers.get("To") == '"Recorder Source" <sip:SRC@10.20.30.10:5060>;tag=remote1'
    assert (first.cseq.number, second.cseq.number) == (1, 2)
    assert second.uri == "sip:SRC@10.20.30.10:5060;transport=udp"
    assert second.headers.get("User-Agent") == "Hangtar" and "User-Agent" not in first.headers


def test_loose_routing_keeps_the_target_as_request_uri() -> None:
    dialog = Dialog.from_invite(
        _invite(("Record-Route", "<sip:10.20.30.5;lr;ftag=remote1>, <sip:10.20.30.6;lr>")),
        local_tag="t",
        source=SOURCE,
    )
    bye = dialog.build_request("BYE", via="SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bKc")
    assert bye.uri == "sip:SRC@10.20.30.10:5060;transport=udp"
    assert bye.headers.get_all("Route") == ["<sip:10.20.30.5;lr;ftag=remote1>", "<sip:10.20.30.6;lr>"]
    assert dialog.next_hop() == Address(transport="udp", host="10.20.30.5", port=5060)


def test_strict_routing_puts_the_first_route_in_the_request_uri() -> None:  # §12.2.1.1
    dialog = Dialog.from_invite(
        _invite(("Record-Route", "<sip:10.20.30.5>"), ("Record-Route", "<sip:10.20.30.6;lr>")),
        local_tag="t",
        source=SOURCE,
    )
    bye = dialog.build_request("BYE", via="SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bKd")
    assert bye.uri == "sip:10.20.30.5"
    assert bye.headers.get_all("Route") == ["<sip:10.20.30.6;lr>", "<sip:SRC@10.20.30.10:5060;transport=udp>"]


def test_next_hop() -> None:
    tcp_source = Address(transport="tcp", host="10.20.30.10", port=40312, connection_id=4)
    same_host = Dialog.from_invite(
        _invite(contact="<sip:SRC@10.20.30.10:5060;transport=tcp>"), local_tag="t", source=tcp_source
    )
    assert same_host.next_hop() == Address(transport="tcp", host="10.20.30.10", port=5060, connection_id=4)

    other_host = Dialog.from_invite(
        _invite(contact="<sip:SRC@10.20.30.11;transport=tcp>"), local_tag="t", source=tcp_source
    )
    assert other_host.next_hop() == Address(transport="tcp", host="10.20.30.11", port=5060)

    secure = Dialog.from_invite(_invite(contact="<sips:SRC@[2001:db8::7]>"), local_tag="t", source=SOURCE)
    assert secure.next_hop() == Address(transport="tls", host="2001:db8::7", port=5061)

    named = Dialog.from_invite(_invite(contact="<sip:SRC@sbc.example.hu>"), local_tag="t", source=SOURCE)
    assert named.next_hop() == SOURCE  # no DNS in the core: back to where the INVITE came from

    websocket = Dialog.from_invite(
        _invite(contact="<sip:SRC@10.20.30.12;transport=ws>"), local_tag="t", source=SOURCE
    )
    assert websocket.next_hop() == SOURCE


def test_remote_cseq_order_and_target_refresh() -> None:  # §12.2.2
    dialog = Dialog.from_invite(_invite(), local_tag="t", source=SOURCE)
    assert dialog.accept_remote_cseq(7)
    assert dialog.accept_remote_cseq(8)
    assert not dialog.accept_remote_cseq(6)
    assert dialog.remote_cseq == 8
    dialog.refresh_target(_invite(contact="<sip:SRC@10.20.30.99:5062>"))
    assert dialog.remote_target == "sip:SRC@10.20.30.99:5062"
    dialog.refresh_target(_invite(contact="<broken"))
    assert dialog.remote_target == "sip:SRC@10.20.30.99:5062"
    assert dialog.info().remote_target == "sip:SRC@10.20.30.99:5062"
